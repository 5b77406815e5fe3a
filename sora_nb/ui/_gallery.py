"""The gallery: thumbnails of a run (or of the server's list, page by page); click one to play it."""

from __future__ import annotations

import concurrent.futures
import functools
import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display, _display_grid
from .._errors import SoraError
from ._job import MediaMode, resolve_media, video_widget
from ._sync import ErrorLine, LiveBox, guarded, on_failure, show_html

if TYPE_CHECKING:
    from .._client import Client
    from .._jobs import Job
    from .._run import Run
    from .._types import Video

__all__ = ["Gallery"]

_ALL = "(all)"
_SERVER_AXES = ("model", "size", "seconds")
"""What the server's list can be filtered by (besides the status)."""


def _value_label(value: Any) -> str:
    return "(none)" if value is None or value == "" else str(value)


def _server_caption(video: Video) -> str:
    text = f"{video.status} · {video.model or ''} · {video.prompt or ''}"
    return (f'<div style="font-size:12px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis">'
            f"{html.escape(text)}</div>")


class _Tile(widgets.VBox):  # type: ignore[misc]
    """A tile made of widgets (``media="bytes"``): the poster as an image, a caption and a Play button.

    Updated in place, so that a redraw sends only what changed (the poster once).
    """

    def __init__(self, title: str, on_play: Callable[[Any], None]) -> None:
        self.poster: Path | None = None
        self.picture: Any = widgets.HTML("")
        self.caption = widgets.HTML("", tooltip=title)
        self.play = widgets.Button(description="▶ Play", disabled=True, layout=widgets.Layout(width="auto"))
        self.play.on_click(on_play)
        super().__init__([self.picture, self.caption, self.play])
        self.add_class("sora-nb-tile")

    def show(self, *, poster: Path | None, status: str, caption: str, playable: bool) -> None:
        if poster is not None and poster != self.poster:
            image = _display.small_image(poster)  # None while it is missing, or when too large to send
            if image is not None:
                old, self.poster = self.picture, poster
                self.picture = widgets.Image(value=image[1], format=image[0].partition("/")[2],
                                             layout=widgets.Layout(width="100%"))
                self.children = (self.picture, self.caption, self.play)
                old.close()
        if self.poster is None:
            self.picture.value = _display_grid.tile_placeholder_html(status)
        self.caption.value = caption
        self.play.disabled = not playable

    def close(self) -> None:
        for item in (self.picture, self.caption, self.play):
            item.close()
        super().close()


class Gallery(LiveBox):
    """Thumbnails in a grid; clicking one plays it. Filter by status and by any axis; page through.

    With a :class:`~sora_nb.Run`, the run's jobs (kept live). With a :class:`~sora_nb.Client`, the
    server's own list of videos (``GET /videos``, newest first, a page at a time): their posters are
    downloaded to ``<run_root>/_server_gallery/`` and a video only when its Play button is pressed.
    The list is fetched again on each change of page and on Refresh (:meth:`reload`), so videos made
    since show up.

    ``media``: ``"url"`` plays the files through the notebook server (nothing embedded), ``"bytes"``
    shows the posters as images and sends a played video as an ``ipywidgets.Video`` (not saved in the
    notebook unless widget state is), one player above the tiles; ``"auto"`` picks bytes in VS Code.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> run.gallery(status="completed")  # doctest: +ELLIPSIS
    <Gallery run ... page=1>
    >>> sora_nb.ui.gallery(client)  # the server's own list of videos
    <Gallery server <sora_nb.Client profile='simulator' base_url='http://simulator.local/v1' key=placeholder> page=1>
    >>> client.close()
    """

    def __init__(
        self,
        source: Run | Client,
        *,
        columns: int = 4,
        page_size: int = 12,
        width: int = 200,
        status: str | None = None,
        media: MediaMode = "auto",
        refresh_interval: float = 0.5,
        **axis_filters: Any,
    ) -> None:
        from .._run import Run

        allowed = ["status", *(source.axes if isinstance(source, Run) else _SERVER_AXES)]
        for name in axis_filters:
            if name not in allowed:  # a typo would show every video, unfiltered
                raise ValueError(f"{name!r} is not an axis to filter by. Allowed: {', '.join(allowed)}. "
                                 "Fix: check the spelling, or filter by one of those.")
        self.source = source
        self.media_mode: MediaMode = resolve_media(media)
        self.columns, self.page_size, self.width = columns, page_size, width
        self.page = 0
        self._syncing = False
        self.error = ErrorLine()
        self.status_filter = widgets.Dropdown(options=[_ALL], value=_ALL, description="Status",
                                              style={"description_width": "50px"}, layout=widgets.Layout(width="200px"))
        self.filters: dict[str, Any] = {}
        self.filter_box = widgets.HBox([self.status_filter], layout=widgets.Layout(flex_flow="row wrap"))
        self.prev_button = widgets.Button(description="◀ Prev", layout=widgets.Layout(width="auto"))
        self.next_button = widgets.Button(description="Next ▶", layout=widgets.Layout(width="auto"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", tooltip="fetch this page again",
                                             layout=widgets.Layout(width="auto", display="none"))
        self.refresh_button.add_class("sora-nb-gallery-refresh")
        self.page_label = widgets.HTML("")
        self.tiles = widgets.GridBox([], layout=widgets.Layout(
            grid_template_columns=f"repeat({columns}, minmax(0, {width}px))", grid_gap="8px"))
        self.tiles.add_class("sora-nb-gallery")  # the scope of a tile's click: one video plays at a time
        # media="url", a run's jobs: one Output per job, redrawn only when that job's tile changes.
        self._url_tiles: dict[str, tuple[str, Any]] = {}
        pager = widgets.HBox([self.prev_button, self.page_label, self.next_button, self.refresh_button],
                             layout=widgets.Layout(align_items="center"))
        # media="bytes": the tiles are widgets, kept by job (or video) id, and one player shows a video.
        self._bytes_tiles: dict[str, _Tile] = {}
        self._playing: Path | None = None
        self._no_match = widgets.HTML('<span style="opacity:.7">No videos match.</span>')
        self.player = widgets.VBox([], layout=widgets.Layout(display="none", max_width=f"{2 * width + 8}px"))
        self.player.add_class("sora-nb-gallery-player")
        super().__init__([self.filter_box, pager, self.error])
        self.add_class("sora-nb-gallery-widget")
        self._wanted = {"status": status, **axis_filters}
        self.prev_button.on_click(guarded(self.error, lambda _b: self._turn(-1)))
        self.next_button.on_click(guarded(self.error, lambda _b: self._turn(+1)))
        self.refresh_button.on_click(guarded(self.error, lambda _b: self.reload()))
        self.status_filter.observe(guarded(self.error, lambda _c: self._filtered()), "value")
        if isinstance(source, Run):
            self.run: Run | None = source
            self.client: Client | None = None
            self.children = ((self.filter_box, pager, self.tiles, self.error) if self.media_mode == "url" else
                             (self.filter_box, pager, self.player, self.tiles, self.error))
            self._follow(source._runtime, source, self._render_run, interval=refresh_interval)
        else:
            self.run, self.client = None, source
            self._cursors: list[str | None] = [None]
            self._has_more = False
            self._videos: list[Video] = []
            self._fetches, self._loading = 0, False
            self._cache = source.run_root / "_server_gallery"
            self.refresh_button.layout.display = None
            self.children = ((self.filter_box, pager, self.tiles, self.error) if self.media_mode == "url" else
                             (self.filter_box, pager, self.player, self.tiles, self.error))
            self._follow(source._runtime, None, self._render_server, interval=refresh_interval)
            self.reload()

    # ------------------------------------------------------------------ filters and pages
    def _axis_names(self) -> list[str]:
        if self.run is not None:
            return [a for a in self.run.axes if a != "prompt"] + ["prompt"]
        return list(_SERVER_AXES)

    def _sync_filters(self, values: dict[str, list[Any]], statuses: list[str]) -> None:
        """Offer a dropdown for each axis with more than one value, or with a value asked for (options
        grow as jobs appear)."""
        self._sync_choice(self.status_filter, "status", statuses)
        for name, found in values.items():
            labels = [_value_label(v) for v in found]
            dropdown = self.filters.get(name)
            if dropdown is None:
                if len(labels) < 2 and self._wanted.get(name) is None:
                    continue
                dropdown = widgets.Dropdown(options=[_ALL], value=_ALL, description=name,
                                            style={"description_width": "initial"},
                                            layout=widgets.Layout(width="auto", max_width="320px"))
                dropdown.observe(guarded(self.error, lambda _c: self._filtered()), "value")
                self.filters[name] = dropdown
                self.filter_box.children = (*self.filter_box.children, dropdown)
            self._sync_choice(dropdown, name, labels)

    def _sync_choice(self, dropdown: Any, name: str, labels: list[str]) -> None:
        """The options of one filter: the values present, and the one chosen (or asked for) even when
        no video has it, so that a filter matching nothing shows nothing rather than everything."""
        wanted = self._wanted.pop(name, None)
        chosen = str(dropdown.value) if wanted is None else _value_label(wanted)
        options = [_ALL, *labels, *([chosen] if chosen != _ALL and chosen not in labels else [])]
        if chosen != dropdown.value and self.client is None:
            self.page = 0  # a filter asked for: its first page
        self._syncing = True  # new options select the first one for a moment: not the user's choice
        try:
            if list(dropdown.options) != options:
                dropdown.options = options
            if dropdown.value != chosen:
                dropdown.value = chosen
        finally:
            self._syncing = False

    def _matches(self, status: str, values: dict[str, Any]) -> bool:
        if self.status_filter.value != _ALL and status != self.status_filter.value:
            return False
        return all(dropdown.value == _ALL or _value_label(values.get(name)) == dropdown.value
                   for name, dropdown in self.filters.items())

    def _filtered(self) -> None:
        if self._syncing and self._runtime.in_loop_thread():  # the redraw's own option swap, not the user
            return
        if self.client is None:  # a run's pages are of the jobs that pass; the server's list is filtered by page
            self.page = 0
        self._coalescer.mark()

    def _turn(self, step: int) -> None:
        if self.client is not None:
            self._fetch_soon(step)
            return
        self.page = max(0, self.page + step)
        self._coalescer.mark()

    # ------------------------------------------------------------------ a run's jobs (on the loop)
    def visible_jobs(self) -> list[Job]:
        """The jobs that pass the filters, in run order."""
        assert self.run is not None
        return [job for job in self.run.jobs if self._matches(job.status, job.spec.axes)]

    def _render_run(self) -> None:
        run = self.run
        assert run is not None
        jobs = list(run.jobs)
        values: dict[str, list[Any]] = {}
        for name in self._axis_names():
            values[name] = list(dict.fromkeys(job.spec.axes.get(name) for job in jobs))
        self._sync_filters(values, list(dict.fromkeys(job.status for job in jobs)))
        visible = self.visible_jobs()
        pages = max(1, -(-len(visible) // self.page_size))
        self.page = min(self.page, pages - 1)
        shown = visible[self.page * self.page_size:(self.page + 1) * self.page_size]
        self._set_pager(pages, len(visible))
        axes = _display.varying_axes(jobs, skip=("prompt",))  # what tells the tiles apart
        if self.media_mode == "url":
            self._show_tiles([self._url_tile(job, axes) for job in shown])
            return
        tiles = []
        for job in shown:
            tile = self._bytes_tile(job.id, job.prompt, functools.partial(self._play_job, job))
            tile.show(poster=job.thumbnail_path, status=job.status, caption=_display_grid.tile_caption_html(job, axes),
                      playable=job.done and job.video_path is not None)
            tiles.append(tile)
        self._show_tiles(tiles)

    def _set_pager(self, pages: int, count: int) -> None:
        with self.prev_button.hold_sync(), self.next_button.hold_sync():
            self.prev_button.disabled = self.page == 0
            self.next_button.disabled = self.page >= pages - 1
        self.page_label.value = f"page {self.page + 1} of {pages} · {count} videos"

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

    # ------------------------------------------------------------------ the server's list
    def reload(self) -> concurrent.futures.Future[None]:
        """Fetch the current page of the server's list again (what Refresh and Prev/Next do); any thread.

        Returns a future that is done once the page (and its posters) arrived; the tiles follow.
        """
        if self.client is None:
            raise ValueError("reload() is for the server's list; a run's gallery follows the run by itself.")
        return self._fetch_soon(0)

    def _fetch_soon(self, step: int) -> concurrent.futures.Future[None]:
        future = self._runtime.submit(self._fetch(step))
        future.add_done_callback(on_failure(self.error))
        return future

    async def _fetch(self, step: int) -> None:  # on the loop, like every change of the page state
        client = self.client
        assert client is not None
        if step and self._loading:
            return  # the next page starts after the last video of a page still on its way
        shown = self.page
        if step > 0 and self._has_more:
            if len(self._cursors) <= self.page + 1:
                self._cursors.append(self._videos[-1].id if self._videos else None)
            self.page += 1
        elif step < 0 and self.page > 0:
            self.page -= 1
        elif step:
            return
        self._fetches += 1
        fetch, self._loading = self._fetches, True
        try:
            page = await client.api.list(limit=self.page_size, after=self._cursors[self.page])
        except BaseException:
            if fetch == self._fetches:
                self.page = shown  # the tiles still show that page
            raise
        finally:
            if fetch == self._fetches:
                self._loading = False
        if fetch != self._fetches:
            return  # a later Refresh asked again: its answer wins
        self._videos, self._has_more = list(page.data), bool(page.has_more)
        # The pages after this one start after its last video, which may have changed: find them again.
        del self._cursors[self.page + 1:]
        if client.profile.supports_thumbnail:
            for video in self._videos:
                if video.status == "completed":
                    await self._download(video.id, "thumbnail")
        self._coalescer.mark()

    async def _download(self, video_id: str, variant: str) -> Path | None:
        assert self.client is not None
        suffix = ".webp" if variant == "thumbnail" else ".mp4"
        path = self._cache / f"{video_id}{suffix}"
        if not path.exists():
            try:
                await self.client.api.download(video_id, path, variant=variant)  # type: ignore[arg-type]
            except SoraError as exc:
                if variant == "video":
                    raise
                self.error.show(f"no poster for {video_id}: {exc}")
                return None
        return path

    def _render_server(self) -> None:
        videos = self._videos
        values = {name: list(dict.fromkeys(getattr(v, name) for v in videos)) for name in self._axis_names()}
        self._sync_filters(values, list(dict.fromkeys(v.status for v in videos)))
        shown = [v for v in videos if self._matches(v.status, {n: getattr(v, n) for n in self._axis_names()})]
        with self.prev_button.hold_sync(), self.next_button.hold_sync():
            self.prev_button.disabled = self.page == 0
            self.next_button.disabled = not self._has_more
        self.page_label.value = f"page {self.page + 1} · {len(shown)} of {len(videos)} videos shown"
        if self.media_mode == "url":
            for tile in self.tiles.children:
                tile.close()
            self.tiles.children = tuple(self._tile(video) for video in shown)
            return
        tiles = []
        for video in shown:
            label = video.prompt or video.id
            tile = self._bytes_tile(video.id, label, functools.partial(self._play, video.id, None, label=label))
            poster = self._cache / f"{video.id}.webp"
            tile.show(poster=poster if poster.exists() else None, status=video.status,
                      caption=_server_caption(video), playable=video.status == "completed")
            tiles.append(tile)
        self._show_tiles(tiles)

    def _tile(self, video: Video) -> Any:
        poster = self._cache / f"{video.id}.webp"
        screen = widgets.Output()
        if poster.exists():
            body = f'<img src="{html.escape(_display.media_src(poster) or "")}" alt="" style="width:100%">'
        else:
            body = (f'<div style="aspect-ratio:16/9;background:#eee;color:#555;padding:4px">'
                    f"{html.escape(video.status)}</div>")
        show_html(screen, f'<div title="{html.escape(video.prompt or "")}">{body}{_server_caption(video)}</div>')
        play = widgets.Button(description="▶ Play", disabled=video.status != "completed",
                              tooltip=f"download {video.id} and play it", layout=widgets.Layout(width="auto"))
        tile = widgets.VBox([screen, play])
        tile.add_class("sora-nb-tile")
        play.on_click(guarded(self.error, lambda _b: self._play(video.id, screen, play)))
        return tile

    def _play(self, video_id: str, screen: Any, button: Any, label: str = "") -> None:
        """Download the video (once) and play it: in the tile's ``screen``, else in the shared player."""
        button.disabled = True
        button.description = "loading…"

        def _undo() -> None:
            button.disabled, button.description = False, "▶ Play"

        async def _get() -> None:
            path = await self._download(video_id, "video")
            if screen is None:
                assert path is not None
                self._play_file(path, label)
                _undo()
                return
            poster = self._cache / f"{video_id}.webp"
            show_html(screen, _display.video_html(path, poster if poster.exists() else None,
                                                  width=self.width, autoplay=True))
            button.layout.display = "none"

        self._runtime.submit(_get()).add_done_callback(on_failure(self.error, _undo))

    # ------------------------------------------------------------------ media="bytes": tiles and one player
    def _bytes_tile(self, key: str, title: str, on_play: Callable[[Any], None]) -> _Tile:
        tile = self._bytes_tiles.get(key)
        if tile is None:
            tile = self._bytes_tiles[key] = _Tile(title, guarded(self.error, on_play))
        return tile

    def _show_tiles(self, tiles: list[Any]) -> None:
        # The same widgets in the same order send nothing; tiles of other pages stay (their posters are sent).
        children = tuple(tiles) or (self._no_match,)
        if children != self.tiles.children:
            self.tiles.children = children

    def _play_job(self, job: Job, _button: Any = None) -> None:
        if job.video_path is None:
            raise ValueError(f"job {job.id} has no video yet ({job.status}).")
        self._play_file(job.video_path, job.prompt)

    def _play_file(self, path: Path, label: str) -> None:
        """Show ``path`` in the player above the tiles (its bytes sent now, once per choice)."""
        if path == self._playing:
            return
        self._playing = path
        old = self.player.children
        self.player.children = (
            widgets.HTML(f'<div style="white-space:nowrap;overflow:hidden;text-overflow:ellipsis" '
                         f'title="{html.escape(label)}">▶ {html.escape(label)}</div>'),
            video_widget(path, autoplay=True, loop=True, controls=True, layout=widgets.Layout(width="100%")),
        )
        self.player.layout.display = None
        for item in old:
            item.close()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        super().close()  # first: no redraw makes new tiles after this
        url_tiles = [tile for _text, tile in self._url_tiles.values()]
        for item in (*self._bytes_tiles.values(), *url_tiles, *self.player.children, self._no_match):
            item.close()

    def _static_title(self) -> str:
        return f"gallery of run {self.run.id}" if self.run is not None else "gallery of the server's videos"

    def _static_jobs(self) -> list[Job]:
        if self.run is None:
            return []
        return self.visible_jobs()[self.page * self.page_size:(self.page + 1) * self.page_size]

    def __repr__(self) -> str:
        what = f"run {self.run.id}" if self.run is not None else f"server {self.source!r}"
        return f"<Gallery {what} page={self.page + 1}>"
