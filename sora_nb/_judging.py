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
import concurrent.futures.process
import dataclasses
import json
import logging
import multiprocessing
import multiprocessing.spawn
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._ledger import LEDGER_FILE, JobRecord, Ledger
from ._metrics import METRICS_VERSION, CustomMetric, custom_metrics, measure_video
from ._redact import looks_like_secret, redact
from ._types import JobSpec

__all__ = [
    "BUILTIN",
    "WINNERS",
    "add_rating",
    "add_vote",
    "judgments_frame",
    "ratings_by_job",
    "read_judgments",
    "undo_last",
    "MeasureTask",
    "Scores",
    "measure_records",
    "measure_task",
    "process_pool",
    "read_scores",
    "scores_of",
    "requested_for",
    "run_task_async",
    "store_metric",
]

logger = logging.getLogger("sora_nb")

MEASURE_TIMEOUT_S = 600.0
"""After a download, how long the job waits for its video to be measured before it finishes anyway."""

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
    store_metric_soon(ledger, checksum, name, version, value).result()


def store_metric_soon(
    ledger: Ledger, checksum: str, name: str, version: str, value: Any
) -> concurrent.futures.Future[None]:
    """:func:`store_metric` by the ledger's writer thread (``Ledger.write_soon``): done once committed."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    row = (checksum, name, version, text, time.time())

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO metrics (checksum, name, version, value, computed_at) VALUES (?, ?, ?, ?, ?)", row
        )

    return ledger.write_soon(write)


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
_pool: concurrent.futures.Executor | None = None
_pool_lock = threading.Lock()


_LAUNCHERS = frozenset({"ipykernel_launcher", "ipykernel.__main__", "pytest.__main__", "sora_nb._cli"})
"""Main modules known to do nothing when imported under another name (their work is behind a main guard)."""


def _workers_rerun_main() -> bool:
    """Would a worker process started by forkserver or spawn run the user's main module again?

    Both start methods import the parent's ``__main__`` in each worker (as ``__mp_main__``), so a script
    whose top-level code starts a sweep would start it again in every worker: paid for again on a real
    service. Python's answer is a ``if __name__ == "__main__":`` guard in the script, which a user cannot
    be expected to know sora_nb needs. Kernels (``ipykernel_launcher``), ``python -c``, the REPL, pytest
    and the ``sora-nb`` command are safe to re-import.
    """
    data = multiprocessing.spawn.get_preparation_data("sora_nb-measure")
    if "init_main_from_name" in data:
        return data["init_main_from_name"] not in _LAUNCHERS
    if "init_main_from_path" in data:
        path = Path(data["init_main_from_path"])
        # The sora-nb console script pip writes is guarded; any other file is the user's.
        return not (path.name == "sora-nb" and path.parent == Path(sys.executable).parent)
    return False


def process_pool() -> concurrent.futures.Executor:
    """The pool that measures videos by default: one per process, made on first use.

    A process pool where its workers cannot re-run the user's script (kernels, the CLI, ``python -c``):
    its workers fork from a server process that has already imported the measuring code (on Linux), so a
    new worker costs milliseconds; at most 2 workers, so a laptop stays responsive. In a script run as a
    file, 2 threads instead (PyAV and numpy release the GIL for most of the work): a worker process would
    import the script again and start its sweep again (see :func:`_workers_rerun_main`).
    """
    global _pool
    with _pool_lock:
        if _pool is not None and getattr(_pool, "_broken", False):
            # A worker died (killed, out of memory): that pool refuses all work for good; make another.
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None
        if _pool is None and _workers_rerun_main():
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="sora_nb-worker-measure")
            atexit.register(shutdown_pool)
        if _pool is None:
            methods = multiprocessing.get_all_start_methods()
            # Never plain fork: the kernel has threads (sora_nb's loop), and a forked child may inherit
            # a lock held by one of them.
            context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if "forkserver" in methods:
                context.set_forkserver_preload(["sora_nb._judging", "av", "numpy"])
            workers = min(2, os.cpu_count() or 1)
            # The user's own setting wins; passed along because a forkserver keeps the environment it
            # started with.
            threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // workers))
            pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(), threads),
            )
            pool.submit(os.getpid).result()  # starts a worker now, and the pool's manager thread with it
            manager = getattr(pool, "_executor_manager_thread", None)
            if isinstance(manager, threading.Thread):
                manager.name = "sora_nb-worker-measure"  # says whose thread it is (and it lives on purpose)
            _pool = pool
            atexit.register(shutdown_pool)  # before the interpreter tears down what the pool's thread uses
        return _pool


def _init_worker(parent: int, threads: str) -> None:
    """In a worker of the default pool: decode with this worker's share of the cores, not all of them
    (see :func:`~sora_nb._metrics.decode_threads`), and die with the parent."""
    os.environ["OMP_NUM_THREADS"] = threads
    _die_with_parent(parent)


def _die_with_parent(pid: int) -> None:
    """In a pool worker: end soon after the process that made the pool ends, even by SIGKILL.

    A killed kernel must not leave measuring processes behind, waiting for work for ever and holding
    its terminal or pipes open. (A forkserver's worker is not the kernel's child, and the forkserver
    lives as long as its workers, so neither notices on its own.)
    """

    import signal

    # Ctrl-C (or a kernel interrupt) is for the kernel to handle; a worker just finishes its video.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

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


def _forget(pool: concurrent.futures.Executor) -> None:
    """A worker of the default pool died (killed, out of memory): the pool is broken for good, so the
    next measuring makes a new one. Another executor is the caller's to mend."""
    global _pool
    with _pool_lock:
        if pool is not _pool:
            return
        _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


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
    """Measure one video off the event loop, then store the results (the ledger's writer thread commits
    them with the jobs' writes, in order, so the loop does not wait on the disk)."""
    loop = asyncio.get_running_loop()
    spec = dataclasses.asdict(task.spec)
    if task.builtin:
        # Making the default pool starts processes (a second or more): never on the loop.
        pool: concurrent.futures.Executor = executor if executor is not None else await asyncio.to_thread(process_pool)
        try:
            values = await asyncio.wait_for(
                loop.run_in_executor(pool, measure_video, task.path, task.requested), MEASURE_TIMEOUT_S
            )
        except concurrent.futures.process.BrokenProcessPool:
            _forget(pool)
            raise
        await asyncio.wrap_future(store_metric_soon(ledger, task.checksum, BUILTIN, METRICS_VERSION, values))
    for metric in task.custom:
        value = await loop.run_in_executor(executor, _call_custom, metric, task.path, spec)
        await asyncio.wrap_future(store_metric_soon(ledger, task.checksum, metric.name, metric.version, value))


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
                except concurrent.futures.process.BrokenProcessPool as exc:
                    _forget(builtin_pool)
                    logger.warning("could not measure job %s: %s (run.measure() again starts new workers)",
                                   task.job_id, exc)
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
        ratings: job_id -> (mean stars, ratings, tags), from :func:`ratings_by_job`.
    """

    metrics: Mapping[str, Mapping[str, Any]]
    custom: tuple[str, ...]
    ratings: Mapping[str, tuple[float | None, int, str]] = dataclasses.field(default_factory=dict)


def scores_of(ledger: Ledger | None, run_dir: Path, checksums: Sequence[str] | None = None) -> Scores:
    """A run's scores from its open ledger, or from the file when its client closed the ledger already."""
    if ledger is not None:
        try:
            return read_scores(ledger, checksums)
        except sqlite3.ProgrammingError:  # closed with its client; the file is still the truth
            pass
    if not (run_dir / LEDGER_FILE).is_file():
        return Scores({}, ())  # nothing written yet
    with Ledger.open(run_dir, readonly=True) as reader:
        return read_scores(reader, checksums)


def read_scores(ledger: Ledger, checksums: Sequence[str] | None = None) -> Scores:
    """Every stored metric of the run (or of the videos with these ``checksums``: a page of a table of
    10,000 jobs reads its own 50), ready to join onto its jobs by checksum."""
    metrics: dict[str, dict[str, Any]] = {}
    custom: dict[str, None] = {}
    where = "" if checksums is None else f"WHERE checksum IN ({', '.join('?' for _ in checksums)}) "
    rows = ledger.query(f"SELECT checksum, name, value FROM metrics {where}ORDER BY computed_at", checksums or ())
    for checksum, name, value in rows:
        decoded = json.loads(value)
        if name == BUILTIN and isinstance(decoded, dict):
            metrics.setdefault(checksum, {}).update(decoded)
        else:
            metrics.setdefault(checksum, {})[name] = decoded
            custom[name] = None
    return Scores(metrics, tuple(custom), ratings_by_job(ledger))


# ---------------------------------------------------------------------- human judgments
WINNERS: tuple[str, ...] = ("a", "b", "tie", "both_bad")
"""What a pairwise vote can say: ``a`` or ``b`` is better, they are as good (``tie``), or neither is."""


def _check_rater(rater: str) -> str:
    if not isinstance(rater, str) or not rater.strip() or len(rater) > 100:
        raise ValueError(f"rater must be a short non-empty name like 'ana', got {rater!r}.")
    if looks_like_secret(rater):
        raise ValueError("rater looks like an API key; the ledger never stores keys. Fix: use a person's name.")
    return rater.strip()


def _check_job(ledger: Ledger, job_id: str, what: str) -> JobRecord:
    try:
        record = ledger.get_job(job_id)
    except KeyError:
        raise ValueError(f"{what} {job_id!r} is not a job of this run. Fix: pass one of its Jobs, or its id.") from None
    if record.status != "completed":
        raise ValueError(f"{what} {job_id!r} is {record.status}, not completed: only videos can be judged.")
    return record


def add_rating(
    ledger: Ledger, job_id: str, *, stars: int | None, tags: Iterable[str], note: str, rater: str
) -> int:
    """Store one rating of a job's video (1-5 stars, tags, a note); returns its id."""
    _check_job(ledger, job_id, "job")
    if stars is not None and (isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5):
        raise ValueError(f"stars must be a whole number from 1 to 5 (or None for tags and a note only), got {stars!r}.")
    if isinstance(tags, str):
        raise TypeError(f"tags must be a list or tuple of words, like ('sharp',), not the string {tags!r}.")
    tag_list = sorted({str(t).strip() for t in tags if str(t).strip()})
    if any("," in t for t in tag_list):
        raise ValueError(f"a tag cannot contain ',': {tag_list!r}.")
    if not isinstance(note, str):
        raise TypeError(f"note must be text, not {type(note).__name__}.")
    if stars is None and not tag_list and not note:
        raise ValueError("a rating needs stars (1-5), tags or a note.")
    return _add_judgment(
        ledger, kind="rating", rater=_check_rater(rater), job_id=job_id, stars=stars,
        tags=json.dumps(tag_list, ensure_ascii=False), note=redact(note),
    )


def add_vote(ledger: Ledger, a: str, b: str, *, winner: str, rater: str) -> int:
    """Store one blind pairwise vote between two jobs' videos; returns its id."""
    if winner not in WINNERS:
        raise ValueError(f"winner must be one of {', '.join(repr(w) for w in WINNERS)}, got {winner!r}.")
    if a == b:
        raise ValueError(f"a vote compares two different videos; both are {a!r}.")
    _check_job(ledger, a, "job a")
    _check_job(ledger, b, "job b")
    return _add_judgment(ledger, kind="vote", rater=_check_rater(rater), job_id=a, other_id=b, winner=winner)


def _add_judgment(ledger: Ledger, **columns: Any) -> int:
    columns["created_at"] = time.time()
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    with ledger.transaction() as conn:
        cursor = conn.execute(f"INSERT INTO judgments ({names}) VALUES ({marks})", tuple(columns.values()))
        return int(cursor.lastrowid or 0)


def undo_last(ledger: Ledger, *, rater: str | None = None) -> dict[str, Any] | None:
    """Withdraw the latest judgment still in force (of ``rater``, or of anyone); returns it, or None.

    The row stays in the ledger, marked ``undone_at``: an undo is a judgment too.
    """
    where, parameters = ("AND rater = ?", (rater,)) if rater is not None else ("", ())
    with ledger.transaction() as conn:
        row = conn.execute(
            f"SELECT id FROM judgments WHERE undone_at IS NULL {where} ORDER BY id DESC LIMIT 1", parameters
        ).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE judgments SET undone_at = ? WHERE id = ?", (time.time(), row[0]))
    return next(j for j in read_judgments(ledger, include_undone=True) if j["id"] == row[0])


_JUDGMENT_FIELDS = ("id", "kind", "rater", "job_id", "other_id", "winner", "stars", "tags", "note", "created_at",
                    "undone_at")  # fmt: skip


def read_judgments(ledger: Ledger, *, include_undone: bool = False) -> list[dict[str, Any]]:
    """Every judgment of the run, oldest first, as dicts (``tags`` a tuple)."""
    where = "" if include_undone else "WHERE undone_at IS NULL"
    rows = ledger.query(f"SELECT {', '.join(_JUDGMENT_FIELDS)} FROM judgments {where} ORDER BY id")
    judgments = []
    for row in rows:
        item = dict(zip(_JUDGMENT_FIELDS, row, strict=True))
        item["tags"] = tuple(json.loads(item["tags"])) if item["tags"] else ()
        judgments.append(item)
    return judgments


def judgments_frame(ledger: Ledger, *, include_undone: bool = False) -> Any:
    """:func:`read_judgments` as a pandas DataFrame (times as UTC datetimes)."""
    import pandas as pd

    df = pd.DataFrame(read_judgments(ledger, include_undone=include_undone), columns=list(_JUDGMENT_FIELDS))
    df["stars"] = df["stars"].astype("Int64")
    for name in ("created_at", "undone_at"):
        df[name] = pd.to_datetime(df[name].astype("float64"), unit="s", utc=True)
    return df


def ratings_by_job(ledger: Ledger) -> dict[str, tuple[float | None, int, str]]:
    """job_id -> (mean stars, number of ratings, its tags comma-joined), from the ratings in force."""
    stars: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    tags: dict[str, set[str]] = {}
    for j in read_judgments(ledger):
        if j["kind"] != "rating":
            continue
        counts[j["job_id"]] = counts.get(j["job_id"], 0) + 1
        if j["stars"] is not None:
            stars.setdefault(j["job_id"], []).append(j["stars"])
        tags.setdefault(j["job_id"], set()).update(j["tags"])
    return {
        job: (sum(stars[job]) / len(stars[job]) if stars.get(job) else None, n, ",".join(sorted(tags.get(job, ()))))
        for job, n in counts.items()
    }
