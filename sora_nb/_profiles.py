"""Server profiles: where to send requests, which key to use, and what the server can do.

A profile is a plain value. ``connect()`` picks one by name and fills in the base URL and key;
everything above the contract client reads the profile's capabilities, never the server's name.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from ._errors import ConfigurationError

__all__ = ["PROFILES", "Profile", "resolve_api_key", "resolve_profile"]

SIMULATOR_BASE_URL = "http://simulator.local/v1"


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
        reports_progress: what the server can do; the toolkit degrades visibly where it cannot.
        models: the models offered in choosers (``None``: free text).
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
    models: tuple[str, ...] | None = ("sora-2", "sora-2-pro")
    extra_headers: dict[str, str] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("simulator", base_url=SIMULATOR_BASE_URL, key_env=(), max_concurrency=8),
        Profile("openai-compatible", base_url=None),
        Profile("litellm", base_url="http://localhost:4000/v1", key_env=("LITELLM_API_KEY", "OPENAI_API_KEY"),
                reports_progress=False, supports_thumbnail=False),
        Profile("vllm-omni", base_url="http://localhost:8000/v1", multipart_only=True, validate_models=False,
                supports_remix=False, supports_extend=False, supports_thumbnail=False, models=None),
        Profile("sglang", base_url="http://localhost:30000/v1", validate_models=False, reports_progress=False,
                supports_remix=False, supports_extend=False, supports_thumbnail=False, models=None),
    )
}


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
            f"base_url {url!r} is not an http(s) URL. Allowed: http://HOST[:PORT]/v1 or https://... "
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
        interactive = sys.stdin is not None and sys.stdin.isatty() or "ipykernel" in sys.modules
    names = " or ".join(profile.key_env)
    if interactive:
        key = getpass.getpass(f"API key for {profile.name} (input hidden; or set {names}): ").strip()
        if key:
            return key
    raise ConfigurationError(
        f"profile {profile.name!r} needs an API key and none was found. "
        f"Fix: set {names} in the environment, or pass api_key=... (it is kept only in the client)."
    )
