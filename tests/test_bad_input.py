"""Bad input, table-driven: every mistake gives the right error type and a message that names the
field (or the cause), the allowed values where there are some, and the fix. Nothing is sent for
mistakes that can be caught locally, and nothing is left behind."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port, image_bytes, no_sleep

import sora_nb
from sora_nb import ContractClient, RetryPolicy
from sora_nb._profiles import Profile, resolve_api_key
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

KEY = "sk-badinput-" + "Z" * 20


def scripted(*responses: httpx.Response | Exception) -> ContractClient:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return ContractClient(base_url="http://api.test/v1", api_key=KEY, transport=httpx.MockTransport(handler),
                          sleep=no_sleep, retry=RetryPolicy(max_retries=2, jitter=0.0))


def simulated(**config: Any) -> ContractClient:
    transport = SimulatorTransport(SimulatorConfig(seed=1, time_scale=0.001, **config))
    return ContractClient(base_url="http://simulator.local/v1", api_key=KEY, transport=transport, sleep=no_sleep,
                          validate=False, retry=RetryPolicy(max_retries=1, jitter=0.0))


def run(coro_fn: Callable[[ContractClient], Any], client: ContractClient) -> Callable[[], Any]:
    async def main() -> Any:
        async with client:
            return await coro_fn(client)

    return lambda: asyncio.run(main())


def error_json(status: int, message: str, code: str | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "type": "invalid_request_error",
                                                  "param": None, "code": code}})


def create(**kwargs: Any) -> Callable[[ContractClient], Any]:
    return lambda c: c.create(**{"prompt": "a cat", **kwargs})


def generate(tmp: Path, *args: Any, **kwargs: Any) -> Any:
    with sora_nb.connect("simulator", time_scale=0.001, run_root=tmp) as client:
        return client.generate(*args, **kwargs)


def with_client(tmp: Path, use: Callable[[sora_nb.Client], Any]) -> Any:
    with sora_nb.connect("simulator", time_scale=0.001, run_root=tmp) as client:
        return use(client)


def fifo(tmp: Path) -> Path:
    path = tmp / "reference.png"
    os.mkfifo(path)
    return path


def waited_with(tmp: Path, timeout: float) -> Any:
    def use(client: sora_nb.Client) -> Any:
        job = client.generate("a cat")
        try:
            return job.wait(timeout=timeout)
        finally:
            job.wait(timeout=30)

    return with_client(tmp, use)


def damaged_ledger(tmp: Path, how: str) -> Path:
    """A run whose ledger is garbage (``bytes``) or holds broken JSON (``json``)."""
    import sqlite3

    from sora_nb._ledger import LEDGER_FILE, Ledger

    run_dir = tmp / "run"
    if how == "bytes":
        run_dir.mkdir()
        (run_dir / LEDGER_FILE).write_bytes(b"this is not a database" * 100)
        return run_dir
    Ledger.create(run_dir, meta={"profile": "simulator", "axes": ["prompt"]}).close()
    with sqlite3.connect(run_dir / LEDGER_FILE) as conn:
        conn.execute("UPDATE meta SET value = '{\"broken' WHERE key = 'axes'")
    conn.close()
    return run_dir


MANY_PROMPTS = [f"prompt {i}" for i in range(1000)]

CASES: list[tuple[str, Callable[[Path], Callable[[], Any]], type[Exception], tuple[str, ...]]] = [
    ("empty prompt", lambda t: lambda: generate(t, "   "),
     sora_nb.ValidationError, ("prompt is empty", "Fix:")),
    ("oversized prompt", lambda t: lambda: generate(t, "x" * 32001),
     sora_nb.ValidationError, ("32001 characters", "limit is 32000", "Fix: shorten")),
    ("prompt not text", lambda t: lambda: generate(t, 42),
     sora_nb.ValidationError, ("prompt must be a string", "Fix:")),
    ("unknown size", lambda t: lambda: generate(t, "a cat", size="640x480"),
     sora_nb.ValidationError, ("size='640x480'", "Allowed: '720x1280', '1280x720'", "Fix:")),
    ("size the model cannot do", lambda t: lambda: generate(t, "a cat", model="sora-2", size="1792x1024"),
     sora_nb.ValidationError, ("need sora-2-pro", "Allowed:", "Fix:")),
    ("size not WxH", lambda t: lambda: generate(t, "a cat", size="big"),
     sora_nb.ValidationError, ("is not WIDTHxHEIGHT", "Fix:")),
    ("seconds not allowed", lambda t: lambda: generate(t, "a cat", seconds=5),
     sora_nb.ValidationError, ("seconds='5'", "Allowed: '4', '8', '12'", "Fix:")),
    ("seconds fractional", lambda t: lambda: generate(t, "a cat", seconds=4.5),
     sora_nb.ValidationError, ("seconds=4.5", "whole number", "Fix:")),
    ("unknown style", lambda t: lambda: generate(t, "a cat", style="baroque"),
     sora_nb.ValidationError, ("style='baroque'", "Allowed: 'cinematic'", "Fix:")),
    ("int seconds on a strict server", lambda t: run(
        lambda c: c.create(prompt="a cat", seconds="4"),
        ContractClient(base_url="http://simulator.local/v1", transport=SimulatorTransport(SimulatorConfig(seed=1)),
                       api_key=KEY, seconds_as_int=True, sleep=no_sleep)),
     sora_nb.BadRequestError, ("HTTP 400", "(param: seconds)", "Fix:")),
    ("reference image of the wrong size", lambda t: run(create(size="720x1280",
                                                               input_reference=image_bytes((640, 480), "PNG")),
                                                        simulated()),
     sora_nb.ValidationError, ("640x480 but size is 720x1280", "Fix: resize or crop")),
    ("reference image in a wrong format", lambda t: run(create(input_reference=image_bytes((720, 1280), "GIF")),
                                                        simulated()),
     sora_nb.ValidationError, ("not a JPEG, PNG or WebP", "GIF", "Fix: convert")),
    ("reference image path missing", lambda t: run(create(input_reference=t / "nope.png"), simulated()),
     sora_nb.ValidationError, ("cannot be read", "Fix: pass an existing image")),
    ("reference dict with both keys", lambda t: run(create(input_reference={"image_url": "u", "file_id": "f"}),
                                                    simulated()),
     sora_nb.ValidationError, ("exactly one of 'image_url' or 'file_id'", "Fix:")),
    ("missing key", lambda t: lambda: resolve_api_key(Profile("hosted", requires_key=True, key_env=("NO_SUCH_KEY",)),
                                                       None, interactive=False),
     sora_nb.ConfigurationError, ("needs an API key", "Fix: set NO_SUCH_KEY")),
    ("unknown profile", lambda t: lambda: sora_nb.connect("sora-app"),
     sora_nb.ConfigurationError, ("profile='sora-app' is unknown", "Allowed:", "Fix:")),
    ("base URL without a scheme", lambda t: lambda: sora_nb.connect("openai-compatible", base_url="localhost:4000/v1"),
     sora_nb.ConfigurationError, ("not an http(s) URL", "Fix: e.g. base_url=")),
    ("wrong base URL (nothing listening)", lambda t: run(
        lambda c: c.retrieve("video_1"),
        ContractClient(base_url=f"http://127.0.0.1:{free_port()}/v1", sleep=no_sleep,
                       retry=RetryPolicy(max_retries=1, jitter=0.0))),
     sora_nb.TransportError, ("cannot connect", "Fix: check base_url")),
    ("HTML error page from a proxy", lambda t: run(lambda c: c.retrieve("video_1"), scripted(
        httpx.Response(200, text="<html><body>Sign in</body></html>", headers={"content-type": "text/html"}))),
     sora_nb.UnexpectedResponseError, ("HTML page", "Fix: check base_url")),
    ("401", lambda t: run(lambda c: c.retrieve("video_1"), scripted(error_json(401, "bad key", "invalid_api_key"))),
     sora_nb.AuthenticationError, ("HTTP 401", "Check the API key", "Fix:")),
    ("403", lambda t: run(lambda c: c.retrieve("video_1"), scripted(error_json(403, "no access"))),
     sora_nb.PermissionDeniedError, ("HTTP 403", "may not do that", "Fix:")),
    ("404", lambda t: run(lambda c: c.retrieve("video_404"), simulated()),
     sora_nb.NotFoundError, ("HTTP 404", "Check the id and the base URL", "Fix:")),
    ("429", lambda t: run(lambda c: c.retrieve("video_1"), scripted(error_json(429, "slow down", "rate_limit"))),
     sora_nb.RateLimitError, ("HTTP 429", "lower max_concurrency", "Fix:")),
    ("500", lambda t: run(lambda c: c.retrieve("video_1"), scripted(error_json(500, "boom"))),
     sora_nb.ServerError, ("HTTP 500", "retried with backoff", "Fix:")),
    ("malformed JSON", lambda t: run(lambda c: c.retrieve("video_1"), scripted(
        httpx.Response(200, content=b'{"id": "video_1", "sta', headers={"content-type": "application/json"}))),
     sora_nb.UnexpectedResponseError, ("not valid JSON", "Fix: check base_url")),
    ("JSON where a video should be", lambda t: run(lambda c: c.download("video_1", t / "v.mp4"), scripted(
        httpx.Response(200, json={"error": "not ready"}))),
     sora_nb.DownloadError, ("instead of video data", "Nothing was written", "Fix:")),
    ("truncated download", lambda t: run(lambda c: c.download("video_1", t / "v.mp4"), scripted(
        httpx.Response(200, content=b"x" * 10, headers={"content-type": "video/mp4", "content-length": "99"}))),
     sora_nb.DownloadError, ("truncated: got 10 of 99 bytes", "Fix:")),
    ("unwritable output directory", lambda t: run(lambda c: c.download("video_1", _locked(t) / "v.mp4"), scripted(
        httpx.Response(200, content=b"x" * 10, headers={"content-type": "video/mp4"}))),
     sora_nb.StorageError, ("cannot write to", "Fix: free space there, or choose a writable directory")),
    ("list limit out of range", lambda t: run(lambda c: c.list(limit=500), simulated()),
     sora_nb.ValidationError, ("limit=500", "0..100", "Fix:")),
    ("id with a slash", lambda t: run(lambda c: c.retrieve("../etc/passwd"), simulated()),
     sora_nb.ValidationError, ("not a valid id", "Fix:")),
    # Bounds and types (issue 9, point 7): each refused up front, typed, naming the field and the fix.
    ("id with CR/LF", lambda t: run(lambda c: c.retrieve("video_1\r\nX-Injected: 1"), simulated()),
     sora_nb.ValidationError, ("not a valid id", "Allowed: 1 to 256", "Fix:")),
    ("sweep of 10 million jobs", lambda t: lambda: with_client(
        t, lambda c: c.sweep(prompt=MANY_PROMPTS, repeats=10_000)),
     ValueError, ("10,000,000 combinations", "max_jobs=10,000", "Fix:", "max_jobs=10000000")),
    ("reference image is /dev/zero", lambda t: lambda: generate(t, "a cat", input_reference="/dev/zero"),
     sora_nb.ValidationError, ("input_reference '/dev/zero' is not a regular file", "character device", "Fix:")),
    ("reference image is a FIFO", lambda t: lambda: generate(t, "a cat", input_reference=fifo(t)),
     sora_nb.ValidationError, ("is not a regular file (a FIFO)", "Fix:")),
    ("max_concurrency=-1", lambda t: lambda: sora_nb.connect("simulator", max_concurrency=-1),
     ValueError, ("max_concurrency=-1", "Allowed: 1 or more", "Fix:")),
    ("max_concurrency=0 on a sweep", lambda t: lambda: with_client(
        t, lambda c: c.sweep(prompt="a cat").start(max_concurrency=0)),
     ValueError, ("max_concurrency=0", "Allowed: 1 or more", "Fix:")),
    ("unknown sweep axis", lambda t: lambda: with_client(t, lambda c: c.sweep(prompt="a cat", modle="sora-2")),
     TypeError, ("no argument 'modle'", "did you mean 'model'", "Allowed: prompt, model", "Fix:")),
    ("lone surrogate in a prompt", lambda t: lambda: generate(t, "a cat \ud83d on a wave"),
     sora_nb.ValidationError, ("prompt has a character that is not valid text at position 6", "Fix:")),
    ("run_dir is a file", lambda t: lambda: with_client(
        t, lambda c: c.sweep(prompt="a cat").start(run_dir=_a_file(t))),
     ValueError, ("is a file, not a directory", "Fix: choose another run_dir")),
    ("wait(timeout=-1)", lambda t: lambda: waited_with(t, -1),
     ValueError, ("timeout=-1", "Allowed: 0 or more seconds", "Fix:")),
    ("budget_usd=nan", lambda t: lambda: with_client(
        t, lambda c: c.sweep(prompt="a cat").start(budget_usd=float("nan"))),
     ValueError, ("budget_usd=nan", "Allowed: 0 or more US dollars", "Fix:")),
    ("load_run of a garbage ledger", lambda t: lambda: sora_nb.load_run(damaged_ledger(t, "bytes")),
     sora_nb.SoraError, ("is damaged and cannot be read", "DatabaseError", "Fix:")),
    ("load_run of a ledger with broken JSON", lambda t: lambda: sora_nb.load_run(damaged_ledger(t, "json")),
     sora_nb.SoraError, ("is damaged and cannot be read", "JSONDecodeError", "Fix:")),
    ("resume of a garbage ledger", lambda t: lambda: sora_nb.resume(damaged_ledger(t, "bytes")),
     sora_nb.SoraError, ("is damaged and cannot be read", "Fix:")),
    ("resume of a ledger with broken JSON", lambda t: lambda: sora_nb.resume(damaged_ledger(t, "json")),
     sora_nb.SoraError, ("is damaged and cannot be read", "Fix:")),
]


def _a_file(tmp: Path) -> Path:
    path = tmp / "results.txt"
    path.write_text("not a run")
    return path


def _locked(tmp: Path) -> Path:
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return locked


@pytest.mark.parametrize("how", ["bytes", "json"])
def test_sora_nb_ls_lists_a_damaged_ledger_as_unreadable(how: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from sora_nb._cli import main

    run_dir = damaged_ledger(tmp_path, how)
    assert main(["ls", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "unreadable: the run ledger" in out and "is damaged" in out and "Fix:" in out, out


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize(("name", "make", "error", "phrases"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(name: str, make: Callable[[Path], Callable[[], Any]], error: type[Exception],
                   phrases: tuple[str, ...], tmp_path: Path) -> None:
    if name == "unwritable output directory" and os.geteuid() == 0:
        # root ignores permission bits: make the target a file instead, which nobody can write into.
        (tmp_path / "locked").write_text("a file, not a directory")
        make = lambda t: run(lambda c: c.download("video_1", t / "locked" / "v.mp4"), scripted(  # noqa: E731
            httpx.Response(200, content=b"x" * 10, headers={"content-type": "video/mp4"})))
    with pytest.raises(error) as info:
        make(tmp_path)()
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, f"{name}: {phrase!r} not in {message!r}"
    assert KEY not in message
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]
    assert not leftovers, leftovers
