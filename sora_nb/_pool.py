"""``sora_nb.pool(client_a, client_b, ...)``: several servers (services, or several keys of one) as one client.

A pool is a :class:`~sora_nb._client.Client` whose runner sends each job to one of its backends:

- **Which backends may take a job** is read from each backend's declared capabilities by one function,
  :func:`serves` (the model, its sizes and durations, remix/extend support). A job that names a backend
  (a sweep's ``backend`` axis) goes there; a remix or an extension goes to the backend that made its source.
- **Which of them** is the one with the most room (:func:`room`): free places under its concurrency, scaled
  by what its rate-limit headers say is left and by the 429s it answered lately; a backend whose gate is
  closed (a 429's ``retry-after``, a budget run out, a refused connection) has none until it opens.
- **Moving a job** to another backend happens only when its create provably did not happen there: a 429
  (refused outright) or a connection that could not be made (nothing sent). A create whose answer was lost
  stays on its backend, where it is looked for, and is ``ambiguous`` if it cannot be (DESIGN.md invariant 3:
  moving it would pay twice).

The backend's name is written to the job's ledger row before its create leaves, so ``sora_nb.resume`` polls
(or looks for) every job on the backend that has it. Keys stay in the backends' clients: the ledger holds
names, profiles and base URLs only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from ._capabilities import Capabilities, ModelSpec
from ._client import Client
from ._errors import ConfigurationError, RateLimitError, TransportError, ValidationError
from ._grid import InvalidCombo, SweepPlan, check_axis_names, expand
from ._profiles import Profile
from ._redact import logger
from ._run import Run
from ._runner import Runner, _JobDrive
from ._runtime import get_runtime
from ._sweep import Sweep
from ._types import JobSpec
from ._validation import check_create

if TYPE_CHECKING:
    from ._contract import ContractClient
    from ._jobs import Job
    from ._ledger import JobRecord
    from ._polling import PollPolicy
    from ._storyboards import StoryboardRun

__all__ = ["BackendLoad", "Pool", "choose", "pool", "pool_of", "room", "serves"]

REFUSAL_MEMORY = 60.0
"""Seconds a backend's 429 counts against its room."""
DOWN_FOR = 5.0
"""Seconds a backend that refused a connection is passed over before it is tried again."""
MAX_REFUSALS = 10
"""Times each backend that may take a job may refuse its create (a 429, or no connection) before the job fails:
only once every one of them has, so that one backend refusing for good loses no job."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# ---------------------------------------------------------------------- the pure core of routing
def serves(profile: Profile, spec: JobSpec) -> bool:
    """Whether a backend of this profile takes ``spec``: the one place routing reads capabilities.

    >>> from sora_nb._profiles import PROFILES
    >>> spec = JobSpec("a corgi", "grok-imagine-video", "1280x720", "6")
    >>> serves(PROFILES["xai"], spec), serves(PROFILES["simulator"], spec)
    (True, False)
    """
    caps = profile.capabilities
    if (spec.kind == "remix" and not caps.supports_remix) or (spec.kind == "extend" and not caps.supports_extend):
        return False
    # A backend that lists its models serves those (a gateway's free text is for its user, not for routing).
    if caps.models is not None and caps.spec(spec.model) is None:
        return False
    try:
        check_create(prompt=spec.prompt, model=spec.model, size=spec.size, seconds=spec.seconds, capabilities=caps)
    except ValidationError:
        return False
    return True


@dataclass(frozen=True)
class BackendLoad:
    """How busy one backend is now: what :func:`room` weighs."""

    name: str
    capacity: int
    """Jobs it may have in flight at once (its client's ``max_concurrency``)."""
    in_flight: int
    remaining: int | None = None
    """``x-ratelimit-remaining-requests`` of its last answer (``None``: it sends none)."""
    limit: int | None = None
    """``x-ratelimit-limit-requests`` of its last answer."""
    closed_for: float = 0.0
    """Seconds until it may be sent to again (a 429's advice, a budget run out, a refused connection)."""
    recent_refusals: int = 0
    """429s it answered in the last :data:`REFUSAL_MEMORY` seconds."""


def room(load: BackendLoad) -> float:
    """How much a backend can take now: free places, times the share of its rate budget left, halved for
    each recent 429; 0 while it is closed or full.

    >>> room(BackendLoad("a", capacity=4, in_flight=1))
    3.0
    >>> room(BackendLoad("b", capacity=4, in_flight=1, remaining=10, limit=40, recent_refusals=1))
    0.375
    >>> room(BackendLoad("c", capacity=4, in_flight=0, closed_for=2.0))
    0.0
    """
    free = load.capacity - load.in_flight
    if load.closed_for > 0 or free <= 0:
        return 0.0
    share = 1.0
    if load.remaining is not None and load.limit:
        share = max(0, min(load.remaining, load.limit)) / load.limit
    return free * share / 2.0**load.recent_refusals


def choose(loads: Sequence[BackendLoad]) -> str | None:
    """The backend with the most room (the first listed among equals), or ``None`` when none has any.

    >>> choose([BackendLoad("a", 2, 2), BackendLoad("b", 4, 1), BackendLoad("c", 4, 1)])
    'b'
    >>> choose([BackendLoad("a", 2, 2)]) is None
    True
    """
    best, best_room = None, 0.0
    for load in loads:
        r = room(load)
        if r > best_room:
            best, best_room = load.name, r
    return best


# ---------------------------------------------------------------------- the runner that routes
class PoolRunner(Runner):
    """A runner whose jobs each go to one backend's contract client; one ledger writer for the whole run."""

    def __init__(self, *, backends: Mapping[str, Client], profile: Profile, poll_policy: PollPolicy) -> None:
        first = next(iter(backends.values()))
        super().__init__(runtime=first._runtime, profile=profile, api_factory=self._no_api,
                         max_concurrency=profile.max_concurrency, poll_policy=poll_policy)
        self.backends = dict(backends)
        self._in_flight: Counter[str] = Counter()
        # Places given to jobs pinned to a backend (``_bind``) until their route takes them (``_route``).
        self._bound: Counter[str] = Counter()
        self._bound_jobs: dict[Job, str] = {}
        self._reopening: dict[str, asyncio.TimerHandle] = {}  # of backends whose gate is closed: when it opens
        self._refusals: dict[str, deque[float]] = {name: deque() for name in backends}
        self._pauses_seen: Counter[str] = Counter()
        self._down_until: dict[str, float] = {}
        self._refused_by: dict[str, Counter[str]] = {}  # of each job in flight: refusals by backend
        self._room_changed: asyncio.Event | None = None

    def _places(self) -> int:
        """As many jobs as the backends may have in flight together. Each backend's own places are counted where
        a job is routed (``_holding``); a job waiting there for a busy backend lends its place (``_route``), so
        that it never holds one a job for an idle backend could use."""
        return max(self.max_concurrency, sum(b._runner.max_concurrency for b in self.backends.values()))

    def _no_api(self) -> ContractClient:
        names = ", ".join(map(repr, self.backends))
        raise ConfigurationError(
            f"a pool has one contract client per backend ({names}), not one of its own. "
            "Fix: pool.backends[name].api (or .call) for a direct call to one of them."
        )

    # ------------------------------------------------------------------ where a job is sent
    def _backend(self, name: str) -> Client:
        try:
            return self.backends[name]
        except KeyError:
            raise ConfigurationError(
                f"backend {name!r} is not in this pool. Allowed: {', '.join(map(repr, self.backends))}. "
                f"Fix: add it to sora_nb.pool(..., {name}=sora_nb.connect(...))."
            ) from None

    def api_for(self, record: JobRecord) -> ContractClient:
        if record.backend is None:
            raise ConfigurationError(f"job {record.job_id} has no backend yet; nothing was sent for it.")
        return self._api_of(record.backend)

    def _api_of(self, name: str) -> ContractClient:
        api = self._backend(name)._runner.api
        api.refused_creates = "raise"  # a 429 moves the job to a backend with room, rather than waiting here
        return api

    def profile_for(self, record: JobRecord) -> Profile:
        return self.profile if record.backend is None else self._backend(record.backend).profile

    def load(self, name: str) -> BackendLoad:
        """How busy backend ``name`` is now (see :func:`room`)."""
        backend, now = self._backend(name), time.monotonic()
        api = self._api_of(name)
        # Every 429 (of a create or a poll) closes the backend's gate: its count of pauses says how many came.
        refusals = self._refusals[name]
        refusals.extend([now] * (api.gate.pauses - self._pauses_seen[name]))
        self._pauses_seen[name] = api.gate.pauses
        while refusals and refusals[0] < now - REFUSAL_MEMORY:
            refusals.popleft()
        info, remaining = api.rate_limits, api.rate_limits.remaining_requests
        if remaining is not None and remaining <= api.gate.low_water and api.gate.closed_for == 0:
            # A budget spent closed the gate until the reset its answer named (``RateGate.observe``): open again,
            # it is whole. Weighed as spent, an idle backend, which sends nothing that says so, had no room for ever.
            remaining = None
        return BackendLoad(
            name=name, capacity=backend._runner.max_concurrency, in_flight=self._in_flight[name] + self._bound[name],
            remaining=remaining, limit=info.limit_requests,
            closed_for=max(api.gate.closed_for, self._down_until.get(name, 0.0) - now),
            recent_refusals=len(refusals),
        )

    def _candidates(self, job: Job) -> list[str]:
        """The backends that may take ``job``: the one it is pinned to, or every one that serves it."""
        spec = job._record.spec
        pinned = spec.backend
        if spec.kind != "create" and spec.parent_id:
            # A remix or extension is made from a video only the backend that made it has.
            # By its job where the spec names it (job.remix does): two backends may have given out one id.
            made = [j for j in job.run.jobs if j.remote_id == spec.parent_id and j.backend is not None
                    and spec.axes.get("parent") in (None, j.id)]
            parent = made[0] if len({j.backend for j in made}) == 1 else None
            if parent is None or parent.backend is None:
                raise ConfigurationError(
                    f"job {job.id} is a {spec.kind} of {spec.parent_id}, which no job of this run made, so no backend "
                    "of the pool is known to have it. Fix: remix or extend a job of the run (job.remix(...))."
                )
            pinned = parent.backend
        if pinned is not None:
            self._backend(str(pinned))
            return [str(pinned)]
        names = [name for name, backend in self.backends.items() if serves(backend.profile, spec)]
        if not names:
            raise ConfigurationError(
                f"no backend of this pool serves model={spec.model!r} at size={spec.size!r}, seconds={spec.seconds!r}. "
                f"Allowed: the backends {', '.join(map(repr, self.backends))} and what each profile serves. "
                "Fix: choose a model and parameters one of them takes, or add a backend that serves them."
            )
        return names

    # ------------------------------------------------------------------ jobs pinned to one backend wait in its queue
    def _lane(self, job: Job) -> str | None:
        """The backend ``job`` must go to, when only one may take it and it is not sent yet (a remix of a video
        one backend made, a sweep's ``backend`` axis): it then waits in that backend's queue, not as a task."""
        record = job._record
        if record.create_state != "pending" or record.remote_id is not None:
            return None  # stays on its backend without waiting for room there (``_holding``)
        try:
            candidates = self._candidates(job)
        except ConfigurationError:
            return None  # its task fails it, saying why
        return candidates[0] if len(candidates) == 1 else None

    def _lane_free(self, lane: str) -> bool:
        """Room there now (:func:`room`). A closed gate (a 429's ``retry-after``) keeps its jobs queued, not
        admitted to wait as tasks: they are looked at again when it opens."""
        load = self.load(lane)
        if load.closed_for > 0 and lane not in self._reopening:
            self._reopening[lane] = asyncio.get_running_loop().call_later(load.closed_for, self._reopened, lane)
        return room(load) > 0

    def _reopened(self, lane: str) -> None:
        del self._reopening[lane]
        self._admit()

    def _bind(self, job: Job, lane: str) -> None:
        self._bound[lane] += 1
        self._bound_jobs[job] = lane

    def _unbind(self, job: Job) -> None:
        lane = self._bound_jobs.pop(job, None)
        if lane is not None:
            self._bound[lane] -= 1

    def _leave(self, job: Job, drive: _JobDrive) -> None:
        self._unbind(job)  # a task cancelled before it took its place gives it back
        super()._leave(job, drive)

    def _changed(self) -> asyncio.Event:
        if self._room_changed is None:
            self._room_changed = asyncio.Event()
        return self._room_changed

    def _wake(self) -> None:
        self._changed().set()
        self._room_changed = asyncio.Event()
        self._admit()  # a job queued for a backend that now has room may start

    async def _route(self, job: Job, *, away_from: str | None = None) -> str:
        """Pick the backend with the most room for ``job`` (waiting until one has some), and write it to the
        job's ledger row before anything is sent there (ledger first)."""
        candidates = self._candidates(job)
        pinned = candidates[0] if len(candidates) == 1 else None
        if away_from is not None and len(candidates) > 1:
            candidates = [name for name in candidates if name != away_from]
        while True:
            # A job pinned to a backend keeps a place there bound while it waits (a 429 closed the gate), so
            # that jobs queued for it are not let in meanwhile (``_lane_free``); given up and taken again by
            # the choice here, in one step: no other job comes between.
            self._unbind(job)
            loads = [self.load(name) for name in candidates]
            name = choose(loads)
            if name is not None:
                break
            if pinned is not None:
                self._bind(job, pinned)
            changed = asyncio.ensure_future(self._changed().wait())
            waits = [load.closed_for for load in loads if load.closed_for > 0]
            timer = asyncio.ensure_future(self.sleep(min(waits))) if waits else None
            try:
                with self._lending(job):
                    await asyncio.wait({changed, *([timer] if timer else [])}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (changed, timer):
                    if task is not None:
                        task.cancel()
        if name != job._record.backend:
            # The estimate at submit was the pool's guess; the backend's own price is known now.
            spec, caps = job._record.spec, self._backend(name).profile.capabilities
            self._transition(job, backend=name, estimated_cost_usd=caps.cost_usd(spec.model, spec.size, spec.seconds),
                             notify=False)
        return name

    @asynccontextmanager
    async def _holding(self, job: Job) -> AsyncIterator[None]:
        record = job._record
        unsent = record.create_state == "pending" and record.remote_id is None
        if record.backend is None or unsent:
            await self._route(job)
        # A job whose create may have left (or was answered) stays where it may exist: never sent elsewhere.
        self._in_flight[self._held_by(job)] += 1
        try:
            yield
        finally:
            self._in_flight[self._held_by(job)] -= 1
            self._refused_by.pop(job.id, None)
            self._wake()

    @staticmethod
    def _held_by(job: Job) -> str:
        assert job._record.backend is not None
        return job._record.backend

    async def _move(self, job: Job, why: str) -> None:
        """Send a job whose create certainly did not happen to the backend with the most room now (itself
        again when it is the only one that serves it, once its gate opens)."""
        old = self._held_by(job)
        self._in_flight[old] -= 1
        try:
            new = await self._route(job, away_from=old)
        finally:
            self._in_flight[self._held_by(job)] += 1
            self._wake()
        if new != old:
            logger.info("job %s: %s on %s, which made nothing; sending it to %s", job.id, why, old, new)

    def _count_refusal(self, job: Job, exc: Exception) -> None:
        """Count a refusal of ``job``'s create by its backend; raise ``exc`` once every candidate refused it
        :data:`MAX_REFUSALS` times (the pool then has nowhere left to send it)."""
        refused = self._refused_by.setdefault(job.id, Counter())
        refused[self._held_by(job)] += 1
        if all(refused[name] >= MAX_REFUSALS for name in self._candidates(job)):
            raise exc

    async def _refused(self, job: Job, exc: RateLimitError, refusals: int) -> None:
        self._count_refusal(job, exc)
        await self._move(job, "429")

    async def _unreachable(self, job: Job, exc: TransportError) -> None:
        self._down_until[self._held_by(job)] = time.monotonic() + DOWN_FOR
        self._count_refusal(job, exc)
        await self._move(job, "could not connect")

    # ------------------------------------------------------------------ resume
    def attach(self, run: Run) -> None:
        """Re-attach a pooled run: each job goes back to the backend its row names, and a run that names a
        backend this pool lacks is refused before anything starts."""
        ledger = self.open_ledger(run)
        missing = sorted({r.backend for r in ledger.jobs() if r.backend is not None} - set(self.backends))
        if missing:
            raise ConfigurationError(
                f"run {run.run_dir} has jobs on backends {', '.join(map(repr, missing))}, which this pool lacks "
                f"(it has {', '.join(map(repr, self.backends))}). Fix: resume with a pool that names them, e.g. "
                f"sora_nb.pool({missing[0]}=sora_nb.connect(...), ...); keys are never stored in a run."
            )
        super().attach(run)

    async def aclose(self) -> None:
        for handle in self._reopening.values():
            handle.cancel()
        self._reopening.clear()
        await super().aclose()
        for backend in self.backends.values():
            await backend.aclose()


# ---------------------------------------------------------------------- the client users hold
class Pool(Client):
    """Several backends as one client: ``generate``, ``sweep`` and the widgets work on it as on any client.

    Make it with :func:`pool`. ``backends`` maps each name to its client; closing the pool closes them.
    """

    def __init__(self, backends: Mapping[str, Client], *, run_root: str | Path | None = None) -> None:
        # Not Client.__init__: a pool has no server (and no key) of its own; its backends' clients have them.
        first = next(iter(backends.values()))
        self.backends: dict[str, Client] = dict(backends)
        self.profile = _pool_profile(self.backends)
        self.base_url = ""
        self.run_root = Path(run_root) if run_root is not None else first.run_root
        self.simulator = None
        self.simulator_state_dir = None
        self._runtime = first._runtime
        self._key_shown = "per backend"
        self._runner = self._pool_runner = PoolRunner(
            backends=self.backends, profile=self.profile, poll_policy=first._runner.poll_policy)
        self._session = None

    def _job_spec(self, prompt: str, **params: Any) -> JobSpec:
        """The request as the first backend that takes it checks it (each backend validates by its own rules)."""
        params = {**params, "model": params.get("model") or self.profile.capabilities.default_model}
        errors: list[ValidationError] = []
        for backend in self.backends.values():
            try:
                spec = backend._job_spec(prompt, **params)
            except ValidationError as exc:
                errors.append(exc)
                continue
            if serves(backend.profile, spec):
                return spec
        if errors:
            first = errors[0]
            raise ValidationError(
                f"no backend of this pool takes this request: {first}", field=first.field, allowed=first.allowed
            )
        allowed = self.profile.capabilities.model_names()
        raise ValidationError(
            f"no backend of this pool takes this request: model={params['model']!r} is served by none of "
            f"{', '.join(map(repr, self.backends))}. Allowed: {', '.join(map(repr, allowed))}. "
            "Fix: choose one of those models, or add a backend that serves it.",
            field="model", allowed=allowed,
        )

    def _server_meta(self) -> dict[str, Any]:
        return {
            "profile": "pool",
            "base_url": None,
            "backends": [{"name": name, **b._server_meta()} for name, b in self.backends.items()],
        }

    @overload
    def sweep(self, *, storyboard: object, **axes: Any) -> Sweep[StoryboardRun]: ...
    @overload
    def sweep(self, **axes: Any) -> Sweep[Run]: ...
    def sweep(self, **axes: Any) -> Sweep[Run]:
        """Plan a sweep whose jobs go to the backend with the most room; ``backend=[names]`` (or ``backend=None``
        for every backend) makes the backend an axis: the same prompts on each, each with its own default model
        unless ``model`` is given.

        >>> import sora_nb
        >>> runs = getfixture("tmp_path")
        >>> a = sora_nb.connect("simulator", time_scale=0.002, run_root=runs, simulator_state=False)
        >>> b = sora_nb.connect("xai", simulator=True, time_scale=0.002, run_root=runs, simulator_state=False)
        >>> both = sora_nb.pool(a, b)
        >>> sweep = both.sweep(prompt=["a corgi surfing", "a cat skiing"], backend=None)
        >>> [(job.axes["backend"], job.model) for job in sweep.jobs][:3]
        [('simulator', 'sora-2'), ('xai', 'grok-imagine-video'), ('simulator', 'sora-2')]
        >>> both.close()
        """
        if "backend" in axes:
            return _BackendSweep(self, **axes)
        sweep: Sweep[Run] = Sweep(self, **axes)
        # Planned against what the backends offer together; a job no backend serves is refused here, not sent.
        served = [job for job in sweep.plan.jobs if any(serves(b.profile, job) for b in self.backends.values())]
        refused = [InvalidCombo(
            axes={k: v for k, v in job.axes.items() if k != "repeat"}, field="model",
            message=f"no backend of this pool serves model={job.model!r} at size={job.size!r}, seconds={job.seconds!r}",
            allowed=self.profile.capabilities.model_names(),
        ) for job in sweep.plan.jobs if job not in served and job.repeat == 0]
        sweep.plan = dataclasses.replace(sweep.plan, jobs=tuple(served), invalid=(*sweep.plan.invalid, *refused))
        return sweep

    def __repr__(self) -> str:
        names = ", ".join(f"{name}={b.profile.name}" for name, b in self.backends.items())
        return f"<sora_nb.Pool {names}>"


class _BackendSweep(Sweep[Run]):
    """A pool's sweep with ``backend`` as an axis: each backend's jobs expanded by that backend's own rules."""

    def __init__(self, client: Pool, *, backend: str | Sequence[str] | None, **axes: Any) -> None:
        check_axis_names(axes)
        names = list(client.backends) if backend is None else [backend] if isinstance(backend, str) else list(backend)
        for name in names:
            client._pool_runner._backend(name)
        self.client = client
        self.options = {**axes, "backend": names}
        per_backend: list[list[JobSpec]] = []
        invalid = []
        order: tuple[str, ...] = ()
        for name in names:
            profile = client.backends[name].profile
            plan = expand(capabilities=profile.capabilities, **axes)
            per_backend.append([dataclasses.replace(s, backend=name, axes={**s.axes, "backend": name})
                                for s in plan.jobs])
            invalid += [dataclasses.replace(c, axes={**c.axes, "backend": name}) for c in plan.invalid]
            order = plan.axes
        # Each request on every backend in turn, so that every backend starts at once.
        jobs = [job for row in itertools.zip_longest(*per_backend) for job in row if job is not None]
        # The backend right after the prompt (and its template variables): what a comparison's columns are.
        cut = order.index("model") if "model" in order else len(order)
        self.plan = SweepPlan(jobs=tuple(jobs), invalid=tuple(invalid), axes=(*order[:cut], "backend", *order[cut:]))


def _pool_profile(backends: Mapping[str, Client]) -> Profile:
    """What the pool as a whole offers widgets and sweeps: the union of its backends' models and facts."""
    caps = [b.profile.capabilities for b in backends.values()]
    models: dict[str, ModelSpec] | None = None
    if all(c.models is not None for c in caps):
        models = {}
        for c in reversed(caps):  # the first backend's facts win where two declare one model
            models |= dict(c.models or {})
        models = {name: models[name] for name in dict.fromkeys(m for c in caps for m in c.model_names())}
    aliases: dict[str, str] = {}
    for c in reversed(caps):
        aliases |= dict(c.aliases)
    flags = ("supports_delete", "supports_list", "supports_remix", "supports_extend", "supports_thumbnail",
             "supports_characters", "reports_progress", "reports_cost")
    capabilities = Capabilities(
        models=models, default_model=caps[0].default_model, other_models=any(c.other_models for c in caps),
        aliases=aliases, default_size=caps[0].default_size, default_seconds=caps[0].default_seconds,
        # A reference goes to whichever backend takes the job: fitted to the size if any backend needs that.
        reference_exact_size=any(c.reference_exact_size for c in caps),
        **{flag: any(getattr(c, flag) for c in caps) for flag in flags},
    )
    return Profile("pool", capabilities=capabilities, base_url=None, key_env=(),
                   max_concurrency=sum(b._runner.max_concurrency for b in backends.values()))


def pool(*clients: Client, run_root: str | Path | None = None, **named: Client) -> Pool:
    """One client over several: each job goes to a backend that serves its model, the one with the most room.

    Positional clients are named after their profile (``"xai"``, then ``"xai-2"`` for a second key of the same
    service); keyword ones by their keyword. The names are what runs record (never a key) and what a sweep's
    ``backend`` axis and the DataFrame's ``backend`` column hold. Each backend takes as many jobs at once as its
    client's ``max_concurrency``; ``run_root`` defaults to the first client's. Closing the pool closes its clients.

    >>> import sora_nb
    >>> runs = getfixture("tmp_path")
    >>> team = sora_nb.pool(sora_nb.connect("simulator", time_scale=0.002, run_root=runs, simulator_state=False),
    ...                     spare=sora_nb.connect("simulator", time_scale=0.002, run_root=runs, simulator_state=False))
    >>> team
    <sora_nb.Pool simulator=simulator, spare=simulator>
    >>> job = team.generate("a corgi surfing").wait(timeout=60)
    >>> job.status, job.backend in ("simulator", "spare")
    ('completed', True)
    >>> team.close()
    """
    backends: dict[str, Client] = {}
    for client in clients:
        name, n = getattr(getattr(client, "profile", None), "name", "client"), 2
        base = name
        while name in backends or name in named:
            name, n = f"{base}-{n}", n + 1
        backends[name] = client
    return pool_of(backends | named, run_root=run_root)


def pool_of(backends: Mapping[str, Client], *, run_root: str | Path | None = None) -> Pool:
    """:func:`pool` with the backends named in a mapping (``resume`` makes a run's pool again this way)."""
    if not backends:
        raise ValueError("pool() needs at least one client. Fix: sora_nb.pool(sora_nb.connect(...), ...).")
    seen: set[int] = set()
    for name, client in backends.items():
        if not isinstance(client, Client) or isinstance(client, Pool):
            raise TypeError(
                f"pool() takes clients made by sora_nb.connect(); {name}={type(client).__name__}. "
                "Fix: pass each backend's client (a pool is not a backend of another pool)."
            )
        if not _NAME.match(name):
            raise ValueError(
                f"backend name {name!r}: allowed letters, digits, '_', '.', '-' (up to 64). Fix: rename it.")
        if id(client) in seen:
            raise ValueError(f"backend {name!r} is a client given twice. Fix: one client per key (connect again).")
        seen.add(id(client))
        if client._runtime is not get_runtime():
            raise ValueError(f"backend {name!r} was connected on another event loop. Fix: connect it here.")
    return Pool(backends, run_root=run_root)
