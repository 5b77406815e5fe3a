"""``run.cancel()`` from another thread (a widget's handler on a comm-subshell thread, a user's own thread):
once it returns, no create leaves, and every job of the run ends with a status and a reason."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import httpx
import pytest
from support import FAST, wait_for

import sora_nb
from sora_nb.simulator import SimulatorConfig, SimulatorTransport


class _Creates(SimulatorTransport):
    """The simulator, noting for each create that reaches it whether ``run.cancel()`` had returned."""

    def __init__(self) -> None:
        super().__init__(SimulatorConfig(seed=21, time_scale=FAST))
        self.cancel_returned = threading.Event()
        self.after_cancel: list[str] = []
        self.creates = 0
        self.refuse = 0
        """Creates still to refuse with a 429 (which makes nothing) that says to come back in half a second."""
        self.down = False
        """No connection can be made (nothing reaches the server)."""
        self.connect_attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            self.connect_attempts += 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.method == "POST" and request.url.path.rstrip("/").endswith("/videos"):
            self.creates += 1
            if self.cancel_returned.is_set():
                self.after_cancel.append(request.url.path)
            if self.refuse:
                self.refuse -= 1
                return httpx.Response(429, headers={"retry-after": "0.5"},
                                      json={"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})
        return await super().handle_async_request(request)


def test_no_create_leaves_after_a_cancel_from_another_thread_returns(tmp_path: Path) -> None:
    """The loop is busy (here: in the observer of the first job, right before its create leaves) when a
    thread calls ``run.cancel()``. It used to hand each job's cancel over and return at once: the loop then
    sent the create it was about to send, after ``cancel()`` had returned (1 create paid for after it). Now
    ``cancel()`` returns once the loop has cancelled every job, so a create it sends first is one that was
    on the wire when the cancel acted (awaited, then deleted), and none leaves after."""
    server = _Creates()
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server, max_concurrency=2) as client:
        run = client._new_run(axes=("prompt",))
        cancelling: list[threading.Thread] = []

        def cancel_from_another_thread(job: sora_nb.Job) -> None:
            if job._record.create_state != "sending" or cancelling:
                return  # once, right before the first create leaves (its row says "sending" first)

            def cancel() -> None:
                run.cancel()
                server.cancel_returned.set()

            cancelling.append(threading.Thread(target=cancel))
            cancelling[0].start()
            cancelling[0].join(0.3)  # the loop stays busy meanwhile: a cancel that waits for it waits

        run.observe(cancel_from_another_thread)
        jobs = run.submit([client._job_spec(f"a fox, take {i}") for i in range(6)])
        for job in jobs:
            with contextlib.suppress(sora_nb.JobFailedError):
                job.wait(timeout=30)
        cancelling[0].join(10)
        assert server.cancel_returned.is_set()
        assert server.after_cancel == []  # main: 1 create sent after cancel() returned
        assert 1 <= server.creates <= 2  # only what was on the wire when the cancel acted; none of those waiting
        for job in jobs:
            assert job.status == "cancelled" and job.error and job.error.message, (job.id, job.status, job.error)
        assert {job.status for job in run.jobs} == {"cancelled"}


@pytest.mark.parametrize("fault", ["429", "no connection"])
def test_a_create_refused_before_the_cancel_is_not_sent_again_after_it(tmp_path: Path, fault: str) -> None:
    """The create was refused (a 429, or a connection that could not be made: nothing was made) and the client
    waits to send it again when the job is cancelled. The cancel waited for the create's "answer", and the
    client sent it again meanwhile, after ``cancel()`` had returned: 1 create made, paid, then deleted. Now
    the client asks before sending again, and the job ends cancelled with nothing made."""
    server = _Creates()
    server.refuse, server.down = (1, False) if fault == "429" else (0, True)
    retry = sora_nb.RetryPolicy(base=0.5, cap=0.5, jitter=0.0)
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server, retry=retry) as client:
        job = client.generate("a fox that is never made")
        wait_for(lambda: server.creates or server.connect_attempts, what="the create's refusal")
        server.down = False  # the next attempt would be made: only the cancel stops it
        job.run.cancel()
        server.cancel_returned.set()
        with pytest.raises(sora_nb.JobFailedError, match="cancelled"):
            job.wait(timeout=10)  # before, it ended once the create sent again was answered (and deleted)
    assert server.after_cancel == []  # before: 1
    assert job.status == "cancelled" and job.error and job.error.message and job.remote_id is None
    assert server.audit() == []


def test_cancelling_a_run_whose_loop_is_closed_says_so(tmp_path: Path) -> None:
    """A script's ``asyncio.run`` made the client and its run, and ended: nothing can cancel there any more.
    ``run.cancel()`` says so and what to do (it raised "Event loop is closed", and left a coroutine unawaited)."""
    import asyncio

    async def make() -> sora_nb.Run:
        client = sora_nb.connect("simulator", seed=3, time_scale=FAST, run_root=tmp_path, measure=False)
        run = await client.sweep(prompt=["a kite"], seconds="4").start()
        await client.aclose()
        return run

    run = asyncio.run(make())
    with pytest.raises(RuntimeError, match=r"loop .* is closed.*Fix: .*sora_nb\.resume"):
        run.cancel()


@pytest.mark.parametrize("made", [True, False], ids=["made, answer lost", "never reached the server"])
def test_a_cancel_while_a_create_is_answered_502_ends_it_cancelled_paid_at_most_once(
    tmp_path: Path, made: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A thread cancels the run while its create is on the wire; the create is then answered 502 (a proxy: the job
    made upstream and its answer lost, or nothing forwarded). The lost create is looked for, not sent again after
    the cancel: made, it is adopted and deleted (1 create, 1 delete); never made, nothing is (0 creates). Either
    way the job ends cancelled, saying so."""
    server = _Creates()
    deletes: list[str] = []
    posts: list[str] = []
    cancelling: list[threading.Thread] = []
    handle = server.handle_async_request

    async def lossy(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            deletes.append(request.url.path)
        if request.method == "POST":
            posts.append(request.url.path)
        if request.method != "POST" or cancelling:
            return await handle(request)
        cancelling.append(threading.Thread(target=run.cancel))
        cancelling[0].start()
        response = await handle(request) if made else httpx.Response(200)
        await asyncio.sleep(0.2)  # the loop runs the cancel meanwhile: it waits for this create's answer
        await response.aread()
        return httpx.Response(502, json={"error": {"message": "Bad Gateway"}})

    server.handle_async_request = lossy  # type: ignore[method-assign]
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server) as client:
        client.api.list_settle = 0.02  # the simulator lists a job the moment it is made
        run = client._new_run(axes=("prompt",))
        job = run.submit([client._job_spec("a fox behind a proxy")])[0]
        with pytest.raises(sora_nb.JobFailedError, match="cancelled"):
            job.wait(timeout=20)
        cancelling[0].join(10)
        assert not cancelling[0].is_alive()
        wait_for(lambda: len(deletes) == made, what="the adopted job's delete")
    assert len(posts) == 1  # the one create, not sent again after the cancel
    assert "sending it again" not in caplog.text  # before: said so, and waited a retry's delay to end cancelled
    assert len(server.audit()) == (1 if made else 0)
    assert job.status == "cancelled" and job.error and "cancelled" in job.error.message
    assert job.remote_id == (server.audit()[0]["id"] if made else None)


def test_a_cancel_from_a_thread_while_a_cell_holds_the_loop_says_so_and_acts_once_it_is_free(tmp_path: Path) -> None:
    """A thread's ``run.cancel()`` waits for the loop, which a long synchronous cell holds past the wait's bound:
    it raises a TimeoutError that says why and that the cancel is still to come (it was a bare TimeoutError), and
    the loop cancels the run once free."""
    server = _Creates()
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server) as client:
        run = client._new_run(axes=("prompt",))
        runtime = client._runtime
        blocked, release = threading.Event(), threading.Event()

        def long_cell() -> None:
            blocked.set()
            release.wait(30)

        runtime.loop.call_soon_threadsafe(long_cell)
        blocked.wait(10)
        jobs = run.submit([client._job_spec("a fox, waiting")])
        try:
            with pytest.raises(TimeoutError, match=r"busy for 0\.2 s.*runs once it is free"):
                runtime.call_and_wait(run._cancel_all, timeout=0.2)
        finally:
            release.set()
        with pytest.raises(sora_nb.JobFailedError, match="cancelled"):
            jobs[0].wait(timeout=10)
    assert server.creates == 0
