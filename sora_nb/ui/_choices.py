"""What the widgets offer, read from the profile's capabilities: exactly the allowed values, or free text.

The prompt box and the sweep builder ask these functions, never a service's name or OpenAI's tables
(DESIGN.md invariant 4). Where the capabilities do not know a model's sizes or durations, the field is
free text that says so ("any ..."), prefilled with the profile's default, rather than a list invented here.
A :class:`ChoiceSlot` holds such a field and swaps its widget when the chosen model changes what is known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ipywidgets as widgets

from .. import _display
from .._capabilities import Capabilities

__all__ = ["ANY_SECONDS", "ANY_SIZE", "ChoiceSlot", "cost_text", "seconds_options", "size_options", "union"]

ANY_SIZE = "any WIDTHxHEIGHT this server takes"
ANY_SECONDS = "any whole seconds this server takes"


def union(groups: Iterable[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """The values of several groups in first-seen order; ``None`` (not known) as soon as one group is.

    >>> union([("4", "8"), ("8", "12")]), union([("4",), None])
    (('4', '8', '12'), None)
    """
    seen: dict[str, None] = {}
    for group in groups:
        if group is None:
            return None
        seen.update(dict.fromkeys(group))
    return tuple(seen)


def size_options(sizes: tuple[str, ...] | None) -> list[tuple[str, str]] | None:
    """``(label, size)`` pairs for a chooser, or ``None`` (free text) when the sizes are not known.

    >>> size_options(("1280x720",)), size_options(None)
    ([('Landscape 1280×720', '1280x720')], None)
    """
    return None if sizes is None else [(_display.size_label(size), size) for size in sizes]


def seconds_options(seconds: tuple[str, ...] | None) -> list[tuple[str, str]] | None:
    """``(label, seconds)`` pairs for a chooser, or ``None`` (free text) when the durations are not known."""
    return None if seconds is None else [(f"{s} s", s) for s in seconds]


def cost_text(caps: Capabilities, model: str, size: str, seconds: str) -> str:
    """The estimate shown beside the Generate button, at the prices the capabilities declare.

    >>> from sora_nb._catalog import CONTRACT
    >>> cost_text(CONTRACT, "sora-2", "1280x720", "8")
    'est. $0.80 (8 s × $0.10/s)'
    >>> cost_text(CONTRACT, "my-model", "1280x720", "8")
    'cost unknown for my-model at 1280x720'
    """
    price = caps.price_per_second(model, size)
    cost = caps.cost_usd(model, size, seconds)
    if price is None or cost is None:
        return f"cost unknown for {model} at {size}"
    return f"est. ${cost:,.2f} ({seconds} s × ${price:,.2f}/s)"


class ChoiceSlot(widgets.Box):  # type: ignore[misc]
    """One field of a request whose widget follows what is known: a chooser of exactly the allowed values,
    or a text box saying "any ..." where the capabilities do not know them.

    ``chooser`` and ``text`` make the two kinds of widget; ``on_change`` is called when the user changes
    the value (not when :meth:`show` does).
    """

    def __init__(
        self,
        chooser: Callable[[], widgets.ValueWidget],
        text: Callable[[], widgets.Text],
        on_change: Callable[[], None],
    ) -> None:
        super().__init__([])
        self._make_chooser, self._make_text, self._on_change = chooser, text, on_change
        self._quiet = False
        self.widget: Any = None

    def show(self, options: Sequence[tuple[str, str]] | None, value: Any) -> Any:
        """Offer ``options`` (``None``: free text) with ``value`` chosen; return the widget shown."""
        free = options is None
        if self.widget is None or isinstance(self.widget, widgets.Text) != free:
            old, self.widget = self.widget, self._make_text() if free else self._make_chooser()
            self.widget.observe(self._changed, "value")
            self.children = (self.widget,)
            if old is not None:
                old.close()
        self._quiet = True
        try:
            with self.widget.hold_sync():
                if options is not None:
                    self.widget.options = list(options)
                self.widget.value = value
        finally:
            self._quiet = False
        return self.widget

    def _changed(self, _change: Any) -> None:
        if not self._quiet:
            self._on_change()
