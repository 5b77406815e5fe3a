"""Jobs and runs: the live objects a user holds. They show state; the runner changes it.

A :class:`Job` is one video request; a :class:`Run` is a group of jobs sharing a run directory and its
ledger. Both return at once and finish in the background; both can be awaited in a notebook
(``await job``) or waited on with a deadline in scripts (``job.wait(timeout=600)``). State changes
happen only on the runtime's loop; observers (widgets) are called there after each change.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _catalog
from ._errors import JobFailedError, JobTimeoutError, StorageError, ValidationError
from ._redact import logger
from ._types import TERMINAL_STATUSES, JobSpec, VideoError
from ._validation import check_timeout

if TYPE_CHECKING:
    import pandas

    from ._audit import AuditReport
    from ._ledger import JobRecord
    from ._profiles import Profile
    from ._runlock import RunLock
    from ._runner import Runner
    from ._runtime import Runtime

__all__ = ["Job", "Run"]

Observer = Callable[[Any], None]

DEFAULT_JOB_TIMEOUT = 3600.0
DEFAULT_RUN_TIMEOUT = 6 * 3600.0
DEFAULT_RECONCILE_TIMEOUT = 300.0


class Job:
    """One video job: live, observable and awaitable.

    >>> import sora_nb
    >>> client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root=getfixture("tmp_path"))
    >>> job = client.generate("a corgi surfing at sunset", seconds="4")
    >>> job.wait(timeout=60).status
    'completed'
    >>> job.video_path.suffix
    '.mp4'
    >>> client.close()
    """

    def __init__(self, runner: Runner, run: Run, record: JobRecord) -> None:
        self._runner = runner
        self.run = run
        self.record = record
        self._future: concurrent.futures.Future[Job] = concurrent.futures.Future()
        # Only the job's end may finish it: a waiter that gives up (a deadline, an interrupted cell)
        # cancels its asyncio.wrap_future(), which would cancel a pending future too, not a running one.
        self._future.set_running_or_notify_cancel()
        self._observers: list[Observer] = []
        self._task: asyncio.Task[None] | None = None
        self._create_on_wire = False  # a request that may make the job on the server is unanswered
        self._cancel_requested = False  # set while a create is on the wire; acted on when it answers
        self.bytes_downloaded = 0

    # ------------------------------------------------------------------ what the user reads
    @property
    def id(self) -> str:
        """The local job id (unique in its run)."""
        return self.record.job_id

    @property
    def remote_id(self) -> str | None:
        """The server's id for the job (``video_...``), once the create was answered."""
        return self.record.remote_id

    @property
    def spec(self) -> JobSpec:
        return self.record.spec

    @property
    def runtime(self) -> Runtime:
        """The event loop that owns this job's state (observers are called there)."""
        return self._runner.runtime

    @property
    def profile(self) -> Profile:
        """What the job's server can do (progress, remix, extend, delete, posters...)."""
        return self._runner.profile

    prompt = property(lambda self: self.record.spec.prompt, doc="The prompt as written (style applied at send).")
    model = property(lambda self: self.record.spec.model, doc="The model.")
    size = property(lambda self: self.record.spec.size, doc="``WIDTHxHEIGHT``.")
    seconds = property(lambda self: self.record.spec.seconds, doc="Duration, a string as in the contract.")
    style = property(lambda self: self.record.spec.style, doc="The style preset, or None.")

    @property
    def status(self) -> str:
        """``pending_submit`` before the create is answered, then the server's (normalised) status.

        ``ambiguous``: the create may have made a job, but its answer was lost and the server could not be
        searched for it; it is not sent again (that could pay twice). ``job.reconcile()`` looks again.
        """
        return self.record.status

    @property
    def progress(self) -> int | None:
        """0-100 as reported by the server; ``None`` when the server does not report progress."""
        return self.record.progress

    @property
    def error(self) -> VideoError | None:
        """Why the job failed (code and message), or ``None``."""
        if self.record.error_message is None and self.record.error_code is None:
            return None
        return VideoError(code=self.record.error_code, message=self.record.error_message or "")

    @property
    def video_path(self) -> Path | None:
        """The MP4 on disk, once downloaded."""
        return self.run.resolve(self.record.video_path)

    @property
    def thumbnail_path(self) -> Path | None:
        """The WebP poster on disk, once downloaded (made locally when the server has none)."""
        return self.run.resolve(self.record.thumbnail_path)

    @property
    def done(self) -> bool:
        """True once the job has finished: downloaded, failed, cancelled or expired."""
        return self._future.done()

    @property
    def elapsed(self) -> float | None:
        """Seconds since the create was sent (until completion when finished)."""
        start = self.record.submitted_at
        if start is None:
            return None
        end = self.record.completed_at if self.record.status in TERMINAL_STATUSES else None
        return max(0.0, (end or time.time()) - start)

    @property
    def eta(self) -> float | None:
        """Estimated seconds until completion from the progress rate, or ``None`` when unknown."""
        started, progress = self.record.started_at, self.record.progress
        if self.done or started is None or not progress or progress >= 100:
            return None
        spent = time.time() - started
        return max(0.0, spent * (100 - progress) / progress)

    # ------------------------------------------------------------------ waiting
    def wait(self, timeout: float | None = DEFAULT_JOB_TIMEOUT) -> Job:
        """Block until the job finishes; return it, or raise :class:`JobFailedError`.

        Raises :class:`JobTimeoutError` after ``timeout`` seconds (the job goes on; wait again or cancel).

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> job = client.generate("a corgi surfing at sunset")
        >>> job.wait(timeout=60) is job, job.status
        (True, 'completed')
        >>> try:
        ...     client.generate("a corgi surfing [fail]").wait(timeout=60)  # the simulator refuses "[fail]"
        ... except sora_nb.JobFailedError as exc:
        ...     print(exc.job.status, exc.job.error.code)
        failed moderation_blocked
        >>> client.close()
        """
        check_timeout(timeout)
        runtime = self._runner.runtime
        try:
            if runtime.in_loop_thread():
                runtime.run(self._await(), timeout=timeout)
            else:
                self._future.result(timeout)
        except (TimeoutError, concurrent.futures.TimeoutError):
            raise JobTimeoutError(
                f"job {self.id} is still {self.status} after {timeout} s. It goes on in the background: "
                "wait again, `await job`, or job.cancel().",
                job=self,
            ) from None
        return self._outcome()

    def __await__(self) -> Generator[Any, None, Job]:
        return self.wait_async().__await__()

    async def wait_async(self, timeout: float | None = DEFAULT_JOB_TIMEOUT) -> Job:
        """The awaitable twin of :meth:`wait` (``await job`` uses the default deadline)."""
        check_timeout(timeout)
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._future), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise JobTimeoutError(
                f"job {self.id} is still {self.status} after {timeout} s. It goes on in the background: "
                "await it again, or job.cancel().",
                job=self,
            ) from None
        return self._outcome()

    async def _await(self) -> Job:
        await asyncio.wrap_future(self._future)
        return self._outcome()

    def _outcome(self) -> Job:
        if self.status == "ambiguous":
            sent = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.record.submitted_at or 0))
            raise JobFailedError(
                f"job {self.id} ({self.prompt[:40]!r}) is ambiguous: its create, sent at {sent}, may have made a job "
                "on the server, which could not be searched for it, so it was not sent again (that could pay "
                f"twice). Fix: job.reconcile() or run.reconcile() once the server can list jobs; `sora-nb audit "
                f"{self.run.run_dir}` shows what the server holds.",
                job=self,
            )
        if self.status not in TERMINAL_STATUSES or (self.status == "completed" and self.record.downloaded_at is None):
            # Ended without an end of its own: its client was closed (a crash would not have told us).
            stage = "downloading" if self.status == "completed" else self.status
            raise JobFailedError(
                f"job {self.id} ({self.prompt[:40]!r}) was stopped while {stage}: its client was closed. "
                f"It is kept in the run's ledger. Fix: sora_nb.resume({str(self.run.run_dir)!r}) to carry on.",
                job=self,
            )
        if self.status != "completed":
            error = self.error
            reason = f"{error.code}: {error.message}" if error else self.status
            # A disk that refused the job's files says its own fix (free space, resume); others are the request's.
            fix = " Fix: change the prompt or parameters and job.retry()."
            if error and error.code == "storage_error":
                fix = ""
            raise JobFailedError(f"job {self.id} ({self.prompt[:40]!r}) ended {self.status}: {reason}.{fix}", job=self)
        return self

    # ------------------------------------------------------------------ acting
    def cancel(self) -> None:
        """Stop polling and delete the remote job where the server allows it. Safe from any thread."""
        self._runner.runtime.call(self._runner.cancel, self)

    def delete(self) -> concurrent.futures.Future[Any]:
        """Delete the server's copy of this finished job (its files on disk stay). Safe from any thread.

        Returns a future of the server's answer. A job still running is cancelled instead (which
        deletes it remotely where the server allows).
        """
        runner, remote_id = self._runner, self.remote_id
        if not runner.profile.supports_delete:
            raise ValueError(f"the {runner.profile.name!r} server cannot delete videos; nothing was sent.")
        if not self.done:
            self.cancel()
            cancelled: concurrent.futures.Future[Any] = concurrent.futures.Future()
            cancelled.set_result(None)
            return cancelled
        if remote_id is None:
            raise ValueError(f"job {self.id} never reached the server; there is nothing to delete.")

        async def _delete() -> Any:
            return await runner.api.delete(remote_id)

        return runner.runtime.submit(_delete())

    def remix(self, prompt: str) -> Job:
        """A new job: this completed video, remixed with a new prompt."""
        return self._derive("remix", prompt, self.seconds)

    def extend(self, prompt: str, *, seconds: str | int = "4") -> Job:
        """A new job: this completed video, continued for ``seconds`` more with a new prompt."""
        return self._derive("extend", prompt, str(seconds))

    def retry(self) -> Job:
        """A new job with the same request (the failed one stays in the run's history).

        Refused for an ``ambiguous`` job, whose create may already have made (and billed) the video, and for
        one the disk ended (``storage_error``): its request was fine, and ``sora_nb.resume`` finishes it.
        """
        if self.status == "ambiguous":
            raise ValueError(
                f"job {self.id} is ambiguous: its create may already have made the video, so a retry could pay "
                "twice. Fix: job.reconcile() to look for it again; if you know the server never made it, "
                "job.run.submit([job.spec])."
            )
        if self.record.error_code == "storage_error":
            raise ValueError(
                f"job {self.id} was ended by the disk, not by the server: its video may already be made (and paid "
                f"for), so a retry could pay twice. Fix: free space, then sora_nb.resume({str(self.run.run_dir)!r}) "
                "finishes it; to pay for a new one anyway, job.run.submit([job.spec])."
            )
        retried = self.run._retries().get(self.id)
        if retried is not None:
            raise ValueError(
                f"job {self.id} was already retried as {retried.id} ({retried.status}); a second retry would pay "
                f"again. Fix: retry that job if it failed, or job.run.submit([job.spec]) for another video on purpose."
            )
        return self.run.submit([dataclasses.replace(self.spec, retry_of=self.id)])[0]

    def reconcile(self, timeout: float | None = DEFAULT_RECONCILE_TIMEOUT) -> Job:
        """Look again for the job an ``ambiguous`` job's create may have made (blocking; other jobs: no-op).

        Found: adopted, and the job carries on (wait for it as before). Proven absent by a search of the
        server's list that worked: sent again. The server still cannot be searched: still ``ambiguous``.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> job = client.generate("a corgi surfing").wait(timeout=60)
        >>> job.reconcile().status  # a job that is not ambiguous is left as it is
        'completed'
        >>> client.close()
        """
        self._runner.runtime.run(self._runner.reconcile([self]), timeout=timeout)
        return self

    def _derive(self, kind: Any, prompt: str, seconds: str) -> Job:
        if self.status != "completed" or not self.remote_id:
            raise ValueError(
                f"job {self.id} is {self.status}; only a completed video can be used for {kind}. "
                "Fix: wait for it (`await job` or job.wait()) first."
            )
        if kind == "extend":
            self._check_extension()
        spec = dataclasses.replace(
            self.spec, prompt=prompt, kind=kind, parent_id=self.remote_id, seconds=seconds,
            axes={**self.spec.axes, "prompt": prompt, "parent": self.id},
        )
        return self.run.submit([spec])[0]

    def _extensions_so_far(self) -> int | None:
        """How many times this job's video was extended, from the run's own jobs; ``None`` when its
        history leaves the run (the server then decides alone)."""
        by_id = {job.id: job for job in self.run.jobs}
        count, job = 0, self
        while job.spec.kind == "extend":
            count += 1
            parent = by_id.get(str(job.spec.axes.get("parent")))
            if parent is None:
                return None
            job = parent
        return count

    def _check_extension(self) -> None:
        """The contract's limit on a chain of extensions, checked before anything is sent. (Its 120 s
        total cannot be passed within it: the durations are at most 12 s.)"""
        profile = self.profile
        if profile.adapter != "contract" or not profile.validate_models:
            return  # other services have limits of their own
        count = self._extensions_so_far()
        if count is not None and count >= _catalog.MAX_EXTENSIONS:
            raise ValidationError(
                f"job {self.id}'s video was already extended {count} times; a video takes at most "
                f"{_catalog.MAX_EXTENSIONS} extensions. Fix: remix it, or start a new video with client.generate().",
                field="video",
            )

    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call ``callback(job)`` on the loop after every state change; returns an unsubscribe function."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    # ------------------------------------------------------------------ runner side (loop thread only)
    def _changed(self) -> None:
        for callback in list(self._observers):
            try:
                callback(self)
            except Exception:  # an observer's bug must not stop the job
                logger.exception("job observer %r failed", callback)
        self.run._job_changed(self)

    def _finish(self) -> None:
        if not self._future.done():
            self._future.set_result(self)
        self._changed()

    def _restart(self) -> None:
        """Make a finished job waitable again (an ambiguous job that reconciliation carries on)."""
        if self._future.done():
            self._future = concurrent.futures.Future()
            self._future.set_running_or_notify_cancel()

    def __repr__(self) -> str:
        progress = "" if self.progress is None else f" {self.progress}%"
        return f"<Job {self.id} {self.status}{progress} {self.model} {self.size} {self.seconds}s {self.prompt[:30]!r}>"

    def _repr_html_(self) -> str:
        from ._display import job_html

        return job_html(self)

    def _ipython_display_(self) -> None:
        from ._display import display_job

        display_job(self)


class Run:
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
        self._slots: asyncio.Semaphore | None = None
        self.run_dir = Path(run_dir)
        self.axes = axes
        self.meta = meta
        self.jobs: list[Job] = []
        self._observers: list[Observer] = []
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.ledger: Any = None  # opened on the loop thread by the runner
        self.lock: RunLock | None = None  # held while a client drives the run (one driver per run)

    @property
    def id(self) -> str:
        return str(self.meta.get("run_id", self.run_dir.name))

    @property
    def runtime(self) -> Runtime:
        """The event loop that owns this run's state (observers are called there)."""
        return self._runner.runtime

    @property
    def profile(self) -> Profile:
        """What the run's server can do (progress, remix, extend, delete, posters...)."""
        return self._runner.profile

    @property
    def slots(self) -> asyncio.Semaphore:
        """This run's own cap on jobs in flight (the client's cap applies too); loop thread only."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrency or 1_000_000)
        return self._slots

    def next_seq(self, *, after: int | None = None) -> int:
        """The next job's sequence number (thread-safe; ``after`` moves past an existing one)."""
        with self._seq_lock:
            self._seq = max(self._seq, after) if after is not None else self._seq + 1
            return self._seq

    def resolve(self, relative: str | None) -> Path | None:
        return None if relative is None else (self.run_dir / relative).resolve()

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
        futures = [job._future for job in self.jobs]
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
        lost = tuple(job for job in self.jobs if job.status == "failed" and job.record.error_code == "storage_error")
        if lost:
            raise StorageError(
                f"run {self.id}: {len(lost)} of {len(self.jobs)} jobs ended because their files could not be written. "
                f"{lost[0].id}: {lost[0].record.error_message}",
                run_dir=self.run_dir,
                jobs=lost,
            )
        return self

    # ------------------------------------------------------------------ acting
    def cancel(self) -> None:
        """Cancel every unfinished job (remote jobs deleted where the server allows). Resumable."""
        for job in self.jobs:
            if not job.done:
                job.cancel()

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
                if job.status != "ambiguous" and job.id not in retried and job.record.error_code != "storage_error"
            ]
        )

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

    def _job_changed(self, job: Job) -> None:
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
        from ._judging import scores_of
        from ._results import records_to_dataframe

        records = [dataclasses.replace(job.record) for job in self.jobs]
        scores = scores_of(self.ledger, self.run_dir)
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

        if self.ledger is None:
            return 0
        records = [dataclasses.replace(job.record) for job in self.jobs]
        return measure_records(
            self.ledger, records, executor=executor, profile=self.profile.name, progress=progress, timeout=timeout
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
        return self.runtime.call_and_wait(write)  # on the loop: one writer (DESIGN.md)

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
        return self.runtime.call_and_wait(write)

    def undo_judgment(self, *, rater: str | None = None) -> dict[str, Any] | None:
        """Withdraw the last rating or vote still in force (of ``rater``, or of anyone); returns it, or None.

        The ledger keeps the row, marked withdrawn; DataFrames and leaderboards stop counting it.
        """
        from ._judging import undo_last

        return self.runtime.call_and_wait(functools.partial(undo_last, self._judging_ledger(), rater=rater))

    def judgments(self, *, include_undone: bool = False) -> pandas.DataFrame:
        """Every rating and vote of the run, oldest first: ``kind`` (rating or vote), ``rater``,
        ``job_id`` (``a`` of a vote), ``other_id`` (``b``), ``winner``, ``stars``, ``tags``, ``note``,
        ``created_at`` (and ``undone_at`` with ``include_undone=True``)."""
        from ._judging import judgments_frame

        return judgments_frame(self._judging_ledger(), include_undone=include_undone)

    def leaderboard(self, by: str = "model", using: str = "votes", *, seed: int = 0) -> Any:
        """Rank the values of an axis: ``using="votes"`` (Bradley-Terry from the pairwise votes),
        ``"stars"`` (mean rating) or a metric (``"motion"``, ``"sharpness"``...), with a 95 % bootstrap
        interval, wins/losses/ties, n, and the metric means. ``.plot()`` draws it. See ``run.vote``."""
        from ._judging import read_judgments
        from ._leaderboard import leaderboard

        return leaderboard(self.to_dataframe(), read_judgments(self._judging_ledger()), by=by, using=using, seed=seed)

    def _judging_ledger(self) -> Any:
        if self.ledger is None:
            raise ValueError(
                f"run {self.id} has no open ledger: no jobs yet, or its client is closed. Fix: wait for its "
                f"videos, or sora_nb.resume({str(self.run_dir)!r}) to judge it again."
            )
        return self.ledger

    # ------------------------------------------------------------------ display (needs the notebook extra)
    def gallery(self, **options: Any) -> Any:
        """Thumbnails of this run in a grid; click one to play it. Filter by status and any axis."""
        from .ui import gallery  # type: ignore[import-not-found, unused-ignore]

        return gallery(self, **options)

    def compare(self, rows: str = "prompt", cols: str = "model", **options: Any) -> Any:
        """The run's videos pivoted by two axes, with synchronised play/pause."""
        from .ui import compare

        return compare(self, rows=rows, cols=cols, **options)

    def review(self, **options: Any) -> Any:
        """A widget to rate this run's videos one at a time (stars, tags, a note); see ``sora_nb.ui.review``."""
        from .ui import review

        return review(self, **options)

    def arena(self, by: str = "model", **options: Any) -> Any:
        """A widget for blind A/B votes across one axis; see ``sora_nb.ui.arena`` and :meth:`vote`."""
        from .ui import arena

        return arena(self, by=by, **options)

    def table(self, **options: Any) -> Any:
        """The run's DataFrame with thumbnails, sortable."""
        from .ui import table

        return table(self, **options)

    def _repr_html_(self) -> str:
        from ._display import run_html

        return run_html(self)

    def _ipython_display_(self) -> None:
        from ._display import display_run

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
