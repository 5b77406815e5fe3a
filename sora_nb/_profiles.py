"""Server profiles: where to send requests, which key to use, and what the server can do.

A profile is a plain value. ``connect()`` picks one by name and fills in the base URL and key;
everything above the adapter reads the profile's capabilities, never the server's name.

Profiles for the hosted services (``openrouter``, ``xai``, ``gemini``, ``together``) name their adapter
(``sora_nb.providers``) and the simulator dialect that imitates them, and declare per model the sizes and
durations accepted and the published price per second where one is known. Sources are cited in
``docs/providers.md``; prices marked "third-party" there could not be checked against the service.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from . import _catalog
from ._errors import ConfigurationError, ValidationError
from ._redact import redact_url

__all__ = [
    "PROFILES",
    "Capabilities",
    "Profile",
    "ServedModel",
    "resolve_api_key",
    "resolve_profile",
    "simulator_base_url",
]

SIMULATOR_BASE_URL = "http://simulator.local/v1"
SIMULATOR_API_KEY = "sk-sora-nb-simulator"
"""The placeholder key sent to the in-process simulator (which, like the services it imitates, wants one)."""


@dataclass(frozen=True)
class ServedModel:
    """What one model accepts on one service, and its published price.

    ``sizes`` and ``seconds`` are the accepted values in the toolkit's vocabulary (``WIDTHxHEIGHT``, whole
    seconds as strings), ``None`` when not known (then nothing is checked). ``usd_per_second`` is one price,
    or a price per size; ``None`` (or a size missing from the mapping) means unknown, never zero.

    >>> ServedModel(sizes=("1280x720",), usd_per_second={"1280x720": 0.07}).price("1280x720")
    0.07
    """

    sizes: tuple[str, ...] | None = None
    seconds: tuple[str, ...] | None = None
    usd_per_second: float | Mapping[str, float] | None = None

    def price(self, size: str) -> float | None:
        """USD per generated second at ``size``, or ``None`` when not published."""
        if self.usd_per_second is None or isinstance(self.usd_per_second, (int, float)):
            return self.usd_per_second
        return self.usd_per_second.get(size)


@dataclass(frozen=True)
class Capabilities:
    """What a server can do, as its profile declares it: what sweeps validate against and widgets offer.

    Satisfies :class:`sora_nb._grid.Capabilities` (``models`` maps a model to its accepted
    ``(sizes, seconds)``). Models not listed follow the built-in catalog (OpenAI's models) or, when unknown
    there too, pass unchecked. ``reports_cost``: the job reports what it cost (read into the DataFrame's
    ``reported_cost_usd``).

    >>> PROFILES["xai"].capabilities.price_per_second("grok-imagine-video", "1280x720")
    0.07
    """

    served: Mapping[str, ServedModel] | None
    reports_progress: bool
    reports_cost: bool
    supports_remix: bool
    supports_extend: bool
    supports_delete: bool
    supports_list: bool
    supports_thumbnail: bool
    supports_characters: bool = False
    """The server makes characters (``POST /videos/characters``) and takes ``characters=[...]`` in a create."""

    @property
    def models(self) -> Mapping[str, tuple[Sequence[str] | None, Sequence[str] | None]] | None:
        if self.served is None:
            return None
        return {name: (model.sizes, model.seconds) for name, model in self.served.items()}

    def check(self, model: str, size: str, seconds: str) -> None:
        """Raise :class:`~sora_nb.ValidationError` when the profile says ``model`` does not take these values.

        >>> PROFILES["gemini"].capabilities.check("veo-3.1-generate-preview", "1280x720", "5")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sora_nb.ValidationError: seconds='5' is not served for ... Allowed: '4', '6', '8'...
        """
        served = (self.served or {}).get(model)
        if served is None:
            return
        for name, value, allowed in (("size", size, served.sizes), ("seconds", seconds, served.seconds)):
            if allowed is not None and value not in allowed:
                raise ValidationError(
                    f"{name}={value!r} is not served for {model} by this server. "
                    f"Allowed: {', '.join(map(repr, allowed))}. Fix: pass one of them, or another model.",
                    field=name, allowed=tuple(allowed),
                )

    def price_per_second(self, model: str, size: str) -> float | None:
        """USD per generated second: the service's published price, else the catalog's, else ``None``."""
        served = (self.served or {}).get(model)
        if served is not None:
            return served.price(size)
        return _catalog.price_per_second(model, size)


@dataclass(frozen=True)
class Profile:
    """A kind of server and what it supports.

    Attributes:
        name: the profile's name, e.g. ``"simulator"``.
        base_url: the API root; ``None`` means the user must give one.
        key_env: environment variables searched for the API key, in order.
        requires_key: refuse to start without a key (hosted services); local gateways may not need one.
        multipart_only: creates must be multipart (vLLM-Omni).
        seconds_as_int: the server wants ``seconds`` as an integer.
        validate_models: check known OpenAI models' sizes/durations before sending.
        max_concurrency: default number of jobs in flight at once.
        supports_delete / supports_list / supports_remix / supports_extend / supports_thumbnail /
        reports_progress / supports_characters: what the server can do; the toolkit degrades visibly where
        it cannot (characters: OpenAI's contract only; no gateway or hosted service here forwards them).
        supports_input_reference: a create takes a reference image (``input_reference``); a storyboard's
            continuity needs it.
        models: the models offered in choosers (``None``: free text).
        adapter: the client class that speaks to the server, a key of ``sora_nb.providers.ADAPTERS``
            (``"contract"``: the OpenAI Videos contract as is).
        dialect: the simulator dialect that imitates the server (``connect(name, simulator=True)``).
        served: per model, the accepted sizes and durations and the published price (see :class:`ServedModel`).
        default_model: the model used when a request names none.
        reports_cost: each job reports its cost.
        dashboard_url: where a user can see the jobs the service ran (named in error messages).
    """

    name: str
    base_url: str | None = None
    key_env: tuple[str, ...] = ("OPENAI_API_KEY",)
    requires_key: bool = False
    multipart_only: bool = False
    seconds_as_int: bool = False
    validate_models: bool = True
    max_concurrency: int = 4
    supports_delete: bool = True
    supports_list: bool = True
    supports_remix: bool = True
    supports_extend: bool = True
    supports_thumbnail: bool = True
    reports_progress: bool = True
    supports_characters: bool = True
    supports_input_reference: bool = True
    models: tuple[str, ...] | None = ("sora-2", "sora-2-pro")
    extra_headers: dict[str, str] = field(default_factory=dict)
    adapter: str = "contract"
    dialect: str = "openai"
    served: Mapping[str, ServedModel] | None = None
    default_model: str = _catalog.DEFAULT_MODEL
    reports_cost: bool = False
    dashboard_url: str | None = None

    @property
    def capabilities(self) -> Capabilities:
        """What this server can do (see :class:`Capabilities`); sweeps validate against it."""
        return Capabilities(
            served=self.served, reports_progress=self.reports_progress, reports_cost=self.reports_cost,
            supports_remix=self.supports_remix, supports_extend=self.supports_extend,
            supports_delete=self.supports_delete, supports_list=self.supports_list,
            supports_thumbnail=self.supports_thumbnail, supports_characters=self.supports_characters,
        )


def _sizes(*aspects_by_resolution: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(size for group in aspects_by_resolution for size in group)


# Veo 3.1 on the Gemini API: 16:9 or 9:16 at 720p, 1080p or 4k; 4, 6 or 8 s (ai.google.dev/gemini-api/docs/video).
# Prices: $0.40/s (standard) and $0.15/s (fast) at 720p/1080p are third-party reports of Google's price list.
_VEO_SIZES = _sizes(("1280x720", "720x1280"), ("1920x1080", "1080x1920"), ("3840x2160", "2160x3840"))
_VEO_SECONDS = ("4", "6", "8")


def _per_size(price: float, sizes: tuple[str, ...]) -> dict[str, float]:
    return dict.fromkeys(sizes, price)


_GEMINI_MODELS = {
    "veo-3.1-fast-generate-preview": ServedModel(_VEO_SIZES, _VEO_SECONDS, _per_size(0.15, _VEO_SIZES[:4])),
    "veo-3.1-generate-preview": ServedModel(_VEO_SIZES, _VEO_SECONDS, _per_size(0.40, _VEO_SIZES[:4])),
}

# OpenRouter: duration, resolution and aspect_ratio per model come from GET /api/v1/videos/models; prices are
# per model SKU there too (not fetched offline: each job reports its cost in usage.cost).
_OPENROUTER_MODELS = {
    "google/veo-3.1": ServedModel(_VEO_SIZES[:4], _VEO_SECONDS),
    "google/veo-3.1-fast": ServedModel(_VEO_SIZES[:4], _VEO_SECONDS),
    "alibaba/wan-2.6": ServedModel(),
    "bytedance/seedance-2.0": ServedModel(),
}

# xAI grok-imagine-video: duration 1-15 s, resolution 480p or 720p, seven aspect ratios (the three common
# ones are listed here); $0.05/s at 480p and $0.07/s at 720p (xAI's price as listed by Cloudflare's model page).
_XAI_480P = ("848x480", "480x848", "480x480")
_XAI_720P = ("1280x720", "720x1280", "720x720")
_XAI_MODELS = {
    "grok-imagine-video": ServedModel(
        _XAI_480P + _XAI_720P, tuple(str(s) for s in range(1, 16)),
        {**_per_size(0.05, _XAI_480P), **_per_size(0.07, _XAI_720P)},
    ),
}

# Together /v2/videos: width, height and seconds depend on the model (docs.together.ai "supported models");
# not checked here, and each job reports its cost in outputs.cost.
_TOGETHER_MODELS = {
    "google/veo-3.0": ServedModel(),
    "minimax/video-01-director": ServedModel(),
    "kwaivgI/kling-2.1-master": ServedModel(),
    "ByteDance/Seedance-1.0-pro": ServedModel(),
}


def _hosted(name: str, **fields: Any) -> Profile:
    """A hosted service: a key is required; no delete, list, remix, extend, thumbnail or progress unless stated."""
    defaults: dict[str, Any] = dict(
        requires_key=True, supports_delete=False, supports_list=False, supports_remix=False, supports_extend=False,
        supports_thumbnail=False, reports_progress=False, supports_characters=False, adapter=name, dialect=name,
    )
    return Profile(name, **{**defaults, **fields})


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("simulator", base_url=SIMULATOR_BASE_URL, key_env=(), max_concurrency=8),
        Profile("openai-compatible", base_url=None),
        # LiteLLM's proxy (verified with litellm 1.106.2 routing openai/sora-2 to a custom api_base): no
        # DELETE route; GET /v1/videos cannot reach a custom api_base (no model to route by); remixes and
        # extensions are created but answer ids without the deployment, so they cannot be polled back.
        Profile("litellm", base_url="http://localhost:4000/v1", key_env=("LITELLM_API_KEY", "OPENAI_API_KEY"),
                reports_progress=False, supports_thumbnail=False, supports_delete=False, supports_list=False,
                supports_remix=False, supports_extend=False, supports_characters=False),
        Profile("vllm-omni", base_url="http://localhost:8000/v1", multipart_only=True, validate_models=False,
                supports_remix=False, supports_extend=False, supports_thumbnail=False, supports_characters=False,
                models=None),
        Profile("sglang", base_url="http://localhost:30000/v1", validate_models=False, reports_progress=False,
                supports_remix=False, supports_extend=False, supports_thumbnail=False, supports_characters=False,
                models=None),
        _hosted("openrouter", base_url="https://openrouter.ai/api/v1", key_env=("OPENROUTER_API_KEY",),
                models=tuple(_OPENROUTER_MODELS), served=_OPENROUTER_MODELS, default_model="google/veo-3.1",
                reports_cost=True, dashboard_url="https://openrouter.ai/activity"),
        _hosted("xai", base_url="https://api.x.ai/v1", key_env=("XAI_API_KEY",), models=tuple(_XAI_MODELS),
                served=_XAI_MODELS, default_model="grok-imagine-video", reports_cost=True, reports_progress=True,
                supports_remix=True, supports_extend=True, dashboard_url="https://console.x.ai"),
        _hosted("gemini", base_url="https://generativelanguage.googleapis.com/v1beta",
                key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"), models=tuple(_GEMINI_MODELS), served=_GEMINI_MODELS,
                default_model="veo-3.1-fast-generate-preview", max_concurrency=2,
                dashboard_url="https://aistudio.google.com"),
        _hosted("together", base_url="https://api.together.xyz/v2", key_env=("TOGETHER_API_KEY",),
                models=tuple(_TOGETHER_MODELS), served=_TOGETHER_MODELS, default_model="google/veo-3.0",
                reports_cost=True, dashboard_url="https://api.together.ai", supports_input_reference=False),
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
