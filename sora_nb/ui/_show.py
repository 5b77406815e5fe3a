"""What a job or a run shows as when it is the last line of a cell: a live widget in a kernel, else HTML.

The choice of widget lives here, with the widgets: :mod:`sora_nb._display` only draws HTML and never
imports them. ``job._ipython_display_()`` and ``run._ipython_display_()`` come here through
:mod:`sora_nb.ui` (and show the HTML themselves where ipywidgets is not installed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _display
from ._job import JobCard
from ._progress import RunProgress

if TYPE_CHECKING:
    from .._jobs import Job
    from .._run import Run

__all__ = ["display_job", "display_run"]


def display_job(job: Job) -> None:
    """Show a job: a live :class:`~sora_nb.ui.JobCard` in a kernel, else its HTML card."""
    if _display.in_kernel():
        JobCard(job)._ipython_display_()
    else:
        _display.display_html(_display.job_html(job))


def display_run(run: Run) -> None:
    """Show a run: its live :class:`~sora_nb.ui.RunProgress` in a kernel, else a one-line summary."""
    if _display.in_kernel():
        RunProgress(run)._ipython_display_()
    else:
        _display.display_html(_display.run_html(run))
