"""Taking turns with the user's cells: a run's requests keep each pass of the event loop short.

In a notebook the runner works on the kernel's own loop (DESIGN.md invariant 1), the loop that also
answers the user's cells. A loop pass runs every callback that was ready when it began, so a cell waits
behind everything the run has ready: with 200 jobs' requests in flight against a quick server (the
in-process simulator sped up, a gateway on the same machine) a pass took 50-100 ms and a trivial cell,
which needs several passes, 0.4 s at p95 (``benchmarks/bench_scale.py``).

:class:`Pacer` is an admission window on the run's *steps* (a request and the work its answer starts),
sized like a congestion window (additive increase, multiplicative decrease) by how busy the loop is: as
steps start, a callback is queued now and then, and how long it waits for its turn on the loop's own
clock is the measure. Longer than :data:`TARGET_S` and the window shrinks; shorter and it grows back, up
to the jobs allowed in flight. Against a real service, whose answers take hundreds of milliseconds, the
loop is idle nearly all the time and the window stays at its ceiling: a step starts at once, in the order
it would without a pacer. Only a loop that is busy all the time is paced: the run then works in short
passes that let a cell in, and gives the cells their share of the loop (a 10,000-job sweep at the
simulator's fastest scale took twice as long, and its cells' p95 went from 415 to 34 ms).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["TARGET_S", "Pacer"]

TARGET_S = 0.005
"""How long a callback may wait for its turn on the loop while a run works (a cell needs a few turns)."""

FLOOR = 2
"""Steps always allowed at once: a run never stops for a loop that some other work keeps busy."""

DECREASE = 0.7
"""What a late loop leaves of the window."""


class Pacer:
    """An admission window on a runner's steps, sized by the loop's lateness. Loop thread only.

    >>> pacer = Pacer(ceiling=8)
    >>> async def one_step() -> int:
    ...     async with pacer.step():
    ...         return pacer.in_flight
    >>> asyncio.run(one_step())
    1
    >>> pacer.in_flight, pacer.window
    (0, 8.0)
    """

    def __init__(self, ceiling: int, *, target_s: float | None = None) -> None:
        self.ceiling = max(ceiling, FLOOR)
        self.target_s = TARGET_S if target_s is None else target_s  # read now: a benchmark may set the module's
        self.window = float(self.ceiling)
        self.in_flight = 0
        self.cuts = 0
        """How many times the window shrank (benchmarks and tests read it)."""
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._last_cut = float("-inf")
        self._probing = False

    def raise_ceiling(self, ceiling: int) -> None:
        """Allow more steps at once (the client's cap on jobs in flight was raised)."""
        if ceiling > self.ceiling:
            self.window += ceiling - self.ceiling
            self.ceiling = ceiling
            self._wake()

    def observe(self, late_s: float, now: float) -> None:
        """Size the window by how long a callback waited for its turn, measured at ``now``: cut it when
        late (at most once per few targets: one long pass is not a busy loop), widen it by one step per
        window of prompt turns."""
        if late_s > self.target_s:
            if now - self._last_cut >= 4 * self.target_s:
                self.window = max(float(FLOOR), self.window * DECREASE)
                self._last_cut = now
                self.cuts += 1
        elif self.window < self.ceiling:
            self.window = min(float(self.ceiling), self.window + 1.0 / self.window)
            self._wake()

    @asynccontextmanager
    async def step(self) -> AsyncIterator[None]:
        """Hold a place in the window while a step runs; waits (first come, first served) for one."""
        if self._waiters or self.in_flight >= int(self.window):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # the releaser counted this step in flight when it woke it
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # woken and cancelled at once: hand the place on
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        else:
            self.in_flight += 1
        self._probe()
        try:
            yield
        finally:
            self._release()

    def _probe(self, loop: asyncio.AbstractEventLoop | None = None, delay: float = 0.0) -> None:
        """Queue a callback that measures how long it waits for its turn (one at a time), ``delay`` seconds
        from now. A callback, not a yield: the steps' own order on the loop stays what it would be without
        a pacer."""
        if not self._probing:
            self._probing = True
            loop = loop or asyncio.get_running_loop()
            due = loop.time() + delay
            if delay:
                loop.call_at(due, self._probed, loop, due)
            else:
                loop.call_soon(self._probed, loop, due)

    def _probed(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        self._probing = False
        now = loop.time()
        self.observe(now - due, now)
        if self._waiters and self.window < self.ceiling:
            # Steps wait, and none may start for long (the places held by downloads over a slow link): the
            # loop is measured meanwhile, every target, or a window a busy spell cut would not grow back
            # on an idle loop until they end.
            self._probe(loop, self.target_s)

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.window):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)
