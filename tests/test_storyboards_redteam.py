"""Red team on sweeps of storyboards (issue 12): boards that look alike, lost answers, full disks, bad files.

Each attack counts at the server (the simulator's audit: every accepted create with its model, prompt and
source video), never in the client, and checks files by their frames and durations.
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import FAST

import sora_nb
from sora_nb._storyboard import plan_storyboard
from sora_nb._storyboards import StoryboardRun
from sora_nb.simulator import SimulatorConfig, SimulatorTransport, read_audit

SHOTS = [
    {"prompt": "a red fox wakes in a meadow", "seconds": "4"},
    {"prompt": "the fox trots to a river", "seconds": "4"},
    {"prompt": "the fox rests under a tree", "seconds": "4"},
]
MODELS = ["sora-2-pro", "sora-2"]


class _MadeThen502(httpx.AsyncBaseTransport):
    """The simulator, where every create at ``path`` whose body holds ``prompt`` is made, then answered 502."""

    def __init__(self, *, path: str, prompt: str) -> None:
        self.inner = SimulatorTransport(SimulatorConfig(seed=9, time_scale=FAST, max_side=64, fps=4))
        self.path, self.prompt = path, prompt
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == self.path and self.prompt.encode() in body:
            await response.aread()
            self.lost += 1
            return httpx.Response(502, json={"error": {"message": "Bad gateway", "code": "bad_gateway"}})
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.slow
def test_lost_extensions_of_two_boards_on_two_models_are_each_adopted_by_their_own_board(tmp_path: Path) -> None:
    """The same board on two models, mode='extend': shot 2 of both boards is an extension with the same
    prompt, and both answers are lost after the server made them. Each board must adopt its own model's
    extension of its own shot 1 (not the other model's), so its video is its own chain, paid once."""
    transport = _MadeThen502(path="/v1/videos/extensions", prompt=SHOTS[1]["prompt"])
    with sora_nb.connect("simulator", run_root=tmp_path, transport=transport) as client:
        client.api.list_settle = 0.05
        run = client.sweep(storyboard=SHOTS, model=MODELS, mode="extend").start()
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)
    audit = transport.inner.audit()
    by_id = {entry["id"]: entry for entry in audit}
    assert transport.lost == 2
    assert collections.Counter((e["model"], e["prompt"]) for e in audit) == {
        (model, shot["prompt"]): 1 for model in MODELS for shot in SHOTS}  # nothing paid twice
    assert run.board_counts() == {"completed": 2}
    for board in run.boards:
        chain = [shot.remote_id for shot in board.shots if shot is not None]
        assert [by_id[rid]["model"] for rid in chain] == [board.plan["model"]] * 3, board.plan["model"]
        assert [by_id[rid]["source_video_id"] for rid in chain[1:]] == chain[:-1]  # each extends its own shot


def _connect(tmp_path: Path, **options: Any) -> sora_nb.Client:
    config = SimulatorConfig(seed=5, time_scale=FAST, max_side=64, fps=4, state_dir=str(tmp_path / "sim"))
    return sora_nb.connect("simulator", simulator=config, run_root=tmp_path / "runs", **options)


def _frames(path: Path) -> list[Any]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24").astype(float) for frame in container.decode(video=0)]


@pytest.mark.slow
def test_two_models_with_two_repeats_join_each_board_from_its_own_shots(tmp_path: Path) -> None:
    """Four boards with the same prompts (two models, repeats=2): each joined file holds its own board's shots,
    frame for frame (not a look-alike board's), at the sum of its shots' lengths."""
    from sora_nb._stitch import probe
    from sora_nb.simulator import read_audit

    with _connect(tmp_path) as client:
        run = client.sweep(storyboard=SHOTS[:2], model=MODELS, repeats=2).start(max_concurrency=8)
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)
        assert client.simulator_state_dir is not None
        paid = collections.Counter((e["model"], e["prompt"]) for e in read_audit(client.simulator_state_dir))
    assert run.board_counts() == {"completed": 4}
    assert paid == {(model, shot["prompt"]): 2 for model in MODELS for shot in SHOTS[:2]}
    assert len({board.video_path for board in run.boards}) == 4
    shots = {board.storyboard_id: [_frames(job.video_path) for job in board.shots if job and job.video_path]
             for board in run.boards}
    for board in run.boards:
        assert board.video_path is not None
        joined = _frames(board.video_path)
        info = probe(board.video_path)
        assert abs(info.duration - 8.0) <= 2 / float(info.fps)
        own = [frame for clip in shots[board.storyboard_id] for frame in clip]
        assert len(joined) == len(own)
        for other_id, clips in shots.items():
            theirs = [frame for clip in clips for frame in clip]
            distance = max(abs(a - b).mean() for a, b in zip(joined, theirs, strict=False))
            if other_id == board.storyboard_id:
                assert distance < 8, (board.plan["model"], distance)  # its own shots (re-encoding aside)
            else:
                assert distance > 8, (board.plan["model"], other_id, distance)  # not another board's


@pytest.mark.parametrize(("text", "expected"), [
    ('storyboard: "a fox wakes"', r"storyboard= must be a list of shots, got str.*Fix: e\.g\. storyboard="),
    ("storyboard: {prompt: a fox}", r"storyboard= must be a list of shots, got dict.*Fix"),
    ("storyboard: []", r"storyboard= is empty.*Fix"),
    ("storyboard: [a fox, it runs]\nprompt: [a hen]", r"no argument 'prompt'.*Allowed: storyboard.*Fix"),
    ("storyboard: [a fox, 5]", r"shot 2 must be a dict.*Fix"),
    ("storyboard: [a fox]\ncontinuity: maybe", r"continuity='maybe' is not True or False.*Fix"),
    ("prompt: [a fox]\nmode: extend", r"'mode' is an argument of a sweep of storyboards.*Fix: .*storyboard:"),
])
def test_a_malformed_storyboard_in_a_sweep_file_is_refused_by_the_cli_naming_the_field_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    """``sora-nb sweep`` of a bad file: one line naming the file's mistake and the fix, exit 2, nothing sent (a
    list-less storyboard was called "empty"; a mixed or mistyped file ended in a traceback)."""
    import re

    from sora_nb._cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "boards.yaml").write_text(text + "\n")
    assert main(["sweep", "boards.yaml", "--time-scale", "0.002", "--quiet", "--run-dir", "runs/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and re.search(expected, err, re.S), err
    assert not (tmp_path / "runs" / "x").exists()  # refused before a run was made: nothing sent


@pytest.mark.slow
def test_a_redo_on_a_sweep_another_client_took_over_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """Once the sweep is made, another client of the process may take it over (sora_nb.resume). A redo on the
    old run's board must then be refused before it writes its plan: else the ledger holds a take that no one
    makes, and the next resume pays for a redo that was refused."""
    from sora_nb._ledger import Ledger
    from sora_nb.simulator import read_audit

    with _connect(tmp_path) as client, _connect(tmp_path) as other:
        run = client.sweep(storyboard=SHOTS[:2], model=MODELS, continuity=False).start()
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)
        assert client.simulator_state_dir is not None
        paid = len(read_audit(client.simulator_state_dir))
        again = sora_nb.resume(run.run_dir, client=other)
        assert isinstance(again, StoryboardRun)
        again.wait(timeout=120)
        with pytest.raises(sora_nb.RunLockedError, match="taken over"):
            run.boards[0].redo(1, prompt="a blue fox wakes")
        with Ledger.open(run.run_dir, readonly=True) as ledger:
            plans = ledger.meta()["storyboards"]
        assert [shot["take"] for plan in plans for shot in plan["shots"]] == [1, 1, 1, 1]
        assert len(read_audit(client.simulator_state_dir)) == paid
        again.close()
    with _connect(tmp_path) as client:
        final = sora_nb.resume(run.run_dir, client=client)
        final.wait(timeout=120)
        assert len(read_audit(client.simulator_state_dir or "")) == paid  # nothing paid for the refused redo
        final.close()


class _RefusedFor(httpx.AsyncBaseTransport):
    """The simulator, refusing (400) the create of ``prompt`` at ``size``: one board fails, the others go on."""

    def __init__(self, *, size: str, prompt: str) -> None:
        self.inner = SimulatorTransport(SimulatorConfig(seed=9, time_scale=FAST, max_side=64, fps=4))
        self.size, self.prompt = size, prompt

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if (request.method == "POST" and request.url.path == "/v1/videos" and self.size.encode() in body
                and self.prompt.encode() in body):
            return httpx.Response(400, json={"error": {"message": "Your request was blocked by our moderation "
                                                       "system.", "type": "invalid_request_error",
                                                       "code": "moderation_blocked", "param": None}})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.slow
def test_views_of_a_sweep_with_a_failed_board_show_it_failed_with_its_reason(tmp_path: Path) -> None:
    """One board of three fails at shot 2: the DataFrame has the failed shot with its reason, the compare grid
    and the leaderboard still work on the boards made, and the arena pairs the two joined videos."""
    transport = _RefusedFor(size="1792x1024", prompt=SHOTS[1]["prompt"])
    with sora_nb.connect("simulator", run_root=tmp_path, transport=transport) as client:
        run = client.sweep(storyboard=SHOTS[:2], model=MODELS, size=["1280x720", "1792x1024"]).start()
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)
        assert run.board_counts() == {"completed": 2, "failed": 1}
        df = run.to_dataframe()
        failed = df[df["status"] != "completed"]
        assert len(failed) == 1 and failed["error_code"].tolist() == ["moderation_blocked"]
        assert failed["size"].tolist() == ["1792x1024"] and failed["shot"].tolist() == [2]
        board = run.leaderboard(by="model", using="sharpness")
        assert board["model"].tolist() == ["sora-2-pro", "sora-2"] and board["n"].tolist() == [1, 1]
        arena = run.arena(by="model", media="url")
        assert arena.pair is not None and {job.spec.kind for job in arena.pair} == {"stitch"}
        arena.close()
        run.close()


@pytest.mark.slow
def test_a_full_disk_in_one_boards_stitch_fails_that_board_alone_and_a_resume_joins_it_without_paying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the first board is being joined, with the other board's shots still being made:
    that board ends with a StorageError saying to resume, the other is made, and a resume (this client, no
    restart) joins the first without a create."""
    import errno

    from sora_nb import _stitch
    from sora_nb.simulator import read_audit

    real_copy = _stitch._copy
    calls: list[str] = []

    def copy_on_a_full_disk(*args: Any) -> None:
        calls.append("copy")
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_copy(*args)

    monkeypatch.setattr(_stitch, "_copy", copy_on_a_full_disk)
    with _connect(tmp_path) as client:
        run = client.sweep(storyboard=SHOTS[:2], model=MODELS, continuity=False).start()
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)
        assert run.board_counts() == {"completed": 1, "failed": 1}
        [broken] = [board for board in run.boards if board.status == "failed"]
        assert isinstance(broken.error, sora_nb.StorageError)
        assert "sora_nb.resume" in str(broken.error) and "No space left" in str(broken.error)
        assert all(job is not None and job.status == "completed" for job in broken.shots)
        assert client.simulator_state_dir is not None
        paid = len(read_audit(client.simulator_state_dir))
        assert paid == 4
        again = sora_nb.resume(run.run_dir, client=client)
        assert isinstance(again, StoryboardRun)
        again.wait(timeout=120)
        assert again.board_counts() == {"completed": 2}
        assert len(read_audit(client.simulator_state_dir)) == paid
        assert sorted(p.name for p in (run.run_dir / "videos").iterdir() if p.name.startswith(".")) == []
        df = again.to_dataframe()
        assert (df["kind"] == "stitch").sum() == 2
        again.close()


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "error", "cause"), [
    (OSError(28, "No space left on device"), sora_nb.StorageError, "No space left on device"),  # ENOSPC
    (ValueError("Invalid data found when processing input"), sora_nb.JobFailedError, "ValueError: Invalid data"),
], ids=["full-disk", "pyav-error"])
def test_a_board_whose_join_failed_says_why_in_its_ledger_and_a_resume_after_a_restart_joins_it_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Exception, error: type[Exception], cause: str
) -> None:
    """The shots are made, then joining them fails (the disk fills; PyAV cannot read a shot). The ledger
    showed the shots completed and no joined row: after a restart nothing said the board had failed, nor
    why, nor what to do. Its joined row is ``failed``, naming the cause and the fix; a resume after the
    restart joins that row (one row per board still) without a create."""
    from sora_nb import _stitch

    real_copy = _stitch._copy
    calls: list[str] = []

    def copy_that_fails_once(*args: Any) -> None:
        calls.append("copy")
        if len(calls) == 1:
            raise fault
        real_copy(*args)

    monkeypatch.setattr(_stitch, "_copy", copy_that_fails_once)
    with _connect(tmp_path) as client:
        board = client.storyboard(SHOTS[:2], model="sora-2", size="1280x720", continuity=False)
        with pytest.raises(error, match=cause):
            board.wait(timeout=300)
        run_dir = board.run_dir
        assert board.stitched is not None and board.stitched.error is not None
        assert board.stitched.error.code == "stitch_failed"
        with pytest.raises(sora_nb.JobFailedError) as ended:
            board.stitched.wait(timeout=5)
        assert "sora_nb.resume" in str(ended.value) and "job.retry()" not in str(ended.value)
        assert client.simulator_state_dir is not None
        state_dir = client.simulator_state_dir
    paid = len(read_audit(state_dir))
    assert paid == 2

    df = sora_nb.load_run(run_dir)  # after the restart, read-only
    joined = df[df["kind"] == "stitch"]
    assert joined["status"].tolist() == ["failed"], df[["kind", "status"]]
    assert joined["error_code"].tolist() == ["stitch_failed"]
    [message] = joined["error_message"].tolist()
    assert cause in message and f"sora_nb.resume({str(run_dir)!r})" in message
    assert "free space" in message or error is not sora_nb.StorageError
    assert df.loc[df["kind"] != "stitch", "status"].tolist() == ["completed", "completed"]

    with _connect(tmp_path) as client:
        again = sora_nb.resume(run_dir, client=client)
        assert isinstance(again, sora_nb.Storyboard)
        again.wait(timeout=120)
        assert again.video_path is not None and again.video_path.is_file()
        assert len(read_audit(state_dir)) == paid  # joined here: nothing sent, nothing paid
        joined = again.to_dataframe().query("kind == 'stitch'")
        assert joined["status"].tolist() == ["completed"] and joined["error_code"].isna().all()
    assert sora_nb.load_run(run_dir).query("kind == 'stitch'")["status"].tolist() == ["completed"]


@pytest.mark.slow
def test_extend_boards_on_a_pool_whose_backends_give_out_the_same_ids_extend_their_own_shots(tmp_path: Path) -> None:
    """A pool of two servers that give out the same video ids (the same seed; two services may): each board's
    extension must go to the backend that made the shot it extends, as job.extend() does. The board did not
    name its parent job, so both boards failed at shot 2 ("no job of this run made" the video: it had, twice)."""
    from sora_nb.simulator import read_audit

    def backend(name: str) -> sora_nb.Client:
        config = SimulatorConfig(seed=5, time_scale=FAST, max_side=64, fps=4, state_dir=str(tmp_path / name))
        return sora_nb.connect("simulator", simulator=config, run_root=tmp_path / "runs")

    with sora_nb.pool(a=backend("a"), b=backend("b")) as both:
        run = both.sweep(storyboard=SHOTS, model=MODELS, mode="extend").start(max_concurrency=4)
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)
        assert run.board_counts() == {"completed": 2}, [str(board.error) for board in run.boards]
    audits = {name: {entry["id"]: entry for entry in read_audit(tmp_path / name)} for name in ("a", "b")}
    assert sum(len(audit) for audit in audits.values()) == 2 * len(SHOTS)  # each shot of each board once
    for board in run.boards:
        shots = [shot for shot in board.shots if shot is not None]
        [home] = {shot.backend for shot in shots}  # the chain stays where its first shot was made
        assert home is not None
        chain = [audits[home][shot.remote_id or ""] for shot in shots]
        assert [entry["model"] for entry in chain] == [board.plan["model"]] * 3
        assert [entry["source_video_id"] for entry in chain[1:]] == [shot.remote_id for shot in shots[:-1]]


def test_a_board_on_a_model_that_takes_no_image_is_planned_without_continuity_before_anything_is_paid(
    tmp_path: Path,
) -> None:
    """A pool of a server whose models take a reference image and one whose models take none: a sweep of boards
    across both planned every board continuous (the pool as a whole takes images), so the second board paid for
    shot 1 and then failed at shot 2 on its reference image. Continuity is what the board's own model takes."""
    with sora_nb.pool(sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, simulator_state=False),
                      sora_nb.connect("together", simulator=True, time_scale=FAST, run_root=tmp_path,
                                      simulator_state=False)) as both:
        sweep = both.sweep(storyboard=SHOTS[:2], model=["sora-2", "google/veo-3.0"], continuity=[True, False])
        assert [(b["model"], b["continuity"]) for b in sweep.boards or []] == [
            ("sora-2", True), ("sora-2", False), ("google/veo-3.0", False)]
        [twice] = sweep.estimate().invalid_combos  # continuity=True there is the board without it: listed, not paid
        assert twice.field == "continuity" and twice.axes["model"] == "google/veo-3.0"
        alone = plan_storyboard(both.profile, SHOTS[:2], model="google/veo-3.0", size=both.profile.capabilities
                                .default_size_for("google/veo-3.0"), mode="stitch", continuity=True)
        assert alone["continuity"] is False  # client.storyboard's plan: the same rule


class _MadeThenSilent(httpx.AsyncBaseTransport):
    """The simulator (kept in ``state_dir``), where every create of ``prompt`` is made and its answer never comes
    (as when the user's process dies with it on the wire): the ledger keeps the job as sending, unanswered."""

    def __init__(self, state_dir: Path, *, prompt: str, path: str = "/v1/videos") -> None:
        self.inner = SimulatorTransport(
            SimulatorConfig(seed=9, time_scale=FAST, max_side=64, fps=4, state_dir=str(state_dir)))
        self.prompt, self.path = prompt, path
        self.made = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == self.path and self.prompt.encode() in body:
            await response.aread()
            self.made += 1
            await asyncio.Event().wait()  # never answered: the client closes (the process dies) meanwhile
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _joint_distance(board: sora_nb.Storyboard, k: int) -> float:
    """How far shot k+1's first frame is from shot k's last (continuity: near 0)."""
    before, after = board.shots[k - 1], board.shots[k]
    assert before is not None and after is not None and before.video_path and after.video_path
    return float(abs(_frames(before.video_path)[-1] - _frames(after.video_path)[0]).mean())


def _joint_distance_between(first: sora_nb.Storyboard, second: sora_nb.Storyboard) -> float:
    """How far ``second``'s shot 2 starts from ``first``'s shot 1 end."""
    before, after = first.shots[0], second.shots[1]
    assert before is not None and after is not None and before.video_path and after.video_path
    return float(abs(_frames(before.video_path)[-1] - _frames(after.video_path)[0]).mean())


@pytest.mark.slow
def test_two_look_alike_boards_with_shot_2_unanswered_at_a_crash_resume_each_with_its_own_shot(
    tmp_path: Path,
) -> None:
    """repeats=2 of a continuous board: shot 2 of both boards is the same request but for its reference image
    (each board's own shot 1 end), which the server does not echo. Both are made, and the process dies before
    either answer comes. The resume must not give board 1 board 2's shot 2: each board's shot 2 starts from its
    own shot 1 (pixel distance at the joint), and nothing is paid twice."""
    state = tmp_path / "sim"
    transport = _MadeThenSilent(state, prompt=SHOTS[1]["prompt"])
    with sora_nb.connect("simulator", run_root=tmp_path / "runs", transport=transport) as client:
        run = client.sweep(storyboard=SHOTS[:2], model="sora-2", repeats=2).start()
        assert isinstance(run, StoryboardRun)
        deadline = time.monotonic() + 60
        while transport.made < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Both boards are at shot 2 together (the same lengths): the other's create leaves within moments, unless
        # it must wait for the first's answer. The process dies now, or once both are on the wire.
        deadline = time.monotonic() + 3
        while transport.made < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        run_dir = run.run_dir
    assert transport.made >= 1  # made on the server, never answered
    config = SimulatorConfig(seed=9, time_scale=FAST, max_side=64, fps=4, state_dir=str(state))
    with sora_nb.connect("simulator", simulator=config, run_root=tmp_path / "runs") as client:
        again = sora_nb.resume(run_dir, client=client)
        assert isinstance(again, StoryboardRun)
        again.wait(timeout=120)
        assert again.board_counts() == {"completed": 2}
        paid = collections.Counter(entry["prompt"] for entry in read_audit(state))
        assert paid == {SHOTS[0]["prompt"]: 2, SHOTS[1]["prompt"]: 2}  # the unanswered one adopted, not paid again
        own = [_joint_distance(board, 1) for board in again.boards]
        a, b = again.boards
        cross = [_joint_distance_between(a, b), _joint_distance_between(b, a)]
        assert max(own) < 20 < min(cross), (own, cross)  # its own shot 1 (about 8-11), not the other (about 38)
        again.close()


def test_a_board_listed_twice_is_planned_once_and_named_as_listed_twice(tmp_path: Path) -> None:
    """model=["sora-2", "sora-2"] (or a mode listed twice) was listed as "continuity=True makes the same board
    as continuity=True": planned once (not paid twice), but its message named the wrong field."""
    with _connect(tmp_path) as client:
        for axes in ({"model": ["sora-2", "sora-2"]}, {"mode": ["stitch", "stitch"]}, {"model": [None, "sora-2"]},
                     {"continuity": [True, True]}):
            sweep = client.sweep(storyboard=SHOTS[:2], **axes)
            [twice] = sweep.estimate().invalid_combos
            assert twice.field == next(iter(axes))
            assert len(sweep.boards or []) == 1 and sweep.estimate().jobs == 2
            assert "listed twice" in twice.message and "repeats=2" in twice.message, twice.message


@pytest.mark.slow
def test_a_sweep_of_boards_cancelled_mid_way_and_resumed_makes_every_board_continuous_from_its_own_shots(
    tmp_path: Path,
) -> None:
    """Cancel with a board's shot 2 being made, close, resume in a new client: each board carries on from
    its own shot 1 (pixel distance at each joint), the cancelled takes are made again (the server deleted them),
    and nothing else is paid twice."""
    with _connect(tmp_path) as client:
        run = client.sweep(storyboard=SHOTS, model=MODELS).start()
        assert isinstance(run, StoryboardRun)
        deadline = time.monotonic() + 120
        slow = run.boards[1]  # sora-2-pro: its shots take longer
        while not (slow.shots[1] is not None and slow.shots[1].remote_id and not slow.shots[1].done):
            assert time.monotonic() < deadline and slow.status == "running"
            time.sleep(0.002)
        run.cancel()
        run.wait(timeout=60)
        assert slow.status == "failed" and "stopped" in str(slow.error)
        assert all(board.status == "completed" or "stopped" in str(board.error) for board in run.boards)
        cancelled = collections.Counter((job.spec.model, job.prompt) for job in run.jobs if job.status == "cancelled")
        assert sum(cancelled.values()) >= 1
        run_dir = run.run_dir
    with _connect(tmp_path) as client:
        again = sora_nb.resume(run_dir, client=client)
        assert isinstance(again, StoryboardRun)
        again.wait(timeout=300)
        assert again.board_counts() == {"completed": 2}
        assert client.simulator_state_dir is not None
        paid = collections.Counter((e["model"], e["prompt"]) for e in read_audit(client.simulator_state_dir))
        joints = [_joint_distance(board, k) for board in again.boards for k in (1, 2)]
        assert max(joints) < 20, joints  # continuous: about 8-11 at this size; a cut: about 60
        again.close()
    # Only the takes cancelled on the wire are paid again (the server deleted them); every other shot once.
    assert paid == {(model, shot["prompt"]): 1 + cancelled[(model, shot["prompt"])] for model in MODELS
                    for shot in SHOTS}


STITCH_KILL_SCRIPT = textwrap.dedent("""
    import json, pathlib, sys, time
    import sora_nb
    from sora_nb import _stitch
    from sora_nb._polling import PollPolicy

    port, run_dir, shots = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    real_copy = _stitch._copy

    def slow_copy(*args):  # a slow disk: the first board's stitch is under way when the test kills us
        pathlib.Path(run_dir, "stitching").touch()
        time.sleep(60)
        real_copy(*args)

    _stitch._copy = slow_copy
    client = sora_nb.connect("openai-compatible", base_url=f"http://127.0.0.1:{port}/v1", run_root=run_dir + "-x",
                             poll_policy=PollPolicy(floor=0.05, ceiling=0.5, first=0.1))
    run = client.sweep(storyboard=shots, model=["sora-2", "sora-2-pro"], continuity=False).start(run_dir=run_dir)
    run.wait(timeout=120)
    print("finished", flush=True)  # never reached: the test kills us first
""")


@pytest.mark.slow
def test_a_sweep_killed_in_one_boards_stitch_with_the_other_boards_shots_in_flight_resumes_paying_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL while the first board is being joined and the other board's shots are still being made: the
    resume joins the first (a whole file, the sum of its shots), finishes the other, and pays for no shot twice."""
    from fault_support import TEST_KEY, child_env, ledger_rows, loopback_simulators, stop

    from sora_nb._stitch import probe

    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    run_dir = tmp_path / "boards"
    shots = [{"prompt": "a hen wakes", "seconds": "4"}, {"prompt": "the hen walks", "seconds": "8"}]
    with loopback_simulators(tmp_path) as start:
        sim = start("--time-scale", "0.02")
        child = subprocess.Popen([sys.executable, "-c", STITCH_KILL_SCRIPT, str(sim.port), str(run_dir),
                                  json.dumps(shots)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                                 env=child_env())
        try:
            deadline = time.monotonic() + 90
            while not (run_dir / "stitching").exists():
                if child.poll() is not None or time.monotonic() > deadline:
                    out, err = stop(child)
                    pytest.fail(f"the stitch never began (exit {child.returncode}): {out!r} {err!r}")
                time.sleep(0.005)
            rows = ledger_rows(run_dir)
            child.send_signal(signal.SIGKILL)
            stop(child)
        finally:
            if child.poll() is None:
                child.kill()
                stop(child)
        assert child.returncode == -signal.SIGKILL
        assert any(row.downloaded_at is None for row in rows) or len(rows) < 4  # the other board was not made yet
        assert not any(row.spec.kind == "stitch" for row in rows)
        run = sora_nb.resume(run_dir)
        try:
            assert isinstance(run, StoryboardRun)
            run.wait(timeout=180)
        finally:
            run.close()
        paid = collections.Counter((entry["model"], entry["prompt"]) for entry in sim.audit())
    assert paid == {(model, shot["prompt"]): 1 for model in MODELS for shot in shots}
    assert run.board_counts() == {"completed": 2}
    assert sorted(p.name for p in (run_dir / "videos").iterdir() if p.name.startswith(".")) == []
    for board in run.boards:
        assert board.video_path is not None
        info = probe(board.video_path)
        assert abs(info.duration - 12.0) <= 2 / float(info.fps)
        assert len(_frames(board.video_path)) == round(12 * float(info.fps))


@pytest.mark.slow
def test_extensions_on_two_models_unanswered_at_a_crash_resume_each_on_its_own_board(tmp_path: Path) -> None:
    """mode='extend' on two models: shot 2 of both boards is an extension with one prompt (the server's list
    shows an extension's prompt, model and size, not what it extends). Both are made and the process dies
    before either answer comes. A search by prompt alone gave each board the other model's extension."""
    state = tmp_path / "sim"
    transport = _MadeThenSilent(state, prompt=SHOTS[1]["prompt"], path="/v1/videos/extensions")
    with sora_nb.connect("simulator", run_root=tmp_path / "runs", transport=transport) as client:
        run = client.sweep(storyboard=SHOTS, model=MODELS, mode="extend").start()
        deadline = time.monotonic() + 60
        while transport.made < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        run_dir = run.run_dir
    assert transport.made == 2  # two models: told apart by the list, so both may be on the wire
    config = SimulatorConfig(seed=9, time_scale=FAST, max_side=64, fps=4, state_dir=str(state))
    with sora_nb.connect("simulator", simulator=config, run_root=tmp_path / "runs") as client:
        again = sora_nb.resume(run_dir, client=client)
        assert isinstance(again, StoryboardRun)
        again.wait(timeout=120)
        again.close()
    audit = {entry["id"]: entry for entry in read_audit(state)}
    assert len(audit) == 2 * len(SHOTS)  # the unanswered ones adopted, none paid again
    assert again.board_counts() == {"completed": 2}
    for board in again.boards:
        chain = [shot.remote_id or "" for shot in board.shots if shot is not None]
        assert [audit[rid]["model"] for rid in chain] == [board.plan["model"]] * 3
        assert [audit[rid]["source_video_id"] for rid in chain[1:]] == chain[:-1]


@pytest.mark.slow
def test_a_board_without_its_joined_video_stays_in_the_compare_grid_and_gallery_saying_why(tmp_path: Path) -> None:
    """The compare grid and gallery of a sweep of boards show each board's joined video. A board that failed
    (or is still being made) has none, and dropped out of them unseen: a grid across sizes had one column
    fewer and no word of why. It is a cell saying the board failed and why; judging still uses made videos."""
    transport = _RefusedFor(size="1792x1024", prompt=SHOTS[1]["prompt"])
    with sora_nb.connect("simulator", run_root=tmp_path, transport=transport) as client:
        run = client.sweep(storyboard=SHOTS[:2], model="sora-2-pro", size=["1280x720", "1792x1024"]).start()
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)
        assert run.board_counts() == {"completed": 1, "failed": 1}
        grid = run.compare(rows="prompt", cols="size", media="url")
        html = grid.html()
        grid._render()
        assert "1792x1024" in html and "1280x720" in html and html.count("<video") == 1
        assert "moderation" in html or "failed" in html
        cells = [child.value for child in grid.grid.children if hasattr(child, "value")]
        grid.close()
        assert any("1792x1024" in str(value) for value in cells)
        gallery = run.gallery(media="url")
        shown = gallery.visible_jobs()
        gallery.close()
        assert sorted(job.status for job in shown) == ["completed", "failed"]
        [stand_in] = [job for job in shown if job.status == "failed"]
        assert stand_in.spec.kind == "stitch" and "moderation" in str(stand_in.error)
        with pytest.raises(ValueError, match=r"board\.redo"):
            stand_in.retry()  # nothing to send again: the board's redo is what makes it
        assert run.to_dataframe()["kind"].tolist().count("stitch") == 1  # shown, never stored
        board = run.leaderboard(by="size", using="sharpness")  # as a run's failed cell: listed, measured by nothing
        assert board["size"].tolist() == ["1280x720", "1792x1024"] and board["n"].tolist() == [1, 0]
        arena = run.arena(by="size", media="url")
        assert arena.pair is None  # one made video: nothing to pair, the failed board is never offered
        arena.close()
        run.close()
