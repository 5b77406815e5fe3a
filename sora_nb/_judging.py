"""Scores of a run, kept in its ledger: measured metrics (by the video's checksum) and human judgments.

Metrics are computed off the notebook's event loop: the built-in ones (:func:`sora_nb.measure_video`)
in a process pool (or any :class:`concurrent.futures.Executor`), the user's registered ones in a thread
of the kernel (a model loaded once stays loaded) unless an executor is given. They are stored in the
ledger's ``metrics`` table keyed by the video's ``sha256`` and the metric's name, with the version that
computed them, so a video is measured once, and a new version of a metric is computed again by
``run.measure()``.

Only stored values are read back into DataFrames: this module is the one place that knows how the
tables look.

>>> import sora_nb
>>> with sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path")) as client:
...     run = client.sweep(prompt="a corgi surfing", seconds=["4", "8"]).start().wait(timeout=60)
...     df = run.to_dataframe()
>>> df[["seconds", "metric_duration_s", "metric_flag_duration"]]
  seconds  metric_duration_s  metric_flag_duration
0       4                4.0                 False
1       8                8.0                 False
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._ledger import JobRecord, Ledger
from ._metrics import METRICS_VERSION, CustomMetric, custom_metrics, measure_video
from ._types import JobSpec

__all__ = [
    "BUILTIN",
    "MeasureTask",
    "Scores",
    "measure_records",
    "measure_task",
    "process_pool",
    "read_scores",
    "requested_for",
    "run_task_async",
    "store_metric",
]

logger = logging.getLogger("sora_nb")

BUILTIN = "video"
"""The ``metrics`` row name under which :func:`measure_video`'s whole dict is stored."""


def requested_for(spec: JobSpec, *, profile: str | None = None) -> dict[str, Any]:
    """What a job asked for, as :func:`measure_video` checks it.

    The simulator renders every video small on purpose (``SimulatorConfig.max_side``), so its
    resolution is not checked; its duration and aspect ratio are.

    >>> requested_for(JobSpec("a corgi", "sora-2", "1280x720", "4"), profile="simulator")
    {'seconds': '4', 'size': '1280x720', 'check_resolution': False}
    """
    return {"seconds": spec.seconds, "size": spec.size, "check_resolution": profile != "simulator"}


# ---------------------------------------------------------------------- what to measure
@dataclass(frozen=True)
class MeasureTask:
    """One video to measure: its file, checksum and spec, and the metrics it still lacks."""

    job_id: str
    path: Path
    checksum: str
    spec: JobSpec
    requested: dict[str, Any]
    builtin: bool
    custom: tuple[CustomMetric, ...]

    @property
    def empty(self) -> bool:
        return not self.builtin and not self.custom


def measure_task(ledger: Ledger, record: JobRecord, *, profile: str | None = None) -> MeasureTask | None:
    """The measuring a finished job still needs (None when its video is missing or all is stored)."""
    if record.status != "completed" or not record.video_path or not record.checksum:
        return None
    path = ledger.run_dir / record.video_path
    if not path.is_file():
        return None
    stored = _stored_versions(ledger, record.checksum)
    task = MeasureTask(
        job_id=record.job_id,
        path=path,
        checksum=record.checksum,
        spec=record.spec,
        requested=requested_for(record.spec, profile=profile),
        builtin=stored.get(BUILTIN) != METRICS_VERSION,
        custom=tuple(m for m in custom_metrics() if stored.get(m.name) != m.version),
    )
    return None if task.empty else task


def _stored_versions(ledger: Ledger, checksum: str) -> dict[str, str]:
    rows = ledger.query("SELECT name, version FROM metrics WHERE checksum = ?", (checksum,))
    return {name: version for name, version in rows}


def store_metric(ledger: Ledger, checksum: str, name: str, version: str, value: Any) -> None:
    """Write (or replace) one stored metric value; ``value`` must be JSON."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO metrics (checksum, name, version, value, computed_at) VALUES (?, ?, ?, ?, ?)",
            (checksum, name, version, text, time.time()),
        )


def _call_custom(metric: CustomMetric, path: Path, spec: dict[str, Any]) -> Any:
    value = metric.fn(path, spec)
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise TypeError(
            f"metric {metric.name!r} returned {type(value).__name__}; a metric returns a number, bool, str or None."
        )
    if isinstance(value, float) and value != value:  # NaN is "no value", and JSON has no NaN
        return None
    return value


# ---------------------------------------------------------------------- running it
_pool: concurrent.futures.ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def process_pool() -> concurrent.futures.ProcessPoolExecutor:
    """The process pool that measures videos by default: one per process, made on first use.

    Its workers fork from a server process that has already imported the measuring code (on Linux),
    so a new worker costs milliseconds; at most 2 workers, so a laptop stays responsive.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            methods = multiprocessing.get_all_start_methods()
            # Never plain fork: the kernel has threads (sora_nb's loop), and a forked child may inherit
            # a lock held by one of them.
            context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if "forkserver" in methods:
                context.set_forkserver_preload(["sora_nb._judging", "av", "numpy"])
            pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=min(2, os.cpu_count() or 1), mp_context=context, initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
            pool.submit(os.getpid).result()  # starts a worker now, and the pool's manager thread with it
            manager = getattr(pool, "_executor_manager_thread", None)
            if isinstance(manager, threading.Thread):
                manager.name = "sora_nb-worker-measure"  # says whose thread it is (and it lives on purpose)
            _pool = pool
            atexit.register(shutdown_pool)  # before the interpreter tears down what the pool's thread uses
        return _pool


def _die_with_parent(pid: int) -> None:
    """In a pool worker: end soon after the process that made the pool ends, even by SIGKILL.

    A killed kernel must not leave measuring processes behind, waiting for work for ever and holding
    its terminal or pipes open. (A forkserver's worker is not the kernel's child, and the forkserver
    lives as long as its workers, so neither notices on its own.)
    """

    def watch() -> None:
        while _alive(pid):
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="sora_nb-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        # A killed process stays a zombie until its own parent reaps it: that is dead too.
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS, Windows): the process table is the next best thing
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True


def shutdown_pool() -> None:
    """Stop the default pool's workers (made again on next use); for tests and ``sora-nb measure``."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


async def run_task_async(
    ledger: Ledger, task: MeasureTask, executor: concurrent.futures.Executor | None = None
) -> None:
    """Measure one video off the event loop, then store the results (on the loop: one writer)."""
    loop = asyncio.get_running_loop()
    spec = dataclasses.asdict(task.spec)
    if task.builtin:
        values = await loop.run_in_executor(executor or process_pool(), measure_video, task.path, task.requested)
        store_metric(ledger, task.checksum, BUILTIN, METRICS_VERSION, values)
    for metric in task.custom:
        value = await loop.run_in_executor(executor, _call_custom, metric, task.path, spec)
        store_metric(ledger, task.checksum, metric.name, metric.version, value)


def measure_records(
    ledger: Ledger,
    records: Iterable[JobRecord],
    *,
    executor: concurrent.futures.Executor | None = None,
    profile: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout: float | None = None,
) -> int:
    """Measure every finished video that lacks a metric, in ``executor``; returns how many were measured.

    Blocking (the caller's thread waits; the work runs in the executor). ``progress(done, total)`` is
    called after each video. A video that cannot be measured is logged and skipped, not fatal.

    Raises:
        TimeoutError: not done after ``timeout`` seconds (what was measured is stored; call again).
    """
    tasks = [t for r in records if (t := measure_task(ledger, r, profile=profile)) is not None]
    total, done = len(tasks), 0
    if progress:
        progress(0, total)
    if not tasks:
        return 0
    builtin_pool = executor or process_pool()
    # The custom metrics go to the given executor, else to a thread here (see register_metric).
    threads = None if executor is not None else concurrent.futures.ThreadPoolExecutor(2, "sora_nb-worker-metrics")
    custom_pool = executor or threads
    assert custom_pool is not None
    try:
        futures: dict[concurrent.futures.Future[Any], tuple[MeasureTask, str, str]] = {}
        for task in tasks:
            if task.builtin:
                future = builtin_pool.submit(measure_video, task.path, task.requested)
                futures[future] = (task, BUILTIN, METRICS_VERSION)
            spec = dataclasses.asdict(task.spec)
            for metric in task.custom:
                futures[custom_pool.submit(_call_custom, metric, task.path, spec)] = (task, metric.name, metric.version)
        remaining = {t.job_id: sum(1 for v in futures.values() if v[0] is t) for t in tasks}
        try:
            for future in concurrent.futures.as_completed(futures, timeout=timeout):
                task, name, version = futures[future]
                try:
                    store_metric(ledger, task.checksum, name, version, future.result())
                except Exception as exc:  # one bad video (or metric) must not stop the others
                    logger.warning("could not measure %s of job %s (%s): %s", name, task.job_id, task.path, exc)
                remaining[task.job_id] -= 1
                if remaining[task.job_id] == 0:
                    done += 1
                    if progress:
                        progress(done, total)
        except concurrent.futures.TimeoutError:
            for future in futures:
                future.cancel()
            raise TimeoutError(
                f"measuring took longer than {timeout} s; {done} of {total} videos are measured and stored. "
                "Fix: call run.measure() again to go on, or give a larger timeout."
            ) from None
    finally:
        if threads is not None:
            threads.shutdown(wait=True)
    return done


# ---------------------------------------------------------------------- reading it back
@dataclass(frozen=True)
class Scores:
    """What a DataFrame shows of a run's stored scores.

    Attributes:
        metrics: checksum -> {metric key: value}, the built-in keys and the registered names.
        custom: names of the registered metrics stored in this run, in first-stored order.
    """

    metrics: Mapping[str, Mapping[str, Any]]
    custom: tuple[str, ...]


def read_scores(ledger: Ledger) -> Scores:
    """Every stored metric of the run, ready to join onto its jobs by checksum."""
    metrics: dict[str, dict[str, Any]] = {}
    custom: dict[str, None] = {}
    for checksum, name, value in ledger.query("SELECT checksum, name, value FROM metrics ORDER BY computed_at"):
        decoded = json.loads(value)
        if name == BUILTIN and isinstance(decoded, dict):
            metrics.setdefault(checksum, {}).update(decoded)
        else:
            metrics.setdefault(checksum, {})[name] = decoded
            custom[name] = None
    return Scores(metrics, tuple(custom))
