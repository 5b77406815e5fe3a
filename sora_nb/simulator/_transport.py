"""The simulator as an httpx transport: the toolkit's default backend, with no socket.

>>> import asyncio, httpx
>>> async def demo():
...     transport = SimulatorTransport(SimulatorConfig(seed=1))
...     async with httpx.AsyncClient(transport=transport, base_url="http://simulator.local/v1",
...                                  headers={"Authorization": "Bearer any-key"}) as client:
...         response = await client.post("/videos", json={"prompt": "a fox"})
...     return response.json()["status"], len(transport.audit())
>>> asyncio.run(demo())
('queued', 1)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette

from ._app import SimulatorApp, create_state_app
from ._config import SimulatorConfig
from ._faults import DropConnection
from ._store import IN_PROCESS_THREADS, SimulatorState

__all__ = ["SimulatorTransport", "create_app"]


def create_app(config: SimulatorConfig | None = None, *, clock: Callable[[], float] | None = None) -> Starlette:
    """Build the simulator's ASGI app (serve it with any ASGI server, or use :class:`SimulatorTransport`).

    Args:
        config: Behaviour and faults; defaults to a healthy service with real-time durations.
        clock: Returns the current time in seconds (default ``time.time``); inject one in tests to
            move jobs through their life without sleeping.

    >>> app = create_app(SimulatorConfig(seed=3), clock=lambda: 0.0)
    >>> sorted({route.path for route in app.routes})[:2]
    ['/_simulator/audit', '/v1/videos']
    """
    state = SimulatorState(config or SimulatorConfig(), clock or time.time)
    if state.config.dialect != "openai":
        from .dialects import build_app

        return build_app(state)
    return create_state_app(state)


def _state(app: Starlette) -> SimulatorState:
    if not isinstance(app, SimulatorApp):  # pragma: no cover - defensive
        raise TypeError("not a simulator app; build it with sora_nb.simulator.create_app")
    return app.simulator


class SimulatorTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that answers from an in-process simulator.

    Dropped-connection faults surface as the httpx exceptions a socket client would get:
    ``httpx.RemoteProtocolError`` ("Server disconnected without sending a response.") for a drop
    before the request was handled, ``httpx.ReadError`` (connection reset) for a create that was
    accepted but whose answer was lost.

    Attributes:
        app: The simulator's Starlette app.
        config: Its configuration.
    """

    def __init__(self, config: SimulatorConfig | None = None, *, clock: Callable[[], float] | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.app = create_app(self.config, clock=clock)
        self.state.worker_threads = IN_PROCESS_THREADS  # it shares the process (a kernel) with its user
        self._asgi = httpx.ASGITransport(app=self.app)

    @property
    def state(self) -> SimulatorState:
        """The simulator's state (jobs, audit, RNGs); for tests and benchmarks."""
        return _state(self.app)

    def audit(self) -> list[dict[str, Any]]:
        """Every create the simulator accepted, oldest first (same as ``GET /_simulator/audit``)."""
        return self.state.audit()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._asgi.handle_async_request(request)
        except DropConnection as drop:
            if drop.kind == "reset":
                raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request) from None
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None

    async def aclose(self) -> None:
        await self._asgi.aclose()
        self.state.close()
