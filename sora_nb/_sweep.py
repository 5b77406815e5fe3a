"""``client.sweep(...)``: the :class:`Sweep` users hold, a planned sweep before and at its launch.

The planning is pure and lives beside it: expansion in :mod:`sora_nb._grid`, cost and budget in
:mod:`sora_nb._cost`, sweep files in :mod:`sora_nb._sweepfile`. ``start()`` hands the jobs to a new run.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from ._cost import Estimate, check_budget
from ._cost import estimate as estimate_plan
from ._grid import SweepPlan, check_axis_names, expand
from ._run import Run
from ._types import Character, JobSpec
from ._validation import check_max_concurrency

if TYPE_CHECKING:
    from ._client import Client
    from ._storyboards import StoryboardRun

__all__ = ["Sweep"]

RunT = TypeVar("RunT", bound=Run, covariant=True)


class Sweep(Generic[RunT]):
    """A planned parameter sweep: the jobs, the combinations refused, and the estimate, before launch.

    ``start()`` returns a :class:`~sora_nb.Run`, or for a sweep of storyboards (``storyboard=``) a run with
    ``boards``: ``client.sweep(...)`` is typed ``Sweep[Run]`` or ``Sweep[StoryboardRun]`` by that argument.
    """

    boards: list[dict[str, Any]] | None = None
    """A sweep of storyboards (``storyboard=``): each board's plan (``None`` for a sweep of videos)."""

    def __init__(self, client: Client, **axes: Any) -> None:
        self.client = client
        self.options = axes
        self.plan: SweepPlan
        if "storyboard" in axes:
            from ._storyboards import plan_boards

            self.boards, self.plan = plan_boards(client.profile, **axes)
            return
        for name in ("mode", "continuity"):
            if name in axes:
                raise TypeError(f"{name!r} is an argument of a sweep of storyboards, and this sweep has no "
                                "storyboard. Fix: add storyboard=[...] with the shots (in a sweep file, storyboard:), "
                                f"or drop {name}.")
        check_axis_names(axes)
        # The same sweep runs on every profile: what a sweep does not name (model, size, seconds) is the
        # profile's default, and combinations are checked against what the profile says its server accepts.
        if "characters" in axes:
            axes = {**axes, "characters": self._casts(axes["characters"])}
        self.plan = expand(capabilities=client.profile.capabilities, **axes)

    def _casts(self, characters: Any) -> list[tuple[tuple[str, str], ...]]:
        """The ``characters`` axis as casts of ``(id, name)``: each value is ``None`` (no character), a
        :class:`sora_nb.Character` (or its id), or a list of up to two."""
        if isinstance(characters, (str, Character)) or characters is None:
            characters = [characters]
        if not isinstance(characters, (list, tuple)):
            raise TypeError(
                f"characters must be a list, got {type(characters).__name__}. Fix: e.g. characters=[None, ada]."
            )
        casts: list[tuple[tuple[str, str], ...]] = []
        for value in characters:
            if value is None or (isinstance(value, (list, tuple)) and not value):
                casts.append(())
                continue
            chosen = value if isinstance(value, (list, tuple)) else [value]
            casts.append(tuple(self.client._character_pairs(chosen)))
        return casts

    @property
    def jobs(self) -> tuple[JobSpec, ...]:
        return self.plan.jobs

    def __len__(self) -> int:
        return len(self.plan.jobs)

    def estimate(self) -> Estimate:
        """Job count, generated seconds, cost (``None`` where a price is unknown) and invalid combinations.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> sweep = client.sweep(prompt="a corgi surfing", model=["sora-2", "sora-2-pro"], seconds=["4", "8"])
        >>> estimate = sweep.estimate()
        >>> print(estimate)
        4 jobs, 24 s of video, est. $4.80
        >>> estimate.by_model["sora-2-pro"]
        {'jobs': 2, 'seconds': 12.0, 'cost_usd': 3.6}
        >>> client.close()
        """
        return estimate_plan(self.plan, capabilities=self.client.profile.capabilities)

    def start(
        self,
        *,
        max_concurrency: int | None = None,
        budget_usd: float | None = None,
        run_dir: str | os.PathLike[str] | None = None,
    ) -> RunT:
        """Launch every valid job in a new run and return it at once.

        Refuses (:class:`sora_nb.BudgetExceededError`) when the estimate is over ``budget_usd``, and
        (``FileExistsError``) a ``run_dir`` that already holds a run.

        >>> import sora_nb
        >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
        >>> sweep = client.sweep(prompt=["a corgi surfing", "a cat skiing"])
        >>> run = sweep.start(max_concurrency=2, budget_usd=5.00)
        >>> run.wait(timeout=60).counts()
        {'completed': 2}
        >>> try:
        ...     sweep.start(budget_usd=0.50)  # refused: nothing is sent
        ... except sora_nb.BudgetExceededError as exc:
        ...     print(str(exc).split(". ")[0])
        Estimated cost $0.80 is over the budget of $0.50 (2 jobs, 8 s of video)
        >>> client.close()
        """
        check_max_concurrency(max_concurrency)
        if not self.plan.jobs:
            raise ValueError(
                "this sweep has no valid jobs (see sweep.estimate().invalid_combos). Fix: change the axes."
            )
        check_budget(self.estimate(), budget_usd)
        # The run's type is chosen by storyboard= when the sweep is made (client.sweep's overloads say so).
        if self.boards is not None:
            return cast(RunT, self._start_boards(max_concurrency=max_concurrency, budget_usd=budget_usd,
                                                 run_dir=run_dir))
        run = self.client._new_run(
            axes=self.plan.axes,
            run_dir=run_dir,
            extra_meta={"sweep": _jsonable(self.options), "budget_usd": budget_usd},
            max_concurrency=max_concurrency,
        )
        run.submit(list(self.plan.jobs))
        return cast(RunT, run)

    def _start_boards(self, *, max_concurrency: int | None, budget_usd: float | None,
                      run_dir: str | os.PathLike[str] | None) -> StoryboardRun:
        """A sweep of storyboards: one run holding every board, each made by its own task."""
        from ._storyboards import StoryboardRun

        assert self.boards is not None
        # Fresh ids: starting the same sweep twice makes two runs whose boards are not the same boards.
        boards = [{**board, "id": f"sb-{secrets.token_hex(4)}"} for board in self.boards]
        run = self.client._new_run(
            axes=self.plan.axes, kind="storyboards", run_dir=run_dir, max_concurrency=max_concurrency,
            extra_meta={"sweep": _jsonable(self.options), "budget_usd": budget_usd, "storyboards": boards},
        )
        assert isinstance(run, StoryboardRun)
        self.client._runtime.call(run._start)
        return run

    def __repr__(self) -> str:
        if self.boards is not None:
            return f"<Sweep of {len(self.boards)} storyboards: {self.estimate()}>"
        return f"<Sweep {self.estimate()}>"

    def _repr_html_(self) -> str:
        return self.estimate()._repr_html_()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, range)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
