"""Shared fixtures: every test runs offline, against the in-process simulator or scripted servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import sora_nb
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

FAST = 0.004
"""Simulator time scale for tests: a 60 s job takes about a quarter of a second."""


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


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    """Tests leave no threads behind (the shared sora_nb loop and its workers may stay)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and not t.daemon
        and not t.name.startswith(("sora_nb-loop", "sora_nb-worker"))
    ]
    assert not leaked, f"threads left running: {leaked}"
