"""The simulator's jobs and characters on disk: one small SQLite file, so a restarted process finds
them again.

A real server keeps its jobs when a client's kernel restarts; with ``SimulatorConfig(state_dir=...)``
the in-process simulator does too. Each accepted job is committed *before* its create is answered
(WAL, ``synchronous=NORMAL``: it survives the process being killed), with its whole drawn future (the
:class:`~._lifecycle.Plan`), so a process that loads it later computes the same ``queued`` ->
``in_progress`` -> ``completed`` timeline from the clock. Deletions are committed too, and so is each
character before its create is answered. Nothing else is written: polls, downloads and character
reads use the memory cache of :class:`~._store.SimulatorState` and touch the file only for an id
they do not know (a job or character another process created).

Each dialect has a file of its own (``simulator.sqlite`` for OpenAI's API, ``simulator-gemini.sqlite``
for Gemini's, ...): they imitate different services, which do not share jobs.

Several processes may share one directory (a resumed kernel while the old one is still dying):
WAL lets them read while one writes, ``BEGIN IMMEDIATE`` serialises the writers, and ids and
creation order (``seq``) are settled inside the writing transaction.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as directory:
...     store = JobStore(directory)
...     store.exists(), store.audit()
(False, [])
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._lifecycle import Plan

if TYPE_CHECKING:
    from ._store import Character, Job

__all__ = ["STATE_FILE", "JobStore", "StoredJob", "job_from_json", "job_to_json", "read_audit", "state_file"]

STATE_FILE = "simulator.sqlite"
SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of the files this code writes (2 added ``characters``); newer ones are refused."""

# Every statement is idempotent, so one upgrade path serves a new file and any older version.
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    job TEXT NOT NULL,
    audit TEXT NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS characters (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    character TEXT NOT NULL
)
""",
)


def state_file(dialect: str = "openai") -> str:
    """The file name of a dialect's jobs in a state directory.

    >>> state_file(), state_file("gemini")
    ('simulator.sqlite', 'simulator-gemini.sqlite')
    """
    return STATE_FILE if dialect == "openai" else f"simulator-{dialect}.sqlite"


StoredJob = tuple[dict[str, Any], bool]
"""A job's JSON fields (see :func:`job_to_json`) and whether it was deleted."""


def job_to_json(job: Job) -> dict[str, Any]:
    """The persisted fields of a :class:`~._store.Job` (plan included), as JSON-ready values."""
    plan = job.plan
    return {
        "id": job.id,
        "seq": job.seq,
        "kind": job.kind,
        "model": job.model,
        "size": job.size,
        "seconds": job.seconds,
        "prompt": job.prompt,
        "plan": {
            "created_at": plan.created_at,
            "queued_s": plan.queued_s,
            "run_s": plan.run_s,
            "error_code": plan.error_code,
            "error_message": plan.error_message,
            "fail_fraction": plan.fail_fraction,
        },
        "segments": [[prompt, seconds] for prompt, seconds in job.segments],
        "reference": job.reference,
        "source_video_id": job.source_video_id,
        "extension_count": job.extension_count,
        "api_key_hash": job.api_key_hash,
        "extra": job.extra,
    }


def job_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for :class:`~._store.Job` from :func:`job_to_json`'s output."""
    fields = dict(data)
    fields["plan"] = Plan(**data["plan"])
    fields["segments"] = tuple((str(prompt), int(seconds)) for prompt, seconds in data["segments"])
    return fields


class JobStore:
    """The SQLite file of one dialect's jobs and characters (:func:`state_file`) in a state directory.

    Nothing is created until the first job or character is written, so a simulator that never accepts
    one leaves no file behind. The caller (:class:`~._store.SimulatorState`) serialises use with its
    own lock; the connection is shared across threads on that basis and closed by :meth:`close` (or
    when the store is garbage collected).
    """

    def __init__(self, directory: str | Path, dialect: str = "openai") -> None:
        self.directory = Path(directory).absolute()
        self.path = self.directory / state_file(dialect)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def exists(self) -> bool:
        """Whether the file exists (some process has accepted a job or character in this directory)."""
        return self._conn is not None or self.path.exists()

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if not create and not self.path.exists():
            return None
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL: in WAL mode a commit survives the process being killed (a kernel restart, a crash),
            # which is what the simulator must survive; only an OS crash or power cut may drop the last
            # commits. FULL would add an fsync per create on the caller's event loop (the kernel's).
            conn.execute("PRAGMA synchronous = NORMAL")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{str(self.path)!r} was written by a newer sora_nb (simulator state schema {version}). "
                    "Fix: upgrade sora_nb, or give this simulator another state_dir."
                )
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._finalizer = weakref.finalize(self, conn.close)
        return conn

    def close(self) -> None:
        """Close the connection (the store reopens it when used again)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._conn = None
            self._finalizer = None

    # ------------------------------------------------------------------ reads
    def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of a query; none before any process has written the file."""
        with self._lock:
            conn = self._connection(create=False)
            return [] if conn is None else conn.execute(sql, params).fetchall()

    def load(self, *, after_seq: int = -1) -> list[StoredJob]:
        """Every job with ``seq > after_seq``, in creation order, deleted ones included (flagged)."""
        rows = self._select("SELECT job, deleted FROM jobs WHERE seq > ? ORDER BY seq", (after_seq,))
        return [(json.loads(job), bool(deleted)) for job, deleted in rows]

    def get(self, job_id: str) -> StoredJob | None:
        """One job by id, or ``None`` when no process ever created it here."""
        rows = self._select("SELECT job, deleted FROM jobs WHERE id = ?", (job_id,))
        return (json.loads(rows[0][0]), bool(rows[0][1])) if rows else None

    def deleted_ids(self) -> set[str]:
        """Ids of every deleted job."""
        return {job_id for (job_id,) in self._select("SELECT id FROM jobs WHERE deleted = 1")}

    def audit(self) -> list[dict[str, Any]]:
        """The audit entry of every accepted create, by every process, oldest first."""
        return [json.loads(entry) for (entry,) in self._select("SELECT audit FROM jobs ORDER BY seq")]

    def load_characters(self) -> list[dict[str, Any]]:
        """The fields of every character (``Character(**fields)``), oldest first."""
        return [json.loads(fields) for (fields,) in self._select("SELECT character FROM characters ORDER BY rowid")]

    def get_character(self, character_id: str) -> dict[str, Any] | None:
        """One character's fields by id, or ``None`` when no process ever created it here."""
        rows = self._select("SELECT character FROM characters WHERE id = ?", (character_id,))
        return dict(json.loads(rows[0][0])) if rows else None

    # ------------------------------------------------------------------ writes
    def insert(self, job_id: str, build: Callable[[int], Job], *, ttl: float) -> Job | None:
        """Commit a new job: ``build(seq)`` makes it with the next creation number.

        Returns the job, or ``None`` when ``job_id`` is already taken (another process, same seed):
        the caller draws another id.
        """
        with self._lock:
            conn = self._connection(create=True)
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None:
                    conn.execute("ROLLBACK")
                    return None
                (seq,) = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM jobs").fetchone()
                job = build(int(seq))
                conn.execute(
                    "INSERT INTO jobs (id, seq, created_at, expires_at, deleted, job, audit) "
                    "VALUES (?, ?, ?, ?, 0, ?, ?)",
                    (
                        job.id,
                        job.seq,
                        job.plan.created_at,
                        job.expires_at(ttl),
                        json.dumps(job_to_json(job)),
                        json.dumps(job.audit_entry()),
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return job

    def mark_deleted(self, job_id: str) -> bool:
        """Commit a deletion; ``False`` when the job is unknown or already deleted."""
        with self._lock:
            conn = self._connection(create=False)
            if conn is None:
                return False
            cursor = conn.execute("UPDATE jobs SET deleted = 1 WHERE id = ? AND deleted = 0", (job_id,))
            return cursor.rowcount > 0

    def insert_character(self, character: Character) -> bool:
        """Commit a new character; ``False`` when its id is already taken (another process, same seed):
        the caller draws another id."""
        with self._lock:
            conn = self._connection(create=True)
            assert conn is not None
            # One statement, so its own transaction: the id check and the insert cannot be split.
            cursor = conn.execute(
                "INSERT OR IGNORE INTO characters (id, created_at, character) VALUES (?, ?, ?)",
                (character.id, character.created_at, json.dumps(asdict(character))),
            )
            return cursor.rowcount > 0


def read_audit(state_dir: str | Path, dialect: str = "openai") -> list[dict[str, Any]]:
    """Every create the simulators sharing ``state_dir`` (and speaking ``dialect``) accepted, oldest
    first, read from disk (no simulator needed): how a test proves that a restart and resume created
    nothing twice.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     read_audit(directory)
    []
    """
    store = JobStore(state_dir, dialect)
    try:
        return store.audit()
    finally:
        store.close()
