"""A run's durable ledger: one SQLite file that is the truth about every job of the run.

A run lives in a directory::

    run_dir/
      ledger.sqlite    this ledger: a ``meta`` key/value table and a ``jobs`` table, one row per job
      videos/          the downloaded videos (``videos/<job_id>.mp4``)
      thumbnails/      their posters

The runner writes a job's row *before* its create request leaves and updates it at every state change
(DESIGN.md, "Ledger first"). Every method that writes commits before it returns, so a process killed at
any instant leaves a ledger that holds every change up to the last call that returned, and no half of
any call. ``create_state`` is what makes "Never pay twice" possible after a crash: ``pending`` was
certainly never sent, ``sending`` may have reached the server (reconcile, do not re-send), ``acked``
has its ``remote_id``. A ``remote_id`` belongs to one job: the ledger refuses a second row with it.

Writes may also be handed to the ledger's writer thread (:meth:`Ledger.update_job_soon`): the writes
waiting when it wakes are committed together, in one transaction and one disk sync, and each caller's
future is done only once its write is committed. The runner awaits that future before it acts on or
shows the change, so the event loop never waits on the disk, and a burst of 200 jobs' transitions costs
one sync instead of 200. A write that fails (a remote id claimed twice, a value SQLite cannot
store) is undone alone (a savepoint); a commit that fails (a full disk) fails every write of it.
Writes are committed in the order they came.

The ledger runs in WAL mode, so readers in other processes (``load_run``, ``sora-nb ls``) never block
the writer and always see the last committed state.

The ledger never holds an API key (DESIGN.md, "Keys stay in the client"): values that look like keys
are refused with ``ValueError`` (free-text error fields from the server are scrubbed instead).

The tables and their versions (and the upgrade of older ledgers) are in ``_ledger_schema``; the runs
under a root directory (``sora-nb ls``, new run ids, the remote ids other runs own) in ``_runs``.

>>> import tempfile
>>> from sora_nb._types import JobSpec
>>> run_dir = Path(tempfile.mkdtemp()) / "run"
>>> with Ledger.create(run_dir, meta={"profile": "simulator", "axes": ["model"]}) as ledger:
...     ledger.add_job(JobRecord("j0001-3f9a", 1, JobSpec("a corgi", "sora-2", "1280x720", "4")))
...     ledger.update_job("j0001-3f9a", create_state="sending", attempts=1)
...     ledger.get_job("j0001-3f9a").create_state
'sending'
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, get_args

from ._errors import SoraError
from ._ledger_schema import JUDGING_TABLES, SCHEMA, SCHEMA_VERSION, check_version, upgrade
from ._redact import looks_like_secret, redact
from ._types import JobSpec, JobStatus

__all__ = [
    "CREATE_STATES",
    "JOB_STATUSES",
    "LEDGER_FILE",
    "JobRecord",
    "Ledger",
    "ledger_version",
]

T = TypeVar("T")

LEDGER_FILE = "ledger.sqlite"
WRITER_LINGER_S = 0.5
"""Seconds the writer thread waits for more writes before it ends."""

CreateState = Literal["pending", "sending", "acked"]
CREATE_STATES: tuple[str, ...] = ("pending", "sending", "acked")

JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
"""Every :data:`~sora_nb.JobStatus`, in the order a job meets them."""


@dataclass
class JobRecord:
    """One job as the ledger stores it: what was asked, where it stands, what it produced.

    Times are unix seconds; paths are relative to the run directory.

    >>> JobRecord("j0001-3f9a", 1, JobSpec("a corgi", "sora-2", "1280x720", "4")).status
    'pending_submit'
    """

    job_id: str
    seq: int
    spec: JobSpec
    create_state: CreateState = "pending"
    remote_id: str | None = None
    status: JobStatus = "pending_submit"
    progress: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    submitted_at: float | None = None
    remote_created_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    downloaded_at: float | None = None
    video_path: str | None = None
    thumbnail_path: str | None = None
    checksum: str | None = None
    estimated_cost_usd: float | None = None
    reported_cost_usd: float | None = None
    attempts: int = 0
    polls: int = 0
    updated_at: float | None = None
    backend: str | None = None
    """The name of the pool backend the job was sent to (``None``: a client of one server); written before
    its create leaves, so that resume polls (or looks for) the job where it was made."""


_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(JobRecord))
# Copies of spec fields as plain columns, so that `sqlite3 ledger.sqlite "select model, status ..."` works.
_SPEC_COLUMNS = ("prompt", "model", "size", "seconds", "style")
_COLUMNS = (*_FIELDS, *_SPEC_COLUMNS)
# Free text that comes from the server: scrubbed rather than refused, because a server that echoes a
# key in an error message must not stop the ledger from recording the failure.
_FREE_TEXT = frozenset({"error_code", "error_message"})

class Ledger:
    """The SQLite ledger of one run directory. Make one with :meth:`create` or :meth:`open`.

    Safe to share between threads (one lock guards the connection), but the design has one writer:
    the runner on the event loop.

    >>> import tempfile
    >>> with Ledger.create(Path(tempfile.mkdtemp()) / "run", meta={"profile": "simulator"}) as ledger:
    ...     ledger.meta()["profile"], ledger.next_seq(), ledger.jobs()
    ('simulator', 1, [])
    """

    def __init__(self, connection: sqlite3.Connection, run_dir: Path, *, readonly: bool) -> None:
        self._conn = connection
        self._readonly = readonly
        # The runner's loop may live in a background thread while a notebook cell reads from the main
        # thread; serialising use of the one connection makes that safe.
        self._lock = threading.RLock()
        # Reads of a writable ledger go through a connection of their own (see query), made when first needed.
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._closed = False
        # The writes waiting for the writer thread, and whether that thread is running (it ends when
        # nothing is left to write, so an idle ledger holds no thread).
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closing = False
        self.run_dir = run_dir
        self.videos_dir = run_dir / "videos"
        self.thumbnails_dir = run_dir / "thumbnails"
        self._fields_sql: str | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, run_dir: str | Path, *, meta: dict[str, Any]) -> Ledger:
        """Make ``run_dir`` (with ``videos/`` and ``thumbnails/``) and a new ledger in it.

        ``run_id`` defaults to the directory's name and ``created_at`` to now.

        Raises:
            FileExistsError: a ledger is already there (resume it instead).
            ValueError: a meta value looks like an API key.

        >>> import tempfile
        >>> with Ledger.create(Path(tempfile.mkdtemp()) / "r1", meta={}) as ledger:
        ...     ledger.meta()["run_id"]
        'r1'
        """
        run_dir = Path(run_dir)
        path = run_dir / LEDGER_FILE
        if path.exists():
            raise FileExistsError(
                f"a run ledger already exists at {path}. Fix: resume it with sora_nb.resume({str(run_dir)!r}),"
                " or choose another run_dir."
            )
        meta = {"run_id": run_dir.name, "created_at": time.time(), **meta}
        rows = [(key, _json_for_ledger(key, value, what="meta")) for key, value in meta.items()]
        (run_dir / "videos").mkdir(parents=True, exist_ok=True)
        (run_dir / "thumbnails").mkdir(exist_ok=True)
        conn = _connect(path, readonly=False)
        try:
            ledger = cls(_writer(conn), run_dir, readonly=False)
            # Schema, version and meta in one transaction: a crash leaves all of it, or a ledger without
            # a schema version that open() refuses by name (never a half-made one that looks whole).
            with ledger._write() as conn:
                for statement in SCHEMA:
                    conn.execute(statement)
                for statement in JUDGING_TABLES:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
        except BaseException:
            conn.close()
            # Refused (a full disk...): the files it began are removed, so that the run can be made
            # again once there is room, rather than found half-made.
            for name in (LEDGER_FILE, f"{LEDGER_FILE}-wal", f"{LEDGER_FILE}-shm"):
                with contextlib.suppress(OSError):
                    (run_dir / name).unlink(missing_ok=True)
            raise
        return ledger

    @classmethod
    def open(cls, run_dir: str | Path, *, readonly: bool = False) -> Ledger:
        """Open the ledger of an existing run; ``readonly=True`` for readers in other processes.

        Raises:
            FileNotFoundError: there is no ledger in ``run_dir``.
            SoraError: the file is not a sora_nb ledger, or was written by a newer sora_nb.

        >>> import tempfile
        >>> run_dir = Path(tempfile.mkdtemp())
        >>> Ledger.create(run_dir, meta={"profile": "simulator"}).close()
        >>> with Ledger.open(run_dir, readonly=True) as ledger:
        ...     ledger.meta()["profile"]
        'simulator'
        """
        run_dir = Path(run_dir)
        path = run_dir / LEDGER_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"no sora_nb run at {str(run_dir)!r}: {str(path)!r} does not exist. Fix: check the path "
                "(`sora-nb ls` lists the runs under sora_runs/), or start a new run with a sweep or generate."
            )
        conn = _connect(path, readonly=readonly)
        try:
            try:
                version = check_version(conn, path)  # before _writer(): never switch someone else's database to WAL
            except sqlite3.OperationalError:
                if not (readonly and _on_read_only_disk(run_dir)):
                    raise
                # SQLite cannot make the shared-memory file that WAL readers need beside a ledger on a
                # read-only disk; with no WAL left over, the file alone holds every commit, unchanging.
                conn.close()
                conn = _connect(path, readonly=True, immutable=True)
                version = check_version(conn, path)
            ledger = cls(conn if readonly else _writer(conn), run_dir, readonly=readonly)
            if not readonly and version < SCHEMA_VERSION:
                upgrade(ledger.transaction, run_dir)
            return ledger
        except sqlite3.OperationalError:
            conn.close()
            raise  # the disk refused (full, read-only, I/O): the file may be whole, and the caller says so
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _damaged(path, exc) from None
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent), once the writes handed to the writer thread are committed."""
        with self._queue_lock:
            writer, self._closing = self._writer, True
            self._queue_lock.notify()
        if writer is not None and writer is not threading.current_thread():
            writer.join()
        with self._read_lock:
            self._closed = True
            if self._reader is not None:
                self._reader.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Ledger {str(self.run_dir)!r}{' readonly' if self._readonly else ''}>"

    # ------------------------------------------------------------------ run metadata
    def meta(self) -> dict[str, Any]:
        """The run's metadata (run_id, created_at, profile, base_url, axes, ...) as JSON values."""
        try:
            with self._lock:
                rows = self._conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
            return {key: json.loads(value) for key, value in rows}
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise _damaged(self.run_dir / LEDGER_FILE, exc) from None

    def set_meta(self, **values: Any) -> None:
        """Add or replace metadata entries (JSON values). Refuses values that look like API keys.

        >>> import tempfile
        >>> ledger = Ledger.create(Path(tempfile.mkdtemp()), meta={})
        >>> ledger.set_meta(budget_usd=20.0)
        >>> ledger.set_meta(base_url="https://api.example/v1?api_key=abc123")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: meta 'base_url' looks like it holds an API key or token; ...
        >>> ledger.close()
        """
        rows = [(key, _json_for_ledger(key, value, what="meta")) for key, value in values.items()]
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows)

    # ------------------------------------------------------------------ jobs
    def add_job(self, record: JobRecord) -> None:
        """Insert a new job row (commit before its create request is sent).

        Raises:
            ValueError: the job_id or seq is already in the ledger, a value looks like an API key, or
                ``status``/``create_state`` is not a known word.
        """
        self.add_jobs([record])

    def add_jobs(self, records: Iterable[JobRecord]) -> None:
        """Insert several new job rows in one transaction: all of them are written, or none."""
        now = time.time()
        rows = [_record_row(r, now) for r in records]
        placeholders = ", ".join("?" for _ in _COLUMNS)
        try:
            with self._write() as conn:
                conn.executemany(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({placeholders})", rows)
        except sqlite3.IntegrityError as exc:
            raise ValueError(
                f"a job with the same job_id, seq or remote_id is already in this run's ledger ({exc})."
            ) from exc

    def update_job(self, job_id: str, /, *, durable: bool = True, **fields: Any) -> None:
        """Change some fields of a job (any :class:`JobRecord` field but ``job_id``); sets ``updated_at``.

        ``error_code``/``error_message`` are scrubbed of anything key-like; other key-like values are
        refused. ``durable=False`` is for observations that can be lost in a power cut without harm
        (progress, poll counts): committed at once, synced to disk with the next durable write, so
        polling does not pay a disk sync on the event loop for every status request. Committed after
        every write handed to :meth:`update_job_soon` before it (they are one queue).

        Raises:
            ValueError: an unknown field name, or a bad value.
            KeyError: no such job.
        """
        self.update_job_soon(job_id, durable=durable, **fields).result()

    def update_job_soon(
        self, job_id: str, /, *, durable: bool = True, **fields: Any
    ) -> concurrent.futures.Future[None]:
        """:meth:`update_job` committed by the writer thread, with the other writes waiting then.

        The values are checked now (``ValueError`` at once); the future is done when the write is
        committed (synced to disk unless ``durable=False``), or holds why it was not (``KeyError``,
        ``ValueError`` for a remote id claimed twice, ``sqlite3.OperationalError`` for a full disk).
        A future cancelled before the writer takes it is not written.

        >>> import tempfile
        >>> from sora_nb._types import JobSpec
        >>> with Ledger.create(Path(tempfile.mkdtemp()) / "run", meta={}) as ledger:
        ...     ledger.add_job(JobRecord("j0001-3f9a", 1, JobSpec("a corgi", "sora-2", "1280x720", "4")))
        ...     ledger.update_job_soon("j0001-3f9a", status="queued").result()
        ...     ledger.get_job("j0001-3f9a").status
        'queued'
        """
        unknown = set(fields) - set(_FIELDS)
        if unknown or "job_id" in fields:
            allowed = ", ".join(name for name in _FIELDS if name != "job_id")
            raise ValueError(f"cannot update {sorted(unknown) or ['job_id']} of a job; fields: {allowed}.")
        columns: dict[str, Any] = {}
        for name, value in {"updated_at": time.time(), **fields}.items():
            columns |= _stored(name, value)
        return self.write_soon(_JobUpdate(job_id, columns, fields.get("remote_id")), durable=durable)

    def write_soon(
        self, write: Callable[[sqlite3.Connection], None], *, durable: bool = True
    ) -> concurrent.futures.Future[None]:
        """Hand ``write(conn)`` to the writer thread: it runs inside the next transaction (alone under a
        savepoint: if it raises, only it is undone and its future holds the error, unless the transaction
        itself was lost, a full disk, which fails every write of it). The future is done once the
        transaction is committed."""
        if self._readonly:
            raise PermissionError(f"{self!r} was opened read-only. Fix: Ledger.open(run_dir) to write.")
        pending = _Pending(write, durable, concurrent.futures.Future())
        with self._queue_lock:
            self._queue.append(pending)
            self._queue_lock.notify()
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_queued, name="sora_nb-worker-ledger", daemon=True)
                self._writer.start()
        return pending.future

    def _write_queued(self) -> None:
        """The writer thread: commit what is waiting, one transaction at a time. It lingers a moment when
        nothing is (starting a thread per write would wait on a busy machine's scheduler), then ends."""
        while True:
            with self._queue_lock:
                if not self._queue and not self._closing:
                    self._queue_lock.wait(WRITER_LINGER_S)
                batch = [p for p in self._queue if p.future.set_running_or_notify_cancel()]
                self._queue.clear()
                if not batch:
                    self._writer = None
                    return
            self._commit_batch(batch)

    def _commit_batch(self, batch: list[_Pending]) -> None:
        failed: dict[int, BaseException] = {}
        try:
            with self._write(durable=any(p.durable for p in batch)) as conn:
                for index, pending in enumerate(batch):
                    conn.execute("SAVEPOINT one_write")
                    try:
                        pending.write(conn)
                        conn.execute("RELEASE one_write")
                    except Exception as exc:  # any one write's fault is its own future's
                        try:
                            conn.execute("ROLLBACK TO one_write")
                            conn.execute("RELEASE one_write")
                        except sqlite3.Error:
                            raise exc from None  # the transaction itself is gone (a full disk): all of it fails
                        # A value SQLite cannot bind (OverflowError, ProgrammingError) or a refused id: this
                        # write alone; the other jobs' writes of the commit must not fail with it.
                        failed[index] = exc
        except BaseException as exc:  # the commit itself failed (a full disk): none of the batch is written
            for pending in batch:
                pending.future.set_exception(exc)
            return
        for index, pending in enumerate(batch):
            if index in failed:
                pending.future.set_exception(failed[index])
            else:
                pending.future.set_result(None)

    def _selected(self) -> str:
        """The job fields to SELECT: a ledger older than schema 4 read read-only has no ``backend`` column."""
        if self._fields_sql is None:
            with self._lock:
                present = {row[1] for row in self._conn.execute("PRAGMA table_info(jobs)")}
            self._fields_sql = ", ".join(name if name in present else f"NULL AS {name}" for name in _FIELDS)
        return self._fields_sql

    def get_job(self, job_id: str) -> JobRecord:
        """The job with this local id. Raises ``KeyError`` when there is none."""
        fields = self._selected()
        with self._lock:
            row = self._conn.execute(f"SELECT {fields} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return _row_record(row)

    def jobs(self) -> list[JobRecord]:
        """Every job of the run, in submission order (``seq``)."""
        try:
            fields = self._selected()
            with self._lock:
                rows = self._conn.execute(f"SELECT {fields} FROM jobs ORDER BY seq").fetchall()
            return [_row_record(row) for row in rows]
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError) as exc:
            raise _damaged(self.run_dir / LEDGER_FILE, exc) from None

    def next_seq(self) -> int:
        """The ``seq`` for the next job: 1 in an empty run, else one more than the largest."""
        with self._lock:
            (largest,) = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
        return int(largest) + 1

    # ------------------------------------------------------------------ for the modules that add tables
    def query(self, sql: str, parameters: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL query, as committed; ``[]`` when a table it reads is missing (an old
        ledger read read-only, before any writer upgraded it).

        A writable ledger reads through a connection of its own: in WAL mode a reader never waits for the
        writer, whose lock is held through each commit's sync to disk, and a widget's redraw reading scores
        on the kernel's loop would have waited for the disk with it.
        """
        return self._reading(lambda conn: self._select(conn, sql, parameters))

    def _reading(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read(connection)`` on the connection reads use: a writable ledger's own reader (see query)."""
        if self._readonly:
            with self._lock:
                return read(self._conn)
        with self._read_lock:
            if self._reader is None:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                self._reader = _connect(self.run_dir / LEDGER_FILE, readonly=True)
            return read(self._reader)

    @staticmethod
    def _select(conn: sqlite3.Connection, sql: str, parameters: Iterable[Any]) -> list[tuple[Any, ...]]:
        try:
            return conn.execute(sql, tuple(parameters)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def version(self) -> int:
        """A value that differs after any commit to this ledger, by this ledger or by any other connection
        or process (a rating written elsewhere, then a checkpoint that emptied the WAL), and stays equal
        while nothing is committed: what a view keeps its rows against.

        Commits are told by SQLite's ``PRAGMA data_version``, the check that keeps its own page cache right,
        which counts other connections' commits: a writable ledger asks its reader connection, for which
        the writer's are another's (a read-only ledger makes none of its own). No file of the ledger is
        opened beside SQLite: closing a second descriptor of a file drops every POSIX lock this process
        holds on it (the WAL write lock of a transaction under way, so that another process could write
        the WAL at the same time); SQLite's own connections share their locks.

        >>> import tempfile
        >>> with Ledger.create(Path(tempfile.mkdtemp()), meta={}) as ledger:
        ...     before = ledger.version()
        ...     ledger.set_meta(budget_usd=20.0)
        ...     ledger.version() != before, ledger.version() == ledger.version()
        (True, True)
        """
        # The reader never waits for the writer's lock, held through each commit's sync to disk (a table
        # asks this on the kernel's loop before each redraw).
        (data_version,) = self._reading(lambda conn: conn.execute("PRAGMA data_version").fetchone())
        return int(data_version)

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One committed write transaction (rolled back whole on error), for the judging tables."""
        return self._write()

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One committed transaction; rolled back whole if anything in it fails."""
        if self._readonly:
            raise PermissionError(f"{self!r} was opened read-only. Fix: Ledger.open(run_dir) to write.")
        with self._lock:
            if not durable:
                self._conn.execute("PRAGMA synchronous = NORMAL")
            try:
                # IMMEDIATE takes the write lock up front, so a second writer waits (busy timeout) at BEGIN
                # instead of failing half-way through a transaction.
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # a failed COMMIT (disk full) may have ended it already
                        self._conn.execute("ROLLBACK")
                    raise
            finally:
                # Also when BEGIN failed (locked): left at NORMAL, every later "sending" row would go unsynced.
                if not durable:
                    self._conn.execute("PRAGMA synchronous = FULL")


RACY_WINDOW_NS = 2_000_000_000
"""The coarsest file clock tick (FAT's 2 s): a file changed this recently may change again keeping its time."""


def ledger_version(run_dir: Path, ledger: Ledger | None, *, now_ns: int | None = None) -> object:
    """A value that differs whenever the ledger of ``run_dir`` may have changed since it was last taken
    (equal values: certainly unchanged): :meth:`Ledger.version` of ``ledger``, this process's open
    connection to it, else the files' times, sizes and inodes, read by ``stat`` alone.

    Without a connection a file's time is all there is, and it moves once a clock tick (4 ms on many
    Linux file systems, 2 s on FAT): a file changed within a tick of now is "racy" (git's word) and its
    value is new each time, so that a second commit in the same tick is never missed.

    >>> import tempfile
    >>> run_dir = Path(tempfile.mkdtemp())
    >>> Ledger.create(run_dir, meta={}).close()
    >>> written = (run_dir / LEDGER_FILE).stat().st_mtime_ns
    >>> ledger_version(run_dir, None, now_ns=written) == ledger_version(run_dir, None, now_ns=written)
    False
    >>> later = written + RACY_WINDOW_NS  # settled: a later commit moves the file's time
    >>> ledger_version(run_dir, None, now_ns=later) == ledger_version(run_dir, None, now_ns=later)
    True
    """
    if ledger is not None:
        try:
            return ledger.version()
        except sqlite3.ProgrammingError:  # closed with its client meanwhile: the files still tell
            pass
    now_ns = time.time_ns() if now_ns is None else now_ns
    stamps: list[object] = []
    for name in (LEDGER_FILE, f"{LEDGER_FILE}-wal"):
        try:
            stat = (run_dir / name).stat()
        except OSError:
            stamps.append(None)
            continue
        if abs(now_ns - stat.st_mtime_ns) < RACY_WINDOW_NS:
            return object()  # equal to nothing: read again
        stamps.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(stamps)


@dataclass
class _Pending:
    """One write waiting for the writer thread."""

    write: Callable[[sqlite3.Connection], None]
    durable: bool
    future: concurrent.futures.Future[None]


@dataclass
class _JobUpdate:
    """One job update, already checked and turned into columns."""

    job_id: str
    columns: dict[str, Any]
    remote_id: Any

    def __call__(self, conn: sqlite3.Connection) -> None:
        assignments = ", ".join(f"{name} = ?" for name in self.columns)
        try:
            cursor = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = ?", [*self.columns.values(), self.job_id]
            )
        except sqlite3.IntegrityError as exc:
            raise ValueError(
                f"remote id {self.remote_id!r} already belongs to another job of this run; a remote "
                "job is never given to two jobs (that would show one video twice)."
            ) from exc
        if cursor.rowcount == 0:
            raise KeyError(self.job_id)


def _connect(path: Path, *, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module opens no hidden transactions; _write() says where they are.
    # check_same_thread=False: the Ledger's own lock serialises use instead (see Ledger.__init__).
    if readonly:
        uri = f"{path.absolute().as_uri()}?mode=ro{'&immutable=1' if immutable else ''}"
        return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
    return sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)


def _writer(conn: sqlite3.Connection) -> sqlite3.Connection:
    # WAL: readers in other processes (load_run, `sora-nb ls`) neither block the writer nor see half a commit.
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL, not NORMAL: in WAL mode NORMAL already survives a killed process, but a power cut or OS crash
    # may drop the last commits -- and a lost "sending" row means resume could pay for a create twice.
    # FULL syncs the WAL at each commit; commits come at the pace of HTTP requests, so the cost is small.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _damaged(path: Path, exc: Exception) -> SoraError:
    """The error for a ledger that cannot be read (overwritten, truncated, edited by hand)."""
    return SoraError(
        f"the run ledger {str(path)!r} is damaged and cannot be read ({type(exc).__name__}: {exc}). "
        f"Fix: restore it from a backup, or start a new run; the videos already downloaded stay in "
        f"{str(path.parent / 'videos')!r}."
    )


def _on_read_only_disk(run_dir: Path) -> bool:
    """True when ``run_dir`` cannot be written and no WAL of a writer is left beside its ledger."""
    wal = run_dir / f"{LEDGER_FILE}-wal"
    return not os.access(run_dir, os.W_OK) and not (wal.exists() and wal.stat().st_size > 0)


def _json_for_ledger(name: str, value: Any, *, what: str = "job field") -> str:
    """``value`` as JSON, refusing anything that looks like an API key (checked with its name)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except TypeError as exc:
        raise ValueError(f"{what} {name!r} must be JSON (str, number, bool, None, list, dict): {exc}") from exc
    if looks_like_secret(f"{{{json.dumps(name)}: {text}}}"):  # as json.dumps({name: value}) writes it
        # The value itself is never echoed: it may be the key.
        raise ValueError(
            f"{what} {name!r} looks like it holds an API key or token; "
            "the ledger never stores keys (they stay in the client). Fix: remove it from the value."
        )
    return text


def _stored(name: str, value: Any) -> dict[str, Any]:
    """The column(s) that store one JobRecord field, after the checks that every write goes through."""
    if name == "status" and value not in JOB_STATUSES:
        raise ValueError(f"status {value!r} is not one of {', '.join(JOB_STATUSES)}.")
    if name == "create_state" and value not in CREATE_STATES:
        raise ValueError(f"create_state {value!r} is not one of {', '.join(CREATE_STATES)}.")
    if name == "spec":
        if not isinstance(value, JobSpec):
            raise TypeError(f"spec must be a sora_nb JobSpec, not {type(value).__name__}.")
        # All of the spec as JSON (axes included), plus plain copies for SQL readers.
        text = _json_for_ledger("spec", dataclasses.asdict(value))
        return {"spec": text, **{column: getattr(value, column) for column in _SPEC_COLUMNS}}
    if name in _FREE_TEXT and isinstance(value, str):
        return {name: redact(value)}
    if value is None or isinstance(value, (bool, int, float)):
        return {name: value}  # nothing key-shaped fits in a number (and the field names are ours)
    _json_for_ledger(name, value)
    return {name: value}


def _record_row(record: JobRecord, now: float) -> list[Any]:
    columns: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(record, name)
        columns |= _stored(name, now if name == "updated_at" and value is None else value)
    return [columns[name] for name in _COLUMNS]


def _row_record(row: tuple[Any, ...]) -> JobRecord:
    values = dict(zip(_FIELDS, row, strict=True))
    spec = json.loads(values.pop("spec"))
    known = {f.name for f in dataclasses.fields(JobSpec)}
    # Unknown spec keys are dropped rather than crashing: a newer minor version may add some.
    return JobRecord(spec=JobSpec(**{k: v for k, v in spec.items() if k in known}), **values)
