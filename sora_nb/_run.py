"""Runs: a group of jobs with one run directory and its ledger, the live object ``sweep.start()`` and
``sora_nb.resume()`` return. Like a :class:`~sora_nb.Job` (:mod:`sora_nb._jobs`), it shows state and the
runner changes it; the "runner side" section names the few entry points the runner uses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import JobTimeoutError, StorageError
from ._jobs import DEFAULT_RECONCILE_TIMEOUT, Driven, Job, Observer
from ._redact import logger
from ._types import JobSpec
from ._validation import check_timeout

if TYPE_CHECKING:
    import ipywidgets
    import pandas

    from ._audit import AuditReport
    from ._ledger import Ledger
    from ._runner import Runner

__all__ = ["Run"]

DEFAULT_RUN_TIMEOUT = 6 * 3600.0


class Run(Driven):
    """A group of jobs with one run directory: ``ledger.sqlite``, ``videos/``, ``thumbnails/``.

    Returned by ``sweep.start()`` and ``sora_nb.resume(...)``; ``client.generate`` jobs go into the
    client's session run.
    """

    def __init__(
        self, runner: Runner, run_dir: Path, *, axes: tuple[str, ...], meta: dict[str, Any],
        max_concurrency: int | None = None,
    ) -> None:
        self._runner = runner
        self.max_concurrency = max_concurrency
        """This run's own cap on jobs in flight (``None``: the client's cap only)."""
        self.run_dir = Path(run_dir)
        self.axes = axes
        self.meta = meta
        self.jobs: list[Job] = []
        self._observers: list[Observer] = []
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._resolved_dir: Path | None = None  # run_dir resolved, on first use (see _resolve)
        self._changes = 0  # bumped at every job change: what a widget's cache of the run's rows is keyed on
        # Each request's latest job, kept up to date as jobs are added (see _latest_jobs).
        self._latest: dict[JobSpec, Job] = {}
        self._latest_seen = 0
        self._latest_lock = threading.Lock()

    @property
    def id(self) -> str:
        return str(self.meta.get("run_id", self.run_dir.name))

    def submit(self, specs: list[JobSpec]) -> list[Job]:
        """Add jobs to this run and start them. Safe from any thread; returns at once."""
        return self._runner.submit(self, specs)

    # ------------------------------------------------------------------ state
    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.status] = counts.get(job.status, 0) + 1
        return counts

    @property
    def done(self) -> bool:
        return all(job.done for job in self.jobs)

    @property
    def failed(self) -> list[Job]:
        return [job for job in self.jobs if job.done and job.status != "completed"]

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self.jobs))

    def __len__(self) -> int:
        return len(self.jobs)

    # ------------------------------------------------------------------ waiting
    def wait(self, timeout: float | None = DEFAULT_RUN_TIMEOUT) -> Run:
        """Block until every job finishes. Failures do not raise (see ``run.failed``), except that of the
        run's own disk: :class:`StorageError` when some jobs ended because their files could not be
        written (free space, then ``sora_nb.resume(run_dir)``).

        Raises :class:`JobTimeoutError` after ``timeout`` seconds (the jobs go on; wait again or cancel).

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing [fail]"]).start()
        >>> run.wait(timeout=60).counts()
        {'completed': 1, 'failed': 1}
        >>> [job.prompt for job in run.failed]
        ['a cat skiing [fail]']
        >>> client.close()
        """
        check_timeout(timeout)
        runtime = self._runner.runtime
        futures = [job._future for job in self.jobs if not job.done]  # (the others need no future made)
        try:
            if runtime.in_loop_thread():
                runtime.run(self._gather(), timeout=timeout)
            else:
                _done, pending = concurrent.futures.wait(futures, timeout)
                if pending:
                    raise TimeoutError
        except (TimeoutError, concurrent.futures.TimeoutError):
            raise JobTimeoutError(
                f"run {self.id}: {sum(not j.done for j in self.jobs)} of {len(self.jobs)} jobs still running after "
                f"{timeout} s. They go on: wait again, `await run`, or run.cancel().",
                job=None,
            ) from None
        return self._outcome()

    async def _gather(self) -> None:
        while True:
            pending = [asyncio.wrap_future(job._future) for job in self.jobs if not job.done]
            if not pending:
                return
            await asyncio.gather(*pending)

    def __await__(self) -> Generator[Any, None, Run]:
        return self.wait_async().__await__()

    async def wait_async(self, timeout: float | None = DEFAULT_RUN_TIMEOUT) -> Run:
        """The awaitable twin of :meth:`wait` (``await run`` uses the default deadline)."""
        check_timeout(timeout)
        try:
            await asyncio.wait_for(self._gather(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise JobTimeoutError(
                f"run {self.id}: {sum(not j.done for j in self.jobs)} of {len(self.jobs)} jobs still running after "
                f"{timeout} s. They go on: await the run again, or run.cancel().",
                job=None,
            ) from None
        return self._outcome()

    def _outcome(self) -> Run:
        lost = tuple(job for job in self.jobs if job.status == "failed" and job._record.error_code == "storage_error")
        if lost:
            raise StorageError(
                f"run {self.id}: {len(lost)} of {len(self.jobs)} jobs ended because their files could not be written. "
                f"{lost[0].id}: {lost[0]._record.error_message}",
                run_dir=self.run_dir,
                jobs=lost,
            )
        return self

    # ------------------------------------------------------------------ acting
    def cancel(self) -> None:
        """Cancel every unfinished job (remote jobs deleted where the server allows). Resumable.

        Safe from any thread: it returns once the loop has cancelled them all, so no create leaves after it
        returns (one already on the wire is answered, and the job it made deleted). Handed over one job at a
        time and returning at once, it let the loop, busy meanwhile, send the creates it was about to send.
        """
        self._runner.runtime.call_and_wait(self._cancel_all)

    def _cancel_soon(self) -> None:
        """``cancel`` handed over, not waited for: a widget's click, whose thread must not wait while a running
        cell holds the loop (it did for 60 s, then raised TimeoutError); the loop cancels them all once free."""
        self._runner.runtime.call(self._cancel_all)

    def _cancel_all(self) -> None:
        # In one pass on the loop: no job of the run is given a place (and its create sent) midway.
        for job in list(self.jobs):
            self._runner.cancel(job)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the background work of the client that drives this run and close its connections.

        For a run from ``sora_nb.resume(run_dir)`` (which made its own client). Unfinished jobs stay
        resumable from the ledger.
        """
        runtime = self._runner.runtime
        runtime.run(self._runner.aclose(), timeout=timeout)

    def retry_failed(self) -> list[Job]:
        """Submit again every job that failed, was cancelled or expired; returns the new jobs.

        ``ambiguous`` jobs are not among them (their video may exist): ``run.reconcile()`` looks for them; nor
        are jobs already retried (their retry is, if it failed in its turn), so pressing Retry twice pays once;
        nor jobs the disk ended (``storage_error``: their video may exist too): ``sora_nb.resume`` finishes them.
        """
        retried = self._retries()
        return self.submit(
            [
                dataclasses.replace(job.spec, retry_of=job.id)
                for job in self.failed
                if job.status != "ambiguous" and job.id not in retried and job._record.error_code != "storage_error"
            ]
        )

    def _retry(self, job: Job) -> Job:
        """``job.retry()``: a new job with the same request (a storyboard makes a new take of its shot)."""
        return self.submit([dataclasses.replace(job.spec, retry_of=job.id)])[0]

    def _retry_refusal_of(self, job: Job) -> str | None:
        """Why this run would refuse ``job.retry()`` beyond the rules of any job (``None``: it would not)."""
        return None

    def _retries(self) -> dict[str, Job]:
        """The jobs of this run that retry another, by the id of the job they retry."""
        return {job.spec.retry_of: job for job in list(self.jobs) if job.spec.retry_of is not None}

    def reconcile(self, timeout: float | None = DEFAULT_RECONCILE_TIMEOUT) -> Run:
        """Look again for the jobs whose create's fate is unknown (``ambiguous``), and adopt what is found.

        Blocking (up to ``timeout`` seconds) until each was decided: found jobs carry on (``run.wait()``),
        jobs a working search of the server proves absent are sent again, the rest stay ``ambiguous``.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> run = client.sweep(prompt=["a corgi surfing"]).start()
        >>> run.wait(timeout=60).reconcile().wait(timeout=60).counts()
        {'completed': 1}
        >>> client.close()
        """
        self._runner.runtime.run(self._runner.reconcile(list(self.jobs)), timeout=timeout)
        return self

    def audit(self, timeout: float | None = DEFAULT_RECONCILE_TIMEOUT) -> AuditReport:
        """Hold this run's ledger against the server's own list: did anything get paid twice, or lost?

        Returns an :class:`~sora_nb.AuditReport`: orphans (jobs on the server matching this run's requests,
        made in its time window, that no job claims), jobs whose remote job is gone, remote ids held by two
        jobs, and ambiguous jobs; where the service cannot list jobs, what it could not check.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> run = client.sweep(prompt=["a corgi surfing"], repeats=2).start()
        >>> report = run.wait(timeout=60).audit()
        >>> report.ok, report.claimed, report.orphans
        (True, 2, [])
        >>> client.close()
        """
        from ._audit import audit_run

        return self._runner.runtime.run(audit_run(self._runner, self), timeout=timeout)

    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call ``callback(job)`` on the loop after any job of the run changes."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    # ------------------------------------------------------------------ runner side
    def _next_seq(self, *, after: int | None = None) -> int:
        """The next job's sequence number (thread-safe; ``after`` moves past an existing one)."""
        with self._seq_lock:
            self._seq = max(self._seq, after) if after is not None else self._seq + 1
            return self._seq

    def _resolve(self, relative: str | None) -> Path | None:
        """A path the ledger keeps relative to the run directory, made absolute."""
        if relative is None:
            return None
        if ".." in Path(relative).parts:
            return (self.run_dir / relative).resolve()
        # The run directory is resolved once: a gallery page asks for 2 paths a tile at every redraw, and
        # resolving each (a system call per path component) blocked a kernel's loop for > 1 s in a
        # 1,000-job displayed sweep.
        if self._resolved_dir is None:
            self._resolved_dir = self.run_dir.resolve()
        return self._resolved_dir / relative

    def _ledger(self) -> Ledger | None:
        """The ledger that holds this run's jobs, while its runner has it open."""
        return self._runner.ledger_of(self)

    def _videos(self) -> list[Job]:
        """The videos the run is judged and compared by: every job (a sweep of storyboards: the joined ones)."""
        return list(self.jobs)

    def _rows_version(self) -> tuple[object, ...]:
        """Changes when :meth:`to_dataframe` may: a job added or changed, or the ledger written (metrics
        and scores are read from it, and ``run.measure()`` or another process writes them without changing
        a job of this run); see :func:`~sora_nb._ledger.ledger_version`."""
        from ._ledger import ledger_version

        return self._changes, len(self.jobs), ledger_version(self.run_dir, self._ledger())

    def _latest_jobs(self) -> list[Job]:
        """Each request's latest job, in run order (``_display.latest_jobs(run.jobs)``), from an index
        that reads only the jobs added since the last call: jobs are only ever appended, and a job's spec
        never changes. Three redraws a second of a 10,000-job run's progress hashed 30,000 specs each."""
        with self._latest_lock:
            seen = self._latest_seen
            added = self.jobs[seen:]
            for job in added:
                self._latest.pop(job.spec, None)  # keep run order of the latest attempts
                self._latest[job.spec] = job
            self._latest_seen = seen + len(added)
            return list(self._latest.values())

    def _job_changed(self, job: Job) -> None:
        self._changes += 1
        for callback in list(self._observers):
            try:
                callback(job)
            except Exception:
                logger.exception("run observer %r failed", callback)

    # ------------------------------------------------------------------ results
    def to_dataframe(self) -> pandas.DataFrame:
        """One row per job: the sweep axes, status, timings, costs and file paths (see ``sora_nb.COLUMNS``).

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> run = client.sweep(prompt="a corgi surfing", model=["sora-2", "sora-2-pro"]).start()
        >>> df = run.wait(timeout=60).to_dataframe()
        >>> df[["model", "status", "seconds_generated"]]
                model     status  seconds_generated
        0      sora-2  completed                4.0
        1  sora-2-pro  completed                4.0
        >>> all(df["video_path"].str.endswith(".mp4"))  # paths to the files on disk
        True
        >>> client.close()
        """
        return self._dataframe_of(self.jobs)

    def _dataframe_of(self, jobs: Sequence[Job], *, page: bool = False) -> pandas.DataFrame:
        """:meth:`to_dataframe`'s rows of ``jobs`` only; ``page``: only their scores are read (a table's
        page of a 10,000-job run costs what its 50 rows cost, on the loop that shows it)."""
        from ._judging import scores_of
        from ._results import records_to_dataframe

        records = [dataclasses.replace(job._record) for job in jobs]
        checksums = [r.checksum for r in records if r.checksum] if page else None
        scores = scores_of(self._ledger(), self.run_dir, checksums)
        return records_to_dataframe(records, run_dir=self.run_dir, axes=self.axes, run_id=self.id, scores=scores)

    # ------------------------------------------------------------------ judging (sora_nb._judging)
    def measure(
        self, executor: concurrent.futures.Executor | None = None, *, timeout: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Measure every finished video that lacks a metric (old runs, newly registered metrics).

        Runs are measured after each download anyway; this fills in the rest. The built-in metrics run
        in ``executor`` (any :class:`concurrent.futures.Executor`: a process pool, a dask
        ``Client.get_executor()``...) or sora_nb's process pool; registered ones there too, or in a
        thread of this process. ``progress(done, total)`` is called after each video. Returns how many
        videos were measured; the values are in ``run.to_dataframe()``'s ``metric_*`` columns.

        >>> import sora_nb, concurrent.futures
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> run = client.sweep(prompt="a corgi surfing").start().wait(timeout=60)
        >>> run.measure()  # already measured after its download
        0
        >>> def prompt_words(path, spec):
        ...     return len(spec["prompt"].split())
        >>> _ = sora_nb.register_metric("prompt_words", prompt_words)
        >>> with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ...     run.measure(pool)
        1
        >>> run.to_dataframe()["metric_prompt_words"].tolist()
        [3]
        >>> sora_nb.unregister_metric("prompt_words"); client.close()
        """
        from ._judging import measure_records

        ledger = self._ledger()
        if ledger is None:
            return 0
        records = [dataclasses.replace(job._record) for job in self.jobs]
        return measure_records(
            ledger, records, executor=executor, profile=self._runner.profile.name, progress=progress, timeout=timeout
        )

    async def measure_async(
        self, executor: concurrent.futures.Executor | None = None, *, timeout: float | None = None
    ) -> int:
        """The awaitable twin of :meth:`measure`: the waiting happens in a thread, the loop stays free."""
        return await asyncio.to_thread(self.measure, executor, timeout=timeout)

    def rate(
        self, job: Job | str, *, stars: int | None = None, tags: Iterable[str] = (), note: str = "",
        rater: str | None = None,
    ) -> int:
        """Record a person's rating of a video (1-5 stars, tags, a note), durably in the run's ledger.

        Several raters may rate the same video; the DataFrame shows the mean (``stars_mean``), the
        number of ratings and the tags. ``rater`` defaults to your login name. Returns the judgment's id.

        Raises:
            ValueError: the job is not a completed job of this run, or stars is not 1-5.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> run = client.sweep(prompt="a corgi surfing", model=["sora-2", "sora-2-pro"]).start().wait(timeout=60)
        >>> a, b = run.jobs
        >>> _ = run.rate(a, stars=4, tags=("sharp",), rater="ana"); _ = run.rate(a, stars=2, rater="bo")
        >>> run.to_dataframe()[["model", "tags", "stars_mean", "ratings"]]
                model   tags  stars_mean  ratings
        0      sora-2  sharp         3.0        2
        1  sora-2-pro                NaN        0
        >>> client.close()
        """
        from ._judging import add_rating

        write = functools.partial(add_rating, self._judging_ledger(), _job_id(job), stars=stars, tags=tags,
                                  note=note, rater=rater or _login())
        return self._runner.runtime.call_and_wait(write)  # on the loop: one writer (DESIGN.md)

    def vote(self, a: Job | str, b: Job | str, *, winner: str, rater: str | None = None) -> int:
        """Record a blind pairwise vote between two videos: ``winner`` is ``"a"``, ``"b"``, ``"tie"`` or
        ``"both_bad"``. Durable in the ledger; returns the judgment's id. ``run.leaderboard()`` ranks by them.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> run = client.sweep(prompt="a corgi surfing", model=["sora-2", "sora-2-pro"]).start().wait(timeout=60)
        >>> a, b = run.jobs
        >>> for _ in range(3):
        ...     _ = run.vote(b, a, winner="a", rater="ana")
        >>> run.leaderboard(by="model")[["model", "wins", "losses", "ties", "n"]]
                model  wins  losses  ties  n
        0  sora-2-pro     3       0     0  3
        1      sora-2     0       3     0  3
        >>> client.close()
        """
        from ._judging import add_vote

        write = functools.partial(add_vote, self._judging_ledger(), _job_id(a), _job_id(b), winner=winner,
                                  rater=rater or _login())
        return self._runner.runtime.call_and_wait(write)

    def undo_judgment(self, *, rater: str | None = None) -> dict[str, Any] | None:
        """Withdraw the last rating or vote still in force (of ``rater``, or of anyone); returns it, or None.

        The ledger keeps the row, marked withdrawn; DataFrames and leaderboards stop counting it.
        """
        from ._judging import undo_last

        return self._runner.runtime.call_and_wait(functools.partial(undo_last, self._judging_ledger(), rater=rater))

    def judgments(self, *, include_undone: bool = False) -> pandas.DataFrame:
        """Every rating and vote of the run, oldest first: ``kind`` (rating or vote), ``rater``,
        ``job_id`` (``a`` of a vote), ``other_id`` (``b``), ``winner``, ``stars``, ``tags``, ``note``,
        ``created_at`` (and ``undone_at`` with ``include_undone=True``)."""
        from ._judging import judgments_frame

        return judgments_frame(self._judging_ledger(), include_undone=include_undone)

    def leaderboard(self, by: str = "model", using: str = "votes", *, seed: int = 0) -> pandas.DataFrame:
        """Rank the values of an axis: ``using="votes"`` (Bradley-Terry from the pairwise votes),
        ``"stars"`` (mean rating) or a metric (``"motion"``, ``"sharpness"``...), with a 95 % bootstrap
        interval, wins/losses/ties, n, and the metric means. ``.plot()`` draws it. See ``run.vote``."""
        from ._judging import read_judgments
        from ._leaderboard import leaderboard

        frame = self._dataframe_of(self._videos())
        return leaderboard(frame, read_judgments(self._judging_ledger()), by=by, using=using, seed=seed)

    def _judging_ledger(self) -> Ledger:
        ledger = self._ledger()
        if ledger is None:
            raise ValueError(
                f"run {self.id} has no open ledger: no jobs yet, or its client is closed. Fix: wait for its "
                f"videos, or sora_nb.resume({str(self.run_dir)!r}) to judge it again."
            )
        return ledger

    # ------------------------------------------------------------------ display (needs the notebook extra)
    def gallery(self, **options: Any) -> ipywidgets.VBox:
        """Thumbnails of this run in a grid; click one to play it. Filter by status and any axis.

        ``options`` are those of :func:`sora_nb.ui.gallery`; the widget is a ``sora_nb.ui.Gallery``.
        """
        from .ui import gallery  # type: ignore[import-not-found, unused-ignore]

        return gallery(self, **options)

    def compare(self, rows: str = "prompt", cols: str = "model", **options: Any) -> ipywidgets.VBox:
        """The run's videos pivoted by two axes, with synchronised play/pause.

        ``options`` are those of :func:`sora_nb.ui.compare`; the widget is a ``sora_nb.ui.CompareGrid``.
        """
        from .ui import compare

        return compare(self, rows=rows, cols=cols, **options)

    def review(self, **options: Any) -> ipywidgets.VBox:
        """A widget to rate this run's videos one at a time (stars, tags, a note); see ``sora_nb.ui.review``."""
        from .ui import review

        return review(self, **options)

    def arena(self, by: str = "model", **options: Any) -> ipywidgets.VBox:
        """A widget for blind A/B votes across one axis; see ``sora_nb.ui.arena`` and :meth:`vote`."""
        from .ui import arena

        return arena(self, by=by, **options)

    def table(self, **options: Any) -> ipywidgets.VBox:
        """The run's DataFrame with thumbnails, sortable.

        ``options`` are those of :func:`sora_nb.ui.table`; the widget is a ``sora_nb.ui.ResultsTable``.
        """
        from .ui import table

        return table(self, **options)

    def _repr_html_(self) -> str:
        from ._display import run_html

        return run_html(self)

    def _ipython_display_(self) -> None:
        try:
            from .ui import display_run
        except ImportError:  # no ipywidgets (the notebook extra): the one-line summary
            from ._display import display_html

            display_html(self._repr_html_())
        else:
            display_run(self)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        return f"<Run {self.id} {len(self.jobs)} jobs: {counts or 'none'} at {str(self.run_dir)!r}>"


def _job_id(job: Job | str) -> str:
    if isinstance(job, Job):
        return job.id
    if isinstance(job, str):
        return job
    raise TypeError(f"expected a Job of this run or its id (a str), not {type(job).__name__}.")


def _login() -> str:
    """Who is judging, when the caller does not say: the login name (it is not a secret)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (some containers)
        return "anonymous"
