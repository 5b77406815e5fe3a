"""The simulator's one configuration object: timing model, rendering size and faults.

Every knob has a default that behaves like a healthy OpenAI Videos endpoint; faults are all off by
default. Durations of the *simulated service* (queue, generation, the rate-limit window) are multiplied
by ``time_scale``; durations that model the *network or the client's choice* (``latency``,
``asset_ttl``, ``poll_after_ms``) are used as given, in real seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DEFECTS", "DIALECTS", "SimulatorConfig"]

DEFECTS = ("black", "frozen", "flicker", "duration")
"""Defective videos the simulator can deliver (``defect_rate``, or ``[defect:<kind>]`` in a prompt): a
span of black frames, a frozen tail, brightness flicker, and a video a quarter shorter than asked."""

DIALECTS = ("openai", "openrouter", "xai", "gemini", "together", "fal", "replicate", "runway")
"""The APIs the simulator speaks: OpenAI's Videos API, and one dialect per hosted service (``dialects/``)."""


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0.0 and 1.0, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """How the embedded simulator behaves.

    Attributes:
        seed: Seeds every random draw (ids, durations, failures, faults). ``None``: fresh entropy.
        time_scale: Multiplies every simulated duration (queue, generation, the rate-limit minute);
            ``0.01`` makes a ~60 s job take ~0.6 s.
        max_side: Long side in pixels of the rendered MP4; the requested aspect ratio is kept and both
            dimensions are even (H.264 with yuv420p needs that).
        fps: Frames per second of the rendered MP4.
        caption_model: Caption each video with its model in the top-left corner (so that a comparison
            grid's videos can be told apart). ``False`` for blind comparisons (``run.arena``), where the
            caption in the picture would give the vote away.
        distinct_renders: ``None`` (default): every job gets a video of its own, showing its prompt. A
            number N: jobs share N renders per model, size and length, job k getting the k-th modulo N
            whatever its prompt (the pixels show "simulated video k of N"), for load tests, where
            rendering thousands of distinct videos would cost more than what is measured. The videos are
            still real MP4s of the asked size and length; ids, statuses, progress and the audit are unchanged.
        strict_models: ``True`` behaves like OpenAI: unknown models and unknown body parameters are a
            400. ``False`` behaves like a gateway: any model name, extra parameters ignored.
        api_keys: ``None`` accepts any key; a request without one is a 401, as on the real service. A set:
            only those keys, else 401.
        cache_dir: Where rendered assets are cached. ``None``: one temporary directory per process,
            removed at exit (renders take well under a second, so a cache that outlives the process
            is not worth leaving files in the user's home; pass a path to keep them).
        state_dir: Where the simulator keeps its jobs and characters (a small SQLite file, plus uploaded reference
            images), so that a restarted process, or another one sharing the directory, serves the same
            jobs, like a real server. ``None``: in memory only, forgotten when the process ends.
            ``sora_nb.connect("simulator")`` sets it to ``<run_root>/.simulator``.
        base_run_s: Median generation time of a 4 s ``sora-2`` 720p clip, before ``time_scale``
            (a published sample took ~67 s end to end, queue included).
        seconds_exponent: Generation time grows as ``(seconds / 4) ** seconds_exponent``.
        pro_factor: Generation-time multiplier for ``*-pro`` models.
        large_size_factor: Generation-time multiplier for 1024x1792 and 1792x1024.
        duration_sigma: Sigma of the lognormal spread around the median generation time.
        queue_s: Mean of the (exponential) queue delay before generation starts, before ``time_scale``.
        fail_marker: A prompt containing this text fails with ``moderation_blocked`` (``None``: off).
        failure_rate: Probability that an accepted job fails partway with ``internal_error``.
        rate_limit_rpm: Requests per minute allowed per API key (every ``/v1`` request counts);
            ``None``: unlimited. Beyond it: 429 with ``retry-after``.
        create_rate_limit_rpm: Job creations per minute per key (create, remix, edit, extend), as
            Azure limited them; ``None``: unlimited.
        error_rate: Probability that a ``/v1`` request answers 500, 502 or 503 before it is handled.
        drop_rate: Probability that the connection is dropped before the request is handled.
        drop_after_create_rate: Probability that a job-creating request IS accepted (and audited) but
            the connection drops before the answer: the ambiguous create a client must reconcile.
        latency: Real seconds added before every ``/v1`` response.
        asset_ttl: Seconds from creation until assets expire (``expires_at``); ``None``: 24 h. Not
            scaled, so a notebook left open with a small ``time_scale`` still finds its videos.
        poll_after_ms: When set, ``GET /videos/{id}`` answers with ``openai-poll-after-ms``.
        defect_rate: Probability that a job's video is delivered with a defect (one of ``defects``,
            drawn from the seed). A prompt containing ``[defect:<kind>]`` always gets that defect.
        defects: The kinds ``defect_rate`` draws from (see :data:`DEFECTS`).
        dialect: Which API to speak: ``"openai"`` (the Videos contract), or a hosted service's dialect
            (``"openrouter"``, ``"xai"``, ``"gemini"``, ``"together"``, ``"fal"``, ``"replicate"``, ``"runway"``:
            see ``sora_nb.simulator.dialects``).

    >>> SimulatorConfig(seed=7, time_scale=0.01).time_scale
    0.01
    """

    seed: int | None = None
    time_scale: float = 1.0
    max_side: int = 320
    fps: int = 12
    caption_model: bool = True
    distinct_renders: int | None = None
    strict_models: bool = True
    api_keys: frozenset[str] | None = None
    cache_dir: str | None = None
    state_dir: str | None = None
    # Duration model.
    base_run_s: float = 60.0
    seconds_exponent: float = 0.8
    pro_factor: float = 2.5
    large_size_factor: float = 1.5
    duration_sigma: float = 0.25
    queue_s: float = 5.0
    # Job failures.
    fail_marker: str | None = "[fail]"
    failure_rate: float = 0.0
    # Transport and service faults.
    rate_limit_rpm: int | None = None
    create_rate_limit_rpm: int | None = None
    error_rate: float = 0.0
    drop_rate: float = 0.0
    drop_after_create_rate: float = 0.0
    latency: float = 0.0
    asset_ttl: float | None = None
    poll_after_ms: int | None = None
    defect_rate: float = 0.0
    defects: tuple[str, ...] = DEFECTS
    dialect: str = "openai"

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {self.dialect!r}")
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale!r}")
        if not 16 <= self.max_side <= 1920:
            raise ValueError(f"max_side must be between 16 and 1920 pixels, got {self.max_side!r}")
        if not 1 <= self.fps <= 60:
            raise ValueError(f"fps must be between 1 and 60, got {self.fps!r}")
        if not self.defects or not set(self.defects) <= set(DEFECTS):
            raise ValueError(f"defects must be some of {', '.join(DEFECTS)}, got {self.defects!r}")
        if not isinstance(self.defects, tuple):
            object.__setattr__(self, "defects", tuple(self.defects))
        for name in ("failure_rate", "error_rate", "drop_rate", "drop_after_create_rate", "defect_rate"):
            _check_rate(name, getattr(self, name))
        for name in ("base_run_s", "queue_s", "latency", "duration_sigma"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("rate_limit_rpm", "create_rate_limit_rpm", "poll_after_ms", "distinct_renders"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.asset_ttl is not None and self.asset_ttl <= 0:
            raise ValueError(f"asset_ttl must be > 0 seconds or None, got {self.asset_ttl!r}")
        if self.state_dir is not None and not isinstance(self.state_dir, str):
            object.__setattr__(self, "state_dir", os.fspath(self.state_dir))  # a Path is fine too
        if self.api_keys is not None and not isinstance(self.api_keys, frozenset):
            # A list or set is accepted for convenience; frozen so the config stays hashable.
            object.__setattr__(self, "api_keys", frozenset(self.api_keys))
