"""A gate shared by every request to one server, that closes when the server says to slow down.

When a 429 arrives (with its ``retry-after``), or ``x-ratelimit-remaining-requests`` runs out, the
gate closes until the advised time, so every job waits instead of each one hammering the server.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

from ._types import RateLimitInfo

__all__ = ["RateGate", "parse_reset"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: str | None) -> float | None:
    """Parse ``x-ratelimit-reset-requests`` (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"2.5"``) into seconds.

    >>> parse_reset("6m0s"), parse_reset("20ms"), parse_reset("3")
    (360.0, 0.02, 3.0)
    """
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


class RateGate:
    """Closes for a while when the server signals a rate limit; every request passes through ``wait``.

    ``clock`` and ``sleep`` are injectable so tests run on fake time.
    """

    def __init__(
        self,
        *,
        low_water: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.low_water = low_water
        self._clock = clock
        self._sleep = sleep
        self._open_at = 0.0
        self.last: RateLimitInfo = RateLimitInfo()
        self.pauses = 0

    @property
    def closed_for(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        return max(0.0, self._open_at - self._clock())

    def pause(self, seconds: float) -> None:
        """Close the gate for ``seconds`` from now (never shortening an earlier pause)."""
        if seconds > 0:
            self._open_at = max(self._open_at, self._clock() + seconds)
            self.pauses += 1

    def observe(self, info: RateLimitInfo) -> None:
        """Learn from a response's rate-limit headers; close when the remaining budget runs low."""
        if info.remaining_requests is None and info.limit_requests is None:
            return
        self.last = info
        if info.remaining_requests is not None and info.remaining_requests <= self.low_water:
            reset = parse_reset(info.reset_requests)
            self.pause(reset if reset is not None else 1.0)

    async def wait(self) -> None:
        """Return when the gate is open."""
        while (delay := self.closed_for) > 0:
            await self._sleep(delay)
