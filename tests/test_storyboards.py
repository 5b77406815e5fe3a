"""A sweep of storyboards (issue 12): the same board across models in one run, estimated, resumable, judged.

The attacks: the user's process SIGKILLed mid-sweep and resumed (the loopback server's audit counts the
creates: each shot of each board once), a second process refused while the first drives the run, and a
create that 502s after the server made it, on one board, which must neither stall the other boards nor be
paid for twice.
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
from fault_support import TEST_KEY, child_env, ledger_rows, loopback_simulators, stop
from support import FAST

import sora_nb
from sora_nb._stitch import probe
from sora_nb._storyboards import StoryboardRun
from sora_nb.simulator import SimulatorConfig, SimulatorTransport, read_audit

SHOTS = [
    {"prompt": "a red fox wakes in a meadow", "seconds": "4"},
    {"prompt": "the fox trots to a river", "seconds": "4"},
    {"prompt": "the fox leaps over stones", "seconds": "8"},
    {"prompt": "the fox rests under a tree at dusk", "seconds": "4"},
]
MODELS = ["sora-2", "sora-2-pro"]


def _connect(tmp_path: Path, **options: Any) -> sora_nb.Client:
    config = SimulatorConfig(seed=5, time_scale=FAST, max_side=64, fps=4, state_dir=str(tmp_path / "sim"))
    return sora_nb.connect("simulator", simulator=config, run_root=tmp_path / "runs", **options)


def _creates(entries: list[dict[str, Any]]) -> collections.Counter[tuple[str, str]]:
    """How many times the server accepted each (model, prompt)."""
    return collections.Counter((entry["model"], entry["prompt"]) for entry in entries)


@pytest.mark.slow
def test_the_same_board_on_two_models_is_one_run_estimated_made_compared_and_judged(tmp_path: Path) -> None:
    with _connect(tmp_path) as client:
        sweep = client.sweep(storyboard=SHOTS, model=MODELS)
        estimate = sweep.estimate()
        each = [client.estimate_storyboard(SHOTS, model=model) for model in MODELS]
        assert estimate.jobs == 8 and estimate.cost_usd == pytest.approx(sum(e.cost_usd or 0 for e in each))
        assert "2 storyboards" in repr(sweep)
        with pytest.raises(sora_nb.BudgetExceededError):
            sweep.start(budget_usd=(estimate.cost_usd or 0) - 0.01)  # the whole sweep is held to the budget
        assert client.simulator_state_dir is not None
        assert read_audit(client.simulator_state_dir) == []  # refused: nothing sent

        run = sweep.start(budget_usd=estimate.cost_usd, max_concurrency=4)
        assert isinstance(run, StoryboardRun) and len(run.boards) == 2
        seen: list[int] = []
        run.observe(lambda _job: seen.append(run.progress))
        run.wait(timeout=300)
        creates = _creates(read_audit(client.simulator_state_dir))

        assert run.board_counts() == {"completed": 2} and run.progress == 100
        assert [board.progress for board in run.boards] == [100, 100]
        assert any(0 < p < 100 for p in seen), seen  # the overall progress moved through the sweep
        assert creates == {(model, shot["prompt"]): 1 for model in MODELS for shot in SHOTS}
        df = run.to_dataframe()
        joined = df[df["kind"] == "stitch"]
        assert len(df) == 10 and len(joined) == 2  # a row per shot, one per board's joined video
        assert sorted(joined["model"]) == MODELS and joined["shot"].isna().all()
        assert set(df["storyboard_id"]) == {board.storyboard_id for board in run.boards}
        # The estimate is what the ledger recorded, job by job.
        assert df["estimated_cost_usd"].sum() == pytest.approx(estimate.cost_usd)
        for board in run.boards:
            assert board.video_path is not None
            assert board.video_path.name.startswith(f"storyboard-{board.storyboard_id}")
            info = probe(board.video_path)
            assert abs(info.duration - 20.0) <= 3 / float(info.fps)
        assert len({board.video_path for board in run.boards}) == 2

        # The compare grid and the gallery show the joined videos, one per model, labelled by the axis.
        grid = run.compare(rows="prompt", cols="model", media="url")
        html = grid.html()
        assert html.count("<video") == 2 and all(model in html for model in MODELS)
        gallery = run.gallery(media="url")
        assert {job.id for job in gallery.visible_jobs()} == set(joined["job_id"])
        grid.close()
        gallery.close()
        # The arena pairs the joined videos across models; the leaderboard ranks the models by those votes.
        arena = run.arena(by="model", media="url")
        assert arena.pair is not None and {job.spec.kind for job in arena.pair} == {"stitch"}
        for _ in range(3):
            assert arena.pair is not None
            a, _b = arena.pair  # sides drawn at random each time
            arena.vote("a" if a.spec.model == "sora-2-pro" else "b")
            arena.next()
        arena.close()
        board = run.leaderboard(by="model")
        assert board["model"].tolist() == ["sora-2-pro", "sora-2"]
        assert board["wins"].tolist() == [3, 0] and board["videos"].tolist() == [1, 1]
        # The joined videos are measured too: a metric ranks the models by them (the simulator's pro is sharper).
        sharp = run.leaderboard(by="model", using="sharpness")
        assert sharp["model"].tolist() == ["sora-2-pro", "sora-2"] and sharp["n"].tolist() == [1, 1]
        assert "2 storyboards" in run._repr_html_() and "2 completed" in repr(run)
        progress = sora_nb.ui.RunProgress(run)  # what showing the run in a notebook draws: a line per board
        progress._render()
        assert progress.bar.value == 100.0 and progress.bar.bar_style == "success"
        assert progress.job_list.value.count("sora-nb-board-line") == 2 and "4 of 4 shots" in progress.job_list.value
        progress.close()


def test_bad_sweeps_of_boards_are_refused_naming_the_field_and_the_fix(tmp_path: Path) -> None:
    with _connect(tmp_path) as client:
        with pytest.raises(sora_nb.ValidationError) as unknown:
            client.sweep(storyboard=SHOTS, model=["sora-2", "sora-3"])
        assert unknown.value.field == "model" and "sora-3" in str(unknown.value)
        assert "'sora-2-pro'" in str(unknown.value) and "Fix" in str(unknown.value)
        with pytest.raises(ValueError, match=r"storyboard= is empty.*Fix"):
            client.sweep(storyboard=[], model="sora-2")
        with pytest.raises(TypeError, match=r"no argument 'prompt'.*Allowed: storyboard, model"):
            client.sweep(storyboard=SHOTS, prompt="a fox")
        with pytest.raises(ValueError, match=r"mode='loop'.*Allowed: 'stitch', 'extend'"):
            client.sweep(storyboard=SHOTS, mode=["stitch", "loop"])
        with pytest.raises(ValueError, match=r"model is empty"):
            client.sweep(storyboard=SHOTS, model=[])
        with pytest.raises(TypeError, match=r"continuity='yes'"):
            client.sweep(storyboard=SHOTS, continuity="yes")
        # A size one model does not take is listed, as a sweep lists it; the rest goes ahead.
        sweep = client.sweep(storyboard=SHOTS[:2], model=MODELS, size=["1280x720", "1792x1024"])
        assert [combo.field for combo in sweep.estimate().invalid_combos] == ["size"]
        assert len(sweep.boards or []) == 3
        only = client.sweep(storyboard=SHOTS[:2], model=MODELS, size="1792x1024")
        assert [b["model"] for b in only.boards or []] == ["sora-2-pro"] and len(only.estimate().invalid_combos) == 1
        with pytest.raises(ValueError, match=r"no valid jobs"):
            client.sweep(storyboard=SHOTS[:2], model="sora-2", size="1792x1024").start()
        # Extensions always continue: continuity=False there would be the same board, paid for twice.
        sweep = client.sweep(storyboard=SHOTS[:2], mode=["stitch", "extend"], continuity=[True, False])
        assert [(b["mode"], b["continuity"]) for b in sweep.boards or []] == [
            ("stitch", True), ("stitch", False), ("extend", True)]
        [duplicate] = sweep.estimate().invalid_combos
        assert duplicate.field == "continuity" and "paid for twice" in duplicate.message
        assert client.simulator_state_dir is not None
        assert read_audit(client.simulator_state_dir) == []


class _CreatedThen502(httpx.AsyncBaseTransport):
    """The simulator, where the first create of ``prompt`` on ``model`` is made and answered 502; the server's
    list then hangs until ``released`` (so that board's search is stuck while the others go on)."""

    def __init__(self, *, model: str, prompt: str) -> None:
        self.inner = SimulatorTransport(SimulatorConfig(seed=9, time_scale=FAST, max_side=64, fps=4))
        self.model, self.prompt = model, prompt
        self.failed = False
        self.released = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/videos" and self.failed:
            deadline = time.monotonic() + 60
            while not self.released and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        body = await request.aread()  # JSON, or multipart with the reference image: both name model and prompt
        response = await self.inner.handle_async_request(request)
        hit = self.model.encode() in body and self.prompt.encode() in body
        if request.method == "POST" and request.url.path == "/v1/videos" and hit and not self.failed:
            self.failed = True
            await response.aread()
            return httpx.Response(502, json={"error": {"message": "Bad gateway", "code": "bad_gateway"}})
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.slow
def test_a_create_answered_502_after_it_was_made_stalls_no_other_board_and_is_paid_once(tmp_path: Path) -> None:
    transport = _CreatedThen502(model="sora-2-pro", prompt=SHOTS[1]["prompt"])
    with sora_nb.connect("simulator", run_root=tmp_path, transport=transport) as client:
        client.api.list_settle = 0.05
        run = client.sweep(storyboard=SHOTS, model=MODELS).start()
        assert isinstance(run, StoryboardRun)
        fine, hit = run.boards
        fine.wait(timeout=120)  # made while the other board's lost create is still being looked for
        assert transport.failed and not transport.released and hit.status == "running"
        assert hit.shots[2] is None  # continuity: shot 3 waits for shot 2, and is not sent meanwhile
        transport.released = True
        run.wait(timeout=120)
        report = run.audit()
    assert run.board_counts() == {"completed": 2}
    assert _creates(transport.inner.audit()) == {(model, shot["prompt"]): 1 for model in MODELS for shot in SHOTS}
    assert report.ok and report.orphans == []
    second = hit.shots[1]
    assert second is not None and second.status == "completed"


USER_SCRIPT = textwrap.dedent("""
    import json, sys
    import sora_nb
    from sora_nb._polling import PollPolicy

    port, run_dir, shots = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = sora_nb.connect("openai-compatible", base_url=f"http://127.0.0.1:{port}/v1", run_root=run_dir + "-unused",
                             poll_policy=PollPolicy(floor=0.05, ceiling=0.5, first=0.1))
    run = client.sweep(storyboard=shots, model=["sora-2", "sora-2-pro"]).start(run_dir=run_dir)
    print(run.run_dir, flush=True)
    run.wait(timeout=120)
    print("finished", flush=True)  # never reached: the test kills us first
""")

SECOND_DRIVER = textwrap.dedent("""
    import sys
    import sora_nb

    try:
        sora_nb.resume(sys.argv[1])
    except sora_nb.RunLockedError as exc:
        print("refused:", exc, flush=True)
    else:
        print("took it", flush=True)
""")


@pytest.mark.slow
def test_a_sweep_of_boards_killed_mid_way_resumes_paying_only_for_the_missing_shots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL the user's process once each board has a shot on disk and some shots are not yet asked for
    (a create may be on the wire); a second process meanwhile is refused; ``sora_nb.resume`` finishes every
    board, and the server's audit has each shot of each board once."""
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    run_dir = tmp_path / "boards"
    with loopback_simulators(tmp_path) as start:
        sim = start("--time-scale", "0.02")
        child = subprocess.Popen([sys.executable, "-c", USER_SCRIPT, str(sim.port), str(run_dir), json.dumps(SHOTS)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=child_env())
        try:
            deadline = time.monotonic() + 90
            while True:
                rows = ledger_rows(run_dir)
                made = collections.Counter(r.spec.model for r in rows if r.downloaded_at is not None)
                if all(made[model] >= 1 for model in MODELS) and len(rows) < 2 * len(SHOTS):
                    child.send_signal(signal.SIGSTOP)  # frozen: it holds the run, and nothing moves until the kill
                    break
                if child.poll() is not None or time.monotonic() > deadline:
                    out, err = stop(child)
                    pytest.fail(f"the moment to kill never came (exit {child.returncode}): {out!r} {err!r}")
                time.sleep(0.005)
            second = subprocess.run([sys.executable, "-c", SECOND_DRIVER, str(run_dir)], capture_output=True,
                                    cwd=tmp_path, env=child_env(), timeout=60)
            paid_while_second = len(sim.audit())
            child.send_signal(signal.SIGKILL)
            out, _err = stop(child)
        finally:
            if child.poll() is None:
                child.kill()
                stop(child)
        assert child.returncode == -signal.SIGKILL and out.decode().splitlines() == [str(run_dir)]
        assert second.stdout.decode().startswith("refused:"), second
        paid_before = _creates(sim.audit())
        assert sum(paid_before.values()) == paid_while_second  # the refused process sent nothing
        assert all(n == 1 for n in paid_before.values()) and sum(paid_before.values()) < 2 * len(SHOTS)

        run = sora_nb.resume(run_dir)  # profile and base URL from the ledger's meta
        try:
            assert isinstance(run, StoryboardRun)
            run.wait(timeout=180)
        finally:
            run.close()
        paid = _creates(sim.audit())
    assert paid == {(model, shot["prompt"]): 1 for model in MODELS for shot in SHOTS}  # nothing paid twice
    assert run.board_counts() == {"completed": 2}
    df = sora_nb.load_run(run_dir)
    assert (df["kind"] == "stitch").sum() == 2 and len(df[df["kind"] != "stitch"]) == 2 * len(SHOTS)
    for board in run.boards:
        assert board.video_path is not None
        info = probe(board.video_path)
        assert abs(info.duration - 20.0) <= 3 / float(info.fps)


@pytest.mark.slow
def test_redo_on_one_board_of_a_sweep_remakes_that_board_alone_and_survives_a_resume(tmp_path: Path) -> None:
    with _connect(tmp_path) as client:
        run = client.sweep(storyboard=SHOTS[:3], model=MODELS).start()
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)
        assert client.simulator_state_dir is not None
        paid = len(read_audit(client.simulator_state_dir))
        kept, redone = run.boards
        kept_video = kept.video_path
        redone.redo(2, prompt="the fox swims across the river", confirm=True)
        run.wait(timeout=300)
        made = [(e["model"], e["prompt"]) for e in read_audit(client.simulator_state_dir)][paid:]
        assert made == [("sora-2-pro", "the fox swims across the river"), ("sora-2-pro", SHOTS[2]["prompt"])]
        assert redone.video_path is not None and redone.video_path.name == f"storyboard-{redone.storyboard_id}-v2.mp4"
        assert kept.video_path == kept_video and kept.plan["version"] == 1
        assert {job.id for job in run._videos()} == {kept.stitched.id, redone.stitched.id}  # type: ignore[union-attr]
        run_dir, paid = run.run_dir, len(read_audit(client.simulator_state_dir))
    with _connect(tmp_path) as client:
        again = sora_nb.resume(run_dir, client=client)
        assert isinstance(again, StoryboardRun)
        again.wait(timeout=120)
        assert client.simulator_state_dir is not None
        assert len(read_audit(client.simulator_state_dir)) == paid  # all made: nothing sent
        assert [board.plan["version"] for board in again.boards] == [1, 2]
        assert again.boards[1].shots[1] is not None and again.boards[1].shots[1].prompt.startswith("the fox swims")
        assert [board.video_path for board in again.boards] == [kept_video, redone.video_path]


@pytest.mark.slow
def test_a_second_driver_of_a_sweep_of_boards_between_shots_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    """Between two shots of a board (the reference image being written), every job of the run may have ended:
    the run is still being made, and another client resuming it meanwhile must be refused."""
    with _connect(tmp_path) as client, _connect(tmp_path) as other:
        run = client.sweep(storyboard=["a hen wakes", "the hen walks", "the hen sleeps"], model=MODELS).start()
        refused = 0
        while any(board.status == "running" for board in run.boards):
            idle_jobs = all(job.done for job in run.jobs)
            try:
                taken = sora_nb.resume(run.run_dir, client=other)
            except sora_nb.RunLockedError:
                refused += idle_jobs
            else:
                if any(board.status == "running" for board in run.boards):  # (not if it ended just now)
                    taken.cancel()
                    pytest.fail("a second driver took a sweep of boards still being made")
                break
            time.sleep(0.005)
        run.wait(timeout=300)
        assert client.simulator_state_dir is not None
        made = _creates(read_audit(client.simulator_state_dir))
    assert refused >= 1  # refused at least once while no job of the run was going
    assert made == {(model, prompt): 1 for model in MODELS for prompt in ["a hen wakes", "the hen walks",
                                                                          "the hen sleeps"]}


@pytest.mark.slow
def test_failed_boards_are_shown_not_raised_and_retry_failed_makes_each_a_new_take(tmp_path: Path) -> None:
    with _connect(tmp_path) as client:
        run = client.sweep(storyboard=["a hen wakes", "the hen [fail] walks"], model=MODELS).start()
        assert isinstance(run, StoryboardRun)
        run.wait(timeout=300)  # a failed board does not raise here (as a run's failed jobs do not)
        assert run.board_counts() == {"failed": 2}
        assert all("shot 2 failed" in str(board.error) for board in run.boards)
        progress = sora_nb.ui.RunProgress(run)
        progress._render()
        assert progress.bar.bar_style == "danger" and progress.job_list.value.count(">failed<") == 2
        progress.close()
        takes = run.retry_failed()
        assert [(job.spec.model, job.spec.axes["shot"], job.spec.axes["take"]) for job in takes] == [
            ("sora-2", 2, 2), ("sora-2-pro", 2, 2)]
        run.wait(timeout=300)
        assert client.simulator_state_dir is not None
        made = _creates(read_audit(client.simulator_state_dir))
    assert made == {(model, prompt): n for model in MODELS for prompt, n in [("a hen wakes", 1),
                                                                             ("the hen [fail] walks", 2)]}
    assert run.board_counts() == {"failed": 2}
