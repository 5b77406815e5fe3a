"""Storyboards (issue 12): several shots made into one MP4, continuous from shot to shot, counted at the server.

The attacks: the joined file is as long as its shots (within a frame per joint), decodes end to end, and
each shot starts where the one before ended (pixel distance at every joint, against a board made without
continuity); the contract's limits on extensions refuse a board before anything is sent; a redo pays
for exactly the shots it must; a budget too small sends nothing.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fault_support import TEST_KEY, child_env, ledger_rows, loopback_simulators, stop
from PIL import Image
from support import FAST, HeldOutput, Sent, Shown

import sora_nb
from sora_nb._ledger import JobRecord
from sora_nb._stitch import probe
from sora_nb.simulator import SimulatorConfig, read_audit

SHOTS = [
    {"prompt": "a red fox wakes in a meadow", "seconds": "4"},
    {"prompt": "the fox trots to a river", "seconds": "4"},
    {"prompt": "the fox leaps over stones", "seconds": "8"},
    {"prompt": "the fox rests under a tree at dusk", "seconds": "4"},
]


def _frames(path: Path, wanted: set[int] | None = None) -> tuple[int, dict[int, Any]]:
    """Decode the whole file (any decoder error raises); return the frame count and the ``wanted`` frames."""
    import av

    kept: dict[int, Any] = {}
    count = 0
    with av.open(os.fspath(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if wanted is None or index in wanted:
                kept[index] = frame.to_ndarray(format="rgb24").astype(np.float32)
            count = index + 1
    return count, kept


def _distance(a: Any, b: Any) -> float:
    """Mean absolute difference of two frames, in levels of 0-255."""
    return float(np.abs(a - b).mean())


def _joint_distances(board: sora_nb.Storyboard) -> list[float]:
    """For each joint: the last frame of shot k against the first frame of shot k+1 (their own files)."""
    distances = []
    shots = [job for job in board.shots if job is not None]
    for before, after in itertools.pairwise(shots):
        assert before.video_path is not None and after.video_path is not None
        count, last = _frames(before.video_path)
        _, first = _frames(after.video_path, {0})
        distances.append(_distance(last[count - 1], first[0]))
    return distances


def _connect(tmp_path: Path) -> sora_nb.Client:
    # Small frames: the pixels checked here do not need the default 320, and renders take a fraction of the time.
    config = SimulatorConfig(seed=3, time_scale=FAST, max_side=128, fps=8, state_dir=str(tmp_path / "sim"))
    return sora_nb.connect("simulator", simulator=config, run_root=tmp_path / "runs")


@pytest.mark.slow
def test_a_four_shot_board_is_one_continuous_mp4(tmp_path: Path) -> None:
    with _connect(tmp_path) as client:
        board = client.storyboard(SHOTS, model="sora-2", size="1280x720", mode="stitch", continuity=True)
        assert isinstance(board, sora_nb.Storyboard)
        board.wait(timeout=300)
        apart = client.storyboard(SHOTS, model="sora-2", size="1280x720", continuity=False).wait(timeout=300)
        assert client.simulator_state_dir is not None
        creates = read_audit(client.simulator_state_dir)

    assert board.status == "completed" and board.progress == 100
    assert len(creates) == 8  # four shots each, no more
    path = board.video_path
    assert path is not None and path.is_file()
    info = probe(path)
    fps = float(info.fps)
    total = sum(float(s["seconds"]) for s in SHOTS)
    assert abs(info.duration - total) <= (len(SHOTS) - 1) / fps
    ends = np.cumsum([round(float(s["seconds"]) * fps) for s in SHOTS])
    count, joints = _frames(path, {int(e) + d for e in ends[:-1] for d in (-1, 0)})
    assert abs(count - total * fps) <= len(SHOTS) - 1  # decoded end to end, every frame there
    # Each shot starts where the one before ended: in the shots' own files and at the joints of the whole.
    continuous = _joint_distances(board)
    cut = _joint_distances(apart)
    at_joints = [_distance(joints[int(e) - 1], joints[int(e)]) for e in ends[:-1]]
    # (Each frame is encoded twice on its way, and fitted up to 1280x720 and down again: about 5 levels.)
    assert max(continuous) < 10.0, continuous
    assert max(at_joints) < 10.0, at_joints
    assert min(cut) > 20.0, cut  # without continuity the shots do jump: the check can tell
    # A board is a run: a row per shot and one for the joined file, which generated nothing.
    df = board.to_dataframe()
    assert df["shot"].tolist()[:4] == [1, 2, 3, 4] and df["shot"].isna().tolist()[4]
    assert set(df["storyboard_id"]) == {board.storyboard_id}
    assert df["kind"].tolist() == ["create"] * 4 + ["stitch"]
    assert df["seconds_generated"].sum() == total
    assert df["video_path"].iloc[4] == str(path) and board.thumbnail_path is not None
    assert board.shots[1] is not None and board.shots[1].spec.input_reference  # shot 2 began from an image
    html = board._repr_html_()
    assert "storyboard" in html and "<video" in html and html.count("sora-nb-shot") == 4


def test_the_simulator_starts_a_video_from_its_reference_image(tmp_path: Path) -> None:
    red = tmp_path / "red.png"
    Image.new("RGB", (1280, 720), (220, 30, 30)).save(red)
    with _connect(tmp_path) as client:
        job = client.generate("a blue whale", model="sora-2", size="1280x720", input_reference=red).wait(timeout=60)
        plain = client.generate("a blue whale", model="sora-2", size="1280x720").wait(timeout=60)
    assert job.video_path is not None and plain.video_path is not None
    _, first = _frames(job.video_path, {0})
    _, other = _frames(plain.video_path, {0})
    target = np.full_like(first[0], 0.0) + np.array([220, 30, 30], dtype=np.float32)
    assert _distance(first[0], target) < 6.0
    assert _distance(other[0], target) > 40.0


def test_extend_mode_makes_one_video_by_extensions(tmp_path: Path) -> None:
    shots = SHOTS[:3]
    with _connect(tmp_path) as client:
        board = client.storyboard(shots, model="sora-2", size="1280x720", mode="extend").wait(timeout=300)
        assert client.simulator_state_dir is not None
        creates = read_audit(client.simulator_state_dir)
    assert [entry["kind"] for entry in creates] == ["create", "extend", "extend"]
    assert board.video_path == board.shots[-1].video_path  # type: ignore[union-attr]
    assert board.video_path is not None
    total = sum(float(s["seconds"]) for s in shots)
    info = probe(board.video_path)
    assert abs(info.duration - total) <= 1 / float(info.fps)
    fps = float(info.fps)
    ends = np.cumsum([round(float(s["seconds"]) * fps) for s in shots])
    _, joints = _frames(board.video_path, {int(e) + d for e in ends[:-1] for d in (-1, 0)})
    # Each extension continues the source's last frame.
    assert max(_distance(joints[int(e) - 1], joints[int(e)]) for e in ends[:-1]) < 10.0


def test_limits_and_budget_refuse_a_board_before_anything_is_sent(tmp_path: Path) -> None:
    with _connect(tmp_path) as client:
        with pytest.raises(sora_nb.ValidationError, match="at most 6"):
            client.storyboard([{"prompt": f"shot {i}", "seconds": "4"} for i in range(8)], mode="extend")
        with pytest.raises(sora_nb.ValidationError, match="shot 2: seconds='5'"):
            client.storyboard([{"prompt": "a"}, {"prompt": "b", "seconds": "5"}])
        with pytest.raises(ValueError, match="Allowed: 'stitch', 'extend'"):
            client.storyboard(SHOTS, mode="montage")
        with pytest.raises(ValueError, match="unknown keys"):
            client.storyboard([{"prompt": "a", "model": "sora-2-pro"}])
        with pytest.raises(ValueError, match="non-empty list"):
            client.storyboard([])
        with pytest.raises(sora_nb.BudgetExceededError, match=r"\$2.00 is over the budget of \$1.00"):
            client.storyboard(SHOTS, model="sora-2", size="1280x720", budget_usd=1.0)
        assert str(client.estimate_storyboard(SHOTS, model="sora-2", size="1280x720")) == (
            "4 jobs, 20 s of video, est. $2.00")
        assert client.simulator_state_dir is not None
        assert read_audit(client.simulator_state_dir) == []
        assert not list((tmp_path / "runs").glob("*/ledger.sqlite"))


@pytest.mark.slow
def test_redo_of_shot_3_makes_shots_3_and_4_and_a_new_file(tmp_path: Path) -> None:
    with _connect(tmp_path) as client:
        board = client.storyboard(SHOTS, model="sora-2", size="1280x720").wait(timeout=300)
        assert client.simulator_state_dir is not None
        before = len(read_audit(client.simulator_state_dir))
        first = board.video_path
        assert first is not None
        kept = [job.id for job in board.shots[:2] if job is not None]
        with pytest.raises(ValueError, match=r"makes shots 3-4 again \(2 jobs, 12 s of video, est. \$1.20\)"):
            board.redo(3, prompt="the fox swims across the river")
        assert len(read_audit(client.simulator_state_dir)) == before  # refused: nothing sent
        board.redo(3, prompt="the fox swims across the river", confirm=True).wait(timeout=300)
        after = read_audit(client.simulator_state_dir)[before:]
    assert [entry["prompt"] for entry in after] == ["the fox swims across the river", SHOTS[3]["prompt"]]
    assert [job.id for job in board.shots[:2] if job is not None] == kept
    assert board.video_path is not None and board.video_path != first and first.is_file()
    assert board.video_path.name == "storyboard-v2.mp4"
    assert max(_joint_distances(board)) < 10.0  # shot 4 starts from the new shot 3
    df = board.to_dataframe()
    assert (df["kind"] == "stitch").sum() == 2 and len(df) == 4 + 1 + 2 + 1


def test_a_failed_shot_stops_a_continuous_board_and_a_redo_carries_it_on(tmp_path: Path) -> None:
    """Shot 2 refused by the server: the board fails naming it, shot 3 (which starts from it) is never paid for;
    a redo of shot 2 with a new prompt makes shots 2 and 3 and the file. Cancel stops a board, resumably."""
    shots = [{"prompt": "a fox wakes"}, {"prompt": "the fox runs [fail]"}, {"prompt": "the fox sleeps"}]
    with _connect(tmp_path) as client:
        board = client.storyboard(shots, model="sora-2", size="1280x720")
        with pytest.raises(sora_nb.JobFailedError, match=r"shot 2 failed: .*moderation_blocked.*board.redo\(2"):
            board.wait(timeout=300)
        assert board.status == "failed" and board.video_path is None
        assert client.simulator_state_dir is not None
        assert [e["prompt"] for e in read_audit(client.simulator_state_dir)] == [s["prompt"] for s in shots[:2]]
        board.redo(2, prompt="the fox runs", confirm=True).wait(timeout=300)
        assert [e["prompt"] for e in read_audit(client.simulator_state_dir)][2:] == ["the fox runs", "the fox sleeps"]
        assert board.status == "completed" and board.video_path is not None
        with pytest.raises(ValueError, match="Allowed: 1 to 3"):
            board.redo(4)

        slow = client.storyboard(["a hen wakes", "the hen walks"], model="sora-2", size="1280x720")
        slow.cancel()
        with pytest.raises(sora_nb.JobFailedError, match=r"stopped before it was made.*sora_nb\.resume"):
            slow.wait(timeout=60)


def test_a_redo_while_the_board_is_being_made_replans_it(tmp_path: Path) -> None:
    """Redo shot 1 before the board is made: the old take is dropped (cancelled if still going), and the board
    is made from the new plan, once."""
    with _connect(tmp_path) as client:
        board = client.storyboard(["a hen wakes", "the hen walks", "the hen sleeps"], model="sora-2", size="1280x720")
        board.redo(1, prompt="a hen stretches", confirm=True)
        board.wait(timeout=300)
        assert client.simulator_state_dir is not None
        made = [e["prompt"] for e in read_audit(client.simulator_state_dir)]
    assert [job.prompt for job in board.shots if job is not None] == ["a hen stretches", "the hen walks",
                                                                      "the hen sleeps"]
    assert made[-3:] == ["a hen stretches", "the hen walks", "the hen sleeps"] and len(made) <= 4
    assert board.video_path is not None and board.video_path.name == "storyboard-v2.mp4"
    assert (board.to_dataframe()["kind"] == "stitch").sum() == 1


@pytest.mark.slow
def test_a_take_replaced_by_a_redo_says_so_and_a_resume_never_makes_it_again(tmp_path: Path) -> None:
    """The take a redo replaced read "cancelled by the user" (nobody cancelled it), and a resume took it for a
    cancelled job and sent it again: a take nobody wanted any more, paid for once more."""
    from support import wait_for

    with _connect(tmp_path) as client:
        board = client.storyboard(["a hen wakes", "the hen walks"], model="sora-2", size="1280x720",
                                  continuity=False)
        old = wait_for(lambda: board.shots[0], what="take 1 of shot 1")
        board.redo(1, prompt="a hen stretches")
        board.wait(timeout=300)
        assert client.simulator_state_dir is not None
        state_dir = client.simulator_state_dir
        assert old.status == "cancelled" and old.error is not None
        assert old.error.code == "replaced"
        assert old.error.message == "replaced by take 2 of shot 1 (board.redo)"
        run_dir = board.run_dir
    paid = len(read_audit(state_dir))
    assert paid in (2, 3)  # take 1 of shot 1 was sent or not when the redo came; take 2 and shot 2 were
    with _connect(tmp_path) as client:  # after a restart
        again = sora_nb.resume(run_dir, client=client)
        again.wait(timeout=300)
        wait_for(lambda: all(job.done for job in again.jobs), what="every job of the run ended")
        assert len(read_audit(state_dir)) == paid
        [replaced] = [job for job in again.jobs if job.id == old.id]
        assert replaced.status == "cancelled" and replaced.error is not None
        assert replaced.error.message == "replaced by take 2 of shot 1 (board.redo)"


USER_SCRIPT = textwrap.dedent("""
    import json, sys
    import sora_nb
    from sora_nb._polling import PollPolicy

    port, run_dir, shots = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = sora_nb.connect("openai-compatible", base_url=f"http://127.0.0.1:{port}/v1", run_root=run_dir + "-unused",
                             poll_policy=PollPolicy(floor=0.05, ceiling=0.5, first=0.1))
    board = client.storyboard(shots, model="sora-2", size="1280x720", run_dir=run_dir)
    print(board.run_dir, flush=True)
    board.wait(timeout=120)
    print("finished", flush=True)  # never reached: the test kills us first
""")


def _shot_rows(run_dir: Path, shot: int) -> list[JobRecord]:
    return [row for row in ledger_rows(run_dir) if row.spec.axes.get("shot") == shot]


@pytest.mark.slow
def test_a_board_killed_after_shot_2_resumes_and_pays_for_shots_3_and_4_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL the user's process once shot 2 is on disk and shot 3 not yet asked for; ``sora_nb.resume``
    (from the run directory alone) makes shots 3 and 4 and the joined file; the server's audit counts."""
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    run_dir = tmp_path / "board"
    with loopback_simulators(tmp_path) as start:
        sim = start("--time-scale", "0.02")
        child = subprocess.Popen([sys.executable, "-c", USER_SCRIPT, str(sim.port), str(run_dir), json.dumps(SHOTS)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=child_env())
        try:
            deadline = time.monotonic() + 60
            while True:
                shot_2 = _shot_rows(run_dir, 2)
                if shot_2 and shot_2[0].downloaded_at is not None and not _shot_rows(run_dir, 3):
                    child.send_signal(signal.SIGSTOP)  # frozen: what the test saw stays true until the kill lands
                    if not _shot_rows(run_dir, 3):
                        break
                    child.send_signal(signal.SIGCONT)
                if child.poll() is not None or time.monotonic() > deadline:
                    out, err = stop(child)
                    pytest.fail(f"the moment to kill never came (exit {child.returncode}): {out!r} {err!r}")
                time.sleep(0.005)
            child.send_signal(signal.SIGKILL)
            out, _err = stop(child)
        finally:
            if child.poll() is None:
                child.kill()
                stop(child)
        assert child.returncode == -signal.SIGKILL and out.decode().splitlines() == [str(run_dir)]
        paid_before = [entry["prompt"] for entry in sim.audit()]
        assert paid_before == [SHOTS[0]["prompt"], SHOTS[1]["prompt"]]

        board = sora_nb.resume(run_dir)  # profile and base URL from the ledger's meta
        try:
            assert isinstance(board, sora_nb.Storyboard)
            board.wait(timeout=120)
        finally:
            board.close()
        paid_after = [entry["prompt"] for entry in sim.audit()][len(paid_before):]
    assert paid_after == [SHOTS[2]["prompt"], SHOTS[3]["prompt"]]  # shots 3 and 4, once each: no shot paid twice
    assert board.video_path is not None
    total = sum(float(s["seconds"]) for s in SHOTS)
    info = probe(board.video_path)
    assert abs(info.duration - total) <= (len(SHOTS) - 1) / float(info.fps)
    df = sora_nb.load_run(run_dir)
    assert df["shot"].tolist()[:4] == [1, 2, 3, 4] and df["kind"].tolist()[-1] == "stitch"
    # Shot 3 still began from shot 2's end, across the restart: its joint is as close as the one before the
    # kill (at this server's 32-pixel frames, the encoder's loss alone is about 8 levels).
    before_kill, across, after = _joint_distances(board)
    assert across < before_kill + 2.0 and max(before_kill, across, after) < 12.0


def test_the_storyboard_editor_edits_estimates_makes_and_redoes(tmp_path: Path) -> None:
    """``sora_nb.ui.storyboard``, driven through its buttons: the shot list, the estimate against the budget,
    Make, the strip and player, and Redo that names the shots and the cost before a Confirm pays for them."""
    from sora_nb import ui

    with _connect(tmp_path) as client:
        builder = ui.storyboard(client, shots=[{"prompt": "a fox wakes"}, {"prompt": "the fox runs"}], budget_usd=1.0)
        try:
            builder.add_button.click()
            rows = builder.rows.children
            rows[2].prompt.value, rows[2].seconds.value = "the fox sleeps", "8"
            assert "3 jobs, 16 s of video, est. $1.60" in builder.summary.value and "over the budget" in \
                builder.summary.value
            assert builder.make_button.disabled
            rows[2].up.click()  # reorder: the third shot becomes the second
            assert [s["prompt"] for s in builder.shots()] == ["a fox wakes", "the fox sleeps", "the fox runs"]
            builder.rows.children[0].remove.click()
            assert [s["prompt"] for s in builder.shots()] == ["the fox sleeps", "the fox runs"]
            assert "2 jobs, 12 s of video, est. $1.20" in builder.summary.value
            builder.budget.value = 5.0
            assert not builder.make_button.disabled
            builder.rows.children[0].redo.click()
            assert "Make the storyboard first" in builder.error.value
            builder.make_button.click()
            board = builder.board
            assert board is not None and builder.make_button.disabled
            board.wait(timeout=300)
            builder.refresh()
            assert builder.bar.value == 100 and builder.bar.bar_style == "success"
            assert builder.strip.value.count("sora-nb-shot") == 2
            assert "<video" in "".join(o["data"]["text/html"] for o in builder.player.outputs)
            assert client.simulator_state_dir is not None
            paid = len(read_audit(client.simulator_state_dir))
            builder.rows.children[0].prompt.value = "the fox yawns"
            builder.rows.children[0].redo.click()  # continuity: shot 2 too; said, with the cost, not done
            assert "makes shots 1-2 again (2 jobs, 12 s of video, est. $1.20)" in builder.confirm.value
            assert builder.confirm_button.layout.display is None
            assert len(read_audit(client.simulator_state_dir)) == paid
            builder.confirm_button.click()
            board.wait(timeout=300)
            assert [e["prompt"] for e in read_audit(client.simulator_state_dir)[paid:]] == ["the fox yawns",
                                                                                           "the fox runs"]
            assert board.video_path is not None and board.video_path.name == "storyboard-v2.mp4"
        finally:
            builder.close()


def test_the_storyboard_editor_enables_redo_before_its_bar_turns_green(tmp_path: Path, sent: Sent) -> None:
    """A front end applies the kernel's messages in order: a bar seen green must mean that each shot's Redo can
    be pressed (sent the other way round, a Redo clicked as the bar turned green met a disabled button)."""
    from sora_nb import ui

    with _connect(tmp_path) as client:
        builder = ui.storyboard(client, shots=[{"prompt": "a fox wakes"}, {"prompt": "the fox runs"}])
        try:
            start = len(sent.messages)
            builder.make_button.click()
            assert builder.board is not None
            builder.board.wait(timeout=300)
            builder.refresh()
            order = [(comm_id, data["state"]) for _at, comm_id, data in sent.messages[start:]
                     if data.get("method") == "update"]
            green = next(i for i, (comm_id, state) in enumerate(order)
                         if comm_id == builder.bar.comm.comm_id and state.get("bar_style") == "success")
            redo = {row.redo.comm.comm_id for row in builder.rows.children}
            enabled = [i for i, (comm_id, state) in enumerate(order)
                       if comm_id in redo and state.get("disabled") is False]
            assert len(enabled) == 2 and max(enabled) < green, order
        finally:
            builder.close()


def test_the_storyboard_editor_leaves_a_static_fallback_that_follows_its_board(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saved notebook reopened without its kernel shows the editor's board: its status, each shot's and the
    joined video's poster and prompt, kept up to date while it is made; no widget state, no key."""
    import IPython.display

    from sora_nb import _display, ui
    from sora_nb._profiles import SIMULATOR_API_KEY

    shown = Shown()
    monkeypatch.setattr(IPython.display, "display", shown)
    monkeypatch.setattr(_display, "in_kernel", lambda: True)
    with _connect(tmp_path) as client:
        builder = ui.storyboard(client, shots=[{"prompt": "a fox wakes"}, {"prompt": "the fox runs"}], budget_usd=5)
        try:
            builder._ipython_display_()
            (static, static_kw), _ = shown.calls
            assert static_kw == {"display_id": True} and "sora_nb storyboard" in static.data
            builder.make_button.click()
            board = builder.board
            assert board is not None
            board.wait(timeout=300)
            builder.refresh()
            last = shown.updates[-1]
            assert f"storyboard {board.storyboard_id}: completed" in last
            assert "a fox wakes" in last and "the fox runs" in last
            assert last.count('<img class="sora-nb-tile-poster"') == 3  # the two shots and the joined video
            assert all(_display.media_src(job.thumbnail_path) in last for job in (*board.shots, board.stitched)
                       if job is not None)
            assert not any(SIMULATOR_API_KEY in text or "Bearer" in text for text in [static.data, *shown.updates])
        finally:
            builder.close()


@pytest.mark.slow
def test_a_board_cancelled_mid_stitch_and_resumed_at_once_keeps_its_joined_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: a cancel ends the board's task, not the stitch already running in its worker thread; the cancel's
    own message says to resume, and a resume in this kernel may start at once (every job has ended). The two
    stitches of one version then shared one ``.part`` file: the late one wrote over the file the resumed board had
    just recorded and tripped on the rename (tests/test_stitch.py shows the bytes changing; here the late writer
    happens to write the same bytes). The recorded file stays as recorded, no ``.part`` is left, nothing is paid
    again."""
    import hashlib
    import threading

    from sora_nb import _stitch

    entered, release, stale_done = threading.Event(), threading.Event(), threading.Event()
    real_copy, real_stitch = _stitch._copy, _stitch.stitch
    calls: list[int] = []

    def held_copy(out: Any, *args: Any) -> None:
        calls.append(1)
        real_copy(HeldOutput(out, entered, release, after=1) if len(calls) == 1 else out, *args)

    def stitch(*args: Any) -> Any:
        first = not calls
        try:
            return real_stitch(*args)
        finally:
            if first:
                stale_done.set()

    monkeypatch.setattr(_stitch, "_copy", held_copy)
    monkeypatch.setattr(_stitch, "stitch", stitch)
    with _connect(tmp_path) as client:
        board = client.storyboard(["a fox wakes", "a hen walks"], model="sora-2", size="1280x720", continuity=False)
        assert entered.wait(120), "the board never began its stitch"
        board.cancel()
        with pytest.raises(sora_nb.JobFailedError, match="resume"):
            board.wait(timeout=30)
        again = sora_nb.resume(board.run_dir, client=client)
        assert isinstance(again, sora_nb.Storyboard)
        again.wait(timeout=120)
        assert again.video_path is not None
        recorded = again.video_path.read_bytes()
        release.set()
        assert stale_done.wait(60)
        assert client.simulator_state_dir is not None
        paid = len(read_audit(client.simulator_state_dir))
        stitched = again.stitched
        assert stitched is not None and again.video_path is not None
        assert again.video_path.read_bytes() == recorded  # a file recorded as made is never written again
        assert "sha256:" + hashlib.sha256(again.video_path.read_bytes()).hexdigest() == stitched._record.checksum
        count, _ = _frames(again.video_path)
        assert count == round(8 * float(probe(again.video_path).fps))
        assert [p.name for p in again.video_path.parent.iterdir() if p.name.endswith(".part")] == []
        again.close()
    assert paid == 2


@pytest.mark.slow
def test_a_full_disk_during_the_stitch_says_so_and_a_resume_stitches_without_paying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: the shots are made (and paid for), then the disk fills while they are joined. The board ended
    with the codec library's bare ``OSError`` (no word of what to do, nor that the shots are kept); it is a
    ``StorageError`` saying to free space and resume, and the resume joins them without a create."""
    import errno

    from sora_nb import _stitch

    real_copy = _stitch._copy
    full = [True]

    def copy_on_a_full_disk(*args: Any) -> None:
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_copy(*args)

    monkeypatch.setattr(_stitch, "_copy", copy_on_a_full_disk)
    with _connect(tmp_path) as client:
        board = client.storyboard(["a fox wakes", "a hen walks"], model="sora-2", size="1280x720", continuity=False)
        with pytest.raises(sora_nb.StorageError, match=r"No space left on device.*Fix:.*sora_nb\.resume"):
            board.wait(timeout=120)
        assert board.status == "failed" and all(job is not None and job.status == "completed" for job in board.shots)
        assert client.simulator_state_dir is not None
        paid = len(read_audit(client.simulator_state_dir))
        full[0] = False  # space freed
        again = sora_nb.resume(board.run_dir, client=client)
        assert isinstance(again, sora_nb.Storyboard)
        again.wait(timeout=120)
        assert again.video_path is not None and len(read_audit(client.simulator_state_dir)) == paid == 2
        again.close()


@pytest.mark.slow
def test_a_redo_the_ledger_refuses_leaves_the_board_being_made(tmp_path: Path) -> None:
    """Red team: a redo whose new plan the ledger refuses (a prompt holding something shaped like a key; a full
    disk alike) stopped the board's work before the plan was written: the board then ended "stopped" with its
    unfinished shot cancelled. The refusal changes nothing: the board goes on and is made from its plan, once."""
    keyish = "a hen with sk-proj-" + "Z" * 30
    with _connect(tmp_path) as client:
        board = client.storyboard(["a hen wakes", "the hen walks", "the hen sleeps"], model="sora-2",
                                  size="1280x720")
        with pytest.raises(ValueError, match="looks like it holds an API key") as refused:
            board.redo(2, prompt=keyish, confirm=True)
        assert "sk-proj-" not in str(refused.value) and keyish not in json.dumps(board.plan)
        board.wait(timeout=300)
        assert client.simulator_state_dir is not None
        made = [e["prompt"] for e in read_audit(client.simulator_state_dir)]
    assert made == ["a hen wakes", "the hen walks", "the hen sleeps"]
    assert board.status == "completed" and board.video_path is not None


KILLED_IN_A_STITCH = textwrap.dedent("""
    import hashlib, os, signal, sys
    import sora_nb
    from sora_nb import _stitch
    from sora_nb._polling import PollPolicy

    port, run_dir = sys.argv[1], sys.argv[2]
    client = sora_nb.connect("openai-compatible", base_url=f"http://127.0.0.1:{port}/v1", run_root=run_dir + "-unused",
                             poll_policy=PollPolicy(floor=0.05, ceiling=0.5, first=0.1))
    board = client.storyboard(["a fox wakes", "a hen walks"], model="sora-2", size="1280x720", continuity=False,
                              run_dir=run_dir)
    board.wait(timeout=120)
    print(hashlib.sha256(board.video_path.read_bytes()).hexdigest(), flush=True)
    real_copy = _stitch._copy

    class Killed:
        def __init__(self, out):
            self.out, self.written = out, 0
        def __getattr__(self, name):
            return getattr(self.out, name)
        def mux(self, packet):
            self.out.mux(packet)
            self.written += 1
            if self.written == 3:  # half-way through the new version's file
                os.kill(os.getpid(), signal.SIGKILL)

    _stitch._copy = lambda out, *args: real_copy(Killed(out), *args)
    board.redo(2, prompt="a hen runs")
    board.wait(timeout=120)
    print("finished", flush=True)  # never reached
""")


@pytest.mark.slow
def test_a_board_killed_in_its_stitch_keeps_the_last_file_and_resumes_without_paying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: SIGKILL the user's process half-way through joining version 2 of a board (after a redo of shot 2).
    Version 1's file is intact, the resume joins version 2 without a create (counted at the loopback server's
    audit), and no part file is left."""
    import hashlib

    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    run_dir = tmp_path / "board"
    with loopback_simulators(tmp_path) as start:
        sim = start("--time-scale", "0.02")
        child = subprocess.Popen([sys.executable, "-c", KILLED_IN_A_STITCH, str(sim.port), str(run_dir)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=child_env())
        out, err = stop(child, timeout=120)
        assert child.returncode == -signal.SIGKILL, err
        (v1_digest,) = out.decode().split()
        videos = run_dir / "videos"
        assert hashlib.sha256((videos / "storyboard-v1.mp4").read_bytes()).hexdigest() == v1_digest
        assert not (videos / "storyboard-v2.mp4").exists()
        assert [p.name for p in videos.iterdir() if p.name.endswith(".part")]  # killed half-way through writing it
        paid = sorted(entry["prompt"] for entry in sim.audit())  # the shots of a board without continuity: at once
        assert paid == ["a fox wakes", "a hen runs", "a hen walks"]

        board = sora_nb.resume(run_dir)
        try:
            assert isinstance(board, sora_nb.Storyboard)
            board.wait(timeout=120)
        finally:
            board.close()
        assert sorted(entry["prompt"] for entry in sim.audit()) == paid  # joined again, nothing made again
    assert board.video_path is not None and board.video_path.name == "storyboard-v2.mp4"
    assert [job.prompt for job in board.shots if job is not None] == ["a fox wakes", "a hen runs"]
    assert _frames(board.video_path)[0] == round(8 * float(probe(board.video_path).fps))
    assert hashlib.sha256((videos / "storyboard-v1.mp4").read_bytes()).hexdigest() == v1_digest
    assert sorted(p.name for p in videos.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_a_second_driver_of_a_board_being_made_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    """Red team (held): while a board's own work goes on (its shots between creates, or its stitch), every job may
    have ended; a second client resuming it must still be refused, or both would make the next shot."""
    with _connect(tmp_path) as client, _connect(tmp_path) as other:
        board = client.storyboard(["a hen wakes", "the hen walks", "the hen sleeps"], model="sora-2",
                                  size="1280x720")
        refused = 0
        while not board.done:
            try:
                sora_nb.resume(board.run_dir, client=other)
            except sora_nb.RunLockedError:
                refused += 1
            else:
                # The board may have ended between the check above and this resume: that one is no second driver
                # (and a second driver that did make shots shows in the audit below).
                assert board.done, "a second driver took a board still being made"
                break
            time.sleep(0.01)
        board.wait(timeout=300)
        assert client.simulator_state_dir is not None
        made = [e["prompt"] for e in read_audit(client.simulator_state_dir)]
    assert refused >= 1 and made == ["a hen wakes", "the hen walks", "the hen sleeps"]


def _frame_at(path: Path, seconds: float) -> Any:
    """The first frame shown at or after ``seconds`` (the last one, past the end)."""
    import av

    with av.open(os.fspath(path)) as container:
        frame = None
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds:
                break
        assert frame is not None
        return frame.to_image()


@pytest.mark.slow
@pytest.mark.parametrize(("profile", "mode"), [("litellm", "stitch"), ("simulator", "extend")])
def test_a_continuity_shots_poster_shows_that_shot_not_the_end_of_the_one_before(
    tmp_path: Path, profile: str, mode: str
) -> None:
    """A shot made from the last frame of the one before (or extending it) begins with that frame: a poster
    taken at its first frame (litellm's server has no posters) or the middle of the whole extended video (the
    simulator's) showed the shot before. It is taken in the shot's own part, after the fade."""
    config = SimulatorConfig(seed=3, time_scale=FAST, max_side=128, fps=8, state_dir=str(tmp_path / "sim"))
    with sora_nb.connect(profile, simulator=config, run_root=tmp_path / "runs") as client:
        board = client.storyboard(SHOTS[:3], model="sora-2", size="1280x720", mode=mode).wait(timeout=300)
    distances = []
    for before, shot in itertools.pairwise(job for job in board.shots if job is not None):
        assert before.video_path is not None and shot.video_path is not None and shot.thumbnail_path is not None
        with Image.open(shot.thumbnail_path) as image:
            poster = np.asarray(image.convert("RGB"), dtype=np.float32)
        size = (poster.shape[1], poster.shape[0])

        def seen(image: Any, size: tuple[int, int] = size) -> Any:
            return np.asarray(image.convert("RGB").resize(size), dtype=np.float32)

        end_before = seen(_frame_at(before.video_path, 1e9))
        own = float(shot.spec.seconds)
        middle = seen(_frame_at(shot.video_path, probe(shot.video_path).duration - own / 2))
        distances.append((_distance(poster, end_before), _distance(poster, middle)))
    assert all(to_before > 20.0 and to_middle < 6.0 for to_before, to_middle in distances), distances


@pytest.mark.slow
def test_retry_of_a_shot_is_a_new_take_joined_into_the_board_or_refused_naming_redo(tmp_path: Path) -> None:
    """``job.retry()`` on a shot: a plain retry added a job the board never joined (and, with continuity, left
    the shots after it starting from the old take). Now it is ``board.redo(k)``: a new take, the board joined
    again; where that would re-make shots already made after it, it is refused, naming the redo that would."""
    with _connect(tmp_path) as client:
        assert client.simulator_state_dir is not None
        apart = client.storyboard(SHOTS[:3], model="sora-2", size="1280x720", continuity=False).wait(timeout=300)
        old = apart.shots[1]
        assert old is not None
        paid = len(read_audit(client.simulator_state_dir))
        take = old.retry()
        assert take is not old and take.spec.axes["take"] == 2 and apart.shots[1] is take
        apart.wait(timeout=300)
        made = [e["prompt"] for e in read_audit(client.simulator_state_dir)][paid:]
        assert made == [SHOTS[1]["prompt"]]  # that shot alone, once
        assert apart.video_path is not None and apart.video_path.name == "storyboard-v2.mp4"
        with pytest.raises(ValueError, match=r"old take.*board\.redo\(2"):
            old.retry()  # the board has moved on to take 2
        stitched = apart.stitched
        assert stitched is not None
        with pytest.raises(ValueError, match=r"joined file.*board\.redo\(k"):
            stitched.retry()

        joined = client.storyboard(SHOTS[:3], model="sora-2", size="1280x720").wait(timeout=300)
        paid = len(read_audit(client.simulator_state_dir))
        second = joined.shots[1]
        assert second is not None
        with pytest.raises(ValueError, match=r"shot 3 starts from.*board\.redo\(2, confirm=True\)") as refused:
            second.retry()
        assert "$" in str(refused.value)  # the cost of what the redo would make
        assert len(read_audit(client.simulator_state_dir)) == paid  # refused: nothing sent

        # A continuous board stopped at a failed shot: the shots after it were never made, so a retry goes ahead.
        failing = client.storyboard(["a hen wakes", "the hen [fail] walks", "the hen sleeps"], model="sora-2",
                                    size="1280x720")
        with pytest.raises(sora_nb.JobFailedError):
            failing.wait(timeout=300)
        failed = failing.shots[1]
        assert failed is not None and failed.status == "failed" and failing.shots[2] is None
        again = failed.retry()
        assert again.spec.axes["take"] == 2 and failing.shots[1] is again
        with pytest.raises(sora_nb.JobFailedError):
            failing.wait(timeout=300)  # the same prompt fails again: the board says so, and nothing after it is sent
        made = [e["prompt"] for e in read_audit(client.simulator_state_dir)][paid:]
    assert made == ["a hen wakes", "the hen [fail] walks", "the hen [fail] walks"]
