"""Red-team attacks on the runner's pacing and what moved off the loop with it (sora_nb/_pace.py,
the ledger's reader connection, part files made in threads)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sora_nb import _download
from sora_nb._contract import ContractClient

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

