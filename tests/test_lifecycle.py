"""Lifecycle edge cases of jobs and runs: deadlines, cancels and closes at awkward moments."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

import sora_nb
from sora_nb.simulator import SimulatorConfig, SimulatorTransport


@pytest.mark.anyio
async def test_an_expired_await_leaves_the_job_running_and_awaitable(tmp_path: Path) -> None:
    """In a notebook, ``await job.wait_async(timeout=...)`` that times out must not end the job's wait."""
    slow = SimulatorTransport(SimulatorConfig(seed=3, time_scale=0.02))  # a job takes about a second
    client = sora_nb.connect("simulator", run_root=tmp_path, transport=slow)
    try:
        job = client.generate("a slow sunrise")
        with pytest.raises(sora_nb.JobTimeoutError, match="await it again"):
            await job.wait_async(timeout=0.01)
        assert not job.done
        assert (await job.wait_async(timeout=30)) is job
        assert job.status == "completed" and job.video_path is not None and job.video_path.exists()
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_an_expired_await_of_a_run_leaves_its_jobs_running(tmp_path: Path) -> None:
    slow = SimulatorTransport(SimulatorConfig(seed=3, time_scale=0.02))
    client = sora_nb.connect("simulator", run_root=tmp_path, transport=slow)
    try:
        run = client.sweep(prompt=["a slow sunrise", "a slow sunset"]).start()
        with pytest.raises(sora_nb.JobTimeoutError, match="2 of 2 jobs still running"):
            await run.wait_async(timeout=0.01)
        assert not run.done
        assert (await run.wait_async(timeout=30)).counts() == {"completed": 2}
    finally:
        await client.aclose()


class SlowAnswers(httpx.AsyncBaseTransport):
    """The simulator, but every create's answer comes ``delay`` seconds after the server made the job
    (a slow network on the way back: the job exists, the client does not know its id yet)."""

    def __init__(self, inner: SimulatorTransport, delay: float) -> None:
        self.inner, self.delay = inner, delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST":
            await asyncio.sleep(self.delay)
        return response


def test_closing_while_a_cancelled_create_is_on_the_wire_deletes_what_it_made(tmp_path: Path) -> None:
    """Cancel, then close at once, while the create is unanswered: the job it made on the server is
    still deleted (not left running and billed), and the job says cancelled, in memory and in the ledger."""
    sim = SimulatorTransport(SimulatorConfig(seed=4, time_scale=0.5))
    with sora_nb.connect("simulator", run_root=tmp_path, transport=SlowAnswers(sim, 0.3)) as client:
        job = client.generate("a create that takes a while")
        deadline = time.monotonic() + 10
        while not sim.audit() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert job.remote_id is None and job.record.create_state == "sending"
        job.cancel()
    (created,) = sim.audit()
    assert sim.state.get(created["id"]) is None, "the job made by the cancelled create is still on the server"
    assert job.status == "cancelled" and job.remote_id == created["id"]
    (row,) = sora_nb.load_run(job.run.run_dir).itertuples()
    assert row.status == "cancelled"


def test_a_sweep_started_in_a_run_dir_that_holds_a_run_is_refused(client: sora_nb.Client, tmp_path: Path,
                                                                    sim_transport: SimulatorTransport) -> None:
    """Starting the same sweep (or a sweep file with a run_dir) twice must not leave jobs that never start."""
    sweep = client.sweep(prompt=["a corgi surfing", "a cat skiing"])
    assert sweep.start(run_dir=tmp_path / "mine").wait(timeout=30).counts() == {"completed": 2}
    with pytest.raises(FileExistsError, match=r"already.*Fix: resume it with sora_nb.resume"):
        sweep.start(run_dir=tmp_path / "mine")
    assert len(sim_transport.audit()) == 2


def test_jobs_whose_ledger_cannot_be_written_fail_with_the_reason(client: sora_nb.Client, tmp_path: Path,
                                                                  sim_transport: SimulatorTransport) -> None:
    """Ledger first: nothing is sent without a row, and the jobs end (failed, saying why) rather than
    waiting forever for a start that never comes."""
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("not a run directory")
    run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start(run_dir=not_a_dir)
    assert run.wait(timeout=30).counts() == {"failed": 2}
    for job in run:
        assert job.error is not None and job.error.code == "ledger_error"
        assert str(not_a_dir) in job.error.message and "nothing was sent" in job.error.message
    assert sim_transport.audit() == []
