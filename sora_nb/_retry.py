"""Retry policy: which failures are retried and how long to wait. Pure functions, no I/O."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUS", "RetryPolicy", "poll_after_seconds", "retry_after_seconds"]

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses worth sending again: the server did not do the work, or asks us to come back later."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, honouring the server's ``retry-after``.

    >>> policy = RetryPolicy(base=1.0, cap=8.0, jitter=0.0)
    >>> [policy.delay(n) for n in range(5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    >>> policy.delay(0, retry_after=3.5)
    3.5
    """

    max_retries: int = 5
    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.5
    """Fraction of the delay drawn at random (0: none, 1: full jitter), so that many clients
    that failed together do not come back together."""
    max_retry_after: float = 120.0
    """The most that a server's ``retry-after`` may make us wait in one go."""

    def delay(self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after)
        backoff = float(min(self.cap, self.base * 2.0**attempt))
        if self.jitter <= 0:
            return backoff
        r = (rng or random).random()
        return backoff * (1 - self.jitter) + backoff * self.jitter * r


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The server's retry advice in seconds: ``retry-after-ms``, else ``retry-after`` (seconds or date).

    >>> retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"})
    1.5
    >>> retry_after_seconds({"retry-after": "2"})
    2.0
    """
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    raw = headers.get("retry-after")
    seconds = _number(raw)
    if seconds is not None or raw is None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if now is None:
        import time

        now = time.time()
    return max(0.0, when.timestamp() - now)


def poll_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's advice for the next poll (``openai-poll-after-ms``), in seconds.

    >>> poll_after_seconds({"openai-poll-after-ms": "2500"})
    2.5
    """
    ms = _number(headers.get("openai-poll-after-ms"))
    return None if ms is None else ms / 1000
