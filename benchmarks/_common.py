"""Shared pieces of the benchmarks: loopback servers in subprocesses, the audit, the ideal makespan.

Every benchmark starts what it needs itself and cleans up after itself:

* :class:`LoopbackServer` runs a server in a child process bound to ``127.0.0.1`` on a port the child
  picks (port 0, so there is no race for a "free" port), waits until it answers, and always
  terminates it (``with`` block; the child also gets SIGTERM if this process dies).
* ``python benchmarks/_common.py simulator ...`` is that child for the simulator: sora_nb's simulator
  app served by uvicorn, wrapped in a tiny ASGI middleware that counts requests per route and per
  video, readable at ``GET /_bench/counts`` (the simulator itself has no request counter).
* ``python benchmarks/_common.py files --size-mb 20`` serves one file of that size as ``video/mp4``.

Run from the repository root with the project's venv: ``.venv/bin/python benchmarks/bench_<name>.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import heapq
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"

# A sweep's worth of distinct prompts (each distinct prompt and duration is one render on the server).
PROMPTS = [
    f"{animal} {action}"
    for animal in ("a corgi", "a cat", "a fox", "an otter", "a heron")
    for action in ("surfing at sunset", "skiing down a slope", "reading a newspaper", "baking bread",
                   "riding a tram")
]


# ---------------------------------------------------------------------------------------------- maths
def percentile(values: Iterable[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation between closest ranks (numpy's default).

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    >>> percentile([5.0], 95)
    5.0
    """
    data = sorted(values)
    if not data:
        return math.nan
    k = (len(data) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def ideal_makespan(durations: Sequence[float], slots: int) -> float:
    """Makespan of a perfect ``slots``-wide scheduler: list scheduling in submission order, no latency.

    Each job, in order, starts the instant the earliest slot frees and holds it for its duration.

    >>> ideal_makespan([3, 3, 3, 1], 2)
    6.0
    >>> ideal_makespan([1, 1, 1], 8)
    1.0
    """
    free = [0.0] * slots
    heapq.heapify(free)
    end = 0.0
    for duration in durations:
        start = heapq.heappop(free)
        finish = start + duration
        end = max(end, finish)
        heapq.heappush(free, finish)
    return end


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of ``(start, end)`` intervals open at one instant.

    >>> peak_overlap([(0, 2), (1, 3), (2.5, 4)])
    2
    """
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def fmt_s(value: float) -> str:
    return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"


def print_table(title: str, rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """Print an aligned text table (first column left-aligned, others right-aligned)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
        print("  " + line)
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def machine_note() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {os.cpu_count()} cores, load avg {load:.2f} (shared with other work, figures are noisy); "
            f"Python {platform.python_version()}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def finish(checks: dict[str, bool], *, check: bool) -> int:
    """Print the target verdicts; the exit code is non-zero only with ``--check`` and a miss."""
    print()
    for name, ok in checks.items():
        print(f"  target {verdict(ok)}: {name}")
    return 1 if check and not all(checks.values()) else 0


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def base_parser(description: str) -> argparse.ArgumentParser:
    """The common options; also makes SIGTERM unwind (``finally`` blocks stop servers and kernels)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smaller run that takes < 20 s")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser


@contextlib.contextmanager
def temp_dir(prefix: str = "sora_nb-bench-") -> Iterator[Path]:
    """A temporary directory, removed at the end whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- children
def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # PR_SET_PDEATHSIG: the child gets SIGTERM when the benchmark dies, even by SIGKILL.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def popen(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a child that dies with us (Linux) in its own process group."""
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    return subprocess.Popen(list(args), preexec_fn=preexec, **kwargs)


def stop(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Terminate one child we started (by its own handle), then kill it if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class LoopbackServer:
    """A server in a child process on ``127.0.0.1``; the child prints ``LISTENING <port>`` when bound.

    >>> with LoopbackServer.simulator(seed=1, time_scale=0.02) as server:  # doctest: +SKIP
    ...     server.base_url
    'http://127.0.0.1:41234/v1'
    """

    def __init__(self, args: Sequence[str], *, ready_path: str, timeout: float = 30.0) -> None:
        self.args = list(args)
        self.ready_path = ready_path
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self._stderr: list[str] = []

    @classmethod
    def simulator(cls, **options: Any) -> LoopbackServer:
        args = [PYTHON, str(HERE / "_common.py"), "simulator"]
        for name, value in options.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        return cls(args, ready_path="/_simulator/audit")

    @classmethod
    def files(cls, *, size_mb: int, directory: Path) -> LoopbackServer:
        args = [PYTHON, str(HERE / "_common.py"), "files", "--size-mb", str(size_mb), "--dir", str(directory)]
        return cls(args, ready_path="/health")

    @property
    def origin(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        import httpx

        self.proc = popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            # stderr is drained in a thread so a chatty child can never block on a full pipe.
            threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
            deadline = time.monotonic() + self.timeout
            line = self._read_line(deadline)
            if not line.startswith("LISTENING "):
                raise RuntimeError(f"server did not start: {line!r} {''.join(self._stderr)[-2000:]}")
            self.port = int(line.split()[1])
            while True:
                try:
                    if httpx.get(self.origin + self.ready_path, timeout=2.0).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"server not ready on {self.origin}: {''.join(self._stderr)[-2000:]}")
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise

    def _read_line(self, deadline: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        return result[0].strip() if result else ""

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self._stderr.append(line)
            del self._stderr[:-200]

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()

    def get_json(self, path: str) -> Any:
        import httpx

        response = httpx.get(self.origin + path, timeout=30.0)
        response.raise_for_status()
        return response.json()

    def audit(self) -> list[dict[str, Any]]:
        """``GET /_simulator/audit``: every accepted create with its planned timing."""
        return list(self.get_json("/_simulator/audit"))

    def counts(self) -> dict[str, Any]:
        """``GET /_bench/counts``: requests seen by the simulator, per route kind and per video."""
        return dict(self.get_json("/_bench/counts"))


# ---------------------------------------------------------------------------------------------- helpers
def job_duration(entry: dict[str, Any]) -> float:
    """A job's time in the service from its create: queue + generation (from the simulator's plan)."""
    return float(entry["completed_at_s"]) - float(entry["created_at_s"])


def ideal_from_audit(audit: list[dict[str, Any]], order: Sequence[str], slots: int) -> float:
    """The ideal makespan of the audited jobs, taken in the client's submission ``order`` (video ids)."""
    by_id = {entry["id"]: entry for entry in audit}
    return ideal_makespan([job_duration(by_id[video_id]) for video_id in order], slots)


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else math.nan


# ---------------------------------------------------------------------------------------------- the two clients
API_KEY = "sk-bench"


def run_sora_nb(server: LoopbackServer, axes: dict[str, Any], *, concurrency: int, time_scale: float,
                run_root: Path, start_only: bool = False) -> dict[str, Any]:
    """A sweep through sora_nb ("openai-compatible" at the loopback simulator), until every file is on disk.

    The poll policy is the default one scaled by ``time_scale`` (connect() does that by itself only for
    the "simulator" profile). ``start_only``: give ``max_concurrency`` only to ``sweep.start()``.
    """
    import sora_nb
    from sora_nb import PollPolicy

    # The clock starts before the client is made, for both sides: each side's set-up counts.
    t0 = time.time()
    client = sora_nb.connect(
        "openai-compatible", base_url=server.base_url, api_key=API_KEY, run_root=run_root,
        poll_policy=PollPolicy().scaled(time_scale),
        max_concurrency=None if start_only else concurrency,
    )
    try:
        sweep = client.sweep(**axes)
        run = sweep.start(max_concurrency=concurrency)
        run.wait(timeout=600)
        wall = time.time() - t0
        jobs = sorted(run.jobs, key=lambda job: job._record.seq)
        failed = [job for job in jobs if job.status != "completed" or job.video_path is None]
        if failed:
            raise RuntimeError(f"sora_nb: {len(failed)} jobs did not complete: {failed[:3]}")
        df = run.to_dataframe()
        assert len(df) == len(jobs)
        return {
            "wall": wall, "t0": t0,
            "order": [job.remote_id for job in jobs],
            # When the client noticed completion (the ledger's completed_at) and when the slot freed.
            "detected": {job.remote_id: job._record.completed_at for job in jobs},
            "downloaded": {job.remote_id: job._record.downloaded_at for job in jobs},
            "client_polls": sum(job._record.polls for job in jobs),
            "specs": [{"prompt": j.prompt, "model": j.model, "size": j.size, "seconds": j.seconds} for j in jobs],
        }
    finally:
        client.close()


def run_openai(server: LoopbackServer, specs: list[dict[str, str]], *, concurrency: int, poll_interval_ms: int,
               out_dir: Path) -> dict[str, Any]:
    """The same jobs through the official SDK: ``create_and_poll`` under a semaphore, then
    ``download_content`` written to disk (outside the semaphore, as sora_nb downloads outside its slots)."""
    from openai import AsyncOpenAI

    out_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> dict[str, Any]:
        t0 = time.time()
        client = AsyncOpenAI(base_url=server.base_url, api_key=API_KEY)
        slots = asyncio.Semaphore(concurrency)
        order: list[str | None] = [None] * len(specs)
        detected: dict[str, float] = {}
        downloaded: dict[str, float] = {}

        async def one(i: int, spec: dict[str, str]) -> None:
            async with slots:
                video = await client.videos.create_and_poll(poll_interval_ms=poll_interval_ms, **spec)  # type: ignore[arg-type]
                detected[video.id] = time.time()
            order[i] = video.id
            if video.status != "completed":
                raise RuntimeError(f"baseline job {video.id} ended {video.status}")
            content = await client.videos.download_content(video.id)
            content.write_to_file(out_dir / f"{video.id}.mp4")
            downloaded[video.id] = time.time()

        try:
            await asyncio.gather(*(one(i, spec) for i, spec in enumerate(specs)))
            wall = time.time() - t0
        finally:
            await client.close()
        return {"wall": wall, "t0": t0, "order": order, "detected": detected, "downloaded": downloaded}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks the Sora helpers deprecated
        return asyncio.run(main())


# ---------------------------------------------------------------------------------------------- child mains
class _Counting:
    """ASGI middleware counting requests by kind (create, retrieve, content, list, other) and per video."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.kinds: dict[str, int] = {}
        self.retrieves: dict[str, int] = {}
        self.contents: dict[str, int] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == "/_bench/counts":
                body = json.dumps({"kinds": self.kinds, "retrieves": self.retrieves,
                                   "contents": self.contents}).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
            parts = path.strip("/").split("/")
            kind = "other"
            if parts[:2] == ["v1", "videos"]:
                if len(parts) == 2:
                    kind = "create" if method == "POST" else "list"
                elif len(parts) == 3 and method == "GET":
                    kind = "retrieve"
                    self.retrieves[parts[2]] = self.retrieves.get(parts[2], 0) + 1
                elif len(parts) == 4 and parts[3] == "content":
                    kind = "content"
                    self.contents[parts[2]] = self.contents.get(parts[2], 0) + 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        await self.app(scope, receive, send)


def _serve(app: Any) -> None:
    import socket

    import uvicorn

    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says so, and without it every response that uvicorn writes in two pieces
    # (headers, then body) stalls ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", access_log=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.Server(config).run(sockets=[sock])


def _simulator_main(args: argparse.Namespace) -> None:
    from sora_nb.simulator import SimulatorConfig, create_app

    config = SimulatorConfig(seed=args.seed, time_scale=args.time_scale, cache_dir=args.cache_dir,
                             poll_after_ms=args.poll_after_ms, distinct_renders=args.distinct_renders)
    _serve(_Counting(create_app(config)))


def _files_main(args: argparse.Namespace) -> None:
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, PlainTextResponse
    from starlette.routing import Route

    path = Path(args.dir) / "video.mp4"
    chunk = os.urandom(1 << 20)  # random bytes: nothing on the way can compress them
    with path.open("wb") as out:
        for _ in range(args.size_mb):
            out.write(chunk)

    async def video(request: Any) -> Any:
        return FileResponse(path, media_type="video/mp4")

    async def health(request: Any) -> Any:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/videos/{name}.mp4", video), Route("/health", health)])
    _serve(app)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="_common.py", description="benchmark helper servers (loopback only)")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulator", help="the sora_nb simulator with request counting")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument("--time-scale", type=float, default=1.0)
    sim.add_argument("--cache-dir", default=None)
    sim.add_argument("--poll-after-ms", type=int, default=None)
    sim.add_argument("--distinct-renders", type=int, default=None)
    files = sub.add_parser("files", help="one large file served as video/mp4")
    files.add_argument("--size-mb", type=int, default=20)
    files.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    if args.command == "simulator":
        _simulator_main(args)
    else:
        _files_main(args)


if __name__ == "__main__":
    main()
