"""Many jobs laid out as HTML: gallery tiles, the synchronised comparison grid, the results table, and
the static fallback (a grid of tiles) that a widget leaves in a saved notebook.

Pure functions, like :mod:`sora_nb._display` (the pieces of one job: words, states, a player), which
they build on; the widgets of :mod:`sora_nb.ui` show these strings, tests read them without a front end.

>>> from sora_nb._display_grid import tile_placeholder_html
>>> tile_placeholder_html("queued")  # doctest: +ELLIPSIS
'<div style="aspect-ratio:16/9;...">queued</div>'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._display import (
    FAILED_STATUSES,
    FONT,
    axes_text,
    inline_image_src,
    media_src,
    status_badge_html,
    status_words,
    varying_axes,
    video_html,
)
from ._display import escape as _e  # short: the f-strings below use it on every value

if TYPE_CHECKING:
    from ._jobs import Job

__all__ = [
    "PIXEL",
    "STATIC_MAX_TILES",
    "cell_label",
    "compare_buttons_html",
    "compare_html",
    "compare_sync_html",
    "compare_video_html",
    "gallery_html",
    "gallery_tile_html",
    "static_html",
    "table_html",
    "tile_caption_html",
    "tile_placeholder_html",
]

# A gallery tile's poster, clicked: every other tile of the gallery back to its poster (paused), then this
# one's video in place of its poster. By inline style, not the ``hidden`` attribute: a front end's
# stylesheet (or an inline ``display``) wins over ``hidden`` and showed the poster and the player stacked.
_PLAY_TILE = ("var t=this.closest('.sora-nb-tile'),g=t.closest('.sora-nb-gallery')||document;"
              "g.querySelectorAll('.sora-nb-tile').forEach(function(o){if(o===t)return;"
              "var v=o.querySelector('.sora-nb-tile-video'),i=o.querySelector('.sora-nb-tile-poster');"
              "if(v&&i&&v.style.display!=='none'){v.pause();v.style.display='none';i.style.display='block'}});"
              "var v=t.querySelector('.sora-nb-tile-video');this.style.display='none';v.style.display='block';"
              "v.play().catch(function(){})")
# A gallery video starting pauses the gallery's others: one plays at a time.
_ONE_AT_A_TIME = ("var s=this;(s.closest('.sora-nb-gallery')||document).querySelectorAll('video')"
                  ".forEach(function(v){if(v!==s&&!v.paused)v.pause()})")
# A tile is 16:9 by its padding, and its poster fitted by max sizes, not by aspect-ratio and object-fit: an
# untrusted notebook's HTML (a saved notebook opened elsewhere, where the static fallback shows) goes
# through JupyterLab's sanitizer, whose allowed CSS has neither (the tiles collapsed to their captions).
_TILE_BOX = "position:relative;height:0;padding-top:56.25%;background:#1b1b1b;overflow:hidden;border-radius:3px"
_TILE_FIT = "position:absolute;top:0;left:0;width:100%;height:100%;object-fit:contain;margin:0"
_POSTER_FIT = "position:absolute;top:0;right:0;bottom:0;left:0;margin:auto;height:100%;width:auto;max-width:100%"
# One video (``s``) played, paused or sought: do the same to the others of its grid. Each action only acts
# on videos that differ, so the events it causes on them die out after one round. Events arrive late:
# a play or pause that the video has already undone is not passed on (play then pause at once had the
# two videos start each other again, back and forth), nor is a seek made to follow: one that ended late
# sent the leader back to where the follower had been. A follower notes where it was sent, and a seek
# that ends there is the follow's. By the place, not by a flag: a seek made on the follower before its
# follow ended replaces it, and the browser fires a single ``seeked``, for the new place, which must be
# passed on (taken for the follow's, it was not, and the two videos stayed paused 2 s apart).
_FOLLOW = "v.__soraFollow=s.currentTime;v.currentTime=s.currentTime"
_TO_OTHERS = "s.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){if(v!==s){%s}})"
_SYNC_CODE = {
    "play": "if(s.paused)return;" + _TO_OTHERS % f"if(v.paused){{{_FOLLOW};v.play().catch(function(){{}})}}",
    "pause": "if(!s.paused)return;" + _TO_OTHERS % "if(!v.paused)v.pause()",
    "seeked": ("var f=s.__soraFollow;s.__soraFollow=null;if(f!=null&&Math.abs(s.currentTime-f)<=0.3)return;"
               + _TO_OTHERS % f"if(Math.abs(v.currentTime-s.currentTime)>0.3){{{_FOLLOW}}}"),
}
# Our own <video> elements (media="url") carry the handlers inline.
_SYNC = {f"on{event}": "var s=this;" + code for event, code in _SYNC_CODE.items()}
# ipywidgets.Video players (media="bytes", as in VS Code) are the widget manager's elements, made and
# replaced by it: the handlers listen on the grid's root instead, in the capture phase (media events do not
# bubble), installed by a hidden pixel's load handler (as the keys are, see ui/_keys.py), once per root. The
# root is looked for until the box has put the pixel in it.
PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
"""A 1×1 transparent GIF: hidden, it loads all the same, and its ``onload`` runs a widget's few lines of script."""
_SYNC_INSTALL = (
    "var img=this,tries=0;(function go(){var r=img.closest('.sora-nb-compare');"
    "if(!r){if(++tries<50)setTimeout(go,100);return}if(r.__soraSync)return;r.__soraSync=true;"
    + "".join(f"r.addEventListener('{event}',function(e){{var s=e.target;if(s.tagName!=='VIDEO')return;"
              f"{code}}},true);" for event, code in _SYNC_CODE.items())
    + "})()"
)
_GRID_BUTTONS = (
    ("▶ Play all", "sora-nb-play-all",
     "this.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){v.play().catch(function(){})})"),
    ("Pause all", "sora-nb-pause-all",
     "this.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){v.pause()})"),
    ("Restart", "sora-nb-restart-all",
     "this.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){v.currentTime=0})"),
)



def tile_caption_html(job: Job, axes: Sequence[str], *, tag: str = "div") -> str:
    """A gallery tile's caption, two lines of fixed height: the status badge and the prompt, then the
    job's other axes (the whole prompt in the tooltip)."""
    line = "overflow:hidden;text-overflow:ellipsis;white-space:nowrap;line-height:18px;height:18px"
    others = axes_text(job, axes, skip=("prompt",)) or f"{job.model} · {job.seconds} s"
    return (f'<{tag} style="{FONT};font-size:12px" title="{_e(job.prompt)}">'
            f'<div style="{line}">{status_badge_html(job.status)} {_e(job.prompt)}</div>'
            f'<div style="{line};opacity:.75">{_e(others)}</div></{tag}>')


def tile_placeholder_html(status: str) -> str:
    """A gallery tile without a poster: its status on a grey 16:9 box.

    >>> tile_placeholder_html("in_progress")  # doctest: +ELLIPSIS
    '<div style="aspect-ratio:16/9;...">generating</div>'
    """
    return (f'<div style="aspect-ratio:16/9;display:flex;align-items:center;justify-content:center;'
            f'background:#eee;color:#555">{_e(status_words(status))}</div>')


def gallery_tile_html(job: Job, axes: Sequence[str]) -> str:
    """One gallery tile: a 16:9 box with the poster (or the status) fitted in it, whatever the video's
    orientation, and the caption below; clicking the poster plays the video in its place.

    No progress figure: a tile is redrawn when what it shows changes, which would restart its video.
    """
    video, poster = media_src(job.video_path), media_src(job.thumbnail_path)
    if video and poster:
        body = (f'<img class="sora-nb-tile-poster" src="{_e(poster)}" alt="{_e(job.prompt[:80])}" '
                f'title="click to play" onclick="{_e(_PLAY_TILE)}" style="{_POSTER_FIT};cursor:pointer;display:block">'
                f'<video class="sora-nb-tile-video" src="{_e(video)}" controls muted loop playsinline preload="none" '
                f'onplay="{_e(_ONE_AT_A_TIME)}" style="{_TILE_FIT};display:none"></video>')
    elif video:
        body = (f'<video class="sora-nb-tile-video" src="{_e(video)}" controls muted loop playsinline '
                f'preload="metadata" onplay="{_e(_ONE_AT_A_TIME)}" style="{_TILE_FIT};display:block"></video>')
    else:
        body = (f'<div style="{_TILE_FIT};display:flex;align-items:center;justify-content:center;background:#eee;'
                f'color:#555;{FONT}">{_e(status_words(job.status))}</div>')
    return (f'<figure class="sora-nb-tile" data-job="{_e(job.id)}" style="margin:0">'
            f'<div class="sora-nb-tile-media" style="{_TILE_BOX}">{body}</div>'
            f'{tile_caption_html(job, axes, tag="figcaption")}</figure>')


def gallery_html(jobs: Sequence[Job], axes: Sequence[str], *, columns: int = 4, width: int = 200) -> str:
    """Thumbnails in a grid (:func:`gallery_tile_html`); clicking one plays it (nothing loads before)."""
    tiles = [gallery_tile_html(job, axes) for job in jobs]
    if not tiles:
        return f'<div class="sora-nb-gallery" style="{FONT};opacity:.7">No videos match.</div>'
    return (f'<div class="sora-nb-gallery" style="display:grid;grid-template-columns:repeat({columns},'
            f'minmax(0,{width}px));gap:8px">{"".join(tiles)}</div>')


def compare_buttons_html() -> str:
    """Play all, Pause all and Restart: they act on every video under the nearest ``.sora-nb-compare``."""
    return "".join(
        f'<button class="{cls}" onclick="{_e(js)}" style="margin-right:6px">{label}</button>'
        for label, cls, js in _GRID_BUTTONS
    )


def compare_sync_html() -> str:
    """:func:`compare_buttons_html`, and what makes the videos under the same ``.sora-nb-compare`` play, pause
    and seek together when they are ``ipywidgets.Video`` players (``media="bytes"``), not this module's.

    >>> import html
    >>> text = html.unescape(compare_sync_html())
    >>> "sora-nb-play-all" in text and "r.addEventListener('seeked'" in text
    True
    """
    return compare_buttons_html() + f'<img src="{PIXEL}" alt="" style="display:none" onload="{_e(_SYNC_INSTALL)}">'


def cell_label(job: Job, axes: Sequence[str]) -> str:
    """What tells a job apart from the others of its comparison cell: its values on ``axes`` (those that
    vary and are not the grid's rows or columns; the repeat as ``#2``), then its duration.

    >>> from types import SimpleNamespace as NS
    >>> job = NS(seconds="8", spec=NS(axes={"prompt": "a fox", "model": "sora-2", "repeat": 2}))
    >>> cell_label(job, ["repeat"])
    '#2 · 8 s'
    """
    return " · ".join(part for part in (axes_text(job, axes, skip=("seconds",)), f"{job.seconds} s") if part)


def compare_video_html(job: Job, *, width: int = 240, label: str = "") -> str:
    """One video of a comparison grid, its play, pause and seek shared with the others of the grid."""
    caption = f'<div style="{FONT};font-size:12px;opacity:.75">{_e(label)}</div>' if label else ""
    return caption + video_html(job.video_path, job.thumbnail_path, width=width, preload="auto",
                                attrs={**_SYNC, "data-job": job.id})


def compare_html(
    cells: Mapping[tuple[Any, Any], Sequence[Job]],
    row_values: Sequence[Any],
    col_values: Sequence[Any],
    *,
    rows: str,
    cols: str,
    width: int = 240,
) -> str:
    """A grid of videos, ``rows`` × ``cols``, whose play, pause and seek are synchronised.

    Playing, pausing or seeking one video does the same to every other video of the grid; the
    buttons above act on all of them at once.
    """
    head = "".join(f'<th style="padding:4px">{_e(_short(c))}</th>' for c in col_values)
    apart = varying_axes([job for jobs in cells.values() for job in jobs], skip=(rows, cols))
    body = []
    for r in row_values:
        tds = []
        for c in col_values:
            parts = []
            for job in cells.get((r, c), ()):
                label = cell_label(job, apart)
                if job.video_path is not None and job.done:
                    parts.append(compare_video_html(job, width=width, label=label))
                else:  # the status only: a progress figure would redraw (and restart) the grid's videos
                    parts.append(f'<div class="sora-nb-pending" style="width:{width}px;{FONT};opacity:.7">'
                                 f"{_e(label)}<br>{_e(status_words(job.status))}</div>")
            tds.append(f'<td style="padding:4px;vertical-align:top">{"".join(parts) or "–"}</td>')
        body.append(f'<tr><th style="padding:4px;text-align:left;max-width:180px;font-weight:600" '
                    f'title="{_e(r)}">{_e(_short(r))}</th>{"".join(tds)}</tr>')
    return (f'<div class="sora-nb-compare" style="{FONT}"><div style="margin-bottom:6px">{compare_buttons_html()}'
            f'<span style="opacity:.7">rows: {_e(rows)} · columns: {_e(cols)}</span></div>'
            f'<table style="border-collapse:collapse"><thead><tr><th></th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _short(value: Any, limit: int = 60) -> str:
    text = "–" if value is None or value == "" else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:,.2f}"
    if hasattr(value, "isoformat"):
        try:
            return str(value.isoformat(timespec="seconds"))
        except (TypeError, ValueError):
            return ""
    text = str(value)
    return "" if text in ("NaT", "<NA>", "nan") else text


def _numeric(values: Iterable[Any]) -> bool:
    """Whether a column holds figures only (its empty cells aside), and at least one: numbers, or text
    that is one (the API's durations are strings, ``"4"``).

    >>> _numeric([1, 2.5, None]), _numeric(["4", "12"]), _numeric(["a", 1]), _numeric([None]), _numeric([True])
    (True, True, False, False, False)
    """
    def figure(value: Any) -> bool:
        if isinstance(value, str):
            return value.replace(".", "", 1).isdigit()
        return isinstance(value, numbers.Real) and not isinstance(value, bool)

    shown = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return bool(shown) and all(figure(v) for v in shown)


def table_html(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    thumbnails: bool = True,
    thumb_width: int = 96,
    inline: bool = False,
) -> str:
    """A results table: one row per record, a poster first when ``thumbnails``, then ``columns``.

    Records are plain mappings (e.g. ``df.to_dict("records")``), so this needs no pandas. A poster
    links to its video, unless ``inline``: then posters are ``data:`` URIs (:func:`inline_image_src`)
    and there is no link, for front ends without a file server (where it would not load).

    >>> print(table_html([{"prompt": "a corgi", "status": "completed"}], ["prompt", "status"], thumbnails=False))
    ... # doctest: +ELLIPSIS
    <div class="sora-nb-table"...<td style="padding:3px 6px;text-align:left">a corgi</td>...
    """
    # Each column aligned one way, its header with it: figures right, words left (JupyterLab's table
    # styles right-align every cell, which left a short prompt under its left-aligned header ragged), and
    # cells padded, since a widget's HTML gets no table styles ("sora-2-pro0.55" in the leaderboard).
    align = {c: "right" if _numeric(record.get(c) for record in records) else "left" for c in columns}
    head = ("<th></th>" if thumbnails else "") + "".join(
        f'<th style="padding:3px 6px;text-align:{align[c]}">{_e(c)}</th>' for c in columns
    )
    rows = []
    for record in records:
        cells = []
        if thumbnails:
            thumb = record.get("thumbnail_path")
            video = record.get("video_path")
            src = (inline_image_src if inline else media_src)(Path(thumb)) if thumb else None
            img = (f'<img src="{_e(src)}" alt="" style="width:{thumb_width}px;max-width:none;display:block">'
                   if src else "")
            if img and video and not inline:
                img = f'<a href="{_e(media_src(Path(video)))}" target="_blank">{img}</a>'
            cells.append(f"<td>{img}</td>")
        for column in columns:
            value = record.get(column)
            red = ";color:#c62828" if column == "status" and value in FAILED_STATUSES else ""
            shown = _e(_short(_cell(value), 120))
            cells.append(f'<td style="padding:3px 6px;text-align:{align[column]}{red}">{shown}</td>')
        rows.append(f'<tr data-job="{_e(record.get("job_id", ""))}">{"".join(cells)}</tr>')
    # JupyterLab styles rendered tables with a fixed layout and images with max-width 100%, which
    # squeezes the columns and hides the posters: the table sizes itself, and scrolls when wide.
    return (f'<div class="sora-nb-table" style="{FONT};overflow-x:auto">'
            '<table style="border-collapse:collapse;table-layout:auto;margin:0">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


# ---------------------------------------------------------------------------------------- static fallback


STATIC_MAX_TILES = 12
"""A static fallback shows this many jobs at most (a 10,000-job run's would be megabytes)."""

# The static fallback is an output of its own, before the widget's. While the live widget is there
# (it carries ``sora-nb-live``) the fallback hides; when the widget's model is gone (a saved notebook
# reopened, nbviewer) the fallback shows, and the widget output's bare text ("Error displaying widget:
# model not found", which has no child elements, unlike a live widget) hides. JupyterLab, Notebook 7 and
# Voila all lay outputs out as ``.jp-OutputArea-child`` > ``.jp-OutputArea-output``.
_STATIC_STYLE = (
    "<style>"
    ".jp-OutputArea-child:has(.sora-nb-static):has(+ .jp-OutputArea-child .sora-nb-live){display:none}"
    ".jp-OutputArea-child:has(.sora-nb-static) + .jp-OutputArea-child > .jp-OutputArea-output:not(:has(*))"
    "{display:none}"
    "</style>"
)


def static_html(title: str, jobs: Sequence[Job], *, axes: Sequence[str] = (), extra: str = "") -> str:
    """What a widget leaves in the saved notebook: a title, then each job's poster, status and prompt
    (:func:`gallery_tile_html`, the first :data:`STATIC_MAX_TILES`), then ``extra`` (HTML the widget
    made, escaped: a leaderboard). Files by relative URL, nothing embedded, no widget state, no key.

    >>> print(static_html("prompt box", []))  # doctest: +ELLIPSIS
    <div class="sora-nb-static" ...><b>prompt box</b> <span ...>· live while its kernel runs</span></div></div>...
    """
    shown = list(jobs[:STATIC_MAX_TILES])
    tiles = "".join(gallery_tile_html(job, axes) for job in shown)
    more = len(jobs) - len(shown)
    grid = (f'<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax(0,200px));gap:8px">{tiles}</div>'
            if tiles else "")
    rest = f'<div style="opacity:.7">and {more} more</div>' if more > 0 else ""
    return (f'<div class="sora-nb-static" style="{FONT}"><div style="margin-bottom:4px"><b>{_e(title)}</b> '
            f'<span style="opacity:.7">· live while its kernel runs</span></div>{grid}{rest}{extra}</div>'
            f"{_STATIC_STYLE}")
