"""Notebook display of one job or run as pure functions that return HTML strings (and the one place that
calls IPython's display).

Videos are referenced by path, relative to the kernel's working directory (the notebook's folder),
so JupyterLab serves them through ``/files/`` and nothing is base64-embedded in the saved notebook.
JupyterLab rewrites the ``src`` of rendered HTML outputs (and of HTML shown in an ``Output`` widget)
to its ``/files/`` URL; it does not rewrite ``poster``, so a poster is given as a hidden ``<img>``
whose ``onload`` hands its resolved URL to the video that follows it. Voila serves the same relative
URLs once its ``file_allowlist`` admits ``mp4`` and ``webp``. Where no file server stands behind the
notebook (VS Code), posters go inline instead (:func:`inline_image_src`, a few KB each) and videos
travel as widgets (``media="bytes"`` in :mod:`sora_nb.ui`); a video is never inlined in HTML.

The widgets of :mod:`sora_nb.ui` show these strings; tests read them without a front end. Many jobs
laid out (gallery tiles, the comparison grid, the results table, the static fallback) are in
:mod:`sora_nb._display_grid`. Which widget a job or a run shows as is chosen in :mod:`sora_nb.ui`:
this module imports no widget.

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

from ._types import Character

if TYPE_CHECKING:
    from ._jobs import Job
    from ._run import Run
    from ._storyboard import Storyboard
    from ._storyboards import StoryboardRun

__all__ = [
    "FAILED_STATUSES",
    "FONT",
    "axes_text",
    "bar_state",
    "character_html",
    "display_html",
    "display_widget",
    "download_link_html",
    "escape",
    "format_duration",
    "in_kernel",
    "inline_image_src",
    "job_html",
    "job_list_html",
    "job_status_text",
    "job_title_html",
    "latest_jobs",
    "media_src",
    "run_bar_state",
    "run_counts_text",
    "run_html",
    "size_label",
    "small_image",
    "status_badge_html",
    "status_words",
    "storyboard_html",
    "storyboard_strip_html",
    "storyboard_run_html",
    "board_list_html",
    "update_static",
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
FONT = "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px"
"""The notebook's own UI font, for every block of sora_nb HTML."""

# Inline handlers, not <script>: they survive innerHTML in every front end that renders trusted HTML.
# ``this.src`` is the URL after the front end resolved it, so the poster follows the same route.
_POSTER_ONLOAD = "var v=this.nextElementSibling;if(v&&v.tagName==='VIDEO')v.poster=this.src"



def escape(value: object) -> str:
    """``value`` as text safe in HTML, quotes included (for attributes).

    >>> escape('<b title="x">')
    '&lt;b title=&quot;x&quot;&gt;'
    """
    return html.escape(str(value), quote=True)


_e = escape  # short: the f-strings below use it on every value


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


def run_bar_state(jobs: Sequence[Job], *, previous: str = "", latest: Sequence[Job] | None = None) -> tuple[float, str]:
    """The overall bar of a run: ``(percent, bar_style)``, over each request's latest job (a failure
    retried counts by its retry); finished jobs count whole. ``latest``: those jobs, when the caller
    has them already (``run._latest_jobs()``).

    ``warning`` while the run goes with failures among its jobs, ``danger`` once it ended with some,
    ``success`` once every request completed (after a successful retry too). ``previous`` is not sticky:
    the bar says the run's state now.
    """
    del previous  # the bar follows the run as it is now, a retry included
    jobs = latest_jobs(jobs) if latest is None else latest
    if not jobs:
        return 0.0, "info"
    # One pass, each job's state read once: this runs several times a second over a 10,000-job run.
    total = 0.0
    unknown = going = 0
    failed = danger = False
    for job in jobs:
        if job.done:
            total += 1.0
            status = job.status
            if status != "completed":
                failed = True
                danger = danger or status in FAILED_STATUSES
        else:
            going += 1
            progress = job.progress
            if progress is None:
                unknown += 1
            else:
                total += min(progress, 100) / 100.0
    value = 100.0 * total / len(jobs)
    if not going:
        return 100.0, "danger" if danger else "warning" if failed else "success"
    if failed:
        return value, "warning"
    return value, "info" if unknown == going and value == 0 else ""


def run_counts_text(jobs: Sequence[Job], *, latest: Sequence[Job] | None = None) -> str:
    """The counts beside a run's bar, in plain words, over each request's latest job (``latest``: those,
    when the caller has them already).

    For example ``5/8 done · 4 completed · 1 failed · 2 generating · 1 waiting to send · 1 retried``.
    """
    latest = latest_jobs(jobs) if latest is None else latest
    done = 0
    counts: dict[str, int] = {}
    for job in latest:
        finished = job.done
        done += finished
        words = status_words(job.status, done=finished)
        counts[words] = counts.get(words, 0) + 1
    order = ["completed", "failed", "cancelled", "expired"]
    parts = [f"{done}/{len(latest)} done"]
    parts += [f"{counts[w]} {w}" for w in order if counts.get(w)]
    parts += [f"{n} {w}" for w, n in counts.items() if w not in order]
    retried = len(jobs) - len(latest)
    if retried:
        parts.append(f"{retried} retried")
    return " · ".join(parts)


def backend_counts_text(jobs: Sequence[Job], *, latest: Sequence[Job] | None = None) -> str:
    """A pooled run's load per backend, over each request's latest job (``latest``: those, when the caller
    has them already): ``""`` when no job has a backend.

    For example ``wide 3 in flight, 12 done · mid 2 in flight, 8 done · 4 waiting for a backend``.

    >>> from types import SimpleNamespace as NS
    >>> jobs = [NS(spec=i, backend=b, done=d) for i, (b, d) in enumerate([("a", True), ("a", False), (None, False)])]
    >>> backend_counts_text(jobs)
    'a 1 in flight, 1 done · 1 waiting for a backend'
    """
    latest = latest_jobs(jobs) if latest is None else latest
    if not any(job.backend for job in latest):
        return ""
    by_backend: dict[str, list[int]] = {}
    for job in latest:
        if job.backend:
            counts = by_backend.setdefault(job.backend, [0, 0])
            counts[job.done] += 1
    parts = [" ".join(filter(None, (name, f"{going} in flight," if going else "", f"{done} done"))).rstrip(",")
             for name, (going, done) in by_backend.items()]
    waiting = sum(not job.backend and not job.done for job in latest)
    if waiting:
        parts.append(f"{waiting} waiting for a backend")
    return " · ".join(parts)


def job_status_text(job: Job) -> str:
    """One line: status, progress, time elapsed and an estimate of the time left (and a pool's backend).

    For example ``generating 42 % · 0:12 elapsed · ~0:17 left``, or ``... · on xai`` for a pooled job.
    """
    parts = [status_words(job.status, job.progress, done=job.done)]
    if job.status == "queued" and job.queue_position is not None:
        parts.append(f"{job.queue_position} ahead in the queue")
    elapsed = job.elapsed
    if elapsed is not None:
        parts.append(f"{format_duration(elapsed)} elapsed" if not job.done else f"took {format_duration(elapsed)}")
    eta = job.eta
    if eta is not None and not job.done:
        parts.append(f"~{format_duration(eta)} left")
    if job.backend:
        parts.append(f"on {job.backend}")  # a pool's backend (sora_nb.pool)
    return " · ".join(parts)


def character_html(character: Character) -> str:
    """A character as a chip: its poster (inline, small), its name and its id.

    >>> character_html(Character(id="char_1", name="Ada", created_at=0))  # doctest: +ELLIPSIS
    '<span class="sora-nb-character" ...><b>Ada</b> <code ...>char_1</code></span>'
    """
    src = inline_image_src(Path(character.poster_path)) if character.poster_path else None
    poster = (f'<img src="{_e(src)}" alt="{_e(character.name)}" style="height:40px;border-radius:3px;'
              'vertical-align:middle;margin-right:4px">' if src else "")
    return (f'<span class="sora-nb-character" style="{FONT};display:inline-block;padding:2px 6px;margin:2px;'
            f'border:1px solid var(--jp-border-color2,#ccc);border-radius:4px">{poster}<b>{_e(character.name)}</b> '
            f'<code style="opacity:.6">{_e(character.id)}</code></span>')


def job_title_html(job: Job) -> str:
    """The label of a job card: prompt, then model, size, duration and style (and the characters)."""
    meta = [job.model, size_label(job.size), f"{job.seconds} s"]
    if job.style:
        meta.append(f"style {job.style}")
    if job.spec.characters:
        meta.append("with " + ", ".join(name for _, name in job.spec.characters))
    kind = job.spec.kind
    if kind != "create":
        meta.append(kind)
    prompt = job.prompt if len(job.prompt) <= 160 else job.prompt[:157] + "…"
    return (f'<div style="{FONT};line-height:1.35"><b>{_e(prompt)}</b><br>'
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
            f'style="{FONT}">⬇ {_e(path.name)}</a>')


# ---------------------------------------------------------------------------------------- jobs and runs


def job_html(job: Job) -> str:
    """A compact card: status, parameters, and the video (poster first) once downloaded."""
    colour = _BADGE.get(job.status, "#1565c0")
    progress = "" if job.progress is None or job.done else f" {job.progress}%"
    head = (
        f'<div style="{FONT}">'
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


def storyboard_html(board: Storyboard) -> str:
    """A storyboard: its state, a strip of its shots' posters (status and prompt under each), the whole video."""
    return (f'<div class="sora-nb-storyboard" style="{FONT}">{storyboard_strip_html(board)}'
            f"{video_html(board.video_path, board.thumbnail_path, width=480)}</div>")


def storyboard_strip_html(board: Storyboard) -> str:
    """A storyboard's state line and its strip of shots (poster, number, length, status, prompt)."""
    colour = _BADGE.get(board.status, "#1565c0")
    tiles = []
    for number, (shot, job) in enumerate(zip(board.plan["shots"], board.shots, strict=True), 1):
        status = "not sent" if job is None else status_words(job.status, job.progress, done=job.done)
        src = inline_image_src(job.thumbnail_path) if job is not None else None
        poster = (f'<img src="{_e(src)}" alt="" style="width:160px;display:block">' if src else
                  '<div style="width:160px;height:90px;background:#eee"></div>')
        tiles.append(f'<div class="sora-nb-shot" style="width:160px">{poster}<b>{number}</b> · {_e(shot["seconds"])} s'
                     f' · {_e(status)}<br><i>{_e(shot["prompt"][:60])}</i></div>')
    error = board.error
    problem = f'<br><span style="color:#c62828">{_e(error)}</span>' if error is not None else ""
    return (
        f'<div style="{FONT}"><b style="color:{colour}">{_e(board.status)} '
        f"{board.progress}%</b> storyboard <code>{_e(board.storyboard_id)}</code> · {_e(board.mode)}"
        f"{' · continuous' if board.continuity else ''} · {_e(board.plan['model'])} · {_e(board.plan['size'])}{problem}"
        f'<div class="sora-nb-strip" style="display:flex;gap:6px;flex-wrap:wrap;margin:4px 0">{"".join(tiles)}</div>'
        "</div>"
    )


def storyboard_run_html(run: StoryboardRun) -> str:
    """A sweep of storyboards: the progress over all of them, then each board's strip and joined video."""
    counts = ", ".join(f"{n} {_e(s)}" for s, n in sorted(run.board_counts().items()))
    boards = "".join(
        f'<div class="sora-nb-board" style="margin:6px 0">{storyboard_strip_html(board)}'
        f"{video_html(board.video_path, board.thumbnail_path, width=320) if board.video_path else ''}</div>"
        for board in run.boards)
    return (f'<div class="sora-nb-storyboards" style="{FONT}"><b>{run.progress}%</b> run <code>{_e(run.id)}</code>: '
            f"{len(run.boards)} storyboards ({counts}) in <code>{_e(run.run_dir)}</code>{boards}</div>")


def board_list_html(run: StoryboardRun) -> str:
    """A line per board of a sweep of storyboards: what tells it apart, its status, shots made, progress."""
    lines = []
    for board in run.boards:
        made = sum(job is not None and job.status == "completed" for job in board.shots)
        label = " · ".join(str(board.plan[name]) for name in ("model", "size", "mode"))
        repeat = board.plan.get("axes", {}).get("repeat")
        label += (" · continuous" if board.continuity else "") + (f" · #{repeat}" if repeat else "")
        lines.append(
            f'<div class="sora-nb-board-line"><code>{_e(board.storyboard_id)}</code> {_e(label)}: '
            f'<b style="color:{_BADGE.get(board.status, "#1565c0")}">{_e(board.status)}</b> {board.progress}% · '
            f"{made} of {len(board.plan['shots'])} shots</div>")
    return f'<div style="{FONT}">{"".join(lines)}</div>'


def run_html(run: Run) -> str:
    """A one-line summary of a run with its counts by status."""
    counts = ", ".join(f"{n} {_e(s)}" for s, n in sorted(run.counts().items()))
    return (f'<div style="{FONT}"><b>run {_e(run.id)}</b>: '
            f"{len(run)} jobs ({counts or 'none'}) in <code>{_e(run.run_dir)}</code></div>")


def axes_text(job: Job, axes: Sequence[str], *, skip: Iterable[str] = ()) -> str:
    """A job's values on ``axes`` (but ``skip``), in a few words: the repeat as ``#2``, seconds as ``8 s``."""
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
    first: list[Job] = []
    completed: list[Job] = []
    for job in jobs:  # one pass, keeping no more than the lines shown
        if job.done and job.status == "completed":
            if len(completed) < max_jobs:
                completed.append(job)
        else:
            first.append(job)
            if len(first) == max_jobs:
                break
    first += completed[:max_jobs - len(first)]
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
            f'<td style="text-align:right">{progress}</td><td>{_e(axes_text(job, axes))}</td><td>{note}</td></tr>'
        )
    if rest > 0:
        rows.append(f'<tr><td colspan="5" style="opacity:.7">… and {rest} more (run.table() lists them all)</td></tr>')
    return (f'<div class="sora-nb-joblist" style="max-height:{max_height}px;overflow-y:auto;{FONT}">'
            f'<table style="border-collapse:collapse;width:100%"><tbody>{"".join(rows)}</tbody></table></div>')


def status_badge_html(status: str) -> str:
    """A job's status as a small coloured badge, in plain words.

    >>> status_badge_html("failed")  # doctest: +ELLIPSIS
    '<span class="sora-nb-badge" style="background:#c62828;...">failed</span>'
    """
    colour = _BADGE.get(status, "#1565c0")
    return (f'<span class="sora-nb-badge" style="background:{colour};color:#fff;border-radius:3px;padding:0 4px;'
            f'font-size:11px;font-weight:600">{_e(status_words(status))}</span>')


def varying_axes(jobs: Sequence[Job], *, skip: Iterable[str] = ()) -> list[str]:
    """The axes on which ``jobs`` take more than one value, in the run's order, but for ``skip``."""
    skipped = set(skip)
    names = dict.fromkeys(name for job in jobs for name in job.spec.axes if name not in skipped)
    return [name for name in names if len({repr(job.spec.axes.get(name)) for job in jobs}) > 1]


# ---------------------------------------------------------------------------------------- IPython


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where widgets can show), not a terminal IPython or a script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


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
    bundle = widget._repr_mimebundle_()
    if handle is not None:
        # The text is what an untrusted notebook (opened where it was not run) shows for the widget, under
        # its fallback: the repr it had when displayed went stale there ("0 of 4 rated" below "1 of 4 rated").
        bundle["text/plain"] = ""
    display(bundle, raw=True)  # not display(widget): that would come back here
    return handle


def update_static(handle: Any, text: str) -> None:
    """Replace a widget's static fallback (from the engine's loop: a display update, routed by its id)."""
    from IPython.display import HTML

    handle.update(HTML(text))


def display_html(text: str) -> None:
    """Show ``text`` as HTML output (a job or a run where no widget can show)."""
    from IPython.display import HTML, display

    display(HTML(text))
