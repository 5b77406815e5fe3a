"""Front-end message rate of the widgets during a 200-job sweep, coalesced vs naive.

A :class:`sora_nb.ui.SweepBuilder` launches a 200-job sweep on the in-process simulator and shows its
progress (overall bar, counts, per-job list). Every message a widget would send to the browser is
counted at the comm (outside a kernel ipywidgets uses ``comm.DummyComm``; its ``publish_msg`` is
where a kernel's comm would write to IOPub). The same sweep runs twice: with the widgets' normal
coalescing (at most one redraw per widget per 0.25 s) and with ``refresh_interval=0``, the naive
baseline that redraws on every observer call. Jupyter Server drops output above 1000 messages/s.

    .venv/bin/python benchmarks/bench_widgets.py [--jobs 200] [--time-scale 0.02] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import comm

import sora_nb
from sora_nb import ui


@dataclass
class Tally:
    """Comm messages (and their JSON size) by the second they were sent in."""

    start: float = field(default_factory=time.monotonic)
    messages: Counter[int] = field(default_factory=Counter)
    nbytes: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, data: Any) -> None:
        second = int(time.monotonic() - self.start)
        size = len(json.dumps(data, default=str))
        with self.lock:
            self.messages[second] += 1
            self.nbytes[second] += size


def run_sweep(mode: str, *, jobs: int, time_scale: float, concurrency: int) -> dict[str, float]:
    interval = 0.25 if mode == "coalesced" else 0.0
    tally: Tally | None = None
    original = comm.DummyComm.publish_msg

    def counting(self: Any, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                 **keys: Any) -> None:
        if tally is not None and msg_type == "comm_msg":
            tally.add(data)

    comm.DummyComm.publish_msg = counting  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp, sora_nb.connect(
            "simulator", seed=1, time_scale=time_scale, run_root=tmp, max_concurrency=concurrency
        ) as client:
            builder = ui.SweepBuilder(client, budget_usd=0, refresh_interval=interval)
            prompts = [f"a corgi surfing, take {i}" for i in range(5)]
            repeats = max(1, jobs // (len(prompts) * 4))
            builder.prompts.value = "\n".join(prompts)
            builder.models.value = ("sora-2", "sora-2-pro")
            builder.seconds.value = ("4", "8")
            builder.repeats.value = repeats
            builder.concurrency.value = concurrency
            tally = Tally()
            builder.launch_button.click()
            run = builder.run
            if run is None:
                raise SystemExit(f"launch failed: {builder.error.value}")
            run.wait(timeout=600)
            assert builder.progress is not None
            builder.progress.refresh()
            duration = time.monotonic() - tally.start
            done = run.counts().get("completed", 0)
            builder.close()
    finally:
        comm.DummyComm.publish_msg = original  # type: ignore[method-assign]
    assert tally is not None
    # Over the whole seconds the buckets span, so that the mean is comparable with the peak bucket.
    span = max(duration, max(tally.messages, default=0) + 1)
    total = sum(tally.messages.values())
    return {
        "jobs": float(len(run)),
        "completed": float(done),
        "duration_s": duration,
        "messages": float(total),
        "peak_msgs_per_s": float(max(tally.messages.values(), default=0)),
        "mean_msgs_per_s": total / span,
        "peak_kb_per_s": max(tally.nbytes.values(), default=0) / 1024,
        "mean_kb_per_s": sum(tally.nbytes.values()) / 1024 / span,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--modes", default="coalesced,naive")
    args = parser.parse_args()
    print(f"{args.jobs}-job sweep on the simulator (time_scale={args.time_scale}, {args.concurrency} in flight)")
    print(f"{'mode':<10} {'jobs':>5} {'time s':>7} {'msgs':>7} {'peak/s':>7} {'mean/s':>7} {'peak KB/s':>10} "
          f"{'mean KB/s':>10}")
    for mode in args.modes.split(","):
        r = run_sweep(mode, jobs=args.jobs, time_scale=args.time_scale, concurrency=args.concurrency)
        print(f"{mode:<10} {int(r['jobs']):>5} {r['duration_s']:>7.1f} {int(r['messages']):>7} "
              f"{int(r['peak_msgs_per_s']):>7} {r['mean_msgs_per_s']:>7.1f} {r['peak_kb_per_s']:>10.1f} "
              f"{r['mean_kb_per_s']:>10.1f}")


if __name__ == "__main__":
    main()
