"""Red team on sweeps of storyboards (issue 12): boards that look alike, lost answers, full disks, bad files.

Each attack counts at the server (the simulator's audit: every accepted create with its model, prompt and
source video), never in the client, and checks files by their frames and durations.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import FAST

import sora_nb
from sora_nb._storyboards import StoryboardRun
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

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
