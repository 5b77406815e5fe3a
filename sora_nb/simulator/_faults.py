"""Injected faults: rate limits, random server errors and dropped connections.

The decisions are made here, from the simulator's seeded fault RNG, so a given seed and request
sequence always fail the same way. How a dropped connection reaches a client depends on the transport:
:class:`DropConnection` is raised *outside* Starlette's error middleware (which would otherwise turn it
into a 500), then the in-process transport converts it into the httpx exception a socket client would
get, and the uvicorn protocol in ``_serve.py`` closes the TCP connection without a response.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DropConnection",
    "DropKind",
    "RateDecision",
    "RateLimiter",
    "format_reset",
    "roll",
    "roll_server_error",
]

DropKind = Literal["close", "reset"]
"""``close``: the server closes the connection cleanly, without a response (httpx
``RemoteProtocolError``). ``reset``: the connection is reset mid-wait (httpx ``ReadError``)."""


class DropConnection(Exception):
    """Raised from the ASGI app to make the transport drop the connection without any response."""

    def __init__(self, kind: DropKind = "close") -> None:
        super().__init__(f"simulated dropped connection ({kind})")
        self.kind: DropKind = kind


def roll(rng: random.Random, probability: float) -> bool:
    """One Bernoulli draw. Draws even when ``probability`` is 0, so enabling one fault does not
    shift every later draw of the other faults for the same seed.

    >>> roll(random.Random(0), 0.0), roll(random.Random(0), 1.0)
    (False, True)
    """
    return rng.random() < probability


def roll_server_error(rng: random.Random, probability: float) -> int | None:
    """``None`` (no fault) or the 5xx status to answer with."""
    hit = roll(rng, probability)
    status = rng.choice((500, 502, 503))
    return status if hit else None


def format_reset(seconds: float) -> str:
    """Format a reset delay the way OpenAI's ``x-ratelimit-reset-requests`` does (``"1s"``, ``"6m0s"``,
    ``"120ms"``).

    >>> format_reset(0.12), format_reset(1.0), format_reset(360.0), format_reset(0)
    ('120ms', '1s', '6m0s', '0s')
    """
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


@dataclass(frozen=True)
class RateDecision:
    """The result of counting one request against a key's window."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    """Seconds until a slot frees up (the oldest counted request leaves the window)."""


@dataclass
class RateLimiter:
    """A sliding-window request counter per key.

    Attributes:
        limit: Requests allowed per window, or ``None`` for unlimited (headers still report a nominal
            ``nominal_limit`` so clients that read them see plausible values).
        window_s: Window length in real seconds (60 × ``time_scale``).
    """

    limit: int | None
    window_s: float
    nominal_limit: int = 10_000
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def peek(self, key: str, now: float) -> RateDecision:
        """The key's current standing, without counting a request (for requests outside ``/v1``)."""
        hits = self._hits.get(key, deque())
        current = [hit for hit in hits if hit > now - self.window_s]
        limit = self.limit if self.limit is not None else self.nominal_limit
        reset = current[0] + self.window_s - now if current else 0.0
        allowed = self.limit is None or len(current) < limit
        return RateDecision(allowed, limit, max(0, limit - len(current)), max(0.0, reset))

    def check(self, key: str, now: float) -> RateDecision:
        """Count a request for ``key`` at ``now`` unless it is over the limit (rejections don't count).

        >>> rl = RateLimiter(limit=1, window_s=60.0)
        >>> rl.check("k", 0.0).allowed, rl.check("k", 1.0).allowed, rl.check("k", 60.0).allowed
        (True, False, True)
        """
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        limit = self.limit if self.limit is not None else self.nominal_limit
        if self.limit is not None and len(hits) >= limit:
            return RateDecision(False, limit, 0, max(0.0, hits[0] + self.window_s - now))
        hits.append(now)
        reset = hits[0] + self.window_s - now
        return RateDecision(True, limit, max(0, limit - len(hits)), max(0.0, reset))
