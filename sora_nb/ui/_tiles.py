"""What the two galleries share: filter dropdowns, the pager row, tiles made of widgets and one player.

:class:`~sora_nb.ui.Gallery` (a run's jobs) and :class:`~sora_nb.ui.ServerGallery` (the server's list)
differ in where their videos come from and how they page; both are a :class:`TileGallery`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from .. import _display, _display_grid
from ._job import MediaMode, resolve_media, video_widget
from ._sync import ErrorLine, LiveBox, guarded

__all__ = ["ALL", "TileGallery", "WidgetTile", "value_label"]

ALL = "(all)"
"""A filter's choice that lets every value through."""


def value_label(value: Any) -> str:
    """How a filter shows a value (``(none)`` for none)."""
    return "(none)" if value is None or value == "" else str(value)


class WidgetTile(widgets.VBox):  # type: ignore[misc]
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


class TileGallery(LiveBox):
    """Tiles in a grid under a row of filters (status, then the axes that vary) and a pager row.

    Subclasses fill the tiles in their redraw (:meth:`_show_tiles`), turn pages (:meth:`_turn`) and say
    what a change of filter does to the page (:meth:`_first_page`).
    """

    def __init__(self, *, allowed: list[str], buttons: tuple[Any, ...] = (), columns: int = 4, page_size: int = 12,
                 width: int = 200, status: str | None = None, media: MediaMode = "auto", **axis_filters: Any) -> None:
        """``allowed``: what the filters may name; ``buttons``: more of the pager row; the rest as for
        :class:`~sora_nb.ui.Gallery` (``axis_filters``: a value asked for by axis, e.g. ``model="sora-2"``)."""
        for name in axis_filters:
            if name not in allowed:  # a typo would show every video, unfiltered
                raise ValueError(f"{name!r} is not an axis to filter by. Allowed: {', '.join(allowed)}. "
                                 "Fix: check the spelling, or filter by one of those.")
        self.media_mode: MediaMode = resolve_media(media)
        self.columns, self.page_size, self.width = columns, page_size, width
        self._syncing = False
        self.error = ErrorLine()
        self.status_filter = widgets.Dropdown(options=[ALL], value=ALL, description="Status",
                                              style={"description_width": "50px"}, layout=widgets.Layout(width="200px"))
        self.filters: dict[str, Any] = {}
        self.filter_box = widgets.HBox([self.status_filter], layout=widgets.Layout(flex_flow="row wrap"))
        self.prev_button = widgets.Button(description="◀ Prev", layout=widgets.Layout(width="auto"))
        self.next_button = widgets.Button(description="Next ▶", layout=widgets.Layout(width="auto"))
        self.page_label = widgets.HTML("")
        self.tiles = widgets.GridBox([], layout=widgets.Layout(
            grid_template_columns=f"repeat({columns}, minmax(0, {width}px))", grid_gap="8px"))
        self.tiles.add_class("sora-nb-gallery")  # the scope of a tile's click: one video plays at a time
        pager = widgets.HBox([self.prev_button, self.page_label, self.next_button, *buttons],
                             layout=widgets.Layout(align_items="center"))
        # media="bytes": the tiles are widgets, kept by job (or video) id, and one player shows a video.
        self._bytes_tiles: dict[str, WidgetTile] = {}
        self._playing: Path | None = None
        self._no_match = widgets.HTML('<span style="opacity:.7">No videos match.</span>')
        self.player = widgets.VBox([], layout=widgets.Layout(display="none", max_width=f"{2 * width + 8}px"))
        self.player.add_class("sora-nb-gallery-player")
        super().__init__((self.filter_box, pager, self.tiles, self.error) if self.media_mode == "url" else
                         (self.filter_box, pager, self.player, self.tiles, self.error))
        self.add_class("sora-nb-gallery-widget")
        self._wanted = {"status": status, **axis_filters}
        self.prev_button.on_click(guarded(self.error, lambda _b: self._turn(-1)))
        self.next_button.on_click(guarded(self.error, lambda _b: self._turn(+1)))
        self.status_filter.observe(guarded(self.error, lambda _c: self._filtered()), "value")

    def _turn(self, step: int) -> None:
        """Prev (``-1``) or Next (``+1``)."""
        raise NotImplementedError

    def _first_page(self) -> None:
        """What a change of filter does to the page: a run's gallery goes back to its first (its pages are
        of the jobs that pass); the server's list is filtered page by page, and stays."""

    # ------------------------------------------------------------------ filters
    def _sync_filters(self, values: dict[str, list[Any]], statuses: list[str]) -> None:
        """Offer a dropdown for each axis with more than one value, or with a value asked for (options
        grow as jobs appear)."""
        self._sync_choice(self.status_filter, "status", statuses)
        for name, found in values.items():
            labels = [value_label(v) for v in found]
            dropdown = self.filters.get(name)
            if dropdown is None:
                if len(labels) < 2 and self._wanted.get(name) is None:
                    continue
                dropdown = widgets.Dropdown(options=[ALL], value=ALL, description=name,
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
        chosen = str(dropdown.value) if wanted is None else value_label(wanted)
        options = [ALL, *labels, *([chosen] if chosen != ALL and chosen not in labels else [])]
        if chosen != dropdown.value:
            self._first_page()  # a filter asked for: its first page
        self._syncing = True  # new options select the first one for a moment: not the user's choice
        try:
            if list(dropdown.options) != options:
                dropdown.options = options
            if dropdown.value != chosen:
                dropdown.value = chosen
        finally:
            self._syncing = False

    def _unfiltered(self) -> bool:
        """Whether every filter lets every video through."""
        return self.status_filter.value == ALL and all(dropdown.value == ALL for dropdown in self.filters.values())

    def _matches(self, status: str, values: dict[str, Any]) -> bool:
        if self.status_filter.value != ALL and status != self.status_filter.value:
            return False
        return all(dropdown.value == ALL or value_label(values.get(name)) == dropdown.value
                   for name, dropdown in self.filters.items())

    def _filtered(self) -> None:
        if self._syncing and self._runtime.in_loop_thread():  # the redraw's own option swap, not the user
            return
        self._first_page()
        self._coalescer.mark()

    def _set_pager(self, *, first: bool, last: bool, label: str) -> None:
        with self.prev_button.hold_sync(), self.next_button.hold_sync():
            self.prev_button.disabled = first
            self.next_button.disabled = last
        self.page_label.value = label

    # ------------------------------------------------------------------ media="bytes": tiles and one player
    def _bytes_tile(self, key: str, title: str, on_play: Callable[[Any], None]) -> WidgetTile:
        tile = self._bytes_tiles.get(key)
        if tile is None:
            tile = self._bytes_tiles[key] = WidgetTile(title, guarded(self.error, on_play))
        return tile

    def _show_tiles(self, tiles: list[Any]) -> None:
        # The same widgets in the same order send nothing; tiles of other pages stay (their posters are sent).
        children = tuple(tiles) or (self._no_match,)
        if children != self.tiles.children:
            self.tiles.children = children

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
        for item in (*self._bytes_tiles.values(), *self.player.children, self._no_match):
            item.close()
