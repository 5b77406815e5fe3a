"""Red-team attacks on the runner's pacing and what moved off the loop with it (sora_nb/_pace.py,
the ledger's reader connection, part files made in threads)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import FAST

import sora_nb
from sora_nb import _download
from sora_nb._contract import ContractClient
from sora_nb._ledger import LEDGER_FILE, Ledger

KEY = "sk-test-redpace-0000000000000000"
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(4096)


def _mp4_server() -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "video/mp4"}, content=MP4)
    )


async def _no_sleep(seconds: float) -> None:
    return None


def _held_until_abandoned(monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[threading.Event, list[Any]]:
    """Make ``_download.<name>`` (run in a worker thread) wait, once entered, until every task it was
    handed to has been dropped by the loop: the disk was slow exactly while the run was being closed."""
    entered = threading.Event()
    orphans: list[asyncio.Task[Any]] = []
    real: Callable[..., Any] = getattr(_download, name)

    def slow(*args: Any) -> Any:
        entered.set()
        deadline = time.monotonic() + 10
        while not (orphans and all(task.done() for task in orphans)) and time.monotonic() < deadline:
            time.sleep(0.001)
        return real(*args)

    monkeypatch.setattr(_download, name, slow)
    return entered, orphans


@pytest.mark.parametrize("slow_step", ["_new_part_file", "_open_part"])
def test_a_download_cancelled_while_its_part_file_is_made_or_opened_leaves_nothing_when_the_loop_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_step: str
) -> None:
    """Attack: a script's ``asyncio.run`` (the CLI's, a user's) cancels a download while its part file is
    being made, or opened for writing, in a thread, and returns: asyncio.run then cancels what is left on
    the loop and ends it before the thread is done.

    Before the fix, made: the undo waited for a loop callback that never ran, and the empty ``.part`` file
    stayed in the run's folder (1 left). Opened: the cancelled download had removed its part file at once,
    and the thread's open ("wb") made it again (1 left, on a loop that keeps running too), its file object
    closed by a loop callback that never ran once the loop ended. Now the thread undoes what it made once
    given up on, and the open never makes the file: nothing is left, nothing is open (a ResourceWarning
    is an error here)."""
    entered, orphans = _held_until_abandoned(monkeypatch, slow_step)
    dest = tmp_path / "videos" / "job.mp4"

    async def main() -> None:
        api = ContractClient(base_url="http://api.test/v1", api_key=KEY, transport=_mp4_server())
        try:
            download = asyncio.create_task(api.download("video_1", dest))
            await asyncio.to_thread(entered.wait, 10)
            download.cancel()
            with pytest.raises(asyncio.CancelledError):
                await download
        finally:
            await api.aclose()
        orphans.extend(t for t in asyncio.all_tasks() if t is not asyncio.current_task())

    asyncio.run(main())
    assert entered.is_set() and orphans
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == []


def test_a_download_still_writes_its_video_whole_after_a_failed_attempt(tmp_path: Path) -> None:
    """The part file is emptied when opened again: a retry after a truncated body starts from nothing."""
    calls = []

    def server(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        # The first answer promises more than the video and breaks off after more than the video's bytes.
        body, length = (MP4 + MP4[: len(MP4) // 2], 2 * len(MP4)) if len(calls) == 1 else (MP4, len(MP4))
        return httpx.Response(200, headers={"content-type": "video/mp4", "content-length": str(length)},
                              content=body)

    async def main() -> Path:
        api = ContractClient(base_url="http://api.test/v1", api_key=KEY, transport=httpx.MockTransport(server),
                             sleep=_no_sleep)
        try:
            return await api.download("video_1", tmp_path / "job.mp4")
        finally:
            await api.aclose()

    path = asyncio.run(main())
    assert len(calls) == 2 and path.read_bytes() == MP4


LOCKED_PROBE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    conn.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print(exc)
else:
    print("took the write lock")
    conn.execute("ROLLBACK")
"""


@pytest.mark.slow  # a second process
def test_closing_the_reader_while_the_writer_is_mid_transaction_keeps_the_write_lock(tmp_path: Path) -> None:
    """Attack: the ledger is closed from another thread while a write transaction is under way: its reader
    connection is closed first, mid-transaction. Closing a descriptor of a file drops every POSIX lock the
    process holds on it; SQLite keeps such descriptors open until its other connections let go, so
    another process must still find the ledger locked (it held: 'database is locked')."""
    ledger = Ledger.create(tmp_path / "run", meta={})
    assert ledger.query("SELECT key FROM meta WHERE key = 'run_id'") == [("run_id",)]  # the reader is open
    closer = threading.Thread(target=ledger.close)
    with ledger.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('mid', '1')")
        closer.start()
        deadline = time.monotonic() + 10
        while not ledger._closed and time.monotonic() < deadline:  # the reader is closed; the writer waits
            time.sleep(0.001)
        assert ledger._closed
        probe = subprocess.run([sys.executable, "-c", LOCKED_PROBE, str(tmp_path / "run" / LEDGER_FILE)],
                               capture_output=True, text=True, timeout=60, check=True)
    closer.join(10)
    assert probe.stdout.strip() == "database is locked", probe
    with Ledger.open(tmp_path / "run", readonly=True) as reader:
        assert reader.meta()["mid"] == 1


@pytest.mark.slow  # six runs
def test_runs_opened_and_closed_leave_no_file_descriptors_behind(tmp_path: Path) -> None:
    """Attack: each run's ledger now has a second connection (its reader). Five runs made, their scores
    read, and closed, one after another in one process: no descriptor more than before."""
    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    def one_run(k: int) -> None:
        with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path) as client:
            run = client.sweep(prompt=[f"a run of its own {k}"]).start()
            run.wait(timeout=60)
            run.to_dataframe()  # its scores, read through the reader connection
        sora_nb.load_run(run.run_dir)  # a DataFrame, read read-only

    one_run(0)  # the shared loop, its workers, imports: made once
    before = descriptors()
    for k in range(1, 6):
        one_run(k)
    assert descriptors() <= before
