"""The ledger's schema and its versions: the tables a new ledger gets, and the upgrades of older ones.

:class:`~sora_nb._ledger.Ledger` reads and writes the rows; this module says what the file is (its
``PRAGMA user_version``), refuses files it cannot read, and brings older ledgers up to date in place.
Kept apart so that a reader of the ledger's rows does not wade through DDL, and so that a schema change
is one module's diff.

>>> import sqlite3
>>> conn = sqlite3.connect(":memory:")
>>> _ = conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
>>> try:
...     check_version(conn, Path("ledger.sqlite"))
... except SoraError as exc:
...     print(str(exc).split(' (')[0])
'ledger.sqlite' was written by a newer sora_nb
>>> conn.close()
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from ._errors import SoraError
from ._redact import logger

__all__ = ["JUDGING_TABLES", "SCHEMA", "SCHEMA_VERSION", "check_version", "upgrade"]

SCHEMA_VERSION = 5
"""``PRAGMA user_version`` of the ledgers this code writes; it refuses to read newer ones.

2: ``remote_id`` is unique. 3: the ``metrics`` and ``judgments`` tables (issue 10). 4: each job's ``backend``
(the pool backend it was sent to, issue 11). 5: ``remote_id`` is unique per backend (two servers of a pool may
hand out the same id, each for its own video). Older ledgers are upgraded in place when opened for writing
(:func:`upgrade`); read-only readers of older ones see ``backend`` as ``None``."""

# Per backend: a pool's servers each name their own videos (COALESCE: a run of one client has no backend names).
_UNIQUE_REMOTE_ID = "CREATE UNIQUE INDEX jobs_remote_id ON jobs (COALESCE(backend, ''), remote_id)"
SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",  # value: JSON
    """CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        spec TEXT NOT NULL,
        create_state TEXT NOT NULL,
        remote_id TEXT,
        status TEXT NOT NULL,
        progress INTEGER,
        error_code TEXT,
        error_message TEXT,
        submitted_at REAL,
        remote_created_at REAL,
        started_at REAL,
        completed_at REAL,
        downloaded_at REAL,
        video_path TEXT,
        thumbnail_path TEXT,
        checksum TEXT,
        estimated_cost_usd REAL,
        reported_cost_usd REAL,
        attempts INTEGER NOT NULL,
        polls INTEGER NOT NULL,
        updated_at REAL,
        backend TEXT,
        prompt TEXT NOT NULL,
        model TEXT NOT NULL,
        size TEXT NOT NULL,
        seconds TEXT NOT NULL,
        style TEXT
    )""",
    # A remote id belongs to one job of its backend (NULLs, jobs not created yet, do not count).
    _UNIQUE_REMOTE_ID,
)

# Version 3 (issue 10): measured metrics (by the video's checksum, so a re-download or a copy is not
# measured twice) and human judgments (ratings and votes; an undo marks a row, never deletes it). New
# tables only, "IF NOT EXISTS": adding them to any older ledger is safe, whatever else its upgrade does.
JUDGING_TABLES: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS metrics (
        checksum TEXT NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        value TEXT NOT NULL,
        computed_at REAL NOT NULL,
        PRIMARY KEY (checksum, name)
    )""",
    """CREATE TABLE IF NOT EXISTS judgments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        rater TEXT NOT NULL,
        job_id TEXT NOT NULL,
        other_id TEXT,
        winner TEXT,
        stars INTEGER,
        tags TEXT,
        note TEXT,
        created_at REAL NOT NULL,
        undone_at REAL
    )""",
)


def check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of the ledger ``conn`` reads (at ``path``); refused when newer or not a ledger."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SoraError(
            f"{str(path)!r} was written by a newer sora_nb (ledger schema {version}; this version reads up to "
            f"{SCHEMA_VERSION}). Fix: pip install -U sora-nb."
        )
    if version < 1:
        raise SoraError(f"{str(path)!r} is not a sora_nb run ledger (no schema version). Fix: check the path.")
    return int(version)


def upgrade(transaction: Callable[[], AbstractContextManager[sqlite3.Connection]], run_dir: Path) -> None:
    """Bring an older ledger to :data:`SCHEMA_VERSION` in place.

    Version 3's tables and version 4's column come first: they are new, so adding them is always safe. Version 2
    makes ``remote_id`` unique; a ledger written before that may already hold one remote id in two
    rows (repeats that adopted a sibling's video): it keeps its version (1), with a warning, and
    ``run.audit()`` lists the duplicates; it is tried again at the next open.
    """
    with transaction() as conn:
        for statement in JUDGING_TABLES:
            conn.execute(statement)
        # Version 4: a new nullable column, safe on any older ledger (its jobs were sent by one client).
        if "backend" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}:
            conn.execute("ALTER TABLE jobs ADD COLUMN backend TEXT")
        # Read inside the write lock: two processes opening the same old ledger upgrade it once.
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version >= 2:
            # Version 5: unique per backend rather than across them, always safe on an index unique by remote id.
            conn.execute("DROP INDEX IF EXISTS jobs_remote_id")
            conn.execute(_UNIQUE_REMOTE_ID)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    if version >= 2:
        return
    try:
        with transaction() as conn:
            conn.execute("DROP INDEX IF EXISTS jobs_remote_id")
            conn.execute(_UNIQUE_REMOTE_ID)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.IntegrityError:
        logger.warning(
            "the ledger in %s holds one remote id in several rows (written by an older sora_nb); it is "
            "kept as it is. `sora-nb audit %s` lists them", run_dir, run_dir,
        )
