"""What the known OpenAI video models accept, and what they cost.

The single place for the contract's value tables (CONTRACT.md §1). The client validates against them
before any request; the simulator answers with the same rules, so the two can never drift apart.
Unknown models (served by other gateways) are not in the tables and pass through unvalidated.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    "ModelSpec",
    "price_per_second",
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
DEFAULT_SECONDS = "4"
DEFAULT_SIZE = "720x1280"
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


@dataclass(frozen=True)
class ModelSpec:
    """The sizes, durations and prices (USD per generated second, by size) of one model."""

    name: str
    sizes: tuple[str, ...]
    seconds: tuple[str, ...]
    usd_per_second: dict[str, float]


_SORA_2 = ModelSpec(
    name="sora-2",
    sizes=("720x1280", "1280x720"),
    seconds=SECONDS,
    usd_per_second={"720x1280": 0.10, "1280x720": 0.10},
)
_SORA_2_PRO = ModelSpec(
    name="sora-2-pro",
    sizes=SIZES,
    seconds=SECONDS,
    usd_per_second={"720x1280": 0.30, "1280x720": 0.30, "1024x1792": 0.50, "1792x1024": 0.50},
)

MODELS: dict[str, ModelSpec] = {
    "sora-2": _SORA_2,
    "sora-2-2025-10-06": _SORA_2,
    "sora-2-2025-12-08": _SORA_2,
    "sora-2-pro": _SORA_2_PRO,
    "sora-2-pro-2025-10-06": _SORA_2_PRO,
}


def price_per_second(model: str, size: str) -> float | None:
    """USD per generated second, or ``None`` when the price is not known (never a silent zero).

    >>> price_per_second("sora-2", "1280x720")
    0.1
    >>> price_per_second("my-gateway-model", "1280x720") is None
    True
    """
    spec = MODELS.get(model)
    if spec is None:
        return None
    return spec.usd_per_second.get(size)
