"""Local clips for characters (cameos): read a clip's shape, cut a 2-4 s piece of it, take its poster.

With PyAV, on files the user named (or a finished job's video): blocking, so callers run these off the
event loop. Kept beside the contract client, which checks a clip with :func:`probe_clip` before it
uploads it; what the limits are is ``_catalog`` and whether a clip meets them ``_validation``.

>>> import tempfile
>>> from pathlib import Path
>>> from sora_nb.simulator import render_video
>>> with tempfile.TemporaryDirectory() as d:
...     source = render_video(d, prompt="a red fox", seconds=8, size="1280x720", max_side=64)
...     clip = cut_clip(source, Path(d) / "clip.mp4", start=2.0, seconds=4.0, size=(1280, 720))
...     width, height, duration = probe_clip(clip)
>>> (width, height), round(duration)
((1280, 720), 4)
"""

from __future__ import annotations

import os
import uuid
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import ValidationError

if TYPE_CHECKING:
    import av
    import av.audio.stream
    import av.container
    from PIL import Image

__all__ = ["cut_clip", "poster_frame", "probe_clip"]


def probe_clip(path: str | os.PathLike[str], *, field: str = "video") -> tuple[int, int, float]:
    """``(width, height, seconds)`` of a local video, or a :class:`~sora_nb.ValidationError` naming ``field``."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                raise ValidationError(
                    f"{field} {os.fspath(path)!r} has no video stream. Fix: pass an MP4 (H.264) clip.", field=field
                )
            stream = container.streams.video[0]
            if container.duration is not None:
                seconds = container.duration / 1_000_000
            elif stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = 0.0
            return stream.codec_context.width, stream.codec_context.height, seconds
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise ValidationError(
            f"{field} {os.fspath(path)!r} is not a video PyAV can read ({type(exc).__name__}). "
            "Fix: pass an MP4 (H.264) clip.",
            field=field,
        ) from None


def cut_clip(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    start: float,
    seconds: float,
    size: tuple[int, int] | None = None,
) -> Path:
    """Write ``seconds`` of ``source`` from ``start`` (H.264 MP4, scaled to ``size`` if given) to ``dest``.

    The sound comes along (AAC) when the source has any: a cameo is a voice as much as a face. Written beside
    ``dest`` and renamed into place, so ``dest`` is whole or absent.

    Raises:
        ValidationError: ``start`` is past the end of ``source`` (the message says how long it is).
    """
    import av

    dest = Path(dest)
    tmp = dest.with_name(f".{dest.stem}-{uuid.uuid4().hex}{dest.suffix}")
    written = 0
    try:
        with av.open(os.fspath(source)) as src, av.open(os.fspath(tmp), mode="w", format="mp4") as out:
            video_in = src.streams.video[0]
            rate = video_in.average_rate or Fraction(24)
            width, height = size or (video_in.codec_context.width, video_in.codec_context.height)
            video = out.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.time_base = 1 / Fraction(rate)
            video.codec_context.options = {"preset": "ultrafast", "crf": "23"}
            sound = _Sound(out, src.streams.audio[0]) if src.streams.audio else None
            end = start + seconds
            for packet in src.demux(*(s for s in (video_in, sound and sound.stream_in) if s is not None)):
                for frame in packet.decode():
                    if frame.time is None or frame.time < start - 1e-6:
                        continue
                    if isinstance(frame, av.AudioFrame):
                        if sound is not None and frame.time < end:
                            sound.add(frame)
                        continue
                    # A frame is kept while it starts before the end: n frames at rate r last exactly n/r seconds.
                    if not isinstance(frame, av.VideoFrame) or frame.time >= end - 0.5 / float(rate):
                        continue
                    # A new frame (not the decoded one): it must carry none of the source's timing.
                    image = av.VideoFrame.from_ndarray(frame.to_ndarray(width=width, height=height, format="rgb24"),
                                                       format="rgb24")
                    image.pts = written
                    out.mux(video.encode(image))
                    written += 1
            out.mux(video.encode(None))
            if sound is not None:
                sound.flush()
        if not written:
            raise ValidationError(
                f"start={start:g} is at or past the end of the video {os.fspath(source)!r}. "
                f"Fix: pass a start in seconds before its end (e.g. start=0).",
                field="start",
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


class _Sound:
    """The audio of a cut: the source's samples from the start of the cut, re-encoded as AAC."""

    def __init__(self, out: av.container.OutputContainer, stream_in: av.audio.stream.AudioStream) -> None:
        import av

        self.out, self.stream_in = out, stream_in
        rate = stream_in.rate or 48000
        layout = stream_in.layout.name if stream_in.layout is not None else "stereo"
        self.stream = out.add_stream("aac", rate=rate, layout=layout)
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self.samples = 0

    def add(self, frame: av.AudioFrame) -> None:
        for resampled in self.resampler.resample(frame):
            resampled.pts = self.samples
            self.samples += resampled.samples
            self.out.mux(self.stream.encode(resampled))

    def flush(self) -> None:
        self.out.mux(self.stream.encode(None))


def poster_frame(source: str | os.PathLike[str], dest: str | os.PathLike[str], *, max_side: int = 320) -> Path:
    """Write a PNG still of ``source``'s middle frame to ``dest`` (atomically); return its path."""
    import av
    from PIL import Image

    dest = Path(dest)
    with av.open(os.fspath(source)) as container:
        frames = _middle_frame(container)
    image = frames[0]
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    tmp = dest.with_name(f".{dest.stem}-{uuid.uuid4().hex}.png")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _middle_frame(container: av.container.InputContainer) -> list[Image.Image]:
    """The frame halfway through (decoding stops there: a clip's frames are never all held at once)."""
    middle = (container.duration or 0) / 1_000_000 / 2
    last: list[Image.Image] = []
    for frame in container.decode(video=0):
        last = [frame.to_image()]  # type: ignore[no-untyped-call]
        if frame.time is not None and frame.time >= middle:
            break
    return last
