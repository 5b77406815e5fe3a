"""The :class:`Client` ``sora_nb.connect()`` returns (:mod:`sora_nb._connect`): the user's handle on one server.

The client owns the contract client (and so the key), the runner that drives jobs, and the session
run that ``generate`` writes into. It returns at once from every call that starts work.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx

from ._characters import CharacterRegistry, make_character, with_poster
from ._contract import ContractClient
from ._errors import UnsupportedOperationError, ValidationError
from ._jobs import Job
from ._ledger import LEDGER_FILE
from ._polling import PollPolicy
from ._profiles import SIMULATOR_API_KEY, Profile
from ._redact import redact_url
from ._retry import RetryPolicy
from ._run import Run
from ._runner import Runner
from ._runtime import Runtime, get_runtime
from ._storyboard import Storyboard
from ._storyboards import StoryboardRun
from ._types import Character, JobSpec
from ._validation import (
    check_character_name,
    check_characters,
    check_create,
    check_id,
    check_user_file,
    parse_size,
)

if TYPE_CHECKING:
    from ._cost import Estimate
    from ._sweep import Sweep
    from .simulator import SimulatorConfig

__all__ = ["DEFAULT_RUN_ROOT", "Client"]

T = TypeVar("T")

DEFAULT_RUN_ROOT = Path("sora_runs")


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
        simulator: SimulatorConfig | None,
        max_concurrency: int | None,
        poll_policy: PollPolicy,
        retry: RetryPolicy | None,
        measure: bool = True,
    ) -> None:
        # A password in the base URL goes to the contract client only (which makes it an auth header):
        # the profile, repr and runs see the URL with the password redacted.
        full_url = profile.base_url or ""
        self.base_url = redact_url(full_url)
        self.profile = dataclasses.replace(profile, base_url=self.base_url) if self.base_url != full_url else profile
        self.run_root = Path(run_root) if run_root is not None else DEFAULT_RUN_ROOT
        self.simulator = simulator
        self.simulator_state_dir: str | None = None
        """Where the in-process simulator this client talks to keeps its jobs (``None``: in memory)."""
        if simulator is not None:
            from .simulator import served_state_dir

            self.simulator_state_dir = served_state_dir(simulator, transport)
        self._runtime: Runtime = get_runtime()
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

        self._runner = Runner(
            runtime=self._runtime,
            profile=profile,
            api_factory=make_api,
            max_concurrency=max_concurrency or profile.max_concurrency,
            poll_policy=poll_policy,
            measure=measure,
        )
        self._session: Run | None = None

    # ------------------------------------------------------------------ jobs
    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        seconds: str | int | None = None,
        input_reference: str | os.PathLike[str] | None = None,
        style: str | None = None,
        characters: Sequence[Character | str] = (),
    ) -> Job:
        """Start one video job and return it at once; it runs in the background.

        ``characters``: at most two :class:`sora_nb.Character` (or their ids, from ``client.characters()``),
        each named verbatim in the prompt; they are sent as ``characters: [{"id": ...}]``.

        Bad parameters raise :class:`sora_nb.ValidationError` here, before anything is sent. What is not
        given is the profile's default (``client.profile.capabilities``: ``default_model``, and the
        model's default size and duration).

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
        spec = self._job_spec(
            prompt, model=model, size=size, seconds=seconds, input_reference=input_reference, style=style,
            characters=characters,
        )
        return self.session.submit([spec])[0]

    def _job_spec(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        seconds: str | int | None = None,
        input_reference: str | os.PathLike[str] | None = None,
        style: str | None = None,
        characters: Sequence[Character | str] = (),
    ) -> JobSpec:
        """Check one request against this server's rules and describe it as a :class:`JobSpec`."""
        from ._styles import apply_style
        from ._validation import load_reference, reference_url

        caps = self.profile.capabilities
        model = model or caps.default_model
        size = size or caps.default_size_for(model)
        seconds = seconds or caps.default_seconds_for(model, size)
        params = check_create(prompt=prompt, model=model, size=size, seconds=seconds, capabilities=caps)
        apply_style(params["prompt"], style)
        cameos = check_characters(params["prompt"], self._character_pairs(characters)) if characters else ()
        reference = None
        spec = caps.spec(model)
        if input_reference is not None and spec is not None and spec.image_input is False:
            raise ValidationError(
                f"input_reference: {model} takes no reference image on {self.profile.name}. "
                "Fix: drop input_reference=, or pick a model that takes one.",
                field="input_reference",
            )
        if input_reference is not None and not caps.reference_exact_size and reference_url(input_reference):
            reference = os.fspath(input_reference)  # a link the hosted service fetches itself
        elif input_reference is not None:
            # The contract wants the image at exactly the video's size; hosted services scale it themselves.
            load_reference(input_reference, params["size"], check_dimensions=caps.reference_exact_size)
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
            characters=cameos,
        )

    @property
    def session(self) -> Run:
        """The run that ``generate`` adds to (created on first use under ``run_root``)."""
        if self._session is None:
            axes = ("prompt", "model", "size", "seconds", "style", "repeat")
            self._session = self._new_run(axes=axes, kind="session")
        return self._session

    def _new_run(
        self,
        *,
        axes: tuple[str, ...],
        kind: str = "sweep",
        run_dir: str | os.PathLike[str] | None = None,
        extra_meta: dict[str, Any] | None = None,
        max_concurrency: int | None = None,
    ) -> Run:
        """An empty run with its own directory and ledger, driven by this client.

        Raises:
            RunLockedError: another client drives a run in ``run_dir``.
            FileExistsError: ``run_dir`` already holds a run: its jobs go on with ``resume``.
            StorageError: ``run_dir`` cannot be made or written.
        """
        from ._runs import new_run_id

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
            **self._server_meta(),
            "axes": list(axes),
            **(extra_meta or {}),
        }
        run_class: type[Run] = {"storyboard": Storyboard, "storyboards": StoryboardRun}.get(kind, Run)
        run = run_class(self._runner, directory, axes=axes, meta=meta, max_concurrency=max_concurrency)
        # Here, where the caller hears it, before anything is sent: a run another client drives, a run
        # already there, a disk that refuses the ledger.
        self._runner.claim(run)
        try:
            if (directory / LEDGER_FILE).exists():
                raise FileExistsError(
                    f"a run ledger already exists at {str(directory / LEDGER_FILE)!r}. Fix: resume it with "
                    f"sora_nb.resume({str(directory)!r}), or choose another run_dir."
                )
            self._runner.open_ledger(run)
        except BaseException:
            self._runner.release(run)
            raise
        return run

    def _server_meta(self) -> dict[str, Any]:
        """What a run records of the server it is made on, for ``resume`` to find it again (never a key)."""
        meta: dict[str, Any] = {
            "profile": self.profile.name,
            "base_url": redact_url(self.base_url),  # a password in it is a credential: never stored
        }
        if self.simulator is not None:
            meta["simulator"] = {
                "seed": self.simulator.seed,
                "time_scale": self.simulator.time_scale,
                "dialect": self.simulator.dialect,
                "state_dir": self.simulator_state_dir,
            }
        return meta

    @overload
    def sweep(self, *, storyboard: object, **axes: Any) -> Sweep[StoryboardRun]: ...
    @overload
    def sweep(self, **axes: Any) -> Sweep[Run]: ...
    def sweep(self, **axes: Any) -> Sweep[Run]:
        """Plan a parameter sweep: a cartesian product of the axes, explicit ``rows``, or a prompt
        ``template`` with ``variables``. Nothing is sent until ``start()``.

        With ``storyboard=shots`` it is a sweep of storyboards: the same board across ``model``, ``size``,
        ``mode`` and ``continuity`` (and ``repeats``), in one run whose ``boards`` are each a
        :class:`~sora_nb.Storyboard` (see :meth:`storyboard`).

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> sweep = client.sweep(prompt=["a corgi surfing", "a cat skiing"], model=["sora-2", "sora-2-pro"],
        ...                      seconds=["4", "8"], size=["1280x720"], repeats=2)
        >>> print(sweep.estimate())
        16 jobs, 96 s of video, est. $19.20
        >>> print(client.sweep(storyboard=["a fox wakes", "it runs"], model=["sora-2", "sora-2-pro"]).estimate())
        4 jobs, 16 s of video, est. $3.20
        >>> client.close()
        """
        from ._sweep import Sweep

        return Sweep(self, **axes)

    # ------------------------------------------------------------------ characters (cameos)
    @property
    def _registry(self) -> CharacterRegistry:
        return CharacterRegistry(self.run_root, server=self.base_url)

    def _check_characters_supported(self) -> None:
        if not self.profile.capabilities.supports_characters:
            raise UnsupportedOperationError(
                f"profile {self.profile.name!r} has no characters (cameos): its server takes no "
                "POST /videos/characters or characters=[...] (see client.profile.capabilities). Fix: connect to "
                "a server that speaks OpenAI's Videos contract with characters (or the simulator), or leave them out."
            )

    def _character_pairs(self, characters: Sequence[Character | str]) -> list[tuple[str, str]]:
        """``(id, name)`` of each character given (ids looked up in the registry), for a create."""
        self._check_characters_supported()
        if isinstance(characters, (str, Character)):
            characters = [characters]
        pairs = []
        for given in characters:
            character = self._registry.get(given) if isinstance(given, str) else given
            if not isinstance(character, Character) or not character.id or not character.name:
                known = ", ".join(f"{c.name} ({c.id})" for c in self.characters()) or "none yet"
                raise ValidationError(
                    f"characters: {given!r} is not a character of this server (known: {known}). Fix: pass a "
                    "Character from client.create_character(...) or client.characters(), or its id.",
                    field="characters",
                )
            pairs.append((character.id, character.name))
        return pairs

    def create_character(
        self,
        source: Job | str | os.PathLike[str],
        name: str,
        *,
        start: float = 0.0,
        seconds: float | None = None,
        trim: bool = True,
        timeout: float | None = 300.0,
    ) -> Character:
        """Make a character (a cameo) from a finished job's video or a local clip, and remember it.

        The clip must be 2-4 s, 16:9 or 9:16, 720p to 1080p. A longer one is cut with PyAV from ``start``
        (seconds) for ``seconds`` (default: 4, or to the end); ``trim=False`` refuses it instead. A job's video is
        taken at the size the job asked for (a server may deliver a smaller preview). Everything is checked
        before the upload; the character is then kept in ``<run_root>/characters/`` with its clip and poster,
        so that :meth:`characters` lists it in later sessions too. Awaitable twin: :meth:`create_character_async`.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> job = client.generate("a woman with a red umbrella", size="1280x720", seconds="8").wait(timeout=60)
        >>> ada = client.create_character(job, "Ada", start=2.0)
        >>> ada.name, [c.name for c in client.characters()]
        ('Ada', ['Ada'])
        >>> client.generate("Ada walks through the rain", size="1280x720", characters=[ada]).wait(timeout=60).status
        'completed'
        >>> client.close()
        """
        return self._runtime.run(
            self.create_character_async(source, name, start=start, seconds=seconds, trim=trim), timeout=timeout
        )

    async def create_character_async(
        self,
        source: Job | str | os.PathLike[str],
        name: str,
        *,
        start: float = 0.0,
        seconds: float | None = None,
        trim: bool = True,
    ) -> Character:
        """:meth:`create_character`, awaitable (the clip is cut in a worker thread)."""
        self._check_characters_supported()
        check_character_name(name)
        for label, value in (("start", start), ("seconds", seconds)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 <= value < 1e6):
                raise ValueError(f"{label}={value!r} must be a number of seconds, 0 or more. Fix: e.g. {label}=2.")
        size: tuple[int, int] | None = None
        if isinstance(source, Job):
            if source.status != "completed" or source.video_path is None:
                raise ValueError(
                    f"job {source.id} is {source.status} and has no video on disk, so no character can be made "
                    "from it. Fix: wait for it (job.wait() or `await job`) first."
                )
            path = Path(source.video_path)
            size = parse_size(source.spec.size)
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            check_user_file(path, field="source", what="video clip")
        else:
            raise TypeError(
                f"source must be a finished Job or the path of a clip, got {type(source).__name__}. "
                "Fix: client.create_character(job, 'Ada') or client.create_character('clip.mp4', 'Ada')."
            )
        return await make_character(self.api, self._registry, path, name, size=size, start=float(start),
                                    seconds=seconds, trim=trim)

    def characters(self) -> list[Character]:
        """The characters made through this server with this ``run_root``, oldest first (across sessions).

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> client.characters()
        []
        >>> client.close()
        """
        return self._registry.all()

    def get_character(self, character_id: str, *, timeout: float | None = 120.0) -> Character:
        """The character with ``character_id``, as the server has it (``GET /videos/characters/{id}``).

        One the registry did not know (made elsewhere) is recorded, so that :meth:`characters` lists it.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> try:
        ...     client.get_character("char_unknown")
        ... except sora_nb.NotFoundError as exc:
        ...     print(exc.code)
        character_not_found
        >>> client.close()
        """
        self._check_characters_supported()
        found = self.call(ContractClient.get_character, check_id(character_id, field="character_id"),
                          timeout=timeout)
        known = self._registry.get(character_id)
        poster = Path(known.poster_path) if known is not None and known.poster_path else None
        return self._registry.add(with_poster(found, poster))

    # ------------------------------------------------------------------ storyboards
    def storyboard(
        self,
        shots: Sequence[Mapping[str, Any] | str],
        *,
        model: str | None = None,
        size: str | None = None,
        mode: str = "stitch",
        continuity: bool = True,
        budget_usd: float | None = None,
        max_concurrency: int | None = None,
        run_dir: str | os.PathLike[str] | None = None,
    ) -> Storyboard:
        """Start a multi-shot video (a :class:`~sora_nb.Storyboard`, a run of its own) and return it at once.

        ``shots`` are ``{"prompt": ..., "seconds": ...}`` dicts (or prompts). ``mode="stitch"`` makes each
        shot and joins them into one MP4; with ``continuity`` each shot starts from the last frame of the
        one before (where the server takes a reference image; the shots are then made in turn, else in
        parallel). ``mode="extend"`` extends shot 1 by each next shot. Everything is checked, and the
        estimate held against ``budget_usd``, before anything is sent.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> shots = [{"prompt": "a fox wakes", "seconds": "4"}, {"prompt": "the fox runs", "seconds": "8"}]
        >>> print(client.estimate_storyboard(shots, model="sora-2", size="1280x720"))
        2 jobs, 12 s of video, est. $1.20
        >>> board = client.storyboard(shots, model="sora-2", size="1280x720", budget_usd=2.0)
        >>> board.wait(timeout=120).status, board.video_path.suffix
        ('completed', '.mp4')
        >>> client.close()
        """
        from ._cost import check_budget
        from ._storyboard import AXES, plan_storyboard, storyboard_estimate

        caps = self.profile.capabilities
        model = model or caps.default_model
        plan = plan_storyboard(self.profile, shots, model=model, size=size or caps.default_size_for(model), mode=mode,
                               continuity=continuity)
        check_budget(storyboard_estimate(self.profile, plan), budget_usd)
        board = self._new_run(axes=AXES, kind="storyboard", run_dir=run_dir, max_concurrency=max_concurrency,
                              extra_meta={"storyboard": plan, "budget_usd": budget_usd})
        assert isinstance(board, Storyboard)
        self._runtime.call(board._start)
        return board

    def estimate_storyboard(
        self, shots: Sequence[Mapping[str, Any] | str], *, model: str | None = None,
        size: str | None = None, mode: str = "stitch",
    ) -> Estimate:
        """What :meth:`storyboard` would make and cost, checked as it would be; nothing is sent."""
        from ._storyboard import plan_storyboard, storyboard_estimate

        caps = self.profile.capabilities
        model = model or caps.default_model
        plan = plan_storyboard(self.profile, shots, model=model, size=size or caps.default_size_for(model), mode=mode,
                               continuity=False)
        return storyboard_estimate(self.profile, plan)

    # ------------------------------------------------------------------ the contract, directly
    @property
    def api(self) -> ContractClient:
        """The async contract client, for direct calls on this client's loop (``await client.api.list()``)."""
        return self._runner.api

    def call(
        self, coro_fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = 120.0, **kwargs: Any
    ) -> T:
        """Run ``coro_fn(client.api, ...)`` on the client's loop and block for the result (scripts)."""

        async def _run() -> T:
            return await coro_fn(self.api, *args, **kwargs)

        return self._runtime.run(_run(), timeout=timeout)

    # ------------------------------------------------------------------ closing
    def close(self, timeout: float = 30.0) -> None:
        """Stop background tasks (jobs stay resumable from their run's ledger) and close connections."""
        self._runtime.run(self.aclose(), timeout=timeout)

    async def aclose(self) -> None:
        await self._runner.aclose()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = self._key_shown
        return f"<sora_nb.Client profile={self.profile.name!r} base_url={redact_url(self.base_url)!r} key={key}>"
