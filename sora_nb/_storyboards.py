"""A sweep of storyboards: the same board across models, sizes, modes or continuity, in one run.

``client.sweep(storyboard=shots, model=[...], ...)`` plans it (:func:`plan_boards`, checked before
anything is sent; its estimate is the sum of the boards'); ``sweep.start()`` returns a
:class:`StoryboardRun`: one run directory and ledger holding every board, each board a
:class:`~sora_nb.Storyboard` of that run (``run.boards``), made side by side. The run's DataFrame has a
row per shot and one per joined video; its compare grid, gallery, review, arena and leaderboard show
and judge the joined videos, one per board, labelled by the axes. ``sora_nb.resume`` carries every
board on where it stopped, paying only for the shots not made yet.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import JobTimeoutError, ValidationError
from ._grid import InvalidCombo, SweepPlan, _axis_values, did_you_mean
from ._jobs import Job
from ._run import DEFAULT_RUN_TIMEOUT, Run
from ._storyboard import AXES, Storyboard, plan_storyboard
from ._types import JobSpec
from ._validation import check_timeout

if TYPE_CHECKING:
    from ._profiles import Profile
    from ._runner import Runner

__all__ = ["BOARD_AXES", "BOARD_SWEEP_KEYS", "StoryboardRun", "plan_boards"]

BOARD_AXES = (*AXES, "mode", "continuity", "repeat")
"""The columns a sweep of boards is laid out by (``prompt`` and ``seconds``: a shot's, or the whole board's)."""
BOARD_SWEEP_KEYS = ("storyboard", "model", "size", "mode", "continuity", "repeats")


def plan_boards(profile: Profile, **options: Any) -> tuple[list[dict[str, Any]], SweepPlan]:
    """Every board of a sweep of storyboards, checked before anything is sent, and their shots as a plan.

    ``options`` are ``client.sweep``'s: ``storyboard`` (the shots), and ``model``, ``size``, ``mode``,
    ``continuity`` (each a value or a list), ``repeats``. A model/size pair the server would refuse is
    listed in the plan's ``invalid``, as a sweep lists it; any other mistake raises at once.

    >>> from sora_nb._profiles import PROFILES
    >>> boards, plan = plan_boards(PROFILES["simulator"], storyboard=["a fox wakes", "it runs"],
    ...                            model=["sora-2", "sora-2-pro"], size=["1280x720", "1792x1024"])
    >>> [(b["model"], b["size"]) for b in boards], len(plan.jobs), [c.field for c in plan.invalid]
    ([('sora-2', '1280x720'), ('sora-2-pro', '1280x720'), ('sora-2-pro', '1792x1024')], 6, ['size'])
    >>> plan_boards(PROFILES["simulator"], storyboard=[], model="sora-2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: storyboard= is empty: a sweep of storyboards needs the shots of one board...
    """
    for name in options:
        if name not in BOARD_SWEEP_KEYS:
            raise TypeError(
                f"a sweep of storyboards has no argument {name!r}{did_you_mean(name, BOARD_SWEEP_KEYS)}. Allowed: "
                f"{', '.join(BOARD_SWEEP_KEYS)}. Fix: each shot's prompt and seconds go in storyboard=[...].")
    shots = options.get("storyboard")
    if isinstance(shots, (str, bytes)) or not isinstance(shots, Sequence):
        raise TypeError(
            f"storyboard= must be a list of shots, got {type(shots).__name__}. Fix: e.g. storyboard=["
            "{'prompt': 'a fox wakes', 'seconds': '4'}, {'prompt': 'it runs', 'seconds': '4'}] "
            "(one shot: a list of one).")
    if not shots:
        raise ValueError(
            "storyboard= is empty: a sweep of storyboards needs the shots of one board. Fix: e.g. "
            "storyboard=[{'prompt': 'a fox wakes', 'seconds': '4'}, {'prompt': 'it runs', 'seconds': '4'}].")
    repeats = options.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} is not a whole number of boards of 1 or more. Fix: e.g. repeats=2.")
    caps = profile.capabilities
    models = _axis_values("model", options.get("model"))
    sizes = _axis_values("size", options.get("size"))
    modes = _axis_values("mode", options.get("mode", "stitch"))
    continuities = _axis_values("continuity", options.get("continuity", True))
    for value in continuities:
        if not isinstance(value, bool):
            raise TypeError(f"continuity={value!r} is not True or False. "
                            "Fix: continuity=[True, False] to compare both.")
    boards: list[dict[str, Any]] = []
    invalid: list[InvalidCombo] = []
    made: set[tuple[Any, ...]] = set()
    asked: set[tuple[Any, ...]] = set()
    for model, size, mode, continuity in itertools.product(models, sizes, modes, continuities):
        model = model or caps.default_model
        size = size or caps.default_size_for(model)
        twice = (model, size, mode, continuity) in asked  # a value listed twice, or also left to the default
        asked.add((model, size, mode, continuity))
        combo = {"model": model, "size": size, "mode": mode, "continuity": continuity}
        try:
            board = plan_storyboard(profile, shots, model=model, size=size, mode=mode, continuity=continuity)
        except ValidationError as exc:
            if exc.field != "size":
                raise  # a mistake in the sweep itself (an unknown model, a bad shot): nothing is planned
            invalid.append(InvalidCombo(combo, exc.field, str(exc), exc.allowed))
            continue
        key = (model, size, board["mode"], board["continuity"])
        if twice:
            given = {"model": [m or caps.default_model for m in models], "size": sizes, "mode": modes,
                     "continuity": continuities}
            field = next((name for name, values in given.items() if len(set(values)) < len(values)), "size")
            invalid.append(InvalidCombo(combo, field, (
                f"model={model!r}, size={size!r}, mode={mode!r}, continuity={continuity} is listed twice, so it "
                "would be paid for twice. Fix: list each value once (repeats=2 makes each board twice)."), ()))
            continue
        if key in made:
            # Extensions always continue, and a server without image input never can: the same board twice.
            invalid.append(InvalidCombo(combo, "continuity", (
                f"continuity={continuity} makes the same board as continuity={board['continuity']} here "
                f"(mode={mode!r} on {profile.name!r}), so it would be paid for twice. Fix: drop it."),
                (str(board["continuity"]),)))
            continue
        made.add(key)
        for repeat in range(repeats):
            axes = {"mode": board["mode"], "continuity": board["continuity"], "repeat": repeat}
            boards.append({**board, "id": f"sb-{secrets.token_hex(4)}", "axes": axes})
    specs = tuple(JobSpec(shot["prompt"], board["model"], board["size"], shot["seconds"])
                  for board in boards for shot in board["shots"])
    return boards, SweepPlan(specs, tuple(invalid), BOARD_AXES)


class StoryboardRun(Run):
    """A sweep of storyboards being made: one run, one ledger, a :class:`~sora_nb.Storyboard` per board.

    ``boards`` are live (``progress``, ``status``, ``video_path``, ``shots``, ``redo(k)``); ``progress``
    is over all of them. ``to_dataframe()`` has a row per shot and one per joined video; ``compare()``,
    ``gallery()``, ``review()``, ``arena(by=...)`` and ``leaderboard(by=...)`` show and judge the joined
    videos, one per board. ``wait()`` returns when every board is made or has failed (see ``boards``).

    >>> import sora_nb
    >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
    >>> sweep = client.sweep(storyboard=["a fox wakes", "the fox runs"], model=["sora-2", "sora-2-pro"])
    >>> print(sweep.estimate())
    4 jobs, 16 s of video, est. $3.20
    >>> run = sweep.start(budget_usd=5.0).wait(timeout=300)
    >>> [(board.plan["model"], board.status) for board in run.boards]
    [('sora-2', 'completed'), ('sora-2-pro', 'completed')]
    >>> df = run.to_dataframe()
    >>> joined = df[df["kind"] == "stitch"]  # a row per board's joined video, after its shots' rows
    >>> sorted(zip(joined["model"], joined["seconds"], joined["shot"].isna()))
    [('sora-2', '8', True), ('sora-2-pro', '8', True)]
    >>> client.close()
    """

    def __init__(self, runner: Runner, run_dir: Path, *, axes: tuple[str, ...], meta: dict[str, Any],
                 max_concurrency: int | None = None) -> None:
        super().__init__(runner, run_dir, axes=axes, meta=meta, max_concurrency=max_concurrency)
        shared = {key: value for key, value in meta.items() if key != "storyboards"}
        self.boards: list[Storyboard] = [
            Storyboard(runner, run_dir, axes=axes, meta={**shared, "storyboard": plan}, home=self)
            for plan in meta["storyboards"]
        ]
        """The boards, in the sweep's order (model, size, mode, continuity, repeat)."""

    def _start(self) -> None:
        """Start (or carry on) making every board; loop thread."""
        for board in self.boards:
            board._start()

    @property
    def progress(self) -> int:
        """0-100 over all boards, each weighted by its length."""
        weights = [sum(float(shot["seconds"]) for shot in board.plan["shots"]) for board in self.boards]
        total = sum(weights)
        made = sum(weight * board.progress for weight, board in zip(weights, self.boards, strict=True))
        return int(made / total) if total else 100

    @property
    def done(self) -> bool:
        return all(board.done for board in self.boards) and super().done

    def board_counts(self) -> dict[str, int]:
        """How many boards are in each status (``running``, ``completed``, ``failed``)."""
        counts: dict[str, int] = {}
        for board in self.boards:
            counts[board.status] = counts.get(board.status, 0) + 1
        return counts

    def retry_failed(self) -> list[Job]:
        """Make each failed shot again as ``job.retry()`` does (a new take, its board joined again)."""
        return [job for board in self.boards for job in board.retry_failed()]

    def _board_of(self, job: Job) -> Storyboard:
        return next(board for board in self.boards if board.storyboard_id == job.spec.axes.get("storyboard_id"))

    def _retry(self, job: Job) -> Job:
        return self._board_of(job)._retry(job)

    def _retry_refusal_of(self, job: Job) -> str | None:
        return self._board_of(job)._retry_refusal_of(job)

    def _videos(self) -> list[Job]:
        # A board without its joined video (being made, or failed) is shown as such, with why: not left out.
        return [board.stitched or board._standing_in() for board in self.boards]

    # ------------------------------------------------------------------ waiting
    def wait(self, timeout: float | None = DEFAULT_RUN_TIMEOUT) -> StoryboardRun:
        """Block until every board is made or has failed (a failed board does not raise: see ``boards``).

        Raises :class:`JobTimeoutError` after ``timeout`` seconds (the boards go on: wait again, or cancel).
        """
        check_timeout(timeout)
        try:
            self._runner.runtime.run(self._made(), timeout=timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise self._late(timeout) from None
        self._outcome()
        return self

    async def wait_async(self, timeout: float | None = DEFAULT_RUN_TIMEOUT) -> StoryboardRun:
        """The awaitable twin of :meth:`wait` (``await run`` uses the default deadline)."""
        check_timeout(timeout)
        try:
            await asyncio.wait_for(self._made(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise self._late(timeout) from None
        self._outcome()
        return self

    def __await__(self) -> Generator[Any, None, StoryboardRun]:
        return self.wait_async().__await__()

    async def _made(self) -> None:
        # A redo gives its board a new future: look again until none is left unfinished.
        while pending := [asyncio.wrap_future(board._board) for board in self.boards if not board._board.done()]:
            made, _ = await asyncio.wait(pending)
            for future in made:
                future.exception()  # a failed board is seen on it (run.boards), not raised, as a run's failed jobs
        await self._gather()

    def _late(self, timeout: float | None) -> JobTimeoutError:
        made = self.board_counts().get("completed", 0)
        return JobTimeoutError(
            f"run {self.id}: {made} of {len(self.boards)} storyboards made after {timeout} s. They go on: wait "
            "again, `await run`, or run.cancel().", job=None)

    def cancel(self) -> None:
        """Stop making every board: unfinished shots are cancelled (``sora_nb.resume`` carries them on)."""
        for board in self.boards:
            board.cancel()

    # ------------------------------------------------------------------ display
    def _repr_html_(self) -> str:
        from ._display import storyboard_run_html

        return storyboard_run_html(self)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.board_counts().items()))
        return (f"<StoryboardRun {self.id} {len(self.boards)} storyboards: {counts} {self.progress}% "
                f"at {str(self.run_dir)!r}>")

