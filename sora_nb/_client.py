"""``sora_nb.connect()`` and the :class:`Client` it returns: the user's handle on one server.

The client owns the contract client (and so the key), the runner that drives jobs, and the session
run that ``generate`` writes into. It returns at once from every call that starts work.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from . import _catalog
from ._contract import ContractClient
from ._errors import ConfigurationError
from ._jobs import Job, Run
from ._ledger import LEDGER_FILE
from ._polling import PollPolicy
from ._profiles import (
    PROFILES,
    SIMULATOR_API_KEY,
    Profile,
    resolve_api_key,
    resolve_profile,
    simulator_base_url,
)
from ._redact import REDACTED, redact_url
from ._retry import RetryPolicy
from ._runner import Runner
from ._runtime import Runtime, get_runtime
from ._types import JobSpec
from ._validation import check_create, check_max_concurrency

if TYPE_CHECKING:
    from ._sweep import Sweep

__all__ = ["DEFAULT_RUN_ROOT", "SIMULATOR_STATE_DIR", "Client", "connect", "resume"]

DEFAULT_RUN_ROOT = Path("sora_runs")
DEFAULT_SIMULATOR_TIME_SCALE = 0.02
"""The in-process simulator's speed unless ``time_scale`` is given: 50 times real-world timing, so a demo or a
script's 4 s clip (about a minute on a real service) takes a second or two. ``time_scale=1`` is realistic."""
SIMULATOR_STATE_DIR = ".simulator"
"""Where, under ``run_root``, the in-process simulator keeps its jobs (``SimulatorConfig.state_dir``)."""


def connect(
    profile: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    create_timeout: float | None = None,
    max_concurrency: int | None = None,
    run_root: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    time_scale: float | None = None,
    simulator: Any = None,
    simulator_state: str | os.PathLike[str] | bool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    poll_policy: PollPolicy | None = None,
    retry: RetryPolicy | None = None,
) -> Client:
    """Connect to a video server; with no profile and no base URL, to the in-process simulator.

    Args:
        profile: ``"simulator"``, ``"openai-compatible"``, ``"litellm"``, ``"vllm-omni"``, ``"sglang"``, or a
            hosted service: ``"openrouter"``, ``"xai"``, ``"gemini"``, ``"together"`` (``sora_nb.PROFILES``).
        base_url: the API root (``.../v1``) for any OpenAI-compatible server.
        api_key: the key; else the profile's environment variable; else a hidden prompt when required.
            It lives only in the client's request headers.
        headers: extra headers for every request.
        timeout: seconds for each request (connect at most 10 s).
        create_timeout: seconds to wait for the answer to a create; default the longer of ``timeout`` and
            180 s, because gateways may answer a create only once the job is queued upstream, and a create
            cut short cannot simply be sent again (it may have made the job: the job is then looked for,
            or left ``ambiguous`` where the server cannot be searched).
        max_concurrency: jobs in flight at once (default: the profile's).
        run_root: where run directories go (default ``./sora_runs``).
        seed, time_scale: the simulator's seed and speed. Default ``0.02``, 50 times faster than a real
            service (a 4 s clip takes a second or two instead of about a minute); ``time_scale=1`` for
            realistic timing (e.g. to try timeouts and budgets as they will be).
        simulator: ``True`` runs the profile in process against the built-in simulator: the simulator's
            dialect of that service (``connect("openrouter", simulator=True)``: its paths, fields and status
            words, no key, no network) or, for OpenAI-shaped profiles, the OpenAI simulator. A full
            ``sora_nb.simulator.SimulatorConfig`` does the same with faults and all. Without it, a hosted
            profile needs its key and never falls back to the simulator silently.
        simulator_state: where the in-process simulator keeps its jobs, so that a kernel restart and
            ``sora_nb.resume`` find them again as on a real server. Default (``None`` or ``True``):
            ``<run_root>/.simulator``; a path: that directory; ``False``: in memory only, forgotten when
            the process ends. A ``SimulatorConfig`` passed as ``simulator`` keeps its own ``state_dir``.
        transport: an ``httpx.AsyncBaseTransport`` to use instead of the network.

    >>> import sora_nb
    >>> runs = getfixture("tmp_path")
    >>> with sora_nb.connect("simulator", seed=7, time_scale=0.01, run_root=runs) as client:
    ...     client
    <sora_nb.Client profile='simulator' base_url='http://simulator.local/v1' key=placeholder>

    Connecting sends nothing: the first job does.

    >>> with sora_nb.connect("openai-compatible", base_url="http://localhost:4000/v1", run_root=runs) as client:
    ...     client
    <sora_nb.Client profile='openai-compatible' base_url='http://localhost:4000/v1' key=none>
    >>> with sora_nb.connect("openrouter", simulator=True, time_scale=0.002, run_root=runs) as client:
    ...     client.generate("a corgi surfing").wait(timeout=60).status
    'completed'
    """
    check_max_concurrency(max_concurrency)
    in_process = simulator is not None and simulator is not False
    if in_process and profile is None:
        profile = os.environ.get("SORA_NB_PROFILE") or "simulator"
    if in_process and base_url is None and profile in PROFILES:
        # The service's path on a host of its own, which only the in-process simulator answers.
        base_url = simulator_base_url(PROFILES[profile])
    chosen = resolve_profile(profile, base_url=base_url)
    policy = poll_policy or PollPolicy()
    sim_config = None
    if chosen.name == "simulator" or in_process:
        state_dir = _simulator_state_dir(simulator, simulator_state, run_root)
        sim_config = _simulator_config(chosen, simulator, seed=seed, time_scale=time_scale, state_dir=state_dir)
        # The simulator, like the services, wants a key: a placeholder, never a real key from the environment.
        key: str | None = api_key or SIMULATOR_API_KEY
        if poll_policy is None:
            policy = policy.scaled(min(1.0, sim_config.time_scale))
    elif seed is not None or time_scale is not None or simulator_state is not None:
        raise ValueError(
            f"seed, time_scale, simulator and simulator_state are simulator options, but the profile is "
            f"{chosen.name!r}. "
            f"Fix: drop them, or connect({chosen.name!r}, simulator=True, ...) to run it on the simulator."
        )
    else:
        key = resolve_api_key(chosen, api_key)
    return Client(
        chosen,
        api_key=key,
        headers=headers,
        timeout=timeout,
        create_timeout=create_timeout,
        run_root=run_root,
        transport=transport,
        simulator=sim_config,
        max_concurrency=max_concurrency,
        poll_policy=policy,
        retry=retry,
    )


def _simulator_state_dir(
    simulator: Any, simulator_state: str | os.PathLike[str] | bool | None, run_root: str | os.PathLike[str] | None
) -> str | None:
    """The simulator's ``state_dir`` from ``connect``'s options (absolute: a kernel may ``chdir`` later)."""
    from .simulator import SimulatorConfig

    if isinstance(simulator, SimulatorConfig):
        if simulator_state is not None:
            raise ValueError(
                "simulator_state was given with a SimulatorConfig, which has its own state_dir. "
                "Fix: SimulatorConfig(state_dir=...), or drop simulator_state."
            )
        return None  # unused: the config keeps its own
    if simulator_state is False:
        return None
    if simulator_state is None or simulator_state is True:
        root = Path(run_root) if run_root is not None else DEFAULT_RUN_ROOT
        return os.fspath(root.absolute() / SIMULATOR_STATE_DIR)
    return os.fspath(Path(simulator_state).absolute())


def _simulator_config(
    profile: Profile, simulator: Any, *, seed: int | None, time_scale: float | None, state_dir: str | None = None
) -> Any:
    """The simulator that imitates ``profile``: its dialect, and model checks as strict as the profile's."""
    from .simulator import SimulatorConfig

    if isinstance(simulator, SimulatorConfig):
        if simulator.dialect == "openai" and profile.dialect != "openai":
            return dataclasses.replace(simulator, dialect=profile.dialect)
        if simulator.dialect != profile.dialect:
            raise ValueError(
                f"simulator.dialect={simulator.dialect!r} does not imitate profile {profile.name!r} "
                f"(its dialect is {profile.dialect!r}). Fix: SimulatorConfig(dialect={profile.dialect!r}, ...)."
            )
        return simulator
    if simulator not in (None, True):
        raise TypeError(f"simulator must be True or a SimulatorConfig, got {type(simulator).__name__}.")
    return SimulatorConfig(
        seed=seed,
        time_scale=DEFAULT_SIMULATOR_TIME_SCALE if time_scale is None else time_scale,
        dialect=profile.dialect,
        strict_models=profile.validate_models,
        state_dir=state_dir,
    )


class Client:
    """A connection to one video server. Make it with :func:`connect`.

    ``generate`` starts one job, ``sweep`` plans many; both return at once. The API key is held by the
    contract client's HTTP headers only (``repr(client)`` shows whether one is set, never its value).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        api_key: str | None,
        headers: dict[str, str] | None,
        timeout: float,
        run_root: str | os.PathLike[str] | None,
        create_timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None,
        simulator: Any,
        max_concurrency: int | None,
        poll_policy: PollPolicy,
        retry: RetryPolicy | None,
    ) -> None:
        # A password in the base URL goes to the contract client only (which makes it an auth header):
        # the profile, repr and runs see the URL with the password redacted.
        full_url = profile.base_url or ""
        self.base_url = redact_url(full_url)
        self.profile = dataclasses.replace(profile, base_url=self.base_url) if self.base_url != full_url else profile
        self.run_root = Path(run_root) if run_root is not None else DEFAULT_RUN_ROOT
        self.simulator = simulator
        self.simulator_state_dir = _served_state_dir(simulator, transport)
        """Where the in-process simulator this client talks to keeps its jobs (``None``: in memory)."""
        self.runtime: Runtime = get_runtime()
        # The simulator's placeholder is a key on the wire, but not one the user has to look after.
        self._key_shown = "placeholder" if api_key == SIMULATOR_API_KEY else ("set" if api_key else "none")

        def make_api() -> ContractClient:
            nonlocal transport
            if transport is None and simulator is not None:
                from .simulator import SimulatorTransport

                transport = SimulatorTransport(simulator)
            from .providers import make_client  # the profile names its adapter

            return make_client(
                self.profile,
                base_url=full_url,
                api_key=api_key,
                headers={**profile.extra_headers, **(headers or {})},
                timeout=timeout,
                create_timeout=create_timeout,
                transport=transport,
                retry=retry,
            )

        self.runner = Runner(
            runtime=self.runtime,
            profile=profile,
            api_factory=make_api,
            max_concurrency=max_concurrency or profile.max_concurrency,
            poll_policy=poll_policy,
        )
        self._session: Run | None = None

    # ------------------------------------------------------------------ jobs
    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str = _catalog.DEFAULT_SIZE,
        seconds: str | int = _catalog.DEFAULT_SECONDS,
        input_reference: str | os.PathLike[str] | None = None,
        style: str | None = None,
    ) -> Job:
        """Start one video job and return it at once; it runs in the background.

        Bad parameters raise :class:`sora_nb.ValidationError` here, before anything is sent. ``model``
        defaults to the profile's (``client.profile.default_model``).

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> job = client.generate("a corgi surfing at sunset", model="sora-2", size="1280x720")
        >>> job.wait(timeout=600).video_path.suffix
        '.mp4'
        >>> try:
        ...     client.generate("a corgi surfing", size="1000x1000")  # refused here: nothing is sent
        ... except sora_nb.ValidationError as exc:
        ...     print(str(exc).split(" Fix:")[0])  # (the message goes on to say the fix)
        size='1000x1000' is not allowed for sora-2. Allowed: '720x1280', '1280x720'.
        >>> client.close()
        """
        spec = self.job_spec(
            prompt, model=model, size=size, seconds=seconds, input_reference=input_reference, style=style
        )
        return self.session.submit([spec])[0]

    def job_spec(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str = _catalog.DEFAULT_SIZE,
        seconds: str | int = _catalog.DEFAULT_SECONDS,
        input_reference: str | os.PathLike[str] | None = None,
        style: str | None = None,
    ) -> JobSpec:
        """Check one request against this server's rules and describe it as a :class:`JobSpec`."""
        from ._styles import apply_style
        from ._validation import load_reference

        model = model or self.profile.default_model
        params = check_create(
            prompt=prompt, model=model, size=size, seconds=seconds, strict=self.profile.validate_models
        )
        if self.profile.validate_models:
            self.profile.capabilities.check(model, params["size"], params["seconds"])
        apply_style(params["prompt"], style)
        reference = None
        if input_reference is not None:
            # The contract wants the image at exactly the video's size; hosted services scale it themselves.
            load_reference(input_reference, params["size"], check_dimensions=self.profile.adapter == "contract")
            reference = os.fspath(Path(input_reference).resolve())
        axes = {
            "prompt": params["prompt"],
            "model": model,
            "size": params["size"],
            "seconds": params["seconds"],
            "style": style,
            "repeat": 0,
        }
        return JobSpec(
            prompt=params["prompt"],
            model=model,
            size=params["size"],
            seconds=params["seconds"],
            style=style,
            input_reference=reference,
            axes=axes,
        )

    @property
    def session(self) -> Run:
        """The run that ``generate`` adds to (created on first use under ``run_root``)."""
        if self._session is None:
            self._session = self.new_run(axes=("prompt", "model", "size", "seconds", "style", "repeat"), kind="session")
        return self._session

    def new_run(
        self,
        *,
        axes: tuple[str, ...],
        kind: str = "sweep",
        run_dir: str | os.PathLike[str] | None = None,
        extra_meta: dict[str, Any] | None = None,
    ) -> Run:
        """An empty run with its own directory and ledger, driven by this client.

        Raises:
            RunLockedError: another client drives a run in ``run_dir``.
            FileExistsError: ``run_dir`` already holds a run: its jobs go on with ``resume``.
            StorageError: ``run_dir`` cannot be made or written.
        """
        from ._ledger import new_run_id

        run_id = new_run_id()
        directory = Path(run_dir) if run_dir is not None else self.run_root / run_id
        if directory.exists() and not directory.is_dir():
            raise ValueError(
                f"run_dir {str(directory)!r} is a file, not a directory. Allowed: a directory, new or empty "
                "(it is made if missing). Fix: choose another run_dir."
            )
        meta = {
            "run_id": run_id,
            "created_at": time.time(),
            "kind": kind,
            "profile": self.profile.name,
            "base_url": redact_url(self.base_url),  # a password in it is a credential: never stored
            "axes": list(axes),
            **(extra_meta or {}),
        }
        if self.simulator is not None:
            meta["simulator"] = {
                "seed": self.simulator.seed,
                "time_scale": self.simulator.time_scale,
                "dialect": self.simulator.dialect,
                "state_dir": self.simulator_state_dir,
            }
        run = Run(self.runner, directory, axes=axes, meta=meta)
        # Here, where the caller hears it, before anything is sent: a run another client drives, a run
        # already there, a disk that refuses the ledger.
        self.runner.claim(run)
        try:
            if (directory / LEDGER_FILE).exists():
                raise FileExistsError(
                    f"a run ledger already exists at {str(directory / LEDGER_FILE)!r}. Fix: resume it with "
                    f"sora_nb.resume({str(directory)!r}), or choose another run_dir."
                )
            self.runner.open_ledger(run)
        except BaseException:
            self.runner.release(run)
            raise
        return run

    def sweep(self, **axes: Any) -> Sweep:
        """Plan a parameter sweep: a cartesian product of the axes, explicit ``rows``, or a prompt
        ``template`` with ``variables``. Nothing is sent until ``start()``.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> sweep = client.sweep(prompt=["a corgi surfing", "a cat skiing"], model=["sora-2", "sora-2-pro"],
        ...                      seconds=["4", "8"], size=["1280x720"], repeats=2)
        >>> print(sweep.estimate())
        16 jobs, 96 s of video, est. $19.20
        >>> client.close()
        """
        from ._sweep import Sweep

        return Sweep(self, **axes)

    # ------------------------------------------------------------------ the contract, directly
    @property
    def api(self) -> ContractClient:
        """The async contract client, for direct calls on this client's loop (``await client.api.list()``)."""
        return self.runner.api

    def call(self, coro_fn: Any, *args: Any, timeout: float | None = 120.0, **kwargs: Any) -> Any:
        """Run ``coro_fn(client.api, ...)`` on the client's loop and block for the result (scripts)."""

        async def _run() -> Any:
            return await coro_fn(self.api, *args, **kwargs)

        return self.runtime.run(_run(), timeout=timeout)

    # ------------------------------------------------------------------ closing
    def close(self, timeout: float = 30.0) -> None:
        """Stop background tasks (jobs stay resumable from their run's ledger) and close connections."""
        self.runtime.run(self.aclose(), timeout=timeout)

    async def aclose(self) -> None:
        await self.runner.aclose()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = self._key_shown
        return f"<sora_nb.Client profile={self.profile.name!r} base_url={redact_url(self.base_url)!r} key={key}>"


def _served_state_dir(simulator: Any, transport: httpx.AsyncBaseTransport | None) -> str | None:
    if simulator is None:
        return None
    from .simulator import SimulatorTransport

    if transport is None:
        state_dir: str | None = simulator.state_dir
        return state_dir
    if isinstance(transport, SimulatorTransport):
        return transport.config.state_dir
    return None


def resume(run_dir: str | os.PathLike[str], *, client: Client | None = None, api_key: str | None = None) -> Run:
    """Re-attach to a run after a kernel restart or a crash; returns the run, already going again.

    Jobs still running on the server are polled, finished ones downloaded, unsent ones created, and a
    create that may have left before the crash is looked for on the server first: nothing is paid
    for twice. Without ``client``, one is made from the run's profile and base URL (the key from the
    environment or ``api_key``; keys are never stored in the run).

    The client drives the run until it closes (``run.close()``), and no other may meanwhile: a run
    driven by another live process raises :class:`sora_nb.RunLockedError` naming it (``load_run`` reads
    a run without driving it). Jobs ended by a full or read-only disk start again; a disk that still
    refuses raises :class:`sora_nb.StorageError`.

    >>> import sora_nb
    >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
    >>> run_dir = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().run_dir
    >>> client.close()  # a kernel restart, say: the jobs stop where they are
    >>> run = sora_nb.resume(run_dir)
    >>> run.wait(timeout=3600).counts()
    {'completed': 2}
    >>> run.close()
    """
    from ._ledger import Ledger

    directory = Path(run_dir)
    with Ledger.open(directory, readonly=True) as ledger:
        meta = ledger.meta()
    made = client is None
    client = client or _client_for_run(directory, meta, api_key)
    run = Run(client.runner, directory, axes=tuple(meta.get("axes") or ()), meta=meta)
    try:
        client.runner.claim(run)
        client.runtime.call_and_wait(client.runner.attach, run)
    except BaseException:
        client.runner.release(run)
        if made:
            client.close()
        raise
    return run


def _client_for_run(directory: Path, meta: dict[str, Any], api_key: str | None) -> Client:
    """A client for the server a run was made on, from its ledger's meta (keys come from the environment)."""
    sim = meta.get("simulator") or {}
    if meta.get("profile") == "simulator" or sim:
        # A run made on the in-process simulator (or on a service's dialect of it) resumes there,
        # with the jobs it kept on disk: those still running go on, none is created twice.
        return connect(
            meta.get("profile"),
            simulator=True,
            seed=sim.get("seed"),
            time_scale=sim.get("time_scale"),
            run_root=directory.parent,
            simulator_state=_resume_state_dir(sim.get("state_dir"), directory, sim.get("dialect") or "openai"),
        )
    base_url = meta.get("base_url")
    if base_url and f":{REDACTED}@" in base_url:
        raise ConfigurationError(
            f"run {directory} was made on a base URL with a password ({base_url}), "
            "and passwords are not stored in runs. Fix: sora_nb.resume(run_dir, "
            "client=sora_nb.connect(profile, base_url='https://user:password@host/v1'))."
        )
    return connect(meta.get("profile"), base_url=base_url, api_key=api_key, run_root=directory.parent)


def read_run(run_dir: str | os.PathLike[str], *, api_key: str | None = None) -> tuple[Client, Run]:
    """A run as its ledger holds it, with a client for its server, *not* driven: for ``sora-nb audit``, which
    must not start work (or compete with a process that drives the run). Close the client when done."""
    from ._jobs import Job
    from ._ledger import Ledger

    directory = Path(run_dir)
    with Ledger.open(directory, readonly=True) as ledger:
        meta, records = ledger.meta(), ledger.jobs()
    client = _client_for_run(directory, meta, api_key)
    run = Run(client.runner, directory, axes=tuple(meta.get("axes") or ()), meta=meta)
    run.jobs.extend(Job(client.runner, run, record) for record in records)
    return client, run


def _resume_state_dir(recorded: str | None, run_dir: Path, dialect: str) -> str | None:
    """The simulator state a run was made on: the directory its ledger names, else (runs moved together
    with their ``.simulator``, or made before runs recorded it) the one beside the run."""
    from .simulator._persist import state_file

    beside = run_dir.absolute().parent / SIMULATOR_STATE_DIR
    if recorded and (Path(recorded) / state_file(dialect)).exists():
        return recorded
    if (beside / state_file(dialect)).exists():
        return os.fspath(beside)
    return recorded or os.fspath(beside)
