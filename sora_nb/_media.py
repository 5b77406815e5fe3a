"""Local media helpers: checksums and thumbnails made from a downloaded video (for servers with none)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["make_thumbnail", "own_seconds", "sha256_file"]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """``"sha256:<hex>"`` of a file, read in chunks (videos are never held whole in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def make_thumbnail(
    video: str | os.PathLike[str], dest: str | os.PathLike[str], *, max_side: int = 320,
    own_seconds: float | None = None,
) -> Path:
    """Write a WebP poster of the video, atomically; return its path.

    The poster is the first frame; with ``own_seconds``, the middle of the video's last ``own_seconds``
    (its own part: a video made from an image, or an extension, begins with what it continues, the image
    or the source video, and fades from it over the first second).
    """
    import av
    from PIL import Image

    dest = Path(dest)
    with av.open(os.fspath(video)) as container:
        at = 0.0
        if own_seconds is not None and container.duration:
            length = container.duration / av.time_base
            at = max(0.0, length - own_seconds) + min(own_seconds, length) / 2
        frame = None
        for frame in container.decode(video=0):
            if frame.time is None or frame.time >= at:
                break
        if frame is None:
            raise ValueError(f"{os.fspath(video)!r} has no video frame to make a poster of.")
        image = frame.to_image()
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    tmp = dest.with_name(f".{dest.name}.part")
    image.save(tmp, format="WEBP", quality=80)
    os.replace(tmp, dest)
    return dest


def own_seconds(kind: str, input_reference: str | None, seconds: str) -> float | None:
    """How much of a video is its own, for its poster (:func:`make_thumbnail`): an extension's or one made
    from an image (both begin with what they continue); ``None`` for any other, whose first frame is its own.

    >>> own_seconds("extend", None, "4"), own_seconds("create", "ref.png", "8"), own_seconds("create", None, "8")
    (4.0, 8.0, None)
    """
    if kind != "extend" and input_reference is None:
        return None
    try:
        return float(seconds)
    except ValueError:  # a gateway's own duration words: the middle of the whole video
        return 1e9
