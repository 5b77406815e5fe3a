"""Rendering of a simulated job's assets: a real H.264 MP4, a WebP thumbnail, a JPEG spritesheet.

The video is visibly derived from the prompt (the wrapped prompt text over moving colour bands whose
hue comes from a hash of the prompt), so a gallery of simulated results is easy to tell apart. Each
segment of an extended video shows its own prompt. Continuity is visible, so that storyboards can be tested:
a video made from a reference image starts from that image, and each segment of an extended video starts
from the last frame of the one before; either fades into the new prompt's look over the first second.

So that metrics, leaderboards and demos have something to find, the look also differs by model and
style, in ways :func:`sora_nb.measure_video` can measure. These differences are synthetic, made up for
the simulator, and say nothing about the real models: a ``*-pro`` model renders a fine texture
(sharper) and faster bands (more motion); style words in the prompt (a preset's phrase such as "film
noir" or "vivid cel shading") change saturation, contrast and warmth. A job may also be delivered with a
defect (``SimulatorConfig.defect_rate``, or ``[defect:<kind>]`` in the prompt): a span of black frames,
a frozen tail, brightness flicker, or a video a quarter shorter than asked.

A video made with characters (cameos) shows each one in the bottom-right corner: a still of the clip
the character was made from, framed, with its name above it, so that a test (or a person) can see which
characters a video was given.

Assets are cached on disk by everything that changes the pixels (:meth:`RenderSpec.key`). All three
files are written into a temporary directory that is renamed into place, so a reader never sees a
half-written file and two renders of the same spec racing each other are harmless. A per-key lock
makes concurrent requests in one process render once.
"""

from __future__ import annotations

import atexit
import colorsys
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "RENDER_VERSION",
    "Assets",
    "RenderSpec",
    "default_cache_dir",
    "ensure_rendered",
    "output_dimensions",
    "cameo_box",
    "poster_of_clip",
    "probe_video",
    "render_video",
    "store_reference_image",
]

RENDER_VERSION = 5
"""Bump when the pixels change, so stale cached renders are not served."""

_SPRITE_COLUMNS = 4
_SPRITE_ROWS = 4

Frame = NDArray[np.uint8]


@dataclass(frozen=True)
class Assets:
    """Paths of one rendered job's files."""

    video: Path
    thumbnail: Path
    spritesheet: Path


@dataclass(frozen=True)
class RenderSpec:
    """Everything that determines a rendered video's pixels.

    Attributes:
        segments: ``(prompt, seconds)`` per segment; one for a plain video, more for an extension.
        size: Requested ``WxH``; only its aspect ratio is rendered, at ``max_side``.
        max_side: Long side of the rendered frames, in pixels.
        fps: Frames per second.
        reference: Path of a stored reference image used as the background, or ``None``.
        label: A small caption in the top-left corner (the model), or ``""``.
        variation: Seeds this job's variation on the prompt's look (shifted hues, another wave), so that
            the same prompt on two models, or twice, gives two videos a comparison grid can tell apart.
        defect: ``""``, or one of ``black``, ``frozen``, ``flicker``, ``duration`` (see the module docstring).
        cameos: ``(name, poster path or None)`` of each character the video was made with.
    """

    segments: tuple[tuple[str, int], ...]
    size: str
    max_side: int
    fps: int
    reference: str | None = None
    label: str = ""
    variation: str = ""
    defect: str = ""
    cameos: tuple[tuple[str, str | None], ...] = ()

    def key(self) -> str:
        """Hex digest naming this spec's cache directory."""
        fields: list[object] = [RENDER_VERSION, self.segments, self.size, self.max_side, self.fps, self.reference,
                                self.label, self.variation, self.defect]
        if self.cameos:  # only then: the renders cached before characters existed keep their keys
            fields.append(self.cameos)
        payload = json.dumps(fields, ensure_ascii=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    @property
    def seconds(self) -> int:
        """Total length in seconds."""
        return sum(seconds for _, seconds in self.segments)


def output_dimensions(size: str, max_side: int) -> tuple[int, int]:
    """Rendered ``(width, height)``: the aspect of ``size`` with its long side at ``max_side``.

    Both are even, as H.264 in yuv420p requires.

    >>> output_dimensions("720x1280", 320), output_dimensions("1792x1024", 320)
    ((180, 320), (320, 182))
    """
    width, height = (int(part) for part in size.lower().split("x"))
    scale = max_side / max(width, height)

    def even(value: float) -> int:
        return max(2, round(value * scale / 2.0) * 2)

    return even(width), even(height)


_process_cache_dir: str | None = None
_process_cache_lock = threading.Lock()


def default_cache_dir() -> str:
    """The per-process temporary cache directory, created on first use and removed at exit."""
    global _process_cache_dir
    with _process_cache_lock:
        if _process_cache_dir is None:
            _process_cache_dir = tempfile.mkdtemp(prefix="sora_nb-sim-")
            atexit.register(shutil.rmtree, _process_cache_dir, True)
        return _process_cache_dir


_key_locks: dict[str, threading.Lock] = {}
_key_locks_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _key_locks_guard:
        return _key_locks.setdefault(key, threading.Lock())


def _assets_in(directory: Path) -> Assets:
    return Assets(directory / "video.mp4", directory / "thumbnail.webp", directory / "spritesheet.jpg")


def ensure_rendered(spec: RenderSpec, cache_dir: str) -> Assets:
    """Return the spec's cached assets, rendering them first if needed. Blocking: run in a thread.

    >>> spec = RenderSpec(segments=(("a red fox", 1),), size="1280x720", max_side=64, fps=4)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     ensure_rendered(spec, d).video.stat().st_size > 0
    True
    """
    final = Path(cache_dir) / spec.key()
    assets = _assets_in(final)
    if final.is_dir():
        return assets
    with _lock_for(spec.key()):
        if final.is_dir():
            return assets
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
        try:
            _render_into(spec, _assets_in(staging))
            try:
                os.replace(staging, final)
            except OSError:
                # Another process renamed the same render into place first: theirs is as good.
                if not final.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return assets


def render_video(
    directory: str | os.PathLike[str], *, prompt: str, seconds: int = 4, size: str = "1280x720",
    model: str = "sora-2", max_side: int = 320, fps: int = 12, defect: str = "", variation: str = "",
) -> Path:
    """Render one simulated video into ``directory`` (cached there) and return the MP4's path.

    The kind of pixels the simulator serves for such a job (``variation`` stands for the job's id):
    for tests, demos and benchmarks that need a real video file without a run.

    >>> with tempfile.TemporaryDirectory() as d:
    ...     render_video(d, prompt="a red fox", seconds=1, max_side=64).suffix
    '.mp4'
    """
    spec = RenderSpec(
        ((prompt, int(seconds)),), size, max_side, fps, label=model, variation=f"{model}/{variation}", defect=defect
    )
    return ensure_rendered(spec, os.fspath(directory)).video


def store_reference_image(image: Image.Image, cache_dir: str) -> str:
    """Save a reference image (as PNG, by content hash) for renders to use; return its path."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256(rgb.tobytes() + f"{rgb.size}".encode()).hexdigest()[:32]
    path = Path(cache_dir) / "references" / f"{digest}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}-{uuid.uuid4().hex}.png")
        rgb.save(tmp, format="PNG")
        os.replace(tmp, path)
    return str(path)


def poster_of_clip(data: bytes, cache_dir: str) -> str | None:
    """Save the middle frame of an uploaded clip (a character's) as a PNG, as :func:`store_reference_image`
    does; ``None`` when no frame decodes. Blocking: run in a thread."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frames = _middle_frame(container)
    except (av.FFmpegError, ValueError, IndexError):
        return None
    if not frames:
        return None
    image = frames[0]
    image.thumbnail((256, 256), Image.Resampling.LANCZOS)
    return store_reference_image(image, cache_dir)


def cameo_box(width: int, height: int, index: int) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the ``index``-th character's poster in a frame (bottom-right,
    right to left), so that a test knows where to look.

    >>> cameo_box(320, 180, 0)
    (239, 95, 311, 167)
    """
    side = max(8, min(width, height) * 2 // 5)
    margin = max(2, min(width, height) // 20)
    bottom = height - margin - max(2, height // 40)  # above the progress bar
    right = width - margin - index * (side + margin)
    return right - side, bottom - side, right, bottom


def _cameo_layer(
    cameos: tuple[tuple[str, str | None], ...], width: int, height: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]] | None:
    """The characters' posters and names as an RGB layer and its alpha (0..1), or ``None`` for none."""
    if not cameos:
        return None
    layer = Image.new("RGB", (width, height), (0, 0, 0))
    mask = Image.new("L", (width, height), 0)
    draw, draw_mask = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    font = _font(max(7, min(width, height) // 16))
    for index, (name, poster) in enumerate(cameos[:2]):
        left, top, right, bottom = cameo_box(width, height, index)
        side = right - left
        frame = max(1, side // 24)
        draw.rectangle((left - frame, top - frame, right + frame - 1, bottom + frame - 1), fill=(255, 255, 255))
        draw_mask.rectangle((left - frame, top - frame, right + frame - 1, bottom + frame - 1), fill=255)
        if poster is not None and os.path.isfile(poster):
            with Image.open(poster) as image:
                layer.paste(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR), (left, top))
        else:  # a character without a still: its name's colour, so it still shows
            draw.rectangle((left, top, right - 1, bottom - 1), fill=tuple(hashlib.sha256(name.encode()).digest()[:3]))
        shown = _fit(name, font, side + 2 * frame)
        text_top = max(0, top - frame - int(font.size if hasattr(font, "size") else 10) - 2)
        draw.text((left - frame, text_top), shown, fill=(255, 255, 255), font=font, stroke_width=1,
                  stroke_fill=(0, 0, 0))
        draw_mask.text((left - frame, text_top), shown, fill=255, font=font, stroke_width=1, stroke_fill=255)
    return np.asarray(layer, dtype=np.float32), (np.asarray(mask, dtype=np.float32) / 255.0)[..., None]


def probe_video(data: bytes) -> tuple[int, int, float] | None:
    """``(width, height, duration_s)`` of an uploaded clip, or ``None`` when it is not a decodable video.

    Blocking: run in a thread.
    """
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if container.duration is not None:
                duration = container.duration / 1_000_000
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            return width, height, duration
    except (av.FFmpegError, ValueError, IndexError):
        return None


# Rendering proper.


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow without FreeType: the small bitmap font still works.
        return ImageFont.load_default()


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """The longest prefix of ``text`` no wider than ``width`` (binary search: prompts can be 32000 chars)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines`` lines, ending in an ellipsis when text is left over."""
    # No glyph is narrower than 2 px, so this many characters is more than the frame can ever show.
    budget = max_lines * max(8, width // 2)
    truncated = len(text) > budget
    lines: list[str] = []
    current = ""
    for word in text[:budget].split():
        if font.getlength(word) > width:
            word = _fit(word, font, width)  # a word wider than the frame is cut, not overflowing
            truncated = True
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        lines.append(current)
        current = word
        if len(lines) == max_lines:
            current, truncated = "", True
            break
    if current:
        lines.append(current)
    if truncated and lines:
        last = lines[-1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines[-1] = last.rstrip(" .,;") + "…"
    return lines or [""]


def _text_alpha(prompt: str, width: int, height: int) -> NDArray[np.float32]:
    """Alpha mask (0..1) of the wrapped prompt, centred, with a dark halo for legibility."""
    font_size = max(8, min(width, height) // 12)
    font = _font(font_size)
    margin = max(4, width // 16)
    line_height = int(font_size * 1.25)
    max_lines = max(1, (height - 2 * margin) // line_height)
    lines = _wrap(prompt, font, width - 2 * margin, max_lines)
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    top = max(margin, (height - line_height * len(lines)) // 2)
    for index, line in enumerate(lines):
        line_width = font.getlength(line)
        draw.text(((width - line_width) / 2, top + index * line_height), line, fill=255, font=font)
    return np.asarray(mask, dtype=np.float32) / 255.0


def _label_alpha(label: str, width: int, height: int) -> NDArray[np.float32]:
    """Alpha mask (0..1) of a small caption in the top-left corner."""
    mask = Image.new("L", (width, height), 0)
    if label:
        font = _font(max(7, min(width, height) // 18))
        margin = max(3, width // 40)
        ImageDraw.Draw(mask).text((margin, margin), _fit(label, font, width - 2 * margin), fill=255, font=font)
    return np.asarray(mask, dtype=np.float32) / 255.0


def _variation(variation: str) -> tuple[float, float]:
    """A hue shift (kept small, so a prompt's videos stay recognisably alike) and a wave speed."""
    if not variation:
        return 0.0, 0.5
    digest = hashlib.sha256(variation.encode()).digest()
    return (digest[0] / 255.0 - 0.5) * 0.3, 0.3 + 0.5 * digest[1] / 255.0


def _palette(prompt: str, hue_shift: float = 0.0) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    digest = hashlib.sha256(prompt.encode()).digest()
    hue = (digest[0] / 255.0 + hue_shift) % 1.0
    first = np.array(colorsys.hsv_to_rgb(hue, 0.75, 0.85), dtype=np.float32) * 255.0
    # The second colour's hue offset comes from another byte, so two prompts rarely share a palette.
    offset = 0.2 + 0.6 * digest[1] / 255.0
    second = np.array(colorsys.hsv_to_rgb((hue + offset) % 1.0, 0.6, 0.45), dtype=np.float32) * 255.0
    return first, second


# Style words a prompt may carry (the style presets' phrases, or a user's own words) and what they do
# to the palette: (saturation factor, contrast factor, warmth). Synthetic: see the module docstring.
_STYLE_LOOKS: tuple[tuple[tuple[str, ...], tuple[float, float, float]], ...] = (
    (("black-and-white", "noir", "monochrome"), (0.0, 1.6, 0.0)),
    (("vivid", "anime", "cel shading", "saturated"), (1.5, 1.2, 0.0)),
    (("faded", "vintage", "16mm"), (0.45, 0.6, 0.35)),
    (("cinematic", "warm"), (1.0, 1.15, 0.25)),
    (("documentary", "natural colours"), (0.8, 0.9, 0.0)),
    (("claymation", "tactile"), (1.15, 0.85, 0.15)),
)


def _style_look(prompt: str) -> tuple[float, float, float]:
    """``(saturation, contrast, warmth)`` from the first style words found in the prompt."""
    lowered = prompt.lower()
    for words, look in _STYLE_LOOKS:
        if any(word in lowered for word in words):
            return look
    return 1.0, 1.0, 0.0


def _styled(colour: NDArray[np.float32], look: tuple[float, float, float]) -> NDArray[np.float32]:
    saturation, contrast, warmth = look
    grey = float(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    out = grey + (colour - grey) * saturation
    out = 128.0 + (out - 128.0) * contrast
    out = out + np.array([40.0, 10.0, -40.0], dtype=np.float32) * warmth
    styled: NDArray[np.float32] = np.clip(out, 0.0, 255.0).astype(np.float32)
    return styled


def _is_pro(label: str) -> bool:
    return "pro" in label.lower()


def _background(reference: str | None, width: int, height: int) -> NDArray[np.float32] | None:
    if reference is None:
        return None
    with Image.open(reference) as image:
        resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def _fade_from(start: NDArray[np.float32] | None, frame: Frame, step: int, fps: int) -> Frame:
    """``frame``, faded in from ``start`` over the first second of a segment (``step`` frames into it):
    the segment's first frame is ``start`` itself, as a video made from an image or an extension begins."""
    if start is None or step >= fps:
        return frame
    weight = 1.0 - step / fps
    return np.clip(weight * start + (1.0 - weight) * frame, 0.0, 255.0).astype(np.uint8)


def _frames(spec: RenderSpec, width: int, height: int) -> Iterator[Frame]:
    """Yield the frames one by one, so a 120 s extension never sits in memory whole."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    diagonal = (xs + ys) / float(width + height)
    background = _background(spec.reference, width, height)
    total = spec.seconds * spec.fps
    bar_y0 = height - max(2, height // 40)
    hue_shift, speed = _variation(spec.variation)
    # The model is the variation's first part (the caption may be off: SimulatorConfig.caption_model).
    pro = _is_pro(spec.variation.split("/", 1)[0] or spec.label)
    if pro:
        speed *= 2.0  # more motion
    # A fine texture, for a sharper look (the Laplacian's variance rises); computed once per video.
    detail = (14.0 * np.sign(np.sin(xs * 1.9) * np.sin(ys * 1.9)))[..., None] if pro else None
    label = _label_alpha(spec.label, width, height)
    cameo = _cameo_layer(spec.cameos, width, height)
    delivered = round(total * 0.75) if spec.defect == "duration" else total
    black = range(round(total * 0.25), round(total * 0.35)) if spec.defect == "black" else range(0)
    frozen_from = round(total * 0.6) if spec.defect == "frozen" else total
    index = 0
    still: Frame | None = None
    last: Frame | None = None
    start = background  # the first segment starts from the reference image, each next from the last frame
    for prompt, seconds in spec.segments:
        look = _style_look(prompt)
        first, second = (_styled(colour, look) for colour in _palette(prompt, hue_shift))
        alpha = np.maximum(_text_alpha(prompt, width, height), label)[..., None]
        halo = np.clip(alpha * 3.0, 0.0, 1.0) * 0.55
        base = background * 0.6 if background is not None else None
        for step in range(seconds * spec.fps):
            if index >= delivered:
                return
            if still is not None:
                index += 1
                last = still
                yield still
                continue
            phase = index / spec.fps
            wave = (0.5 + 0.5 * np.sin(2.0 * np.pi * (diagonal * 2.0 - phase * speed)))[..., None]
            image = second + (first - second) * wave
            if detail is not None:
                image = image + detail
            if base is not None:
                image = base + 0.4 * image
            image = image * (1.0 - halo) + 255.0 * alpha
            if cameo is not None:
                image = image * (1.0 - cameo[1]) + cameo[0] * cameo[1]
            if spec.defect == "flicker":
                image = image + (45.0 if index % 2 else -45.0)
            frame = np.clip(image, 0.0, 255.0).astype(np.uint8)
            # A progress bar along the bottom shows time passing, even in the spritesheet's tiles.
            frame[bar_y0:, : int(width * (index + 1) / total)] = 255
            frame = _fade_from(start, frame, step, spec.fps)
            if index in black:
                frame[:] = 0
            if index + 1 >= frozen_from:
                still = frame  # every later frame repeats this one
            index += 1
            last = frame
            yield frame
        start = last.astype(np.float32) if last is not None else None


def _sprite_indices(total: int) -> list[int]:
    count = _SPRITE_COLUMNS * _SPRITE_ROWS
    return [round(i * (total - 1) / max(1, count - 1)) for i in range(count)]


def _spritesheet(picks: list[Frame], path: Path) -> None:
    height, width = picks[0].shape[:2]
    tile_w, tile_h = max(2, width // 2), max(2, height // 2)
    sheet = Image.new("RGB", (tile_w * _SPRITE_COLUMNS, tile_h * _SPRITE_ROWS))
    for index, array in enumerate(picks):
        tile = Image.fromarray(array).resize((tile_w, tile_h), Image.Resampling.BILINEAR)
        sheet.paste(tile, ((index % _SPRITE_COLUMNS) * tile_w, (index // _SPRITE_COLUMNS) * tile_h))
    sheet.save(path, format="JPEG", quality=80)


def _render_into(spec: RenderSpec, assets: Assets) -> None:
    width, height = output_dimensions(spec.size, spec.max_side)
    total = round(spec.seconds * spec.fps * 0.75) if spec.defect == "duration" else spec.seconds * spec.fps
    wanted = _sprite_indices(total)
    middle = total // 2
    kept: dict[int, Frame] = {}
    with av.open(str(assets.video), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=spec.fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, spec.fps)
        stream.codec_context.options = {"preset": "veryfast", "crf": "28"}
        for index, array in enumerate(_frames(spec, width, height)):
            if index in wanted or index == middle:
                kept[index] = array
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    Image.fromarray(kept[middle]).save(assets.thumbnail, format="WEBP", quality=80)
    _spritesheet([kept[i] for i in wanted], assets.spritesheet)


def _middle_frame(container: av.container.InputContainer) -> list[Image.Image]:
    """The frame halfway through (decoding stops there: a clip's frames are never all held at once)."""
    middle = (container.duration or 0) / 1_000_000 / 2
    last: list[Image.Image] = []
    for frame in container.decode(video=0):
        last = [frame.to_image()]  # type: ignore[no-untyped-call]
        if frame.time is not None and frame.time >= middle:
            break
    return last
