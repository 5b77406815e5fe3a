"""The public surface: the names users and notebooks rely on (shared/API.md) stay where they are."""

from __future__ import annotations

import subprocess
import sys

import sora_nb

EXPECTED_ALL = [
    "connect", "Client", "Job", "Sweep", "Estimate", "Run", "resume", "load_run", "AuditReport", "COLUMNS", "STYLES",
    "measure_video", "register_metric", "unregister_metric",
    "SoraError", "ConfigurationError", "ValidationError", "APIError", "BadRequestError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ConflictError", "RateLimitError", "ServerError",
    "UnexpectedResponseError", "TransportError", "DownloadError", "StorageError", "JobFailedError",
    "JobTimeoutError", "BudgetExceededError", "AmbiguousCreateError", "RunLockedError", "UnsupportedOperationError",
    "ContractClient", "Video", "VideoError", "VideoList", "DeletedVideo", "Character",
    "RateLimitInfo", "JobSpec", "Profile", "PROFILES", "PollPolicy", "RetryPolicy", "__version__",
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
