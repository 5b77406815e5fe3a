"""Notebook display as pure functions that return HTML strings (one place calls IPython's display).

Videos are referenced by path, relative to the kernel's working directory (the notebook's folder),
so JupyterLab serves them through ``/files/`` and nothing is base64-embedded in the saved notebook.
JupyterLab rewrites the ``src`` of rendered HTML outputs (and of HTML shown in an ``Output`` widget)
to its ``/files/`` URL; it does not rewrite ``poster``, so a poster is given as a hidden ``<img>``
whose ``onload`` hands its resolved URL to the video that follows it. Voila serves the same relative
URLs once its ``file_allowlist`` admits ``mp4`` and ``webp``. Where no file server stands behind the
notebook (VS Code), posters go inline instead (:func:`inline_image_src`, a few KB each) and videos
travel as widgets (``media="bytes"`` in :mod:`sora_nb.ui`); a video is never inlined in HTML.

The widgets of :mod:`sora_nb.ui` show these strings; tests read them without a front end.

>>> from sora_nb._display import format_duration, size_label
>>> format_duration(75), size_label("1280x720")
('1:15', 'Landscape 1280×720')
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._jobs import Job
    from ._run import Run

__all__ = [
    "FAILED_STATUSES",
    "bar_state",
    "cell_label",
    "compare_buttons_html",
    "compare_html",
    "compare_video_html",
    "display_job",
    "display_run",
    "display_widget",
    "download_link_html",
    "format_duration",
    "gallery_html",
    "gallery_tile_html",
    "inline_image_src",
    "job_html",
    "job_list_html",
    "job_status_text",
    "job_title_html",
    "media_src",
    "latest_jobs",
    "run_bar_state",
    "run_counts_text",
    "run_html",
    "size_label",
    "small_image",
    "static_html",
    "status_badge_html",
    "status_words",
    "table_html",
    "tile_caption_html",
    "tile_placeholder_html",
    "varying_axes",
    "video_html",
]

FAILED_STATUSES = frozenset({"failed", "expired"})
"""Statuses shown in red (``danger``); ``cancelled`` is the user's choice and shows as ``warning``."""

INLINE_IMAGE_MAX_BYTES = 256 * 1024
"""Above this, :func:`small_image` and :func:`inline_image_src` give no image (rather than a huge data URI)."""

_IMAGE_TYPES = {".webp": "image/webp", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".gif": "image/gif"}

_BADGE = {"completed": "#2e7d32", "failed": "#c62828", "cancelled": "#6d4c41", "expired": "#6d4c41",
          "ambiguous": "#ef6c00"}
_FONT = "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px"

# Inline handlers, not <script>: they survive innerHTML in every front end that renders trusted HTML.
# ``this.src`` is the URL after the front end resolved it, so the poster follows the same route.
_POSTER_ONLOAD = "var v=this.nextElementSibling;if(v&&v.tagName==='VIDEO')v.poster=this.src"
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
_TILE_BOX = "position:relative;aspect-ratio:16/9;background:#1b1b1b;overflow:hidden;border-radius:3px"
_TILE_FIT = "position:absolute;top:0;left:0;width:100%;height:100%;object-fit:contain;margin:0"
_SYNC = {
    # One video played, paused or sought: do the same to the others of its grid. Each handler only acts
    # on videos that differ, so the events it causes on them die out after one round.
    "onplay": ("var s=this;s.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){"
               "if(v!==s&&v.paused){v.currentTime=s.currentTime;v.play().catch(function(){})}})"),
    "onpause": ("var s=this;s.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){"
                "if(v!==s&&!v.paused)v.pause()})"),
    "onseeked": ("var s=this;s.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){"
                 "if(v!==s&&Math.abs(v.currentTime-s.currentTime)>0.3)v.currentTime=s.currentTime})"),
}
_GRID_BUTTONS = (
    ("▶ Play all", "sora-nb-play-all",
     "this.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){v.play().catch(function(){})})"),
    ("Pause all", "sora-nb-pause-all",
     "this.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){v.pause()})"),
    ("Restart", "sora-nb-restart-all",
     "this.closest('.sora-nb-compare').querySelectorAll('video').forEach(function(v){v.currentTime=0})"),
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------------------------------- small pieces


def media_src(path: Path | None) -> str | None:
    """A URL for ``path`` that a notebook front end can load: relative to the working directory when
    the file is below it, else the absolute path.

    >>> media_src(None) is None
    True
    """
    if path is None:
        return None
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path.as_posix()
    return Path(rel).as_posix() if not rel.startswith("..") else path.as_posix()


def small_image(path: Path | None, *, max_bytes: int = INLINE_IMAGE_MAX_BYTES) -> tuple[str, bytes] | None:
    """The MIME type and bytes of a small image file (a poster); ``None`` when the file is missing,
    not an image or larger than ``max_bytes``.

    >>> small_image(Path("clip.mp4")) is None
    True
    """
    kind = _IMAGE_TYPES.get(path.suffix.lower()) if path is not None else None
    if path is None or kind is None:
        return None
    try:
        if path.stat().st_size > max_bytes:
            return None
        return kind, path.read_bytes()
    except OSError:
        return None


def inline_image_src(path: Path | None, *, max_bytes: int = INLINE_IMAGE_MAX_BYTES) -> str | None:
    """A ``data:`` URI of a small image (a poster), for front ends without a file server behind them;
    ``None`` where :func:`small_image` finds none.

    >>> inline_image_src(None) is None
    True
    """
    image = small_image(path, max_bytes=max_bytes)
    if image is None:
        return None
    kind, data = image
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def format_duration(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a number of seconds; ``"–"`` when unknown.

    >>> format_duration(None), format_duration(9.6), format_duration(3725)
    ('–', '0:10', '1:02:05')
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def size_label(size: str) -> str:
    """A size as people say it: orientation, then resolution.

    >>> size_label("720x1280"), size_label("1024x1024"), size_label("big")
    ('Portrait 720×1280', 'Square 1024×1024', 'big')
    """
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        return size
    w, h = int(width), int(height)
    orientation = "Landscape" if w > h else "Portrait" if h > w else "Square"
    return f"{orientation} {w}×{h}"


_STATUS_WORDS = {"pending_submit": "waiting to send", "in_progress": "generating", "unknown": "status unknown"}


def status_words(status: str, progress: int | None = None, *, done: bool = True) -> str:
    """A job's state in plain words, with its progress while it generates.

    >>> status_words("pending_submit"), status_words("in_progress", 40, done=False)
    ('waiting to send', 'generating 40 %')
    >>> status_words("completed", done=False)
    'downloading'
    """
    if status == "completed" and not done:
        return "downloading"
    words = _STATUS_WORDS.get(status, status.replace("_", " "))
    if status == "in_progress" and progress is not None and not done:
        words += f" {progress} %"
    return words


def bar_state(status: str, progress: int | None, *, done: bool, previous: str = "") -> tuple[float, str]:
    """The progress bar of one job: ``(value 0-100, bar_style)``.

    ``info`` while progress is unknown (not yet reported, or a server that never reports it, or the
    download after completion), ``""`` while it is known, ``success`` once the video is on disk,
    ``danger`` on failure and ``warning`` when cancelled or ambiguous (created or not: ``run.reconcile()``
    looks again). Success never overwrites danger.

    >>> bar_state("in_progress", 40, done=False)
    (40.0, '')
    >>> bar_state("completed", 100, done=True, previous="danger")
    (100.0, 'danger')
    """
    value = float(progress) if progress is not None else 0.0
    if status in FAILED_STATUSES:
        return value, "danger"
    if previous == "danger":
        return (100.0 if status == "completed" else value), "danger"
    if status in ("cancelled", "ambiguous"):
        return value, "warning"
    if status == "completed":
        return 100.0, "success" if done else "info"
    if progress is None:
        return 0.0, "info"
    return value, ""


def latest_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Each request's latest job: a job retried (``run.retry_failed()``) counts by its retry.

    >>> from types import SimpleNamespace as NS
    >>> a, b = NS(spec="a", status="failed"), NS(spec="a", status="completed")
    >>> [job.status for job in latest_jobs([a, b])]
    ['completed']
    """
    latest: dict[Any, Job] = {}
    for job in jobs:
        latest.pop(job.spec, None)  # keep run order of the latest attempts
        latest[job.spec] = job
    return list(latest.values())


def run_bar_state(jobs: Sequence[Job], *, previous: str = "") -> tuple[float, str]:
    """The overall bar of a run: ``(percent, bar_style)``, over each request's latest job (a failure
    retried counts by its retry); finished jobs count whole.

    ``warning`` while the run goes with failures among its jobs, ``danger`` once it ended with some,
    ``success`` once every request completed (after a successful retry too). ``previous`` is not sticky:
    the bar says the run's state now.
    """
    del previous  # the bar follows the run as it is now, a retry included
    jobs = latest_jobs(jobs)
    if not jobs:
        return 0.0, "info"
    total = 0.0
    unknown = 0
    failed = False
    for job in jobs:
        if job.done:
            total += 1.0
            failed = failed or job.status != "completed"
        elif job.progress is None:
            unknown += 1
        else:
            total += min(job.progress, 100) / 100.0
    value = 100.0 * total / len(jobs)
    if all(job.done for job in jobs):
        return 100.0, "danger" if any(j.status in FAILED_STATUSES for j in jobs) else "warning" if failed else "success"
    if failed:
        return value, "warning"
    return value, "info" if unknown == sum(not job.done for job in jobs) and value == 0 else ""


def run_counts_text(jobs: Sequence[Job]) -> str:
    """The counts beside a run's bar, in plain words, over each request's latest job.

    For example ``5/8 done · 4 completed · 1 failed · 2 generating · 1 waiting to send · 1 retried``.
    """
    latest = latest_jobs(jobs)
    done = sum(job.done for job in latest)
    counts: dict[str, int] = {}
    for job in latest:
        words = status_words(job.status, done=job.done)
        counts[words] = counts.get(words, 0) + 1
    order = ["completed", "failed", "cancelled", "expired"]
    parts = [f"{done}/{len(latest)} done"]
    parts += [f"{counts[w]} {w}" for w in order if counts.get(w)]
    parts += [f"{n} {w}" for w, n in counts.items() if w not in order]
    retried = len(jobs) - len(latest)
    if retried:
        parts.append(f"{retried} retried")
    return " · ".join(parts)


def job_status_text(job: Job) -> str:
    """One line: status, progress, time elapsed and an estimate of the time left.

    For example ``generating 42 % · 0:12 elapsed · ~0:17 left``.
    """
    parts = [status_words(job.status, job.progress, done=job.done)]
    elapsed = job.elapsed
    if elapsed is not None:
        parts.append(f"{format_duration(elapsed)} elapsed" if not job.done else f"took {format_duration(elapsed)}")
    eta = job.eta
    if eta is not None and not job.done:
        parts.append(f"~{format_duration(eta)} left")
    return " · ".join(parts)


def job_title_html(job: Job) -> str:
    """The label of a job card: prompt, then model, size, duration and style."""
    meta = [job.model, size_label(job.size), f"{job.seconds} s"]
    if job.style:
        meta.append(f"style {job.style}")
    kind = job.spec.kind
    if kind != "create":
        meta.append(kind)
    prompt = job.prompt if len(job.prompt) <= 160 else job.prompt[:157] + "…"
    return (f'<div style="{_FONT};line-height:1.35"><b>{_e(prompt)}</b><br>'
            f'<span style="opacity:.75">{_e(" · ".join(meta))} · <code>{_e(job.id)}</code></span></div>')


def video_html(
    video: Path | None,
    poster: Path | None = None,
    *,
    width: int = 360,
    autoplay: bool = False,
    preload: str = "metadata",
    attrs: Mapping[str, str] | None = None,
) -> str:
    """A ``<video>`` of a file on disk (by URL, never embedded), with its poster when there is one.

    >>> print(video_html(None))
    <div class="sora-nb-player"></div>
    """
    src, poster_src = media_src(video), media_src(poster)
    if src is None:
        return '<div class="sora-nb-player"></div>'
    extra = "".join(f' {name}="{_e(value)}"' for name, value in (attrs or {}).items())
    flags = " autoplay" if autoplay else ""
    img = (f'<img src="{_e(poster_src)}" alt="" hidden onload="{_e(_POSTER_ONLOAD)}">' if poster_src else "")
    return (f'<div class="sora-nb-player">{img}<video src="{_e(src)}" controls muted loop playsinline '
            f'preload="{_e(preload)}"{flags}{extra} style="max-width:{width}px;max-height:{width}px;display:block">'
            "</video></div>")


def download_link_html(path: Path | None) -> str:
    """A link that downloads the file (through the notebook server, by relative URL)."""
    src = media_src(path)
    if src is None or path is None:
        return ""
    return (f'<a class="sora-nb-download" href="{_e(src)}" download="{_e(path.name)}" target="_blank" '
            f'style="{_FONT}">⬇ {_e(path.name)}</a>')


# ---------------------------------------------------------------------------------------- jobs and runs


def job_html(job: Job) -> str:
    """A compact card: status, parameters, and the video (poster first) once downloaded."""
    colour = _BADGE.get(job.status, "#1565c0")
    progress = "" if job.progress is None or job.done else f" {job.progress}%"
    head = (
        f'<div style="{_FONT}">'
        f'<b style="color:{colour}">{_e(job.status)}{progress}</b> '
        f"<code>{_e(job.id)}</code> · {_e(job.model)} · {_e(job.size)} · "
        f"{_e(job.seconds)} s<br><i>{_e(job.prompt[:200])}</i>"
    )
    error = job.error
    if error is not None and job.status != "completed":
        head += f'<br><span style="color:#c62828">{_e(error.code or "error")}: {_e(error.message)}</span>'
    if job.video_path is not None:
        head += video_html(job.video_path, job.thumbnail_path)
    return head + "</div>"


def run_html(run: Run) -> str:
    """A one-line summary of a run with its counts by status."""
    counts = ", ".join(f"{n} {_e(s)}" for s, n in sorted(run.counts().items()))
    return (f'<div style="{_FONT}"><b>run {_e(run.id)}</b>: '
            f"{len(run)} jobs ({counts or 'none'}) in <code>{_e(run.run_dir)}</code></div>")


def _axes_text(job: Job, axes: Sequence[str], *, skip: Iterable[str] = ()) -> str:
    skipped = set(skip)
    values = []
    for name in axes:
        if name in skipped:
            continue
        value = job.spec.axes.get(name)
        if value is None or value == "":
            continue
        if name == "repeat":
            values.append(f"#{value}")
        elif name == "seconds":
            values.append(f"{value} s")
        else:
            text = str(value)
            values.append(text if len(text) <= 48 else text[:45] + "…")
    return " · ".join(values)


JOB_LIST_MAX = 100
"""A run's job list shows this many lines at most: its message stays small however large the run."""


def job_list_html(jobs: Sequence[Job], axes: Sequence[str], *, max_height: int = 220,
                  max_jobs: int = JOB_LIST_MAX) -> str:
    """A compact, scrollable list of a run's jobs: one line each with status, progress and axes.

    At most ``max_jobs`` lines: the jobs still going and those that did not complete first (in run
    order), then completed ones, and a last line counting the rest.
    """
    first = [job for job in jobs if not (job.done and job.status == "completed")][:max_jobs]
    if len(first) < max_jobs:
        first += [job for job in jobs if job.done and job.status == "completed"][:max_jobs - len(first)]
    rest = len(jobs) - len(first)
    jobs = first
    rows = []
    for job in jobs:
        colour = _BADGE.get(job.status, "#1565c0")
        progress = "" if job.progress is None or job.done else f"{job.progress} %"
        error = job.error
        failed = error is not None and job.status != "completed"
        note = f'<span style="color:#c62828">{_e(error.code or "")}</span>' if error and failed else ""
        words = status_words(job.status, done=job.done)
        rows.append(
            f'<tr><td><code>{_e(job.id)}</code></td><td style="color:{colour}">{_e(words)}</td>'
            f'<td style="text-align:right">{progress}</td><td>{_e(_axes_text(job, axes))}</td><td>{note}</td></tr>'
        )
    if rest > 0:
        rows.append(f'<tr><td colspan="5" style="opacity:.7">… and {rest} more (run.table() lists them all)</td></tr>')
    return (f'<div class="sora-nb-joblist" style="max-height:{max_height}px;overflow-y:auto;{_FONT}">'
            f'<table style="border-collapse:collapse;width:100%"><tbody>{"".join(rows)}</tbody></table></div>')


def status_badge_html(status: str) -> str:
    """A job's status as a small coloured badge, in plain words.

    >>> status_badge_html("failed")  # doctest: +ELLIPSIS
    '<span class="sora-nb-badge" style="background:#c62828;...">failed</span>'
    """
    colour = _BADGE.get(status, "#1565c0")
    return (f'<span class="sora-nb-badge" style="background:{colour};color:#fff;border-radius:3px;padding:0 4px;'
            f'font-size:11px;font-weight:600">{_e(status_words(status))}</span>')


def tile_caption_html(job: Job, axes: Sequence[str], *, tag: str = "div") -> str:
    """A gallery tile's caption, two lines of fixed height: the status badge and the prompt, then the
    job's other axes (the whole prompt in the tooltip)."""
    line = "overflow:hidden;text-overflow:ellipsis;white-space:nowrap;line-height:18px;height:18px"
    others = _axes_text(job, axes, skip=("prompt",)) or f"{job.model} · {job.seconds} s"
    return (f'<{tag} style="{_FONT};font-size:12px" title="{_e(job.prompt)}">'
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
                f'title="click to play" onclick="{_e(_PLAY_TILE)}" style="{_TILE_FIT};cursor:pointer;display:block">'
                f'<video class="sora-nb-tile-video" src="{_e(video)}" controls muted loop playsinline preload="none" '
                f'onplay="{_e(_ONE_AT_A_TIME)}" style="{_TILE_FIT};display:none"></video>')
    elif video:
        body = (f'<video class="sora-nb-tile-video" src="{_e(video)}" controls muted loop playsinline '
                f'preload="metadata" onplay="{_e(_ONE_AT_A_TIME)}" style="{_TILE_FIT};display:block"></video>')
    else:
        body = (f'<div style="{_TILE_FIT};display:flex;align-items:center;justify-content:center;background:#eee;'
                f'color:#555;{_FONT}">{_e(status_words(job.status))}</div>')
    return (f'<figure class="sora-nb-tile" data-job="{_e(job.id)}" style="margin:0">'
            f'<div class="sora-nb-tile-media" style="{_TILE_BOX}">{body}</div>'
            f'{tile_caption_html(job, axes, tag="figcaption")}</figure>')


def gallery_html(jobs: Sequence[Job], axes: Sequence[str], *, columns: int = 4, width: int = 200) -> str:
    """Thumbnails in a grid (:func:`gallery_tile_html`); clicking one plays it (nothing loads before)."""
    tiles = [gallery_tile_html(job, axes) for job in jobs]
    if not tiles:
        return f'<div class="sora-nb-gallery" style="{_FONT};opacity:.7">No videos match.</div>'
    return (f'<div class="sora-nb-gallery" style="display:grid;grid-template-columns:repeat({columns},'
            f'minmax(0,{width}px));gap:8px">{"".join(tiles)}</div>')


def compare_buttons_html() -> str:
    """Play all, Pause all and Restart: they act on every video under the nearest ``.sora-nb-compare``."""
    return "".join(
        f'<button class="{cls}" onclick="{_e(js)}" style="margin-right:6px">{label}</button>'
        for label, cls, js in _GRID_BUTTONS
    )


def cell_label(job: Job, axes: Sequence[str]) -> str:
    """What tells a job apart from the others of its comparison cell: its values on ``axes`` (those that
    vary and are not the grid's rows or columns; the repeat as ``#2``), then its duration.

    >>> from types import SimpleNamespace as NS
    >>> job = NS(seconds="8", spec=NS(axes={"prompt": "a fox", "model": "sora-2", "repeat": 2}))
    >>> cell_label(job, ["repeat"])
    '#2 · 8 s'
    """
    return " · ".join(part for part in (_axes_text(job, axes, skip=("seconds",)), f"{job.seconds} s") if part)


def varying_axes(jobs: Sequence[Job], *, skip: Iterable[str] = ()) -> list[str]:
    """The axes on which ``jobs`` take more than one value, in the run's order, but for ``skip``."""
    skipped = set(skip)
    names = dict.fromkeys(name for job in jobs for name in job.spec.axes if name not in skipped)
    return [name for name in names if len({repr(job.spec.axes.get(name)) for job in jobs}) > 1]


def compare_video_html(job: Job, *, width: int = 240, label: str = "") -> str:
    """One video of a comparison grid, its play, pause and seek shared with the others of the grid."""
    caption = f'<div style="{_FONT};font-size:12px;opacity:.75">{_e(label)}</div>' if label else ""
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
                    parts.append(f'<div class="sora-nb-pending" style="width:{width}px;{_FONT};opacity:.7">'
                                 f"{_e(label)}<br>{_e(status_words(job.status))}</div>")
            tds.append(f'<td style="padding:4px;vertical-align:top">{"".join(parts) or "–"}</td>')
        body.append(f'<tr><th style="padding:4px;text-align:left;max-width:180px;font-weight:600" '
                    f'title="{_e(r)}">{_e(_short(r))}</th>{"".join(tds)}</tr>')
    return (f'<div class="sora-nb-compare" style="{_FONT}"><div style="margin-bottom:6px">{compare_buttons_html()}'
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
    <div class="sora-nb-table"...<td>a corgi</td><td>completed</td>...
    """
    head = ("<th></th>" if thumbnails else "") + "".join(
        f'<th style="padding:3px 6px;text-align:left">{_e(c)}</th>' for c in columns
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
            style = ' style="color:#c62828"' if column == "status" and value in FAILED_STATUSES else ""
            cells.append(f"<td{style}>{_e(_short(_cell(value), 120))}</td>")
        rows.append(f'<tr data-job="{_e(record.get("job_id", ""))}">{"".join(cells)}</tr>')
    # JupyterLab styles rendered tables with a fixed layout and images with max-width 100%, which
    # squeezes the columns and hides the posters: the table sizes itself, and scrolls when wide.
    return (f'<div class="sora-nb-table" style="{_FONT};overflow-x:auto">'
            '<table style="border-collapse:collapse;table-layout:auto;margin:0">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


# ---------------------------------------------------------------------------------------- IPython


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


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


def static_html(title: str, jobs: Sequence[Job], *, axes: Sequence[str] = ()) -> str:
    """What a widget leaves in the saved notebook: a title, then each job's poster, status and prompt
    (:func:`gallery_tile_html`, the first :data:`STATIC_MAX_TILES`). Files by relative URL, nothing
    embedded, no widget state, no key.

    >>> print(static_html("prompt box", []))  # doctest: +ELLIPSIS
    <div class="sora-nb-static" ...><b>prompt box</b> <span ...>· live while its kernel runs</span></div></div>...
    """
    shown = list(jobs[:STATIC_MAX_TILES])
    tiles = "".join(gallery_tile_html(job, axes) for job in shown)
    more = len(jobs) - len(shown)
    grid = (f'<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax(0,200px));gap:8px">{tiles}</div>'
            if tiles else "")
    rest = f'<div style="opacity:.7">and {more} more</div>' if more > 0 else ""
    return (f'<div class="sora-nb-static" style="{_FONT}"><div style="margin-bottom:4px"><b>{_e(title)}</b> '
            f'<span style="opacity:.7">· live while its kernel runs</span></div>{grid}{rest}</div>{_STATIC_STYLE}')


def display_widget(widget: Any) -> Any:
    """Show a sora_nb widget in a notebook: its static fallback (``widget.static_html()``) as an output of
    its own, then the live widget. Returns the fallback's display handle (``None`` in VS Code, which
    shows both and keeps no widget state anyway), for :func:`update_static`.

    The single place that calls IPython's display for widgets.
    """
    from IPython.display import HTML, display

    widget.add_class("sora-nb-live")
    handle = None
    if not any(name.startswith("VSCODE_") for name in os.environ):
        handle = display(HTML(widget.static_html()), display_id=True)
    display(widget._repr_mimebundle_(), raw=True)  # not display(widget): that would come back here
    return handle


def update_static(handle: Any, text: str) -> None:
    """Replace a widget's static fallback (from the engine's loop: a display update, routed by its id)."""
    from IPython.display import HTML

    handle.update(HTML(text))


def display_job(job: Job) -> None:
    """Show a job in a notebook: a live :class:`sora_nb.ui.JobCard` when ipywidgets is there, else HTML.

    The single place that calls IPython's display for jobs.
    """
    from IPython.display import HTML, display

    if _in_kernel():
        try:
            from .ui import JobCard
        except ImportError:
            pass
        else:
            JobCard(job)._ipython_display_()
            return
    display(HTML(job_html(job)))


def display_run(run: Run) -> None:
    """Show a run: a live progress widget when ipywidgets is there, else a one-line summary."""
    from IPython.display import HTML, display

    if _in_kernel():
        try:
            from .ui import RunProgress
        except ImportError:
            pass
        else:
            RunProgress(run)._ipython_display_()
            return
    display(HTML(run_html(run)))
