"""Lifecycle edge cases of jobs and runs: deadlines, cancels and closes at awkward moments."""

from __future__ import annotations

from pathlib import Path

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
