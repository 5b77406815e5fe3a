"""The runner: how a submitted job becomes a video file.

``submit`` -> ledger row -> ``_create`` (ledger says *sending* first) -> ``_poll`` until terminal ->
``_download`` (video, thumbnail, checksum) -> ledger row updated -> observers told. Every transition
goes through :meth:`Runner._transition`, which commits to the ledger before the job object changes
(DESIGN.md invariant 2). Everything here runs on the runtime's loop.

Never pay twice (DESIGN.md invariant 3) is decided here, not in the contract client, because only the
runner knows every job of its runs: a create whose answer was lost is looked for in the server's list
while no create with the same prompt is on the wire (so a sibling's answer cannot arrive with the id the
search adopts), excluding every id already claimed at the moment it decides. Found: adopted. Proven
absent by a search that worked: sent again. The server could not be searched: the job is ``ambiguous``,
never re-sent, until ``run.reconcile()`` looks again.

The runner keeps the drive state (each job's task and create-on-the-wire flags, each run's lock, ledger
and cap), so that jobs and runs only show state. The module is over 500 lines on purpose: it is one
state machine, and the two rules above (ledger first, never pay twice) hold only if every transition,
create, search, cancel and close of it can be read in one place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import functools
import itertools
import os
import secrets
import sqlite3
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._contract import ContractClient, resending_while
from ._errors import (
    AmbiguousCreateError,
    APIError,
    NotFoundError,
    RateLimitError,
    RunLockedError,
    ServerError,
    SoraError,
    StorageError,
    TransportError,
    UnexpectedResponseError,
    storage_error,
)
from ._jobs import Job
from ._judging import measure_task, run_task_async
from ._ledger import LEDGER_FILE, JobRecord, Ledger
from ._media import make_thumbnail, own_seconds, sha256_file
from ._pace import Pacer
from ._polling import PollPolicy, PollState
from ._profiles import Profile
from ._redact import logger, redact
from ._run import Run
from ._runlock import RunLock
from ._runs import claimed_by_other_runs
from ._runtime import Runtime
from ._styles import apply_style
from ._types import TERMINAL_STATUSES, JobSpec, Video

__all__ = ["Runner"]

T = TypeVar("T")

_DISK_FAULTS = (OSError, sqlite3.OperationalError)
"""What a write to the ledger raises when the disk refuses it (full, read-only, over quota)."""
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO})
"""The errors of a disk that refuses to write a file (as opposed to a file that is not what it should be)."""

_TRANSIENT = (TransportError, ServerError, RateLimitError, UnexpectedResponseError)
MAX_POLL_FAILURES = 30
MAX_CREATE_REFUSALS = 10
"""Rounds of 429s (each already retried by the contract client) before a create is given up."""
DELETE_ON_CLOSE_TIMEOUT = 10.0
"""Seconds that closing a client waits for the deletes of jobs cancelled just before."""


class _SameRequests:
    """Creates of the same prompt may be on the wire together; a search for one whose answer was lost waits
    until none is, and holds new ones back while it looks, so that a sibling's answer cannot arrive with the
    id the search just adopted. Searches of one prompt take turns, so each sees the ids the last one claimed.

    Except creates the server's list cannot tell apart (:func:`_alike`: one from a reference image, or
    extending a video, which the list does not echo): such a create goes alone among those like it, so its
    answer is claimed in the ledger before the next leaves. Else, with two on the wire at a crash, each search
    of the resume could adopt the other's video (a storyboard's shot 2 that starts from another board's shot 1).

    Counters change without awaiting (a cancelled task cannot leave one wrong); waiters wake on any change.
    """

    def __init__(self) -> None:
        self._sending: Counter[str] = Counter()
        self._searching: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()  # searches waiting: new sends of their prompt wait behind them
        self._alike: Counter[str] = Counter()  # sends on the wire, by what the list shows of them
        self._alone: Counter[str] = Counter()  # of those, the ones that must go alone
        self._changed = asyncio.Event()

    def _bump(self, counter: Counter[str], key: str, by: int) -> None:
        counter[key] += by
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    @asynccontextmanager
    async def sending(self, key: str, *, alike: str = "", alone: bool = False) -> AsyncIterator[None]:
        """``alike``: what the server's list shows of the create; ``alone``: none like it may be on the wire."""
        await self._until(lambda: not self._searching[key] and not self._waiting[key] and not self._alone[alike]
                          and not (alone and self._alike[alike]))
        self._bump(self._sending, key, 1)
        self._bump(self._alike, alike, 1)
        self._bump(self._alone, alike, int(alone))
        try:
            yield
        finally:
            self._bump(self._alone, alike, -int(alone))
            self._bump(self._alike, alike, -1)
            self._bump(self._sending, key, -1)

    @asynccontextmanager
    async def searching(self, key: str) -> AsyncIterator[None]:
        self._bump(self._waiting, key, 1)
        try:
            await self._until(lambda: not self._sending[key] and not self._searching[key])
        finally:
            self._bump(self._waiting, key, -1)
        self._bump(self._searching, key, 1)
        try:
            yield
        finally:
            self._bump(self._searching, key, -1)


@dataclass(eq=False)
class _JobDrive:
    """A job's drive state, the runner's own: its task, and what a cancel must know about its create."""

    task: asyncio.Task[None] | None = None
    """``None`` while the job waits in its run's queue for a place (see :meth:`Runner._admit`)."""
    placed: bool = False
    """It holds a place (one of the client's ``max_concurrency`` and one of its run's): from admission to
    the end of its generation (not its download)."""
    create_on_wire: bool = False
    """A request that may make the job on the server is unanswered."""
    cancelled_as: tuple[str, str] | None = None
    """Set by a cancel while a create is on the wire, acted on when it answers: the error code and message
    the cancelled job ends with (see ``Runner.cancel``)."""


@dataclass(eq=False)
class _RunDrive:
    """What the runner holds for a run it drives: its lock (one driver per run), its ledger (opened on the
    loop thread), and its jobs waiting for a place and holding one (the run's own cap)."""

    lock: RunLock | None = None
    ledger: Ledger | None = None
    waiting: deque[tuple[int, Job, _JobDrive]] = field(default_factory=deque)
    """In submission order: (ticket, job, its drive). A cancelled job's entry stays until it reaches the
    front, dropped then (its drive is no longer the job's): a cancel is O(1), not a search of the queue."""
    pinned: dict[str, deque[tuple[int, Job, _JobDrive]]] = field(default_factory=dict)
    """Jobs only one lane may take (a pool's backend: a remix of a video it made), queued by lane like
    ``waiting``: they wait for a place there, and the jobs behind them for other lanes do not."""
    placed: int = 0


async def _finish_within(tasks: set[asyncio.Task[None]], timeout: float) -> set[asyncio.Task[None]]:
    """Let ``tasks`` finish within ``timeout`` seconds; the late ones are cancelled, awaited and returned."""
    if not tasks:
        return set()
    _done, late = await asyncio.wait(tasks, timeout=timeout)
    for task in late:
        task.cancel()
    if late:
        await asyncio.gather(*late, return_exceptions=True)
    return late




class Runner:
    """Drives jobs against one server with a concurrency cap, a shared rate gate and adaptive polling."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        profile: Profile,
        api_factory: Callable[[], ContractClient],
        max_concurrency: int,
        poll_policy: PollPolicy,
        measure: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.runtime = runtime
        self.profile = profile
        self._api_factory = api_factory
        self._api: ContractClient | None = None
        self.max_concurrency = max_concurrency
        self.poll_policy = poll_policy
        self.clock = clock
        self.sleep = sleep
        self._placed = 0  # jobs holding one of the client's places (see _admit)
        self._tickets = itertools.count()  # admission order across runs: submission order
        self._downloads: asyncio.Semaphore | None = None
        self._deleting: asyncio.Semaphore | None = None
        self._pacer: Pacer | None = None
        self._remote_ids: set[str] = set()  # every id claimed by a job: a remote job belongs to one job
        self._same = _SameRequests()
        self._tasks: set[asyncio.Task[None]] = set()
        self._deletes: set[asyncio.Task[None]] = set()  # of cancelled jobs, awaited on close
        # Cancelled with a create on the wire: the job, and its error code and message once it is answered.
        self._answering: dict[asyncio.Task[None], tuple[Job, tuple[str, str]]] = {}
        self._jobs: dict[Job, _JobDrive] = {}  # of the jobs being driven
        self._held: dict[Run, _RunDrive] = {}  # of the runs this runner drives or has driven
        self._runs: list[Run] = []  # whose ledgers this runner opened
        self._locks: list[RunLock] = []  # of the runs it drives
        self._closed = False
        self.measure = measure  # metrics after each download (sora_nb._judging); False skips them

    @property
    def api(self) -> ContractClient:
        """The contract client, made on the loop that uses it (an httpx client belongs to one loop)."""
        if self._api is None:
            self._api = self._api_factory()
            # A lost answer is resolved here, knowing every job of the run (see the module's docstring).
            self._api.ambiguous_creates = "raise"
        return self._api

    # ------------------------------------------------------------------ where a job is sent (a pool overrides)
    def api_for(self, record: JobRecord) -> ContractClient:
        """The contract client that sends ``record``'s requests (a pool's: that of the job's backend)."""
        return self.api

    def profile_for(self, record: JobRecord) -> Profile:
        """The profile of the server ``record``'s job is sent to."""
        return self.profile

    @asynccontextmanager
    async def _holding(self, job: Job) -> AsyncIterator[None]:
        """Held while the job is in flight (a pool picks its backend here and counts it in flight there)."""
        yield

    async def _refused(self, job: Job, exc: RateLimitError, refusals: int) -> None:
        """The job's create was refused with a 429 (its ``refusals``-th), so certainly not made: wait for the
        server's gate, then ask again; after :data:`MAX_CREATE_REFUSALS` rounds, give up (raise ``exc``)."""
        if refusals > MAX_CREATE_REFUSALS:
            raise exc
        await self.api_for(job._record).gate.wait()

    async def _unreachable(self, job: Job, exc: TransportError) -> None:
        """A create could not reach the server (nothing was sent, after the client's retries): the job fails."""
        raise exc

    def _places(self) -> int:
        """Jobs that may hold a place at once across the client's runs (a pool counts its backends' own)."""
        return self.max_concurrency

    @property
    def pacer(self) -> Pacer:
        """The window on requests in flight that keeps the loop's passes short (see ``_pace``); at most
        one per job generating and one per job downloading, so that it slows nothing but a busy loop."""
        if self._pacer is None:
            self._pacer = Pacer(2 * self.max_concurrency)
        return self._pacer

    @property
    def _download_slots(self) -> asyncio.Semaphore:
        """Jobs downloading at once (each fetches its video and poster): as many as may generate at once."""
        if self._downloads is None:
            self._downloads = asyncio.Semaphore(self.max_concurrency)
        return self._downloads

    async def delete_remote(self, record: JobRecord, remote_id: str) -> Any:
        """Delete a job's video on its server, as many at a time as may generate at once: the client's pool
        has no connection cap (the runner caps requests in flight), and ``job.delete()`` on each of a 10,000-job
        run's videos, or ``run.cancel()``, put all of them on the wire at once, a socket each."""
        if self._deleting is None:
            self._deleting = asyncio.Semaphore(self.max_concurrency)
        async with self._deleting:
            return await self.api_for(record).delete(remote_id)

    def _of(self, run: Run) -> _RunDrive:
        held = self._held.get(run)
        if held is None:
            held = self._held[run] = _RunDrive()
        return held

    def ledger_of(self, run: Run) -> Ledger | None:
        """The run's ledger while this runner holds it open (``None`` before its first job, or once closed)."""
        held = self._held.get(run)
        return held.ledger if held is not None else None

    # ------------------------------------------------------------------ submitting (any thread)
    def submit(self, run: Run, specs: list[JobSpec]) -> list[Job]:
        """Make the jobs now (so the caller holds them at once); write and start them on the loop."""
        if self._closed:
            raise RuntimeError("this client is closed. Fix: sora_nb.connect() again, or sora_nb.resume(run_dir).")
        with RunLock.guard():  # the run is not idle from here on: no other client may take it over meanwhile
            self.claim(run)
            jobs = []
            for spec in specs:
                seq = run._next_seq()
                record = JobRecord(
                    job_id=f"j{seq:04d}-{secrets.token_hex(2)}",
                    seq=seq,
                    spec=spec,
                    estimated_cost_usd=self.profile.capabilities.cost_usd(spec.model, spec.size, spec.seconds),
                )
                job = Job(self, run, record)
                jobs.append(job)
            # Listed at once so that the caller's view (run.done, len(run)) includes them; their ledger
            # rows are written on the loop, before anything is sent.
            run.jobs.extend(jobs)
        self.runtime.call(self._start, run, jobs)
        return jobs

    def record_made(self, run: Run, spec: JobSpec, **fields: Any) -> Job:
        """Add a finished job whose file was made here, not by the server (a storyboard's joined file, or
        its failed join: ``status="failed"`` with the reason): its ledger row first, then the job. Loop thread.

        Raises:
            StorageError: the ledger could not be written.
        """
        seq = run._next_seq()
        record = JobRecord(job_id=f"j{seq:04d}-{secrets.token_hex(2)}", seq=seq, spec=spec,
                           **{"status": "completed", "estimated_cost_usd": 0.0, **fields})
        try:
            self.open_ledger(run).add_job(record)
        except _DISK_FAULTS as exc:
            raise storage_error(exc, doing="write the ledger", run_dir=run.run_dir) from exc
        job = Job(self, run, record)
        run.jobs.append(job)
        job._finish()
        return job

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start work of a run's own (a storyboard's) on the loop; closing the client stops it. Loop thread."""
        task = self.runtime.spawn(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ one driver per run (any thread)
    def claim(self, run: Run) -> None:
        """Make this runner the run's one driver, until it closes (see ``_runlock``).

        Raises:
            RunLockedError: another process drives the run, another client of this process still does,
                or one took this run over.
            StorageError: the run directory cannot be made or written.
        """
        with RunLock.guard():
            if self._closed:  # a closed runner would hold the lock and drive nothing
                raise RuntimeError("this client is closed. Fix: sora_nb.connect() again, or sora_nb.resume(run_dir).")
            held = self._of(run)
            if held.lock is None:
                held.lock = RunLock.acquire(run.run_dir, idle=lambda: run.done)
                self._locks.append(held.lock)
            elif held.lock.taken_over:
                raise RunLockedError(
                    f"run {run.run_dir} was taken over by another client of this process (sora_nb.resume): "
                    "this run object no longer drives it. Fix: use the run that sora_nb.resume returned.",
                    run_dir=run.run_dir, pid=os.getpid(), host=None, since=None,
                )

    def release(self, run: Run) -> None:
        """Stop driving ``run``: close its ledger and let another driver take it."""
        held = self._of(run)
        if held.ledger is not None:
            held.ledger.close()
            held.ledger = None
        if run in self._runs:
            self._runs.remove(run)
        if held.lock is not None:
            held.lock.release()

    def _start(self, run: Run, jobs: list[Job]) -> None:
        if run.max_concurrency and run.max_concurrency > self.max_concurrency:
            # Asking a run for more jobs in flight than the client allows raises the client's cap.
            for slots in (self._downloads, self._deleting):
                if slots is not None:
                    for _ in range(run.max_concurrency - self.max_concurrency):
                        slots.release()
            if self._pacer is not None:
                self._pacer.raise_ceiling(2 * run.max_concurrency)
            self.max_concurrency = run.max_concurrency
        try:
            ledger = self.open_ledger(run)
            ledger.add_jobs([job._record for job in jobs])
        except Exception as exc:  # this runs as a loop callback: raised, it would reach no one
            self._unwritten(run, jobs, exc)
            return
        for job in jobs:
            self.start_job(job)

    def _unwritten(self, run: Run, jobs: list[Job], exc: Exception) -> None:
        """End jobs whose ledger rows could not be written: ledger first, so none is sent, and their
        waiters learn why instead of waiting for a start that never comes."""
        logger.error("could not write the ledger of run %s: %s", run.run_dir, exc)
        now = self.clock()
        disk = isinstance(exc, _DISK_FAULTS)
        for job in jobs:
            # No row to commit to first: the record in memory is all there is of these jobs.
            job._record.status, job._record.completed_at = "failed", now
            job._record.error_code = "storage_error" if disk else "ledger_error"
            job._record.error_message = (
                f"its ledger row could not be written in {run.run_dir} ({type(exc).__name__}: {exc}); nothing was "
                "sent. Fix: free space on that disk (or choose a writable run_dir), then submit it again "
                "(run.retry_failed())"
            )
            job._finish()

    def open_ledger(self, run: Run) -> Ledger:
        """The run's ledger, opened (or made) for writing by its one driver, this runner.

        Raises:
            StorageError: the disk refuses it (full, read-only).
        """
        self.claim(run)  # held already (new_run, resume): only a driver writes a ledger
        held = self._of(run)
        if held.ledger is None:
            exists = (run.run_dir / LEDGER_FILE).exists()
            try:
                held.ledger = Ledger.open(run.run_dir) if exists else Ledger.create(run.run_dir, meta=run.meta)
            except _DISK_FAULTS as exc:
                raise storage_error(exc, doing="write the ledger", run_dir=run.run_dir, resumable=exists) from exc
            self._runs.append(run)
        return held.ledger

    def attach(self, run: Run) -> None:
        """Re-attach a run from its ledger (after a restart or a crash) and carry on where it stopped.

        Jobs still running remotely are polled, finished ones downloaded, never-sent ones created, and
        ones whose create may have left are first looked for on the server. Cancelled jobs start again
        (resuming a cancelled run is how it is restarted), and so do jobs ended by a full or read-only
        disk; failed and expired ones stay as they are. Every ledger write comes before any job starts,
        so a disk that refuses them (StorageError) leaves nothing running.
        """
        ledger = self.open_ledger(run)
        try:
            for partial in (*run.run_dir.glob("videos/.*.part"), *run.run_dir.glob("thumbnails/.*.part")):
                partial.unlink(missing_ok=True)  # a download cut short by the crash; it is fetched again
        except OSError as exc:
            raise storage_error(exc, doing="tidy the downloads cut short", run_dir=run.run_dir) from exc
        jobs = []
        for record in ledger.jobs():
            run._next_seq(after=record.seq)
            job = Job(self, run, record)
            jobs.append(job)
            if record.remote_id:
                self._remote_ids.add(record.remote_id)
            restart = self._restart(record)
            if restart is not None:
                self._transition(job, notify=False, error_code=None, error_message=None, completed_at=None, **restart)
        run.jobs.extend(jobs)
        for job in jobs:
            record = job._record
            if record.status in TERMINAL_STATUSES and (record.status != "completed" or record.downloaded_at):
                job._finish()
            else:
                self.start_job(job)

    def _restart(self, record: JobRecord) -> dict[str, Any] | None:
        """How resume starts an ended job again (``None``: it stays as it ended)."""
        if record.status == "failed" and record.error_code == "storage_error":
            # The disk refused, not the server: carry on as after a crash. One the server made is polled
            # (and downloaded); one whose create may have left is looked for first; one never sent is sent.
            return {"status": "queued" if record.remote_id else "pending_submit"}
        if record.status != "cancelled" or record.error_code == "replaced":
            return None  # a take board.redo replaced is wanted no more: making it again would pay for nothing
        if record.remote_id and not self.profile_for(record).capabilities.supports_delete:
            return {"status": "queued"}  # the server kept it running: pick it up again
        # It was deleted on the server (or never sent): start it afresh.
        return {
            "status": "pending_submit",
            "remote_id": None,
            "create_state": "pending",
            "progress": None,
            "submitted_at": None,
            "started_at": None,
        }

    def start_job(self, job: Job) -> None:
        """Start driving a job whose ledger row exists (new, or re-attached by resume): one that needs a place
        waits in its run's queue (a task is made when it gets one); one that only needs its download starts
        now. Loop thread."""
        if job._record.remote_id:
            self._remote_ids.add(job._record.remote_id)
        drive = self._jobs[job] = _JobDrive()
        if job._record.status in TERMINAL_STATUSES:
            self._begin(job, drive)
            return
        held, lane = self._of(job.run), self._lane(job)
        queue = held.waiting if lane is None else held.pinned.setdefault(lane, deque())
        queue.append((next(self._tickets), job, drive))
        self._admit()

    # ------------------------------------------------------------------ lanes (a pool overrides)
    def _lane(self, job: Job) -> str | None:
        """The one lane (a pool's backend) that may take ``job``, or ``None``: any may."""
        return None

    def _lane_free(self, lane: str) -> bool:
        """Whether ``lane`` has a place for a job waiting for it."""
        return True

    def _bind(self, job: Job, lane: str) -> None:
        """``job`` leaves its lane's queue for a place there: the place is the job's until its task takes it."""

    # ------------------------------------------------------------------ places: the caps, in submission order
    def _admit(self) -> None:
        """Give free places to waiting jobs, first submitted first, among runs under their own cap.

        A job waiting for a place is an entry in its run's queue, not a task: a 10,000-job sweep made 10,000
        tasks at once in the callback that started it (9,800 parked on semaphores). So is a job only one lane
        may take (``_lane``): it is in its lane's queue until that lane has a place, and the jobs behind it
        for other lanes go first. Called whenever a place may have freed or a job came; the runs and lanes
        are few, so choosing the next is a look at each queue's front.
        """
        while not self._closed and self._placed < self._places():
            best: tuple[_RunDrive, deque[tuple[int, Job, _JobDrive]], str | None] | None = None
            # A copy: a run is added by ``claim`` on the caller's thread (a submit), maybe while this goes through
            # them; iterated as it changed ("dictionary changed size"), the start of another run broke for good.
            for run, held in list(self._held.items()):
                if held.placed >= (run.max_concurrency or self._places()):
                    continue
                for lane, waiting in (None, held.waiting), *held.pinned.items():
                    while waiting and self._jobs.get(waiting[0][1]) is not waiting[0][2]:
                        waiting.popleft()  # cancelled while waiting (or driven anew since): nothing to start
                    if waiting and (lane is None or self._lane_free(lane)) and (
                            best is None or waiting[0][0] < best[1][0][0]):
                        best = (held, waiting, lane)
            if best is None:
                return
            held, waiting, lane = best
            _, job, drive = waiting.popleft()
            drive.placed = True
            held.placed += 1
            self._placed += 1
            if lane is not None:
                self._bind(job, lane)
            self._begin(job, drive)

    def _leave(self, job: Job, drive: _JobDrive) -> None:
        """Give the job's place back (its generation ended, or its task did), once, and fill it."""
        if drive.placed:
            drive.placed = False
            self._of(job.run).placed -= 1
            self._placed -= 1
            self._admit()

    @contextmanager
    def _lending(self, job: Job) -> Iterator[None]:
        """The job waits for something other than a place (a pool's backend with room): meanwhile its place
        among the client's is lent to the next waiting job (its run's it keeps), and taken back after, even
        beyond the cap (admission then waits until the count is under it again)."""
        drive = self._jobs.get(job)
        if drive is None or not drive.placed:
            yield
            return
        self._placed -= 1
        self._admit()
        try:
            yield
        finally:
            self._placed += 1

    def _begin(self, job: Job, drive: _JobDrive) -> None:
        """Make the job's task, now that it may run."""
        drive.task = task = self.runtime.spawn(self._drive(job, drive))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never runs its own ``finally``: its place is given back here.
        task.add_done_callback(lambda _: self._leave(job, drive))
        # Forgotten once ended (a reconciled job is driven again by a drive of its own).
        task.add_done_callback(lambda _: self._jobs.pop(job) if self._jobs.get(job) is drive else None)

    def _drop_waiting(self) -> None:
        """Closing: the jobs still waiting for a place are not started (their rows stay resumable); their
        waiters are let go, as a cancelled task's are."""
        for held in list(self._held.values()):  # a copy: see ``_admit``
            queues = [held.waiting, *held.pinned.values()]
            held.waiting, held.pinned = deque(), {}
            for _, job, drive in itertools.chain.from_iterable(queues):
                if self._jobs.get(job) is drive:
                    del self._jobs[job]
                    job._finish()

    # ------------------------------------------------------------------ one job, start to end
    async def _drive(self, job: Job, drive: _JobDrive) -> None:
        try:
            if job._record.status not in TERMINAL_STATUSES:
                try:
                    async with self._holding(job):
                        if job._record.remote_id is None:
                            await self._create(job, drive)
                            if drive.cancelled_as is not None:
                                self._cancelled(job, *drive.cancelled_as)  # cancelled while its create was on the wire
                                return
                        await self._poll(job)
                finally:
                    self._leave(job, drive)
            if job._record.status == "completed" and job._record.downloaded_at is None:
                # Downloads are capped like generations: a 10,000-job sweep of quick jobs finished all of
                # them before the first download ended, 20,000 downloads at once (the kernel at 870 MB).
                async with self._download_slots:
                    await self._fetch(job)
                await self._measure(job)
        except asyncio.CancelledError:
            raise
        # Messages may quote what a server sent: redacted once more before the ledger keeps them.
        except AmbiguousCreateError as exc:
            self._ambiguous(job, exc)
        except StorageError as exc:
            self._fail(job, "storage_error", str(exc))
        except APIError as exc:
            self._fail(job, redact(exc.code or f"http_{exc.status_code}"), redact(str(exc)))
        except SoraError as exc:
            self._fail(job, type(exc).__name__, redact(str(exc)))
        except Exception as exc:  # a bug must end the job visibly, not hang it
            logger.exception("job %s crashed", job.id)
            self._fail(job, "internal_error", redact(f"{type(exc).__name__}: {exc}"))
        finally:
            job._finish()

    def _fail(self, job: Job, code: str, message: str) -> None:
        fields: dict[str, Any] = {
            "status": "failed", "error_code": code, "error_message": message, "completed_at": self.clock(),
        }
        remote_id = job._record.remote_id
        if remote_id and job._record.create_state != "acked":
            # Made on the server, but the ledger could not take its id then: it may now.
            fields |= {"remote_id": remote_id, "create_state": "acked"}
            if self._end(job, **fields):
                self._remote_ids.add(remote_id)  # claimed by this job's row after all
            return
        self._end(job, **fields)

    async def _create(self, job: Job, drive: _JobDrive) -> None:
        record, spec = job._record, job._record.spec
        prompt = apply_style(spec.prompt, spec.style)
        if record.create_state == "sending":
            # A create may have left before a crash, or its answer was lost: look for it before paying again.
            found = await self._look_for(job)
            if found is not None:
                await self._apply(job, found)
                return
        refusals = resends = 0
        while True:
            if drive.cancelled_as is not None:  # cancelled while no create of it was on the wire: none is sent
                self._transition(job, create_state="pending", notify=False)
                return
            try:
                # Its turn first, then "sending": a row says "sending" only while its create may leave at
                # once. Committed before a wait for the turn, a create that never left would look to resume
                # like one that may have made a job, and on a server that cannot be searched it would be
                # ambiguous, never sent. The turn is taken inside the prompt's claim, never the other way
                # round: a step must not wait for a claim held by a job that waits for a step.
                async with self._same.sending(prompt, alike=_alike(spec, prompt), alone=_alone(spec)), \
                        self.pacer.step():
                    await self._commit(
                        job,
                        create_state="sending",
                        submitted_at=self.clock(),
                        attempts=record.attempts + 1,
                        status="pending_submit",
                    )
                    # Claimed before a search of this prompt may run, and before a cancel acts (it waits
                    # while the create is on the wire, so that the job it made is known and deleted).
                    await self._on_the_wire(job, self._send_and_accept(job, self.api_for(record), spec, prompt))
                return
            except RateLimitError as exc:
                # Refused outright, so certainly not created: wait for the shared gate and ask again,
                # rather than fail a job that was never sent.
                self._transition(job, create_state="pending", notify=False)
                if drive.cancelled_as is not None:
                    continue  # cancelled while it was refused: not sent again
                refusals += 1
                await self._refused(job, exc, refusals)
            except AmbiguousCreateError as lost:
                # Its answer was lost: found, it is adopted; the server unsearchable, it is ambiguous (raised).
                found = await self._look_for(job, lost)
                if found is not None:
                    await self._apply(job, found)
                    return
                # A search that worked proved it absent: the server never made it, so it is sent again.
                if drive.cancelled_as is not None:
                    continue  # cancelled while it was looked for: not sent again (nor waited for)
                api = self.api_for(record)
                if resends == api.retry.max_retries:
                    raise
                logger.warning("%s: %s; the server's list proves it was not made: sending it again", job.id,
                               lost.reason)
                await self.sleep(api.retry.delay(resends))
                resends += 1
            except TransportError as exc:
                # After the clause above (AmbiguousCreateError is a TransportError too): what is left is a
                # create that certainly never reached the server (a refused connection, after the client's
                # retries), which may be sent again, here or elsewhere.
                self._transition(job, create_state="pending", notify=False)
                if drive.cancelled_as is not None:
                    continue  # cancelled while it was refused: not sent again
                await self._unreachable(job, exc)

    async def _on_the_wire(self, job: Job, request: Awaitable[T]) -> T:
        """Await a request that may make the job on the server; a cancel meanwhile waits for its answer."""
        drive = self._jobs.get(job)
        if drive is None:  # not driven (a reconcile or a delete of an ended job): no cancel waits for it
            return await request
        drive.create_on_wire = True
        try:
            # A create refused for certain is sent again by the client only while the job is not cancelled.
            with resending_while(lambda: drive.cancelled_as is None):
                return await request
        finally:
            drive.create_on_wire = False

    async def _look_for(self, job: Job, lost: AmbiguousCreateError | None = None) -> Video | None:
        """Look for the job a create of ``job`` may have made, and claim it if found; None: proven absent.

        Raises :class:`AmbiguousCreateError` when the server could not be searched.
        """
        spec = job._record.spec
        prompt = apply_style(spec.prompt, spec.style)
        match: dict[str, Any] = {"prompt": prompt, "model": spec.model, "size": spec.size, "seconds": spec.seconds}
        if spec.kind == "remix":
            match = {"prompt": prompt, "remixed_from_video_id": spec.parent_id}
        elif spec.kind == "extend":
            # An extension keeps its source's model and size (its seconds are the whole video's): on two models,
            # two extensions with one prompt are told apart by them.
            match = {"prompt": prompt, "model": spec.model, "size": spec.size}
        elif spec.kind != "create":
            match = {"prompt": prompt}
        api = self.api_for(job._record)

        async def search_and_claim() -> Video | None:
            found = await api.reconcile(
                match, since=job._record.submitted_at or 0.0, lost=lost,
                # Another run's video (the same cell run twice, two notebooks) looks just like this one's.
                known_ids=lambda: self._remote_ids | claimed_by_other_runs(job.run.run_dir),
            )
            if found is not None:
                api.reconciled_creates += 1
                await self._claim(job, found)  # before the next search of this prompt, and before a cancel acts
            return found

        async with self._same.searching(prompt):
            return await self._on_the_wire(job, search_and_claim())

    def _ambiguous(self, job: Job, exc: AmbiguousCreateError) -> None:
        """The job's create may have made a job the server cannot be searched for: visible, never re-sent."""
        self._end(job, status="ambiguous", error_code="ambiguous_create", error_message=redact(str(exc)))

    async def reconcile(self, jobs: list[Job]) -> None:
        """Look again for the ``ambiguous`` jobs of ``jobs``: one found is adopted and carried on, one that a
        working search proves absent is sent again, the others stay ambiguous with the new reason."""
        for job in jobs:
            if job._record.status != "ambiguous" or not job.done:
                continue
            try:
                found = await self._look_for(job)
            except AmbiguousCreateError as exc:
                self._ambiguous(job, exc)
                continue
            if found is None:
                self._transition(
                    job, create_state="pending", status="pending_submit", error_code=None, error_message=None
                )
            job._restart()
            self.start_job(job)

    async def _send_and_accept(self, job: Job, api: ContractClient, spec: JobSpec, prompt: str) -> None:
        await self._accept(job, await self._send_create(api, spec, prompt))

    @staticmethod
    async def _send_create(api: ContractClient, spec: JobSpec, prompt: str) -> Video:
        if spec.kind == "remix":
            return await api.remix(_parent(spec), prompt)
        if spec.kind == "extend":
            return await api.extend(_parent(spec), prompt, seconds=spec.seconds)
        if spec.kind == "edit":
            return await api.edit(_parent(spec), prompt)
        return await api.create(
            prompt=prompt,
            model=spec.model,
            size=spec.size,
            seconds=spec.seconds,
            input_reference=spec.input_reference,
            characters=[character_id for character_id, _ in spec.characters],
        )

    async def _accept(self, job: Job, video: Video) -> None:
        # One write: the id and what the answer says (its status) are shown together, never a claimed
        # job that still looks unsent.
        self._queue_moved(job, video)  # shown with the claim's write
        await self._claim(job, video, **self._seen(job, video))

    async def _claim(self, job: Job, video: Video, **extra: Any) -> None:
        """Make ``video`` this job's, in memory at once and in the ledger (which refuses an id claimed twice)."""
        self._remote_ids.add(video.id)
        try:
            await self._commit(
                job,
                create_state="acked",
                remote_id=video.id,
                remote_created_at=float(video.created_at) if video.created_at else None,
                **extra,
            )
        except StorageError:
            # The server made it: its id is kept in memory (shown, and written when the job ends if the
            # disk allows). The ledger still says "sending", so resume looks for it before creating, and
            # must be free to adopt it: until it is written, no job of this runner claims it.
            job._record.remote_id = video.id
            self._remote_ids.discard(video.id)
            raise
        except asyncio.CancelledError:
            # Closed while the write waits for the disk: the write is still made (see _commit), so the id
            # is the job's now. A cancel that waited for this answer must delete the job it made, and a
            # search would pass over an id this runner already claims.
            job._record.remote_id = video.id
            raise

    async def _poll(self, job: Job) -> None:
        record = job._record
        state = PollState(submitted_at=record.submitted_at or self.clock())
        hint: float | None = None
        failures = 0
        while record.status not in TERMINAL_STATUSES:
            delay = self.poll_policy.next_delay(state, now=self.clock(), server_hint=hint)
            await self.sleep(delay)
            assert record.remote_id is not None
            try:
                async with self.pacer.step():
                    video, hint = await self.api_for(record).poll(record.remote_id)
            except NotFoundError as exc:
                self._transition(
                    job,
                    status="failed",
                    error_code="not_found",
                    completed_at=self.clock(),
                    error_message=f"the server no longer knows {record.remote_id} ({exc.status_code}). "
                    "Fix: job.retry() to generate it again.",
                )
                return
            except _TRANSIENT as exc:
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise
                hint = self.poll_policy.ceiling if isinstance(exc, TransportError) else None
                logger.warning("polling %s failed (%s); will poll again", record.remote_id, type(exc).__name__)
                continue
            seen = self.clock()
            failures = 0
            await self._apply(job, video, polls=record.polls + 1)
            state.observe(seen, video.progress)

    async def _apply(self, job: Job, video: Video, **extra: Any) -> None:
        """Record what the server said (plus ``extra`` fields), writing only what changed, in one write.

        A change of status is synced to disk; progress and poll counts alone are not (they are
        observations, and re-observed after a crash), which keeps disk syncs off the polling path.
        """
        changes = self._seen(job, video, **extra)
        moved = self._queue_moved(job, video)
        if changes:
            durable = not set(changes) <= {"progress", "polls"}
            await self._commit(job, durable=durable, notify=moved or set(changes) != {"polls"}, **changes)
        elif moved:
            job._changed()

    @staticmethod
    def _queue_moved(job: Job, video: Video) -> bool:
        """Keep the job's place in the server's queue (in memory only: it is re-observed); ``True`` if it moved."""
        position = video.extra.get("queue_position") if video.status == "queued" else None
        moved = position != job.queue_position
        job.queue_position = position
        return moved

    def _seen(self, job: Job, video: Video, **extra: Any) -> dict[str, Any]:
        """The fields that change when the server says ``video`` of the job (plus ``extra``)."""
        record, now = job._record, self.clock()
        changes: dict[str, Any] = dict(extra)
        if video.status != record.status:
            changes["status"] = video.status
            if video.status == "in_progress" and record.started_at is None:
                changes["started_at"] = now
            if video.status in TERMINAL_STATUSES:
                # When we saw it (the server's completed_at has whole-second resolution and its own clock).
                changes["completed_at"] = now
                if record.started_at is None and video.status == "completed":
                    changes["started_at"] = record.submitted_at
        if video.progress != record.progress:
            changes["progress"] = video.progress
        if video.error is not None and video.error.message != record.error_message:
            changes["error_code"], changes["error_message"] = video.error.code, video.error.message
        cost = _reported_cost(video)
        if cost is not None and cost != record.reported_cost_usd:
            changes["reported_cost_usd"] = cost
        return changes

    async def _fetch(self, job: Job) -> None:
        """Download a finished video through a bad spell of the server's, as patiently as it was polled:
        the video is paid for, and giving up would leave only a retry that pays again."""
        failures = 0
        while True:
            try:
                async with self.pacer.step():
                    await self._download(job)
                return
            except _TRANSIENT as exc:
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise
                logger.warning("downloading %s failed (%s); will try again", job._record.remote_id, type(exc).__name__)
                await self.sleep(self.poll_policy.ceiling)

    async def _download(self, job: Job) -> None:
        record, run = job._record, job.run
        remote_id = record.remote_id
        assert remote_id is not None
        video_rel = f"videos/{record.job_id}.mp4"
        thumb_rel = f"thumbnails/{record.job_id}.webp"

        def progress(done: int, total: int | None) -> None:
            job.bytes_downloaded = done

        thumb_path = run.run_dir / thumb_rel
        api = self.api_for(record)
        # A video continuing an image or another video begins with it: its poster is made here, from its own part.
        own = own_seconds(record.spec.kind, record.spec.input_reference, record.spec.seconds)

        async def server_thumbnail() -> bool:
            if own is not None or not self.profile_for(record).capabilities.supports_thumbnail:
                return False
            try:
                await api.download(remote_id, thumb_path, variant="thumbnail")
            except StorageError:
                raise
            except SoraError as exc:
                logger.info("no thumbnail variant for %s (%s); making one locally", remote_id, exc)
                return False
            return True

        # Both at once: the poster is small, and the job is done only when both are on disk.
        # return_exceptions: when the video fails, the poster's download still ends before the job does.
        video_result, got_thumbnail = await asyncio.gather(
            api.download(remote_id, run.run_dir / video_rel, variant="video", on_progress=progress),
            server_thumbnail(),
            return_exceptions=True,
        )
        try:
            if isinstance(video_result, BaseException):
                raise video_result
            if isinstance(got_thumbnail, BaseException):
                raise got_thumbnail
            if not got_thumbnail:
                await asyncio.to_thread(functools.partial(make_thumbnail, own_seconds=own), run.run_dir / video_rel,
                                        thumb_path)
        except OSError as exc:
            if not isinstance(exc, StorageError) and exc.errno not in _DISK_ERRNOS:
                raise  # e.g. a video the poster could not be read from: not the disk's fault
            raise storage_error(exc, doing=f"save the video of {remote_id}", run_dir=run.run_dir) from exc
        checksum = await asyncio.to_thread(sha256_file, run.run_dir / video_rel)
        await self._commit(
            job, video_path=video_rel, thumbnail_path=thumb_rel, checksum=checksum, downloaded_at=self.clock()
        )

    async def _measure(self, job: Job) -> None:
        """Measure the new video off the loop (a process pool); a failure is logged, never fails the job."""
        ledger = self.ledger_of(job.run)
        if not self.measure or ledger is None:
            return
        try:
            # Its stored metrics are read in a thread: the ledger's lock may be the writer's, mid-commit.
            profile = self.profile_for(job._record).name
            task = await asyncio.to_thread(measure_task, ledger, job._record, profile=profile)
            if task is not None:
                await run_task_async(ledger, task)
        except Exception as exc:  # the video is on disk and paid for: a metric must not undo that
            logger.warning("could not measure the video of job %s: %s (run.measure() tries again)", job.id, exc)

    # ------------------------------------------------------------------ cancelling
    def cancel(self, job: Job, *, code: str = "cancelled", reason: str = "cancelled by the user") -> None:
        """Cancel on the loop: stop the task now, then delete the remote job in the background.

        A job whose create is on the wire is not cut off: its answer (the remote id) is awaited first,
        so that the job made on the server can be deleted instead of left running, unseen, and billed.
        ``code`` and ``reason`` are the job's error code and message: ``code="replaced"`` for a take that
        ``board.redo`` replaced, which a resume leaves as it is (a cancelled job is otherwise started again).
        """
        if job.done:
            return
        drive = self._jobs.get(job)
        task = drive.task if drive is not None else None
        if drive is not None and drive.create_on_wire and task is not None:
            drive.cancelled_as = (code, reason)
            self._answering[task] = (job, (code, reason))
            task.add_done_callback(lambda _: self._answering.pop(task, None))
            return
        if task is not None:
            task.cancel()
        elif drive is not None:
            del self._jobs[job]  # waiting for a place: its entry in the queue is dropped when reached
        self._cancelled(job, code, reason)

    def _cancelled(self, job: Job, code: str, reason: str) -> None:
        remote_id = job._record.remote_id
        self._end(job, status="cancelled", completed_at=self.clock(), error_code=code, error_message=reason)
        job._finish()
        if not self.profile_for(job._record).capabilities.supports_delete:
            return
        if remote_id:
            deleting = self._delete_quietly(job._record, remote_id)
        elif job._record.create_state == "sending":
            deleting = self._find_and_delete(job)  # its create may have left before a crash
        else:
            return
        task = self.runtime.spawn(deleting)
        self._deletes.add(task)
        task.add_done_callback(self._deletes.discard)

    async def _delete_quietly(self, record: JobRecord, remote_id: str) -> None:
        try:
            await self.delete_remote(record, remote_id)
        except SoraError as exc:
            logger.warning("could not delete cancelled job %s: %s", remote_id, exc)

    async def _find_and_delete(self, job: Job) -> None:
        try:
            await self._look_for(job)  # one found is claimed: its id is the job's, in memory at least
        except StorageError as exc:  # found, but the full ledger could not record it: deleted all the same
            logger.error("job %s: %s", job.id, exc)
        except SoraError as exc:
            logger.warning("could not look for cancelled job %s on the server: %s", job.id, exc)
            return
        if job._record.remote_id is not None:
            await self._delete_quietly(job._record, job._record.remote_id)

    # ------------------------------------------------------------------ the one way state changes
    def _transition(self, job: Job, *, notify: bool = True, durable: bool = True, **fields: Any) -> None:
        """Commit ``fields`` to the ledger, then to the job, then tell observers.

        Raises:
            StorageError: the ledger could not be written (disk full, read-only); the job is unchanged.
        """
        written = self._hand_over(job, durable, fields)
        if written is not None:
            with _as_storage_error(job):
                written.result()
        self._show(job, notify, fields)

    async def _commit(self, job: Job, *, notify: bool = True, durable: bool = True, **fields: Any) -> None:
        """:meth:`_transition` for a job's own task: the commit is awaited, so the loop does not wait on the
        disk, and the writes of many jobs share one transaction and one sync (``Ledger.update_job_soon``).
        The job changes, and observers hear of it, only once its write is committed (ledger first).

        Raises:
            StorageError: the ledger could not be written (disk full, read-only); the job is unchanged.
        """
        written = self._hand_over(job, durable, fields)
        if written is not None:
            with _as_storage_error(job):
                # Shielded: a write handed over is made even when the task is cancelled meanwhile (a client
                # closed mid-run), so that a create's answer, once here, is in the ledger for resume to poll
                # rather than lost (a "sending" row on a server that cannot be searched is ambiguous).
                await asyncio.shield(asyncio.wrap_future(written))
        self._show(job, notify, fields)

    def _hand_over(self, job: Job, durable: bool, fields: dict[str, Any]) -> concurrent.futures.Future[None] | None:
        """Give the job's change to its ledger's writer (in the order changes come); None: no ledger."""
        held = self._held.get(job.run)
        if held is None or held.ledger is None:
            return None
        with _as_storage_error(job):
            return held.ledger.update_job_soon(job._record.job_id, durable=durable, **fields)

    def _show(self, job: Job, notify: bool, fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            setattr(job._record, name, value)
        if notify:
            job._changed()

    def _end(self, job: Job, **fields: Any) -> bool:
        """Commit a job's end; when the ledger cannot take it, the job still ends, in memory, saying so
        (DESIGN.md invariant 9): its ledger row is as the last write left it, which resume carries on.
        Returns whether the ledger took it."""
        try:
            self._transition(job, **fields)
            return True
        except StorageError as exc:
            logger.error("job %s: %s", job.id, exc)
            if fields.get("status") == "failed" and fields.get("error_code") != "storage_error":
                fields |= {"error_code": "storage_error", "error_message": f"{fields['error_message']}; and {exc}"}
            for name, value in fields.items():
                setattr(job._record, name, value)
            job._changed()
            return False

    async def aclose(self) -> None:
        """Stop every job's task (they stay resumable from the ledger) and close the HTTP clients."""
        self._closed = True
        self._drop_waiting()
        answering = dict(self._answering)
        tasks = [t for t in self._tasks if not t.done() and t not in answering]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # A job cancelled while its create was on the wire waits for the answer (its remote id), so that
        # the job made on the server is deleted below rather than left running, unseen, and billed.
        late = await _finish_within(set(answering), DELETE_ON_CLOSE_TIMEOUT)
        for task in late:
            job, (code, reason) = answering[task]
            self._cancelled(job, code, reason)
        if late:
            logger.warning("closed before the creates of %d cancelled job(s) were answered: the server may "
                           "have made them, and they may run there until they finish or expire", len(late))
        # Deleting a cancelled job is what stops the server working (and billing) on it: those requests
        # finish before the HTTP client closes, within a bound.
        late = await _finish_within(set(self._deletes), DELETE_ON_CLOSE_TIMEOUT)
        if late:
            logger.warning("closed before %d cancelled job(s) were deleted on the server: they may still run "
                           "there until they finish or expire", len(late))
        if self._api is not None:
            await self._api.aclose()
            self._api = None
        for run in list(self._runs):
            self.release(run)
        for lock in self._locks:  # last: once released, another driver may start at once
            lock.release()
        self._locks.clear()


@contextmanager
def _as_storage_error(job: Job) -> Iterator[None]:
    """A disk that refuses a ledger write, said as the :class:`StorageError` that names the run."""
    try:
        yield
    except _DISK_FAULTS as exc:
        raise storage_error(exc, doing="write the ledger", run_dir=job.run.run_dir) from exc


def _alike(spec: JobSpec, prompt: str) -> str:
    """What the server's list shows of a create (what a search matches it by, less its length)."""
    return "\0".join((prompt, spec.model, spec.size))


def _alone(spec: JobSpec) -> bool:
    """A create the list cannot tell from another like it: made from a reference image, or from a video
    (an extension or an edit) the list does not name.

    >>> _alone(JobSpec("a fox", "sora-2", "1280x720", "4", input_reference="shot1.png"))
    True
    >>> _alone(JobSpec("a fox", "sora-2", "1280x720", "4")), _alone(JobSpec("a fox", "sora-2", "1280x720", "4",
    ...                                                                       kind="remix", parent_id="video_1"))
    (False, False)
    """
    return spec.input_reference is not None or spec.kind in ("extend", "edit")


def _parent(spec: JobSpec) -> str:
    if not spec.parent_id:
        raise ValueError(f"a {spec.kind} job needs parent_id (the source video's id).")
    return spec.parent_id


def _reported_cost(video: Video) -> float | None:
    """What the server says the job cost, in USD: the adapter's normalised ``cost_usd`` (OpenRouter's
    ``usage.cost``, xAI's ticks, Together's ``outputs.cost``), else a contract server's ``usage.cost``."""
    cost_usd = video.extra.get("cost_usd")
    if isinstance(cost_usd, (int, float)) and not isinstance(cost_usd, bool):
        return float(cost_usd)
    usage = video.extra.get("usage")
    if isinstance(usage, dict):
        cost = usage.get("cost")
        if isinstance(cost, (int, float)):
            return float(cost)
    return None
