"""Lifecycle edge cases of jobs and runs: cancels and closes at awkward moments (deadlines: test_jobs.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from support import wait_for

import sora_nb
from sora_nb.simulator import SimulatorConfig, SimulatorTransport


def cancel_and_wait(job: sora_nb.Job) -> None:
    job.cancel()
    with pytest.raises(sora_nb.JobFailedError, match="cancelled"):
        job.wait(timeout=10)


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
        wait_for(sim.audit, timeout=10)
        assert job.remote_id is None and job._record.create_state == "sending"
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


def test_a_run_dir_that_is_a_file_is_refused_before_anything_is_sent(client: sora_nb.Client, tmp_path: Path,
                                                                      sim_transport: SimulatorTransport) -> None:
    """Ledger first: nothing is sent without a row; a run directory that cannot be one is refused up front.
    (A disk that refuses the ledger itself is attacked in test_faults.py.)"""
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("not a run directory")
    # Under a file: a file as run_dir itself is refused up front (tests/test_bad_input.py).
    with pytest.raises(sora_nb.StorageError, match=r"a-file is a file, not a directory\. Fix: choose another run_dir"):
        client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start(run_dir=not_a_dir / "run")
    assert sim_transport.audit() == []


def test_cancelling_a_resumed_job_that_waits_for_a_slot_ends_it_and_sends_nothing(tmp_path: Path) -> None:
    """A job whose create may have left before a crash is looked for on the server when it gets a slot.
    Cancelled while it still waits for one, it ends at once, no create is sent for it, and the job its
    create made before the crash is found and deleted."""
    from sora_nb._ledger import JobRecord, Ledger
    from sora_nb._types import JobSpec

    slow = SimulatorTransport(SimulatorConfig(seed=3, time_scale=0.5))  # job 1 holds the one slot for long
    with sora_nb.connect("simulator", run_root=tmp_path, transport=slow, max_concurrency=1) as client:
        sunset = JobSpec("a slow sunset", "sora-2", "720x1280", "4")
        made = client.call(lambda api: api.create(prompt=sunset.prompt, model=sunset.model, size=sunset.size,
                                                  seconds=sunset.seconds))  # before the "crash"
        run_dir = tmp_path / "crashed"
        with Ledger.create(run_dir, meta={"profile": "simulator", "axes": ["prompt"]}) as ledger:
            ledger.add_jobs([
                JobRecord("j0001-aaaa", 1, JobSpec("a slow sunrise", "sora-2", "720x1280", "4")),
                JobRecord("j0002-bbbb", 2, sunset, create_state="sending", submitted_at=time.time() - 5, attempts=1),
            ])
        run = sora_nb.resume(run_dir, client=client)
        first, second = run.jobs
        wait_for(lambda: first.remote_id, timeout=10)
        cancel_and_wait(second)
        assert not first.done
        cancel_and_wait(first)
    assert [entry["prompt"] for entry in slow.audit()] == ["a slow sunset", "a slow sunrise"]
    assert second.remote_id == made.id and slow.state.get(made.id) is None


class RefusesTheFirstCreate(httpx.AsyncBaseTransport):
    """The simulator, but the first create is answered 429 after a while (it never reaches the simulator)."""

    def __init__(self, inner: SimulatorTransport, delay: float) -> None:
        self.inner, self.delay, self.refused = inner, delay, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and not self.refused:
            self.refused += 1
            await asyncio.sleep(self.delay)
            error = {"message": "Too many requests.", "type": "rate_limit_error", "code": "rate_limit_exceeded"}
            return httpx.Response(429, headers={"retry-after": "0.05"}, json={"error": error})
        return await self.inner.handle_async_request(request)


def test_a_job_cancelled_while_its_create_is_refused_is_not_sent_again(tmp_path: Path) -> None:
    """A create refused with a 429 certainly made nothing; when the job was cancelled meanwhile, it must
    not be sent again once the rate limit passes (only to be deleted at once, and maybe billed)."""
    sim = SimulatorTransport(SimulatorConfig(seed=4, time_scale=0.5))
    refusing = RefusesTheFirstCreate(sim, 0.3)
    with sora_nb.connect("simulator", run_root=tmp_path, transport=refusing,
                         retry=sora_nb.RetryPolicy(max_retries=0)) as client:
        job = client.generate("a create that is refused")
        wait_for(lambda: job._record.create_state == "sending", timeout=10)
        cancel_and_wait(job)
    assert refusing.refused == 1 and sim.audit() == []
    assert job.status == "cancelled" and job.remote_id is None


def test_blocking_from_an_observer_in_a_script_is_refused_not_a_deadlock(tmp_path: Path,
                                                                         sim_transport: SimulatorTransport) -> None:
    """In a script, observers run on sora_nb's own loop thread: a blocking call there (``client.close()``)
    would wait for the loop it stops. It is refused at once, saying so, and the client goes on working."""
    client = sora_nb.connect("simulator", time_scale=0.004, run_root=tmp_path, transport=sim_transport)
    errors: list[BaseException] = []
    called = threading.Event()

    def close_when_done(job: sora_nb.Job) -> None:
        if job.done and not called.is_set():
            try:
                client.close(timeout=5)
            except BaseException as exc:  # whatever it is, the test reports it
                errors.append(exc)
            called.set()

    job = client.generate("a corgi surfing")
    job.observe(close_when_done)
    assert called.wait(30), "the observer's close() never returned"
    (error,) = errors
    assert isinstance(error, RuntimeError) and "own loop" in str(error) and "Fix:" in str(error)
    assert client.generate("a cat skiing").wait(timeout=30).status == "completed"
    client.close()


