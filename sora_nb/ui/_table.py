"""The results table: a run's DataFrame with posters, sortable, kept live."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display_grid
from .._results import REQUEST_COLUMNS
from ._job import MediaMode, resolve_media
from ._sync import ErrorLine, LiveBox, guarded

if TYPE_CHECKING:
    import pandas

    from .._jobs import Job
    from .._run import Run

__all__ = ["DEFAULT_COLUMNS", "ResultsTable"]

DEFAULT_COLUMNS = ("status", "progress", "total_s", "estimated_cost_usd", "error_code")
"""Shown after the run's axes unless ``columns=`` says otherwise."""

_RUN_ORDER = "(run order)"


class ResultsTable(LiveBox):
    """The run's DataFrame (``run.to_dataframe()``) as a table with a poster per row, sortable by any
    column (ascending or descending), ``page_size`` rows a page (Prev / Next), refreshed as jobs change.

    Sorting happens in the kernel, so it survives the live refresh and works in every front end.

    ``media``: ``"url"`` shows the posters through the notebook server (nothing embedded), each a link
    to its video; ``"bytes"`` puts the posters in the HTML as ``data:`` URIs (a few KB each; none
    above 256 KB), without links, since a video would not load there; ``"auto"`` picks bytes in VS Code.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> run.table(sort_by="total_s", ascending=False)  # doctest: +ELLIPSIS
    <ResultsTable run=... rows=2>
    >>> client.close()
    """

    def __init__(
        self,
        run: Run,
        *,
        columns: Sequence[str] | None = None,
        sort_by: str | None = None,
        ascending: bool = True,
        thumbnails: bool = True,
        page_size: int = 50,
        media: MediaMode = "auto",
        refresh_interval: float = 1.0,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size={page_size!r} must be at least 1. Fix: e.g. page_size=50.")
        self.run = run
        self.media_mode: MediaMode = resolve_media(media)
        self.thumbnails, self.page_size = thumbnails, page_size
        self.page = 0
        self._frame: tuple[tuple[object, ...], pandas.DataFrame] | None = None  # see _rows
        leading = list(dict.fromkeys([*run.axes, *REQUEST_COLUMNS]))
        self.columns = list(columns) if columns is not None else [*leading, *DEFAULT_COLUMNS]
        if sort_by is not None and sort_by not in self.columns:
            raise ValueError(f"sort_by={sort_by!r} is not a column of this table. Allowed: {', '.join(self.columns)}. "
                             "Fix: sort by one of them, or add it to columns=.")
        self.sort_by = widgets.Dropdown(options=[_RUN_ORDER, *self.columns], value=sort_by or _RUN_ORDER,
                                        description="Sort by", style={"description_width": "50px"},
                                        layout=widgets.Layout(width="240px"))
        self.ascending = widgets.ToggleButton(value=ascending, description="ascending" if ascending else "descending",
                                              icon="sort-amount-asc" if ascending else "sort-amount-desc",
                                              layout=widgets.Layout(width="auto"))
        self.summary = widgets.HTML("")
        # Pages, like the gallery: a redraw sends one page of rows, however large the run.
        self.prev_button = widgets.Button(description="◀ Prev", layout=widgets.Layout(width="auto"), disabled=True)
        self.next_button = widgets.Button(description="Next ▶", layout=widgets.Layout(width="auto"), disabled=True)
        self.output = widgets.Output()
        self.output.add_class("sora-nb-table-output")
        self.error = ErrorLine()
        super().__init__([widgets.HBox([self.sort_by, self.ascending, self.prev_button, self.summary,
                                        self.next_button], layout=widgets.Layout(align_items="center")),
                          self.output, self.error])
        self.add_class("sora-nb-results")
        self._follow(run._runtime, run, self._render, interval=refresh_interval)
        self.sort_by.observe(guarded(self.error, lambda _c: self._turn(None)), "value")
        self.prev_button.on_click(guarded(self.error, lambda _b: self._turn(-1)))
        self.next_button.on_click(guarded(self.error, lambda _b: self._turn(+1)))
        self.ascending.observe(guarded(self.error, self._toggled), "value")

    def _toggled(self, change: dict[str, Any]) -> None:
        up = bool(change["new"])
        with self.ascending.hold_sync():
            self.ascending.description = "ascending" if up else "descending"
            self.ascending.icon = "sort-amount-asc" if up else "sort-amount-desc"
        self._turn(None)

    def _turn(self, step: int | None) -> None:
        """Next or previous page; ``None``: back to the first (a new sort order)."""
        self.page = 0 if step is None else max(0, self.page + step)
        self._coalescer.mark()

    def dataframe(self) -> pandas.DataFrame:
        """Every row in the chosen order, all pages (all columns of ``run.to_dataframe()``)."""
        return self._sorted(self.run.to_dataframe())

    def _rows(self) -> pandas.DataFrame:
        """``run.to_dataframe()``, made again only when the run changed (see ``Run._rows_version``): turning
        the page or the sort of a finished 10,000-job run made all its rows each time (~0.3 s)."""
        version = self.run._rows_version()
        if self._frame is None or self._frame[0] != version:
            self._frame = (version, self.run.to_dataframe())
        return self._frame[1]

    def _sorted(self, df: pandas.DataFrame) -> pandas.DataFrame:
        key = self.sort_by.value
        if key != _RUN_ORDER and key in df.columns:
            df = df.sort_values(key, ascending=bool(self.ascending.value), na_position="last", kind="stable")
        elif not self.ascending.value:
            df = df.iloc[::-1]
        return df

    def _page(self) -> tuple[pandas.DataFrame, int]:
        """The rows of the current page, and how many rows there are in all. In run order only the
        page's jobs are made into rows: a redraw of a 10,000-job run then costs what 50 rows cost."""
        if self.sort_by.value != _RUN_ORDER:
            df = self._sorted(self._rows())
            total = len(df)
        else:
            jobs = list(self.run.jobs)
            total = len(jobs)
        pages = max(1, -(-total // self.page_size))
        self.page = min(self.page, pages - 1)
        first = self.page * self.page_size
        if self.sort_by.value != _RUN_ORDER:
            return df.iloc[first:first + self.page_size], total
        if not self.ascending.value:
            jobs.reverse()
        shown = self.run._dataframe_of(jobs[first:first + self.page_size], page=True)
        return (shown if self.ascending.value else shown.iloc[::-1]), total

    def _render(self) -> None:
        shown, total = self._page()
        pages = max(1, -(-total // self.page_size))
        first = self.page * self.page_size
        columns = [c for c in self.columns if c in shown.columns]
        records = shown.to_dict("records")
        text = _display_grid.table_html(records, columns, thumbnails=self.thumbnails, inline=self.media_mode == "bytes")
        summary = (f"{total} jobs" if pages == 1 else
                   f"rows {first + 1}-{first + len(shown)} of {total} jobs · page {self.page + 1} of {pages}")
        with self.prev_button.hold_sync(), self.next_button.hold_sync():
            self.prev_button.disabled = self.page == 0
            self.next_button.disabled = self.page >= pages - 1
        if self.summary.value != summary:
            self.summary.value = summary
        self._show_changed(self.output, text)

    def _static_title(self) -> str:
        return f"results of run {self.run.id}"

    def _static_jobs(self) -> list[Job]:
        return list(self.run.jobs)

    def __repr__(self) -> str:
        return f"<ResultsTable run={self.run.id} rows={len(self.run.jobs)}>"
