"""Crash safety end to end: a process running a sweep is SIGKILLed mid-run, then ``sora_nb.resume``
finishes the run, and the simulator's own audit proves that nothing was created twice and nothing lost.

Three processes, as in real life: the simulator served on a loopback port (a subprocess), the user's
script (a subprocess, killed without warning), and this test, which resumes from the run directory
alone (profile and base URL come from the ledger).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_support import LoopbackSimulator as Simulator
from fault_support import ledger_rows

import sora_nb
from sora_nb._ledger import JobRecord
from sora_nb._media import sha256_file

pytestmark = pytest.mark.slow

JOBS = 8
PROMPTS = [f"crash test scene {i}" for i in range(JOBS)]

SIMULATOR = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sora_nb.simulator import SimulatorConfig, start_server

    port_file, cache_dir, latency, drop_after_create = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    config = SimulatorConfig(seed=17, time_scale=0.02, max_side=32, fps=4, cache_dir=cache_dir,
                             latency=latency, drop_after_create_rate=drop_after_create)
    with start_server(config, port=0) as server:
        Path(port_file + ".tmp").write_text(str(server.port))
        Path(port_file + ".tmp").rename(port_file)
        sys.stdin.read()  # serve until the test closes our stdin
""")

USER_SCRIPT = textwrap.dedent("""
    import sys
    import sora_nb
    from sora_nb._polling import PollPolicy

    port, run_dir, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]
    client = sora_nb.connect("openai-compatible", base_url=f"http://127.0.0.1:{port}/v1",
                             run_root=run_dir + "-unused", poll_policy=PollPolicy(floor=0.05, ceiling=1.0, first=0.2))
    run = client.sweep(prompt=prompts).start(max_concurrency=3, run_dir=run_dir)
    print(run.run_dir, flush=True)
    run.wait(timeout=120)
    print("finished", flush=True)  # never reached: the test kills us first
""")


SLOW_DISK = textwrap.dedent("""
    import time
    from sora_nb._ledger import Ledger

    _commit_batch = Ledger._commit_batch

    def _slow_commit_batch(self, batch):
        time.sleep(0.3)  # a slow disk: the writer thread takes this long for each commit
        _commit_batch(self, batch)

    Ledger._commit_batch = _slow_commit_batch
""")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    """Start simulator subprocesses on free loopback ports; every one is stopped at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*, latency: float, drop_after_create: float = 0.0) -> Simulator:
        port_file = tmp_path / f"port-{len(processes)}"
        process = subprocess.Popen(
            [sys.executable, "-c", SIMULATOR, str(port_file), str(tmp_path / "sim-cache"), str(latency),
             str(drop_after_create)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
        )
        processes.append(process)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"the simulator did not start: {err}")
            time.sleep(0.02)
        return Simulator(int(port_file.read_text()), process)

    yield start
    for process in processes:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin:
        process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()


ANY_KEY = "sk-resume-kill-test"
"""The simulator, like the service, wants a key (any key): never the user's real one."""


def _env() -> dict[str, str]:
    # The user's environment must not steer the child elsewhere, nor lend it a real key.
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SORA_NB_PROFILE", "SORA_NB_BASE_URL")}
    return {**env, "OPENAI_API_KEY": ANY_KEY}


Moment = Callable[[list[JobRecord], list[dict[str, Any]]], bool]


def _run_until_killed(sim: Simulator, run_dir: Path, tmp_path: Path, ready: Moment,
                      script: str = USER_SCRIPT) -> tuple[list[JobRecord], list[dict[str, Any]]]:
    """Start the user's sweep in a child process and SIGKILL it as soon as ``ready(ledger, audit)``.

    A promising moment is confirmed with the child frozen (SIGSTOP), so that what the test saw is still
    true when the kill lands; otherwise the child is let go on (SIGCONT) and watched again.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(sim.port), str(run_dir), *PROMPTS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            rows, audit = ledger_rows(run_dir), sim.audit()
            if rows and ready(rows, audit):
                child.send_signal(signal.SIGSTOP)
                rows, audit = ledger_rows(run_dir), sim.audit()
                if ready(rows, audit):
                    break
                child.send_signal(signal.SIGCONT)
            if child.poll() is not None or time.monotonic() > deadline:
                out, err = child.communicate(timeout=10)
                pytest.fail(f"the moment to kill never came (exit {child.returncode}): {out.decode()} {err.decode()}")
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        out, _err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert out.decode().splitlines() == [str(run_dir)]  # it printed its run dir and never finished
    return ledger_rows(run_dir), sim.audit()


def _resume_and_check(sim: Simulator, run_dir: Path) -> None:
    run = sora_nb.resume(run_dir)  # profile and base URL from the ledger's meta
    try:
        run.wait(timeout=60)
        assert run.counts() == {"completed": JOBS}
    finally:
        run._runner.runtime.run(run._runner.aclose(), timeout=30)  # as `sora-nb resume` does

    audit = sim.audit()
    assert len(audit) == JOBS  # no duplicate create
    assert sorted(entry["prompt"] for entry in audit) == sorted(PROMPTS)
    rows = ledger_rows(run_dir)
    assert len(rows) == JOBS
    assert sorted(row.remote_id for row in rows) == sorted(entry["id"] for entry in audit)
    for row in rows:
        assert row.status == "completed" and row.downloaded_at is not None
        assert row.video_path and row.thumbnail_path and row.checksum
        assert sha256_file(run_dir / row.video_path) == row.checksum  # no lost or torn file
        assert (run_dir / row.thumbnail_path).stat().st_size > 0
    df = sora_nb.load_run(run_dir)
    assert len(df) == JOBS and set(df["status"]) == {"completed"}
    # Downloads cut short by the kill leave no temporary files behind once resumed.
    assert sorted(p.name for p in run_dir.rglob("*.part")) == []


def test_sigkill_during_a_create_then_resume_completes_every_job_once(
    serve: Callable[..., Simulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while a create is on the wire (the server holds every request 0.8 s): the ledger says
    ``sending`` for a job the server has not made. Resume looks for it, finds nothing, creates it once."""
    for name in ("SORA_NB_PROFILE", "SORA_NB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", ANY_KEY)
    # Every create after the first few is a chance: a loaded machine samples the ledger too seldom to
    # catch one 0.15 s window reliably (nor, on two busy workers, a 0.3 s one), so the windows are long
    # and there are several of them.
    sim = serve(latency=0.8)
    run_dir = tmp_path / "run"

    def create_on_the_wire(rows: list[JobRecord], audit: list[dict[str, Any]]) -> bool:
        acked = sum(row.create_state == "acked" for row in rows)
        sending = [row for row in rows if row.create_state == "sending"]
        return acked >= 2 and bool(sending) and len(audit) == acked  # sent, not yet accepted

    rows, _audit = _run_until_killed(sim, run_dir, tmp_path, create_on_the_wire)
    assert any(row.create_state == "sending" for row in rows)
    assert sum(row.status == "completed" for row in rows) < JOBS
    time.sleep(0.2)  # let the server finish with the dead connection before it is asked
    _resume_and_check(sim, run_dir)


def test_sigkill_after_the_server_accepted_an_unanswered_create_then_resume_adopts_it(
    serve: Callable[..., Simulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every create's answer is lost (``drop_after_create``), so the client has to look for its jobs in
    the server's list. Killed in that window, the server has a job the ledger does not know yet: resume
    must find and adopt it instead of paying again."""
    for name in ("SORA_NB_PROFILE", "SORA_NB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", ANY_KEY)
    sim = serve(latency=0.15, drop_after_create=1.0)
    run_dir = tmp_path / "run"

    def paid_but_not_recorded(rows: list[JobRecord], audit: list[dict[str, Any]]) -> bool:
        known = {row.remote_id for row in rows if row.remote_id}
        acked = sum(row.create_state == "acked" for row in rows)
        return acked >= 5 and any(entry["id"] not in known for entry in audit)

    rows, audit = _run_until_killed(sim, run_dir, tmp_path, paid_but_not_recorded)
    known = {row.remote_id for row in rows if row.remote_id}
    orphans = [entry for entry in audit if entry["id"] not in known]
    assert orphans  # the server made (and will bill) jobs that the dead process never recorded
    orphan_rows = [row for row in rows if row.spec.prompt in {entry["prompt"] for entry in orphans}]
    assert orphan_rows and all(row.create_state == "sending" for row in orphan_rows)
    _resume_and_check(sim, run_dir)
    adopted = {row.spec.prompt: row.remote_id for row in ledger_rows(run_dir)}
    assert all(adopted[entry["prompt"]] == entry["id"] for entry in orphans)


def test_sigkill_the_moment_a_create_reaches_the_server_finds_its_row_sending_or_acked_on_disk(
    serve: Callable[..., Simulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ledger first, with the writer thread on a slow disk (each commit takes 0.3 s, so that a create
    that did not wait for its row would reach the server well before it): the child is frozen and killed
    as soon as the server's audit shows any create, and every create the server holds must find its job's
    row committed as ``sending`` (or ``acked``) in the file a new process reads. Resume then pays once
    per job."""
    for name in ("SORA_NB_PROFILE", "SORA_NB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", ANY_KEY)
    sim = serve(latency=0.0)
    run_dir = tmp_path / "run"

    rows, audit = _run_until_killed(sim, run_dir, tmp_path, lambda rows, audit: bool(audit), SLOW_DISK + USER_SCRIPT)
    states = {row.spec.prompt: row.create_state for row in rows}
    assert audit and all(states.get(entry["prompt"]) in ("sending", "acked") for entry in audit), (audit, states)
    _resume_and_check(sim, run_dir)


POOL_SCRIPT = textwrap.dedent("""
    import sys
    import sora_nb
    from sora_nb._polling import PollPolicy

    port, run_dir, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]
    polls = PollPolicy(floor=0.05, ceiling=1.0, first=0.2)
    team = sora_nb.pool(**{
        name: sora_nb.connect("openai-compatible", base_url=f"http://127.0.0.1:{backend_port}/v1",
                              max_concurrency=places, run_root=run_dir + "-unused", poll_policy=polls)
        for name, backend_port, places in (("a", port, 1), ("b", PORT_B, 2))
    })
    run = team.sweep(prompt=prompts, backend="a").start(run_dir=run_dir)
    print(run.run_dir, flush=True)
    run.wait(timeout=120)
    print("finished", flush=True)
""")


def test_sigkill_of_a_pooled_sweep_whose_jobs_wait_for_their_backend_then_resume_makes_each_once(
    serve: Callable[..., Simulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool's sweep pinned to ``a`` (1 place; ``b`` idle): killed while one create is on the wire and the other
    jobs wait in ``a``'s queue (rows ``pending``). Resumed with the pool, every job is made on ``a``, once:
    the one that was on the wire is looked for first, the queued ones are sent; none on ``b``."""
    monkeypatch.setenv("OPENAI_API_KEY", ANY_KEY)
    a, b = serve(latency=0.5), serve(latency=0.0)
    run_dir = tmp_path / "run"

    def on_the_wire_with_others_queued(rows: list[JobRecord], audit: list[dict[str, Any]]) -> bool:
        acked = sum(row.create_state == "acked" for row in rows)
        sending = sum(row.create_state == "sending" for row in rows)
        return acked >= 1 and sending == 1 and sum(row.create_state == "pending" for row in rows) >= 3

    rows, _audit = _run_until_killed(a, run_dir, tmp_path, on_the_wire_with_others_queued,
                                     script=POOL_SCRIPT.replace("PORT_B", str(b.port)))
    assert {row.backend for row in rows if row.create_state != "pending"} == {"a"}  # the queued: not routed yet
    time.sleep(0.2)  # let the server finish with the dead connection before it is asked
    team = sora_nb.pool(**{
        name: sora_nb.connect("openai-compatible", base_url=sim.base_url, api_key=ANY_KEY, max_concurrency=places,
                              run_root=tmp_path / "unused")
        for name, sim, places in (("a", a, 1), ("b", b, 2))
    })
    with team:
        run = sora_nb.resume(run_dir, client=team)
        run.wait(timeout=90)
        assert run.counts() == {"completed": JOBS}
    audit = a.audit()
    assert sorted(entry["prompt"] for entry in audit) == sorted(PROMPTS)  # each made once, on a
    assert b.audit() == []
    assert sorted(row.remote_id for row in ledger_rows(run_dir)) == sorted(entry["id"] for entry in audit)
