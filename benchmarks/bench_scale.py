"""A 10,000-job sweep displayed in a kernel: responsiveness, front-end messages, memory, paging.

A real ipykernel (see ``bench_kernel.py``) runs a sweep of 10,000 jobs on the in-process simulator
(``time_scale`` 0.002, concurrency 200) twice, in the same kernel. The simulator shares 7 renders per
duration among the jobs (``SimulatorConfig(distinct_renders=7)``, made before either sweep): it runs in the
kernel's process, and rendering 10,000 distinct videos (~1 h here) would be measured as the kernel's own work.

* the **baseline**: the sweep alone, nothing displayed;
* **displayed**: the same sweep (a fresh run root, the same seed) with its progress (``run`` as the
  last line of a cell), its gallery (``run.gallery()``) and its results table (``run.table()``) shown.

During each, trivial ``1+1`` cells are timed ``execute_request`` -> ``execute_reply`` (as in
``bench_kernel.py``), and every IOPub message the kernel sends is counted by type and size (the comm
messages are the widgets' traffic to the browser; Jupyter Server drops output above 1000 messages/s
over 3 s). The kernel's peak RSS (``VmHWM``, reset before each sweep through ``/proc/<pid>/clear_refs``)
is read after each. Then, on the finished 10,000-job run, the gallery's Next and Prev, the table's Next
(in run order, then sorted), and its sorts are timed in the kernel through the widgets' own controls
(redraw included), with the bytes a table page sends.

Targets: p95 round trip < 50 ms while the displayed sweep runs; front-end messages bounded (at most a
few per second per widget, none above 1000/s); kernel peak RSS < 300 MB; a page turn of the gallery or
the table < 100 ms.

    .venv/bin/python benchmarks/bench_scale.py [--quick] [--check] [--jobs 10000] [--concurrency 200] [--skip-baseline]
        [--distinct-renders 7] [--no-measure] [--diagnose]
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    API_KEY,
    PROMPTS,
    LoopbackServer,
    base_parser,
    finish,
    fmt_s,
    machine_note,
    percentile,
    print_table,
    temp_dir,
)
from bench_kernel import STALL_PROFILER, STALL_REPORT, Kernel


class Traffic:
    """IOPub messages from the kernel, by type: count, JSON bytes, and comm messages per second."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.nbytes: Counter[str] = Counter()
        self.per_second: Counter[int] = Counter()
        self.start = time.monotonic()

    def drain(self, kernel: Kernel) -> None:
        while True:
            try:
                msg = kernel.kc.get_iopub_msg(timeout=0)
            except queue.Empty:
                return
            kind = msg["msg_type"]
            if kind in ("status", "execute_input", "execute_result", "stream"):
                continue  # the timed cells' own messages
            self.count[kind] += 1
            self.nbytes[kind] += len(json.dumps(msg["content"], default=str)) + sum(
                len(b) for b in msg.get("buffers") or ())
            if kind == "comm_msg":
                self.per_second[int(time.monotonic() - self.start)] += 1


def round_trip(kernel: Kernel, traffic: Traffic, code: str = "1+1") -> float:
    t0 = time.perf_counter()
    msg_id = kernel.kc.execute(code)
    while True:
        reply = kernel.kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    elapsed = time.perf_counter() - t0
    traffic.drain(kernel)
    return elapsed


def sample_until_done(kernel: Kernel, traffic: Traffic, timeout: float) -> tuple[list[float], float]:
    """Time ``1+1`` cells ~20 ms apart until ``run.done``; the round trips and the sweep's wall time."""
    rng = random.Random(1)
    times: list[float] = []
    t0 = time.monotonic()
    last_check = t0
    while True:
        times.append(round_trip(kernel, traffic))
        time.sleep(0.02 * rng.uniform(0.5, 1.5))
        if time.monotonic() - last_check > 1.0:
            last_check = time.monotonic()
            if kernel.run("print(run.done)").strip() == "True":
                return times, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the sweep did not finish in {timeout:.0f} s")


MEMORY = """
import gc, os, time as _gc_time
gc.collect()
# The full collections a sweep triggers, timed: each stops the loop while it walks every object.
_gc_full, _gc_t0 = [], [0.0]
def _gc_timer(phase, info):
    if info["generation"] == 2:
        if phase == "start":
            _gc_t0[0] = _gc_time.perf_counter()
        else:
            _gc_full.append(_gc_time.perf_counter() - _gc_t0[0])
gc.callbacks[:] = [c for c in gc.callbacks if getattr(c, "__name__", "") != "_gc_timer"] + [_gc_timer]
def _status(key):
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
"""


def connect_call(args: Any, run_root: Path, *, measure: bool | None = None) -> str:
    """The ``sora_nb.connect(...)`` the kernel makes: to the in-process simulator (shared renders unless
    ``--distinct-renders 0``), or with ``--server loopback`` to the simulator in a process of its own."""
    measure = not args.no_measure if measure is None else measure
    common = f"run_root={str(run_root)!r}, max_concurrency={args.concurrency}, measure={measure}"
    if args.server_url:
        return (f"sora_nb.connect('openai-compatible', base_url={args.server_url!r}, api_key={API_KEY!r}, "
                f"poll_policy=sora_nb.PollPolicy().scaled({args.time_scale}), {common})")
    distinct = args.distinct_renders or None
    return (f"sora_nb.connect('simulator', simulator=sora_nb.simulator.SimulatorConfig(seed=7, "
            f"time_scale={args.time_scale}, distinct_renders={distinct!r}), {common})")


def start_cell(tmp: Path, name: str, args: Any, *, display: bool) -> str:
    repeats = max(1, args.jobs // (len(PROMPTS) * 2))
    shown = ("from IPython.display import display\n"
             "display(run)\ngallery = run.gallery()\ndisplay(gallery)\ntable = run.table()\ndisplay(table)\n"
             if display else "")
    return (f"client = {connect_call(args, tmp / name)}\n"
            f"run = client.sweep(prompt={PROMPTS!r}, seconds=['4', '8'], repeats={repeats})"
            f".start(max_concurrency={args.concurrency})\n{shown}")


def measure(kernel: Kernel, tmp: Path, name: str, args: Any, *, display: bool) -> dict[str, Any]:
    kernel.run(MEMORY + "open(f'/proc/{os.getpid()}/clear_refs', 'w').write('5')\n"
               "_rss0 = _status('VmRSS')")
    traffic = Traffic()
    t0 = time.perf_counter()
    kernel.run(start_cell(tmp, name, args, display=display))
    start_s = time.perf_counter() - t0
    busy, wall = sample_until_done(kernel, traffic, timeout=1800)
    time.sleep(1.5)  # the widgets' last redraws
    traffic.drain(kernel)
    memory = json.loads(kernel.run("import json; print(json.dumps([_rss0, _status('VmHWM'), _status('VmRSS')]))"))
    counts = kernel.run("print(dict(run.counts()))").strip()
    gcs = json.loads(kernel.run("print(json.dumps(_gc_full)); _gc_full.clear()"))
    # How the runner paced its requests to keep the loop's passes short (sora_nb/_pace.py).
    pacer = kernel.run("_p = client._runner.pacer\n"
                       "print(f'window {_p.window:.1f} of {_p.ceiling}, cut {_p.cuts} times')")
    return {"busy": busy, "wall": wall, "start": start_s, "traffic": traffic, "memory": memory, "counts": counts,
            "pacer": pacer.strip(), "gcs": gcs}


PAGING = """
import json as _json, time as _time
def _timed(action):
    t0 = _time.perf_counter(); action(); return _time.perf_counter() - t0
_sizes = []
def _sent(widget):
    return len(_json.dumps(widget.get_state(), default=str))
_turns = [_timed(lambda: (gallery.next_button.click(), gallery.refresh())) for _ in range(5)]
_back = [_timed(lambda: (gallery.prev_button.click(), gallery.refresh())) for _ in range(2)]
_pages = [_timed(lambda: (table.next_button.click(), table.refresh())) for _ in range(5)]
_sorts = [_timed(lambda: (setattr(table.sort_by, "value", key), table.refresh()))
          for key in ("total_s", "model", "prompt")]
_sorted_pages = [_timed(lambda: (table.next_button.click(), table.refresh())) for _ in range(5)]
_sorted_pages += [_timed(lambda: (table.prev_button.click(), table.refresh())) for _ in range(2)]
_summary = table.summary.value
_sorts.append(_timed(lambda: (setattr(table.sort_by, "value", "(run order)"), table.refresh())))
print(_json.dumps({"turns": _turns + _back, "sorts": _sorts, "pages": _pages, "sorted_pages": _sorted_pages,
                   "page": gallery.page_label.value, "table_bytes": _sent(table.output), "table_summary": _summary}))
"""


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=None, help="jobs (default 10,000; 1,000 with --quick)")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=0.002)
    parser.add_argument("--distinct-renders", type=int, default=7,
                        help="videos the simulator renders per duration, shared by the jobs (default 7: rendering "
                        "10,000 distinct videos takes ~1 h here and would be measured as the kernel's; odd, so "
                        "that the sweep's alternating 4 s and 8 s jobs use all of them; 0: every job its own)")
    parser.add_argument("--server", choices=("in-process", "loopback"), default="in-process",
                        help="the simulator in the kernel's process (connect('simulator'), default), or in a "
                        "process of its own on 127.0.0.1 (its request handling then not on the kernel's loop)")
    parser.add_argument("--no-measure", action="store_true", help="connect(measure=False): no video metrics")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="no undisplayed sweep (it alone takes most of a 10,000-job run); the idle kernel stays")
    parser.add_argument("--pace-target-ms", type=float, default=None,
                        help="how long a callback may wait for its turn before the runner paces its requests "
                             "(sora_nb._pace.TARGET_S; default: the library's)")
    parser.add_argument("--diagnose", action="store_true",
                        help="record what blocks the kernel's loop for > 30 ms during the displayed sweep")
    args = parser.parse_args()
    args.jobs = args.jobs or (1000 if args.quick else 10_000)
    print(f"bench_scale: {args.jobs} jobs on the simulator (time_scale {args.time_scale}, concurrency "
          f"{args.concurrency}) in an ipykernel, without and with its progress, gallery and table displayed")
    renders = f"{args.distinct_renders} shared renders per duration" if args.distinct_renders else "a video per job"
    print(f"  simulator ({args.server}): {renders}; video metrics {'off' if args.no_measure else 'on'}")
    print("  " + machine_note())

    with temp_dir() as tmp, contextlib.ExitStack() as stack:
        args.server_url = None
        if args.server == "loopback":
            server = stack.enter_context(LoopbackServer.simulator(
                seed=7, time_scale=args.time_scale, distinct_renders=args.distinct_renders or None))
            args.server_url = server.base_url
        kernel = Kernel(tmp)
        try:
            kernel.run("import sora_nb, sora_nb.ui" + ("" if args.server_url else ", sora_nb.simulator"))
            if args.pace_target_ms is not None:
                kernel.run(f"import sora_nb._pace; sora_nb._pace.TARGET_S = {args.pace_target_ms / 1000}")
            print("  pacing target: " + kernel.run("import sora_nb._pace; print(sora_nb._pace.TARGET_S * 1000)").strip()
                  + " ms")
            idle_traffic = Traffic()
            for _ in range(10):
                round_trip(kernel, idle_traffic)
            idle = [round_trip(kernel, idle_traffic) for _ in range(100)]
            # The shared renders made once (the simulator caches them in the process), so that neither
            # measured sweep pays for them: each duration's --distinct-renders videos.
            # (awaited: a blocking wait in a kernel would patch its loop with nest-asyncio2 for good)
            warm = args.distinct_renders or len(PROMPTS)
            kernel.run(f"_c = {connect_call(args, tmp / 'warm', measure=False)}\n"
                       f"await _c.sweep(prompt=[str(i) for i in range({warm})], seconds=['4', '8'])"
                       ".start(max_concurrency=50)\n"
                       "await _c.aclose()", timeout=900)
            if args.skip_baseline:
                plain = {"busy": [float("nan")], "wall": float("nan"), "start": float("nan"), "traffic": Traffic(),
                         "memory": [float("nan")] * 3, "counts": "", "gcs": []}
            else:
                plain = measure(kernel, tmp, "plain", args, display=False)
                kernel.run("await client.aclose()")  # not close(): a blocking call in a kernel patches its loop
            if args.diagnose:
                kernel.run(STALL_PROFILER)
            shown = measure(kernel, tmp, "shown", args, display=True)
            stalls = kernel.run(STALL_REPORT) if args.diagnose else ""
            paging = json.loads(kernel.run(PAGING).strip().splitlines()[-1])
            kernel.run("gallery.close(); table.close()\nawait client.aclose()")
        finally:
            kernel.close()

    rows = []
    for label, p in (("p50", 50), ("p95", 95), ("p99", 99)):
        rows.append((f"round trip {label}", fmt_s(percentile(shown["busy"], p)), fmt_s(percentile(plain["busy"], p)),
                     fmt_s(percentile(idle, p))))
    rows.append(("round trip max", fmt_s(max(shown["busy"])), fmt_s(max(plain["busy"])), fmt_s(max(idle))))
    rows.append(("cells timed", len(shown["busy"]), len(plain["busy"]), len(idle)))
    rows.append(("sweep wall time", f"{shown['wall']:.1f} s", f"{plain['wall']:.1f} s", ""))
    rows.append(("cell that started it", fmt_s(shown["start"]), fmt_s(plain["start"]), ""))
    for run in (shown, plain):
        rss0, hwm, _rss = run["memory"]
        run["growth"] = hwm
        run["mem"] = f"{rss0:.0f} -> peak {hwm:.0f} MB"
    rows.append(("kernel RSS before -> peak", shown["mem"], plain["mem"], ""))
    traffic: Traffic = shown["traffic"]
    comm_per_s = max(traffic.per_second.values(), default=0)
    rows.append(("comm messages (to the widgets)", traffic.count["comm_msg"], plain["traffic"].count["comm_msg"], ""))
    rows.append(("comm bytes", f"{traffic.nbytes['comm_msg'] / 1e6:.2f} MB",
                 f"{plain['traffic'].nbytes['comm_msg'] / 1e6:.2f} MB", ""))
    rows.append(("comm messages, busiest second", comm_per_s, "", ""))
    rows.append(("display updates (static fallbacks)", traffic.count["update_display_data"], "", ""))
    print_table("results", rows, ("", "displayed", "baseline: not displayed", "idle kernel"))
    print(f"  final counts: {shown['counts']}")
    print(f"  requests paced (displayed sweep, at its end): {shown['pacer']}")
    for name, result in (("displayed", shown), ("baseline", plain)):
        if result.get("gcs"):
            gcs = result["gcs"]
            print(f"  full garbage collections ({name}): {len(gcs)}, {fmt_s(sum(gcs))} in all, "
                  f"longest {fmt_s(max(gcs))}")
    print(f"  gallery Next (redraw included): median {fmt_s(percentile(paging['turns'], 50))}, "
          f"max {fmt_s(max(paging['turns']))} ({paging['page']})")
    print(f"  gallery Next x5, Prev x2 (redraw included): each {', '.join(fmt_s(t) for t in paging['turns'])}")
    print(f"  table Next x5 in run order: each {', '.join(fmt_s(t) for t in paging['pages'])}")
    print(f"  table sort by total_s, model, prompt, run order: each {', '.join(fmt_s(t) for t in paging['sorts'])}; "
          f"its HTML {paging['table_bytes'] / 1e3:.0f} kB")
    print(f"  table Next x5, Prev x2 sorted by prompt: each {', '.join(fmt_s(t) for t in paging['sorted_pages'])} "
          f"({paging['table_summary']})")
    if args.diagnose:
        print("\n  where the kernel's loop was blocked > 30 ms in the displayed sweep (10 ms a sample):")
        print("\n".join("  " + line for line in stalls.splitlines()) or "  (nothing)")
    p95 = percentile(shown["busy"], 95)
    return finish({
        f"p95 round trip while displayed {fmt_s(p95)} < 50 ms": p95 < 0.05,
        f"busiest second {comm_per_s} comm messages < 1000": comm_per_s < 1000,
        f"kernel peak RSS {shown['growth']:.0f} MB < 300 MB": shown["growth"] < 300,
        f"gallery page turn {fmt_s(max(paging['turns']))} < 100 ms": max(paging["turns"]) < 0.1,
        f"table page turn {fmt_s(max(paging['pages'] + paging['sorted_pages']))} < 100 ms":
            max(paging["pages"] + paging["sorted_pages"]) < 0.1,
    }, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
