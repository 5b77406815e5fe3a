"""Video metrics: how fast ``sora_nb.measure_video`` is against decoding alone, its memory, and dask scaling.

1. Speed. A 1280x720 8 s clip at 24 fps (a moving, textured test pattern encoded with libx264) is
   decoded by PyAV with nothing else done (``for frame in container.decode(stream): pass``, frame
   threads on, as measure_video decodes): the baseline. Then ``measure_video`` on the same file, in the
   same process, interleaved, median of N CPU times (``time.process_time``, all threads: the machine is
   shared, so wall time says more about the neighbours). Figures: the ratio, and the realtime factor
   per core (clip seconds per CPU second).
2. Memory. A 1920x1080 12 s clip is measured in a fresh child process: its peak RSS (``VmHWM``, reset
   after the imports through ``/proc/self/clear_refs``) minus its RSS at that point.
3. Scaling. 40 copies of the 720p 8 s clip of part 1 (~0.2 CPU s each: dask's own cost, ~3 ms of CPU
   per task, stays ~1 % of the work) measured through ``run.measure``'s machinery
   (``measure_records``) on a ``dask.distributed`` local cluster of 1 worker, then of 2 (one thread
   each, dask's default worker environment), in turn, twice; videos per second, the best of the two
   rounds each. References, once each: 1 dask worker allowed to decode on every core
   (``OMP_NUM_THREADS`` unset), and a plain process pool of 1 and 2 workers (what the cores give
   without dask). Each figure is printed with the load averages when it ended.

Targets: metrics <= 1.5 x decoding alone; peak <= +80 MB; 2 workers >= 1.7 x 1 worker.

    .venv/bin/python benchmarks/bench_metrics.py [--quick] [--check] [--parts 3] [--videos N] [--rounds N]
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, base_parser, finish, machine_note, print_table, temp_dir

MB = 1024 * 1024


def make_clip(path: Path, width: int, height: int, seconds: int, fps: int = 24) -> Path:
    """A textured pattern that moves (so frames differ and the encoder has work), as an H.264 MP4."""
    import av
    import numpy as np

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.options = {"preset": "veryfast", "crf": "23"}
        for i in range(seconds * fps):
            wave = 0.5 + 0.5 * np.sin((xs + 6 * i) / 23.0) * np.cos((ys - 3 * i) / 17.0)
            rgb = np.stack([wave * 220, (1 - wave) * 180 + 30, np.full_like(wave, 90)], axis=-1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode_only(path: Path) -> int:
    import av

    from sora_nb._metrics import decode_threads

    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # the same thread settings as measure_video
        stream.codec_context.thread_count = decode_threads()
        for _frame in container.decode(stream):
            frames += 1
    return frames


def speed(path: Path, seconds: int, samples: int) -> tuple[float, float]:
    """Median CPU seconds (all threads of this process) of decoding alone and of measuring: CPU time,
    not wall time, because the machine is shared and "per core" is what the target asks."""
    import sora_nb

    decode, measure = [], []
    decode_only(path)  # warm the file cache and the codec
    for _ in range(samples):
        started = time.process_time()
        decode_only(path)
        decode.append(time.process_time() - started)
        started = time.process_time()
        sora_nb.measure_video(path)
        measure.append(time.process_time() - started)
    return statistics.median(decode), statistics.median(measure)


_MEMORY_CHILD = """
import json, sys
import av, numpy, sora_nb, sora_nb._metrics
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
idle = status("VmRSS")
sora_nb.measure_video(sys.argv[1])
print(json.dumps({"idle": idle, "peak": status("VmHWM")}))
"""


def memory(path: Path) -> tuple[int, int]:
    out = subprocess.run([PYTHON, "-c", _MEMORY_CHILD, str(path)], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT)}).stdout
    figures = json.loads(out)
    return figures["idle"], figures["peak"]


@dataclasses.dataclass
class Figure:
    """One measuring of the videos on one executor."""

    rate: float  # videos per second, wall clock
    worker_cpu: float  # CPU seconds per video in the workers (all their threads)
    local_cpu: float  # CPU seconds per video in this process: the client, and a LocalCluster's scheduler
    load: str  # the load averages when it ended


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _warm(hold: float = 0.0) -> int:
    """In a worker: import what measuring needs before the clock starts (both sides alike); ``hold``
    keeps the worker busy, so that a process pool starts every worker it has."""
    import av  # noqa: F401
    import numpy  # noqa: F401

    import sora_nb._metrics  # noqa: F401

    time.sleep(hold)
    return os.getpid()


def _one_thread() -> None:
    """In a process pool's worker: one core each, as dask's workers say it (see decode_threads)."""
    os.environ["OMP_NUM_THREADS"] = "1"


def _noop(x: int) -> int:
    return x


def _measure_all(ledger: Any, executor: Any) -> tuple[int, float, float]:
    from sora_nb._judging import measure_records

    with ledger.transaction() as conn:
        conn.execute("DELETE FROM metrics")
    started, cpu = time.perf_counter(), time.process_time()
    done = measure_records(ledger, ledger.jobs(), executor=executor)
    return done, time.perf_counter() - started, time.process_time() - cpu


def on_dask(ledger: Any, workers: int, env: dict[str, str] | None = None) -> tuple[Figure, float]:
    """Measure every video on a fresh local cluster of ``workers`` single-threaded worker processes.
    Returns the figure and dask's own cost per task (a no-op task's share of 200 in flight)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      env=env or {}) as cluster, Client(cluster) as client:
        client.run(_warm)
        executor = client.get_executor()
        started = time.perf_counter()
        list(executor.map(_noop, range(200)))
        per_task = (time.perf_counter() - started) / 200
        before = client.run(time.process_time)
        done, wall, local = _measure_all(ledger, executor)
        after = client.run(time.process_time)
    worker_cpu = sum(after[w] - before[w] for w in before)
    return Figure(done / wall, worker_cpu / done, local / done, _load()), per_task


def on_processes(ledger: Any, workers: int) -> Figure:
    """The same on a plain process pool whose workers decode with one thread each: what the cores
    give without dask (the ceiling for any executor on this machine)."""
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        pids = set(pool.map(_warm, [0.5] * workers))
        assert len(pids) == workers
        before = sum(_cpu_of(pid) for pid in pids)
        done, wall, local = _measure_all(ledger, pool)
        worker_cpu = sum(_cpu_of(pid) for pid in pids) - before
    return Figure(done / wall, worker_cpu / done, local / done, _load())


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a running process, from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scaling(root: Path, clip: Path, videos: int, rounds: int) -> tuple[dict[str, list[Figure]], float]:
    """``videos`` copies of ``clip`` (each its own checksum) measured through ``run.measure``'s machinery
    on each executor of :data:`EXECUTORS`; the target's two ``rounds`` times."""
    from sora_nb._ledger import JobRecord, Ledger
    from sora_nb._media import sha256_file
    from sora_nb._types import JobSpec

    ledger = Ledger.create(root / "run", meta={"profile": "bench"})
    records = []
    for i in range(videos):
        # Each its own file with its own checksum (else the cache measures one and stores it for all).
        path = root / "run" / "videos" / f"v{i}.mp4"
        path.write_bytes(clip.read_bytes() + i.to_bytes(4, "big"))
        record = JobRecord(f"j{i:04d}", i + 1, JobSpec("a clip", "sora-2", "1280x720", "8"))
        records.append(dataclasses.replace(record, status="completed", video_path=f"videos/v{i}.mp4",
                                           checksum=sha256_file(path)))
    ledger.add_jobs(records)
    figures: dict[str, list[Figure]] = {name: [] for name in EXECUTORS}
    per_task: list[float] = []
    # The target's pair alternates (the neighbours' load falls on both alike); the references once.
    order = [*(name for _ in range(rounds) for name in list(EXECUTORS)[:2]), *list(EXECUTORS)[2:]]
    try:
        for name in order:
            kind, workers, env = EXECUTORS[name]
            if kind == "dask":
                figure, overhead = on_dask(ledger, workers, env)
                per_task.append(overhead)
            else:
                figure = on_processes(ledger, workers)
            figures[name].append(figure)
            print(f"  {name}: {figure.rate:.2f} videos/s (load {figure.load})", flush=True)
    finally:
        ledger.close()
    return figures, statistics.median(per_task)


BASELINE = "dask, 1 worker"
EXECUTORS: dict[str, tuple[str, int, dict[str, str] | None]] = {
    BASELINE: ("dask", 1, None),
    "dask, 2 workers": ("dask", 2, None),
    # dask's workers start with OMP_NUM_THREADS=1; unset, measure_video lets FFmpeg use every core.
    "dask, 1 worker decoding on every core": ("dask", 1, {"OMP_NUM_THREADS": ""}),
    "processes, 1 worker": ("processes", 1, None),
    "processes, 2 workers": ("processes", 2, None),
}
"""What section 3 measures: the target's pair first, then two references that say what the cores allow."""


def scaling_table(figures: dict[str, list[Figure]], per_task: float) -> float:
    """Print section 3 side by side; returns 2 dask workers' best over 1 dask worker's best."""
    best = {name: max(f.rate for f in runs) for name, runs in figures.items()}
    rows = []
    for name, runs in figures.items():
        top = max(runs, key=lambda f: f.rate)
        rows.append((name, " ".join(f"{f.rate:.2f}" for f in runs), f"{best[name]:.2f}",
                     f"{best[name] / best[BASELINE]:.2f} x", f"{top.worker_cpu * 1000:.0f} ms",
                     f"{top.local_cpu * 1000:.1f} ms", top.load))
    print_table("3. scaling: 1280x720 8 s clips measured through run.measure's machinery", rows,
                ("executor", "videos/s, each round", "best", "vs 1 dask worker", "worker CPU/video",
                 "client+scheduler CPU/video", "load avg (1, 5, 15 min) at the best"))
    print(f"  dask's own cost per task (a no-op task, 200 in flight): {per_task * 1000:.1f} ms")
    ratio = best["dask, 2 workers"] / best[BASELINE]
    print(f"  2 dask workers / 1 dask worker: {ratio:.2f}"
          f"   (plain processes, 2 / 1: {best['processes, 2 workers'] / best['processes, 1 worker']:.2f})")
    return ratio


def main() -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 3 for the dask scaling alone")
    parser.add_argument("--videos", type=int, default=40, help="videos in part 3 (the issue's target: 40)")
    parser.add_argument("--rounds", type=int, default=2, help="times part 3 measures the 1- and 2-worker pair")
    args = parser.parse_args()
    samples = 3 if args.quick else args.samples
    parts = {int(p) for p in args.parts.split(",")}
    print(machine_note())
    checks: dict[str, bool] = {}
    with temp_dir() as root:
        clip = make_clip(root / "720p.mp4", 1280, 720, 8)
        if 1 in parts:
            decode, measure = speed(clip, 8, samples)
            print_table(
                f"1. speed on a 1280x720 8 s 24 fps clip (median of {samples})",
                [("decode only (baseline)", f"{decode:.3f} s", f"{8 / decode:.1f} x"),
                 ("measure_video", f"{measure:.3f} s", f"{8 / measure:.1f} x")],
                ("", "CPU time", "realtime factor per core"),
            )
            print(f"  ratio measure / decode: {measure / decode:.2f}")
            checks["metrics cost <= 1.5 x decoding alone"] = measure / decode <= 1.5

        if 2 in parts:
            big = make_clip(root / "1080p.mp4", 1920, 1080, 4 if args.quick else 12)
            idle, peak = memory(big)
            print_table("2. memory measuring a 1920x1080 clip in a fresh process",
                        [("idle after imports", f"{idle / MB:.0f} MB"), ("peak", f"{peak / MB:.0f} MB"),
                         ("peak - idle", f"{(peak - idle) / MB:.0f} MB")], ("", "RSS"))
            checks["peak memory <= idle + 80 MB"] = peak - idle <= 80 * MB

        if 3 in parts:
            try:
                import distributed  # noqa: F401
            except ImportError:
                print("\n3. scaling: skipped (pip install distributed)")
            else:
                videos, rounds = (12, 1) if args.quick else (args.videos, args.rounds)
                print(f"\n3. scaling: {videos} videos (the 720p 8 s clip of part 1), the 1- and 2-worker pair "
                      f"{rounds} time(s) in turn, then the references; load {_load()}")
                figures, per_task = scaling(root, clip, videos, rounds)
                ratio = scaling_table(figures, per_task)
                checks["2 dask workers >= 1.7 x 1 worker"] = ratio >= 1.7
    return finish(checks, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
