"""What each service's video models accept and cost: the tables behind every profile's capabilities.

The single place for model facts: OpenAI's contract (CONTRACT.md §1) and each hosted service's models,
as :class:`~sora_nb._capabilities.ModelSpec` values. Profiles (:mod:`sora_nb._profiles`) declare their
capabilities from these tables, and the simulator's dialects answer with the same ones, so the client and
the simulator cannot drift apart. Models not in a table are not known here: nothing is checked for them.
"""

from __future__ import annotations

from ._capabilities import CONTRACT_DEFAULT_SECONDS, CONTRACT_DEFAULT_SIZE, Capabilities, ModelSpec

__all__ = [
    "MAX_EXTENSIONS",
    "MAX_EXTENSION_SECONDS",
    "MAX_TOTAL_SECONDS",
    "DEFAULT_MODEL",
    "DEFAULT_SECONDS",
    "DEFAULT_SIZE",
    "MAX_PROMPT_CHARS",
    "MODELS",
    "MAX_CHARACTERS",
    "MAX_CHARACTER_NAME",
    "CHARACTER_SECONDS",
    "CHARACTER_SIDES",
    "CHARACTER_TOLERANCE_S",
    "SECONDS",
    "SIZES",
    "CONTRACT",
    "SORA_MODELS",
    "SORA_ALIASES",
    "GEMINI_MODELS",
    "OPENROUTER_MODELS",
    "XAI_MODELS",
    "TOGETHER_MODELS",
    "FAL_MODELS",
    "REPLICATE_MODELS",
    "RUNWAY_MODELS",
]

MAX_PROMPT_CHARS = 32000
SECONDS: tuple[str, ...] = ("4", "8", "12")
SIZES: tuple[str, ...] = ("720x1280", "1280x720", "1024x1792", "1792x1024")
DEFAULT_MODEL = "sora-2"
MAX_EXTENSION_SECONDS = 20
"""An extension adds at most this many seconds (``POST /videos/extensions``)..."""
MAX_EXTENSIONS = 6
"""...a video takes at most this many extensions..."""
MAX_TOTAL_SECONDS = 120
"""...and its stitched total stays within this."""
DEFAULT_SECONDS = CONTRACT_DEFAULT_SECONDS
DEFAULT_SIZE = CONTRACT_DEFAULT_SIZE
MAX_CHARACTERS = 2
"""A create names at most this many characters (cameos), each by ``{"id": ...}``."""
MAX_CHARACTER_NAME = 80
"""A character's name is 1 to this many characters long."""
CHARACTER_SECONDS: tuple[float, float] = (2.0, 4.0)
"""A character's clip is this long (shortest, longest), in seconds..."""
CHARACTER_SIDES: tuple[int, int] = (720, 1080)
"""...its short side is in this range (720p to 1080p), and it is 16:9 or 9:16."""
CHARACTER_TOLERANCE_S = 0.25
"""Slack on a clip's length: a clip cut at 4 s ends on a frame boundary, a little after or before."""


_SORA_2 = ModelSpec(
    sizes=("720x1280", "1280x720"), seconds=SECONDS, usd_per_second=0.10, audio=True, image_input=True,
    price_source="openai.com/api/pricing",
)
_SORA_2_PRO = ModelSpec(
    sizes=SIZES, seconds=SECONDS, audio=True, image_input=True, price_source="openai.com/api/pricing",
    usd_per_second={"720x1280": 0.30, "1280x720": 0.30, "1024x1792": 0.50, "1792x1024": 0.50},
)
SORA_MODELS: dict[str, ModelSpec] = {"sora-2": _SORA_2, "sora-2-pro": _SORA_2_PRO}
"""OpenAI's video models, as the contract (CONTRACT.md §1) and the simulator's OpenAI dialect take them."""
SORA_ALIASES: dict[str, str] = {
    "sora-2-2025-10-06": "sora-2",
    "sora-2-2025-12-08": "sora-2",
    "sora-2-pro-2025-10-06": "sora-2-pro",
}
"""Dated snapshots, accepted and checked as the model they name."""

MODELS: dict[str, ModelSpec] = {**SORA_MODELS, **{alias: SORA_MODELS[name] for alias, name in SORA_ALIASES.items()}}
"""Every OpenAI model name the contract accepts, snapshots included."""

CONTRACT = Capabilities(models=SORA_MODELS, aliases=SORA_ALIASES, default_model=DEFAULT_MODEL, other_models=True,
                        default_size=DEFAULT_SIZE, default_seconds=DEFAULT_SECONDS, max_extensions=MAX_EXTENSIONS,
                        supports_characters=True, reference_exact_size=True)
"""A server that speaks OpenAI's contract, when nothing else is known of it: OpenAI's models are checked
against their tables, any other name is sent as given (a gateway's own model)."""


def _per_size(price: float, sizes: tuple[str, ...]) -> dict[str, float]:
    return dict.fromkeys(sizes, price)


# --- Veo 3.1 on the Gemini API: 16:9 or 9:16 at 720p, 1080p or 4k; 4, 6 or 8 s, and 1080p and 4k only at 8 s
# (ai.google.dev/gemini-api/docs/video). Prices: $0.40/s (standard) and $0.15/s (fast) at 720p/1080p are
# third-party reports of Google's price list.
_VEO_720P = ("1280x720", "720x1280")
_VEO_SIZES = (*_VEO_720P, "1920x1080", "1080x1920", "3840x2160", "2160x3840")
_VEO_SECONDS = ("4", "6", "8")
_VEO_8S_ABOVE_720P = dict.fromkeys(_VEO_SIZES[2:], ("8",))
_VEO_PRICE_SOURCE = "third-party report of ai.google.dev/gemini-api/docs/pricing, 2026-11"
GEMINI_MODELS: dict[str, ModelSpec] = {
    "veo-3.1-fast-generate-preview": ModelSpec(
        _VEO_SIZES, _VEO_SECONDS, _per_size(0.15, _VEO_SIZES[:4]), _VEO_8S_ABOVE_720P, audio=True, image_input=True,
        price_source=_VEO_PRICE_SOURCE),
    "veo-3.1-generate-preview": ModelSpec(
        _VEO_SIZES, _VEO_SECONDS, _per_size(0.40, _VEO_SIZES[:4]), _VEO_8S_ABOVE_720P, audio=True, image_input=True,
        price_source=_VEO_PRICE_SOURCE),
}

# --- OpenRouter: duration, resolution and aspect_ratio per model come from GET /api/v1/videos/models, and
# prices are per model SKU there (not fetched offline: each job reports its cost in usage.cost, so no price is
# declared here). The rows follow the examples of OpenRouter's video-generation reference (November 2026), and
# Google's own limits for Veo; they were not checked against the live model list.
_OPENROUTER_VEO = ModelSpec(_VEO_SIZES[:4], _VEO_SECONDS, seconds_by_size=_VEO_8S_ABOVE_720P, audio=True,
                            image_input=True)
_WAN_SIZES = ("1280x720", "720x1280", "720x720", "1920x1080", "1080x1920", "1080x1080")
_SEEDANCE_SIZES = (  # 16:9, 9:16, 1:1, 4:3, 3:4 and 21:9 at 480p, 720p and 1080p
    "854x480", "480x854", "480x480", "640x480", "480x640", "1120x480",
    "1280x720", "720x1280", "720x720", "960x720", "720x960", "1680x720",
    "1920x1080", "1080x1920", "1080x1080", "1440x1080", "1080x1440", "2520x1080",
)
OPENROUTER_MODELS: dict[str, ModelSpec] = {
    "google/veo-3.1": _OPENROUTER_VEO,
    "google/veo-3.1-fast": _OPENROUTER_VEO,
    "alibaba/wan-2.6": ModelSpec(_WAN_SIZES, ("5", "10")),
    "bytedance/seedance-2.0": ModelSpec(_SEEDANCE_SIZES, tuple(str(s) for s in range(4, 13))),
}

# --- xAI grok-imagine-video: duration 1-15 s, resolution 480p or 720p, aspect ratios 16:9 9:16 1:1 4:3 3:4 3:2
# 2:3 (docs.x.ai/developers/model-capabilities/video).
# $0.05/s at 480p and $0.07/s at 720p: xAI's price as listed by Cloudflare's model page.
_XAI_480P = ("848x480", "480x848", "480x480", "640x480", "480x640", "720x480", "480x720")
_XAI_720P = ("1280x720", "720x1280", "720x720", "960x720", "720x960", "1080x720", "720x1080")
XAI_MODELS: dict[str, ModelSpec] = {
    "grok-imagine-video": ModelSpec(
        _XAI_480P + _XAI_720P, tuple(str(s) for s in range(1, 16)),
        {**_per_size(0.05, _XAI_480P), **_per_size(0.07, _XAI_720P)}, image_input=True,
        price_source="developers.cloudflare.com/workers-ai/models (grok-imagine-video), 2026-11"),
}

# --- Together /v2/videos: width, height and seconds depend on the model (docs.together.ai "supported
# models"): not known here; each job reports its cost in outputs.cost. Reference images go in model-specific
# media fields that the adapter does not build, so no model takes one through sora_nb.
_TOGETHER = ModelSpec(image_input=False)
TOGETHER_MODELS: dict[str, ModelSpec] = {
    "google/veo-3.0": _TOGETHER,
    "minimax/video-01-director": _TOGETHER,
    "kwaivgI/kling-2.1-master": _TOGETHER,
    "ByteDance/Seedance-1.0-pro": _TOGETHER,
}

# --- fal (queue.fal.run): each model's schema page on fal.ai (fal.ai/models/<id>/llms.txt), read 2026-12-01.
# Kling 2.1 Master: duration "5"|"10", 16:9 9:16 1:1; "$1.40 for 5 s, $0.28 each additional second" = $0.28/s.
# Veo 3 Fast: "4s"|"6s"|"8s" (third-party list), 16:9 9:16 at 720p/1080p, audio on by default; price not read.
# Seedance 1 Pro: duration "5"|"10", 480p/720p/1080p; Hailuo 02 Standard: "6"|"10", 768p, no aspect ratio.
FAL_MODELS: dict[str, ModelSpec] = {
    "fal-ai/veo3/fast": ModelSpec(_VEO_SIZES[:4], _VEO_SECONDS, audio=True, image_input=True),
    "fal-ai/kling-video/v2.1/master/text-to-video": ModelSpec(
        ("1920x1080", "1080x1920", "1080x1080"), ("5", "10"), 0.28, audio=False, image_input=True,
        price_source="fal.ai model page (llms.txt), read 2026-12-01"),
    "fal-ai/bytedance/seedance/v1/pro/text-to-video": ModelSpec(
        ("854x480", "480x854", "1280x720", "720x1280", "1920x1080", "1080x1920"), ("5", "10"), audio=False,
        image_input=True),
    "fal-ai/minimax/hailuo-02/standard/text-to-video": ModelSpec(None, ("6", "10"), audio=False, image_input=True),
}

# --- Replicate (api.replicate.com/v1): inputs follow each model's schema on replicate.com; sizes, durations and
# prices were not read from Replicate for these models (unknown, not checked). Outputs expire after 1 hour.
REPLICATE_MODELS: dict[str, ModelSpec] = {
    "google/veo-3-fast": ModelSpec(audio=True, image_input=True),
    "kwaivgi/kling-v2.1": ModelSpec(image_input=True),
    "minimax/hailuo-02": ModelSpec(image_input=True),
    "bytedance/seedance-1-pro": ModelSpec(image_input=True),
}

# --- Runway (api.dev.runwayml.com/v1, X-Runway-Version 2024-11-06): ratios and durations from the official
# client's parameter types (runwayml/sdk-python 5.13.0, text_to_video_create_params.py); gen4.5 2-10 s at
# 1280:720 or 720:1280; veo3.1 and veo3.1_fast 4/6/8 s at 720p or 1080p with optional audio. Priced in credits;
# the dollar prices were not read from Runway (a third party reports $0.01 per credit): unknown.
RUNWAY_MODELS: dict[str, ModelSpec] = {
    "veo3.1_fast": ModelSpec(_VEO_SIZES[:4], _VEO_SECONDS, audio=True, image_input=True),
    "veo3.1": ModelSpec(_VEO_SIZES[:4], _VEO_SECONDS, audio=True, image_input=True),
    "gen4.5": ModelSpec(("1280x720", "720x1280"), tuple(str(s) for s in range(2, 11)), audio=False,
                        image_input=True),
}
