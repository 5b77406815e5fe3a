"""Sizes in the toolkit's vocabulary (``WIDTHxHEIGHT``) and in the services' (aspect ratio + resolution).

Pure functions. The toolkit always speaks ``"1280x720"``; services that take ``aspect_ratio`` and
``resolution`` get them from :func:`aspect_and_resolution`, and their answers are turned back into a size
by :func:`size_for`.

>>> aspect_and_resolution("1280x720")
('16:9', '720p')
>>> size_for("9:16", "1080p")
'1080x1920'
"""

from __future__ import annotations

from .._errors import ValidationError

__all__ = ["ASPECTS", "aspect_and_resolution", "data_url", "size_for", "width_height"]

ASPECTS: dict[str, float] = {
    "16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0, "4:3": 4 / 3, "3:4": 3 / 4, "3:2": 3 / 2, "2:3": 2 / 3,
    "21:9": 21 / 9, "9:21": 9 / 21,
}  # fmt: skip
"""Aspect ratios the services name, and their width/height."""

_RESOLUTIONS = {480: "480p", 720: "720p", 768: "768p", 1080: "1080p", 2160: "4k"}
_SHORT_SIDE = {label: side for side, label in _RESOLUTIONS.items()}


def width_height(size: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; a ``ValidationError`` for anything else."""
    width, sep, height = size.partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise ValidationError(f"size={size!r} is not WIDTHxHEIGHT. Fix: e.g. size='1280x720'.", field="size")
    return int(width), int(height)


def aspect_and_resolution(size: str) -> tuple[str, str]:
    """The aspect ratio (within 1 %) and resolution (the short side) that a service would call ``size``.

    >>> aspect_and_resolution("848x480"), aspect_and_resolution("3840x2160")
    (('16:9', '480p'), ('16:9', '4k'))
    """
    width, height = width_height(size)
    ratio = width / height
    aspect = min(ASPECTS, key=lambda name: abs(ASPECTS[name] - ratio))
    resolution = _RESOLUTIONS.get(min(width, height))
    if abs(ASPECTS[aspect] - ratio) / ratio > 0.01 or resolution is None:
        raise ValidationError(
            f"size={size!r} has no aspect ratio and resolution that this service names "
            f"(aspects {', '.join(ASPECTS)}; short side {', '.join(map(str, _RESOLUTIONS))} px). "
            "Fix: pick a size from client.profile.capabilities, e.g. '1280x720'.",
            field="size",
        )
    return aspect, resolution


def size_for(aspect: str | None, resolution: str | None) -> str | None:
    """The ``WIDTHxHEIGHT`` of an aspect ratio at a resolution (widths rounded to even pixels), or ``None``.

    >>> size_for("16:9", "480p"), size_for("1:1", "720p"), size_for("16:9", None)
    ('854x480', '720x720', None)
    """
    ratio = ASPECTS.get(aspect or "")
    short = _SHORT_SIDE.get((resolution or "").lower())
    if ratio is None or short is None:
        return None
    if ratio >= 1:
        return f"{2 * round(short * ratio / 2)}x{short}"
    return f"{short}x{2 * round(short / ratio / 2)}"


def data_url(data: bytes, content_type: str) -> str:
    """An image as a ``data:`` URL (how OpenRouter and xAI take an uploaded reference image)."""
    import base64

    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
