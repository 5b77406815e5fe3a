"""The in-process simulator keeps its jobs on disk (``SimulatorConfig.state_dir``), so that a kernel
restart followed by ``sora_nb.resume`` behaves as it would against a real server: the jobs are still
there, still running on their timeline, and nothing is created twice.

Unit tests drive :class:`SimulatorState` with an injected clock; the engine tests kill a script
(SIGKILL) and restart a real Jupyter kernel mid-run, then resume from the run directory alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import T0, FakeClock, character_clip, wait_for

import sora_nb
from sora_nb._ledger import LEDGER_FILE, JobRecord, Ledger
from sora_nb._media import sha256_file
from sora_nb.simulator import SimulatorConfig, SimulatorTransport, add_arguments, read_audit
from sora_nb.simulator._persist import SCHEMA_VERSION, STATE_FILE
from sora_nb.simulator._serve import config_from_args
from sora_nb.simulator._store import SimulatorState

BASE = "http://simulator.local/v1"
AUTH = {"authorization": "Bearer sk-test"}
"""The simulator, like the service, answers 401 to a request without a key; any key will do."""


def _state(state_dir: Path, clock: FakeClock, *, seed: int | None = 5) -> SimulatorState:
    return SimulatorState(SimulatorConfig(seed=seed, time_scale=0.01, state_dir=str(state_dir)), clock)


def _create(state: SimulatorState, prompt: str, **fields: Any) -> Any:
    return state.create_job("create", model="sora-2", size="720x1280", seconds=4, prompt=prompt, **fields)


# ---------------------------------------------------------------------------------------------- unit


def test_a_new_state_on_the_same_dir_serves_the_same_jobs_on_the_same_timeline(tmp_path: Path) -> None:
    clock = FakeClock()
    first = _state(tmp_path, clock)
    assert not (tmp_path / STATE_FILE).exists()  # nothing on disk before the first job
    jobs = []
    for i, prompt in enumerate(["a fox", "a cat [fail]", "an owl"]):
        clock.now = T0 + i
        jobs.append(_create(first, prompt, reference=None))
    extension = first.create_job(
        "extend", model="sora-2", size="720x1280", seconds=8, generate_seconds=4, prompt="more",
        segments=(("a fox", 4), ("more", 4)), source_video_id=jobs[0].id, extension_count=1,
    )
    jobs.append(extension)
    assert (tmp_path / STATE_FILE).exists()

    later = _state(tmp_path, clock)  # a restarted process: memory empty, the file holds everything
    for job in jobs:
        again = later.get(job.id)
        assert again == job  # every field, plan included
        for offset in (0.0, 0.05, 0.3, 0.7, 1.5, 3.0, 10.0):
            now = job.plan.created_at + offset
            assert again is not None and again.state(now) == job.state(now)
            assert again.resource(now, later.ttl) == job.resource(now, first.ttl)
    assert later.get(jobs[1].id).state(T0 + 100)[0] == "failed"  # type: ignore[union-attr]
    assert later.audit() == first.audit() and len(later.audit()) == 4
    assert [job.id for job in later.page(limit=10, order="asc", after=None)[0]] == [job.id for job in jobs]
    first.close()
    later.close()


def test_deletion_persists_and_the_audit_keeps_the_create(tmp_path: Path) -> None:
    clock = FakeClock()
    first = _state(tmp_path, clock)
    kept, gone = _create(first, "kept"), _create(first, "gone")
    assert first.delete(gone.id) and not first.delete(gone.id)

    later = _state(tmp_path, clock)
    assert later.get(gone.id) is None and later.get(kept.id) == kept
    assert not later.delete(gone.id)
    assert [job.id for job in later.page(limit=10, order="desc", after=None)[0]] == [kept.id]
    assert later.page(limit=10, order="desc", after=gone.id)[0] == [kept]  # a deleted cursor still works
    assert [entry["id"] for entry in later.audit()] == [kept.id, gone.id]  # paid for, even if deleted
    first.close()
    later.close()


def test_ids_never_collide_with_persisted_ones_even_with_the_same_seed(tmp_path: Path) -> None:
    clock = FakeClock()
    first = _state(tmp_path, clock, seed=5)
    old = [_create(first, f"old {i}") for i in range(3)]
    # Same seed, started after: it loads the old ids and skips them.
    second = _state(tmp_path, clock, seed=5)
    new = [_create(second, f"new {i}") for i in range(3)]
    # Same seed, started on the same empty history as `first` would have: the store refuses the id
    # another process drew first, and the creation order stays one sequence.
    third_dir = tmp_path / "race"
    a, b = _state(third_dir, clock, seed=9), _state(third_dir, clock, seed=9)
    job_a, job_b = _create(a, "from a"), _create(b, "from b")

    ids = [job.id for job in (*old, *new)]
    assert len(set(ids)) == 6
    assert [job.seq for job in (*old, *new)] == list(range(6))
    assert job_a.id != job_b.id and (job_a.seq, job_b.seq) == (0, 1)
    assert a.get(job_b.id) == job_b and b.get(job_a.id) == job_a
    assert [entry["prompt"] for entry in read_audit(third_dir)] == ["from a", "from b"]
    for state in (first, second, a, b):
        state.close()


def test_without_a_state_dir_nothing_is_written_and_ids_stay_as_before(tmp_path: Path) -> None:
    clock = FakeClock()
    memory = SimulatorState(SimulatorConfig(seed=5, time_scale=0.01), clock)
    disk = _state(tmp_path / "state", clock, seed=5)
    # Persistence changes no draw: the same seed gives the same ids, plans and order.
    assert [_create(memory, f"p{i}") for i in range(3)] == [_create(disk, f"p{i}") for i in range(3)]
    assert memory.add_character("Robo") == disk.add_character("Robo")
    assert memory.store is None and memory.reference_dir == memory.cache_dir
    assert disk.reference_dir == str((tmp_path / "state").absolute())
    disk.close()


def test_dialects_keep_their_own_jobs_and_their_extra_fields(tmp_path: Path) -> None:
    clock = FakeClock()
    config = SimulatorConfig(seed=5, time_scale=0.01, state_dir=str(tmp_path), dialect="openrouter")
    first = SimulatorState(config, clock)
    job = _create(first, "priced", extra={"cost": 2.0})
    assert (tmp_path / "simulator-openrouter.sqlite").exists() and not (tmp_path / STATE_FILE).exists()
    later = SimulatorState(config, clock)
    assert later.get(job.id) == job and later.get(job.id).extra == {"cost": 2.0}  # type: ignore[union-attr]
    assert _state(tmp_path, clock).get(job.id) is None  # the OpenAI simulator is another service
    assert [entry["id"] for entry in read_audit(tmp_path, "openrouter")] == [job.id]
    first.close()
    later.close()


def test_characters_persist_and_their_ids_never_collide_even_with_the_same_seed(tmp_path: Path) -> None:
    clock = FakeClock()
    a, b = _state(tmp_path, clock, seed=9), _state(tmp_path, clock, seed=9)
    from_a = a.add_character("Robo")
    assert (tmp_path / STATE_FILE).exists()  # a character alone is worth a file
    clock.now += 1
    from_b = b.add_character("Calico")  # b draws the id a took: the store refuses it, b draws again
    assert from_a.id != from_b.id
    assert a.character(from_b.id) == from_b and b.character(from_a.id) == from_a

    later = _state(tmp_path, clock, seed=9)  # a restarted process
    assert [later.character(c.id) for c in (from_a, from_b)] == [from_a, from_b]
    assert later.add_character("Owl").id not in {from_a.id, from_b.id}
    assert later.character("char_nope") is None
    for state in (a, b, later):
        state.close()


def test_a_state_file_from_before_characters_is_upgraded_in_place(tmp_path: Path) -> None:
    clock = FakeClock()
    old = _state(tmp_path, clock)
    job = _create(old, "made before characters were kept")
    old.close()
    with closing(sqlite3.connect(tmp_path / STATE_FILE)) as conn:  # as schema 1 wrote it
        conn.execute("DROP TABLE characters")
        conn.execute("PRAGMA user_version = 1")

    upgraded = _state(tmp_path, clock)
    assert upgraded.get(job.id) == job
    character = upgraded.add_character("Robo")
    later = _state(tmp_path, clock)
    assert later.character(character.id) == character and later.get(job.id) == job
    with closing(sqlite3.connect(tmp_path / STATE_FILE)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    upgraded.close()
    later.close()


def _call(transport: SimulatorTransport, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=AUTH) as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


def test_a_character_outlives_a_restart_and_a_second_live_instance_sees_it(tmp_path: Path) -> None:
    clock = FakeClock()
    config = SimulatorConfig(
        seed=5, time_scale=0.01, state_dir=str(tmp_path / "state"), cache_dir=str(tmp_path / "cache")
    )
    first, second = SimulatorTransport(config, clock=clock), SimulatorTransport(config, clock=clock)
    video = _call(first, "POST", "/videos", json={"prompt": "a friendly robot", "seconds": "4"}).json()
    clock.now += 3600
    assert _call(first, "GET", f"/videos/{video['id']}/content").status_code == 200
    clip = character_clip(tmp_path)
    made = _call(
        first, "POST", "/videos/characters", data={"name": "Robo"}, files={"video": ("robo.mp4", clip, "video/mp4")}
    )
    assert made.status_code == 200, made.text
    character = made.json()
    url = f"/videos/characters/{character['id']}"
    # Started before the character was made: it finds the id on disk, not in its memory.
    assert _call(second, "GET", url).json() == character
    first.state.close()

    restarted = SimulatorTransport(config, clock=clock)
    again = _call(restarted, "GET", url)
    assert again.status_code == 200 and again.json() == character
    # An unknown id is the same 404 as in memory.
    memory = SimulatorTransport(SimulatorConfig(seed=5, time_scale=0.01, cache_dir=config.cache_dir), clock=clock)
    unknown = [_call(transport, "GET", "/videos/characters/char_nope") for transport in (restarted, memory)]
    assert [response.status_code for response in unknown] == [404, 404]
    assert unknown[0].json() == unknown[1].json()
    assert unknown[0].json()["error"]["code"] == "character_not_found"
    second.state.close()
    restarted.state.close()


CHILD = textwrap.dedent("""
    import asyncio, json, sys
    import httpx
    from sora_nb.simulator import SimulatorConfig, SimulatorTransport

    state_dir, known_id = sys.argv[1], sys.argv[2]

    async def main():
        transport = SimulatorTransport(SimulatorConfig(seed=5, time_scale=0.01, state_dir=state_dir))
        async with httpx.AsyncClient(transport=transport, base_url="http://simulator.local/v1",
                                     headers={"authorization": "Bearer sk-test"}) as client:
            seen = (await client.get(f"/videos/{known_id}")).json()
            made = (await client.post("/videos", json={"prompt": "from the second process"})).json()
        print(json.dumps({"seen": seen, "made": made}))

    asyncio.run(main())
""")


def test_a_second_process_sharing_the_dir_sees_and_adds_jobs(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    transport = SimulatorTransport(SimulatorConfig(seed=5, time_scale=0.01, state_dir=str(state_dir)))
    mine = _call(transport, "POST", "/videos", json={"prompt": "from the first process"}).json()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(state_dir), mine["id"]], capture_output=True, timeout=60, check=True
    )
    answer = json.loads(child.stdout)
    assert answer["seen"]["id"] == mine["id"] and answer["seen"]["prompt"] == "from the first process"
    theirs = answer["made"]
    assert theirs["id"] != mine["id"]  # same seed, yet no collision
    # Reload on miss: this process never created it, yet serves it, and lists it.
    got = _call(transport, "GET", f"/videos/{theirs['id']}")
    assert got.status_code == 200 and got.json()["prompt"] == "from the second process"
    listed = _call(transport, "GET", "/videos", params={"order": "asc"}).json()
    assert [video["id"] for video in listed["data"]] == [mine["id"], theirs["id"]]
    assert _call(transport, "GET", "/videos/video_unknown").status_code == 404
    assert [entry["id"] for entry in transport.audit()] == [mine["id"], theirs["id"]]
    transport.state.close()


def test_connect_keeps_simulator_state_under_run_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with sora_nb.connect("simulator", time_scale=0.01, run_root="runs") as client:
        assert client.simulator.state_dir == str(tmp_path / "runs" / ".simulator")
    with sora_nb.connect(simulator=True, simulator_state=False) as client:
        assert client.simulator.state_dir is None
    with sora_nb.connect("simulator", simulator_state=tmp_path / "elsewhere") as client:
        assert client.simulator.state_dir == str(tmp_path / "elsewhere")
    own = SimulatorConfig(time_scale=0.01, state_dir=str(tmp_path / "own"))
    with sora_nb.connect(simulator=own, run_root="runs") as client:
        assert client.simulator.state_dir == str(tmp_path / "own")
    with pytest.raises(ValueError, match="own state_dir"):
        sora_nb.connect(simulator=own, simulator_state=tmp_path / "x")
    with pytest.raises(ValueError, match="simulator options"):
        sora_nb.connect("openai-compatible", base_url="http://localhost:1/v1", simulator_state=False)


def test_the_served_simulator_takes_a_state_dir() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--state-dir", "/tmp/sim"])).state_dir == "/tmp/sim"
    assert config_from_args(parser.parse_args([])).state_dir is None


# ---------------------------------------------------------------------------------------------- engine

PROMPTS = [f"restart scene {i}" for i in range(6)]

SCRIPT = textwrap.dedent("""
    import sys
    import sora_nb

    root, prompts = sys.argv[1], sys.argv[2:]
    client = sora_nb.connect("simulator", seed=23, time_scale=0.02, run_root=root)
    run = client.sweep(prompt=prompts).start(max_concurrency=3)
    print(run.run_dir, flush=True)
    run.wait(timeout=120)
    print("finished", flush=True)  # never reached: the test kills us first
""")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SORA_NB_PROFILE", "SORA_NB_BASE_URL")}


def _rows(run_dir: Path) -> list[JobRecord]:
    if not (run_dir / LEDGER_FILE).exists():
        return []
    try:
        with Ledger.open(run_dir, readonly=True) as ledger:
            return ledger.jobs()
    except Exception:  # being created right now
        return []


def _mid_run(rows: list[JobRecord]) -> bool:
    """Some jobs accepted by the simulator, and the run not finished: a restart now loses them today."""
    acked = sum(row.create_state == "acked" for row in rows)
    return acked >= 3 and sum(row.downloaded_at is not None for row in rows) < len(PROMPTS) - 2


def _check_finished(run_dir: Path, state_dir: Path) -> None:
    rows = _rows(run_dir)
    assert len(rows) == len(PROMPTS)
    audit = read_audit(state_dir)
    assert sorted(entry["prompt"] for entry in audit) == sorted(PROMPTS)  # exactly one create per job
    # ... and each row's remote id is the job made for its own prompt (a fresh simulator with the same
    # seed would hand the old ids to new, unrelated jobs).
    assert {row.remote_id: row.spec.prompt for row in rows} == {entry["id"]: entry["prompt"] for entry in audit}
    for row in rows:
        assert row.status == "completed" and row.error_code is None
        assert row.video_path and row.checksum
        assert sha256_file(run_dir / row.video_path) == row.checksum


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_continues_the_same_simulator_jobs(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(root), *PROMPTS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=_env(),
    )
    try:
        assert child.stdout is not None
        run_dir = Path(child.stdout.readline().decode().strip())
        wait_for(lambda: _mid_run(_rows(run_dir)) or child.poll() is not None, what="the sweep to be mid-run",
                 timeout=30.0)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    before = _rows(run_dir)
    accepted = {row.remote_id for row in before if row.remote_id}
    assert accepted and sum(row.downloaded_at is not None for row in before) < len(PROMPTS)

    run = sora_nb.resume(run_dir)
    try:
        run.wait(timeout=60)
        assert run.counts() == {"completed": len(PROMPTS)}
    finally:
        run._runner.runtime.run(run._runner.aclose(), timeout=30)
    _check_finished(run_dir, root / ".simulator")
    # The jobs the dead process had made were carried on, not made again.
    assert accepted <= {row.remote_id for row in _rows(run_dir)}


KERNEL_START = """
import sora_nb
client = sora_nb.connect("simulator", seed=29, time_scale=0.02, run_root={root!r})
run = client.sweep(prompt={prompts!r}).start(max_concurrency=3)
print(run.run_dir)
"""

KERNEL_RESUME = """
import json, sora_nb
run = sora_nb.resume({run_dir!r})
await run
df = run.to_dataframe()
print(json.dumps({{"status": df["status"].tolist(), "ids": df["remote_id"].tolist()}}))
"""


@pytest.mark.slow
def test_kernel_restart_mid_run_then_resume_and_await_in_the_new_kernel(tmp_path: Path) -> None:
    jupyter_client = pytest.importorskip("jupyter_client")
    root = tmp_path / "runs"
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path), env=_env())
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)

        def execute(code: str, timeout: float) -> str:
            out: list[str] = []

            def hook(msg: dict[str, Any]) -> None:
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    out.append("\n".join(msg["content"]["traceback"]))

            reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
            assert reply["content"]["status"] == "ok", "".join(out)
            return "".join(out)

        run_dir = Path(execute(KERNEL_START.format(root=str(root), prompts=PROMPTS), 60).strip())
        wait_for(lambda: _mid_run(_rows(run_dir)), what="the sweep to be mid-run in the kernel", timeout=30.0)
        rows = _rows(run_dir)
        before = {row.remote_id for row in rows if row.remote_id}
        assert before and sum(row.downloaded_at is not None for row in rows) < len(PROMPTS)

        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        answer = json.loads(execute(KERNEL_RESUME.format(run_dir=str(run_dir)), 60).strip().splitlines()[-1])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert answer["status"] == ["completed"] * len(PROMPTS)
    assert before <= set(answer["ids"])
    _check_finished(run_dir, root / ".simulator")
