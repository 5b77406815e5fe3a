"""``sora_nb.connect()`` and ``sora_nb.resume()``: how a user gets a :class:`~sora_nb.Client`, for a new
server or for the server a run was made on.

The in-process simulator's own policy (its configuration, where its jobs live) is the simulator's
(``sora_nb.simulator.in_process_config``, ``run_state_dir``); the simulator is imported only when used.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ._client import DEFAULT_RUN_ROOT, Client
from ._errors import ConfigurationError
from ._jobs import Job
from ._ledger import Ledger
from ._polling import PollPolicy
from ._profiles import PROFILES, SIMULATOR_API_KEY, resolve_api_key, resolve_profile, simulator_base_url
from ._redact import REDACTED
from ._retry import RetryPolicy
from ._run import Run
from ._storyboard import Storyboard
from ._storyboards import StoryboardRun
from ._validation import check_max_concurrency

if TYPE_CHECKING:
    from .simulator import SimulatorConfig

__all__ = ["connect", "read_run", "resume"]


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
    simulator: SimulatorConfig | bool | None = None,
    simulator_state: str | os.PathLike[str] | bool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    poll_policy: PollPolicy | None = None,
    retry: RetryPolicy | None = None,
    measure: bool = True,
) -> Client:
    """Connect to a video server; with no profile and no base URL, to the in-process simulator.

    Args:
        profile: ``"simulator"``, ``"openai-compatible"``, ``"litellm"``, ``"vllm-omni"``, ``"sglang"``, or a
            hosted service: ``"openrouter"``, ``"xai"``, ``"gemini"``, ``"together"``, ``"fal"``, ``"replicate"``,
            ``"runway"`` (``sora_nb.PROFILES``).
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
        measure: measure each video once it is downloaded (``sora_nb.measure_video`` and the registered
            metrics, in a process pool, off the kernel's loop), so that ``run.to_dataframe()`` has its
            ``metric_*`` columns at once. ``False`` skips that (e.g. a very large sweep on a small
            machine); ``run.measure()`` or ``sora-nb measure RUN_DIR`` fills them in later.

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
    if not isinstance(measure, bool):
        raise TypeError(f"measure must be True or False, not {measure!r}. Fix: connect(..., measure=False) "
                        "skips measuring after each download; run.measure() fills the metrics in later.")
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
        from .simulator import in_process_config

        sim_config = in_process_config(
            simulator,
            profile=chosen.name,
            dialect=chosen.dialect,
            strict_models=not chosen.capabilities.open_models,
            seed=seed,
            time_scale=time_scale,
            state=simulator_state,
            run_root=Path(run_root) if run_root is not None else DEFAULT_RUN_ROOT,
        )
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
        measure=measure,
    )


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
    directory = Path(run_dir)
    with Ledger.open(directory, readonly=True) as ledger:
        meta = ledger.meta()
    made = client is None
    client = client or _client_for_run(directory, meta, api_key)
    run_class: type[Run] = {"storyboard": Storyboard, "storyboards": StoryboardRun}.get(str(meta.get("kind")), Run)
    run = run_class(client._runner, directory, axes=tuple(meta.get("axes") or ()), meta=meta)
    try:
        client._runner.claim(run)
        client._runtime.call_and_wait(client._runner.attach, run)
        if isinstance(run, (Storyboard, StoryboardRun)):  # their own work goes on: shots not made yet, stitches
            client._runtime.call_and_wait(run._start)
    except BaseException:
        client._runner.release(run)
        if made:
            client.close()
        raise
    return run


def _client_for_run(directory: Path, meta: dict[str, Any], api_key: str | None) -> Client:
    """A client for the server a run was made on, from its ledger's meta (keys come from the environment)."""
    if meta.get("profile") == "pool":
        return _pool_for_run(directory, meta, api_key)
    sim = meta.get("simulator") or {}
    if meta.get("profile") == "simulator" or sim:
        from .simulator import run_state_dir

        # A run made on the in-process simulator (or on a service's dialect of it) resumes there,
        # with the jobs it kept on disk: those still running go on, none is created twice.
        return connect(
            meta.get("profile"),
            simulator=True,
            seed=sim.get("seed"),
            time_scale=sim.get("time_scale"),
            run_root=directory.parent,
            simulator_state=run_state_dir(sim.get("state_dir"), directory, sim.get("dialect") or "openai"),
        )
    base_url = meta.get("base_url")
    if base_url and f":{REDACTED}@" in base_url:
        raise ConfigurationError(
            f"run {directory} was made on a base URL with a password ({base_url}), "
            "and passwords are not stored in runs. Fix: sora_nb.resume(run_dir, "
            "client=sora_nb.connect(profile, base_url='https://user:password@host/v1'))."
        )
    return connect(meta.get("profile"), base_url=base_url, api_key=api_key, run_root=directory.parent)


def _pool_for_run(directory: Path, meta: dict[str, Any], api_key: str | None) -> Client:
    """The pool a pooled run was made on, each backend made again by name (a run stores no key: one from the
    environment serves one backend of a service, not several keys of it)."""
    from ._pool import pool_of

    backends: list[dict[str, Any]] = list(meta.get("backends") or ())
    names = ", ".join(f"{b.get('name')}=sora_nb.connect({b.get('profile')!r}, api_key=...)" for b in backends)
    keyed = Counter(b.get("profile") for b in backends if not b.get("simulator"))
    several = [profile for profile, n in keyed.items() if n > 1]
    if not backends or several:
        why = f"it pooled several keys of {several[0]!r}" if several else "its ledger lists no backends"
        raise ConfigurationError(
            f"run {directory} cannot be resumed without a client: {why}, and keys are never stored in a run. "
            f"Fix: sora_nb.resume({str(directory)!r}, client=sora_nb.pool({names}))."
        )
    return pool_of({str(b["name"]): _client_for_run(directory, b, api_key) for b in backends})


def read_run(
    run_dir: str | os.PathLike[str], *, api_key: str | None = None, claim: bool = False
) -> tuple[Client, Run]:
    """A run as its ledger holds it, with a client for its server, *not* driven: for ``sora-nb audit``, which
    must not start work (or compete with a process that drives the run). Close the client when done.

    ``claim=True`` makes the client the run's one driver all the same (nothing is started): for deleting
    orphans, which a live driver's create on the wire would look like.

    Raises:
        RunLockedError: with ``claim=True``, another client drives the run (the client made is closed).
    """
    directory = Path(run_dir)
    with Ledger.open(directory, readonly=True) as ledger:
        meta, records = ledger.meta(), ledger.jobs()
    client = _client_for_run(directory, meta, api_key)
    run = Run(client._runner, directory, axes=tuple(meta.get("axes") or ()), meta=meta)
    run.jobs.extend(Job(client._runner, run, record) for record in records)
    if claim:
        try:
            client._runner.claim(run)
        except BaseException:
            client.close()
            raise
    return client, run
