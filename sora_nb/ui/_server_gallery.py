"""The gallery of the server's own list of videos: a page at a time, posters first, a video on Play."""

from __future__ import annotations

import concurrent.futures
import functools
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display
from .._server_list import ServerList
from ._sync import guarded, on_failure, show_html
from ._tiles import TileGallery

if TYPE_CHECKING:
    from .._client import Client
    from .._types import Video

__all__ = ["SERVER_AXES", "ServerGallery"]

SERVER_AXES = ("model", "size", "seconds")
"""What the server's list can be filtered by (besides the status)."""


def _caption(video: Video) -> str:
    text = f"{video.status} · {video.model or ''} · {video.prompt or ''}"
    return (f'<div style="font-size:12px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis">'
            f"{html.escape(text)}</div>")


class ServerGallery(TileGallery):
    """The server's own list of videos (``GET /videos``, newest first, a page at a time) as thumbnails;
    Play downloads a video and plays it. Filter the page by status, model, size and duration.

    The paging, the fetching and the downloads are a :class:`~sora_nb._server_list.ServerList`'s
    (posters to ``<run_root>/_server_gallery/``, a video only when its Play button is pressed), which
    this widget observes. The list is fetched again on each change of page and on Refresh
    (:meth:`reload`), so videos made since show up. ``media`` as for :class:`Gallery`.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> sora_nb.ui.gallery(client)  # the server's own list of videos
    <Gallery server <sora_nb.Client profile='simulator' base_url='http://simulator.local/v1' key=placeholder> page=1>
    >>> client.close()
    """

    def __init__(self, source: Client, *, refresh_interval: float = 0.5, **options: Any) -> None:
        self.source = self.client = source
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", tooltip="fetch this page again",
                                             layout=widgets.Layout(width="auto"))
        self.refresh_button.add_class("sora-nb-gallery-refresh")
        super().__init__(allowed=["status", *SERVER_AXES], buttons=(self.refresh_button,), **options)
        self.server_list = ServerList(source, page_size=self.page_size, on_problem=self.error.show)
        self.refresh_button.on_click(guarded(self.error, lambda _b: self.reload()))
        self._follow(self.server_list.runtime, self.server_list, self._render, interval=refresh_interval)
        self.reload()

    @property
    def page(self) -> int:
        """The page shown, from 0."""
        return self.server_list.page

    def reload(self) -> concurrent.futures.Future[None]:
        """Fetch the current page of the server's list again (what Refresh and Prev/Next do); any thread.

        Returns a future that is done once the page (and its posters) arrived; the tiles follow.
        """
        return self._fetch_soon(0)

    def _turn(self, step: int) -> None:
        self._fetch_soon(step)

    def _fetch_soon(self, step: int) -> concurrent.futures.Future[None]:
        future = self.server_list.turn(step)
        future.add_done_callback(on_failure(self.error))
        return future

    def _render(self) -> None:  # on the loop
        if not self.server_list.arrived:
            return  # nothing to show (not even "No videos match.") before the first page arrives
        videos = self.server_list.videos
        values = {name: list(dict.fromkeys(getattr(v, name) for v in videos)) for name in SERVER_AXES}
        self._sync_filters(values, list(dict.fromkeys(v.status for v in videos)))
        shown = [v for v in videos if self._matches(v.status, {n: getattr(v, n) for n in SERVER_AXES})]
        self._set_pager(first=self.page == 0, last=not self.server_list.has_more,
                        label=f"page {self.page + 1} · {len(shown)} of {len(videos)} videos shown")
        if self.media_mode == "url":
            for tile in self.tiles.children:
                tile.close()
            self.tiles.children = tuple(self._tile(video) for video in shown)
            return
        tiles = []
        for video in shown:
            label = video.prompt or video.id
            tile = self._bytes_tile(video.id, label, functools.partial(self._play, video.id, None, label=label))
            tile.show(poster=self.server_list.poster(video.id), status=video.status, caption=_caption(video),
                      playable=video.status == "completed")
            tiles.append(tile)
        self._show_tiles(tiles)

    def _tile(self, video: Video) -> Any:
        poster = self.server_list.poster(video.id)
        screen = widgets.Output()
        if poster is not None:
            body = f'<img src="{html.escape(_display.media_src(poster) or "")}" alt="" style="width:100%">'
        else:
            body = (f'<div style="aspect-ratio:16/9;background:#eee;color:#555;padding:4px">'
                    f"{html.escape(video.status)}</div>")
        show_html(screen, f'<div title="{html.escape(video.prompt or "")}">{body}{_caption(video)}</div>')
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
            path = await self.server_list.video(video_id)
            if screen is None:
                self._play_file(path, label)
                _undo()
                return
            show_html(screen, _display.video_html(path, self.server_list.poster(video_id), width=self.width,
                                                  autoplay=True))
            button.layout.display = "none"

        self._runtime.submit(_get()).add_done_callback(on_failure(self.error, _undo))

    def _static_title(self) -> str:
        return "gallery of the server's videos"

    def __repr__(self) -> str:
        return f"<Gallery server {self.source!r} page={self.page + 1}>"
