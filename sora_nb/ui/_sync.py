"""How widgets follow engine state without flooding the front end, and without touching its loop.

Engine observers run on the runtime's loop, once per state change: a 200-job sweep makes thousands.
A widget's observer only marks it dirty; a :class:`Coalescer` then redraws it on the loop at most once
per ``interval`` (0.25 s: four redraws a second), each redraw sending one message per changed
widget (``hold_sync``). Widget callbacks may run on another thread (JupyterLab >= 4.4 comm
subshells), so anything that touches the loop's timers goes through ``Runtime.call``.

:class:`LiveBox` puts the pieces together for a widget that follows a job or a run. Closing one
never touches a loop that is not running (the engine's loop may be closed, as at interpreter exit),
and being garbage-collected only flips flags (see :meth:`Panel.__del__`).
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display, _display_grid
from .._redact import logger
from .._runtime import Runtime

if TYPE_CHECKING:
    import concurrent.futures

    from .._jobs import Job
    from .._run import Run
    from .._server_list import ServerList

__all__ = ["DEFAULT_INTERVAL", "LOAD_FACTOR", "MAX_INTERVAL", "Coalescer", "Following", "LiveBox", "Panel", "ErrorLine",
           "guarded", "held", "on_failure", "show_html", "walk"]

DEFAULT_INTERVAL = 0.25
"""Seconds between two redraws of one widget: about four a second at most."""

LOAD_FACTOR = 20.0
"""A widget waits at least this many times its redraw's duration before the next one."""

MAX_INTERVAL = 10.0
"""However slow its redraws, a widget redraws at least this often (seconds) while things change."""


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
        if not self._loop_gone():
            with contextlib.suppress(RuntimeError):  # unless it closed meanwhile ("Event loop is closed")
                self.runtime.call(self._schedule)
                return
        self._run()

    def _loop_gone(self) -> bool:
        """The loop that owns the engine's state is closed (a script's ``asyncio.run`` ended, its client with
        it): nothing changes that state any more, so a redraw is made at once, by the caller. Queued there,
        it was refused ("Event loop is closed"), and the redraw pending for ever turned every later mark away."""
        return self.runtime.loop.is_closed()

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
        if delay is not None and self._tick_handle is None and not self._loop_gone():
            self._tick_handle = self.runtime.loop.call_later(delay, self._ticked)

    def _ticked(self) -> None:
        self._tick_handle = None
        self.mark()

    def flush_now(self) -> None:
        """Redraw now, on the loop, and wait for it (tests, and a final state before closing)."""
        if self._loop_gone():
            self._run()
            return
        self.runtime.call_and_wait(self._run)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop redrawing (any thread). A flag: a redraw already scheduled finds it and does nothing, so
        that closing from another thread never has to reach the loop (which may be closed by then)."""
        with self._lock:
            self._closed = True
        if self.runtime.in_loop_thread():  # tidy the timers now; elsewhere they fire once, in vain
            for handle in (self._handle, self._tick_handle):
                if handle is not None:
                    handle.cancel()
            self._handle = self._tick_handle = None


class Following:
    """A widget's subscription to a job, a run or the server's list: each change marks its :class:`Coalescer`.

    Subscribing and unsubscribing happen on the loop that owns the engine's state. Once the coalescer
    is closed, the subscription also ends itself at the next change, so :meth:`stop` need not reach
    a loop that is not running.
    """

    def __init__(self, source: Job | Run | ServerList, coalescer: Coalescer) -> None:
        self.source, self.coalescer = source, coalescer
        self._unsubscribe: Callable[[], None] | None = None
        coalescer.runtime.call(self._start)

    def _start(self) -> None:  # on the loop
        if self._unsubscribe is None and not self.coalescer.closed:
            self._unsubscribe = self.source.observe(self._changed)
        self.coalescer.mark()

    def _changed(self, _source: object) -> None:  # on the loop
        if self.coalescer.closed:
            self.end()
        else:
            self.coalescer.mark()

    def end(self) -> None:
        """Unsubscribe (on the loop), e.g. once a job is over and nothing will change any more."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def stop(self) -> None:
        """Stop redrawing and unsubscribe (any thread; never touches a loop that is not running)."""
        self.coalescer.close()
        runtime = self.coalescer.runtime
        if runtime.in_loop_thread():
            self.end()
        elif runtime.loop.is_running():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: the subscription dies with the loop
                runtime.call(self.end)


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


def on_failure(error: ErrorLine, undo: Callable[[], None] | None = None) -> Callable[[Any], None]:
    """A done-callback for a future of engine work started by a widget: its failure is shown in ``error``
    (and ``undo`` called), a cancellation is not a failure."""

    def _done(future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            error.show(exc)
            if undo is not None:
                undo()

    return _done


def show_html(output: Any, text: str) -> None:
    """Replace an ``Output`` widget's content with trusted HTML in one message.

    HTML in an ``Output`` (unlike an ``HTML`` widget) goes through the front end's renderer, which
    resolves relative ``src`` URLs against the notebook's folder (JupyterLab's ``/files/``).
    """
    output.outputs = ({"output_type": "display_data", "data": {"text/html": text}, "metadata": {}},)


class Panel(widgets.VBox):  # type: ignore[misc]
    """The base of sora_nb's widgets: ``close()`` stops their work; being collected does not.

    Displayed, a panel leaves a static fallback in the notebook (:meth:`static_html`: posters, statuses,
    prompts), shown where the live widget is gone, as in a saved notebook reopened.
    """

    _static_handle: Any = None
    _static_text = ""

    def static_html(self) -> str:
        """What a saved notebook shows in place of this widget once its kernel is gone."""
        return _display_grid.static_html(self._static_title(), self._static_jobs(), extra=self._static_extra())

    def _static_title(self) -> str:
        return f"sora_nb {type(self).__name__}"

    def _static_jobs(self) -> list[Job]:
        return []

    def _static_extra(self) -> str:
        """HTML shown below the jobs' tiles (escaped by the widget that makes it)."""
        return ""

    def _ipython_display_(self) -> None:
        self._static_text = self.static_html()
        self._static_handle = _display.display_widget(self)

    def _refresh_static(self) -> None:
        """Bring the static fallback up to date (after a redraw, on the loop) when it changed."""
        if self._static_handle is None:
            return
        text = self.static_html()
        if text != self._static_text:
            self._static_text = text
            _display.update_static(self._static_handle, text)

    def __del__(self) -> None:
        # ipywidgets' __del__ calls close(), which for these widgets stops redraws and subscriptions on
        # the engine's loop. A collected widget has nobody watching it, and at interpreter exit that
        # loop may be closed: flip the redraw flag only (no loop, no engine), then do what ipywidgets
        # does for any widget (close its comm). A subscription left behind ends itself at the next change.
        coalescer = getattr(self, "_coalescer", None)
        if coalescer is not None:
            coalescer.close()
        widgets.Widget.close(self)


class LiveBox(Panel):
    """A widget that redraws itself, coalesced, when a job or a run changes (see :meth:`_follow`)."""

    error: ErrorLine
    _clock: Callable[[], float] = staticmethod(time.perf_counter)
    """What a redraw's cost is timed with (its own, so that a test can give one widget a clock)."""

    def _follow(self, runtime: Runtime, source: Job | Run | ServerList | None, render: Callable[[], None], *,
                interval: float, tick: Callable[[], float | None] | None = None) -> None:
        """Call ``render`` on the loop (failures shown in ``self.error``) at most once per ``interval``:
        soon, then after each change of ``source`` (if any) and each :meth:`Coalescer.mark`."""
        self._runtime = runtime
        self._rendered = ""
        costs: list[float] = []

        def _render_and_static() -> None:
            started = self._clock()
            render()
            self._refresh_static()
            costs.append(self._clock() - started)
            if interval > 0 and len(costs) > 1:  # (0: the benchmarks' naive baseline, left as it is)
                # A redraw of a large run (a 10,000-job table: about half a second) waits LOAD_FACTOR times
                # its duration before the next, so that redraws take at most ~5 % of the loop. The first
                # (imports, caches) does not count; the cheaper of the last two does, at most MAX_INTERVAL.
                del costs[:-2]
                self._coalescer.interval = min(MAX_INTERVAL, max(interval, LOAD_FACTOR * min(costs)))

        self._coalescer = Coalescer(runtime, _render_and_static, interval=interval, on_error=self.error.show,
                                    tick=tick)
        self._following = Following(source, self._coalescer) if source is not None else None

    def _show_changed(self, output: Any, text: str) -> None:
        """Show ``text`` in ``output`` only if it changed: a redraw restarts the videos in it."""
        if text != self._rendered:
            self._rendered = text
            show_html(output, text)

    def refresh(self) -> None:
        """Redraw now and wait for it."""
        self._coalescer.flush_now()

    def close(self) -> None:
        """Stop following (from any thread) and close the widget."""
        following, coalescer = getattr(self, "_following", None), getattr(self, "_coalescer", None)
        if following is not None:
            following.stop()
        elif coalescer is not None:
            coalescer.close()
        super().close()


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
