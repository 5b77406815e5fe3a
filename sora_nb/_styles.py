"""Style presets: named phrases appended to a prompt, so a sweep can compare looks by name."""

from __future__ import annotations

from ._errors import ValidationError

__all__ = ["STYLES", "apply_style"]

STYLES: dict[str, str] = {
    "cinematic": "Cinematic shot, 35mm film, shallow depth of field, warm natural light.",
    "documentary": "Handheld documentary footage, natural colours, available light.",
    "anime": "Hand-drawn anime style, clean line art, vivid cel shading.",
    "claymation": "Stop-motion claymation, tactile textures, miniature set.",
    "noir": "Black-and-white film noir, hard shadows, high contrast.",
    "vintage": "1970s 16mm film, grain, faded colours, soft vignette.",
}


def apply_style(prompt: str, style: str | None) -> str:
    """The prompt sent to the server for ``style`` (a preset name, or ``None`` for the prompt as is).

    >>> apply_style("a corgi surfing", "noir")
    'a corgi surfing. Black-and-white film noir, hard shadows, high contrast.'
    """
    if style is None or style == "":
        return prompt
    if style not in STYLES:
        allowed = tuple(STYLES)
        raise ValidationError(
            f"style={style!r} is not a preset. Allowed: {', '.join(map(repr, allowed))}, or None. "
            "Fix: pick one, or write the look into the prompt itself.",
            field="style",
            allowed=allowed,
        )
    return f"{prompt.rstrip().rstrip('.')}. {STYLES[style]}"
