"""Notebook display as pure functions that return HTML strings (one place calls IPython's display).

Videos are referenced by path, relative to the kernel's working directory (the notebook's folder),
so JupyterLab serves them through ``/files/`` and nothing is base64-embedded in the saved notebook.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._jobs import Job, Run

__all__ = ["display_job", "display_run", "job_html", "media_src", "run_html"]

_BADGE = {"completed": "#2e7d32", "failed": "#c62828", "cancelled": "#6d4c41", "expired": "#6d4c41"}


def media_src(path: Path | None) -> str | None:
    """A URL for ``path`` that a notebook front end can load: relative to the working directory when
    the file is below it, else the absolute path."""
    if path is None:
        return None
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path.as_posix()
    return Path(rel).as_posix() if not rel.startswith("..") else path.as_posix()


def job_html(job: Job) -> str:
    """A compact card: status, parameters, and the video (poster first) once downloaded."""
    colour = _BADGE.get(job.status, "#1565c0")
    progress = "" if job.progress is None or job.done else f" {job.progress}%"
    head = (
        f'<div style="font-family:sans-serif;font-size:13px">'
        f'<b style="color:{colour}">{html.escape(job.status)}{progress}</b> '
        f"<code>{html.escape(job.id)}</code> · {html.escape(job.model)} · {html.escape(job.size)} · "
        f"{html.escape(job.seconds)} s<br><i>{html.escape(job.prompt[:200])}</i>"
    )
    error = job.error
    if error is not None and job.status != "completed":
        head += f'<br><span style="color:#c62828">{html.escape(error.code or "error")}: {html.escape(error.message)}</span>'
    src, poster = media_src(job.video_path), media_src(job.thumbnail_path)
    if src:
        poster_attr = f' poster="{html.escape(poster)}"' if poster else ""
        head += (f'<br><video src="{html.escape(src)}"{poster_attr} controls muted loop playsinline '
                 f'style="max-width:360px;max-height:360px"></video>')
    return head + "</div>"


def run_html(run: Run) -> str:
    """A one-line summary of a run with its counts by status."""
    counts = ", ".join(f"{n} {html.escape(s)}" for s, n in sorted(run.counts().items()))
    return (f'<div style="font-family:sans-serif;font-size:13px"><b>run {html.escape(run.id)}</b>: '
            f"{len(run)} jobs ({counts or 'none'}) in <code>{html.escape(str(run.run_dir))}</code></div>")


def display_job(job: Job) -> None:
    """Show a job in a notebook (the single place that calls IPython's display for jobs)."""
    from IPython.display import HTML, display

    display(HTML(job_html(job)))


def display_run(run: Run) -> None:
    """Show a run in a notebook."""
    from IPython.display import HTML, display

    display(HTML(run_html(run)))
