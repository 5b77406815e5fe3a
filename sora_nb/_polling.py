"""When to ask a server about a job again. Pure: a value object and a function of observations.

The aim is to notice completion soon after it happens while asking rarely. The server's own advice
(``openai-poll-after-ms``) wins. Otherwise, once ``progress`` moves, its rate predicts the finish and
the next poll lands just before it; without progress the interval grows with the time already waited
(a job that has run for a minute will not finish in the next 100 ms), between a floor and a ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PollPolicy", "PollState"]


@dataclass
class PollState:
    """What has been seen of one job: the times are the caller's clock, in seconds."""

    submitted_at: float
    observations: list[tuple[float, int]] = field(default_factory=list)
    """``(time, progress)`` pairs with a known progress, oldest first (only the last few are kept)."""

    def observe(self, now: float, progress: int | None) -> None:
        if progress is None:
            return
        if self.observations and progress < self.observations[-1][1]:
            self.observations.clear()  # progress went backwards (a restarted job): forget the old rate
        self.observations.append((now, progress))
        del self.observations[:-4]


@dataclass(frozen=True)
class PollPolicy:
    """How often to poll.

    Attributes:
        floor: never poll sooner than this after the last poll.
        ceiling: never wait longer than this between polls.
        first: the first poll after the create.
        growth: without a usable progress rate, wait ``growth`` × the time waited so far.
        lead: aim this fraction of the predicted remaining time, so a slightly early prediction
            still catches the finish soon.

    >>> from sora_nb._polling import PollState
    >>> policy = PollPolicy(floor=1, ceiling=30, first=2)
    >>> state = PollState(submitted_at=0.0)
    >>> policy.next_delay(state, now=0.0)
    2
    >>> state.observe(10.0, 10); state.observe(20.0, 30)
    >>> policy.next_delay(state, now=20.0)  # 2 %/s: 70 % left is 35 s, capped by the ceiling
    30
    """

    floor: float = 1.0
    ceiling: float = 30.0
    first: float = 2.0
    growth: float = 0.15
    lead: float = 0.95

    def scaled(self, factor: float) -> PollPolicy:
        """The same policy for jobs ``factor`` times as long (e.g. a sped-up simulator)."""
        return PollPolicy(self.floor * factor, self.ceiling * factor, self.first * factor, self.growth, self.lead)

    def next_delay(self, state: PollState, *, now: float, server_hint: float | None = None) -> float:
        """Seconds to wait before the next status request."""
        if server_hint is not None and server_hint > 0:
            return self._clamp(server_hint)
        waited = max(0.0, now - state.submitted_at)
        if waited <= 0 and not state.observations:
            return self._clamp(self.first)
        remaining = self._predicted_remaining(state, now)
        if remaining is not None and remaining > 0:
            # Aim just before the predicted finish, but never sleep past a large share of the time
            # already waited plus the prediction: predictions from early progress are rough.
            return self._clamp(remaining * self.lead)
        return self._clamp(max(self.first, waited * self.growth))

    def _predicted_remaining(self, state: PollState, now: float) -> float | None:
        obs = [o for o in state.observations if 0 < o[1] < 100]
        if len(obs) >= 2:
            (t0, p0), (t1, p1) = obs[0], obs[-1]
            if p1 > p0 and t1 > t0:
                rate = (p1 - p0) / (t1 - t0)
                return (100 - p1) / rate - (now - t1)
        return None

    def _clamp(self, value: float) -> float:
        return min(self.ceiling, max(self.floor, value))
