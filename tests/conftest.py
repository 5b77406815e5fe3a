"""Shared fixtures: every test runs offline, against the in-process simulator or scripted servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import FAST, Sent

import sora_nb
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

THREAD_EXIT_GRACE = 2.0
"""Seconds a thread that is shutting down gets to finish before it counts as leaked."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sim_transport() -> SimulatorTransport:
    """An in-process simulator whose audit a test can read (and share between clients)."""
    return SimulatorTransport(SimulatorConfig(seed=11, time_scale=FAST))


@pytest.fixture
def client(tmp_path: Path, sim_transport: SimulatorTransport) -> Iterator[sora_nb.Client]:
    """A simulator client writing runs under a temporary directory; closed after the test."""
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path / "runs", transport=sim_transport) as c:
        yield c


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Widgets (or anything with ``close()``) a test made, closed after it."""
    items: list[Any] = []
    yield items
    for item in items:
        item.close()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The notebook's folder: the working directory, so media URLs come out relative."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    """Tests leave no threads behind (the shared sora_nb loop and its workers may stay)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    new = [
        t for t in threading.enumerate()
        if t.ident not in before and not t.daemon
        and not t.name.startswith(("sora_nb-loop", "sora_nb-worker"))
    ]
    # A thread already told to stop may still be on its way out: anyio's worker threads (Starlette's
    # FileResponse reads files through them) are stopped when their loop's root task ends, which
    # ``asyncio.run`` does just before it returns. Give such threads a moment; a leak outlives it.
    deadline = time.monotonic() + THREAD_EXIT_GRACE
    for thread in new:
        thread.join(max(0.0, deadline - time.monotonic()))
    leaked = [t for t in new if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Every message a widget would send to the browser, recorded in order. Outside a kernel ipywidgets
    talks to a ``DummyComm``; its ``publish_msg`` is what a kernel's comm sends on."""
    import comm

    record = Sent()

    def publish_msg(self: Any, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        with record.lock:
            record.messages.append((time.monotonic(), self.comm_id, dict(data or {})))

    monkeypatch.setattr(comm.DummyComm, "publish_msg", publish_msg)
    return record
