"""Provider adapters: one interface, many services.

Each profile names its adapter (``Profile.adapter``); :func:`make_client` builds it. Everything above the
adapter (the runner, sweeps, widgets, the ledger, DataFrames) is the same for every service.

============  ===================  =======================================================================
adapter       class                speaks
============  ===================  =======================================================================
contract      ProfileClient        the OpenAI Videos contract (simulator, LiteLLM, vLLM-Omni, SGLang, ...)
openrouter    OpenRouterClient     ``POST /api/v1/videos`` + ``polling_url``, bytes at ``unsigned_urls``
xai           XAIClient            ``POST /v1/videos/generations`` -> ``request_id``, bytes on a CDN link
gemini        GeminiClient         Veo ``:predictLongRunning`` operations, key in ``x-goog-api-key``
together      TogetherClient       ``/v2/videos`` with width/height, bytes at ``outputs.video_url``
fal           FalClient            fal's queue: submit, status with queue position, result, cancel
replicate     ReplicateClient      predictions for a model or deployment; outputs gone after an hour
runway        RunwayClient         tasks (text or image to video) with progress, ``X-Runway-Version``
============  ===================  =======================================================================

>>> from sora_nb._profiles import PROFILES
>>> type(make_client(PROFILES["xai"], base_url="https://api.x.ai/v1", api_key="k")).__name__
'XAIClient'
"""

from __future__ import annotations

from typing import Any

from .._profiles import Profile
from ._base import ProfileClient, ProviderClient
from .fal import FalClient
from .gemini import GeminiClient
from .openrouter import OpenRouterClient
from .replicate import ReplicateClient
from .runway import RunwayClient
from .together import TogetherClient
from .xai import XAIClient

__all__ = [
    "ADAPTERS",
    "FalClient",
    "GeminiClient",
    "OpenRouterClient",
    "ProfileClient",
    "ProviderClient",
    "ReplicateClient",
    "RunwayClient",
    "TogetherClient",
    "XAIClient",
    "adapter_class",
    "make_client",
]

ADAPTERS: dict[str, type[ProfileClient]] = {
    "contract": ProfileClient,
    "openrouter": OpenRouterClient,
    "xai": XAIClient,
    "gemini": GeminiClient,
    "together": TogetherClient,
    "fal": FalClient,
    "replicate": ReplicateClient,
    "runway": RunwayClient,
}


def adapter_class(name: str) -> type[ProfileClient]:
    """The adapter class a profile names; a ``ValueError`` listing the known ones otherwise."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"adapter {name!r} is unknown. Allowed: {', '.join(map(repr, ADAPTERS))}.") from None


def make_client(profile: Profile, **kwargs: Any) -> ProfileClient:
    """The async client for ``profile``: ``kwargs`` are :class:`~sora_nb.ContractClient`'s (base_url, api_key,
    headers, timeout, transport, retry, ...)."""
    return adapter_class(profile.adapter)(profile=profile, **kwargs)
