"""What the test files share: the simulator's test speed, a free loopback port, a clock moved by hand,
small images, and waiting (with a bound) for a condition. Fixtures live in ``conftest.py``."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

T = TypeVar("T")

FAST = 0.004
"""Simulator time scale for tests: a 60 s job takes about a quarter of a second."""

T0 = 1_700_000_000.0
"""Where a :class:`FakeClock` starts: a plausible unix time, so timestamps look real."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, for a server the test starts itself."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class FakeClock:
    """A clock (``clock()`` gives the time) that moves only when the test moves it."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def image_bytes(size: tuple[int, int], fmt: str = "PNG", color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    """A plain image of ``size`` (width, height) encoded as ``fmt`` (``"PNG"``, ``"GIF"``, ``"WEBP"``...)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(path: Path, size: tuple[int, int], color: tuple[int, int, int] = (10, 120, 200)) -> Path:
    """:func:`image_bytes` written to ``path``, in the format its suffix names."""
    Image.new("RGB", size, color).save(path)
    return path


def character_clip(directory: Path, seconds: int = 3) -> bytes:
    """A clip a character can be made from (16:9 at 720p, 2-4 s): the simulator's own videos are smaller."""
    from sora_nb.simulator import render_video

    return render_video(directory, prompt="a face for a cameo", seconds=seconds, size="1280x720", max_side=1280,
                        fps=4).read_bytes()


async def no_sleep(_seconds: float) -> None:
    """A ``sleep`` for clients under test: retries and backoffs cost no time."""


def wait_for(predicate: Callable[[], T], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something true and return that; fail after ``timeout`` s.

    For a moment a test must act in that no event marks; the bound only keeps a bug from hanging.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class HeldOutput:
    """A PyAV output container that stops after its ``after``-th packet until ``release`` is set (``entered`` is
    set then): a write caught half-way, its file on disk, for a test to act in the middle of it."""

    def __init__(self, out: Any, entered: threading.Event, release: threading.Event, after: int = 3) -> None:
        self.out, self.entered, self.release, self.after, self.written = out, entered, release, after, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.out, name)

    def mux(self, packet: Any) -> None:
        self.out.mux(packet)
        self.written += 1
        if self.written == self.after:
            self.entered.set()
            self.release.wait(60)


class SimulatedClients:
    """Clients a test connects to in-process transports (``transport.config`` is the simulator's), under
    ``root/<profile>``, with quick retries; :meth:`close` closes them all (a fixture's teardown)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Any] = []

    def connect(self, profile: str, transport: Any) -> Any:
        import sora_nb

        client = sora_nb.connect(profile, simulator=transport.config, transport=transport,
                                 run_root=self.root / profile,
                                 retry=sora_nb.RetryPolicy(max_retries=2, base=0.001, jitter=0.0))
        self.made.append(client)
        return client

    def close(self) -> None:
        for client in self.made:
            client.close()


class Shown:
    """A stand-in for ``IPython.display.display``: what it was given, and the updates of the handles it returned."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.updates: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, obj: Any, **kw: Any) -> Any:
        self.calls.append((obj, kw))
        shown = self

        class Handle:
            def update(self, new: Any) -> None:
                with shown.lock:
                    shown.updates.append(new.data)

        return Handle() if kw.get("display_id") else None


@dataclass
class Sent:
    """Messages the widgets would have sent to the front end (the ``sent`` fixture records them), in order."""

    messages: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def updates(self, comm_ids: set[str] | None = None, since: float = 0.0) -> list[dict[str, Any]]:
        with self.lock:
            return [data for at, comm_id, data in self.messages
                    if at >= since and data.get("method") == "update" and (comm_ids is None or comm_id in comm_ids)]
