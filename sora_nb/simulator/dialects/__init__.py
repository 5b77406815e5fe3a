"""Simulator dialects: the simulator speaking a hosted service's API instead of OpenAI's.

One per service, each following that service's published API reference (paths, fields, status words,
error shapes, 202s and polling URLs, where the bytes live, how the key travels) and reusing the
simulator's job lifecycle, faults, audit and renderer. Choose one with ``SimulatorConfig(dialect=...)``:
in process (``SimulatorTransport``) or on a loopback port (``sora-nb simulator --dialect openrouter``).

>>> import asyncio, httpx
>>> from sora_nb.simulator import SimulatorConfig, SimulatorTransport
>>> async def demo():
...     transport = SimulatorTransport(SimulatorConfig(seed=1, dialect="xai"))
...     async with httpx.AsyncClient(transport=transport, base_url="http://xai.simulator.local/v1",
...                                  headers={"Authorization": "Bearer k"}) as client:
...         return sorted((await client.post("/videos/generations", json={"prompt": "a fox"})).json())
>>> asyncio.run(demo())
['request_id']
"""

from __future__ import annotations

from .._store import SimulatorState
from ._base import Dialect, DialectApp, create_dialect_app
from .fal import FalDialect
from .gemini import GeminiDialect
from .openrouter import OpenRouterDialect
from .replicate import ReplicateDialect
from .runway import RunwayDialect
from .together import TogetherDialect
from .xai import XAIDialect

__all__ = ["API_PATHS", "DIALECT_CLASSES", "Dialect", "DialectApp", "build_app"]

DIALECT_CLASSES: dict[str, type[Dialect]] = {
    "openrouter": OpenRouterDialect,
    "xai": XAIDialect,
    "gemini": GeminiDialect,
    "together": TogetherDialect,
    "fal": FalDialect,
    "replicate": ReplicateDialect,
    "runway": RunwayDialect,
}

API_PATHS: dict[str, str] = {"openai": "/v1", **{name: cls.api_prefix for name, cls in DIALECT_CLASSES.items()}}
"""The path of each dialect's API root (``http://host:port`` + this is the base URL)."""


def build_app(state: SimulatorState) -> DialectApp:
    """The app of ``state.config.dialect`` (not ``"openai"``, which is the simulator's own app)."""
    return create_dialect_app(state, DIALECT_CLASSES[state.config.dialect])
