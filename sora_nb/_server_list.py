"""The server's own list of videos (``GET /videos``), a page at a time, newest first, posters cached.

What the gallery of a client shows (``sora_nb.ui.gallery(client)``), kept out of the widget: the
cursors of the pages seen, which fetch is the latest, the posters and videos downloaded to
``<run_root>/_server_gallery/``. Its state changes on the engine's loop only, like a run's; the widget
observes it (:meth:`ServerList.observe`) and asks for pages from any thread (:meth:`ServerList.turn`).
It sits in the engine, above the client it reads from: widgets contain no API logic.

>>> import sora_nb
>>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
>>> job = client.generate("a corgi surfing").wait(timeout=60)
>>> videos = ServerList(client, page_size=5)
>>> videos.turn(0).result(timeout=60)  # the first page
>>> [video.prompt for video in videos.videos], videos.poster(job.remote_id) is not None
(['a corgi surfing'], True)
>>> client.close()
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._errors import SoraError

if TYPE_CHECKING:
    from pathlib import Path

    from ._client import Client
    from ._runtime import Runtime
    from ._types import Variant, Video

__all__ = ["CACHE_DIR", "ServerList"]

CACHE_DIR = "_server_gallery"
"""Where, under the client's ``run_root``, the posters and videos of the server's list are downloaded."""


class ServerList:
    """The server's list of videos, a page of ``page_size`` at a time, and its cached posters.

    ``on_problem`` hears what went wrong without failing the page (a poster that could not be
    downloaded), as one line of text.
    """

    def __init__(self, client: Client, *, page_size: int = 12,
                 on_problem: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.page_size = page_size
        self.page = 0
        """The page shown, from 0 (the newest videos)."""
        self.videos: list[Video] = []
        """The videos of the page, newest first, once their posters are downloaded."""
        self.arrived = False
        """Whether a page has arrived yet (before that, there is nothing to show)."""
        self.has_more = False
        """Whether the server has videos after this page."""
        self.cache = client.run_root / CACHE_DIR
        self._on_problem = on_problem
        self._cursors: list[str | None] = [None]  # the id each page starts after (None: the first page)
        self._listed: list[Video] = []  # the page as listed, its posters maybe still on their way
        self._more = False  # whether the server has more after it
        self._fetches, self._loading = 0, False
        self._observers: list[Callable[[ServerList], None]] = []

    @property
    def runtime(self) -> Runtime:
        """The engine's loop, where this list changes and its observers are called."""
        return self.client._runtime

    def observe(self, callback: Callable[[ServerList], None]) -> Callable[[], None]:
        """Call ``callback(self)`` on the loop once a page (and its posters) arrived; returns an unsubscribe
        function."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def turn(self, step: int) -> concurrent.futures.Future[None]:
        """Fetch the next (``+1``) or previous (``-1``) page, or this one again (``0``); any thread.

        Returns a future that is done once the page (and its posters) arrived. A step while a page is on
        its way, or past either end, does nothing.
        """
        return self.runtime.submit(self._fetch(step))

    def poster(self, video_id: str) -> Path | None:
        """The downloaded poster of a video of the list, if there is one yet."""
        path = self.cache / f"{video_id}.webp"
        return path if path.exists() else None

    async def video(self, video_id: str) -> Path:
        """Download a video of the list (once; on the loop) and return its file."""
        path = await self._download(video_id, "video")
        assert path is not None  # a video that fails to download raises
        return path

    async def _fetch(self, step: int) -> None:  # on the loop, like every change of the page state
        if step and self._loading:
            return  # the next page starts after the last video of a page still on its way
        shown = self.page
        if step > 0 and self._more:
            if len(self._cursors) <= self.page + 1:
                self._cursors.append(self._listed[-1].id if self._listed else None)
            self.page += 1
        elif step < 0 and self.page > 0:
            self.page -= 1
        elif step:
            return
        self._fetches += 1
        fetch, self._loading = self._fetches, True
        try:
            page = await self.client.api.list(limit=self.page_size, after=self._cursors[self.page])
        except BaseException:
            if fetch == self._fetches:
                self.page = shown  # the widget still shows that page
            raise
        finally:
            if fetch == self._fetches:
                self._loading = False
        if fetch != self._fetches:
            return  # a later Refresh asked again: its answer wins
        self._listed, self._more = list(page.data), bool(page.has_more)
        # The pages after this one start after its last video, which may have changed: find them again.
        del self._cursors[self.page + 1:]
        if self.client.profile.capabilities.supports_thumbnail:
            for video in self._listed:
                if video.status == "completed":
                    await self._download(video.id, "thumbnail")
        if fetch != self._fetches:
            return  # asked again while the posters came: the later answer wins
        # The page shows with its posters, not before.
        self.videos, self.has_more, self.arrived = self._listed, self._more, True
        for callback in list(self._observers):
            callback(self)

    async def _download(self, video_id: str, variant: Variant) -> Path | None:
        suffix = ".webp" if variant == "thumbnail" else ".mp4"
        path = self.cache / f"{video_id}{suffix}"
        if not path.exists():
            try:
                await self.client.api.download(video_id, path, variant=variant)
            except SoraError as exc:
                if variant == "video":
                    raise
                if self._on_problem is not None:
                    self._on_problem(f"no poster for {video_id}: {exc}")
                return None
        return path

    def __repr__(self) -> str:
        return f"<ServerList page={self.page + 1} videos={len(self.videos)} more={self.has_more}>"
