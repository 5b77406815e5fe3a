"""How close a sweep through sora_nb comes to a perfect scheduler, next to the official openai SDK.

A sweep of N jobs (default 200: 25 prompts x seconds 4/8 x 4 repeats) runs at concurrency 8 against
the simulator served by uvicorn on loopback (profile "openai-compatible"), until every video is on
disk. The simulator's audit gives each job's planned queue + generation time; the *ideal makespan* is
what a perfect 8-slot scheduler would take with those durations (list scheduling in submission order,
no latency, no download). Reported: wall time / ideal for sora_nb and for the baseline, which sends
the same jobs through ``AsyncOpenAI.videos.create_and_poll`` under ``asyncio.Semaphore(8)`` and then
``download_content`` to disk, against a fresh simulator with the same seed.

Target: sora_nb within 5 % of ideal (ratio <= 1.05) and no slower than the baseline.

    .venv/bin/python benchmarks/bench_scheduling.py [--quick] [--check] [--time-scale 0.02]
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
    ideal_from_audit,
    machine_note,
    median,
    peak_overlap,
    percentile,
    print_table,
    run_openai,
    run_sora_nb,
    temp_dir,
)


def analyse(name: str, result: dict[str, Any], server: LoopbackServer, concurrency: int) -> dict[str, Any]:
    audit = server.audit()
    counts = server.counts()
    by_id = {entry["id"]: entry for entry in audit}
    order = result["order"]
    if len(audit) != len(order):
        raise RuntimeError(f"{name}: the simulator accepted {len(audit)} creates for {len(order)} jobs")
    ideal = ideal_from_audit(audit, order, concurrency)
    delays = [result["detected"][vid] - by_id[vid]["completed_at_s"] for vid in order]
    slots = [(by_id[vid]["created_at_s"], result["detected"][vid]) for vid in order]
    # Slot refill gap: from a slot freeing (completion noticed) to the next create reaching the server.
    releases = sorted(result["detected"].values())
    creates = sorted(entry["created_at_s"] for entry in audit)
    gaps = [c - r for c, r in zip(creates[concurrency:], releases, strict=False)]
    return {
        **result,
        "ideal": ideal,
        "ratio": result["wall"] / ideal,
        # When the last job finished on the server, from the start: scheduling gaps show here.
        "server_span": max(e["completed_at_s"] for e in audit) - result["t0"],
        "delay_median": median(delays),
        "delay_mean": sum(delays) / len(delays),
        "delay_p90": percentile(delays, 90),
        "delay_max": max(delays),
        "tail": result["t0"] + result["wall"] - max(result["detected"].values()),
        "start": creates[0] - result["t0"],
        "gap_median": median(gaps),
        "gap_mean": sum(gaps) / max(1, len(gaps)),
        "peak": peak_overlap(slots),
        "status_per_job": counts["kinds"].get("retrieve", 0) / len(order),
        "requests": sum(counts["kinds"].values()),
        "mean_job": sum(e["completed_at_s"] - e["created_at_s"] for e in audit) / len(audit),
    }


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=None,
                        help="simulator speed (default 0.02; 0.015 with --quick): a 4 s clip takes ~60 s x this")
    parser.add_argument("--jobs", type=int, default=None, help="jobs in the sweep (default 200; 32 with --quick)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start-only", action="store_true",
                        help="give max_concurrency only to sweep.start(), not to connect() (shows the client cap)")
    args = parser.parse_args()
    time_scale = args.time_scale or (0.015 if args.quick else 0.02)
    n_jobs = args.jobs or (32 if args.quick else 200)
    repeats = 4
    n_prompts = max(1, n_jobs // (2 * repeats))
    axes = {"prompt": PROMPTS[:n_prompts], "seconds": ["4", "8"], "repeats": repeats}
    poll_interval_ms = max(1, round(1000 * time_scale))

    print(f"bench_scheduling: {n_prompts * 2 * repeats} jobs (prompts x seconds 4/8 x {repeats} repeats), "
          f"concurrency {args.concurrency}, simulator seed {args.seed}, time_scale {time_scale} "
          f"(a 4 s sora-2 clip: ~{60 * time_scale:.2f} s + queue)")
    print(f"  sora_nb: connect('openai-compatible', poll_policy=PollPolicy().scaled({time_scale})"
          f"{'' if args.start_only else f', max_concurrency={args.concurrency}'}), "
          f"sweep.start(max_concurrency={args.concurrency})")
    print(f"  baseline: openai {__import__('openai').__version__} create_and_poll(poll_interval_ms={poll_interval_ms})"
          f" (its default 1000 ms x time_scale) under Semaphore({args.concurrency}), then download_content"
          " to disk (outside the semaphore, as sora_nb does)")
    print("  " + machine_note())

    with temp_dir() as tmp:
        results: dict[str, dict[str, Any]] = {}
        with LoopbackServer.simulator(seed=args.seed, time_scale=time_scale, cache_dir=tmp / "cache-a") as server:
            raw = run_sora_nb(server, axes, concurrency=args.concurrency, time_scale=time_scale,
                              run_root=tmp / "runs", start_only=args.start_only)
            results["sora_nb"] = analyse("sora_nb", raw, server, args.concurrency)
        specs = raw["specs"]  # the same jobs, in the same order
        with LoopbackServer.simulator(seed=args.seed, time_scale=time_scale, cache_dir=tmp / "cache-b") as server:
            raw = run_openai(server, specs, concurrency=args.concurrency, poll_interval_ms=poll_interval_ms,
                             out_dir=tmp / "openai")
            results["baseline"] = analyse("baseline", raw, server, args.concurrency)

    ours, base = results["sora_nb"], results["baseline"]
    rows = [
        ("wall time (client made -> last file on disk)", fmt_s(ours["wall"]), fmt_s(base["wall"]),
         f"{ours['wall'] / base['wall']:.3f}"),
        ("ideal makespan (from the audit)", fmt_s(ours["ideal"]), fmt_s(base["ideal"]), ""),
        ("wall / ideal", f"{ours['ratio']:.3f}", f"{base['ratio']:.3f}", f"{ours['ratio'] / base['ratio']:.3f}"),
        ("mean job time in service", fmt_s(ours["mean_job"]), fmt_s(base["mean_job"]), ""),
        ("last server completion, from start", fmt_s(ours["server_span"]), fmt_s(base["server_span"]), ""),
        ("completion detection delay, median", fmt_s(ours["delay_median"]), fmt_s(base["delay_median"]), ""),
        ("completion detection delay, mean", fmt_s(ours["delay_mean"]), fmt_s(base["delay_mean"]), ""),
        ("completion detection delay, p90 / max", f"{fmt_s(ours['delay_p90'])} / {fmt_s(ours['delay_max'])}",
         f"{fmt_s(base['delay_p90'])} / {fmt_s(base['delay_max'])}", ""),
        ("client made -> first create at the server", fmt_s(ours["start"]), fmt_s(base["start"]), ""),
        ("slot refill gap (noticed -> next create), median", fmt_s(ours["gap_median"]), fmt_s(base["gap_median"]),
         ""),
        ("slot refill gap, mean", fmt_s(ours["gap_mean"]), fmt_s(base["gap_mean"]), ""),
        ("tail after last detection (download)", fmt_s(ours["tail"]), fmt_s(base["tail"]), ""),
        ("peak jobs in flight", ours["peak"], base["peak"], ""),
        ("status requests per job (at the server)", f"{ours['status_per_job']:.1f}",
         f"{base['status_per_job']:.1f}", f"{ours['status_per_job'] / base['status_per_job']:.3f}"),
        ("all requests (at the server)", ours["requests"], base["requests"], ""),
    ]
    print_table("results (ratio column: sora_nb / baseline)", rows, ("", "sora_nb", "baseline", "ratio"))
    checks = {
        f"sora_nb wall/ideal {ours['ratio']:.3f} <= 1.05": ours["ratio"] <= 1.05,
        f"sora_nb no slower than the baseline ({fmt_s(ours['wall'])} vs {fmt_s(base['wall'])})":
            ours["wall"] <= base["wall"],
    }
    return finish(checks, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
