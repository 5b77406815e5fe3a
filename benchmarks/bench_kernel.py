"""Kernel responsiveness while a sweep runs on the kernel's own event loop.

A real ipykernel is started with ``jupyter_client.KernelManager`` (a kernelspec written to the temp dir
that runs this very interpreter). First, trivial cells (``1+1``) are timed from ``execute_request`` sent
to ``execute_reply`` received with nothing else going on: the baseline. Then one cell starts a sweep
(default 200 jobs, concurrency 8) on the in-process simulator::

    client = sora_nb.connect("simulator", seed=7, time_scale=..., run_root=...)
    run = client.sweep(prompt=[...], seconds=["4", "8"], repeats=4).start(max_concurrency=8)

which returns at once; the jobs (create, poll, the simulator's rendering, download, ledger writes) run
as tasks on the kernel's loop while the same trivial cells are timed again, until the sweep is done.
The kernel is always shut down at the end, on error too.

Target: p95 round trip < 50 ms while the sweep runs.

    .venv/bin/python benchmarks/bench_kernel.py [--quick] [--check] [--time-scale 0.02]
"""

from __future__ import annotations

import json
import queue
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PROMPTS,
    PYTHON,
    base_parser,
    finish,
    fmt_s,
    machine_note,
    percentile,
    print_table,
    temp_dir,
)


class Kernel:
    """A kernel started from a kernelspec that runs this interpreter; ``close()`` always shuts it down."""

    def __init__(self, tmp: Path) -> None:
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        spec_dir = tmp / "kernels" / "sora-nb-bench"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": [PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "sora_nb bench", "language": "python",
        }))
        self.km = KernelManager(kernel_name="sora-nb-bench",
                                kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp / "kernels")]))
        self.kc: Any = None
        self.log_path = tmp / "kernel.log"
        self._log = self.log_path.open("wb")  # the kernel's own stdout/stderr (shown on failure)
        self.km.start_kernel(cwd=str(tmp), stdout=self._log, stderr=self._log)
        try:
            self.kc = self.km.client()
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=60)
        except BaseException:
            self.close()
            raise

    def run(self, code: str, timeout: float = 120.0) -> str:
        """Execute a set-up cell; return its stdout; raise on an error."""
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"cell failed: {code[:80]!r}\n{''.join(out)[-3000:]}\n{self.log()}")
        return "".join(out)

    def round_trip(self, code: str = "1+1", timeout: float = 30.0) -> float:
        """Seconds from sending ``execute_request`` to receiving its ``execute_reply``."""
        t0 = time.perf_counter()
        msg_id = self.kc.execute(code)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                elapsed = time.perf_counter() - t0
                break
        self.drain_iopub()  # execute_input, execute_result, status: read, but not timed
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{code!r} failed in the kernel")
        return elapsed

    def drain_iopub(self) -> None:
        # Not iopub_channel.get_msgs(): in jupyter_client 8.10 it polls with no timeout and blocks.
        while True:
            try:
                self.kc.get_iopub_msg(timeout=0)
            except queue.Empty:
                return

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        try:
            if self.kc is not None:
                self.kc.stop_channels()
        finally:
            try:
                if self.km.has_kernel:
                    try:
                        self.km.shutdown_kernel(now=False)
                    except Exception:
                        self.km.shutdown_kernel(now=True)
            finally:
                self._log.close()


# --diagnose: a watchdog thread in the kernel that, whenever the loop has not ticked for 30 ms, records
# the main thread's stack (a poor man's sampling profiler of what blocks the loop; py-spy is not here).
STALL_PROFILER = """
import asyncio as _a, collections as _c, sys as _s, threading as _t, time as _time, traceback as _tb
_loop, _main, _beat = _a.get_running_loop(), _t.main_thread().ident, [_time.perf_counter()]
def _tick():
    _beat[0] = _time.perf_counter()
    _loop.call_later(0.002, _tick)
_loop.call_soon(_tick)
_stalls, _stall_stop = _c.Counter(), _t.Event()
def _watch():
    while not _stall_stop.is_set():
        _time.sleep(0.01)
        if _time.perf_counter() - _beat[0] > 0.03:
            frames = _tb.extract_stack(_s._current_frames().get(_main))
            frames = [f for f in frames if "/asyncio/" not in f.filename and "/tornado/" not in f.filename][-6:]
            _stalls[" <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))] += 1
_t.Thread(target=_watch, daemon=True).start()
"""
STALL_REPORT = """
_stall_stop.set()
for _k, _n in _stalls.most_common(12):
    print(f"{_n * 10:6d} ms  {_k}")
"""


def sample(kernel: Kernel, *, count: int | None, until: Any = None, gap: float = 0.02) -> list[float]:
    """Time ``1+1`` cells, ``gap`` (jittered) apart, ``count`` of them or until ``until()`` is true."""
    rng = random.Random(1)
    times: list[float] = []
    last_check = time.monotonic()
    while count is None or len(times) < count:
        times.append(kernel.round_trip())
        time.sleep(gap * rng.uniform(0.5, 1.5))
        if until is not None and time.monotonic() - last_check > 1.0:
            last_check = time.monotonic()
            if until():
                break
    return times


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=None, help="simulator speed (default 0.02; 0.015 quick)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs (default 200; 40 with --quick)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--diagnose", action="store_true",
                        help="record what blocks the kernel's loop for > 30 ms during the sweep (stall profiler)")
    args = parser.parse_args()
    time_scale = args.time_scale or (0.015 if args.quick else 0.02)
    n_jobs = args.jobs or (40 if args.quick else 200)
    repeats = 4
    n_prompts = max(1, n_jobs // (2 * repeats))
    baseline_cells = 50 if args.quick else 200
    print(f"bench_kernel: {n_prompts * 2 * repeats} jobs on the in-process simulator (time_scale {time_scale}, "
          f"concurrency {args.concurrency}) running on an ipykernel's loop; '1+1' cells timed "
          "execute_request -> execute_reply, ~20 ms apart")
    print("  " + machine_note())

    with temp_dir() as tmp:
        kernel = Kernel(tmp)
        try:
            info = kernel.run("import sys, ipykernel; print(sys.executable, ipykernel.__version__)").split()
            print(f"  kernel: {info[0]}, ipykernel {info[1]}")
            kernel.run("import sora_nb")
            sample(kernel, count=10)  # warm-up
            idle = sample(kernel, count=baseline_cells)

            if args.diagnose:
                kernel.run(STALL_PROFILER)
            t0 = time.perf_counter()
            kernel.run(
                f"client = sora_nb.connect('simulator', seed=7, time_scale={time_scale}, "
                f"run_root={str(tmp / 'runs')!r})\n"
                f"run = client.sweep(prompt={PROMPTS[:n_prompts]!r}, seconds=['4', '8'], repeats={repeats})"
                f".start(max_concurrency={args.concurrency})\n"
            )
            start_cell = time.perf_counter() - t0

            def sweep_done() -> bool:
                return kernel.run("print(run.done)").strip() == "True"

            busy = sample(kernel, count=None, until=sweep_done)
            sweep_wall = time.perf_counter() - t0
            deadline = time.monotonic() + 300
            while not sweep_done():
                if time.monotonic() > deadline:
                    raise RuntimeError("the sweep did not finish in 300 s")
                time.sleep(0.5)
            counts = kernel.run("print(dict(run.counts()))").strip()
            stalls = kernel.run(STALL_REPORT) if args.diagnose else ""
            kernel.run("await client.aclose()")
        finally:
            kernel.close()

    rows = []
    for label, p in (("p50", 50), ("p95", 95), ("p99", 99)):
        a, b = percentile(busy, p), percentile(idle, p)
        rows.append((f"round trip {label}", fmt_s(a), fmt_s(b), f"{a / b:.2f}"))
    rows.append(("round trip max", fmt_s(max(busy)), fmt_s(max(idle)), f"{max(busy) / max(idle):.2f}"))
    rows.append(("cells timed", len(busy), len(idle), ""))
    rows.append(("cells over 50 ms", sum(t > 0.05 for t in busy), sum(t > 0.05 for t in idle), ""))
    print_table("results (ratio column: during sweep / idle kernel)", rows, ("", "during sweep", "idle", "ratio"))
    print(f"  the cell that started the sweep took {fmt_s(start_cell)}; the sweep ran ~{sweep_wall:.1f} s; "
          f"final job counts {counts}")
    if args.diagnose:
        print("\n  where the kernel's loop was blocked > 30 ms (10 ms per sample; innermost frame first):")
        print("\n".join("  " + line for line in stalls.splitlines()) or "  (nothing)")
    p95 = percentile(busy, 95)
    return finish({f"p95 round trip during the sweep {fmt_s(p95)} < 50 ms": p95 < 0.05}, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
