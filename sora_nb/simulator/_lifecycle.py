"""Pure timing of a simulated job: when it starts, how it progresses, when and how it ends.

Nothing here runs in the background. A job's whole future is drawn once, at creation
(:func:`plan_job`), and its state at any moment is a pure function of the clock
(:func:`state_at`). That keeps the simulator deterministic for a given seed and clock, and lets tests
jump through a job's life without sleeping.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from ._config import SimulatorConfig

__all__ = ["Plan", "Status", "job_multiplier", "plan_job", "state_at"]

Status = Literal["queued", "in_progress", "completed", "failed"]

_LARGE_SIZES = frozenset({"1024x1792", "1792x1024"})
_MODERATION_MESSAGE = "Your request was blocked by our moderation system. Change the prompt and create a new video."
_INTERNAL_MESSAGE = "Video generation failed because of an internal error. Create the video again."


@dataclass(frozen=True)
class Plan:
    """A job's drawn future, in real seconds on the simulator's clock.

    Attributes:
        created_at: Clock time of creation.
        queued_s: Time spent ``queued`` (already multiplied by ``time_scale``).
        run_s: Generation time once started (already multiplied by ``time_scale``).
        error_code: ``None`` when the job completes; else the ``error.code`` it fails with.
        error_message: Human message of the failure.
        fail_fraction: How far into ``run_s`` the failure happens (0..1).
    """

    created_at: float
    queued_s: float
    run_s: float
    error_code: str | None = None
    error_message: str | None = None
    fail_fraction: float = 1.0

    @property
    def started_at(self) -> float:
        """Clock time the job leaves the queue."""
        return self.created_at + self.queued_s

    @property
    def finished_at(self) -> float:
        """Clock time the job reaches ``completed`` or ``failed``."""
        if self.error_code is None:
            return self.started_at + self.run_s
        return self.started_at + self.run_s * self.fail_fraction

    @property
    def outcome(self) -> Literal["completed", "failed"]:
        """The terminal status the job will reach."""
        return "completed" if self.error_code is None else "failed"


def job_multiplier(model: str, size: str, seconds: int, config: SimulatorConfig) -> float:
    """How much longer than a 4 s ``sora-2`` 720p clip this job takes to generate (median).

    >>> cfg = SimulatorConfig()
    >>> job_multiplier("sora-2", "720x1280", 4, cfg)
    1.0
    >>> job_multiplier("sora-2-pro", "1792x1024", 4, cfg)
    3.75
    """
    # sora-2-pro (and its snapshots) and unknown (gateway) models whose name says "pro" take longer.
    is_pro = "pro" in model.lower()
    factor = float((max(seconds, 1) / 4.0) ** config.seconds_exponent)
    if is_pro:
        factor *= config.pro_factor
    if size in _LARGE_SIZES:
        factor *= config.large_size_factor
    return factor


def plan_job(
    rng: random.Random,
    model: str,
    size: str,
    seconds: int,
    config: SimulatorConfig,
    *,
    prompt: str = "",
    created_at: float = 0.0,
) -> Plan:
    """Draw a job's future: queue delay, generation time and whether (and when) it fails.

    Always draws the same number of random values, so one job's fate does not shift the ids and
    durations of the jobs after it when the prompt or the failure settings change.

    Args:
        rng: The simulator's seeded job RNG.
        model: Model name (catalog or gateway).
        size: ``WxH``.
        seconds: Length of the clip to *generate* (for an extension: the new segment only).
        config: Supplies the duration model, ``time_scale``, ``fail_marker`` and ``failure_rate``.
        prompt: Checked for ``config.fail_marker``.
        created_at: Clock time of creation.

    >>> p = plan_job(random.Random(1), "sora-2", "720x1280", 4, SimulatorConfig(time_scale=0.01))
    >>> 0.2 < p.run_s < 1.5 and p.outcome == "completed"
    True
    """
    median = config.base_run_s * job_multiplier(model, size, seconds, config)
    run_draw = rng.lognormvariate(0.0, config.duration_sigma) if config.duration_sigma > 0 else 1.0
    queue_draw = rng.expovariate(1.0) if config.queue_s > 0 else 0.0
    failure_draw = rng.random()
    fraction_draw = rng.random()

    run_s = median * run_draw * config.time_scale
    queued_s = config.queue_s * queue_draw * config.time_scale
    if config.fail_marker and config.fail_marker in prompt:
        # Moderation looks at the prompt early, before most of the generation time is spent.
        return Plan(created_at, queued_s, run_s, "moderation_blocked", _MODERATION_MESSAGE, 0.1)
    if failure_draw < config.failure_rate:
        fraction = 0.2 + 0.7 * fraction_draw
        return Plan(created_at, queued_s, run_s, "internal_error", _INTERNAL_MESSAGE, fraction)
    return Plan(created_at, queued_s, run_s)


def state_at(plan: Plan, now: float) -> tuple[Status, int]:
    """The job's ``(status, progress)`` at clock time ``now``.

    Progress is an integer that never decreases: 0 while queued, rising while in progress (never 100
    before completion), 100 once completed, frozen where it stopped when failed.

    >>> plan = Plan(created_at=0.0, queued_s=1.0, run_s=10.0)
    >>> [state_at(plan, t) for t in (0.5, 1.0, 6.0, 11.0)]
    [('queued', 0), ('in_progress', 0), ('in_progress', 50), ('completed', 100)]
    """
    if now < plan.started_at:
        return "queued", 0
    elapsed = now - plan.started_at
    if plan.error_code is not None and now >= plan.finished_at:
        return "failed", _progress(plan.run_s * plan.fail_fraction, plan.run_s)
    if elapsed < plan.run_s:
        return "in_progress", _progress(elapsed, plan.run_s)
    return "completed", 100


def _progress(elapsed: float, run_s: float) -> int:
    if run_s <= 0:
        return 99
    return max(0, min(99, math.floor(100.0 * elapsed / run_s)))
