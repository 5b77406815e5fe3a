"""The runner takes turns with the user's cells: a busy loop paces its requests (sora_nb/_pace.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
from support import FAST

import sora_nb
from sora_nb._pace import FLOOR, TARGET_S, Pacer
from sora_nb.simulator import SimulatorConfig, SimulatorTransport


def test_a_late_loop_shrinks_the_window_and_a_prompt_one_widens_it_again() -> None:
    pacer = Pacer(ceiling=100)
    pacer.observe(3 * TARGET_S, now=1.0)
    assert pacer.window == 70.0 and pacer.cuts == 1
    pacer.observe(3 * TARGET_S, now=1.0 + TARGET_S)  # the same busy spell: not cut twice
    assert pacer.window == 70.0
    for k in range(40):
        pacer.observe(3 * TARGET_S, now=2.0 + k)
    assert pacer.window == FLOOR  # a loop busy with other work still lets a run move
    for _ in range(200):
        pacer.observe(0.0, now=50.0)
    assert 15 < pacer.window < 25  # one step more per window of prompt turns
    for _ in range(10_000):
        pacer.observe(0.0, now=60.0)
    assert pacer.window == 100


def test_steps_wait_their_turn_first_come_first_served_and_a_cancelled_one_gives_it_on() -> None:
    async def main() -> tuple[list[int], int]:
        pacer = Pacer(ceiling=2)
        order: list[int] = []
        release = asyncio.Event()

        async def step(k: int) -> None:
            async with pacer.step():
                order.append(k)
                await release.wait()

        tasks = [asyncio.create_task(step(k)) for k in range(6)]
        await asyncio.sleep(0.01)
        assert order == [0, 1] and pacer.in_flight == 2
        tasks[2].cancel()  # waiting: leaves the queue
        tasks[0].cancel()  # in flight: hands its place to the next in line
        await asyncio.sleep(0.01)
        assert order == [0, 1, 3]
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return order, pacer.in_flight

    order, in_flight = asyncio.run(main())
    assert order == [0, 1, 3, 4, 5] and in_flight == 0


class CountingSimulator(SimulatorTransport):
    """The in-process simulator, counting requests in flight at once, at their peak once ``settle``
    requests have come (how long the pacer takes to find its window depends on how busy the machine is:
    counted in requests, not seconds)."""

    def __init__(self, settle: int) -> None:
        super().__init__(SimulatorConfig(seed=11, time_scale=FAST))
        self.settle = settle
        self.in_flight = self.peak_later = self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.requests += 1
        if self.requests > self.settle:
            self.peak_later = max(self.peak_later, self.in_flight)
        try:
            await asyncio.sleep(0)  # a real server answers a pass or more later
            return await super().handle_async_request(request)
        finally:
            self.in_flight -= 1


def test_a_loop_kept_busy_by_other_work_paces_the_runs_requests(tmp_path: Path) -> None:
    """Attack: other work on the loop (a cell's, a widget's) blocks it 15 ms a pass, as a busy kernel does.
    A run of 40 quick jobs, 20 at a time, then keeps few requests in flight at the server, so that each
    pass stays short and a cell gets its turn: before the pacer, every job's request was in flight at
    once (the peak counted at the server was 52 after the first 100 requests; each pass of the loop ran all
    of them). Every job still completes, each paid once."""
    transport = CountingSimulator(settle=100)
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=transport,
                         max_concurrency=20, measure=False) as client:
        loop = client._runner.runtime.loop
        stop = threading.Event()

        def busy() -> None:  # other work: 15 ms of every pass of the loop
            if not stop.is_set():
                time.sleep(0.015)
                loop.call_soon(busy)

        loop.call_soon_threadsafe(busy)
        try:
            run = client.sweep(prompt=[f"a scene that keeps the loop busy {i}" for i in range(40)]).start()
            run.wait(timeout=300)
        finally:
            stop.set()
        pacer = client._runner.pacer
    assert run.counts() == {"completed": 40}
    assert len(transport.audit()) == 40
    assert pacer.cuts >= 1
    # A few steps at a time, a download's step being two requests (its video and its poster).
    assert transport.peak_later <= 8, transport.peak_later


def test_a_run_on_an_idle_loop_is_not_paced(tmp_path: Path) -> None:
    """Against a server whose answers take a while (100 ms here), the loop is idle between them: every job
    allowed has its request in flight at once (and downloads their video and poster beside them)."""

    class SlowServer(CountingSimulator):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.1)
            return await super().handle_async_request(request)

    transport = SlowServer(settle=0)
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=transport,
                         max_concurrency=8, measure=False) as client:
        run = client.sweep(prompt=[f"a slow server's scene {i}" for i in range(8)]).start()
        run.wait(timeout=120)
        pacer = client._runner.pacer
    assert run.counts() == {"completed": 8}
    assert transport.peak_later >= 8
    assert pacer.ceiling == 16
