"""The comparison grid: a run's videos pivoted by two axes, played and paused together."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display
from ._sync import ErrorLine, LiveBox

if TYPE_CHECKING:
    from .._jobs import Job, Run

__all__ = ["CompareGrid", "pivot"]

_SPEC_FIELDS = ("prompt", "model", "size", "seconds", "style")


def axis_value(job: Job, name: str) -> Any:
    """A job's coordinate on ``name``: its sweep axis, else the request field of that name."""
    if name in job.spec.axes:
        return job.spec.axes[name]
    return getattr(job.spec, name, None)


def pivot(jobs: list[Job], rows: str, cols: str) -> tuple[list[Any], list[Any], dict[tuple[Any, Any], list[Job]]]:
    """Row values and column values in the order they first appear, and the jobs of each cell."""
    row_values: dict[Any, None] = {}
    col_values: dict[Any, None] = {}
    cells: dict[tuple[Any, Any], list[Job]] = {}
    for job in jobs:
        r, c = axis_value(job, rows), axis_value(job, cols)
        row_values.setdefault(r)
        col_values.setdefault(c)
        cells.setdefault((r, c), []).append(job)
    return list(row_values), list(col_values), cells


class CompareGrid(LiveBox):
    """A run's videos in a grid, rows × columns by two axes (``prompt`` × ``model`` by default), with
    synchronised play, pause and seek, and buttons acting on all of them; cells fill in live.

    Several jobs in one cell (repeats, or an axis left out) are shown side by side.

    >>> run.compare(rows="prompt", cols="model")  # doctest: +SKIP
    """

    def __init__(self, run: Run, *, rows: str = "prompt", cols: str = "model", width: int = 240,
                 refresh_interval: float = 0.5) -> None:
        allowed = list(dict.fromkeys([*run.axes, *_SPEC_FIELDS]))
        for name in (rows, cols):
            if name not in allowed:
                raise ValueError(f"{name!r} is not an axis of run {run.id}. Allowed: {', '.join(allowed)}.")
        if rows == cols:
            raise ValueError(f"rows and cols are both {rows!r}. Fix: pick two different axes, e.g. rows='prompt', "
                             "cols='model'.")
        self.run, self.rows, self.cols, self.width = run, rows, cols, width
        self.grid = widgets.Output()
        self.grid.add_class("sora-nb-compare-grid")
        self.error = ErrorLine()
        super().__init__([self.grid, self.error])
        self.add_class("sora-nb-compare-widget")
        self._follow(run.runtime, run, self._render, interval=refresh_interval)

    def html(self) -> str:
        """The grid as HTML (what the widget shows)."""
        row_values, col_values, cells = pivot(list(self.run.jobs), self.rows, self.cols)
        return _display.compare_html(cells, row_values, col_values, rows=self.rows, cols=self.cols, width=self.width)

    def _render(self) -> None:
        self._show_changed(self.grid, self.html())

    def __repr__(self) -> str:
        return f"<CompareGrid run={self.run.id} rows={self.rows!r} cols={self.cols!r}>"
