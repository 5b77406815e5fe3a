"""How widgets follow engine state without flooding the front end, and without touching its loop.

Engine observers run on the runtime's loop, once per state change: a 200-job sweep makes thousands.
A widget's observer only marks it dirty; a :class:`Coalescer` then redraws it on the loop at most once
per ``interval`` (0.25 s: four redraws a second), each redraw sending one message per changed
widget (``hold_sync``). Widget callbacks may run on another thread (JupyterLab >= 4.4 comm
subshells), so anything that touches the loop's timers goes through ``Runtime.call``.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets

from .._redact import logger
from .._runtime import Runtime

__all__ = ["DEFAULT_INTERVAL", "Coalescer", "ErrorLine", "guarded", "held", "stop_following", "walk"]

DEFAULT_INTERVAL = 0.25
"""Seconds between two redraws of one widget: about four a second at most."""


class Coalescer:
    """Run ``flush`` on the runtime's loop soon after :meth:`mark`, at most once per ``interval``.

    ``interval=0`` redraws on every mark (the naive behaviour, kept for the benchmark's baseline).
    ``tick`` is asked after each flush for the seconds until an unprompted redraw (clocks that move
    by themselves, such as elapsed time), or ``None``.
    """

    def __init__(
        self,
        runtime: Runtime,
        flush: Callable[[], None],
        *,
        interval: float = DEFAULT_INTERVAL,
        on_error: Callable[[BaseException], None] | None = None,
        tick: Callable[[], float | None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.interval = interval
        self.flushes = 0
        self._flush = flush
        self._on_error = on_error
        self._tick = tick
        self._lock = threading.Lock()
        self._pending = False
        self._closed = False
        self._last = float("-inf")
        self._handle: Any = None
        self._tick_handle: Any = None

    def mark(self) -> None:
        """Ask for a redraw (any thread); marks while one is pending are merged into it."""
        with self._lock:
            if self._pending or self._closed:
                return
            self._pending = True
        self.runtime.call(self._schedule)

    def _schedule(self) -> None:  # on the loop
        if self._closed:
            return
        if self.interval <= 0:
            self._run()
            return
        wait = max(0.0, self._last + self.interval - time.monotonic())
        self._handle = self.runtime.loop.call_later(wait, self._run)

    def _run(self) -> None:  # on the loop
        with self._lock:
            self._pending = False
            handle, self._handle = self._handle, None
            if self._closed:
                return
        if handle is not None:  # a forced flush makes the scheduled one redundant
            handle.cancel()
        self._last = time.monotonic()
        self.flushes += 1
        try:
            self._flush()
        except Exception as exc:  # a drawing bug must show in the widget, not vanish in a log
            logger.exception("sora_nb widget refresh failed")
            if self._on_error is not None:
                self._on_error(exc)
        delay = self._tick() if self._tick is not None else None
        if delay is not None and self._tick_handle is None:
            self._tick_handle = self.runtime.loop.call_later(delay, self._ticked)

    def _ticked(self) -> None:
        self._tick_handle = None
        self.mark()

    def flush_now(self) -> None:
        """Redraw now, on the loop, and wait for it (tests, and a final state before closing)."""
        self.runtime.call_and_wait(self._run)

    def close(self) -> None:
        """Stop redrawing (any thread)."""
        with self._lock:
            self._closed = True

        def _cancel() -> None:
            for handle in (self._handle, self._tick_handle):
                if handle is not None:
                    handle.cancel()
            self._handle = self._tick_handle = None

        if not self.runtime.loop.is_closed():
            self.runtime.call(_cancel)


@contextlib.contextmanager
def held(*items: Any) -> Iterator[None]:
    """``hold_sync`` on several widgets: each sends its changed traits as one message at the end."""
    with contextlib.ExitStack() as stack:
        for item in items:
            stack.enter_context(item.hold_sync())
        yield


class ErrorLine(widgets.HTML):  # type: ignore[misc]
    """A red line that shows what went wrong in a callback (ipywidgets would swallow the exception)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(value="", **kwargs)
        self.add_class("sora-nb-error")

    def show(self, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.value = f'<div style="color:#c62828;white-space:pre-wrap">{html.escape(text)}</div>'

    def clear(self) -> None:
        if self.value:
            self.value = ""


def guarded(error: ErrorLine, fn: Callable[..., Any]) -> Callable[..., None]:
    """Wrap a widget callback so that its exceptions are shown in ``error`` instead of swallowed."""

    def _call(*args: Any) -> None:
        try:
            error.clear()
            fn(*args)
        except Exception as exc:
            logger.debug("sora_nb widget callback failed", exc_info=True)
            error.show(exc)

    return _call


def stop_following(widget: Any) -> None:
    """Stop a widget's redraws and engine subscription (from ``close``, which ipywidgets also calls
    from ``__del__``: on any thread, possibly half-built, possibly after the loop is gone)."""
    coalescer = getattr(widget, "_coalescer", None)
    if coalescer is not None:
        coalescer.close()
    unsubscribe = getattr(widget, "_unsubscribe", None)
    runtime = getattr(widget, "_runtime", None)
    if unsubscribe is not None and runtime is not None:
        widget._unsubscribe = None
        if not runtime.loop.is_closed():
            runtime.call(unsubscribe)


def walk(widget: Any) -> Iterator[Any]:
    """Every widget reachable from ``widget`` through its traits (children, layout, style, ...), once."""
    seen: set[int] = set()
    stack = [widget]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        for name in item.keys:
            value = getattr(item, name, None)
            values = value if isinstance(value, (tuple, list)) else (value,)
            stack.extend(v for v in values if isinstance(v, widgets.Widget))
