"""The comparison grid: a run's videos pivoted by two axes, played and paused together."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display, _display_grid
from ._job import MediaMode, resolve_media, video_widget
from ._sync import ErrorLine, LiveBox, show_html

if TYPE_CHECKING:
    from .._jobs import Job
    from .._run import Run

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

    Several jobs in one cell (repeats, or an axis left out) are shown side by side, each labelled with
    what tells them apart (its repeat, duration and the other axes). Each job is its own widget, redrawn
    only when that job changes, so a video being watched keeps playing while the others fill in.

    Args:
        run: the run to show.
        rows, cols: the axes (a sweep axis, or ``prompt``, ``model``, ``size``, ``seconds``, ``style``).
        width: of each video, in pixels.
        media: ``"url"`` plays the files through the notebook server (nothing embedded), ``"bytes"``
            sends each as an ``ipywidgets.Video`` (not saved in the notebook unless widget state is),
            ``"auto"`` picks bytes in VS Code. Either way the videos play, pause and seek together.
        refresh_interval: seconds between redraws (of the cells that changed).

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
        # One widget per header and per job, each redrawn only when what it shows changes: a job that
        # changes redraws its own cell and nothing else, so a video being watched keeps playing.
        self.grid = widgets.GridBox([], layout=widgets.Layout(grid_gap="4px 8px", align_items="flex-start"))
        self._headers: dict[tuple[str, Any], Any] = {}
        self._cells: dict[tuple[Any, Any], Any] = {}
        self._players: dict[str, tuple[Any, Any]] = {}  # job id -> (what it shows, its widget)
        axes_note = f"rows: {html.escape(rows)} · columns: {html.escape(cols)}"
        # The buttons, and the videos' handlers (inline on our own players, on this widget for ipywidgets'),
        # act on every video under .sora-nb-compare (this widget).
        buttons = (_display_grid.compare_buttons_html() if self.media_mode == "url" else
                   _display_grid.compare_sync_html())
        note = widgets.HTML(f'{buttons}<span style="opacity:.7">{axes_note}</span>')
        note.add_class("sora-nb-compare-note")
        super().__init__([note, self.grid, self.error])
        self.grid.add_class("sora-nb-compare-grid")
        self.add_class("sora-nb-compare-widget")
        self.add_class("sora-nb-compare")
        self._follow(run._runtime, run, self._render, interval=refresh_interval)

    def html(self) -> str:
        """The grid as one piece of HTML (the static picture of what the widget shows with ``media="url"``)."""
        row_values, col_values, cells = pivot(self.run._videos(), self.rows, self.cols)
        return _display_grid.compare_html(cells, row_values, col_values, rows=self.rows, cols=self.cols,
                                          width=self.width)

    def _render(self) -> None:
        jobs = self.run._videos()
        row_values, col_values, cells = pivot(jobs, self.rows, self.cols)
        apart = _display.varying_axes(jobs, skip=(self.rows, self.cols))
        children = [self._header("corner", ""), *(self._header("col", c) for c in col_values)]
        for r in row_values:
            children.append(self._header("row", r))
            for c in col_values:
                cell = self._cells.get((r, c))
                if cell is None:
                    cell = self._cells[(r, c)] = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"))
                players = tuple(self._player(job, apart) for job in cells.get((r, c), ()))
                if cell.children != players:
                    cell.children = players
                children.append(cell)
        columns = f"fit-content(240px) repeat({len(col_values)}, max-content)"  # headers no wider than they need
        if self.grid.layout.grid_template_columns != columns:
            self.grid.layout.grid_template_columns = columns
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

    def _player(self, job: Job, apart: list[str]) -> Any:
        """A job's cell content, made again only when what it shows changes (a video is sent once)."""
        video = job.video_path if job.done else None
        shows = (video if video is not None else job.status, _display_grid.cell_label(job, apart))
        known = self._players.get(job.id)
        if known is not None and known[0] == shows:
            return known[1]
        if known is not None:
            for item in (*getattr(known[1], "children", ()), known[1]):
                item.close()
        label = _display_grid.cell_label(job, apart)
        if video is None:  # the status only: a progress figure would redraw the cell for nothing
            player = widgets.HTML(f'<div style="width:{self.width}px;opacity:.7">{html.escape(label)}<br>'
                                  f"{html.escape(_display.status_words(job.status))}</div>")
            player.add_class("sora-nb-pending")
        elif self.media_mode == "url":
            player = widgets.Output()
            show_html(player, _display_grid.compare_video_html(job, width=self.width, label=label))
        else:
            player = widgets.VBox([
                widgets.HTML(f'<div style="font-size:12px;opacity:.75">{html.escape(label)}</div>'),
                video_widget(video, controls=True, layout=widgets.Layout(width=f"{self.width}px")),
            ])
        player.add_class("sora-nb-compare-cell")
        self._players[job.id] = (shows, player)
        return player

    def close(self) -> None:
        super().close()  # first: no redraw makes new players after this
        players = [item for _shows, player in getattr(self, "_players", {}).values()
                   for item in (*getattr(player, "children", ()), player)]
        for item in (*players, *getattr(self, "_cells", {}).values(), *getattr(self, "_headers", {}).values()):
            item.close()

    def _static_title(self) -> str:
        return f"run {self.run.id}: {self.rows} × {self.cols}"

    def _static_jobs(self) -> list[Job]:
        return self.run._videos()

    def __repr__(self) -> str:
        return f"<CompareGrid run={self.run.id} rows={self.rows!r} cols={self.cols!r}>"
