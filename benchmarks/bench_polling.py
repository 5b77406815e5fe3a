"""Adaptive polling: status requests per job and how late completion is noticed, next to fixed 1 s polling.

The same jobs (default 48: prompts x seconds 4/8 x 3 repeats, concurrency 8) run twice against the
loopback simulator, each time a fresh server with the same seed:

* sora_nb with its default :class:`PollPolicy` scaled by ``time_scale`` (the "openai-compatible"
  profile does not scale it by itself);
* the baseline, polling at a fixed 1 s scaled by the same ``time_scale``: the official SDK's
  ``create_and_poll(poll_interval_ms=1000 * time_scale)``.

Status requests (``GET /v1/videos/{id}``) are counted **at the simulator** (a counting ASGI middleware
in front of it, see ``_common.py``); sora_nb's own count (``job._record.polls``) is shown as a cross-check.
Detection delay = when the client noticed (sora_nb: the ledger's ``completed_at``; baseline: when
``create_and_poll`` returned) minus the simulator's planned ``completed_at_s`` from its audit; it is
also given as a share of the job's time in the service (queue + generation). Both scale with
``time_scale``, so the shares and request counts hold for real-speed jobs too.

Target: >= 5x fewer status requests per job than the baseline, and a median detection delay under
10 % of the job's duration.

    .venv/bin/python benchmarks/bench_polling.py [--quick] [--check] [--time-scale 0.04]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PROMPTS,
    LoopbackServer,
    base_parser,
    finish,
    fmt_s,
    job_duration,
    machine_note,
    median,
    percentile,
    print_table,
    run_openai,
    run_sora_nb,
    temp_dir,
)


def analyse(result: dict[str, Any], server: LoopbackServer) -> dict[str, Any]:
    audit = {entry["id"]: entry for entry in server.audit()}
    counts = server.counts()
    order = result["order"]
    delays = [result["detected"][vid] - audit[vid]["completed_at_s"] for vid in order]
    durations = [job_duration(audit[vid]) for vid in order]
    shares = [d / t for d, t in zip(delays, durations, strict=True)]
    per_job = [counts["retrieves"].get(vid, 0) for vid in order]
    return {
        "status_per_job": sum(per_job) / len(order),
        "status_max": max(per_job),
        "client_polls": result.get("client_polls"),
        "delay_median": median(delays),
        "delay_p90": percentile(delays, 90),
        "delay_max": max(delays),
        "share_median": median(shares),
        "share_p90": percentile(shares, 90),
        "duration_median": median(durations),
        "n": len(order),
    }


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=None,
                        help="simulator speed (default 0.04; 0.02 with --quick)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs (default 48; 16 with --quick)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    time_scale = args.time_scale or (0.02 if args.quick else 0.04)
    n_jobs = args.jobs or (16 if args.quick else 48)
    repeats = 2 if args.quick else 3
    n_prompts = max(1, n_jobs // (2 * repeats))
    axes = {"prompt": PROMPTS[:n_prompts], "seconds": ["4", "8"], "repeats": repeats}
    interval_ms = max(1, round(1000 * time_scale))

    print(f"bench_polling: {n_prompts * 2 * repeats} jobs, concurrency {args.concurrency}, seed {args.seed}, "
          f"time_scale {time_scale}")
    print(f"  sora_nb: PollPolicy().scaled({time_scale}) = {_policy(time_scale)}")
    print(f"  baseline: fixed 1 s polling scaled = {interval_ms} ms (openai SDK create_and_poll(poll_interval_ms="
          f"{interval_ms}))")
    print("  status requests counted at the simulator (counting middleware); detection delay from its audit")
    print("  " + machine_note())

    with temp_dir() as tmp:
        with LoopbackServer.simulator(seed=args.seed, time_scale=time_scale, cache_dir=tmp / "cache-a") as server:
            raw = run_sora_nb(server, axes, concurrency=args.concurrency, time_scale=time_scale, run_root=tmp / "runs")
            ours = analyse(raw, server)
        with LoopbackServer.simulator(seed=args.seed, time_scale=time_scale, cache_dir=tmp / "cache-b") as server:
            raw = run_openai(server, raw["specs"], concurrency=args.concurrency, poll_interval_ms=interval_ms,
                             out_dir=tmp / "openai")
            base = analyse(raw, server)

    fewer = base["status_per_job"] / ours["status_per_job"]
    rows = [
        ("status requests per job (at the simulator)", f"{ours['status_per_job']:.2f}", f"{base['status_per_job']:.2f}",
         f"{ours['status_per_job'] / base['status_per_job']:.3f} ({fewer:.1f}x fewer)"),
        ("status requests, most for one job", ours["status_max"], base["status_max"], ""),
        ("sora_nb's own count (job._record.polls) per job", f"{ours['client_polls'] / ours['n']:.2f}", "", ""),
        ("job duration in the service, median", fmt_s(ours["duration_median"]), fmt_s(base["duration_median"]), ""),
        ("detection delay, median", fmt_s(ours["delay_median"]), fmt_s(base["delay_median"]),
         f"{ours['delay_median'] / base['delay_median']:.2f}"),
        ("detection delay, p90", fmt_s(ours["delay_p90"]), fmt_s(base["delay_p90"]), ""),
        ("detection delay, max", fmt_s(ours["delay_max"]), fmt_s(base["delay_max"]), ""),
        ("detection delay / job duration, median", f"{100 * ours['share_median']:.2f} %",
         f"{100 * base['share_median']:.2f} %", ""),
        ("detection delay / job duration, p90", f"{100 * ours['share_p90']:.2f} %", f"{100 * base['share_p90']:.2f} %",
         ""),
        ("detection delay, median, / time_scale (real-speed equivalent)", fmt_s(ours["delay_median"] / time_scale),
         fmt_s(base["delay_median"] / time_scale), ""),
    ]
    print_table("results (ratio column: sora_nb / baseline)", rows, ("", "sora_nb", "baseline", "ratio"))
    checks = {
        f"{fewer:.1f}x fewer status requests per job (>= 5x)": fewer >= 5.0,
        f"median detection delay {100 * ours['share_median']:.2f} % of the job's duration (< 10 %)":
            ours["share_median"] < 0.10,
    }
    return finish(checks, check=args.check)


def _policy(time_scale: float) -> str:
    from sora_nb import PollPolicy

    p = PollPolicy().scaled(time_scale)
    return f"first {fmt_s(p.first)}, floor {fmt_s(p.floor)}, ceiling {fmt_s(p.ceiling)}, lead {p.lead}"


if __name__ == "__main__":
    sys.exit(main())
