"""Server profiles: where to send requests, which key to use, and what the server can do.

A profile is a plain value. ``connect()`` picks one by name and fills in the base URL and key;
everything above the adapter reads the profile's capabilities, never the server's name.

Profiles for the hosted services (``openrouter``, ``xai``, ``gemini``, ``together``, ``fal``,
``replicate``, ``runway``) name their adapter
(``sora_nb.providers``) and the simulator dialect that imitates them. Each profile declares its
:class:`~sora_nb._capabilities.Capabilities`, whose per-model facts (sizes, durations, prices) are the tables
of :mod:`sora_nb._catalog`, cited there and in ``docs/providers.md``; prices marked "third-party" there
could not be checked against the service.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from . import _catalog
from ._capabilities import Capabilities, ModelSpec
from ._errors import ConfigurationError
from ._redact import redact_url

__all__ = [
    "PROFILES",
    "Capabilities",
    "ModelSpec",
    "Profile",
    "resolve_api_key",
    "resolve_profile",
    "simulator_base_url",
]

SIMULATOR_BASE_URL = "http://simulator.local/v1"
SIMULATOR_API_KEY = "sk-sora-nb-simulator"
"""The placeholder key sent to the in-process simulator (which, like the services it imitates, wants one)."""


@dataclass(frozen=True)
class Profile:
    """A kind of server: where it is, how to reach it, and what it can do.

    Attributes:
        name: the profile's name, e.g. ``"simulator"``.
        capabilities: what the server can do: its models with their sizes, durations and prices, and its
            operations (see :class:`~sora_nb._capabilities.Capabilities`). Everything above the adapter reads
            this, never the server's name.
        base_url: the API root; ``None`` means the user must give one.
        key_env: environment variables searched for the API key, in order.
        requires_key: refuse to start without a key (hosted services); local gateways may not need one.
        multipart_only: creates must be multipart (vLLM-Omni).
        seconds_as_int: the server wants ``seconds`` as an integer.
        max_concurrency: default number of jobs in flight at once.
        adapter: the client class that speaks to the server, a key of ``sora_nb.providers.ADAPTERS``
            (``"contract"``: the OpenAI Videos contract as is).
        dialect: the simulator dialect that imitates the server (``connect(name, simulator=True)``).
        dashboard_url: where a user can see the jobs the service ran (named in error messages).

    >>> PROFILES["xai"].capabilities.price_per_second("grok-imagine-video", "1280x720")
    0.07
    """

    name: str
    capabilities: Capabilities = _catalog.CONTRACT
    base_url: str | None = None
    key_env: tuple[str, ...] = ("OPENAI_API_KEY",)
    requires_key: bool = False
    multipart_only: bool = False
    seconds_as_int: bool = False
    max_concurrency: int = 4
    extra_headers: dict[str, str] = field(default_factory=dict)
    adapter: str = "contract"
    dialect: str = "openai"
    dashboard_url: str | None = None


def _contract(**fields: Any) -> Capabilities:
    """An OpenAI-shaped server: OpenAI's models checked, other names sent as given, unless stated."""
    return replace(_catalog.CONTRACT, **fields)


def _own_models(**fields: Any) -> Capabilities:
    """A server of its own models (vLLM-Omni, SGLang): nothing known of them, so nothing is checked."""
    return replace(_catalog.CONTRACT, models=None, aliases={}, max_extensions=None, **fields)


def _hosted(name: str, models: Mapping[str, ModelSpec], default_model: str, *, caps: Mapping[str, Any] | None = None,
            **fields: Any) -> Profile:
    """A hosted service: a key is required; only its own models; no delete, list, remix, extend, thumbnail,
    characters or progress unless stated."""
    without: dict[str, Any] = dict(supports_delete=False, supports_list=False, supports_remix=False,
                                   supports_extend=False, supports_thumbnail=False, reports_progress=False)
    capabilities = Capabilities(models=models, default_model=default_model, **{**without, **(caps or {})})
    return Profile(name, capabilities=capabilities, requires_key=True, adapter=name, dialect=name, **fields)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        # The simulator serves OpenAI's models only (a model it does not know is refused, as OpenAI does).
        Profile("simulator", capabilities=_contract(other_models=False), base_url=SIMULATOR_BASE_URL, key_env=(),
                max_concurrency=8),
        Profile("openai-compatible", base_url=None),
        # LiteLLM's proxy (verified with litellm 1.106.2 routing openai/sora-2 to a custom api_base): no
        # DELETE route; GET /v1/videos cannot reach a custom api_base (no model to route by); remixes and
        # extensions are created but answer ids without the deployment, so they cannot be polled back.
        Profile("litellm", base_url="http://localhost:4000/v1", key_env=("LITELLM_API_KEY", "OPENAI_API_KEY"),
                capabilities=_contract(reports_progress=False, supports_thumbnail=False, supports_delete=False,
                                       supports_list=False, supports_remix=False, supports_extend=False,
                                       supports_characters=False)),
        Profile("vllm-omni", base_url="http://localhost:8000/v1", multipart_only=True,
                capabilities=_own_models(supports_remix=False, supports_extend=False, supports_thumbnail=False,
                                         supports_characters=False)),
        Profile("sglang", base_url="http://localhost:30000/v1",
                capabilities=_own_models(reports_progress=False, supports_remix=False, supports_extend=False,
                                         supports_thumbnail=False, supports_characters=False)),
        _hosted("openrouter", _catalog.OPENROUTER_MODELS, "google/veo-3.1", caps={"reports_cost": True},
                base_url="https://openrouter.ai/api/v1", key_env=("OPENROUTER_API_KEY",),
                dashboard_url="https://openrouter.ai/activity"),
        _hosted("xai", _catalog.XAI_MODELS, "grok-imagine-video",
                caps={"reports_cost": True, "reports_progress": True, "supports_remix": True, "supports_extend": True},
                base_url="https://api.x.ai/v1", key_env=("XAI_API_KEY",), dashboard_url="https://console.x.ai"),
        _hosted("gemini", _catalog.GEMINI_MODELS, "veo-3.1-fast-generate-preview",
                base_url="https://generativelanguage.googleapis.com/v1beta",
                key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"), max_concurrency=2,
                dashboard_url="https://aistudio.google.com"),
        _hosted("together", _catalog.TOGETHER_MODELS, "google/veo-3.0", caps={"reports_cost": True},
                base_url="https://api.together.xyz/v2", key_env=("TOGETHER_API_KEY",),
                dashboard_url="https://api.together.ai"),
        # fal and Replicate host hundreds of models: the popular ones are described, any other is sent as given.
        _hosted("fal", _catalog.FAL_MODELS, "fal-ai/veo3/fast", caps={"supports_delete": True, "other_models": True},
                base_url="https://queue.fal.run", key_env=("FAL_KEY",), dashboard_url="https://fal.ai/dashboard/requests"),
        _hosted("replicate", _catalog.REPLICATE_MODELS, "google/veo-3-fast",
                caps={"supports_delete": True, "other_models": True}, base_url="https://api.replicate.com/v1",
                key_env=("REPLICATE_API_TOKEN",), dashboard_url="https://replicate.com/predictions"),
        _hosted("runway", _catalog.RUNWAY_MODELS, "veo3.1_fast",
                caps={"supports_delete": True, "reports_progress": True}, base_url="https://api.dev.runwayml.com/v1",
                key_env=("RUNWAYML_API_SECRET",), extra_headers={"X-Runway-Version": "2024-11-06"},
                dashboard_url="https://dev.runwayml.com"),
    )
}


def simulator_base_url(profile: Profile) -> str:
    """The base URL a profile uses against its in-process dialect: the service's path on a host of its own.

    >>> simulator_base_url(PROFILES["openrouter"])
    'http://openrouter.simulator.local/api/v1'
    """
    if profile.dialect == "openai" or profile.base_url is None:
        return SIMULATOR_BASE_URL
    return f"http://{profile.dialect}.simulator.local{urlsplit(profile.base_url).path.rstrip('/')}"


def resolve_profile(name: str | None, *, base_url: str | None = None) -> Profile:
    """Pick the profile: by name; else ``openai-compatible`` when a base URL is given or
    ``SORA_NB_BASE_URL`` is set; else the simulator.

    >>> resolve_profile(None).name
    'simulator'
    >>> resolve_profile(None, base_url="http://localhost:4000/v1").name
    'openai-compatible'
    """
    if name is None:
        name = os.environ.get("SORA_NB_PROFILE") or None
    if name is None:
        name = "openai-compatible" if (base_url or os.environ.get("SORA_NB_BASE_URL")) else "simulator"
    if name not in PROFILES:
        raise ConfigurationError(
            f"profile={name!r} is unknown. Allowed: {', '.join(map(repr, PROFILES))}. "
            "Fix: pick one, or use 'openai-compatible' with base_url=... for any OpenAI-shaped server."
        )
    profile = PROFILES[name]
    url = base_url or (os.environ.get("SORA_NB_BASE_URL") if name != "simulator" else None) or profile.base_url
    if url is None:
        raise ConfigurationError(
            f"profile {name!r} needs a base URL. Fix: connect({name!r}, base_url='http://localhost:4000/v1') "
            "or set SORA_NB_BASE_URL."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"base_url {redact_url(url)!r} is not an http(s) URL. Allowed: http://HOST[:PORT]/v1 or https://... "
            "Fix: e.g. base_url='http://localhost:4000/v1'."
        )
    return replace(profile, base_url=url)


def resolve_api_key(profile: Profile, api_key: str | None, *, interactive: bool | None = None) -> str | None:
    """The key to use: the argument, else the profile's environment variables, else a prompt that never
    echoes (only when a person is there to answer). ``None`` when the server needs none."""
    if api_key:
        return api_key
    for var in profile.key_env:
        if os.environ.get(var):
            return os.environ[var]
    if not profile.requires_key:
        return None
    if interactive is None:
        interactive = (sys.stdin is not None and sys.stdin.isatty()) or "ipykernel" in sys.modules
    names = " or ".join(profile.key_env)
    if interactive:
        key = getpass.getpass(f"API key for {profile.name} (input hidden; or set {names}): ").strip()
        if key:
            return key
    raise ConfigurationError(
        f"profile {profile.name!r} needs an API key and none was found. "
        f"Fix: set {names} in the environment, or pass api_key=... (it is kept only in the client); "
        f"or connect({profile.name!r}, simulator=True) to run it on the built-in simulator (no key, no network)."
    )
