"""Where sora_nb's background work runs, and how other threads hand work to it.

In a notebook the work runs as tasks on the kernel's own event loop, so jobs progress while the user
keeps executing cells. In a plain script (no running loop) a private loop runs in a daemon thread.
Either way there is exactly one loop that owns job state (DESIGN.md invariant 1); widget callbacks,
which may run on another thread (JupyterLab >= 4.4 comm subshells), only call :meth:`Runtime.call`
or :meth:`Runtime.submit`, which are thread-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Runtime", "get_runtime"]

T = TypeVar("T")

_lock = threading.Lock()
_background: Runtime | None = None
_by_loop: dict[int, Runtime] = {}


class Runtime:
    """One event loop that owns sora_nb's state, with thread-safe ways in."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, thread: threading.Thread | None = None) -> None:
        self.loop = loop
        self.thread = thread
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def owns_thread(self) -> bool:
        """True for the private background loop (scripts), False for a borrowed one (a kernel's)."""
        return self.thread is not None

    def in_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``coro`` as a task; must be called on the loop. A strong reference is kept until it ends
        (the loop keeps only weak ones, and a collected task silently stops)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop from any thread; returns a thread-safe future."""
        if self.in_loop_thread():
            task = self.spawn(coro)
            future: concurrent.futures.Future[T] = concurrent.futures.Future()

            def _copy(t: asyncio.Task[T]) -> None:
                if t.cancelled():
                    future.cancel()
                elif (exc := t.exception()) is not None:
                    future.set_exception(exc)
                else:
                    future.set_result(t.result())

            task.add_done_callback(_copy)
            return future
        return asyncio.run_coroutine_threadsafe(self._tracked(coro), self.loop)

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await coro

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the loop thread, soon; safe from any thread (widget callbacks)."""
        if self.in_loop_thread():
            fn(*args)
            return
        self._check_open()
        self.loop.call_soon_threadsafe(fn, *args)

    def _check_open(self) -> None:
        """Raise a RuntimeError that says what to do when the loop is closed (nothing can run there any more)."""
        if self.loop.is_closed():
            raise RuntimeError(
                "sora_nb: the event loop of this client is closed (the asyncio.run that made it ended), so "
                "nothing of it can run any more; its runs' jobs stopped with it and stay resumable. Fix: "
                "sora_nb.resume(run_dir) to carry a run on (or cancel it), or sora_nb.connect() again.")

    def call_and_wait(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
        """Call ``fn(*args)`` on the loop thread and return its result (blocking a non-loop thread)."""
        if self.in_loop_thread():
            return fn(*args)

        async def _call() -> T:
            return fn(*args)

        self._check_open()
        future = asyncio.run_coroutine_threadsafe(_call(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            # Still queued there: a bare TimeoutError read as if it had been dropped, or had failed.
            raise TimeoutError(
                f"sora_nb: the event loop was busy for {timeout} s (a cell or callback still running on it), so "
                f"{getattr(fn, '__qualname__', fn)} has not run yet; it runs once it is free. Fix: let that cell "
                "end (or interrupt it); nothing needs to be called again.") from None

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None) -> T:
        """Block until ``coro`` finishes (scripts, CLI); ``timeout`` in seconds.

        On the loop's own thread (a notebook cell) blocking would freeze the loop that does the work,
        so the loop is re-entered with nest-asyncio2, applied only now and only to this loop. Without
        it, the error says to use ``await``.
        """
        if threading.current_thread() is self.thread:
            # Observers and callbacks run here in a script. Re-entering this loop (as a notebook's is) would
            # leave the blocked callback under the nested run, and a close() would wait on it for ever.
            coro.close()
            raise RuntimeError(
                "sora_nb: a blocking call (wait, close, call) was made from sora_nb's own loop thread, where "
                "observers and callbacks run; it would stop every job. Fix: make it from your script's "
                "thread, e.g. after run.wait() returns."
            )
        if timeout is not None:
            coro = asyncio.wait_for(coro, timeout)
        if not self.in_loop_thread():
            return self.submit(coro).result()
        try:
            import nest_asyncio2
        except ImportError:
            coro.close()
            raise RuntimeError(
                "This cell runs on the event loop that does the work, so it cannot block. "
                "Fix: use `await job` (or `await run`) in the notebook, or install nest-asyncio2 "
                "(pip install 'sora-nb[notebook]') to allow job.wait() here."
            ) from None
        nest_asyncio2.apply(self.loop)
        return self.loop.run_until_complete(coro)


def _start_background() -> Runtime:
    loop = asyncio.new_event_loop()
    # Named workers (checksums, thumbnails, disk syncs), so a thread dump says whose they are.
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(thread_name_prefix="sora_nb-worker"))
    ready = threading.Event()

    def _main() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=_main, name="sora_nb-loop", daemon=True)
    thread.start()
    ready.wait()
    return Runtime(loop, thread=thread)


def get_runtime() -> Runtime:
    """The runtime for the caller: the running loop of this thread (a kernel's, the CLI's), else the
    private background loop, started on first use."""
    global _background
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with _lock:
        if loop is not None:
            if _background is not None and loop is _background.loop:
                return _background
            runtime = _by_loop.get(id(loop))
            if runtime is None or runtime.loop is not loop or loop.is_closed():
                runtime = _by_loop[id(loop)] = Runtime(loop)
            return runtime
        if _background is None or _background.loop.is_closed():
            _background = _start_background()
        return _background
