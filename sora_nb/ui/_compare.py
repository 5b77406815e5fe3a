"""The comparison grid: a run's videos pivoted by two axes, played and paused together."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display
from ._job import MediaMode, resolve_media, video_widget
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

    Args:
        run: the run to show.
        rows, cols: the axes (a sweep axis, or ``prompt``, ``model``, ``size``, ``seconds``, ``style``).
        width: of each video, in pixels.
        media: ``"url"`` plays the files through the notebook server (nothing embedded), ``"bytes"``
            sends each as an ``ipywidgets.Video`` (not saved in the notebook unless widget state is),
            ``"auto"`` picks bytes in VS Code. With bytes the videos start together (autoplay, loop)
            but play, pause and seek are not synchronised: that needs the page's JavaScript.
        refresh_interval: seconds between redraws.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> grid = run.compare(rows="prompt", cols="model")
    >>> grid.rows, grid.cols
    ('prompt', 'model')
    >>> client.close()
    """

    def __init__(self, run: Run, *, rows: str = "prompt", cols: str = "model", width: int = 240,
                 media: MediaMode = "auto", refresh_interval: float = 0.5) -> None:
        allowed = list(dict.fromkeys([*run.axes, *_SPEC_FIELDS]))
        for name in (rows, cols):
            if name not in allowed:
                raise ValueError(f"{name!r} is not an axis of run {run.id}. Allowed: {', '.join(allowed)}.")
        if rows == cols:
            raise ValueError(f"rows and cols are both {rows!r}. Fix: pick two different axes, e.g. rows='prompt', "
                             "cols='model'.")
        self.run, self.rows, self.cols, self.width = run, rows, cols, width
        self.media_mode: MediaMode = resolve_media(media)
        self.error = ErrorLine()
        if self.media_mode == "url":
            self.grid: Any = widgets.Output()
            super().__init__([self.grid, self.error])
        else:
            self.grid = widgets.GridBox([], layout=widgets.Layout(grid_gap="4px 8px", align_items="flex-start"))
            note = widgets.HTML(f'<span style="opacity:.7">rows: {html.escape(rows)} · columns: '
                                f"{html.escape(cols)} · play/pause sync needs JupyterLab, Notebook 7 or Voila</span>")
            note.add_class("sora-nb-compare-note")
            super().__init__([note, self.grid, self.error])
            self._headers: dict[tuple[str, Any], Any] = {}
            self._cells: dict[tuple[Any, Any], Any] = {}
            self._players: dict[str, tuple[Any, Any]] = {}  # job id -> (what it shows, its widget)
        self.grid.add_class("sora-nb-compare-grid")
        self.add_class("sora-nb-compare-widget")
        self._follow(run.runtime, run, self._render, interval=refresh_interval)

    def html(self) -> str:
        """The grid as HTML (what the widget shows with ``media="url"``)."""
        row_values, col_values, cells = pivot(list(self.run.jobs), self.rows, self.cols)
        return _display.compare_html(cells, row_values, col_values, rows=self.rows, cols=self.cols, width=self.width)

    def _render(self) -> None:
        if self.media_mode == "url":
            self._show_changed(self.grid, self.html())
            return
        row_values, col_values, cells = pivot(list(self.run.jobs), self.rows, self.cols)
        children = [self._header("corner", ""), *(self._header("col", c) for c in col_values)]
        for r in row_values:
            children.append(self._header("row", r))
            for c in col_values:
                cell = self._cells.get((r, c))
                if cell is None:
                    cell = self._cells[(r, c)] = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"))
                players = tuple(self._player(job) for job in cells.get((r, c), ()))
                if cell.children != players:
                    cell.children = players
                children.append(cell)
        self.grid.layout.grid_template_columns = f"auto repeat({len(col_values)}, max-content)"
        if tuple(children) != self.grid.children:
            self.grid.children = tuple(children)

    def _header(self, kind: str, value: Any) -> Any:
        label = self._headers.get((kind, value))
        if label is None:
            text = "" if kind == "corner" else "–" if value is None or value == "" else str(value)
            style = "max-width:180px;" if kind == "row" else ""
            label = self._headers[(kind, value)] = widgets.HTML(
                f'<div title="{html.escape(text)}" style="{style}font-weight:600;overflow:hidden;'
                f'text-overflow:ellipsis;white-space:nowrap">{html.escape(text)}</div>')
        return label

    def _player(self, job: Job) -> Any:
        """A job's cell content, made again only when what it shows changes (a video is sent once)."""
        video = job.video_path if job.done else None
        shows = video if video is not None else job.status
        known = self._players.get(job.id)
        if known is not None and known[0] == shows:
            return known[1]
        if known is not None:
            known[1].close()
        if video is not None:
            player = video_widget(video, controls=True, layout=widgets.Layout(width=f"{self.width}px"))
        else:  # the status only: a progress figure would redraw the cell for nothing
            player = widgets.HTML(f'<div style="width:{self.width}px;opacity:.7">'
                                  f"{html.escape(job.status.replace('_', ' '))}</div>")
            player.add_class("sora-nb-pending")
        self._players[job.id] = (shows, player)
        return player

    def close(self) -> None:
        super().close()  # first: no redraw makes new players after this
        players = [player for _shows, player in getattr(self, "_players", {}).values()]
        for item in (*players, *getattr(self, "_cells", {}).values(), *getattr(self, "_headers", {}).values()):
            item.close()

    def __repr__(self) -> str:
        return f"<CompareGrid run={self.run.id} rows={self.rows!r} cols={self.cols!r}>"
