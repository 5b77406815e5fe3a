"""Display as pure functions: progress-bar rules, escaped HTML that references files by relative path,
inline posters with a size cap (``_display``, ``_display_grid``), the one place that calls IPython's display, and
the widget a job or a run shows as (chosen in ``ui``)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from support import Shown, wait_for, write_image

import sora_nb
from sora_nb import _display, _display_grid, ui


def test_bar_state_rules() -> None:
    assert _display.bar_state("pending_submit", None, done=False) == (0.0, "info")
    assert _display.bar_state("queued", 0, done=False) == (0.0, "")
    assert _display.bar_state("in_progress", 42, done=False) == (42.0, "")
    assert _display.bar_state("completed", 100, done=False) == (100.0, "info")  # still downloading
    assert _display.bar_state("completed", 100, done=True) == (100.0, "success")
    assert _display.bar_state("failed", 30, done=True) == (30.0, "danger")
    assert _display.bar_state("cancelled", 30, done=True) == (30.0, "warning")
    # Success never overwrites danger.
    assert _display.bar_state("completed", 100, done=True, previous="danger") == (100.0, "danger")


def test_html_is_escaped_and_references_files(here: Path) -> None:
    video = here / "runs" / "r" / "videos" / "j.mp4"
    poster = here / "runs" / "r" / "thumbnails" / "j.webp"
    text = _display.video_html(video, poster)
    assert 'src="runs/r/videos/j.mp4"' in text and 'src="runs/r/thumbnails/j.webp"' in text
    assert "base64" not in text and "data:" not in text
    table = _display_grid.table_html([{"prompt": "<script>alert(1)</script>", "status": "failed"}],
                                     ["prompt", "status"], thumbnails=False)
    assert "<script>" not in table and "&lt;script&gt;" in table


def test_inline_posters_are_data_uris_under_a_size_cap(tmp_path: Path) -> None:
    poster = write_image(tmp_path / "p.webp", (64, 36))
    src = _display.inline_image_src(poster)
    assert src is not None and src.startswith("data:image/webp;base64,")
    assert base64.b64decode(src.partition(",")[2]) == poster.read_bytes()
    assert _display.inline_image_src(poster, max_bytes=poster.stat().st_size - 1) is None  # no huge data URI
    assert _display.inline_image_src(tmp_path / "missing.webp") is None
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not an image")
    assert _display.inline_image_src(video) is None  # a video is never inlined


# ---------------------------------------------------------------------------------------- display hooks


def test_display_job_shows_a_live_card_in_a_kernel_else_html(client: sora_nb.Client,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown = Shown()
    monkeypatch.setattr(IPython.display, "display", shown)
    job = client.generate("a windmill").wait(timeout=30)

    monkeypatch.setattr(_display, "in_kernel", lambda: False)
    job._ipython_display_()
    obj, _ = shown.calls.pop()
    assert isinstance(obj, IPython.display.HTML) and "<video" in obj.data

    monkeypatch.setattr(_display, "in_kernel", lambda: True)
    job._ipython_display_()
    (static, static_kw), (bundle, kw) = shown.calls[-2:]
    assert kw == {"raw": True} and "application/vnd.jupyter.widget-view+json" in bundle
    assert static_kw == {"display_id": True} and "a windmill" in static.data and "<video" in static.data
    job.run._ipython_display_()
    (static, _), (bundle, _) = shown.calls[-2:]
    assert "application/vnd.jupyter.widget-view+json" in bundle and f"run {job.run.id}" in static.data


def test_a_displayed_widget_leaves_a_static_fallback_that_follows_its_job(
    client: sora_nb.Client, here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved notebook reopened showed "Error displaying widget: model not found" for every card: the
    HTML beside the widget's view in one bundle is never shown while a widget renderer exists. The
    fallback is now an output of its own, kept up to date, with no widget state and no key in it."""
    import IPython.display

    shown = Shown()
    monkeypatch.setattr(IPython.display, "display", shown)
    monkeypatch.setattr(_display, "in_kernel", lambda: True)
    job = client.generate("a windmill at dusk")
    card = ui.card(job)
    card._ipython_display_()  # what `card` (or `job`) as the last line of a cell does
    (static, static_kw), (bundle, _) = shown.calls
    assert static_kw == {"display_id": True} and 'class="sora-nb-static"' in static.data
    assert "a windmill at dusk" in static.data and "text/html" not in bundle
    assert ".sora-nb-live" in static.data  # the rule that hides it while the live widget is there
    assert "sora-nb-live" in card._dom_classes
    job.wait(timeout=30)
    poster = _display.media_src(job.thumbnail_path)
    wait_for(lambda: any(poster in text and ">completed<" in text for text in shown.updates), what="the update")
    assert not any("api_key" in text or "Bearer" in text for text in [static.data, *shown.updates])
    card.close()


def test_a_runs_bar_and_counts_say_its_state_now_in_plain_words() -> None:
    """The bar turned solid red at the first failure and stayed red after a successful retry, and the
    counts said ``pending_submit``."""
    from types import SimpleNamespace as NS

    def job(spec: str, status: str, progress: int | None = None) -> Any:
        return NS(spec=spec, status=status, progress=progress, done=status in ("completed", "failed", "cancelled"))

    going = [job("a", "failed"), job("b", "in_progress", 40), job("c", "pending_submit"), job("d", "queued")]
    assert _display.run_bar_state(going)[1] == "warning"  # not red while it goes on
    assert _display.run_counts_text(going) == "1/4 done · 1 failed · 1 generating · 1 waiting to send · 1 queued"
    retried = [job("a", "failed"), job("b", "completed"), job("a", "completed")]
    assert _display.run_bar_state(retried, previous="danger") == (100.0, "success")
    assert _display.run_counts_text(retried) == "2/2 done · 2 completed · 1 retried"
    assert _display.run_bar_state([job("a", "failed"), job("b", "completed")]) == (100.0, "danger")


def test_a_runs_job_list_stays_small_however_large_the_run() -> None:
    from types import SimpleNamespace as NS

    def job(n: int, status: str) -> Any:
        return NS(id=f"j{n:05d}", status=status, progress=None, done=status != "in_progress", error=None,
                  spec=NS(axes={"prompt": f"p{n}"}))

    jobs = [job(n, "completed") for n in range(9_000)] + [job(n, "in_progress") for n in range(9_000, 9_010)]
    text = _display.job_list_html(jobs, ["prompt"])
    assert text.count("<tr>") == _display.JOB_LIST_MAX + 1 and "… and 8910 more" in text
    assert text.index("j09000") < text.index("j00000")  # the jobs still going come first
