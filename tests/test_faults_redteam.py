"""Red-team attacks on issue 9's promises that tests/test_faults.py does not make: a lock file deleted
while its run is driven, a server whose list pages in a circle, an audit that would delete another run's
videos, ... Each counts at the server (its audit of accepted creates, or the requests it saw).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_support import FAST_POLLS, TEST_KEY, LoopbackSimulator, child_env, ledger_rows, loopback_simulators, stop
from support import wait_for

import sora_nb
from sora_nb._runlock import LOCK_FILE
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

FAST = 0.004


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[Callable[..., LoopbackSimulator]]:
    with loopback_simulators(tmp_path) as start:
        yield start


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SORA_NB_PROFILE", "SORA_NB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)


# ---------------------------------------------------------------------- one driver, whatever happens to its file
RESUME = textwrap.dedent("""
    import json, sys
    import sora_nb

    try:
        run = sora_nb.resume(sys.argv[1])
    except Exception as exc:
        print(json.dumps({"refused": type(exc).__name__}), flush=True)
        raise SystemExit(0)
    run.wait(timeout=60)
    print(json.dumps({"drove": run.counts()}), flush=True)
    run.close()
""")


def _resume_elsewhere(run_dir: Path) -> dict[str, Any]:
    """``sora_nb.resume(run_dir)`` in another process: what it did."""
    resumer = subprocess.Popen([sys.executable, "-c", RESUME, str(run_dir)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=child_env(), cwd=run_dir.parent)
    out, err = stop(resumer, timeout=90)
    assert out.strip(), err
    outcome: dict[str, Any] = json.loads(out.splitlines()[-1])
    return outcome


@pytest.mark.slow
def test_a_lock_file_deleted_or_replaced_while_held_still_keeps_a_second_driver_out(
    loopback: Callable[..., LoopbackSimulator], tmp_path: Path
) -> None:
    """A user who takes ``driver.lock`` for a stale lock file removes it (or a sync tool replaces it) while
    the run is driven. Before: the next ``sora_nb.resume`` made a new file, locked it and drove the run too
    (6 jobs, 11 creates at the server). Now the lock is the run directory's own: the resumer is refused."""
    sim = loopback("--time-scale", "0.02")
    run_dir = tmp_path / "run"
    jobs = 4
    with sora_nb.connect("openai-compatible", base_url=sim.base_url, run_root=tmp_path,
                         poll_policy=FAST_POLLS) as client:
        run = client.sweep(prompt=[f"held lock {i}" for i in range(jobs)]).start(max_concurrency=1,
                                                                                run_dir=run_dir)
        wait_for(lambda: len(sim.audit()) >= 1, what="the first create")
        (run_dir / LOCK_FILE).unlink()
        deleted = _resume_elsewhere(run_dir)
        (run_dir / LOCK_FILE).write_text("{}")  # replaced by another file
        replaced = _resume_elsewhere(run_dir)
        run.wait(timeout=90)
    assert len(sim.audit()) == jobs
    assert run.counts() == {"completed": jobs}
    assert deleted == replaced == {"refused": "RunLockedError"}
    assert sorted(row.remote_id or "" for row in ledger_rows(run_dir)) == sorted(e["id"] for e in sim.audit())
