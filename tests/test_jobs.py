"""Jobs and runs as live objects (``_jobs``): waiting and its deadlines, what a wait says when a job
failed or was stopped, and the derived jobs (remix, extend) with their limits. On the in-process simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support import wait_for

import sora_nb
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

# ---------------------------------------------------------------------------------------------- waiting


def test_failed_job_raises_with_the_servers_error(client: sora_nb.Client) -> None:
    job = client.generate("a storm [fail]")
    with pytest.raises(sora_nb.JobFailedError, match="moderation_blocked") as info:
        job.wait(timeout=30)
    assert info.value.job is job
    assert job.status == "failed" and job.error is not None and job.error.code == "moderation_blocked"
    assert job.video_path is None
    # The server's message ends its own sentence: the fix follows it without a doubled period.
    message = str(info.value)
    assert "create a new video. Fix: change the prompt" in message and ".." not in message


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


def test_waiting_on_a_job_stopped_by_close_says_how_to_resume_it(tmp_path: Path) -> None:
    """Closing stops jobs mid-way (resumable from the ledger); a wait on one says that, not "it failed,
    change the prompt and retry" (a retry on a closed client is refused)."""
    slow = SimulatorTransport(SimulatorConfig(seed=3, time_scale=0.5))
    client = sora_nb.connect("simulator", run_root=tmp_path, transport=slow)
    job = client.generate("a slow sunrise")
    wait_for(lambda: job.remote_id, timeout=10, what="the create's answer")
    client.close()
    with pytest.raises(sora_nb.JobFailedError, match=r"stopped while (queued|in_progress).*client was closed.*"
                                                      r"Fix: sora_nb\.resume\(") as info:
        job.wait(timeout=10)
    assert info.value.job is job and str(job.run.run_dir) in str(info.value)


# ---------------------------------------------------------------------------------------------- derived jobs


def test_remix_and_extend_make_new_jobs(client: sora_nb.Client) -> None:
    job = client.generate("a corgi surfing", seconds="4").wait(timeout=30)
    remix = job.remix("a corgi surfing at night").wait(timeout=30)
    extended = job.extend("the corgi jumps", seconds="8").wait(timeout=30)
    assert remix.spec.parent_id == job.remote_id and remix.spec.kind == "remix"
    assert extended.spec.kind == "extend" and extended.video_path.exists()
    assert len(job.run) == 3


def test_a_seventh_extension_is_refused_before_it_is_sent(client: sora_nb.Client,
                                                          sim_transport: SimulatorTransport) -> None:
    job = client.generate("a corgi surfing", seconds="4").wait(timeout=30)
    for i in range(6):
        job = job.extend(f"the corgi jumps, take {i}", seconds="4").wait(timeout=30)
        assert job.status == "completed", job.error
    sent = len(sim_transport.audit())
    with pytest.raises(sora_nb.ValidationError, match=r"extended 6 times.*at most 6 extensions.*Fix: remix") as info:
        job.extend("once more")
    assert info.value.field == "video" and len(sim_transport.audit()) == sent and len(job.run) == 7
    assert job.remix("a corgi surfing at night").wait(timeout=30).status == "completed"  # a remix starts afresh


# ---------------------------------------------------------------------------------------------- retrying


def test_retrying_twice_never_pays_twice_for_one_failure(
    client: sora_nb.Client, sim_transport: SimulatorTransport
) -> None:
    """Before: ``run.retry_failed()`` sent every failed job again each time, including those already retried
    (2 failures, Retry pressed twice: 8 creates, not 6), and ``job.retry()`` pressed twice paid twice."""
    run = client.sweep(prompt=["a storm [fail]", "a flood [fail]"]).start()
    run.wait(timeout=60)
    assert len(sim_transport.audit()) == 2
    first = run.retry_failed()
    assert len(first) == 2
    run.wait(timeout=60)
    assert len(sim_transport.audit()) == 4
    second = run.retry_failed()  # only the retries, which failed in their turn
    assert sorted(job.spec.retry_of for job in second) == sorted(job.id for job in first)
    run.wait(timeout=60)
    assert len(sim_transport.audit()) == 6
    assert run.retry_failed() != [] and run.wait(timeout=60) is run

    job = client.generate("a fire [fail]")
    with pytest.raises(sora_nb.JobFailedError):
        job.wait(timeout=30)
    again = job.retry()
    with pytest.raises(ValueError, match=f"already retried as {again.id}"):
        job.retry()
    assert again.spec.retry_of == job.id


def test_a_job_makes_its_future_only_for_a_waiter(client: sora_nb.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each job made a concurrent.futures.Future at once (a Condition, an RLock and a deque: ~1 KB and
    10 us): 10 MB and 0.1 s of a 10,000-job sweep's start that nobody waits on job by job. Made now
    for a waiter only, resolved whether it comes before or after the job's end."""
    import concurrent.futures
    import sys
    import threading

    made: list[str] = []
    real_init = concurrent.futures.Future.__init__

    def counting(self: concurrent.futures.Future[object]) -> None:
        if sys._getframe(1).f_globals.get("__name__") == "sora_nb._jobs":
            made.append("job")
        real_init(self)

    monkeypatch.setattr(concurrent.futures.Future, "__init__", counting)
    run = client.sweep(prompt=["a red fox", "a lighthouse", "a corgi"]).start()
    wait_for(lambda: run.done, what="the sweep's end, read without waiting")
    assert made == [] and run.counts() == {"completed": 3}
    assert run.jobs[0].wait(timeout=5) is run.jobs[0] and made == ["job"]  # after its end: resolved at once
    assert run.wait(timeout=5) is run and made == ["job"]  # every job ended: nothing to wait on
    late = client.generate("a slow heron")
    waited: list[sora_nb.Job] = []
    waiter = threading.Thread(target=lambda: waited.append(late.wait(timeout=60)))
    waiter.start()  # before its end, from another thread
    waiter.join(timeout=60)
    assert waited == [late] and late.status == "completed" and made == ["job", "job"]


@pytest.mark.slow
def test_many_threads_waiting_as_jobs_end_all_wake_to_finished_videos(client: sora_nb.Client) -> None:
    """A job's future is made by its first waiter, racing the job's end on the loop: waiters in 6 threads
    (``wait()``, ``wait_async()`` on a loop of their own, and a spin on ``done``) come while 8 jobs end.
    Every waiter wakes, and whoever sees ``done`` finds the job completed with its video on disk."""
    import asyncio
    import threading
    import time

    run = client.sweep(prompt=[f"a heron {i}" for i in range(8)]).start()
    seen: list[tuple[str, str, bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def check(job: sora_nb.Job) -> None:
        path = job.video_path
        seen.append((job.id, job.status, path is not None and path.exists()))

    def blocking() -> None:
        start.wait()
        for job in run.jobs:
            check(job.wait(timeout=60))

    def awaiting() -> None:
        async def each() -> None:
            for job in reversed(run.jobs):
                check(await job.wait_async(timeout=60))

        start.wait()
        asyncio.run(each())

    def spinning() -> None:
        start.wait()
        pending = list(run.jobs)
        while pending:
            for job in [job for job in pending if job.done]:
                check(job)
                pending.remove(job)
            time.sleep(0)  # let the loop's thread have the GIL: the ends this spins on happen there

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                target()
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)
        return body

    kinds = (blocking, blocking, awaiting, awaiting, spinning, blocking)
    threads = [threading.Thread(target=guarded(kind)) for kind in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert len(seen) == 6 * 8
    assert {status for _, status, _ in seen} == {"completed"} and all(on_disk for _, _, on_disk in seen)
