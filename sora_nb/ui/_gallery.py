"""The gallery of a run: its jobs' thumbnails, kept live; click one to play it."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display_grid
from ._sync import show_html
from ._tiles import TileGallery

if TYPE_CHECKING:
    from .._jobs import Job
    from .._run import Run

__all__ = ["Gallery"]


class Gallery(TileGallery):
    """A run's jobs as thumbnails in a grid, kept live; clicking one plays it. Filter by status and by
    any axis of the run; page through. (The server's own list of videos: :class:`ServerGallery`.)

    Options (a :class:`ServerGallery` takes the same): ``columns`` (4), ``page_size`` (12), ``width``
    of a tile (200 px), ``status`` and any axis (``model="sora-2"``) to filter by at first,
    ``refresh_interval`` (0.5 s between redraws) and ``media``: ``"url"`` plays the files through the
    notebook server (nothing embedded), ``"bytes"`` shows the posters as images and sends a played video
    as an ``ipywidgets.Video`` (not saved in the notebook unless widget state is), one player above the
    tiles; ``"auto"`` picks bytes in VS Code.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> run.gallery(status="completed")  # doctest: +ELLIPSIS
    <Gallery run ... page=1>
    >>> client.close()
    """

    def __init__(self, source: Run, *, refresh_interval: float = 0.5, **options: Any) -> None:
        from .._run import Run

        if not isinstance(source, Run):
            raise TypeError(f"Gallery shows a run's jobs, not {type(source).__name__}. Fix: "
                            "sora_nb.ui.gallery(client) (or ui.ServerGallery(client)) for the server's list.")
        self.source = self.run = source
        self.page = 0
        # media="url": one Output per job, redrawn only when that job's tile changes.
        self._url_tiles: dict[str, tuple[str, Any]] = {}
        # Each axis's values, by repr, in the order jobs brought them (see _axis_values).
        self._values: dict[str, dict[str, Any]] = {}
        self._prefix: list[Job] = []  # the jobs indexed, in order
        super().__init__(allowed=["status", *source.axes], **options)
        self._follow(source._runtime, source, self._render, interval=refresh_interval)

    def reload(self) -> None:
        """Only the server's list is fetched again; a run's gallery follows its run by itself."""
        raise ValueError("reload() is for the server's list; a run's gallery follows the run by itself.")

    def _turn(self, step: int) -> None:
        self.page = max(0, self.page + step)
        self._coalescer.mark()

    def _first_page(self) -> None:
        self.page = 0

    def visible_jobs(self) -> list[Job]:
        """The jobs that pass the filters, in run order."""
        videos = self.run._videos()
        if self._unfiltered():
            return videos
        return [job for job in videos if self._matches(job.status, job.spec.axes)]

    def _axis_values(self, jobs: list[Job]) -> dict[str, dict[str, Any]]:
        """Each axis's values (``None`` where a job has no such axis), from an index that reads only the
        jobs added since the last redraw: a job's axes never change, and a run's jobs are only appended.
        Reading every job's axes at each redraw took a 10,000-job run's gallery ~0.1-0.3 s a redraw."""
        if jobs[:len(self._prefix)] != self._prefix:  # not only appended (a sweep of storyboards' joined
            self._values, self._prefix = {}, []       # videos come board by board): indexed again
        added = jobs[len(self._prefix):]
        for job in added:
            axes = job.spec.axes
            for name, known in self._values.items():
                if name not in axes:
                    known.setdefault("None", None)
            for name, value in axes.items():
                seen = self._values.get(name)
                if seen is None:  # an axis the jobs before did not have
                    seen = self._values[name] = {"None": None} if self._prefix else {}
                seen.setdefault(repr(value), value)
            self._prefix.append(job)
        return self._values

    def _render(self) -> None:  # on the loop
        jobs = self.run._videos()
        index = self._axis_values(jobs)
        names = [a for a in self.run.axes if a != "prompt"] + ["prompt"]
        values = {name: list(index.get(name, {"None": None} if jobs else {}).values()) for name in names}
        self._sync_filters(values, list(dict.fromkeys(job.status for job in jobs)))
        visible = self.visible_jobs()
        pages = max(1, -(-len(visible) // self.page_size))
        self.page = min(self.page, pages - 1)
        shown = visible[self.page * self.page_size:(self.page + 1) * self.page_size]
        self._set_pager(first=self.page == 0, last=self.page >= pages - 1,
                        label=f"page {self.page + 1} of {pages} · {len(visible)} videos")
        axes = [name for name, seen in index.items() if name != "prompt" and len(seen) > 1]  # what tells tiles apart
        if self.media_mode == "url":
            self._show_tiles([self._url_tile(job, axes) for job in shown])
            return
        tiles = []
        for job in shown:
            tile = self._bytes_tile(job.id, job.prompt, functools.partial(self._play_job, job))
            tile.show(poster=job.thumbnail_path, status=job.status,
                      caption=_display_grid.tile_caption_html(job, axes),
                      playable=job.done and job.video_path is not None)
            tiles.append(tile)
        self._show_tiles(tiles)

    def _url_tile(self, job: Job, axes: list[str]) -> Any:
        """A job's tile, its HTML sent again only when it changed (a redraw would stop its video)."""
        text = _display_grid.gallery_tile_html(job, axes)
        known = self._url_tiles.get(job.id)
        if known is not None and known[0] == text:
            return known[1]
        tile = known[1] if known is not None else widgets.Output()
        show_html(tile, text)
        self._url_tiles[job.id] = (text, tile)
        return tile

    def _play_job(self, job: Job, _button: Any = None) -> None:
        if job.video_path is None:
            raise ValueError(f"job {job.id} has no video yet ({job.status}).")
        self._play_file(job.video_path, job.prompt)

    def close(self) -> None:
        super().close()
        for _text, tile in self._url_tiles.values():
            tile.close()

    def _static_title(self) -> str:
        return f"gallery of run {self.run.id}"

    def _static_jobs(self) -> list[Job]:
        return self.visible_jobs()[self.page * self.page_size:(self.page + 1) * self.page_size]

    def __repr__(self) -> str:
        return f"<Gallery run {self.run.id} page={self.page + 1}>"
