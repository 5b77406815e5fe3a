"""The scheduler on virtual time: concurrency caps, poll economy, server poll hints, the shared rate gate.
(The pure poll policy it follows is tested in ``test_polling.py``.)

Nothing here sleeps for real. :class:`VirtualTimeLoop` is an asyncio loop whose clock jumps straight to
the next timer whenever every task is waiting on one, so ``asyncio.sleep(30)`` costs no wall time. The
runner, the contract client (its rate gate included) and the in-process simulator all read that one
clock, so a sweep of minute-long jobs runs in a fraction of a real second, and every timing below
(when a request was sent, when the server finished a job, when the client noticed) is exact and
reproducible. Work handed to threads (rendering, file reads, checksums, the ledger's writer thread) is
waited for in real time while the virtual clock stands still, so it takes no virtual time and cannot
race the clock; its results reach the tasks in the order the work was handed over, not the order the
threads happened to end in, so a busy machine does not change what the tasks do next.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import itertools
import math
import selectors
import statistics
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

import sora_nb
from sora_nb import _runtime
from sora_nb._contract import ContractClient
from sora_nb._jobs import Job
from sora_nb._ledger import Ledger
from sora_nb._polling import PollPolicy
from sora_nb._run import Run
from sora_nb._runner import Runner
from sora_nb._types import TERMINAL_STATUSES, JobSpec
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

EPOCH = 1_700_000_000.0
"""Where virtual time starts: a plausible unix time, so timestamps look real in ledgers and audits."""

DEADLINE = 20_000.0
"""Virtual seconds a test may take before it is declared hung."""

# Realistic durations (time_scale 1: a 4 s sora-2 clip takes about a minute), tiny renders.
REALISTIC = {"max_side": 16, "fps": 1}


# ---------------------------------------------------------------------------------------------- virtual time
class _VirtualSelector(selectors.BaseSelector):
    """A selector that, instead of blocking until the next timer, moves the loop's clock to it."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.loop: VirtualTimeLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        assert self.loop is not None
        if self.loop.hand_over_results():
            return ready  # the tasks that awaited threads run now, at this instant
        if ready or timeout == 0:
            return ready
        if timeout is None or self.loop.threads_busy:
            # A thread is working (or nothing is scheduled at all): wait for it in real time, clock
            # stopped. The bound only keeps a bug from hanging the suite.
            return self._real.select(None if timeout is None else 30.0)
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: when every task is waiting on a timer, time jumps to it."""

    def __init__(self, start: float = EPOCH) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = start
        self.threads_busy = 0
        # Threads' results that came back, held until every thread this loop waits for is done: then
        # handed to the loop in the order the work was handed over (see hand_over_results).
        self._order: dict[asyncio.Future[Any], int] = {}
        self._handed_over = itertools.count()
        self._held: list[tuple[int, Callable[..., object], tuple[Any, ...], contextvars.Context | None]] = []
        # The loop runs timers due before now + resolution; at ~1.7e9 s the float spacing is ~2.4e-7 s,
        # so the default 1e-9 would never reach a timer due exactly now.
        self._clock_resolution = 1e-6

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = super().run_in_executor(executor, func, *args)
        self.awaits_thread(future)
        return future

    def awaits_thread(self, future: asyncio.Future[Any]) -> None:
        """Count ``future``, a thread's work this loop waits for, as busy until its result is in.

        Counted until the loop's own future is done, not the thread's: the result reaches the loop by
        ``call_soon_threadsafe`` after the thread's future is done, and a clock moved in between would
        leap past it.
        """
        self.threads_busy += 1
        self._order[future] = next(self._handed_over)

        def _done(_: asyncio.Future[Any]) -> None:
            self.threads_busy -= 1
            self._order.pop(future, None)

        future.add_done_callback(_done)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any,
                             context: contextvars.Context | None = None) -> asyncio.Handle:
        """A thread hands a future of this loop its result (``asyncio.wrap_future``'s ``_set_state(future,
        source)``, as ``run_in_executor`` and an awaited ledger write do): looked at on the loop, where the
        future is surely counted by then (a quick thread may end before its caller counted it)."""
        if args and isinstance(args[0], asyncio.Future) and args[0].get_loop() is self:
            return super().call_soon_threadsafe(self._arrived, callback, args, context)
        return super().call_soon_threadsafe(callback, *args, context=context)

    def _arrived(self, callback: Callable[..., object], args: tuple[Any, ...],
                 context: contextvars.Context | None) -> None:
        order = self._order.get(args[0])
        if order is None:  # not a thread's work the loop counts (a job's future): as it comes
            self.call_soon(callback, *args, context=context)
        else:
            self._held.append((order, callback, args, context))

    def hand_over_results(self) -> bool:
        """Once every thread this loop waits for is done, give the tasks their results in the order the
        work was handed over, whatever order the threads ended in; ``True`` if there were any.

        Threads end in an order the OS schedules (a busy machine, the ledger's writer batching jobs'
        writes differently): handed over as they ended, the tasks woke in that order, and at one instant
        of virtual time a different order of requests made the rate-limit test count more refusals.
        """
        if not self._held or len(self._held) < self.threads_busy:
            return False
        for _, callback, args, context in sorted(self._held, key=lambda held: held[0]):
            self.call_soon(callback, *args, context=context)
        self._held.clear()
        return True


# The ledger's writer thread commits every job transition and stored metric (Ledger.write_soon) while the
# runner awaits it through asyncio.wrap_future. That is a thread's work too: unseen, the clock leapt over
# poll intervals and deadlines while a commit was on the disk. Its futures are marked when handed over and
# counted when the loop wraps them (unlike a job's future, which the loop itself completes).
_write_soon, _wrap_future = Ledger.write_soon, asyncio.wrap_future
_writer_work: weakref.WeakSet[concurrent.futures.Future[None]] = weakref.WeakSet()


def _write_soon_marked(ledger: Ledger, write: Callable[[Any], None], *, durable: bool = True
                       ) -> concurrent.futures.Future[None]:
    work = _write_soon(ledger, write, durable=durable)
    _writer_work.add(work)
    return work


def _wrap_future_counted(future: Any, *, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[Any]:
    wrapped = _wrap_future(future, loop=loop)
    target = wrapped.get_loop()
    if isinstance(target, VirtualTimeLoop) and future in _writer_work:
        target.awaits_thread(wrapped)
    return wrapped


async def _to_thread_counted(func: Callable[..., Any], *args: Any, **_options: Any) -> Any:
    """``anyio.to_thread.run_sync`` (Starlette's file responses) through the loop's counted executor."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


@pytest.fixture
def vloop(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualTimeLoop]:
    monkeypatch.setattr(anyio.to_thread, "run_sync", _to_thread_counted)
    monkeypatch.setattr(Ledger, "write_soon", _write_soon_marked)
    monkeypatch.setattr(asyncio, "wrap_future", _wrap_future_counted)
    loop = VirtualTimeLoop()
    try:
        yield loop
    finally:
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            _runtime._by_loop.pop(id(loop), None)
            loop.close()


def run_virtually(loop: VirtualTimeLoop, coro: Coroutine[Any, Any, Any]) -> Any:
    return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))


def test_virtual_time_runs_timers_in_order_without_waiting(vloop: VirtualTimeLoop) -> None:
    import time

    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        woke.append((name, vloop.time() - EPOCH))

    async def main() -> None:
        await asyncio.gather(sleeper("c", 3600.0), sleeper("a", 0.5), sleeper("b", 90.0))

    started = time.monotonic()
    run_virtually(vloop, main())
    assert woke == [("a", 0.5), ("b", 90.0), ("c", 3600.0)]
    assert time.monotonic() - started < 60.0  # an hour of virtual time, not of real time


# ---------------------------------------------------------------------------------------------- harness
@dataclass(frozen=True)
class Sent:
    """One request as the server saw it."""

    at: float
    method: str
    path: str
    status: int

    @property
    def video_id(self) -> str | None:
        parts = self.path.split("/")  # /v1/videos/{id}[/content]
        return parts[3] if len(parts) >= 4 and parts[3].startswith("video_") else None

    @property
    def is_poll(self) -> bool:
        return self.method == "GET" and self.video_id is not None and not self.path.endswith("/content")


Fault = Callable[[httpx.Request, float], "httpx.Response | None"]
Tweak = Callable[[httpx.Request, httpx.Response, float], "httpx.Response | None"]


class Server(httpx.AsyncBaseTransport):
    """The in-process simulator on the loop's clock, logging every request, with optional scripted faults.

    ``fault(request, now)`` may answer instead of the simulator; ``tweak(request, response, now)`` may
    change the simulator's JSON answer (its headers in place, or by returning another response).
    """

    def __init__(self, loop: VirtualTimeLoop, config: SimulatorConfig, *, fault: Fault | None = None,
                 tweak: Tweak | None = None) -> None:
        self.loop = loop
        self.sim = SimulatorTransport(config, clock=loop.time)
        self.fault, self.tweak = fault, tweak
        self.log: list[Sent] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        now = self.loop.time()
        response = self.fault(request, now) if self.fault else None
        if response is None:
            response = await self.sim.handle_async_request(request)
            if self.tweak and response.headers.get("content-type", "").startswith("application/json"):
                await response.aread()
                response = self.tweak(request, response, now) or response
        self.log.append(Sent(now, request.method, request.url.path, response.status_code))
        return response

    async def aclose(self) -> None:
        await self.sim.aclose()

    def audit(self) -> dict[str, dict[str, Any]]:
        return {entry["id"]: entry for entry in self.sim.audit()}

    def polls(self, video_id: str) -> list[float]:
        return [s.at for s in self.log if s.is_poll and s.video_id == video_id]


def virtual_client(loop: VirtualTimeLoop, server: Server, tmp_path: Path, *, max_concurrency: int,
                   policy: PollPolicy | None = None) -> sora_nb.Client:
    """A real :class:`sora_nb.Client` whose runner and contract client run on the loop's virtual clock.

    ``connect()`` has no clock to inject (users never need one), so the runner it made, unused so far,
    is swapped for one built the same way but on virtual time. Call on the loop.
    """
    client = sora_nb.connect("simulator", run_root=tmp_path / "runs", transport=server,
                             max_concurrency=max_concurrency)
    profile = client.profile
    assert profile.base_url is not None
    base_url = profile.base_url

    def make_api() -> ContractClient:
        return ContractClient(base_url=base_url, api_key="sk-test", transport=server, clock=loop.time,
                              sleep=asyncio.sleep)

    client._runner = Runner(runtime=client._runtime, profile=profile, api_factory=make_api,
                           max_concurrency=max_concurrency, poll_policy=policy or PollPolicy(), clock=loop.time)
    return client


class InFlight:
    """Counts jobs holding a slot (create sent, not yet finished), from the runner's own transitions."""

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.peak = 0
        self.per_run: dict[str, set[str]] = {}
        self.peak_per_run: dict[str, int] = {}

    def watch(self, run: Run) -> None:
        run.observe(self._changed)

    def _changed(self, job: Job) -> None:
        key, mine = f"{job.run.id}/{job.id}", self.per_run.setdefault(job.run.id, set())
        if job._record.create_state != "pending" and job._record.status not in TERMINAL_STATUSES:
            self.active.add(key)
            mine.add(key)
        else:
            self.active.discard(key)
            mine.discard(key)
        self.peak = max(self.peak, len(self.active))
        self.peak_per_run[job.run.id] = max(self.peak_per_run.get(job.run.id, 0), len(mine))


def overlap_peak(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at once; at equal times a close comes before an open (a freed slot is
    taken in the same instant)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def server_side_intervals(server: Server, runs: list[Run]) -> list[tuple[float, float]]:
    """Per job: from the server accepting its create to the client noticing its end (audit + ledger)."""
    audit = server.audit()
    return [(audit[job.remote_id]["created_at_s"], job._record.completed_at) for run in runs for job in run
            if job.remote_id is not None and job._record.completed_at is not None]


# ---------------------------------------------------------------------------------------------- (a) concurrency
@pytest.mark.parametrize(("client_cap", "run_cap", "expected"), [(3, None, 3), (4, 2, 2)])
def test_never_more_jobs_in_flight_than_the_cap(
    vloop: VirtualTimeLoop, tmp_path: Path, client_cap: int, run_cap: int | None, expected: int
) -> None:
    server = Server(vloop, SimulatorConfig(seed=21, **REALISTIC))
    watcher = InFlight()

    async def main() -> Run:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=client_cap)
        try:
            run = client.sweep(prompt=[f"scene {i}" for i in range(10)]).start(max_concurrency=run_cap)
            watcher.watch(run)
            await run
            return run
        finally:
            await client.aclose()

    run = run_virtually(vloop, main())
    assert run.counts() == {"completed": 10}
    assert watcher.peak == expected  # reached, never exceeded
    assert overlap_peak(server_side_intervals(server, [run])) == expected
    assert len(server.audit()) == 10  # one create per job


def test_run_caps_hold_inside_the_client_cap(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    server = Server(vloop, SimulatorConfig(seed=22, **REALISTIC))
    watcher = InFlight()

    async def main() -> list[Run]:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=4)
        try:
            runs = [client.sweep(prompt=[f"{name} {i}" for i in range(6)]).start(max_concurrency=3)
                    for name in ("dawn", "dusk")]
            for run in runs:
                watcher.watch(run)
            await asyncio.gather(*(asyncio.ensure_future(_awaited(run)) for run in runs))
            return runs
        finally:
            await client.aclose()

    runs = run_virtually(vloop, main())
    assert [run.counts() for run in runs] == [{"completed": 6}] * 2
    assert watcher.peak == 4
    assert max(watcher.peak_per_run.values()) <= 3
    assert overlap_peak(server_side_intervals(server, runs)) == 4


async def _awaited(run: Run) -> Run:
    return await run


# ---------------------------------------------------------------------------------------------- (b) poll economy
def _economy(vloop: VirtualTimeLoop, tmp_path: Path, config: SimulatorConfig, *,
             tweak: Tweak | None = None, jobs: int = 12) -> tuple[Server, Run]:
    server = Server(vloop, config, tweak=tweak)

    async def main() -> Run:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=4)
        try:
            run = client.sweep(prompt=[f"shot {i}" for i in range(jobs // 2)], seconds=["4", "8"]).start()
            await run
            return run
        finally:
            await client.aclose()

    return server, run_virtually(vloop, main())


def _figures(server: Server, run: Run) -> tuple[list[int], list[int], list[float]]:
    """Per job: our status requests, a fixed 1 s poller's, and the detection delay as a share of the
    job's duration (server accepting the create -> server finishing it)."""
    audit = server.audit()
    ours, baseline, delay_share = [], [], []
    for job in run:
        entry = audit[job.remote_id]
        duration = entry["completed_at_s"] - entry["created_at_s"]
        ours.append(len(server.polls(job.remote_id)))
        baseline.append(math.ceil(duration))  # polls at +1 s, +2 s, ... until one sees the end
        delay_share.append((job._record.completed_at - entry["completed_at_s"]) / duration)
    return ours, baseline, delay_share


def test_polling_with_progress_is_economical_and_prompt(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    server, run = _economy(vloop, tmp_path, SimulatorConfig(seed=31, **REALISTIC))
    assert run.counts() == {"completed": 12}
    ours, baseline, delay_share = _figures(server, run)
    # A minute-long job: ~6 status requests instead of ~60, completion seen within ~1 % of its duration.
    assert sum(baseline) >= 5 * sum(ours), (ours, baseline)
    assert max(ours) <= 12
    assert all(0 <= share <= 0.10 for share in delay_share), delay_share
    assert statistics.median(delay_share) <= 0.03
    assert [job._record.polls for job in run] == ours  # the ledger counts what the server saw


def test_polling_without_progress_backs_off_but_still_notices(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    def hide_progress(request: httpx.Request, response: httpx.Response, now: float) -> httpx.Response | None:
        # A gateway that never reports progress (LiteLLM, SGLang): only the elapsed time is known.
        data = response.json()
        if not (isinstance(data, dict) and "progress" in data):
            return None
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return httpx.Response(response.status_code, headers=headers, json={**data, "progress": None})

    server, run = _economy(vloop, tmp_path, SimulatorConfig(seed=32, **REALISTIC), tweak=hide_progress)
    assert run.counts() == {"completed": 12}
    assert {job.progress for job in run} == {None}
    ours, baseline, delay_share = _figures(server, run)
    assert sum(baseline) >= 4 * sum(ours), (ours, baseline)
    # Waiting growth (15 %) x the time already waited: never later than that share of the job.
    assert all(0 <= share <= PollPolicy().growth + 0.01 for share in delay_share), delay_share


# ---------------------------------------------------------------------------------------------- (c) server hint
def test_openai_poll_after_ms_sets_the_interval(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    server, run = _economy(vloop, tmp_path, SimulatorConfig(seed=33, poll_after_ms=7_000, **REALISTIC), jobs=4)
    assert run.counts() == {"completed": 4}
    policy = PollPolicy()
    for job in run:
        polls = server.polls(job.remote_id)
        assert len(polls) >= 4
        submitted = job._record.submitted_at
        assert polls[0] - submitted == pytest.approx(policy.first)  # before any answer, no hint yet
        gaps = [b - a for a, b in itertools.pairwise(polls)]
        assert gaps == pytest.approx([7.0] * len(gaps))  # then exactly the server's advice, not a prediction


def test_a_server_hint_below_the_floor_is_raised_to_it(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    server, run = _economy(vloop, tmp_path, SimulatorConfig(seed=34, poll_after_ms=50, queue_s=0.0,
                                                            base_run_s=8.0, **REALISTIC), jobs=2)
    assert run.counts() == {"completed": 2}
    for job in run:
        polls = server.polls(job.remote_id)
        gaps = [b - a for a, b in itertools.pairwise(polls)]
        assert gaps and gaps == pytest.approx([PollPolicy().floor] * len(gaps))


# ---------------------------------------------------------------------------------------------- (d) rate gate
def _rate_limited(retry_after: str) -> httpx.Response:
    return httpx.Response(
        429, headers={"retry-after": retry_after},
        json={"error": {"message": "Rate limit reached for requests.", "type": "requests",
                        "code": "rate_limit_exceeded", "param": None}},
    )


@pytest.mark.parametrize("victim", ["POST", "GET"])
def test_a_429_pauses_every_job_until_retry_after(vloop: VirtualTimeLoop, tmp_path: Path, victim: str) -> None:
    """One 429 (on a create, or on a status poll mid-run) closes the shared gate: no job sends anything
    until ``retry-after`` has passed, then all carry on and nothing is created twice."""
    pause = 7.0
    hit: list[float] = []

    def once(request: httpx.Request, now: float) -> httpx.Response | None:
        mid_run = victim == "POST" or now - EPOCH >= 20.0
        if not hit and request.method == victim and request.url.path.startswith("/v1/videos") and mid_run:
            hit.append(now)
            return _rate_limited(f"{pause:g}")
        return None

    server = Server(vloop, SimulatorConfig(seed=41, poll_after_ms=1_000, **REALISTIC), fault=once)

    async def main() -> tuple[Run, int]:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=4)
        try:
            run = client.sweep(prompt=[f"wave {i}" for i in range(6)]).start()
            await run
            return run, client.api.gate.pauses
        finally:
            await client.aclose()

    run, pauses = run_virtually(vloop, main())
    assert run.counts() == {"completed": 6}
    assert len(server.audit()) == 6 and pauses == 1
    (t429,) = hit
    during = [s for s in server.log if t429 < s.at < t429 + pause]
    assert during == []  # polls every second otherwise: the whole client held still
    after = [s for s in server.log if s.at >= t429 + pause]
    assert after[0].at == pytest.approx(t429 + pause)
    held = {s.video_id or s.path for s in after if s.at == pytest.approx(t429 + pause)}
    assert len(held) >= 2  # several jobs were waiting at the gate and went on together


def test_low_remaining_requests_closes_the_gate_until_reset(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    closed_at: list[float] = []

    def running_low(request: httpx.Request, response: httpx.Response, now: float) -> None:
        if not closed_at and request.method == "GET" and now - EPOCH >= 15.0:
            closed_at.append(now)
            response.headers["x-ratelimit-remaining-requests"] = "0"
            response.headers["x-ratelimit-reset-requests"] = "5s"

    server = Server(vloop, SimulatorConfig(seed=42, poll_after_ms=1_000, **REALISTIC), tweak=running_low)

    async def main() -> Run:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=4)
        try:
            run = client.sweep(prompt=[f"tide {i}" for i in range(5)]).start()
            await run
            return run
        finally:
            await client.aclose()

    run = run_virtually(vloop, main())
    assert run.counts() == {"completed": 5}
    (low,) = closed_at
    assert [s for s in server.log if low < s.at < low + 5.0] == []
    assert min(s.at for s in server.log if s.at > low) == pytest.approx(low + 5.0)


def test_the_gate_keeps_a_sweep_under_the_servers_limit(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    """Against the simulator's own limit (6 requests a minute for 10 jobs), the gate reads the
    ``x-ratelimit-*`` headers and waits before the budget runs out, so the server rarely has to refuse."""
    server = Server(vloop, SimulatorConfig(seed=43, rate_limit_rpm=6, **REALISTIC))

    async def main() -> tuple[Run, int]:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=4)
        try:
            run = client.sweep(prompt=[f"drift {i}" for i in range(10)]).start()
            await run
            return run, client.api.gate.pauses
        finally:
            await client.aclose()

    run, pauses = run_virtually(vloop, main())
    assert run.counts() == {"completed": 10}
    assert len(server.audit()) == 10
    refused = [s for s in server.log if s.status == 429]
    assert pauses >= 10 and len(refused) <= 3, (pauses, len(refused))


# ---------------------------------------------------------------------------------------------- admission
# A job waiting for a place is an entry in the runner's queue, not a task: a 10,000-job sweep once made
# 10,000 tasks in the one loop callback that started it, 9,800 of them parked on semaphores.
@pytest.mark.slow
def test_a_wide_sweep_keeps_about_as_many_tasks_as_jobs_in_flight(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    server = Server(vloop, SimulatorConfig(seed=51, max_side=16, fps=1, time_scale=0.01, distinct_renders=1))
    sizes: list[int] = []

    async def main() -> tuple[Run, int]:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=8, policy=PollPolicy().scaled(0.01))
        client._runner.measure = False  # not what is counted here: a process pool per test run is slow
        try:
            idle = len(asyncio.all_tasks())
            run = client.sweep(prompt=[f"tide {i}" for i in range(150)], repeats=4).start()
            sizes.append(len(asyncio.all_tasks()) - idle)  # right after the cell that starts it
            run.observe(lambda _job: sizes.append(len(asyncio.all_tasks()) - idle))
            await run
            return run, idle
        finally:
            await client.aclose()

    run, _idle = run_virtually(vloop, main())
    assert run.counts() == {"completed": 600}
    assert len(server.audit()) == 600
    # 8 generating, 8 downloading, and a few between the two (measured: 12 at most; before, 600 at once).
    assert sizes[0] <= 8, sizes[0]
    assert max(sizes) <= 3 * 8, max(sizes)


def test_a_job_cancelled_while_waiting_for_a_place_ends_at_once_and_is_never_sent(
    vloop: VirtualTimeLoop, tmp_path: Path
) -> None:
    server = Server(vloop, SimulatorConfig(seed=52, **REALISTIC))

    async def main() -> tuple[Run, list[str], list[str | None]]:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=2)
        try:
            run = client.sweep(prompt=[f"lantern {i}" for i in range(8)]).start()
            await asyncio.sleep(1.0)  # the first two are sent; six wait for a place
            waiting = [job for job in run if job._record.create_state == "pending"]
            assert len(waiting) == 6
            victims = waiting[1::2]
            for job in victims:
                job.cancel()
            # Ended now, ledger first: the row says so before any other job moves.
            at_once = [job.status for job in victims]
            rows = {r.job_id: r for r in run._runner.ledger_of(run).jobs()}
            row_states = [rows[job.id].status for job in victims] + [rows[job.id].create_state for job in victims]
            assert all(job.done for job in victims)
            await run
            return run, at_once + row_states, [job.remote_id for job in victims]
        finally:
            await client.aclose()

    run, states, remote_ids = run_virtually(vloop, main())
    assert states == ["cancelled"] * 6 + ["pending"] * 3
    assert remote_ids == [None] * 3
    assert run.counts() == {"completed": 5, "cancelled": 3}
    # Counted at the server: 5 creates, none of a cancelled prompt.
    sent = [entry["prompt"] for entry in server.audit().values()]
    assert sorted(sent) == sorted(job.prompt for job in run if job.status == "completed")
    assert sum(1 for s in server.log if s.method == "POST") == 5


def test_creates_reach_the_server_in_submission_order(vloop: VirtualTimeLoop, tmp_path: Path) -> None:
    """Across two runs (one with a cap of its own) and a later submit, a freed place goes to the job
    submitted first among those whose run has room."""
    server = Server(vloop, SimulatorConfig(seed=53, **REALISTIC))

    async def main() -> list[Run]:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=3)
        try:
            first = client.sweep(prompt=[f"a{i:02d}" for i in range(12)]).start()
            second = client.sweep(prompt=[f"b{i:02d}" for i in range(12)]).start(max_concurrency=1)
            await asyncio.sleep(5.0)
            later = first.submit([JobSpec(f"c{i:02d}", "sora-2", "1280x720", "4") for i in range(4)])
            assert len(later) == 4
            await asyncio.gather(asyncio.ensure_future(_awaited(first)), asyncio.ensure_future(_awaited(second)))
            return [first, second]
        finally:
            await client.aclose()

    runs = run_virtually(vloop, main())
    assert [run.counts() for run in runs] == [{"completed": 16}, {"completed": 12}]
    sent = [entry["prompt"] for entry in sorted(server.audit().values(), key=lambda e: e["created_at_s"])]
    # Each run's jobs leave in the order they were submitted, and the later submit's after the first 12.
    assert [p for p in sent if p[0] in "ac"] == [f"a{i:02d}" for i in range(12)] + [f"c{i:02d}" for i in range(4)]
    assert [p for p in sent if p[0] == "b"] == [f"b{i:02d}" for i in range(12)]
    # The second run's one place is always taken: b jobs are sent one after another, never two at once.
    b_times = [(server.audit()[job.remote_id]["created_at_s"], job._record.completed_at) for job in runs[1]]
    assert overlap_peak(b_times) == 1


def test_run_cancel_and_close_leave_nothing_waiting_and_send_nothing_more(
    vloop: VirtualTimeLoop, tmp_path: Path
) -> None:
    """``run.cancel()`` ends the jobs waiting for a place with the ones in flight (no create for any of them);
    closing a client with jobs still waiting leaves them unsent and resumable, with no task or entry behind."""
    server = Server(vloop, SimulatorConfig(seed=54, **REALISTIC))

    async def main() -> tuple[Run, Run, list[str], int, int]:
        client = virtual_client(vloop, server, tmp_path, max_concurrency=2)
        try:
            cancelled = client.sweep(prompt=[f"ember {i}" for i in range(6)]).start()
            await asyncio.sleep(1.0)
            cancelled.cancel()
            await cancelled
            kept = client.sweep(prompt=[f"frost {i}" for i in range(6)]).start()
            await asyncio.sleep(1.0)  # two sent, four waiting
        finally:
            await client.aclose()
        with Ledger.open(kept.run_dir, readonly=True) as ledger:
            rows = [r.status for r in ledger.jobs()]
        runner = client._runner
        left = len(runner._jobs) + sum(len(held.waiting) for held in runner._held.values())
        return cancelled, kept, rows, left, runner._placed

    cancelled, kept, rows, left, placed = run_virtually(vloop, main())
    assert cancelled.counts() == {"cancelled": 6}
    assert rows.count("pending_submit") == 4 and len(rows) == 6
    assert (left, placed) == (0, 0)
    assert all(job.done for job in kept)  # their waiters were let go, as a cancelled task's are
    sent = sorted(entry["prompt"] for entry in server.audit().values())
    assert sent == ["ember 0", "ember 1", "frost 0", "frost 1"]
