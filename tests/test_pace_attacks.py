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
from sora_nb import _download, _pace
from sora_nb._contract import ContractClient
from sora_nb._ledger import LEDGER_FILE, Ledger, ledger_version
from sora_nb._pace import Pacer
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

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


class _Unsearchable(SimulatorTransport):
    """The simulator with no list route (404), whose creates take ``create_s`` to answer."""

    def __init__(self, create_s: float) -> None:
        super().__init__(SimulatorConfig(seed=5, time_scale=FAST))
        self.create_s = create_s
        self.creates_arrived = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/videos":
            return httpx.Response(404, json={"error": {"message": "no list here", "type": "invalid_request_error"}})
        if request.method == "POST" and request.url.path == "/v1/videos":
            self.creates_arrived += 1
            await asyncio.sleep(self.create_s)
        return await super().handle_async_request(request)


@pytest.mark.slow  # creates that take a second to answer
def test_creates_waiting_for_their_turn_at_a_close_are_sent_on_resume_not_left_ambiguous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: the loop is busy (here: every turn counts as late, so the window is at its floor, 2) and 12
    jobs may generate at once, so most creates wait for their turn in the pacer's queue; the client closes
    (a kernel restart) and the run is resumed on a server whose list cannot be read.

    Before the fix a create's "sending" row was committed before it waited for its turn: the 10 that never
    left looked to resume like creates that may have made a job, and as the server cannot be searched they
    ended ``ambiguous``, never sent (12 ambiguous, 2 creates at the server: the user left to reconcile 10
    jobs no server ever saw). Now a job is "sending" only once its create has its turn: only the 2 creates
    on the wire at the close are ambiguous, the 10 others are sent on resume and complete: 12 creates."""
    monkeypatch.setattr(_pace, "TARGET_S", -1.0)  # every turn late: the window stays at the floor
    server = _Unsearchable(create_s=1.0)
    prompts = [f"a create that waits its turn {i}" for i in range(12)]
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=server,
                         max_concurrency=12, measure=False) as client:
        pacer = client._runner.pacer
        pacer.window = float(_pace.FLOOR)  # a busy spell before the run began
        run = client.sweep(prompt=prompts).start()
        deadline = time.monotonic() + 30
        while server.creates_arrived < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting = client._runner.runtime.call_and_wait(lambda: len(pacer._waiters))
    assert pacer.in_flight == 0 and not pacer._waiters
    assert waiting >= 6, waiting
    arrived_before = server.creates_arrived
    assert arrived_before < len(prompts)

    server.create_s = 0.0
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=server,
                         max_concurrency=12, measure=False) as client:
        resumed = sora_nb.resume(run.run_dir, client=client)
        resumed.wait(timeout=120)
        # The creates that were on the wire at the close may have made their jobs, and the server cannot
        # be searched for them: those alone are ambiguous (never sent again). The others are sent now.
        counts = resumed.counts()
    assert counts == {"completed": len(prompts) - arrived_before, "ambiguous": arrived_before}, counts
    # Each job's create reached the server once (the in-process server dropped the 2 cut at the close).
    assert server.creates_arrived == len(prompts)


class _Listing(SimulatorTransport):
    """The simulator counting its list requests (searches) and the creates that reach it."""

    def __init__(self) -> None:
        super().__init__(SimulatorConfig(seed=7, time_scale=FAST))
        self.lists = self.creates_arrived = self.deletes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/videos":
            self.lists += 1
        if request.method == "DELETE":
            self.deletes += 1
        if request.method == "POST" and request.url.path == "/v1/videos":
            self.creates_arrived += 1
            await asyncio.sleep(1.0)
        return await super().handle_async_request(request)


@pytest.mark.slow  # creates that take a second to answer
def test_cancelling_a_run_whose_creates_wait_for_their_turn_searches_for_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: ``run.cancel()`` while most creates wait for their turn (the window at its floor). Before the
    fix their rows said "sending", so each cancelled job searched the server's list for a create it never
    sent (20 list requests for 10 jobs: twice each, a second apart; on a 10,000-job run, 10,000 searches).
    Now only the creates on the wire are waited for (and deleted): no search."""
    monkeypatch.setattr(_pace, "TARGET_S", -1.0)
    server = _Listing()
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=server,
                         max_concurrency=12, measure=False) as client:
        pacer = client._runner.pacer
        pacer.window = float(_pace.FLOOR)
        run = client.sweep(prompt=[f"a cancelled create {i}" for i in range(12)]).start()
        deadline = time.monotonic() + 30
        while server.creates_arrived < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        run.cancel()
        run.wait(timeout=60)
        assert run.counts() == {"cancelled": 12}
        assert pacer.in_flight == 0 and not pacer._waiters
    assert server.creates_arrived == 2
    assert server.lists == 0
    assert len(server.audit()) == server.deletes == 2  # the two made are deleted


def test_a_window_cut_to_its_floor_grows_back_on_an_idle_loop_while_its_places_are_held() -> None:
    """Attack: a busy spell (the user's heavy cell) cut the window to its floor, and its 2 places are then
    held by long steps (two downloads over a slow link, a minute each) on a loop that is now idle. Before
    the fix the window was measured only when a step started, so it never grew back while they lasted:
    every other job's poll and create waited for the downloads (2 steps admitted of 8 after 2 s).
    Now the loop is measured while steps wait, and they are admitted within a fraction of a second."""

    async def main() -> tuple[int, float]:
        pacer = Pacer(ceiling=8)
        pacer.window = float(_pace.FLOOR)  # after the busy spell
        slow_link = asyncio.Event()
        admitted: list[int] = []

        async def step(k: int) -> None:
            async with pacer.step():
                admitted.append(k)
                await slow_link.wait()

        tasks = [asyncio.create_task(step(k)) for k in range(8)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        while len(admitted) < 8 and loop.time() - start < 2.0:
            await asyncio.sleep(0.01)
        took, seen = loop.time() - start, len(admitted)
        slow_link.set()
        await asyncio.gather(*tasks)
        return seen, took

    admitted, took = asyncio.run(main())
    assert admitted == 8 and took < 1.0, (admitted, took)


def test_a_tables_change_check_does_not_wait_for_the_writer_threads_commit(tmp_path: Path) -> None:
    """Attack: the writer thread holds a commit open (a slow disk's sync), and a run's table asks whether
    its rows changed (``Run._rows_version``: ``ledger_version``), on the kernel's loop, before each redraw.
    Before the fix that check took the writer's lock and waited for the commit (the loop stalled as long as
    the disk took: here for ever, until the test let the commit end), although the scores it guards are
    read without waiting. Now it answers at once, and tells the commit once it is done."""
    ledger = Ledger.create(tmp_path / "run", meta={})
    in_commit, finish = threading.Event(), threading.Event()

    def slow(conn: Any) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('slow', '1')")
        in_commit.set()
        finish.wait(30)

    before = ledger_version(ledger.run_dir, ledger)
    held = ledger.write_soon(slow)
    try:
        assert in_commit.wait(30)
        seen: list[object] = []
        checker = threading.Thread(target=lambda: seen.append(ledger_version(ledger.run_dir, ledger)))
        checker.start()
        checker.join(10)
        assert not checker.is_alive(), "the change check waited for the writer thread's commit"
        assert seen == [before]  # nothing committed yet
    finally:
        finish.set()
        held.result(timeout=30)
        checker.join(30)
    after = ledger_version(ledger.run_dir, ledger)
    assert after != before and after == ledger_version(ledger.run_dir, ledger)
    ledger.set_meta(budget_usd=1.0)  # a write of its own, not through the writer thread
    assert ledger_version(ledger.run_dir, ledger) != after
    ledger.close()
