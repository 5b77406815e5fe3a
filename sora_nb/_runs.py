"""Runs on disk: new run ids, and the runs under a root directory as ``sora-nb ls`` lists them.

Everything here reads other runs' ledgers read-only (:meth:`Ledger.open` with ``readonly=True``), so it is
safe beside runs that are being written. Kept apart from :mod:`sora_nb._ledger`, which is about the one
run a ledger belongs to.

>>> import tempfile
>>> list_runs(Path(tempfile.mkdtemp()) / "nothing-here")
[]
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import SoraError
from ._ledger import JOB_STATUSES, LEDGER_FILE, Ledger

__all__ = ["RunSummary", "claimed_by_other_runs", "list_runs", "new_run_id"]


def new_run_id(now: float | None = None) -> str:
    """A new run id: UTC time (so ids sort by creation everywhere) plus 4 random hex digits.

    >>> new_run_id(0.0)[:16]
    '19700101-000000-'
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunSummary:
    """One run directory as ``sora-nb ls`` shows it; ``error`` says why a ledger could not be read."""

    run_dir: Path
    run_id: str | None
    created_at: float | None
    profile: str | None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def total(self) -> int:
        """The number of jobs in the run."""
        return sum(self.counts.values())

    def __str__(self) -> str:
        """One line for ``sora-nb ls``: id, creation time (UTC), profile, job counts, directory."""
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.created_at)) if self.created_at else "?"
        if self.error:
            return f"{self.run_id}  {when}  unreadable: {self.error}"
        order: dict[str, int] = {status: i for i, status in enumerate(JOB_STATUSES)}
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items(), key=lambda kv: order.get(kv[0], 99)))
        return f"{self.run_id}  {when}  {self.profile or '?'}  {self.total} jobs ({counts or 'none'})  {self.run_dir}"


def claimed_by_other_runs(run_dir: Path) -> set[str]:
    """The remote ids that the other runs under ``run_dir``'s root hold (read-only; unreadable ones skipped).

    Jobs two runs made with the same request (the same cell run twice, two notebooks) look alike on the
    server: a run's search for a lost create, and its audit, must not take the other's for its own.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> Ledger.create(root / "a", meta={}).close()
    >>> claimed_by_other_runs(root / "b")
    set()
    """
    claimed: set[str] = set()
    here = run_dir.resolve()
    for other in run_dir.parent.iterdir():
        if other.resolve() == here or not (other / LEDGER_FILE).is_file():
            continue
        try:
            with Ledger.open(other, readonly=True) as ledger:
                claimed.update(record.remote_id for record in ledger.jobs() if record.remote_id)
        except (SoraError, sqlite3.Error, OSError):
            continue  # a damaged ledger claims nothing; its jobs are then reported (and checked) as orphans
    return claimed


def list_runs(root: str | Path = "sora_runs") -> list[RunSummary]:
    """Every run under ``root`` (its direct subdirectories, or ``root`` itself if it is a run), oldest first.

    Read-only; runs that are being written are fine. An unreadable ledger is listed with its ``error``.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> Ledger.create(root / "20261121-234501-a1b2", meta={"profile": "simulator"}).close()
    >>> [(r.run_id, r.profile, r.total) for r in list_runs(root)]
    [('20261121-234501-a1b2', 'simulator', 0)]
    """
    root = Path(root)
    if (root / LEDGER_FILE).is_file():
        candidates = [root]
    elif root.is_dir():
        candidates = sorted(p for p in root.iterdir() if (p / LEDGER_FILE).is_file())
    else:
        return []
    summaries = [_summarise(run_dir) for run_dir in candidates]
    return sorted(summaries, key=lambda s: (s.created_at or 0.0, str(s.run_dir)))


def _summarise(run_dir: Path) -> RunSummary:
    try:
        with Ledger.open(run_dir, readonly=True) as ledger:
            meta = ledger.meta()
            with ledger._lock:
                rows = ledger._conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
    except (SoraError, sqlite3.Error, OSError) as exc:
        return RunSummary(run_dir, run_dir.name, None, None, error=str(exc))
    created_at = meta.get("created_at")
    return RunSummary(
        run_dir=run_dir,
        run_id=meta.get("run_id"),
        created_at=float(created_at) if isinstance(created_at, (int, float)) else None,
        profile=meta.get("profile"),
        counts={status: int(n) for status, n in rows},
    )
