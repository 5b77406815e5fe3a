"""Jobs, the live objects a user holds for each video. They show state; the runner changes it.

A :class:`Job` is one video request; a :class:`~sora_nb.Run` (:mod:`sora_nb._run`) is a group of jobs sharing
a run directory and its ledger. Both return at once and finish in the background; both can be awaited in a notebook
(``await job``) or waited on with a deadline in scripts (``job.wait(timeout=600)``). State changes
happen only on the runtime's loop; observers (widgets) are called there after each change.

They hold no drive state: the runner keeps each job's task and each run's ledger, lock and cap, and
changes a job through the few ``_``-named entry points in the "runner side" sections (``_record``, the
job's ledger row, which the CLI and audit read too; ``_finish``, ``_changed``, ``_restart``,
``Run._next_seq``). The widgets follow a job or run on ``_runtime``, the loop that owns its state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import JobFailedError, JobTimeoutError, ValidationError
from ._redact import logger
from ._types import TERMINAL_STATUSES, JobSpec, JobStatus, VideoError
from ._validation import check_timeout

if TYPE_CHECKING:

    from ._ledger import JobRecord
    from ._profiles import Profile
    from ._run import Run
    from ._runner import Runner
    from ._runtime import Runtime

__all__ = ["DEFAULT_RECONCILE_TIMEOUT", "Driven", "Job", "Observer"]

Observer = Callable[[Any], None]

DEFAULT_JOB_TIMEOUT = 3600.0
DEFAULT_RECONCILE_TIMEOUT = 300.0


class Driven:
    """What a job and a run both read from the runner that drives them."""

    _runner: Runner

    @property
    def _runtime(self) -> Runtime:
        """The event loop that owns this object's state (observers are called there): for the widgets."""
        return self._runner.runtime

    @property
    def profile(self) -> Profile:
        """What the server can do (progress, remix, extend, delete, posters...)."""
        return self._runner.profile

    def _block(
        self, future: concurrent.futures.Future[Any], wait: Callable[[], Coroutine[Any, Any, Any]],
        timeout: float | None,
    ) -> None:
        """Block until ``future`` is done; on the loop's own thread (a notebook cell) by re-entering the loop
        with ``wait()``. Raises ``TimeoutError`` after ``timeout`` seconds, and what the future raises."""
        runtime = self._runner.runtime
        if runtime.in_loop_thread():
            runtime.run(wait(), timeout=timeout)
        else:
            future.result(timeout)


_WAITABLE_LOCK = threading.Lock()
"""Guards the making of a job's future against its end (rare, brief: one lock for every job)."""


class Job(Driven):
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
        self._record = record
        # What waiters wait on, made when the first one comes (see _future): a Future is a Condition, an RLock
        # and a deque, ~1 KB and 10 us to make, 10 MB and 0.1 s for a 10,000-job sweep that nobody waits
        # on job by job.
        self._waitable: concurrent.futures.Future[Job] | None = None
        # Whether the job ended, read without a lock: widgets ask every job of a 10,000-job run several times
        # a redraw, and Future.done() took ~1 us a call (12 ms for run.done).
        self._finished = False
        self._observers: list[Observer] = []
        self.bytes_downloaded = 0
        # Jobs ahead of this one in the service's queue while it waits (fal reports it), else None. Shown,
        # not kept: an observation of the last poll, like progress between ledger writes.
        self.queue_position: int | None = None

    # ------------------------------------------------------------------ what the user reads
    @property
    def id(self) -> str:
        """The local job id (unique in its run)."""
        return self._record.job_id

    @property
    def remote_id(self) -> str | None:
        """The server's id for the job (``video_...``), once the create was answered."""
        return self._record.remote_id

    @property
    def spec(self) -> JobSpec:
        return self._record.spec

    @property
    def backend(self) -> str | None:
        """The name of the pool backend the job was sent to (``None`` for a client of one server, or a
        pooled job not sent yet)."""
        return self._record.backend

    @property
    def profile(self) -> Profile:
        """What the server this job is sent to can do (in a pool: its backend's, once chosen)."""
        return self._runner.profile_for(self._record)

    prompt = property(lambda self: self._record.spec.prompt, doc="The prompt as written (style applied at send).")
    model = property(lambda self: self._record.spec.model, doc="The model.")
    size = property(lambda self: self._record.spec.size, doc="``WIDTHxHEIGHT``.")
    seconds = property(lambda self: self._record.spec.seconds, doc="Duration, a string as in the contract.")
    style = property(lambda self: self._record.spec.style, doc="The style preset, or None.")

    @property
    def status(self) -> JobStatus:
        """``pending_submit`` before the create is answered, then the server's (normalised) status.

        ``ambiguous``: the create may have made a job, but its answer was lost and the server could not be
        searched for it; it is not sent again (that could pay twice). ``job.reconcile()`` looks again.
        """
        return self._record.status

    @property
    def progress(self) -> int | None:
        """0-100 as reported by the server; ``None`` when the server does not report progress."""
        return self._record.progress

    @property
    def error(self) -> VideoError | None:
        """Why the job failed (code and message), or ``None``."""
        if self._record.error_message is None and self._record.error_code is None:
            return None
        return VideoError(code=self._record.error_code, message=self._record.error_message or "")

    @property
    def video_path(self) -> Path | None:
        """The MP4 on disk, once downloaded."""
        return self.run._resolve(self._record.video_path)

    @property
    def thumbnail_path(self) -> Path | None:
        """The WebP poster on disk, once downloaded (made locally when the server has none)."""
        return self.run._resolve(self._record.thumbnail_path)

    @property
    def done(self) -> bool:
        """True once the job has finished: downloaded, failed, cancelled or expired."""
        return self._finished

    @property
    def elapsed(self) -> float | None:
        """Seconds since the create was sent (until completion when finished)."""
        start = self._record.submitted_at
        if start is None:
            return None
        end = self._record.completed_at if self._record.status in TERMINAL_STATUSES else None
        return max(0.0, (end or time.time()) - start)

    @property
    def eta(self) -> float | None:
        """Estimated seconds until completion from the progress rate, or ``None`` when unknown."""
        started, progress = self._record.started_at, self._record.progress
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
        try:
            self._block(self._future, self._await, timeout)
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
            sent = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._record.submitted_at or 0))
            raise JobFailedError(
                f"job {self.id} ({self.prompt[:40]!r}) is ambiguous: its create, sent at {sent}, may have made a job "
                "on the server, which could not be searched for it, so it was not sent again (that could pay "
                f"twice). Fix: job.reconcile() or run.reconcile() once the server can list jobs; `sora-nb audit "
                f"{self.run.run_dir}` shows what the server holds.",
                job=self,
            )
        if self.status not in TERMINAL_STATUSES or (self.status == "completed" and self._record.downloaded_at is None):
            # Ended without an end of its own: its client was closed (a crash would not have told us).
            stage = "downloading" if self.status == "completed" else self.status
            raise JobFailedError(
                f"job {self.id} ({self.prompt[:40]!r}) was stopped while {stage}: its client was closed. "
                f"It is kept in the run's ledger. Fix: sora_nb.resume({str(self.run.run_dir)!r}) to carry on.",
                job=self,
            )
        if self.status != "completed":
            error = self.error
            # The server's message may end its own sentence: one period, not two, before the fix.
            reason = f"{error.code}: {error.message}".rstrip().rstrip(".") if error else self.status
            # A disk that refused the job's files, or a board's join, says its own fix (free space, resume);
            # others are the request's.
            fix = " Fix: change the prompt or parameters and job.retry()."
            if error and error.code in ("storage_error", "stitch_failed"):
                fix = ""
            raise JobFailedError(f"job {self.id} ({self.prompt[:40]!r}) ended {self.status}: {reason}.{fix}", job=self)
        return self

    # ------------------------------------------------------------------ acting
    def cancel(self) -> None:
        """Stop polling and delete the remote job where the server allows it. Safe from any thread: it
        returns once the loop has cancelled the job, so its create does not leave after (see ``Run.cancel``)."""
        self._runner.runtime.call_and_wait(self._runner.cancel, self)

    def _cancel_soon(self) -> None:
        """``cancel`` handed over, not waited for (a widget's click: see ``Run._cancel_soon``)."""
        self._runner.runtime.call(self._runner.cancel, self)

    def delete(self) -> concurrent.futures.Future[Any]:
        """Delete the server's copy of this finished job (its files on disk stay). Safe from any thread.

        Returns a future of the server's answer. A job still running is cancelled instead (which
        deletes it remotely where the server allows).
        """
        runner, record, remote_id = self._runner, self._record, self.remote_id
        profile = runner.profile_for(self._record)
        if not profile.capabilities.supports_delete:
            raise ValueError(f"the {profile.name!r} server cannot delete videos; nothing was sent.")
        if not self.done:
            self.cancel()
            cancelled: concurrent.futures.Future[Any] = concurrent.futures.Future()
            cancelled.set_result(None)
            return cancelled
        if remote_id is None:
            raise ValueError(f"job {self.id} never reached the server; there is nothing to delete.")

        async def _delete() -> Any:
            return await runner.delete_remote(record, remote_id)

        return runner.runtime.submit(_delete())

    def remix(self, prompt: str) -> Job:
        """A new job: this completed video, remixed with a new prompt."""
        return self._derive("remix", prompt, self.seconds)

    def extend(self, prompt: str, *, seconds: str | int = "4", characters: Sequence[object] = ()) -> Job:
        """A new job: this completed video, continued for ``seconds`` more with a new prompt.

        Extensions take no ``characters`` (the contract continues the video with whoever is in it): passing
        some raises :class:`sora_nb.ValidationError` saying so, before anything is sent.
        """
        if characters:
            raise ValidationError(
                "characters cannot be used on an extension: the server continues the video as it is and takes no "
                "new characters. Fix: drop characters= here, or client.generate(prompt, characters=[...]) for a "
                "new video with them.",
                field="characters",
            )
        return self._derive("extend", prompt, str(seconds))

    def retry(self) -> Job:
        """A new job with the same request (the failed one stays in the run's history).

        Refused for an ``ambiguous`` job, whose create may already have made (and billed) the video, and for
        one the disk ended (``storage_error``): its request was fine, and ``sora_nb.resume`` finishes it.
        A storyboard's shot is made again as ``board.redo(k)`` makes it: a new take, joined into the board.
        """
        refusal = self._retry_refusal()
        if refusal is not None:
            raise ValueError(refusal)
        return self.run._retry(self)

    def _retry_refusal(self) -> str | None:
        """Why :meth:`retry` would be refused now (the message it raises), or ``None`` when it may run.

        The one rule for both ``retry()`` and the job card's Retry button, so the button is never offered
        for a job whose retry could pay twice.
        """
        if self.status == "ambiguous":
            return (
                f"job {self.id} is ambiguous: its create may already have made the video, so a retry could pay "
                "twice. Fix: job.reconcile() to look for it again; if you know the server never made it, "
                "job.run.submit([job.spec])."
            )
        if self._record.error_code == "storage_error":
            return (
                f"job {self.id} was ended by the disk, not by the server: its video may already be made (and paid "
                f"for), so a retry could pay twice. Fix: free space, then sora_nb.resume({str(self.run.run_dir)!r}) "
                "finishes it; to pay for a new one anyway, job.run.submit([job.spec])."
            )
        own = self.run._retry_refusal_of(self)
        if own is not None:
            return own
        retried = self.run._retries().get(self.id)
        if retried is not None:
            return (
                f"job {self.id} was already retried as {retried.id} ({retried.status}); a second retry would pay "
                f"again. Fix: retry that job if it failed, or job.run.submit([job.spec]) for another video on purpose."
            )
        return None

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
            # A remix or an extension sends no characters (they are in the source video already).
            self.spec, prompt=prompt, kind=kind, parent_id=self.remote_id, seconds=seconds, characters=(),
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
        limit = self.profile.capabilities.max_extensions
        if limit is None:
            return  # not known: the server decides
        count = self._extensions_so_far()
        if count is not None and count >= limit:
            raise ValidationError(
                f"job {self.id}'s video was already extended {count} times; a video takes at most "
                f"{limit} extensions. Fix: remix it, or start a new video with client.generate().",
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

    @property
    def _future(self) -> concurrent.futures.Future[Job]:
        """What a waiter waits on (any thread): resolved once the job ends, made on first use."""
        future = self._waitable
        if future is None:
            with _WAITABLE_LOCK:  # against _finish on the loop: the job ends either before or after this
                future = self._waitable
                if future is None:
                    future = concurrent.futures.Future()
                    # Only the job's end may finish it: a waiter that gives up (a deadline, an interrupted
                    # cell) cancels its asyncio.wrap_future(), which would cancel a pending future too, not
                    # a running one.
                    future.set_running_or_notify_cancel()
                    if self._finished:
                        future.set_result(self)  # not kept: an ended job holds no future (see _finish)
                    else:
                        self._waitable = future
        return future

    def _finish(self) -> None:
        with _WAITABLE_LOCK:
            ended, self._finished = self._finished, True  # first: whoever the result wakes reads done as True
            # Its waiters hold it; the job need not (a Future is ~1.5 KB: 15 MB for a 10,000-job run waited
            # on). A waiter that comes later gets a resolved one (see _future).
            future, self._waitable = self._waitable, None
        if not ended and future is not None and not future.done():
            future.set_result(self)
        self._changed()

    def _restart(self) -> None:
        """Make a finished job waitable again (an ambiguous job that reconciliation carries on)."""
        with _WAITABLE_LOCK:
            if self._finished:
                self._finished = False
                self._waitable = None  # the next waiter gets a future of its own, pending

    def __repr__(self) -> str:
        progress = "" if self.progress is None else f" {self.progress}%"
        return f"<Job {self.id} {self.status}{progress} {self.model} {self.size} {self.seconds}s {self.prompt[:30]!r}>"

    def _repr_html_(self) -> str:
        from ._display import job_html

        return job_html(self)

    def _ipython_display_(self) -> None:
        try:
            from .ui import display_job
        except ImportError:  # no ipywidgets (the notebook extra): the HTML card
            from ._display import display_html

            display_html(self._repr_html_())
        else:
            display_job(self)
