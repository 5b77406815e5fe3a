"""The simulator's in-memory state: jobs, characters, the audit of accepted creates, RNG streams.

One :class:`SimulatorState` per app. A job is stored with its drawn :class:`~._lifecycle.Plan`; its
status is never stored but computed from the clock on each read. A threading lock guards every
mutation and read, because one in-process app may be driven from more than one event loop (a
notebook's loop and a runner's background thread); it is never held across an ``await``.

With ``SimulatorConfig(state_dir=...)`` the jobs and characters also live on disk (:mod:`._persist`):
loaded at start-up, each create and delete committed before it is answered, and an id this process
does not know looked up on disk before it is called unknown, so a restarted (or second) process
serves the same jobs and characters, like a real server would. Memory stays the cache every read
uses.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._config import DEFECTS, SimulatorConfig
from ._faults import RateLimiter
from ._lifecycle import Plan, Status, plan_job, state_at
from ._persist import JobStore, StoredJob, job_from_json
from ._render import RenderSpec, default_cache_dir

__all__ = ["DEFAULT_TTL_S", "Character", "Job", "JobKind", "SimulatorState", "hash_api_key"]

JobKind = Literal["create", "remix", "edit", "extend"]

DEFAULT_TTL_S = 24 * 3600.0
"""Assets expire 24 h after creation unless ``asset_ttl`` says otherwise."""


def hash_api_key(key: str | None) -> str | None:
    """A short, non-reversible tag of an API key, for the audit (the key itself is never kept).

    >>> hash_api_key("sk-test") == hash_api_key("sk-test"), hash_api_key(None)
    (True, None)
    """
    if not key:
        return None
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """An accepted video job: what was asked, and its drawn future.

    Attributes:
        seconds: Total length (for an extension, the stitched total).
        segments: ``(prompt, seconds)`` per rendered segment.
        reference: Path of the stored reference image, if the create had one.
        source_video_id: The video a remix, edit or extension started from.
        extension_count: How many extensions led to this video (0 for others).
        extra: What a dialect's answers need beyond these fields (a price, a resolution); persisted
            with the job.
    """

    id: str
    seq: int
    kind: JobKind
    model: str
    size: str
    seconds: int
    prompt: str
    plan: Plan
    segments: tuple[tuple[str, int], ...]
    reference: str | None = None
    source_video_id: str | None = None
    extension_count: int = 0
    api_key_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def state(self, now: float) -> tuple[Status, int]:
        """``(status, progress)`` at clock time ``now``."""
        return state_at(self.plan, now)

    def expires_at(self, ttl: float) -> float:
        """Clock time after which the assets are gone."""
        return self.plan.created_at + ttl

    def render_spec(self, config: SimulatorConfig) -> RenderSpec:
        """What to render for this job under ``config``."""
        segments, variation = self.segments, f"{self.model}/{self.id}"
        if config.distinct_renders is not None:
            # One of a few shared renders (SimulatorConfig.distinct_renders): keyed by the job's number, not
            # its prompt or id, so that a 10,000-job load test renders a handful of videos, not 10,000.
            k = self.seq % config.distinct_renders + 1
            segments = tuple((f"simulated video {k} of {config.distinct_renders}", s) for _, s in self.segments)
            variation = f"{self.model}/{k}"
        return RenderSpec(
            segments, self.size, config.max_side, config.fps, self.reference,
            label=self.model if config.caption_model else "", variation=variation,
            defect=str(self.extra.get("defect", "")),
            cameos=tuple((str(c["name"]), c.get("poster")) for c in self.extra.get("characters", ())),
        )

    def resource(self, now: float, ttl: float) -> dict[str, Any]:
        """The job as a ``VideoResource`` JSON object (every key present, nulls included)."""
        status, progress = self.state(now)
        done = status in ("completed", "failed")
        error = None
        if status == "failed":
            error = {"code": self.plan.error_code or "internal_error", "message": self.plan.error_message or ""}
        return {
            "id": self.id,
            "object": "video",
            "model": self.model,
            "status": status,
            "progress": progress,
            "created_at": int(self.plan.created_at),
            "completed_at": int(self.plan.finished_at) if done else None,
            "expires_at": int(self.expires_at(ttl)) if status == "completed" else None,
            "prompt": self.prompt,
            "size": self.size,
            "seconds": str(self.seconds),
            "quality": "standard",
            "remixed_from_video_id": self.source_video_id if self.kind == "remix" else None,
            "error": error,
        }

    def audit_entry(self) -> dict[str, Any]:
        """The audit record of this accepted create (planned timing included, key only hashed)."""
        plan = self.plan
        return {
            "id": self.id,
            "kind": self.kind,
            "prompt": self.prompt,
            "model": self.model,
            "size": self.size,
            "seconds": str(self.seconds),
            "created_at": int(plan.created_at),
            "created_at_s": plan.created_at,
            "queued_s": plan.queued_s,
            "run_s": plan.run_s,
            "started_at_s": plan.started_at,
            "completed_at_s": plan.finished_at,
            "outcome": plan.outcome,
            "source_video_id": self.source_video_id,
            "api_key_hash": self.api_key_hash,
            "characters": [c["id"] for c in self.extra.get("characters", ())],
        }


@dataclass(frozen=True)
class Character:
    """A character made from an uploaded clip."""

    id: str
    name: str
    created_at: int
    poster: str | None = None
    """Path of a still of its clip (what renders of the videos that use it show)."""

    def resource(self) -> dict[str, Any]:
        """The ``VideoCharacterResource`` JSON object."""
        return {"id": self.id, "name": self.name, "created_at": self.created_at}


def _rng(seed: int | None, stream: str) -> random.Random:
    # Separate streams, so turning a fault on does not change the ids and durations of jobs.
    return random.Random() if seed is None else random.Random(f"sora_nb:{seed}:{stream}")


SERVER_THREADS = min(32, (os.cpu_count() or 1) + 4)
"""A simulator served as its own process renders on as many threads as the loop's default executor has."""

IN_PROCESS_THREADS = 2
"""In-process (the default backend, in the user's kernel) it renders on two: each thread that allocates gets a
glibc arena of its own that keeps what it freed, and six held ~50 MB more at the peak of a 10,000-job
displayed sweep (benchmarks/README.md, "The simulator's own threads"). A server's own process gives its
renders all the threads they can use: with two, the last downloads of a sweep at a service's pace waited
6 s for their renders instead of 0.4 s (``bench_scheduling.py``)."""


class SimulatorState:
    """All mutable state of one simulator app.

    >>> state = SimulatorState(SimulatorConfig(seed=1, time_scale=0.01), clock=lambda: 1000.0)
    >>> job = state.create_job("create", model="sora-2", size="720x1280", seconds=4, prompt="a fox")
    >>> state.get(job.id) is job, len(state.audit())
    (True, 1)
    """

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.cache_dir = config.cache_dir or default_cache_dir()
        self.worker_threads = SERVER_THREADS
        """Threads for its blocking work (renders, decoding, file reads): see ``_routes.in_thread``."""
        self.ttl = config.asset_ttl if config.asset_ttl is not None else DEFAULT_TTL_S
        self.lock = threading.RLock()
        self.job_rng = _rng(config.seed, "jobs")
        self.fault_rng = _rng(config.seed, "faults")
        self.request_rng = _rng(config.seed, "requests")
        self.defect_rng = _rng(config.seed, "defects")
        window = 60.0 * config.time_scale
        self.rate_limiter = RateLimiter(config.rate_limit_rpm, window)
        self.create_rate_limiter = RateLimiter(config.create_rate_limit_rpm, window)
        self._jobs: dict[str, Job] = {}
        self._seq_of: dict[str, int] = {}  # every id ever created, so a deleted cursor still works
        self._audit: list[Job] = []  # every accepted create (deleted ones too): its entry is made when read
        self._characters: dict[str, Character] = {}
        self._max_seq = -1
        self.store = JobStore(config.state_dir, config.dialect) if config.state_dir is not None else None
        if self.store is not None:
            self._remember(self.store.load())
            self._remember_characters(self.store.load_characters())

    @property
    def reference_dir(self) -> str:
        """Where uploaded reference images are kept: in ``state_dir`` when there is one, so that the
        jobs reloaded by a later process still find theirs; else in the render cache."""
        return str(self.store.directory) if self.store is not None else self.cache_dir

    def _remember(self, stored: list[StoredJob]) -> None:
        """Put jobs read from the store into the memory cache (deleted ones only as known ids)."""
        for data, deleted in stored:
            job = Job(**job_from_json(data))
            self._seq_of[job.id] = job.seq
            self._max_seq = max(self._max_seq, job.seq)
            if deleted:
                self._jobs.pop(job.id, None)
            else:
                self._jobs[job.id] = job

    def _remember_characters(self, stored: list[dict[str, Any]]) -> None:
        """Put characters read from the store into the memory cache."""
        self._characters.update((fields["id"], Character(**fields)) for fields in stored)

    def _refresh(self) -> None:
        """Catch up with what other processes sharing the store created or deleted."""
        if self.store is None:
            return
        self._remember(self.store.load(after_seq=self._max_seq))
        for job_id in self.store.deleted_ids():
            self._jobs.pop(job_id, None)

    def close(self) -> None:
        """Close the store's file (the state stays usable; it reopens the file when needed)."""
        if self.store is not None:
            self.store.close()

    def new_request_id(self) -> str:
        """A fresh ``x-request-id``."""
        with self.lock:
            return f"req_{self.request_rng.getrandbits(128):032x}"

    def _new_id(self, prefix: str) -> str:
        while True:
            candidate = f"{prefix}_{self.job_rng.getrandbits(128):032x}"
            if candidate not in self._seq_of and candidate not in self._characters:
                return candidate

    def _defect(self, prompt: str) -> str:
        """The defect this job's video gets: a ``[defect:<kind>]`` in the prompt, else a seeded draw."""
        for kind in DEFECTS:
            if f"[defect:{kind}]" in prompt:
                return kind
        # Both draws always happen, so the defects of later jobs do not depend on this one's.
        hit = self.defect_rng.random() < self.config.defect_rate
        kind = self.defect_rng.choice(self.config.defects)
        return kind if hit else ""

    def create_job(
        self,
        kind: JobKind,
        *,
        model: str,
        size: str,
        seconds: int,
        prompt: str,
        generate_seconds: int | None = None,
        segments: tuple[tuple[str, int], ...] | None = None,
        reference: str | None = None,
        source_video_id: str | None = None,
        extension_count: int = 0,
        api_key_hash: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Job:
        """Accept a job: draw its id and future, store it and audit it.

        ``generate_seconds`` is what the service generates (an extension's new segment); it defaults
        to ``seconds``.
        """
        with self.lock:
            while True:
                now = self.clock()
                job_id = self._new_id("video")
                plan = plan_job(
                    self.job_rng,
                    model,
                    size,
                    generate_seconds if generate_seconds is not None else seconds,
                    self.config,
                    prompt=prompt,
                    created_at=now,
                )

                defect = self._defect(prompt)
                job_extra = {**(extra or {}), **({"defect": defect} if defect else {})}

                def build(
                    seq: int, job_id: str = job_id, plan: Plan = plan, job_extra: dict[str, Any] = job_extra
                ) -> Job:
                    return Job(
                        id=job_id,
                        seq=seq,
                        kind=kind,
                        model=model,
                        size=size,
                        seconds=seconds,
                        prompt=prompt,
                        plan=plan,
                        segments=segments if segments is not None else ((prompt, seconds),),
                        reference=reference,
                        source_video_id=source_video_id,
                        extension_count=extension_count,
                        api_key_hash=api_key_hash,
                        extra=dict(job_extra),
                    )

                if self.store is None:
                    job = build(len(self._seq_of))
                    self._audit.append(job)  # the job itself (kept anyway), not a copy of it as a dict
                    break
                # On disk before it is answered; the store settles the creation order (seq) across
                # processes, and refuses an id another process already drew (same seed): draw again.
                stored = self.store.insert(job_id, build, ttl=self.ttl)
                if stored is not None:
                    job = stored
                    break
                self._refresh()
            self._jobs[job.id] = job
            self._seq_of[job.id] = job.seq
            self._max_seq = max(self._max_seq, job.seq)
            return job

    def get(self, job_id: str) -> Job | None:
        """The job, or ``None`` when unknown or deleted.

        An id missing from memory is looked up in the store (another process may have created it).
        """
        with self.lock:
            job = self._jobs.get(job_id)
            if job is not None or self.store is None:
                return job
            stored = self.store.get(job_id)
            if stored is None:
                return None
            self._remember([stored])
            return self._jobs.get(job_id)

    def delete(self, job_id: str) -> bool:
        """Forget a job (in any state: this is how a client cancels). ``False`` when unknown."""
        with self.lock:
            if self.get(job_id) is None:
                return False
            if self.store is not None and not self.store.mark_deleted(job_id):
                self._jobs.pop(job_id, None)  # another process deleted it first
                return False
            return self._jobs.pop(job_id, None) is not None

    def page(self, *, limit: int, order: Literal["asc", "desc"], after: str | None) -> tuple[list[Job], bool]:
        """One page of jobs by creation order, and whether more follow.

        Raises:
            KeyError: ``after`` names an id this simulator never created.
        """
        with self.lock:
            self._refresh()
            jobs = sorted(self._jobs.values(), key=lambda job: job.seq, reverse=order == "desc")
            if after is not None:
                cursor = self._seq_of[after]
                if order == "desc":
                    jobs = [job for job in jobs if job.seq < cursor]
                else:
                    jobs = [job for job in jobs if job.seq > cursor]
            return jobs[:limit], len(jobs) > limit

    def audit(self) -> list[dict[str, Any]]:
        """Every accepted create, oldest first (copies: callers may not change the record).

        With a store: every create accepted by any process sharing it, read from disk.
        """
        with self.lock:
            if self.store is not None:
                return self.store.audit()
            return [job.audit_entry() for job in self._audit]

    def add_character(self, name: str, poster: str | None = None) -> Character:
        """Store a new character (with a store: committed before it is returned)."""
        with self.lock:
            while True:
                character = Character(self._new_id("char"), name, int(self.clock()), poster)
                # As for jobs: on disk before it is answered, and an id another process already drew
                # (same seed) is refused: learn the characters made since, and draw again.
                if self.store is None or self.store.insert_character(character):
                    break
                self._remember_characters(self.store.load_characters())
            self._characters[character.id] = character
            return character

    def character(self, character_id: str) -> Character | None:
        """The character, or ``None`` when unknown.

        An id missing from memory is looked up in the store (another process may have created it).
        """
        with self.lock:
            character = self._characters.get(character_id)
            if character is not None or self.store is None:
                return character
            stored = self.store.get_character(character_id)
            if stored is not None:
                self._remember_characters([stored])
            return self._characters.get(character_id)
