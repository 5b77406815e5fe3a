"""The engine end to end against the in-process simulator: jobs, runs, sweeps, cancel, resume."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import av
import pytest
from PIL import Image
from support import FAST

import sora_nb
from sora_nb._media import sha256_file
from sora_nb.simulator import SimulatorConfig, SimulatorTransport


def test_generate_returns_at_once_and_produces_files(client: sora_nb.Client) -> None:
    job = client.generate("a corgi surfing at sunset", model="sora-2", size="1280x720", seconds=4)
    assert job.status == "pending_submit" and not job.done
    assert job.wait(timeout=30) is job
    assert job.status == "completed" and job.progress == 100
    assert job.remote_id and job.remote_id.startswith("video_")
    with av.open(str(job.video_path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.width > stream.height  # 1280x720 is landscape
    with Image.open(job.thumbnail_path) as poster:
        assert poster.format == "WEBP"
    assert job._record.checksum == sha256_file(job.video_path)
    assert job._record.attempts == 1 and job._record.polls >= 1


def test_ledger_row_matches_the_job(client: sora_nb.Client) -> None:
    job = client.generate("a cat skiing", seconds="8").wait(timeout=30)
    from sora_nb._ledger import Ledger

    with Ledger.open(job.run.run_dir, readonly=True) as ledger:
        (row,) = ledger.jobs()
    assert row.remote_id == job.remote_id and row.status == "completed"
    assert row.video_path == f"videos/{job.id}.mp4"
    assert row.submitted_at <= row.started_at <= row.completed_at <= row.downloaded_at


def test_validation_errors_are_raised_before_sending(client: sora_nb.Client, sim_transport: SimulatorTransport) -> None:
    with pytest.raises(sora_nb.ValidationError, match="Allowed: '720x1280', '1280x720'"):
        client.generate("a cat", model="sora-2", size="1792x1024")
    assert sim_transport.audit() == []


def test_cancel_stops_polling_and_deletes_the_remote_job(tmp_path: Path) -> None:
    slow = SimulatorTransport(SimulatorConfig(seed=3, time_scale=0.5))
    with sora_nb.connect("simulator", run_root=tmp_path, transport=slow) as client:
        job = client.generate("a very slow sunrise")
        for _ in range(200):
            if job.remote_id:
                break
            import time

            time.sleep(0.01)
        job.cancel()
        with pytest.raises(sora_nb.JobFailedError, match="cancelled"):
            job.wait(timeout=10)
        assert job.status == "cancelled"
        remote_id = job.remote_id

        async def gone() -> bool:
            try:
                await client.api.retrieve(remote_id)
            except sora_nb.NotFoundError:
                return True
            return False

        for _ in range(100):
            if client._runtime.run(gone(), timeout=5):
                break
        else:
            pytest.fail("the cancelled job was not deleted on the server")


def test_closing_right_after_a_cancel_still_deletes_the_remote_jobs(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Cancelling is how a user stops paying: closing the client at once must not drop the deletes."""
    slow = SimulatorTransport(SimulatorConfig(seed=3, time_scale=0.5, latency=0.05))  # each answer takes 50 ms
    with sora_nb.connect("simulator", run_root=tmp_path, transport=slow) as client:
        run = client.sweep(prompt=[f"a very slow sunrise {i}" for i in range(4)]).start()
        deadline = time.monotonic() + 10
        while not all(job.remote_id for job in run) and time.monotonic() < deadline:
            time.sleep(0.01)
        run.cancel()
        assert run.wait(timeout=10).counts() == {"cancelled": 4}
        remote_ids = [job.remote_id for job in run]
    # closed: every cancelled job is gone from the server, and nothing failed on a closed client
    assert all(remote_ids)
    assert all(slow.state.get(remote_id) is None for remote_id in remote_ids)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_sweep_estimate_start_and_dataframe(client: sora_nb.Client) -> None:
    sweep = client.sweep(prompt=["a corgi surfing", "a cat skiing"], model=["sora-2", "sora-2-pro"],
                         size=["1280x720", "1792x1024"], seconds=["4"], repeats=2)
    estimate = sweep.estimate()
    assert estimate.jobs == 12 and estimate.invalid == 2  # sora-2 cannot do 1792x1024
    assert estimate.cost_usd == pytest.approx(2 * (2 * 0.4 + 2 * 1.2 + 2 * 2.0))
    run = sweep.start(max_concurrency=3)
    assert run.wait(timeout=60) is run
    df = run.to_dataframe()
    assert len(df) == 12 and set(df["status"]) == {"completed"}
    assert list(df.columns[:6]) == ["prompt", "model", "size", "seconds", "style", "repeat"]
    assert df["video_path"].map(lambda p: Path(p).exists()).all()


def test_budget_cap_refuses_to_start(client: sora_nb.Client, sim_transport: SimulatorTransport) -> None:
    sweep = client.sweep(prompt=["a", "b"], model="sora-2-pro", seconds="12")
    with pytest.raises(sora_nb.BudgetExceededError, match=r"over the budget.*Fix: raise budget_usd"):
        sweep.start(budget_usd=1.0)
    assert sim_transport.audit() == []


def test_dropped_creates_are_reconciled_never_paid_twice(tmp_path: Path) -> None:
    flaky = SimulatorTransport(SimulatorConfig(seed=5, time_scale=FAST, drop_after_create_rate=0.5, drop_rate=0.1))
    with sora_nb.connect("simulator", run_root=tmp_path, transport=flaky) as client:
        run = client.sweep(prompt=[f"scene {i}" for i in range(10)]).start()
        run.wait(timeout=60)
        assert run.counts() == {"completed": 10}
        assert client.api.reconciled_creates > 0
    audit = flaky.audit()
    assert len(audit) == 10
    assert sorted(a["id"] for a in audit) == sorted(job.remote_id for job in run)


def test_rate_limits_slow_jobs_down_but_lose_none(tmp_path: Path) -> None:
    limited = SimulatorTransport(SimulatorConfig(seed=6, time_scale=FAST, rate_limit_rpm=4, error_rate=0.05))
    with sora_nb.connect("simulator", run_root=tmp_path, transport=limited) as client:
        run = client.sweep(prompt=[f"shot {i}" for i in range(6)]).start()
        run.wait(timeout=60)
        assert run.counts() == {"completed": 6}
        assert client.api.gate.pauses > 0
    assert len(limited.audit()) == 6


def test_resume_reattaches_without_creating_twice(tmp_path: Path, sim_transport: SimulatorTransport) -> None:
    slowish = SimulatorTransport(SimulatorConfig(seed=9, time_scale=0.02))
    client = sora_nb.connect("simulator", run_root=tmp_path, transport=slowish)
    run = client.sweep(prompt=["one", "two", "three"]).start()
    import time

    deadline = time.monotonic() + 10
    while sum(bool(j.remote_id) for j in run) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    client.close()  # the "kernel restart": tasks stop, the ledger stays
    assert not all(j.done and j.status == "completed" for j in run)

    other = sora_nb.connect("simulator", run_root=tmp_path, transport=slowish)
    resumed = sora_nb.resume(run.run_dir, client=other)
    resumed.wait(timeout=60)
    assert resumed.counts() == {"completed": 3}
    assert len(slowish.audit()) == 3
    df = sora_nb.load_run(run.run_dir)
    assert list(df["status"]) == ["completed"] * 3
    other.close()


def test_a_password_in_the_base_url_is_not_stored_in_the_run(tmp_path: Path) -> None:
    from sora_nb._ledger import Ledger

    server = SimulatorTransport(SimulatorConfig(seed=2, time_scale=FAST))
    base_url = "http://alice:pa55word-1234@sim.test/v1"
    with sora_nb.connect("openai-compatible", base_url=base_url, api_key="k", run_root=tmp_path,
                         transport=server) as client:
        run = client.sweep(prompt=["one"]).start().wait(timeout=30)
    assert run.counts() == {"completed": 1}
    with Ledger.open(run.run_dir, readonly=True) as ledger:
        assert ledger.meta()["base_url"] == "http://alice:REDACTED@sim.test/v1"
    assert not [p for p in run.run_dir.rglob("*") if p.is_file() and b"pa55word" in p.read_bytes()]
    # Resuming needs the password again, from the user: the error says how.
    with pytest.raises(sora_nb.ConfigurationError, match=r"password.*Fix: sora_nb\.resume\(run_dir, client=") as info:
        sora_nb.resume(run.run_dir)
    assert "pa55word" not in str(info.value)
    with sora_nb.connect("openai-compatible", base_url=base_url, api_key="k", run_root=tmp_path,
                         transport=server) as again:
        assert sora_nb.resume(run.run_dir, client=again).wait(timeout=30).counts() == {"completed": 1}
    assert len(server.audit()) == 1


def test_cancel_while_the_create_is_on_the_wire_deletes_what_it_made(tmp_path: Path) -> None:
    import time

    slow = SimulatorTransport(SimulatorConfig(seed=4, time_scale=FAST, latency=0.4))
    with sora_nb.connect("simulator", run_root=tmp_path, transport=slow) as client:
        job = client.generate("a create that takes a while")
        deadline = time.monotonic() + 10
        while job._record.create_state != "sending" and time.monotonic() < deadline:
            time.sleep(0.005)
        assert job.remote_id is None
        job.cancel()
        with pytest.raises(sora_nb.JobFailedError, match="cancelled"):
            job.wait(timeout=10)
        assert job.status == "cancelled"
        assert job.remote_id is not None  # the answer was awaited, so the job it made is known...
        (created,) = slow.audit()
        assert created["id"] == job.remote_id

        async def gone() -> bool:
            try:
                await client.api.retrieve(job.remote_id)
            except sora_nb.NotFoundError:
                return True
            return False

        for _ in range(50):  # ...and deleted on the server, not left running and billed
            if client._runtime.run(gone(), timeout=5):
                break
        else:
            pytest.fail("the job made by the cancelled create is still on the server")


def test_downloads_at_once_are_capped_like_generations(tmp_path: Path) -> None:
    """Quick jobs all finished before the first of their downloads ended: a 10,000-job sweep then ran
    20,000 downloads at once (870 MB in the kernel, none done after minutes). They take turns now."""
    import asyncio

    import httpx

    class SlowContent(SimulatorTransport):
        """Downloads take 50 ms at the server; the most in flight at once is counted."""

        def __init__(self) -> None:
            super().__init__(SimulatorConfig(seed=5, time_scale=FAST))
            self.in_flight = self.peak = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if not request.url.path.endswith("/content"):
                return await super().handle_async_request(request)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(0.05)
                return await super().handle_async_request(request)
            finally:
                self.in_flight -= 1

    transport = SlowContent()
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=transport,
                         max_concurrency=2) as client:
        run = client.sweep(prompt=[f"a quick scene {i}" for i in range(10)]).start(max_concurrency=2)
        run.wait(timeout=60)
    assert run.counts() == {"completed": 10} and all(job.video_path for job in run.jobs)
    assert transport.peak <= 2 * 2  # two jobs at a time, each its video and its poster


def test_a_ledger_that_cannot_commit_stalls_no_one_and_nothing_is_shown_before_its_commit(
    client: sora_nb.Client, sim_transport: SimulatorTransport
) -> None:
    """A slow disk (here: a commit that does not end while the test holds the ledger) must not block the
    event loop that every job and the notebook share, and no job may show, or act on, a change that is
    not committed yet (ledger first: no create leaves before its "sending" row)."""
    import asyncio

    from sora_nb._ledger import Ledger

    prompts = [f"a held ledger, scene {i}" for i in range(6)]
    run = client.sweep(prompt=prompts).start(max_concurrency=6)
    ledger = client._runner.ledger_of(run)
    assert ledger is not None
    with Ledger.open(run.run_dir, readonly=True) as reader:
        for _ in range(500):
            if len(reader.jobs()) == len(prompts):
                break
            time.sleep(0.01)
        with ledger._lock:
            # The writer now waits for this "commit" to end; the jobs' next writes queue up behind it.
            loop_turns = 0
            for _ in range(20):
                # The loop answers (a timeout here: it is blocked on the disk, and so is every job and cell).
                client._runtime.submit(asyncio.sleep(0.005)).result(timeout=5)
                loop_turns += 1
            waiting = ledger._writer is not None  # a job's write waits for the commit to end
            rows = {r.job_id: r for r in reader.jobs()}
            for job in run.jobs:
                row = rows[job.id]
                assert (job.status, job._record.create_state, job.remote_id) == (
                    row.status, row.create_state, row.remote_id
                ), "a job shows a change its ledger row does not hold"
            sent = len(sim_transport.audit())
            assert sent <= sum(r.create_state != "pending" for r in rows.values())
        assert loop_turns == 20 and waiting
    run.wait(timeout=60)
    assert run.counts() == {"completed": len(prompts)}
    assert len(sim_transport.audit()) == len(prompts)


@pytest.mark.slow
def test_a_finished_sweep_keeps_little_python_heap_per_job(tmp_path: Path) -> None:
    """What a finished, waited-on sweep keeps per job, the in-process simulator's side included (tracemalloc,
    after a collection). It was 5.8 KB here: each job kept the ~1.5 KB ``concurrent.futures.Future`` its wait
    made after it ended, and the simulator kept its audit as a dict per create beside the job it already kept."""
    import concurrent.futures
    import gc
    import tracemalloc

    config = SimulatorConfig(seed=9, time_scale=0.002, distinct_renders=1, max_side=16, fps=1)
    with sora_nb.connect("simulator", simulator=config, run_root=tmp_path, max_concurrency=50, measure=False) as client:
        client.generate("warm up").wait(timeout=60)  # what any run imports and makes once
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            run = client.sweep(prompt=[f"a tide pool {i}" for i in range(100)], repeats=3).start()
            run.wait(timeout=300)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        assert run.counts() == {"completed": 300}
        # Not counted: pathlib interns every path part it parses (the interpreter's table of interned strings
        # grows, ~2 MB here, and never shrinks), the interpreter's, not a job's.
        import pathlib

        only = [tracemalloc.Filter(False, pathlib.__file__)]
        diff = after.filter_traces(only).compare_to(before.filter_traces(only), "lineno")
        kept = sum(stat.size_diff for stat in diff) / len(run.jobs)
        futures = [o for o in gc.get_objects() if isinstance(o, concurrent.futures.Future)]
    assert len(futures) < 10, len(futures)
    assert kept < 4_000, f"{kept:.0f} bytes kept per job"
