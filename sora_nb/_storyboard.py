"""Storyboards: a sequence of shots, each with its own prompt and length, made into one video.

No official API has storyboards, so they are built on what the services offer (issue 12):

* ``mode="stitch"``: each shot is a video of its own. With ``continuity`` (where the profile takes an
  image), the last frame of shot k, fitted to the size, is the ``input_reference`` of shot k+1, so the
  shots are made one after another; without it they are made in parallel. The shots are then joined
  into one MP4 (:mod:`sora_nb._stitch`), which gets a row of its own in the ledger (``kind="stitch"``).
* ``mode="extend"``: shot 1 is generated and each next shot extends the video before it
  (``POST /videos/extensions``); the last shot's video is the whole board. The contract's limits on
  extensions are checked before anything is sent.

A storyboard is a :class:`~sora_nb.Run`: its shots are jobs of the run (``storyboard_id`` and ``shot``
columns of the DataFrame), and its plan is in the ledger's meta, so ``sora_nb.resume`` carries it on
where it stopped: a finished shot is never made (or paid for) again. ``board.redo(k)`` re-makes shot k
(and, with continuity, the shots after it) as a new *take*; the old takes stay in the run's history.

The board's own work (which shot to make next, the reference images, the stitch) is one task on the
client's loop; the shots are driven by the runner like any job.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import secrets
import time
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import _catalog
from ._cost import Estimate, estimate
from ._errors import JobFailedError, JobTimeoutError, SoraError, ValidationError, storage_error
from ._grid import SweepPlan
from ._jobs import Job
from ._redact import logger
from ._run import Run
from ._types import JobSpec
from ._validation import check_create, check_timeout

if TYPE_CHECKING:
    from ._ledger import Ledger
    from ._profiles import Profile
    from ._runner import Runner

__all__ = ["MODES", "Storyboard", "plan_storyboard", "storyboard_estimate"]

Mode = Literal["stitch", "extend"]
MODES: tuple[Mode, ...] = ("stitch", "extend")
DEFAULT_BOARD_TIMEOUT = 6 * 3600.0
AXES = ("prompt", "model", "size", "seconds")


def _shot_fields(profile: Profile, shot: object, index: int, *, model: str, size: str) -> dict[str, Any]:
    """One shot (``{"prompt", "seconds"}`` or a prompt alone), checked against the server's rules."""
    if isinstance(shot, str):
        shot = {"prompt": shot}
    if not isinstance(shot, Mapping):
        raise TypeError(f"shot {index} must be a dict like {{'prompt': '...', 'seconds': '4'}} or a prompt, "
                        f"got {type(shot).__name__}. Fix: pass a list of such dicts.")
    unknown = set(shot) - {"prompt", "seconds"}
    if unknown:
        raise ValueError(f"shot {index} has unknown keys {sorted(unknown)}. Allowed: 'prompt', 'seconds'. "
                         "Fix: remove them (model and size are the storyboard's).")
    try:
        caps = profile.capabilities
        params = check_create(prompt=shot.get("prompt"), model=model, size=size,
                              seconds=shot.get("seconds") or caps.default_seconds_for(model, size), capabilities=caps)
    except ValidationError as exc:
        raise ValidationError(f"shot {index}: {exc}", field=exc.field, allowed=exc.allowed) from None
    return {"prompt": params["prompt"], "seconds": params["seconds"]}


def plan_storyboard(
    profile: Profile, shots: Sequence[object], *, model: str, size: str, mode: str, continuity: bool,
) -> dict[str, Any]:
    """Check a storyboard before anything is sent; return its plan (what the ledger's meta keeps).

    >>> from sora_nb._profiles import PROFILES
    >>> plan = plan_storyboard(PROFILES["simulator"], ["a fox", {"prompt": "a hen", "seconds": 8}],
    ...                        model="sora-2", size="1280x720", mode="stitch", continuity=True)
    >>> [(s["prompt"], s["seconds"]) for s in plan["shots"]], plan["continuity"]
    ([('a fox', '4'), ('a hen', '8')], True)
    >>> plan_storyboard(PROFILES["simulator"], [{"prompt": "a fox", "seconds": 12}] * 12, model="sora-2",
    ...                 size="1280x720", mode="extend", continuity=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sora_nb.ValidationError: mode='extend' makes 11 extensions of shot 1; a video takes at most 6...
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not a storyboard mode. Allowed: 'stitch', 'extend'. "
                         "Fix: mode='stitch' (shots joined here) or mode='extend' (each shot extends the last).")
    if isinstance(shots, (str, bytes)) or not isinstance(shots, Sequence) or not shots:
        raise ValueError("shots must be a non-empty list of {'prompt': ..., 'seconds': ...} dicts. "
                         "Fix: e.g. [{'prompt': 'a fox wakes', 'seconds': '4'}, "
                         "{'prompt': 'it runs', 'seconds': '4'}].")
    checked = [_shot_fields(profile, shot, i, model=model, size=size) for i, shot in enumerate(shots, 1)]
    if mode == "extend":
        _check_extend(profile, checked)
    # Continuity needs the next shot to start from an image; where the board's model takes none (on a pool:
    # whatever the other backends' models take), its shots are made apart.
    spec = profile.capabilities.spec(model)
    takes_image = profile.capabilities.supports_input_reference if spec is None else spec.image_input is not False
    continuous = mode == "extend" or (bool(continuity) and takes_image)
    return {
        "id": f"sb-{secrets.token_hex(4)}", "mode": mode, "continuity": continuous, "model": model, "size": size,
        "version": 1, "shots": [{**shot, "take": 1} for shot in checked],
    }


def _check_extend(profile: Profile, shots: list[dict[str, Any]]) -> None:
    """The contract's limits on a chain of extensions (CONTRACT.md §1), before anything is sent."""
    if not profile.capabilities.supports_extend:
        raise ValidationError(f"the {profile.name!r} server cannot extend videos, so mode='extend' cannot work. "
                              "Fix: mode='stitch'.", field="mode", allowed=("stitch",))
    limit = profile.capabilities.max_extensions
    if limit is None:
        return  # other services have limits of their own
    extensions = len(shots) - 1
    if extensions > limit:
        raise ValidationError(
            f"mode='extend' makes {extensions} extensions of shot 1; a video takes at most "
            f"{limit}. Fix: at most {limit + 1} shots, or mode='stitch'.",
            field="shots")
    for index, shot in enumerate(shots[1:], 2):
        if float(shot["seconds"]) > _catalog.MAX_EXTENSION_SECONDS:
            raise ValidationError(
                f"shot {index} extends by {shot['seconds']} s; an extension adds at most "
                f"{_catalog.MAX_EXTENSION_SECONDS} s. Fix: shorten it, or mode='stitch'.", field="seconds")
    total = sum(float(shot["seconds"]) for shot in shots)
    if total > _catalog.MAX_TOTAL_SECONDS:
        raise ValidationError(
            f"the extended video would be {total:g} s long; at most {_catalog.MAX_TOTAL_SECONDS} s. "
            "Fix: fewer or shorter shots, or mode='stitch'.", field="shots")


def storyboard_estimate(profile: Profile, plan: Mapping[str, Any], shots: Sequence[int] | None = None) -> Estimate:
    """What making ``shots`` (1-based; default all) of a plan costs, as a sweep's :class:`Estimate`."""
    numbers = shots if shots is not None else range(1, len(plan["shots"]) + 1)
    specs = tuple(JobSpec(plan["shots"][k - 1]["prompt"], plan["model"], plan["size"], plan["shots"][k - 1]["seconds"])
                  for k in numbers)
    return estimate(SweepPlan(specs, (), AXES), capabilities=profile.capabilities)


def _joined_spec(plan: Mapping[str, Any]) -> JobSpec:
    """The request a board's joined video stands for: its shots' prompts and lengths, on its model and size."""
    total = sum(float(s["seconds"]) for s in plan["shots"])
    prompts = " | ".join(s["prompt"] for s in plan["shots"])
    return JobSpec(prompts, plan["model"], plan["size"], f"{total:g}", kind="stitch",
                   axes={"prompt": prompts, "model": plan["model"], "size": plan["size"], "seconds": f"{total:g}",
                         **plan.get("axes", {}), "storyboard_id": plan["id"], "shot": None, "version": plan["version"]})


class Storyboard(Run):
    """A multi-shot video being made: live, awaitable, resumable. Make one with ``client.storyboard(...)``.

    ``shots`` are the current take of each shot (:class:`~sora_nb.Job`, ``None`` before it is sent),
    ``video_path`` the whole board once made, ``progress`` 0-100 over all shots. It is a run:
    ``to_dataframe()`` has a row per take of each shot and one per stitched file.

    >>> import sora_nb
    >>> client = sora_nb.connect("simulator", time_scale=0.002, run_root=getfixture("tmp_path"))
    >>> board = client.storyboard([{"prompt": "a fox wakes", "seconds": "4"}, {"prompt": "the fox runs"}],
    ...                           model="sora-2", size="1280x720")
    >>> board.wait(timeout=120).video_path.name, [shot.status for shot in board.shots]
    ('storyboard-v1.mp4', ['completed', 'completed'])
    >>> client.close()
    """

    def __init__(self, runner: Runner, run_dir: Path, *, axes: tuple[str, ...], meta: dict[str, Any],
                 max_concurrency: int | None = None, home: Run | None = None) -> None:
        # The run whose ledger and jobs hold this board: itself, or a sweep of boards (sora_nb._storyboards).
        self._home: Run = home if home is not None else self
        super().__init__(runner, run_dir, axes=axes, meta=meta, max_concurrency=max_concurrency)
        self._board: concurrent.futures.Future[Storyboard] = concurrent.futures.Future()
        self._board.set_running_or_notify_cancel()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ what it is
    @property
    def jobs(self) -> list[Job]:
        """The board's jobs: every take of each shot, and the joined files (of a sweep's run: this board's)."""
        if self._home is self:
            return self._jobs
        return [job for job in self._home.jobs if job.spec.axes.get("storyboard_id") == self.storyboard_id]

    @jobs.setter
    def jobs(self, jobs: list[Job]) -> None:
        self._jobs = jobs

    def submit(self, specs: list[JobSpec]) -> list[Job]:
        return self._home.submit(specs) if self._home is not self else super().submit(specs)

    def _ledger(self) -> Ledger | None:
        return self._runner.ledger_of(self._home)

    def _save_plan(self, plan: dict[str, Any]) -> None:
        """Write the board's new plan to its run's ledger (first), then keep it. Loop thread."""
        if self._home is self:
            self._runner.open_ledger(self).set_meta(storyboard=plan)
        else:
            plans = [plan if p["id"] == plan["id"] else p for p in self._home.meta["storyboards"]]
            self._runner.open_ledger(self._home).set_meta(storyboards=plans)
            self._home.meta["storyboards"] = plans
        self.meta["storyboard"] = plan

    @property
    def plan(self) -> dict[str, Any]:
        """The storyboard as planned (mode, continuity, model, size, shots with their takes)."""
        plan: dict[str, Any] = self.meta["storyboard"]
        return plan

    storyboard_id = property(lambda self: str(self.plan["id"]), doc="The board's id (the ``storyboard_id`` column).")
    mode = property(lambda self: self.plan["mode"], doc="``stitch`` or ``extend``.")
    continuity = property(lambda self: bool(self.plan["continuity"]), doc="Each shot starts from the last one's end.")

    @property
    def shots(self) -> list[Job | None]:
        """The current take of each shot, in order (``None``: not sent yet)."""
        return [self._current(k) for k in range(1, len(self.plan["shots"]) + 1)]

    @property
    def stitched(self) -> Job | None:
        """The row of the whole board's file: the stitched MP4, or in extend mode the last shot."""
        if self.mode == "extend":
            return self._current(len(self.plan["shots"]))
        made = [j for j in self.jobs if j.spec.kind == "stitch" and j.spec.axes.get("version") == self.plan["version"]
                and j.spec.axes.get("storyboard_id") == self.storyboard_id]
        return made[-1] if made else None

    @property
    def video_path(self) -> Path | None:
        """The whole board's MP4, once made."""
        job = self.stitched
        return job.video_path if job is not None and self._board.done() else None

    @property
    def thumbnail_path(self) -> Path | None:
        job = self.stitched
        return job.thumbnail_path if job is not None else None

    @property
    def progress(self) -> int:
        """0-100 over all shots, weighted by their length (the stitch itself takes no time worth showing)."""
        total = done = 0.0
        for shot, job in zip(self.plan["shots"], self.shots, strict=True):
            seconds = float(shot["seconds"])
            total += seconds
            if job is not None:
                done += seconds * (100 if job.status == "completed" else (job.progress or 0)) / 100
        return 100 if self._board.done() and self.video_path else min(99, int(100 * done / total)) if total else 0

    @property
    def status(self) -> str:
        """``running``, ``completed`` or ``failed`` (a shot failed, or the stitch did: ``board.error`` says)."""
        if not self._board.done():
            return "running"
        return "failed" if self._board.exception() is not None else "completed"

    @property
    def error(self) -> BaseException | None:
        return self._board.exception() if self._board.done() else None

    @property
    def done(self) -> bool:
        return self._board.done() and all(job.done for job in self.jobs)

    def estimate(self, shots: Sequence[int] | None = None) -> Estimate:
        """What the shots (1-based; default all) cost to make, before or after."""
        return storyboard_estimate(self.profile, self.plan, shots)

    # ------------------------------------------------------------------ waiting
    def wait(self, timeout: float | None = DEFAULT_BOARD_TIMEOUT) -> Storyboard:
        """Block until the board is made; return it, or raise :class:`JobFailedError` naming the shot."""
        check_timeout(timeout)
        try:
            self._block(self._board, self._await, timeout)
        except (TimeoutError, concurrent.futures.TimeoutError):
            raise self._late(timeout) from None
        return self

    async def wait_async(self, timeout: float | None = DEFAULT_BOARD_TIMEOUT) -> Storyboard:
        """The awaitable twin of :meth:`wait` (``await board`` uses the default deadline)."""
        check_timeout(timeout)
        try:
            await asyncio.wait_for(self._await(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise self._late(timeout) from None
        return self

    def __await__(self) -> Generator[Any, None, Storyboard]:
        return self.wait_async().__await__()

    async def _await(self) -> Storyboard:
        await asyncio.shield(asyncio.wrap_future(self._board))
        return self

    def _late(self, timeout: float | None) -> JobTimeoutError:
        made = sum(job is not None and job.status == "completed" for job in self.shots)
        return JobTimeoutError(
            f"storyboard {self.storyboard_id}: {made} of {len(self.plan['shots'])} shots made after {timeout} s. "
            "It goes on in the background: wait again, `await board`, or board.cancel().", job=None)

    # ------------------------------------------------------------------ acting
    def cancel(self) -> None:
        """Stop making the board: its unfinished shots are cancelled (resumable, like any run). Returns once
        the loop has cancelled them (see ``Run.cancel``)."""
        self._runner.runtime.call_and_wait(self._cancel_all)

    def _cancel_all(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for job in self.jobs:
            if not job.done:
                self._runner.cancel(job)

    def redo(self, shot: int, *, prompt: str | None = None, seconds: str | int | None = None,
             confirm: bool = False) -> Storyboard:
        """Make shot ``shot`` (1-based) again, with a new prompt or length if given, and the board again.

        With continuity (and in extend mode) the shots after it start from its end, so they are made
        again too: that pays for more than one shot, so it is refused with the shots and the cost named
        until ``confirm=True``. Finished shots before it are kept. Returns the board (wait for it again).
        """
        shots = self.plan["shots"]
        if isinstance(shot, bool) or not isinstance(shot, int) or not 1 <= shot <= len(shots):
            raise ValueError(f"shot={shot!r} is not a shot of this storyboard. Allowed: 1 to {len(shots)}.")
        changed = {"prompt": shots[shot - 1]["prompt"] if prompt is None else prompt,
                   "seconds": shots[shot - 1]["seconds"] if seconds is None else seconds}
        fields = _shot_fields(self.profile, changed, shot, model=self.plan["model"], size=self.plan["size"])
        again = list(range(shot, len(shots) + 1)) if self.continuity else [shot]
        new_plan = {**self.plan, "shots": [dict(s) for s in shots]}
        new_plan["shots"][shot - 1].update(fields)
        if self.mode == "extend":
            _check_extend(self.profile, new_plan["shots"])
        cost = storyboard_estimate(self.profile, new_plan, again)
        if len(again) > 1 and not confirm:
            raise ValueError(
                f"storyboard {self.storyboard_id} is continuous: shots {again[1]}-{again[-1]} start from the end "
                f"of shot {shot}, so redoing it makes shots {shot}-{again[-1]} again ({cost}). "
                f"Fix: board.redo({shot}, ..., confirm=True) to go ahead.")
        for k in again:
            new_plan["shots"][k - 1]["take"] += 1
        new_plan["version"] += 1
        logger.info("storyboard %s: making shots %s again (%s)", self.storyboard_id, again, cost)
        self._runner.runtime.call_and_wait(self._replan, new_plan)
        return self

    def _replan(self, plan: dict[str, Any]) -> None:
        """Loop thread: write the new plan (ledger first), stop the old takes, and make the board again."""
        stale = [job for job in self.jobs if not job.done and job.spec.axes.get("storyboard_id") == plan["id"]]
        # Ledger first: a plan it refuses (a full disk, a key-shaped prompt) leaves the board going as it was.
        self._save_plan(plan)
        if self._task is not None:
            self._task.cancel()  # it ends at its next await; the new plan's work starts below at once
            self._task = None
        for job in stale:
            k = int(job.spec.axes.get("shot") or 0)
            if self._current(k) is not job:  # a take nobody wants any more: stop paying for it
                self._runner.cancel(job, code="replaced",
                                    reason=f"replaced by take {plan['shots'][k - 1]['take']} of shot {k} (board.redo)")
        if self._board.done():
            self._board = concurrent.futures.Future()
            self._board.set_running_or_notify_cancel()
        self._start()

    # ------------------------------------------------------------------ job.retry() of a shot
    def retry_failed(self) -> list[Job]:
        """Make each failed shot again as ``job.retry()`` does (a new take, the board joined again)."""
        return [self._retry(job) for job in self.failed if job._retry_refusal() is None]

    def _retry(self, job: Job) -> Job:
        """``job.retry()`` of a shot is ``board.redo(k)``: its new take, once the board's task has sent it."""
        k = int(job.spec.axes["shot"])
        self.redo(k, confirm=True)  # _retry_refusal_of has refused it where that would re-make shots already made
        return self._runner.runtime.run(self._take(k), timeout=120.0)

    async def _take(self, k: int) -> Job:
        changed = asyncio.Event()
        stop = self._home.observe(lambda _job: changed.set())
        try:
            # The task sends it after the takes before it (and, with continuity, the reference image): a few
            # steps of the loop, a thread's hop.
            while (job := self._current(k)) is None:
                if self._board.done():
                    raise self._board.exception() or RuntimeError(f"storyboard {self.storyboard_id} ended unmade")
                changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), 0.05)
        finally:
            stop()
        return job

    def _retry_refusal_of(self, job: Job) -> str | None:
        k, shots = job.spec.axes.get("shot"), self.plan["shots"]
        if job.spec.kind == "stitch" or not isinstance(k, int):
            return (f"job {job.id} is the joined file of storyboard {self.storyboard_id}, made here from its shots: "
                    "there is no request to send again. Fix: board.redo(k) makes shot k again and joins the board.")
        if self._current(k) is not job:
            return (f"job {job.id} is an old take of shot {k} of storyboard {self.storyboard_id}, which now uses take "
                    f"{shots[k - 1]['take']}. Fix: board.redo({k}) makes shot {k} again.")
        after = [n for n in range(k + 1, len(shots) + 1) if self._current(n) is not None]
        if self.continuity and after:
            again = list(range(k, len(shots) + 1))
            return (f"shot {after[0]} starts from the end of shot {k} in storyboard {self.storyboard_id}, so a new "
                    f"take of shot {k} makes shots {k}-{again[-1]} again ({self.estimate(again)}). Fix: "
                    f"board.redo({k}, confirm=True) to go ahead.")
        return None

    # ------------------------------------------------------------------ the board's own work (loop thread)
    def _start(self) -> None:
        """Start (or carry on) making the board; loop thread."""
        if self._task is not None and not self._task.done():
            return
        plan = self.plan
        self._task = self._runner.spawn(self._drive())
        # A task cancelled before its first step never runs its body: its end is seen here, not inside it.
        self._task.add_done_callback(lambda task: self._stopped(plan) if task.cancelled() else None)

    def _stopped(self, plan: dict[str, Any]) -> None:
        """The board's work was cancelled (cancel, or its client closed), not replanned: it ends, resumably."""
        if self.plan is plan and not self._board.done():
            self._board.set_exception(JobFailedError(
                f"storyboard {self.storyboard_id} was stopped before it was made. Fix: "
                f"sora_nb.resume({str(self.run_dir)!r}) carries it on; finished shots are kept.", job=None))
            self._changed()

    def _current(self, k: int) -> Job | None:
        take = self.plan["shots"][k - 1]["take"]
        found = None
        for job in self.jobs:
            axes = job.spec.axes
            if (job.spec.kind != "stitch" and axes.get("storyboard_id") == self.storyboard_id
                    and axes.get("shot") == k and axes.get("take") == take):
                found = job
        return found

    async def _drive(self) -> None:
        plan = self.plan
        try:
            numbers = range(1, len(plan["shots"]) + 1)
            if plan["continuity"]:
                for k in numbers:
                    await self._shot(k)
            else:
                ended = await asyncio.gather(*(self._shot(k) for k in numbers), return_exceptions=True)
                failed = [e for e in ended if isinstance(e, BaseException)]
                if failed:
                    raise failed[0]
            if plan["mode"] == "stitch" and not self._joined():
                await self._join(plan)
        except Exception as exc:
            if isinstance(exc, OSError) and not isinstance(exc, SoraError):
                # The board's own files (a reference image, the stitch): its shots are kept, a resume goes on.
                exc = storage_error(exc, doing=f"write the files of storyboard {plan['id']}", run_dir=self.run_dir)
            if self.plan is plan and not self._board.done():
                self._board.set_exception(exc)
                self._changed()
            return
        if self.plan is plan and not self._board.done():
            self._board.set_result(self)
            self._changed()

    def _changed(self) -> None:
        """Tell the run's observers (widgets) that the board itself changed."""
        last = self.stitched or next((job for job in reversed(self.shots) if job is not None), None)
        if last is not None:
            self._home._job_changed(last)

    async def _shot(self, k: int) -> Job:
        """Shot ``k``'s current take, made if it is not yet (sent once: a resumed take is waited for)."""
        job = self._current(k)
        if job is None:
            job = self.submit([await self._spec(k)])[0]
        try:
            return await job._await()
        except JobFailedError as exc:
            raise JobFailedError(
                f"storyboard {self.storyboard_id}: shot {k} failed: {exc} Fix: board.redo({k}, prompt=...) "
                "makes it again.", job=job) from None

    async def _spec(self, k: int) -> JobSpec:
        plan = self.plan
        shot = plan["shots"][k - 1]
        axes = {"prompt": shot["prompt"], "model": plan["model"], "size": plan["size"], "seconds": shot["seconds"],
                **plan.get("axes", {}), "storyboard_id": plan["id"], "shot": k, "take": shot["take"]}
        spec = JobSpec(shot["prompt"], plan["model"], plan["size"], shot["seconds"], axes=axes)
        previous = self._current(k - 1) if k > 1 else None
        if previous is None or not plan["continuity"]:
            return spec
        if plan["mode"] == "extend":
            # Its parent job named, as job.extend() names it: a pool sends it where that job's video is, even
            # when two backends gave out the same video id.
            return dataclasses.replace(spec, kind="extend", parent_id=previous.remote_id,
                                       axes={**axes, "parent": previous.id})
        from ._stitch import write_reference

        assert previous.video_path is not None
        reference = self.run_dir / "storyboard" / f"{plan['id']}-shot{k}-take{shot['take']}.png"
        await asyncio.to_thread(write_reference, previous.video_path, plan["size"], reference)
        return dataclasses.replace(spec, input_reference=os.fspath(reference))

    def _joined(self) -> bool:
        """The board's joined file is made (a joined row that failed is made again)."""
        row = self.stitched
        return row is not None and row.status == "completed"

    async def _join(self, plan: dict[str, Any]) -> None:
        """Join the shots; if that fails, the board's joined row says so in the ledger (``failed``, why, and
        the fix), so that the board has its reason after a restart too (DESIGN.md invariant 9)."""
        try:
            await self._stitch()
        except Exception as exc:
            failure: Exception = exc
            if isinstance(exc, OSError) and not isinstance(exc, SoraError):  # its fix: free space, then resume
                failure = storage_error(exc, doing=f"join the shots of storyboard {plan['id']}", run_dir=self.run_dir)
            elif not isinstance(exc, SoraError):  # PyAV could not read or write a shot
                failure = JobFailedError(
                    f"could not join the shots of storyboard {plan['id']}: {type(exc).__name__}: {exc}. Fix: "
                    f"sora_nb.resume({str(self.run_dir)!r}) joins them again (the shots are kept, nothing is paid "
                    "again); if it fails again, board.redo(k) makes shot k again.", job=None)
            self._join_failed(plan, str(failure))
            if failure is exc:
                raise
            raise failure from exc

    def _join_failed(self, plan: dict[str, Any], message: str) -> None:
        fields: dict[str, Any] = {"status": "failed", "error_code": "stitch_failed", "error_message": message,
                  "completed_at": time.time()}
        try:
            if self.stitched is not None:  # it failed before (in this process, or before a restart): that row
                self._runner._transition(self.stitched, **fields)
            else:
                self._runner.record_made(self._home, _joined_spec(plan), **fields)
        except Exception as not_written:  # the ledger is on the same full disk: the board's error still says why
            logger.warning("storyboard %s: its failed join could not be written to the ledger: %s",
                           plan["id"], not_written)

    async def _stitch(self) -> Job:
        from ._media import make_thumbnail, sha256_file
        from ._stitch import stitch

        plan = self.plan
        videos = [job.video_path for job in self.shots if job is not None]
        assert len(videos) == len(plan["shots"]) and all(videos)
        # A board of a sweep shares the run's folders with the others: its id tells its files apart.
        stem = "storyboard" if self._home is self else f"storyboard-{plan['id']}"
        video_rel = f"videos/{stem}-v{plan['version']}.mp4"
        thumb_rel = f"thumbnails/{stem}-v{plan['version']}.webp"
        await asyncio.to_thread(stitch, [v for v in videos if v], self.run_dir / video_rel)
        await asyncio.to_thread(make_thumbnail, self.run_dir / video_rel, self.run_dir / thumb_rel)
        checksum = await asyncio.to_thread(sha256_file, self.run_dir / video_rel)
        now = time.time()
        made: dict[str, Any] = {"video_path": video_rel, "thumbnail_path": thumb_rel, "checksum": checksum,
                                "completed_at": now, "downloaded_at": now}
        job = self.stitched
        if job is not None:  # its join failed before: that row is made now
            self._runner._transition(job, status="completed", error_code=None, error_message=None, **made)
        else:
            job = self._runner.record_made(self._home, _joined_spec(plan), submitted_at=now, **made)
        # Measured as a downloaded video is, before the board is made: leaderboards by a metric judge joined videos.
        await self._runner._measure(job)
        return job

    def _standing_in(self) -> Job:
        """The joined video not made (yet): a row with the board's status and, if it failed, why, for the grids
        and galleries of a sweep of boards, so that no board drops out of them unseen. Shown, never stored."""
        error = self.error
        code = None
        if error is not None:
            failed = getattr(error, "job", None)
            reason = failed.error if isinstance(failed, Job) else None
            code = (reason.code if reason is not None else None) or getattr(error, "code", None) or "storyboard_failed"
        from ._ledger import JobRecord

        record = JobRecord(job_id=f"{self.storyboard_id}-v{self.plan['version']}", seq=0, spec=_joined_spec(self.plan),
                           status="failed" if error is not None else "in_progress", progress=self.progress,
                           error_code=code, error_message=None if error is None else str(error))
        job = Job(self._runner, self._home, record)
        if error is not None:
            job._future.set_result(job)  # ended, without telling the run's observers (they asked for it)
        return job

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        takes = ", ".join("-" if job is None else job.status for job in self.shots)
        return f"<Storyboard {self.storyboard_id} {self.mode} {self.status} {self.progress}% shots=[{takes}]>"

    def _repr_html_(self) -> str:
        from ._display import storyboard_html

        return storyboard_html(self)
