"""The simulator's videos differ measurably by model and style, and its seeded defects are all caught by
measure_video (and only they): something real for metrics, leaderboards and demos to find."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from support import FAST

import sora_nb
from sora_nb._styles import apply_style
from sora_nb.simulator import SimulatorConfig, SimulatorTransport, render_video
from sora_nb.simulator._config import DEFECTS

SMALL = {"max_side": 128, "seconds": 2}
ASKED = {"seconds": "2", "size": "1280x720", "check_resolution": False}


def _measure(tmp_path: Path, **options: object) -> dict[str, object]:
    path = render_video(tmp_path, **{**SMALL, **options})  # type: ignore[arg-type]
    return sora_nb.measure_video(path, requested=ASKED)


@pytest.mark.slow
def test_every_seeded_defect_is_flagged_and_no_clean_video_is(tmp_path: Path) -> None:
    """48 videos: 2 models x 3 styles x 4 seeds clean, and each defect on 2 models x 3 styles x 2 seeds."""
    prompts = [apply_style("a corgi surfing at sunset", s) for s in (None, "noir", "anime")]
    found: list[tuple[str, str]] = []
    for model, prompt, seed in itertools.product(["sora-2", "sora-2-pro"], prompts, "abcd"):
        m = _measure(tmp_path, prompt=prompt, model=model, variation=seed)
        found.append(("", m["defects"]))  # type: ignore[arg-type]
    for defect, model, prompt, seed in itertools.product(DEFECTS, ["sora-2", "sora-2-pro"], prompts, "ab"):
        m = _measure(tmp_path, prompt=prompt, model=model, variation=seed, defect=defect)
        found.append((defect, m["defects"]))  # type: ignore[arg-type]
    assert len(found) >= 40
    wrong = [(expected, got) for expected, got in found if expected != got]
    assert not wrong, wrong


def test_pro_is_sharper_with_more_motion_and_styles_change_colour(tmp_path: Path) -> None:
    for style in (None, "cinematic", "vintage"):
        prompt = apply_style("a paper boat drifting down a rainy street", style)
        for seed in "ab":
            base = _measure(tmp_path, prompt=prompt, model="sora-2", variation=seed)
            pro = _measure(tmp_path, prompt=prompt, model="sora-2-pro", variation=seed)
            assert pro["sharpness"] > 1.2 * base["sharpness"], (style, base, pro)  # type: ignore[operator]
            assert pro["motion"] > 1.2 * base["motion"], (style, base, pro)  # type: ignore[operator]
    colour = {s: _measure(tmp_path, prompt=apply_style("a cat skiing", s))["colourfulness"]
              for s in ("noir", "vintage", "anime")}
    assert colour["noir"] == 0.0 and colour["vintage"] < colour["anime"]


def test_defects_reach_a_run_through_the_api(tmp_path: Path) -> None:
    """``[defect:<kind>]`` in a prompt, end to end: the run's DataFrame flags exactly that defect."""
    prompts = ["a corgi surfing", *(f"a corgi surfing [defect:{d}]" for d in DEFECTS)]
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path) as client:
        run = client.sweep(prompt=prompts).start().wait(timeout=60)
        df = run.to_dataframe()
    shown = ["prompt", "metric_defects", "metric_duration_s", "metric_black_share", "metric_frozen_share",
             "metric_flicker"]
    assert df["metric_defects"].tolist() == ["", *DEFECTS], df[shown].to_string()


@pytest.mark.slow
def test_the_defect_rate_is_seeded(tmp_path: Path) -> None:
    def defects(seed: int) -> list[str]:
        transport = SimulatorTransport(SimulatorConfig(seed=seed, time_scale=FAST, max_side=96, defect_rate=0.5,
                                                       defects=("frozen", "black")))
        with sora_nb.connect("simulator", transport=transport, run_root=tmp_path / str(seed)) as client:
            run = client.sweep(prompt="a corgi surfing", repeats=8).start().wait(timeout=60)
            return [str(d) for d in run.to_dataframe()["metric_defects"]]

    first = defects(5)
    assert first == defects(5)  # the same seed delivers the same defects
    assert set(first) <= {"", "frozen", "black"} and 0 < first.count("") < 8, first


def test_bad_defect_options_are_refused() -> None:
    with pytest.raises(ValueError, match="defects must be some of black, frozen, flicker, duration"):
        SimulatorConfig(defects=("blurry",))
    with pytest.raises(ValueError, match="defect_rate must be a probability"):
        SimulatorConfig(defect_rate=2.0)


def test_caption_model_false_leaves_no_model_name_in_the_picture() -> None:
    """A blind arena on the simulator: by default each video is captioned with its model in the top-left
    corner (the arena's screenshot showed "sora-2" and "sora-2-pro" before the vote). Without the caption,
    the corner shows what the rest of the picture does, and nothing else changes."""
    import tempfile
    from types import SimpleNamespace

    import av
    import numpy as np

    from sora_nb.simulator._render import RenderSpec, ensure_rendered
    from sora_nb.simulator._store import Job as SimJob

    job = SimpleNamespace(segments=(("a red fox in the snow", 1),), size="1280x720", reference=None,
                          model="sora-2-pro", id="video_1", extra={})
    specs = {caption: SimJob.render_spec(job, SimulatorConfig(max_side=160, caption_model=caption))  # type: ignore[arg-type]
             for caption in (True, False)}
    assert (specs[True].label, specs[False].label) == ("sora-2-pro", "")

    def first_frame(spec: RenderSpec, cache: str) -> np.ndarray:
        with av.open(str(ensure_rendered(spec, cache).video)) as container:
            return next(container.decode(video=0)).to_ndarray(format="gray").astype(int)

    with tempfile.TemporaryDirectory() as cache:
        diff = np.abs(first_frame(specs[True], cache) - first_frame(specs[False], cache))
    corner, below = diff[:14, :70].mean(), diff[30:, :].mean()
    # The caption's letters in the corner; below it the same picture (the codec's noise aside).
    assert corner > 4 * below and below < 3, (corner, below)
