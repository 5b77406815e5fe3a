"""Joining a storyboard's shots into one MP4, and the last frame of a shot as the next one's reference image.

Pure file work with PyAV, no network and no run state: :mod:`sora_nb._storyboard` calls it off the loop.
Shots that share one encoding (codec, size, frame rate, pixel format, codec headers) are joined without
re-encoding (their packets are copied, shifted in time); otherwise every shot is re-encoded to the first
shot's size and frame rate in H.264/yuv420p. Audio is kept when a shot has it (re-encoded to AAC; a shot
without audio gets silence of its length, so sound stays in step with its pictures). The file is written
beside its destination and renamed into place (a reader never sees half of it), with ``faststart`` so a
browser can play it before it has all of it.

>>> import tempfile
>>> from sora_nb.simulator import render_video
>>> with tempfile.TemporaryDirectory() as d:
...     shots = [render_video(d, prompt=p, seconds=1, max_side=64) for p in ("a fox", "a hen")]
...     joined = stitch(shots, Path(d) / "board.mp4")
...     round(probe(joined).duration, 2)
2.0
"""

from __future__ import annotations

import glob
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = ["Probe", "fit_image", "last_frame", "probe", "stitch", "write_reference"]

_AUDIO_RATE = 48_000


@dataclass(frozen=True)
class Probe:
    """What decides whether shots can be joined without re-encoding, and how long a shot is."""

    codec: str
    width: int
    height: int
    fps: Fraction
    pix_fmt: str
    extradata: bytes
    duration: float
    audio: tuple[str, int, str] | None  # codec, sample rate, layout

    @property
    def encoding(self) -> tuple[Any, ...]:
        return (self.codec, self.width, self.height, self.fps, self.pix_fmt, self.extradata, self.audio)


def probe(path: str | os.PathLike[str]) -> Probe:
    """The encoding and duration (from its video packets) of an MP4."""
    import av

    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        fps = Fraction(stream.average_rate or stream.guessed_rate or 24)
        end = Fraction(0)
        assert stream.time_base is not None
        for packet in container.demux(stream):
            if packet.pts is not None:
                end = max(end, (packet.pts + (packet.duration or 0)) * stream.time_base)
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0].codec_context
            audio = (a.name, a.sample_rate, a.layout.name)
        return Probe(ctx.name, ctx.width, ctx.height, fps, ctx.pix_fmt or "", bytes(ctx.extradata or b""),
                     float(end), audio)


def last_frame(path: str | os.PathLike[str]) -> Any:
    """The video's last frame as a PIL image (decoded through: MP4 frames depend on the ones before)."""
    import av

    frame = None
    with av.open(os.fspath(path)) as container:
        for decoded in container.decode(video=0):
            frame = decoded
    if frame is None:
        raise ValueError(f"{os.fspath(path)!r} has no video frames.")
    return frame.to_image()


def fit_image(image: Any, size: str) -> Any:
    """``image`` scaled to cover ``WIDTHxHEIGHT`` and cropped to it, centred (the contract wants the reference
    image at exactly the video's size).

    >>> from PIL import Image
    >>> fit_image(Image.new("RGB", (320, 180)), "720x1280").size
    (720, 1280)
    """
    from PIL import Image

    width, height = (int(part) for part in size.lower().split("x"))
    scale = max(width / image.width, height / image.height)
    scaled = image.convert("RGB").resize(
        (max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.Resampling.LANCZOS
    )
    left, top = (scaled.width - width) // 2, (scaled.height - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def _part(dest: Path) -> Path:
    """A fresh file to write ``dest`` in before it is renamed into place; parts left for ``dest`` are removed.

    Its own name per write: a board cancelled mid-write leaves that write going in its thread, and a resume
    writes the same file again at once; with one shared part, the late writer went on writing into the file
    the new one had renamed into place. Removing the old parts (a SIGKILL's, or the late writer's, which then
    fails on its rename) keeps a recorded file as it was recorded and leaves no part behind.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    for left in dest.parent.glob(f".{glob.escape(dest.name)}*.part"):
        left.unlink(missing_ok=True)
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")


def write_reference(video: str | os.PathLike[str], size: str, dest: Path) -> Path:
    """Write the last frame of ``video``, fitted to ``size``, as a PNG at ``dest`` (atomically)."""
    tmp = _part(dest)
    fit_image(last_frame(video), size).save(tmp, format="PNG")
    os.replace(tmp, dest)
    return dest


def stitch(videos: Sequence[str | os.PathLike[str]], dest: Path) -> Path:
    """Join ``videos`` end to end into one MP4 at ``dest`` (written atomically); return ``dest``."""
    import av

    if not videos:
        raise ValueError("stitch needs at least one video.")
    probes = [probe(v) for v in videos]
    tmp = _part(dest)
    try:
        with av.open(os.fspath(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            if len({p.encoding for p in probes}) == 1 and probes[0].codec == "h264":
                _copy(out, videos, probes)
            else:
                _reencode(out, videos, probes)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _copy(out: Any, videos: Sequence[str | os.PathLike[str]], probes: list[Probe]) -> None:
    """Copy every shot's packets, each shifted by the length of the shots before it."""
    import av

    streams: dict[str, Any] = {}
    offset = Fraction(0)
    for path, shot in zip(videos, probes, strict=True):
        with av.open(os.fspath(path)) as container:
            inputs = [container.streams.video[0], *container.streams.audio[:1]]
            if not streams:
                streams = {s.type: out.add_stream_from_template(s) for s in inputs}
            for packet in container.demux(*inputs):
                if packet.dts is None and packet.pts is None:
                    continue  # the demuxer's empty packet at the end of a stream
                stream = streams[packet.stream.type]
                tb = packet.stream.time_base
                shift = round(offset / tb)
                packet.pts = None if packet.pts is None else packet.pts + shift
                packet.dts = None if packet.dts is None else packet.dts + shift
                packet.stream = stream
                out.mux(packet)
        offset += Fraction(shot.duration).limit_denominator(1_000_000)


def _reencode(out: Any, videos: Sequence[str | os.PathLike[str]], probes: list[Probe]) -> None:
    """Decode every shot and encode it again at the first shot's size and frame rate (H.264, yuv420p)."""
    first = probes[0]
    fps = first.fps if first.fps > 0 else Fraction(24)
    video = out.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = first.width - first.width % 2, first.height - first.height % 2, "yuv420p"
    video.codec_context.options = {"preset": "veryfast", "crf": "23"}
    audio = None
    if any(p.audio for p in probes):
        audio = out.add_stream("aac", rate=_AUDIO_RATE, layout="stereo")
    index = 0
    samples = 0
    for path, shot in zip(videos, probes, strict=True):
        count = round(Fraction(shot.duration).limit_denominator(1_000_000) * fps)
        for image in _frames_at(path, fps, count):
            frame = image.reformat(width=video.width, height=video.height, format="yuv420p")
            frame.pts, frame.time_base = index, 1 / fps
            out.mux(video.encode(frame))
            index += 1
        if audio is not None:
            samples = _audio(out, audio, path, shot, start=samples, until=round(index / fps * _AUDIO_RATE))
    out.mux(video.encode(None))
    if audio is not None:
        out.mux(audio.encode(None))


def _frames_at(path: str | os.PathLike[str], fps: Fraction, count: int) -> Iterator[Any]:
    """``count`` frames of the video at ``fps``: each output time shows the last input frame shown by then."""
    import av

    shown = None
    emitted = 0
    with av.open(os.fspath(path)) as container:
        for frame in container.decode(video=0):
            t = frame.time or 0.0
            while shown is not None and emitted < count and emitted / fps < t:
                yield shown
                emitted += 1
            shown = frame
    while shown is not None and emitted < count:
        yield shown
        emitted += 1


def _audio(out: Any, stream: Any, path: str | os.PathLike[str], shot: Probe, *, start: int, until: int) -> int:
    """Encode the shot's audio (or silence) from sample ``start`` up to ``until``; return the next sample."""
    import av
    import numpy as np

    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=_AUDIO_RATE)
    position = start

    def encode(frame: Any) -> None:
        nonlocal position
        frame.pts = position
        frame.time_base = Fraction(1, _AUDIO_RATE)
        position += frame.samples
        out.mux(stream.encode(frame))

    if shot.audio is not None:
        with av.open(os.fspath(path)) as container:
            for decoded in container.decode(audio=0):
                for frame in resampler.resample(decoded):
                    if position + frame.samples > until:
                        return position  # sound past the pictures' end is cut at the joint
                    encode(frame)
    while position < until:  # silence, so that the next shot's sound starts with its pictures
        length = min(1024, until - position)
        silence = av.AudioFrame.from_ndarray(np.zeros((2, length), dtype=np.float32), format="fltp", layout="stereo")
        silence.sample_rate = _AUDIO_RATE
        encode(silence)
    return position
