"""measure_video on real MP4s: each defect flag fires on its defect and stays quiet on clean videos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import sora_nb
from sora_nb._metrics import FLAGS, METRIC_KEYS, decode_threads, measure_video
from sora_nb.simulator import render_video

W, H, FPS = 96, 64, 12


def _moving(index: int) -> np.ndarray:
    """A clean frame: a textured gradient drifting right, so there is motion and detail but no flicker."""
    ys, xs = np.mgrid[0:H, 0:W]
    wave = 0.5 + 0.5 * np.sin((xs + 2 * index) / 5.0) * np.cos(ys / 7.0)
    frame = np.empty((H, W, 3), np.uint8)
    frame[..., 0] = (60 + 150 * wave).astype(np.uint8)
    frame[..., 1] = (120 - 60 * wave).astype(np.uint8)
    frame[..., 2] = (40 + 100 * (1 - wave)).astype(np.uint8)
    return frame


def encode(path: Path, frames: int, make: Callable[[int], np.ndarray], *, audio: bool = False) -> Path:
    """Encode ``frames`` frames drawn by ``make(i)`` as an H.264 MP4 (and a silent AAC track if asked)."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        sound = container.add_stream("aac", rate=16000) if audio else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(make(i), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024 * 16), np.float32), format="flt", layout="mono")
            samples.sample_rate, samples.pts = 16000, 0
            container.mux(sound.encode(samples))
            container.mux(sound.encode(None))
    return path


def _black_middle(i: int) -> np.ndarray:
    return np.zeros((H, W, 3), np.uint8) if 20 <= i < 28 else _moving(i)


def _frozen_tail(i: int) -> np.ndarray:
    return _moving(min(i, 30))


def _flicker(i: int) -> np.ndarray:
    return np.clip(_moving(i).astype(np.int16) + (40 if i % 2 else -40), 0, 255).astype(np.uint8)


DEFECTS: dict[str, tuple[int, Callable[[int], np.ndarray]]] = {
    "black": (48, _black_middle),
    "frozen": (48, _frozen_tail),
    "flicker": (48, _flicker),
    "duration": (36, _moving),  # 3 s delivered for 4 s asked
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    made = {"clean": encode(root / "clean.mp4", 48, _moving)}
    for name, (frames, make) in DEFECTS.items():
        made[name] = encode(root / f"{name}.mp4", frames, make)
    return made


ASKED = {"seconds": "4", "size": f"{W}x{H}"}


def test_clean_video_metadata_and_no_flags(videos: dict[str, Path]) -> None:
    m = measure_video(videos["clean"], requested=ASKED)
    assert list(m) == list(METRIC_KEYS)
    shape = (m["duration_s"], m["fps"], m["frames"], m["width"], m["height"], m["codec"])
    assert shape == (4.0, 12.0, 48, W, H, "h264")
    assert m["audio"] is False and m["file_bytes"] == videos["clean"].stat().st_size
    assert m["bitrate_bps"] == round(m["file_bytes"] * 8 / 4.0)
    assert m["defects"] == "" and not any(m[f"flag_{f}"] for f in FLAGS)
    assert m["black_share"] == 0.0 and m["frozen_share"] == 0.0 and m["scene_cuts"] == 0
    assert 0.0 < m["motion"] < 0.2 and m["temporal_flickering"] == pytest.approx(1 - m["motion"])
    assert m["sharpness"] > 1.0 and m["colourfulness"] > 10.0


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_raises_its_flag_only(videos: dict[str, Path], defect: str) -> None:
    m = measure_video(videos[defect], requested=ASKED)
    assert m["defects"] == defect, m
    assert m[f"flag_{defect}"] is True


def test_black_and_frozen_shares_measure_the_defect(videos: dict[str, Path]) -> None:
    assert measure_video(videos["black"])["black_share"] == pytest.approx(8 / 48, abs=1e-6)
    # 17 repeated frames; the encoder may still refine the first one or two after the change.
    assert 15 / 47 - 1e-6 <= measure_video(videos["frozen"])["frozen_share"] <= 17 / 47 + 1e-6
    # Two cuts: into the black span and out of it.
    assert measure_video(videos["black"])["scene_cuts"] == 2


def test_flicker_scores_lower_on_vbench_formula(videos: dict[str, Path]) -> None:
    clean, flicker = measure_video(videos["clean"]), measure_video(videos["flicker"])
    assert flicker["temporal_flickering"] < clean["temporal_flickering"]
    assert flicker["flicker"] > 10 * max(clean["flicker"], 0.1)


def test_size_aspect_and_audio_conformance(tmp_path: Path, videos: dict[str, Path]) -> None:
    m = measure_video(videos["clean"], requested={"size": f"{2 * W}x{2 * H}"})
    assert (m["flag_size"], m["flag_aspect"]) == (True, False)
    assert measure_video(videos["clean"], requested={"size": f"{2 * W}x{2 * H}", "check_resolution": False})[
        "defects"] == ""
    m = measure_video(videos["clean"], requested={"size": "1280x1280"})
    assert m["flag_aspect"] and m["flag_size"]
    assert measure_video(videos["clean"], requested={"audio": True})["defects"] == "audio"
    with_audio = encode(tmp_path / "audio.mp4", 24, _moving, audio=True)
    m = measure_video(with_audio, requested={"audio": True, "seconds": 2})
    assert m["audio"] is True and m["defects"] == ""


def test_bad_input_names_the_field(tmp_path: Path, videos: dict[str, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="no video at"):
        measure_video(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="not a readable video"):
        measure_video(tmp_path / "junk.mp4")
    with pytest.raises(ValueError, match=r"requested\['size'\] must look like '1280x720'"):
        measure_video(videos["clean"], requested={"size": "big"})
    with pytest.raises(ValueError, match=r"requested\['seconds'\]"):
        measure_video(videos["clean"], requested={"seconds": "four"})


def test_memory_stays_flat_with_length(tmp_path: Path) -> None:
    """A 4x longer video must not need 4x the memory: frames are streamed, not collected."""
    side = 480

    def big(i: int) -> np.ndarray:
        return np.full((side, side, 3), (i * 7) % 255, np.uint8)

    def peak(frames: int) -> int:
        path = tmp_path / f"{frames}.mp4"
        with av.open(str(path), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width = stream.height = side
            stream.pix_fmt = "yuv420p"
            stream.codec_context.options = {"preset": "ultrafast"}
            for i in range(frames):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(big(i), format="rgb24")))
            container.mux(stream.encode(None))
        tracemalloc.start()
        try:
            measure_video(path)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(24), peak(96)
    # One frame at full size is 690 KB; collecting frames would add ~50 MB over the long video.
    assert long < short + 2_000_000, (short, long)


def test_simulator_video_measures(tmp_path: Path) -> None:
    path = render_video(tmp_path, prompt="a corgi surfing at sunset", seconds=2)
    m = sora_nb.measure_video(path, requested={"seconds": "2", "size": "1280x720", "check_resolution": False})
    assert m["defects"] == "" and m["motion"] > 0


def test_register_metric_validates() -> None:
    with pytest.raises(ValueError, match="lower-case letters"):
        sora_nb.register_metric("Clip Score", lambda p, s: 1.0)
    with pytest.raises(ValueError, match="built-in"):
        sora_nb.register_metric("motion", lambda p, s: 1.0)
    with pytest.raises(TypeError, match="must be callable"):
        sora_nb.register_metric("clip", 3)  # type: ignore[arg-type]


_FAULTS_CHILD = """
import json, resource, sys
from sora_nb._metrics import measure_video
measure_video(sys.argv[1]); measure_video(sys.argv[1])  # imports, first-use allocations, the file cache
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
m = measure_video(sys.argv[1])
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "frames": m["frames"]}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and ru_minflt")
def test_measuring_in_a_dask_worker_does_not_page_fault_every_frame(tmp_path: Path) -> None:
    """A dask worker starts with MALLOC_TRIM_THRESHOLD_ set (distributed's default), which stops glibc from
    keeping large freed blocks: every temporary array over 128 kB is a new mmap, faulted in page by page.
    Measuring in such a process must not allocate one per frame (it did: ~210 faults a frame at 640x360,
    +45 % CPU per video). Counts page faults, not time."""
    width, height = 640, 360
    ys, xs = np.mgrid[0:height, 0:width]
    path = tmp_path / "360p.mp4"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast"}
        for i in range(48):
            wave = (127 + 100 * np.sin((xs + 6 * i) / 23.0) * np.cos((ys - 3 * i) / 17.0)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.stack([wave, 255 - wave, wave // 2], axis=-1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(sora_nb.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", _FAULTS_CHILD, str(path)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=True).stdout
    figures = json.loads(out)
    # Before: ~180 a frame (one 320x180 intp copy alone is 113 pages); now ~26, with nothing kept or
    # copied per frame beyond FFmpeg's own buffers and the variances' temporaries.
    assert figures["frames"] == 48 and figures["faults"] / figures["frames"] < 50, figures


def test_decode_threads_follow_the_pool_convention(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool's worker says its share of the cores in OMP_NUM_THREADS (dask, Ray: 1); else FFmpeg chooses."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert decode_threads() == 0
    for value, threads in (("1", 1), ("3", 3), ("", 0), ("four", 0), ("-2", 0)):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert decode_threads() == threads


def test_one_decoding_thread_or_many_measure_the_same(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Frame threads change how fast a video decodes, never what it measures (the defects included)."""
    paths = [render_video(tmp_path, prompt="a corgi surfing", seconds=2, max_side=500, defect=defect)
             for defect in ("", "black", "frozen", "flicker")]
    results = {}
    for value in ("1", "3", None):
        if value is None:
            monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        else:
            monkeypatch.setenv("OMP_NUM_THREADS", value)
        results[value] = [measure_video(p, {"seconds": "2"}) for p in paths]
    assert results["1"] == results["3"] == results[None]
    assert [m["defects"] for m in results["1"]] == ["", "black", "frozen", "flicker"]
