"""One driver per run: an operating-system lock on the run directory, held while a client drives it.

Two drivers of one run would both send its unsent jobs, and pay for them twice. So the client that
drives a run (``sweep.start``, ``generate``'s session, ``sora_nb.resume``) holds an exclusive lock on
``run_dir/driver.lock`` until it closes. It is the OS's lock (``flock``; ``msvcrt.locking`` on Windows),
so it dies with its process: a crash or a SIGKILL never leaves a stale lock behind. On POSIX the lock is
taken on the run directory itself, which a user cannot delete or replace under a live run the way one
removes a "stale" lock file; the file only says who holds it (pid, host, since), for the message a second
driver gets. Readers (``load_run``, ``sora-nb ls``,
widgets, ``Ledger.open(readonly=True)``) never take it.

Within one process, two clients are two drivers as well (each file opened has its own lock). A run
held by a client of this process whose jobs have all ended can be taken over by another client of the
process (``sora_nb.resume`` after a full disk, without closing first): the first then may no longer
add jobs to it.

>>> import tempfile
>>> run_dir = Path(tempfile.mkdtemp())
>>> lock = RunLock.acquire(run_dir, idle=lambda: False)
>>> RunLock.acquire(run_dir, idle=lambda: False)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
sora_nb.RunLockedError: run ... is driven by pid ... (this process) on ..., since ...
>>> lock.release()
>>> RunLock.acquire(run_dir, idle=lambda: False).release()
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._errors import RunLockedError, StorageError, storage_error
from ._ledger import LEDGER_FILE

__all__ = ["LOCK_FILE", "RunLock"]

LOCK_FILE = "driver.lock"
HOLDER_WAIT = 0.5
"""Seconds a refused driver waits for the holder's record (written just after the lock is taken)."""

_guard = threading.RLock()
_held: dict[str, RunLock] = {}  # this process's locks, by the run directory's real path


class RunLock:
    """The lock of one run directory, held by this process until :meth:`release` (or its end)."""

    def __init__(self, run_dir: Path, fd: int, locked: int, idle: Callable[[], bool], key: str) -> None:
        self.run_dir = run_dir
        self._key = key  # the real path when taken (a relative run_dir may mean another one later)
        self._fd: int | None = fd
        self._locked = locked  # what holds the OS lock: the directory (POSIX) or the file itself
        self._idle = idle
        self.taken_over = False
        """True once another client of this process took the run over (see the module docstring)."""

    @staticmethod
    @contextlib.contextmanager
    def guard() -> Iterator[None]:
        """Hold while adding jobs to a run, so that it is never taken over as idle meanwhile."""
        with _guard:
            yield

    @classmethod
    def acquire(cls, run_dir: str | os.PathLike[str], *, idle: Callable[[], bool]) -> RunLock:
        """Lock ``run_dir`` (made if missing) for this driver; ``idle()`` says when it may be taken over.

        Raises:
            RunLockedError: another process drives the run, or another client of this one still does.
            StorageError: the directory cannot be made or written (a file, a read-only disk, ...).
        """
        run_dir = Path(run_dir)
        key = os.path.realpath(run_dir)
        with _guard:
            mine = _held.get(key)
            if mine is not None and not mine._idle():
                raise _locked_error(run_dir, mine.holder(), same_process=True)
            fd = _open(run_dir)
            if mine is not None:  # idle: taken over (only now that the directory is known to be writable)
                mine.release()
                mine.taken_over = True
            locked = _lockable(run_dir, fd)
            try:
                _lock(locked)
            except _HELD as exc:
                holder = _read_holder(fd, wait=HOLDER_WAIT)
                _close(fd, locked)
                raise _locked_error(run_dir, holder, same_process=holder.get("pid") == os.getpid()) from exc
            except OSError as exc:  # a file system without locks (some network or FUSE mounts)
                _close(fd, locked)
                raise StorageError(
                    f"cannot lock the run directory {run_dir} ({exc.strerror or exc}), so two drivers could not be "
                    "kept apart. Fix: put run directories on a local disk (run_dir=... or run_root=...).",
                    run_dir=run_dir,
                ) from exc
            try:
                # Who holds it, for the next driver's message; not needed for the lock itself.
                holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, json.dumps(holder).encode())
            except OSError:
                pass  # a full disk: the lock holds all the same, its message names no holder
            lock = _held[key] = cls(run_dir, fd, locked, idle, key)
            return lock

    def holder(self) -> dict[str, Any]:
        """``{"pid", "host", "since"}`` as written in the lock file (empty when unreadable)."""
        return _read_holder(self._fd) if self._fd is not None else {}

    def release(self) -> None:
        """Let another driver take the run (idempotent)."""
        with _guard:
            if self._fd is None:
                return
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # no holder named while free
            _close(self._fd, self._locked)  # closing what holds the OS lock is what releases it
            self._fd = None
            if _held.get(self._key) is self:
                del _held[self._key]

    def __repr__(self) -> str:
        state = "taken over" if self.taken_over else "released" if self._fd is None else "held"
        return f"<RunLock {str(self.run_dir)!r} {state}>"


def _open(run_dir: Path) -> int:
    blocker = next((p for p in (run_dir, *run_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise StorageError(
            f"cannot make the run directory {run_dir}: {blocker} is a file, not a directory. "
            "Fix: choose another run_dir.",
            run_dir=run_dir,
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        return os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        resumable = (run_dir / LEDGER_FILE).exists()
        raise storage_error(exc, doing="write the run's lock file", run_dir=run_dir, resumable=resumable) from exc


def _close(fd: int, locked: int) -> None:
    os.close(fd)
    if locked != fd:
        os.close(locked)


if sys.platform == "win32":  # pragma: no cover - not run in CI (Linux)
    import msvcrt

    def _lockable(run_dir: Path, fd: int) -> int:
        return fd  # a directory cannot be opened to lock it: the file is the lock

    # A byte far past the holder's text: a locked region cannot be read by others on Windows.
    _LOCK_OFFSET = 1 << 20

    _HELD: tuple[type[OSError], ...] = (OSError,)  # what locking raises when another handle holds it

    def _lock(fd: int) -> None:
        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    _HELD = (BlockingIOError,)  # what flock raises when another open file holds the lock

    def _lockable(run_dir: Path, fd: int) -> int:
        # The directory, not the file: a lock file deleted or replaced while held (taken for a stale one)
        # would let the next driver lock a new file and drive the run as well.
        try:
            return os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            os.close(fd)
            raise storage_error(exc, doing="open the run directory to lock it", run_dir=run_dir,
                                resumable=(run_dir / LEDGER_FILE).exists()) from exc

    def _lock(fd: int) -> None:
        # flock, not lockf: its locks belong to the open file, so two clients of one process conflict too.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int, *, wait: float = 0.0) -> dict[str, Any]:
    """The holder's record; ``wait`` gives a holder that has just taken the lock time to write it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            data = json.loads(os.read(fd, 4096))
        except (OSError, ValueError):  # not written yet, or half written
            data = None
        if isinstance(data, dict) or time.monotonic() >= deadline:
            return data if isinstance(data, dict) else {}
        time.sleep(0.005)


def _locked_error(run_dir: Path, holder: dict[str, Any], *, same_process: bool) -> RunLockedError:
    pid = holder.get("pid") if isinstance(holder.get("pid"), int) else None
    host = holder.get("host") if isinstance(holder.get("host"), str) else None
    since = holder.get("since") if isinstance(holder.get("since"), (int, float)) else None
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if since else "a moment ago"
    who = f"pid {pid}" if pid else "another process"
    if same_process:
        who, fix = (
            f"pid {pid} (this process)",
            "use the run you have (its jobs are still going), wait for them, or close the client that drives it "
            "(run.close()) first",
        )
    else:
        fix = f"wait for it to finish, or stop that process ({'kill ' + str(pid) if pid else 'its script'})"
    return RunLockedError(
        f"run {run_dir} is driven by {who} on {host or 'an unknown host'}, since {when}: two drivers would pay "
        f"twice for its unsent jobs. Fix: sora_nb.load_run({str(run_dir)!r}) reads it without driving it; "
        f"to drive it, {fix}, then sora_nb.resume({str(run_dir)!r}).",
        run_dir=run_dir,
        pid=pid,
        host=host,
        since=float(since) if since else None,
    )
