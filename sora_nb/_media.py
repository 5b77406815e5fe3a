"""Local media helpers: checksums and thumbnails made from a downloaded video (for servers with none)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["make_thumbnail", "sha256_file"]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """``"sha256:<hex>"`` of a file, read in chunks (videos are never held whole in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def make_thumbnail(video: str | os.PathLike[str], dest: str | os.PathLike[str], *, max_side: int = 320) -> Path:
    """Write a WebP poster from the video's first frame, atomically; return its path."""
    import av
    from PIL import Image

    dest = Path(dest)
    with av.open(os.fspath(video)) as container:
        frame = next(container.decode(video=0))
        image = frame.to_image()
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    tmp = dest.with_name(f".{dest.name}.part")
    image.save(tmp, format="WEBP", quality=80)
    os.replace(tmp, dest)
    return dest
