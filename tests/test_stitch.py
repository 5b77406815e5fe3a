"""Joining shots into one MP4 (sora_nb._stitch): shots that differ in size, frame rate or audio are re-encoded
to one, sound is kept in step with the pictures, and a failure leaves no file (nor half of one) behind."""

from __future__ import annotations

import errno
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from support import HeldOutput

import sora_nb._stitch
from sora_nb._stitch import _copy, fit_image, probe, stitch, write_reference
from sora_nb.simulator import render_video


def _clip(path: Path, *, width: int, height: int, fps: int, seconds: int, audio: bool) -> Path:
    """A clip of flat grey frames (brightening), with a quiet noise track when ``audio``."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48_000, layout="stereo") if audio else None
        for i in range(fps * seconds):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 10 * i % 250, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            for i in range(48_000 * seconds // 1024):
                samples = (np.random.default_rng(i).random((2, 1024)) * 0.1).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 48_000, i * 1024
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def test_shots_that_differ_are_reencoded_to_the_first_and_keep_their_sound(tmp_path: Path) -> None:
    shots = [
        _clip(tmp_path / "a.mp4", width=64, height=36, fps=12, seconds=2, audio=False),
        _clip(tmp_path / "b.mp4", width=96, height=54, fps=24, seconds=1, audio=True),
        _clip(tmp_path / "c.mp4", width=64, height=36, fps=12, seconds=1, audio=False),
    ]
    joined = stitch(shots, tmp_path / "out" / "board.mp4")
    info = probe(joined)
    assert (info.width, info.height, info.fps, info.pix_fmt) == (64, 36, Fraction(12), "yuv420p")
    assert abs(info.duration - 4.0) <= 2 / 12  # within a frame per joint
    assert info.audio is not None and info.audio[0] == "aac"
    with av.open(str(joined)) as container:
        frames = sum(1 for _ in container.decode(video=0))  # decodes end to end
        stream = container.streams.audio[0]
        assert stream.duration is not None and stream.time_base is not None
        assert abs(float(stream.duration * stream.time_base) - 4.0) < 0.1  # silence where a shot had none
    assert frames == 48
    assert sorted(p.name for p in joined.parent.iterdir()) == ["board.mp4"]


def test_shots_with_one_encoding_are_copied_not_reencoded(tmp_path: Path) -> None:
    shot = render_video(tmp_path / "cache", prompt="a red fox", seconds=1, max_side=64)
    joined = stitch([shot, shot, shot], tmp_path / "board.mp4")
    assert probe(joined).extradata == probe(shot).extradata  # the shots' own stream, not a new encoding
    assert abs(probe(joined).duration - 3.0) < 1e-6


def test_a_failure_leaves_no_file_nor_half_of_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = render_video(tmp_path / "cache", prompt="a red fox", seconds=1, max_side=64)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    out = tmp_path / "out"
    with pytest.raises(av.error.InvalidDataError):
        stitch([good, bad], out / "board.mp4")
    previous = stitch([good], out / "board.mp4")  # a board made before, then a stitch that fails half-way
    made = previous.read_bytes()

    def copy_then_fail(container: object, *args: object) -> None:
        _copy(container, *args)  # type: ignore[arg-type]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sora_nb._stitch, "_copy", copy_then_fail)
    with pytest.raises(OSError, match="No space"):
        stitch([good, good], out / "board.mp4")
    assert sorted(p.name for p in out.iterdir()) == ["board.mp4"] and previous.read_bytes() == made


def test_the_reference_is_the_last_frame_fitted_to_the_size(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "a.mp4", width=64, height=36, fps=12, seconds=2, audio=False)
    reference = write_reference(clip, "1280x720", tmp_path / "ref" / "shot2.png")
    with Image.open(reference) as image:
        assert image.size == (1280, 720)
        level = np.asarray(image.convert("L"), dtype=np.float32).mean()
    assert abs(level - 10 * 23 % 250) < 4  # the last frame's grey, not the first's
    assert fit_image(Image.new("RGB", (64, 36)), "720x1280").size == (720, 1280)


def test_a_late_stitch_of_the_same_board_never_writes_over_the_one_made_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: a board cancelled mid-stitch leaves that stitch running in its thread, and a resume stitches the
    same file again at once. Both wrote ``.board.mp4.part``: the late one went on writing into the file the other
    had renamed into place (before: the made board's bytes changed after it was recorded, and the late stitch
    failed on its rename). Now each stitch has its own part, and removes the parts left for its file: the late
    one fails on its rename, the board stays as made, and no part is left behind."""
    import threading

    shots = [render_video(tmp_path / "cache", prompt=p, seconds=1, max_side=64) for p in ("a fox", "a hen")]
    dest = tmp_path / "out" / "board.mp4"
    entered, release = threading.Event(), threading.Event()
    outcome: list[BaseException | Path] = []

    def late() -> None:
        try:
            outcome.append(stitch(shots, dest))
        except BaseException as exc:  # reported to the test below
            outcome.append(exc)

    thread = threading.Thread(target=late)
    monkeypatch.setattr(sora_nb._stitch, "_copy", lambda container, *args: _copy(
        HeldOutput(container, entered, release) if threading.current_thread() is thread else container, *args))
    thread.start()
    try:
        assert entered.wait(30)
        made = stitch(shots, dest).read_bytes()
    finally:
        release.set()
        thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], FileNotFoundError), outcome
    assert probe(dest).duration == pytest.approx(2.0, abs=0.3) and dest.read_bytes() == made
    assert sorted(p.name for p in dest.parent.iterdir()) == ["board.mp4"]
