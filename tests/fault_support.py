"""Helpers shared by the fault suite (tests/test_faults.py, and attacks elsewhere): a ``sora-nb simulator``
on a free loopback port with fault options and its audit, the user's child processes, the run's rows as a
reader sees them. Small on purpose: an attack should read top to bottom in its own test.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support import free_port

from sora_nb._ledger import LEDGER_FILE, JobRecord, Ledger
from sora_nb._polling import PollPolicy

TEST_KEY = "sk-faultsuite-not-a-real-key"
"""Sent by every client here: the simulator takes any key, and a request without one is not a real one."""

FAST_POLLS = PollPolicy(floor=0.05, ceiling=0.5, first=0.1)


@dataclass
class LoopbackSimulator:
    """A ``sora-nb simulator`` process on a loopback port; ``audit()`` is its record of accepted creates."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def audit(self) -> list[dict[str, Any]]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/_simulator/audit", timeout=10)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries


@contextlib.contextmanager
def loopback_simulators(work_dir: Path) -> Iterator[Callable[..., LoopbackSimulator]]:
    """Start ``sora-nb simulator OPTIONS...`` (fault options as on its command line) on free ports;
    every server started is stopped on leaving. Wrap it in a fixture (see test_faults.loopback)."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*options: str, port: int | None = None) -> LoopbackSimulator:
        """``port``: where to listen (default a free one; a server killed there is restarted on it this way)."""
        port = port or free_port()
        command = [sys.executable, "-m", "sora_nb._cli", "simulator", "--port", str(port), "--seed", "17",
                   "--max-side", "32", "--fps", "4", "--cache-dir", str(work_dir / "sim-cache"),
                   "--log-level", "warning", *options]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, cwd=work_dir)
        processes.append(process)
        server = LoopbackSimulator(port, process)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                server.audit()
                return server
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sora-nb simulator did not start: {stop(process)[1]!r}")
            time.sleep(0.05)

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
            stop(process)


def child_env() -> dict[str, str]:
    """The environment of the user's child processes: this tree's sora_nb, the test key, nothing that
    would steer them to another server."""
    env = {k: v for k, v in os.environ.items() if k not in ("SORA_NB_PROFILE", "SORA_NB_BASE_URL")}
    return {**env, "OPENAI_API_KEY": TEST_KEY, "PYTHONPATH": os.pathsep.join(sys.path)}


def ledger_rows(run_dir: Path) -> list[JobRecord]:
    """The run's rows as a reader sees them now (none while the ledger is being made)."""
    if not (run_dir / LEDGER_FILE).exists():
        return []
    try:
        with Ledger.open(run_dir, readonly=True) as ledger:
            return ledger.jobs()
    except Exception:  # its writer may be creating it right now
        return []


def stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> tuple[Any, Any]:
    """End a child process (killed if it does not end within ``timeout``) and return what it printed."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate(timeout=timeout)
