"""Measured video metrics: what a downloaded file really is, and how it looks, with no model weights.

:func:`measure_video` is a pure function of a file (and of what was asked for): it reads the container's
metadata, then decodes the frames one at a time, downscaled to :data:`ANALYSIS_SIDE` pixels on the long
side, and keeps only running sums and the previous frame, so memory stays flat whatever the video's
length. It returns a flat dict of plain JSON values:

=====================  ==========================================================================
key                    meaning
=====================  ==========================================================================
duration_s             delivered duration in seconds (frames / fps when the container says nothing)
fps                    average frame rate of the video stream
frames                 frames decoded
width, height          delivered pixels
codec                  the video codec's name (``h264``)
audio                  True when the file has an audio stream
bitrate_bps            bits per second of the whole file
file_bytes             size of the file
black_share            share of frames that are black (mean luma below :data:`BLACK_LUMA`)
frozen_share           share of consecutive frame pairs that do not change (mean |diff| of luma
                       plus chroma below :data:`FROZEN_DIFF` levels)
motion                 mean absolute difference between consecutive frames, as a share of 255
temporal_flickering    VBench's score: (255 - mean |diff|) / 255; 1.0 is perfectly steady
flicker                how much the brightness jumps back and forth, in luma levels: the mean over
                       frames of sqrt(max(0, -d_t * d_t+1)), d_t the change of mean luma; an up
                       then a down counts, a cut or a fade (one direction) does not
sharpness              variance of the Laplacian of the luma (4-neighbour stencil), sampled frames
colourfulness          Hasler-Süsstrunk colourfulness of sampled frames (0 is grey; ~100 is vivid)
scene_cuts             consecutive frames whose luma histograms differ by more than :data:`CUT_DISTANCE`
flag_duration          delivered duration differs from the requested ``seconds`` by more than a frame
flag_size              delivered resolution differs from the requested ``size`` (when it is checked)
flag_aspect            delivered aspect ratio differs from the requested one by more than 1 %
flag_audio             audio was requested (``requested["audio"]``) and the file has none
flag_black             black_share >= :data:`BLACK_SHARE_FLAG`
flag_frozen            frozen_share >= :data:`FROZEN_SHARE_FLAG`
flag_flicker           flicker >= :data:`FLICKER_FLAG`
defects                the names of the raised flags, comma-separated (``""`` when none)
=====================  ==========================================================================

Users add their own metrics with :func:`register_metric`; the run stores them beside these.

>>> from sora_nb.simulator import render_video
>>> path = render_video(getfixture("tmp_path"), prompt="a corgi surfing", seconds=2)
>>> m = measure_video(path, requested={"seconds": "2", "size": "1280x720"})
>>> m["duration_s"], m["codec"], m["width"], m["defects"]  # the simulator renders small, by design
(2.0, 'h264', 320, 'size')
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy loads on first measurement: `import sora_nb` stays light
    import numpy as np
    from numpy.typing import NDArray

    Gray = NDArray[np.float32]

__all__ = [
    "ANALYSIS_SIDE",
    "BLACK_LUMA",
    "BLACK_SHARE_FLAG",
    "CUT_DISTANCE",
    "FLAGS",
    "FLICKER_FLAG",
    "FROZEN_DIFF",
    "FROZEN_SHARE_FLAG",
    "METRIC_COLUMNS",
    "METRIC_KEYS",
    "METRICS_VERSION",
    "CustomMetric",
    "custom_metrics",
    "decode_threads",
    "measure_video",
    "register_metric",
    "unregister_metric",
]

METRICS_VERSION = "1"
"""Stored with every measurement; bump when a built-in metric's meaning changes, so old runs re-measure."""

ANALYSIS_SIDE = 256
"""Long side, in pixels, of the frames the metrics look at (decoding downscales to it)."""
SAMPLES_PER_SECOND = 2.0
"""Sharpness and colourfulness look at this many frames per second (they change slowly)."""
BLACK_LUMA = 20.0
"""A frame whose mean luma (0-255) is below this is black."""
FROZEN_DIFF = 0.1
"""Consecutive frames whose mean |difference| (luma plus chroma) is below this many levels did not change."""
CUT_DISTANCE = 0.5
"""A histogram distance (half the L1 distance of normalised 32-bin luma histograms, 0-1) above this is a cut."""
BLACK_SHARE_FLAG = 0.05
FROZEN_SHARE_FLAG = 0.15
FLICKER_FLAG = 4.0

FLAGS: tuple[str, ...] = ("duration", "size", "aspect", "audio", "black", "frozen", "flicker")
"""The defect flags, ``flag_<name>`` in the result; ``defects`` lists the raised ones by these names."""

METRIC_KEYS: tuple[str, ...] = (
    "duration_s", "fps", "frames", "width", "height", "codec", "audio", "bitrate_bps", "file_bytes",
    "black_share", "frozen_share", "motion", "temporal_flickering", "flicker", "sharpness", "colourfulness",
    "scene_cuts", *(f"flag_{name}" for name in FLAGS), "defects",
)  # fmt: skip
"""Every key :func:`measure_video` returns, in order."""

_DESCRIPTIONS = {
    "duration_s": "delivered duration in seconds", "fps": "frames per second", "frames": "frames decoded",
    "width": "delivered width in pixels", "height": "delivered height in pixels", "codec": "the video codec (h264)",
    "audio": "the file has an audio stream", "bitrate_bps": "bits per second of the file",
    "file_bytes": "size of the file", "black_share": "share of black frames",
    "frozen_share": "share of frame pairs that do not change", "motion": "mean |frame difference| / 255",
    "temporal_flickering": "VBench's score, 1.0 = steady",
    "flicker": "brightness jumping back and forth, luma levels", "sharpness": "variance of the Laplacian",
    "colourfulness": "Hasler-Süsstrunk colourfulness", "scene_cuts": "cuts between consecutive frames",
    "flag_duration": "duration off the request by more than a frame",
    "flag_size": "resolution differs from the request", "flag_aspect": "aspect ratio off the request by > 1 %",
    "flag_audio": "audio asked for, none delivered", "flag_black": "black frames (>= 5 % of them)",
    "flag_frozen": "frozen frames (>= 15 % of pairs)", "flag_flicker": "flicker (>= 4 luma levels)",
    "defects": "raised flags, comma-separated ('' for none)",
}  # fmt: skip
_BOOLEAN = {"audio", *(f"flag_{name}" for name in FLAGS)}
_COUNTS = {"frames", "width", "height", "file_bytes", "scene_cuts"}
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    (
        f"metric_{key}",
        "object" if key in ("codec", "defects") else "boolean" if key in _BOOLEAN else "Int64" if key in _COUNTS
        else "float64",
        _DESCRIPTIONS[key],
    )
    for key in METRIC_KEYS
)
"""The DataFrame columns of the built-in metrics, as ``(name, dtype, description)`` like ``sora_nb.COLUMNS``."""

def measure_video(path: str | os.PathLike[str], requested: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Measure a video file: metadata, conformance to what was requested, and how its frames look.

    Blocking and CPU-bound: a run calls it in a process pool, off the notebook's event loop. FFmpeg
    decodes with ``OMP_NUM_THREADS`` threads when that is set (a pool worker's share of the cores: dask
    sets 1), else with as many as it likes (see :func:`decode_threads`); the values are the same.

    Args:
        path: an MP4 (or anything FFmpeg reads).
        requested: what the job asked for; every key is optional. ``seconds`` (``"4"`` or 4) checks the
            duration within one frame; ``size`` (``"1280x720"``) checks the aspect ratio and, unless
            ``check_resolution`` is False, the exact resolution; ``audio`` (True) checks that there is
            an audio stream.

    Returns:
        A dict with the keys of :data:`METRIC_KEYS` (see the module docstring), plain JSON values.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file has no decodable video stream, or ``requested`` holds a malformed value.

    >>> from sora_nb.simulator import render_video
    >>> path = render_video(getfixture("tmp_path"), prompt="a cat skiing", seconds=1)
    >>> m = measure_video(path, requested={"seconds": "2"})
    >>> m["flag_duration"], m["defects"]
    (True, 'duration')
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video at {str(path)!r}. Fix: check the path (run.to_dataframe().video_path).")
    wanted = _requested(requested or {})
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise ValueError(f"{str(path)!r} is not a readable video ({exc}).") from exc
    with container:
        if not container.streams.video:
            raise ValueError(f"{str(path)!r} has no video stream.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding dominates the cost
        stream.codec_context.thread_count = decode_threads()
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        info: dict[str, Any] = {
            "fps": round(fps, 4),
            "width": width,
            "height": height,
            "codec": stream.codec_context.name,
            "audio": bool(container.streams.audio),
        }
        container_duration = container.duration / 1_000_000 if container.duration else None
        stream_duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        scale = min(1.0, ANALYSIS_SIDE / max(width, height, 1))
        small = (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))
        look = _Accumulator(sample_every=max(1, round(fps / SAMPLES_PER_SECOND)) if fps else 1)
        step = max(1, max(width, height) // ANALYSIS_SIDE)
        for frame in container.decode(stream):
            # Every frame: its luma, read straight from the decoder's Y plane every `step` pixels (no
            # colour conversion, no filtering: this is what keeps measuring close to decoding's cost).
            # Sampled frames: properly downscaled luma and colour, for sharpness and colourfulness.
            luma = _luma(frame, step, small)
            chroma = _chroma(frame, step)
            sampled = None
            if look.frames % look.sample_every == 0:
                sampled = tuple(
                    frame.reformat(width=small[0], height=small[1], format=fmt, interpolation="AREA").to_ndarray()
                    for fmt in ("gray", "rgb24")
                )
            look.add(luma, chroma, sampled)
    frames = look.frames
    if stream_duration is not None and frames and fps:
        # The MP4 stream's duration counts the last frame's display time; the container's may not.
        duration = stream_duration
    elif fps and frames:
        duration = frames / fps
    else:
        duration = container_duration or 0.0
    size = path.stat().st_size
    info |= {
        "duration_s": round(duration, 4),
        "frames": frames,
        "file_bytes": size,
        "bitrate_bps": round(size * 8 / duration) if duration > 0 else None,
    }
    result = {**info, **look.result()}
    result |= _flags(result, wanted)
    return {key: result[key] for key in METRIC_KEYS}


def decode_threads() -> int:
    """How many threads FFmpeg decodes a video with: 0 lets it choose (one per core, and one more).

    A worker of a pool of processes gets its share of the cores from the ``OMP_NUM_THREADS``
    convention: dask's and Ray's workers set it to 1 and joblib's to cores / workers, and sora_nb's own
    pool does the same. There, frame threads only make the workers fight over the cores: a 720p clip
    costs ~10 % more CPU decoded by 3 threads than by one, and a lone worker decoding with every core
    leaves nothing for a second worker to add.

    >>> import os
    >>> os.environ["OMP_NUM_THREADS"] = "1"; decode_threads()
    1
    >>> del os.environ["OMP_NUM_THREADS"]; decode_threads()
    0
    """
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return 0


@dataclass(frozen=True)
class _Wanted:
    seconds: float | None
    size: tuple[int, int] | None
    check_resolution: bool
    audio: bool | None


def _requested(requested: Mapping[str, Any]) -> _Wanted:
    seconds = requested.get("seconds")
    try:
        wanted_seconds = None if seconds is None else float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"requested['seconds'] must be a number of seconds like '4', got {seconds!r}.") from None
    size = requested.get("size")
    wanted_size = None
    if size is not None:
        try:
            w, h = (int(part) for part in str(size).lower().split("x"))
            wanted_size = (w, h)
        except ValueError:
            raise ValueError(f"requested['size'] must look like '1280x720' (width x height), got {size!r}.") from None
    audio = requested.get("audio")
    if audio is not None and not isinstance(audio, bool):
        raise ValueError(f"requested['audio'] must be True, False or None, got {audio!r}.")
    return _Wanted(wanted_seconds, wanted_size, bool(requested.get("check_resolution", True)), audio)


def _flags(m: Mapping[str, Any], wanted: _Wanted) -> dict[str, Any]:
    flags = dict.fromkeys(FLAGS, False)
    if wanted.seconds is not None:
        frame = 1.0 / m["fps"] if m["fps"] else 0.0
        flags["duration"] = abs(m["duration_s"] - wanted.seconds) > frame + 1e-6
    if wanted.size is not None:
        w, h = wanted.size
        flags["aspect"] = abs((m["width"] / max(m["height"], 1)) / (w / max(h, 1)) - 1.0) > 0.01
        flags["size"] = wanted.check_resolution and (m["width"], m["height"]) != (w, h)
    flags["audio"] = wanted.audio is True and not m["audio"]
    flags["black"] = m["black_share"] >= BLACK_SHARE_FLAG
    flags["frozen"] = m["frozen_share"] >= FROZEN_SHARE_FLAG
    flags["flicker"] = m["flicker"] >= FLICKER_FLAG
    return {**{f"flag_{name}": value for name, value in flags.items()},
            "defects": ",".join(name for name, value in flags.items() if value)}


class _Accumulator:
    """Running sums over a stream of small frames: constant memory, one pass."""

    def __init__(self, *, sample_every: int) -> None:
        self.sample_every = sample_every
        self.frames = 0
        self.black = 0
        self.frozen = 0
        self.diff_sum = 0.0
        self.cuts = 0
        self.means: list[float] = []  # one float per frame: 8 bytes a frame is flat enough
        self.sharpness: list[float] = []
        self.colour: list[float] = []
        self._previous: NDArray[np.int16] | None = None
        self._previous_chroma: NDArray[np.int16] | None = None
        self._previous_hist: NDArray[np.float64] | None = None
        # Per-frame work writes into these arrays, kept from frame to frame, rather than into new ones:
        # a dask worker starts with MALLOC_TRIM_THRESHOLD_ set, which turns every temporary array over
        # 128 kB into a fresh mmap, page-faulted in and unmapped again each frame (measured on a 640x360
        # clip: ~180 page faults a frame and +35-45 % CPU per video; now ~26, 720p: 149 -> 30).
        self._scratch: dict[str, NDArray[Any]] = {}

    def _array(self, name: str, like: NDArray[Any], dtype: Any) -> NDArray[Any]:
        """A kept array of ``like``'s shape and ``dtype`` (made again when the frame size changes)."""
        import numpy as np

        array = self._scratch.get(name)
        if array is None or array.shape != like.shape or array.dtype != dtype:
            array = self._scratch[name] = np.empty(like.shape, dtype)
        return array

    def _signed(self, name: str, plane: NDArray[Any]) -> NDArray[Any]:
        """``plane`` as int16 in one of two kept arrays that alternate: this frame's, then the previous one's."""
        import numpy as np

        signed = self._array(f"{name}{self.frames % 2}", plane, np.int16)
        np.copyto(signed, plane, casting="safe")
        return signed

    def _mean_abs_diff(self, name: str, a: NDArray[Any], b: NDArray[Any]) -> float:
        import numpy as np

        diff = self._array(f"{name}_diff", a, np.int16)
        np.subtract(a, b, out=diff)
        return float(np.abs(diff, out=diff).mean())

    def _float(self, name: str, pixels: NDArray[Any]) -> Gray:
        import numpy as np

        values = self._array(name, pixels, np.float32)
        np.copyto(values, pixels, casting="safe")
        return values

    def _laplacian_variance(self, gray: NDArray[Any]) -> float:
        """Variance of the 4-neighbour Laplacian (the classic blur measure), on the interior pixels."""
        import numpy as np

        luma = self._float("sampled_gray", gray)
        inner = luma[1:-1, 1:-1]
        if not inner.size:
            return 0.0
        lap, centre = self._array("lap", inner, np.float32), self._array("lap_centre", inner, np.float32)
        np.add(luma[1:-1, :-2], luma[1:-1, 2:], out=lap)
        np.add(lap, luma[:-2, 1:-1], out=lap)
        np.add(lap, luma[2:, 1:-1], out=lap)
        np.subtract(lap, np.multiply(inner, 4.0, out=centre), out=lap)
        return float(lap.var())

    def _colourfulness(self, pixels: NDArray[Any]) -> float:
        """Hasler and Süsstrunk (2003): sigma_rgyb + 0.3 * mu_rgyb over the opponent channels."""
        import numpy as np

        rgb = self._float("sampled_rgb", pixels)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        rg, yb = self._array("rg", r, np.float32), self._array("yb", r, np.float32)
        np.subtract(r, g, out=rg)
        np.multiply(np.add(r, g, out=yb), 0.5, out=yb)
        np.subtract(yb, b, out=yb)
        sigma = math.hypot(float(rg.std()), float(yb.std()))
        mu = math.hypot(float(rg.mean()), float(yb.mean()))
        return sigma + 0.3 * mu

    def add(self, gray: NDArray[Any], chroma: NDArray[Any] | None, sampled: tuple[NDArray[Any], ...] | None) -> None:
        import numpy as np

        mean = float(gray.mean())
        self.means.append(mean)
        self.black += mean < BLACK_LUMA
        bins = self._array("bins", gray, np.intp)  # bincount counts intp: give it one, not a new copy
        np.right_shift(gray, 3, out=bins)
        hist = np.bincount(bins.ravel(), minlength=32) / gray.size  # 32 bins of 8 levels
        signed = self._signed("luma", gray)
        colour = self._signed("chroma", chroma) if chroma is not None else None
        if self._previous is not None and self._previous_hist is not None:
            diff = self._mean_abs_diff("luma", signed, self._previous)
            self.diff_sum += diff
            # Frozen means nothing changed, colour included: a slow wave of hue alone is still motion.
            still = diff
            if colour is not None and self._previous_chroma is not None:
                still += self._mean_abs_diff("chroma", colour, self._previous_chroma)
            self.frozen += still < FROZEN_DIFF
            self.cuts += 0.5 * float(np.abs(hist - self._previous_hist).sum()) > CUT_DISTANCE
        if sampled is not None:
            small_gray, small_rgb = sampled
            self.sharpness.append(self._laplacian_variance(small_gray))
            self.colour.append(self._colourfulness(small_rgb))
        self._previous, self._previous_hist, self._previous_chroma = signed, hist, colour
        self.frames += 1

    def result(self) -> dict[str, Any]:
        import numpy as np

        pairs = max(self.frames - 1, 0)
        mean_diff = self.diff_sum / pairs if pairs else 0.0
        means = np.asarray(self.means, dtype=np.float64)
        steps = np.diff(means)
        # Only a jump followed by a jump back is flicker: a cut or a fade moves one way, then stays.
        reversals = np.sqrt(np.maximum(0.0, -steps[:-1] * steps[1:]))
        flicker = float(reversals.mean()) if reversals.size else 0.0
        return {
            "black_share": _share(self.black, self.frames),
            "frozen_share": _share(self.frozen, pairs),
            "motion": round(mean_diff / 255.0, 6),
            "temporal_flickering": round((255.0 - mean_diff) / 255.0, 6),
            "flicker": round(flicker, 4),
            "sharpness": round(float(np.mean(self.sharpness)), 4) if self.sharpness else 0.0,
            "colourfulness": round(float(np.mean(self.colour)), 4) if self.colour else 0.0,
            "scene_cuts": int(self.cuts),
        }


# 8-bit formats whose first plane is the luma, as decoders of H.264, HEVC, VP9 and AV1 deliver it.
_Y_PLANE_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21",
                              "gray"})  # fmt: skip


def _luma(frame: Any, step: int, small: tuple[int, int]) -> NDArray[Any]:
    """The frame's luma, every ``step``-th pixel; other formats go through FFmpeg's scaler."""
    import numpy as np

    if frame.format.name in _Y_PLANE_FORMATS:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        luma: NDArray[Any] = rows[: frame.height : step, : frame.width : step]
        return luma
    converted: NDArray[Any] = frame.reformat(
        width=small[0], height=small[1], format="gray", interpolation="AREA"
    ).to_ndarray()
    return converted


def _chroma(frame: Any, step: int) -> NDArray[Any] | None:
    """The frame's second plane (U, or interleaved UV), every ``step``-th sample; None for other formats."""
    import numpy as np

    if frame.format.name not in _Y_PLANE_FORMATS or len(frame.planes) < 2:
        return None
    plane = frame.planes[1]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    chroma: NDArray[Any] = rows[::step, : plane.width : step]
    return chroma


def _share(count: int, total: int) -> float:
    return round(count / total, 6) if total else 0.0


# ---------------------------------------------------------------------- the user's own metrics
MetricFunction = Callable[[Path, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class CustomMetric:
    """A metric a user registered: a function of the video's path and the job's spec."""

    name: str
    fn: MetricFunction
    version: str = "1"


_CUSTOM: dict[str, CustomMetric] = {}
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def register_metric(name: str, fn: MetricFunction, *, version: str = "1") -> CustomMetric:
    """Add a metric of your own; runs measure it after each download and store it like the built-ins.

    ``fn(path, spec)`` gets the video's :class:`~pathlib.Path` and the job's spec as a dict (``prompt``,
    ``model``, ``size``, ``seconds``, ``style``, ``axes``...) and returns a number, a bool, a string or
    None; it appears as the DataFrame column ``metric_<name>``. Results are cached by the video's
    sha256 and ``version``: change ``version`` when the function changes, and ``run.measure()``
    computes it again. Registered functions run in a thread of this process (so a model you loaded
    once stays loaded), or in the executor you give ``run.measure``.

    Raises:
        ValueError: ``name`` is not lower-case letters, digits and ``_``, or clashes with a built-in.
        TypeError: ``fn`` is not callable.

    >>> import sora_nb
    >>> def prompt_words(path, spec):
    ...     return len(spec["prompt"].split())
    >>> sora_nb.register_metric("prompt_words", prompt_words).name
    'prompt_words'
    >>> sora_nb.unregister_metric("prompt_words")
    """
    if not isinstance(name, str) or not name or not set(name) <= _NAME_OK or name[0].isdigit():
        raise ValueError(f"metric name {name!r} must be lower-case letters, digits and '_' (like 'clip_score').")
    if name in METRIC_KEYS or name == "video":
        raise ValueError(f"metric name {name!r} is a built-in metric. Fix: choose another name.")
    if not callable(fn):
        raise TypeError(f"register_metric({name!r}, fn): fn must be callable fn(path, spec), not {type(fn).__name__}.")
    metric = CustomMetric(name, fn, str(version))
    _CUSTOM[name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Forget a metric added with :func:`register_metric` (values already stored stay in the ledger).

    >>> unregister_metric("never_registered")
    """
    _CUSTOM.pop(name, None)


def custom_metrics() -> tuple[CustomMetric, ...]:
    """The metrics registered in this process, in registration order.

    >>> isinstance(custom_metrics(), tuple)
    True
    """
    return tuple(_CUSTOM.values())
