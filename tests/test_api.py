"""The public surface: the names users and notebooks rely on (shared/API.md) stay where they are."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import sora_nb

EXPECTED_ALL = [
    "connect", "Client", "Job", "Sweep", "Estimate", "load_sweep_file", "Run", "Storyboard", "resume", "load_run",
    "AuditReport", "pool", "COLUMNS", "STYLES", "measure_video", "register_metric", "unregister_metric",
    "SoraError", "ConfigurationError", "ValidationError", "APIError", "BadRequestError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ConflictError", "RateLimitError", "ServerError",
    "UnexpectedResponseError", "TransportError", "DownloadError", "StorageError", "JobFailedError",
    "JobTimeoutError", "BudgetExceededError", "AmbiguousCreateError", "RunLockedError", "UnsupportedOperationError",
    "ContractClient", "Video", "VideoError", "VideoList", "DeletedVideo", "Character",
    "RateLimitInfo", "JobSpec", "JobStatus", "Profile", "PROFILES", "PollPolicy", "RetryPolicy", "__version__",
]  # fmt: skip


def test_all_is_pinned_in_journey_order() -> None:
    assert sora_nb.__all__ == EXPECTED_ALL
    for name in sora_nb.__all__:
        assert hasattr(sora_nb, name), name


def test_api_md_names_exist() -> None:
    client_methods = ["generate", "sweep", "close", "api"]
    assert all(hasattr(sora_nb.Client, m) for m in client_methods)
    assert all(hasattr(sora_nb.Job, m) for m in ["wait", "__await__", "remix", "extend", "cancel", "retry",
                                                 "status", "progress", "video_path", "thumbnail_path", "error",
                                                 "reconcile"])
    assert all(hasattr(sora_nb.Run, m) for m in ["wait", "__await__", "cancel", "retry_failed", "to_dataframe",
                                                 "gallery", "compare", "table", "audit", "reconcile",
                                                 "measure", "rate", "vote", "judgments", "leaderboard", "review",
                                                 "arena"])
    assert all(hasattr(sora_nb.Sweep, m) for m in ["estimate", "start"])


PUBLIC_ATTRIBUTES = {
    "Job": [
        "backend", "bytes_downloaded", "cancel", "delete", "done", "elapsed", "error", "eta", "extend", "id", "model",
        "observe", "profile", "progress", "prompt", "queue_position", "reconcile", "remix", "remote_id", "retry", "run",
        "seconds", "size", "spec", "status", "style", "thumbnail_path", "video_path", "wait", "wait_async",
    ],
    "Run": [
        "arena", "audit", "axes", "cancel", "close", "compare", "counts", "done", "failed", "gallery", "id", "jobs",
        "judgments", "leaderboard", "max_concurrency", "measure", "measure_async", "meta", "observe", "profile",
        "rate", "reconcile", "retry_failed", "review", "run_dir", "submit", "table", "to_dataframe", "undo_judgment",
        "vote", "wait", "wait_async",
    ],
    "Client": [
        "aclose", "api", "base_url", "call", "characters", "close", "create_character",
        "create_character_async", "estimate_storyboard", "generate", "get_character",
        "profile", "run_root", "session", "simulator", "simulator_state_dir", "storyboard", "sweep",
    ],
    "Sweep": ["boards", "client", "estimate", "jobs", "options", "plan", "start"],
    # A Run, plus the board's own view: its plan, its shots (the current takes), the whole video, redo.
    "Storyboard": sorted([
        "arena", "audit", "axes", "cancel", "close", "compare", "counts", "done", "failed", "gallery", "id", "jobs",
        "judgments", "leaderboard", "max_concurrency", "measure", "measure_async", "meta", "observe", "profile",
        "rate", "reconcile", "retry_failed", "review", "run_dir", "submit", "table", "to_dataframe", "undo_judgment",
        "vote", "wait", "wait_async",
        "continuity", "error", "estimate", "mode", "plan", "progress", "redo", "shots", "status", "stitched",
        "storyboard_id", "thumbnail_path", "video_path",
    ]),
    "AuditReport": [
        "ambiguous", "cannot_check", "claimed", "delete_orphans", "duplicates", "lines", "listed", "missing", "ok",
        "orphans", "problems", "run_dir", "run_id", "service", "since",
    ],
}  # fmt: skip
"""What a user sees on the live objects: the engine's plumbing (the runner, the ledger, the loop, drive state)
stays behind ``_`` names, so that a new public name is a decision made here."""


def test_the_live_objects_show_only_their_public_attributes(tmp_path: Path) -> None:
    with sora_nb.connect(time_scale=0.002, run_root=tmp_path) as client:
        job = client.generate("a corgi surfing").wait(timeout=60)
        sweep = client.sweep(prompt="a cat skiing")
        board = client.storyboard(["a fox wakes"]).wait(timeout=60)
        live = {"Job": job, "Run": job.run, "Client": client, "Sweep": sweep, "AuditReport": job.run.audit(),
                "Storyboard": board}
        for name, obj in live.items():
            assert type(obj) is getattr(sora_nb, name)
            assert sorted(n for n in dir(obj) if not n.startswith("_")) == PUBLIC_ATTRIBUTES[name], name


def test_public_classes_show_as_sora_nb_names() -> None:
    """``<class 'sora_nb.Job'>`` and ``sora_nb.JobFailedError: ...`` in a traceback, where users find them."""
    classes = [getattr(sora_nb, name) for name in sora_nb.__all__ if isinstance(getattr(sora_nb, name), type)]
    assert len(classes) > 30
    for cls in classes:
        assert cls.__module__ == "sora_nb", cls
        assert repr(cls) == f"<class 'sora_nb.{cls.__name__}'>"
    assert set(typing.get_args(sora_nb.JobStatus)) >= {"pending_submit", "completed", "failed", "ambiguous"}


def test_error_tree() -> None:
    for name in ["ConfigurationError", "ValidationError", "APIError", "TransportError", "DownloadError",
                 "StorageError", "RunLockedError", "JobFailedError", "JobTimeoutError", "BudgetExceededError"]:
        assert issubclass(getattr(sora_nb, name), sora_nb.SoraError)
    for name in ["BadRequestError", "AuthenticationError", "PermissionDeniedError", "NotFoundError",
                 "ConflictError", "RateLimitError", "ServerError", "UnexpectedResponseError"]:
        assert issubclass(getattr(sora_nb, name), sora_nb.APIError)
    assert issubclass(sora_nb.ValidationError, ValueError)
    assert issubclass(sora_nb.StorageError, OSError)  # a disk's refusal, caught by `except OSError` too


def test_import_is_light() -> None:
    """Heavy dependencies load on first use, not at ``import sora_nb`` (timing lives in benchmarks/)."""
    code = (
        "import sys, sora_nb; heavy = ['pandas', 'av', 'PIL', 'starlette', 'ipywidgets', 'numpy', 'uvicorn', "
        "'IPython', 'pyarrow', 'yaml']; print(','.join(m for m in heavy if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"imported at startup: {loaded}"


def test_cli_subcommands() -> None:
    from sora_nb._cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"demo", "generate", "sweep", "resume", "audit", "ls", "app", "measure",
                                "simulator"}
