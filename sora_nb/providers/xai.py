"""xAI's video API (``https://api.x.ai/v1``, model ``grok-imagine-video``) in the toolkit's vocabulary.

From xAI's REST API reference (docs.x.ai/developers/rest-api-reference: "Video generation
/v1/videos/generations", "Video edit /v1/videos/edits", "Get video generation results /v1/videos/{request_id}")
and its video guides (docs.x.ai/developers/model-capabilities/video: generation, editing, extension), read
November 2026, cross-checked against the Vercel AI SDK's xAI video model (vercel/ai packages/xai):

* ``POST /videos/generations`` (JSON): ``prompt``, ``model``, ``duration`` (1-15 s, default 8),
  ``aspect_ratio`` (``16:9, 9:16, 1:1, 4:3, 3:4, 3:2, 2:3``), ``resolution`` (``480p``, ``720p``),
  ``image: {url}`` (a URL or a base64 data URL). Answers ``{request_id}``: a deferred request.
* ``GET /videos/{request_id}``: ``status`` ``pending`` until ``done``, ``failed`` or ``expired``;
  ``progress`` (percent); when done ``video: {url, duration, respect_moderation}``, the url a temporary
  link on xAI's CDN (vidgen.x.ai: no credentials needed, none are sent); ``usage.cost_in_usd_ticks``
  (1e10 ticks to the dollar); on failure ``error: {code, message}``. HTTP 200 either way.
* ``POST /videos/edits`` and ``/videos/extensions`` take ``video: {url}`` and a prompt: used here as the
  toolkit's remix and extend, with the source job's video URL.
* No list, delete or thumbnail endpoint; no seed. Errors look like ``{"code": "...", "error": "..."}``.

>>> to_status("pending", 0), to_status("pending", 40), to_status("done", 100), to_status("expired", None)
('queued', 'in_progress', 'completed', 'expired')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from .._errors import ValidationError
from .._search import Claimed
from .._types import Status, Video, VideoError, normalize_status
from .._validation import ImageReference, check_prompt, check_seconds
from ._base import ProviderClient, as_dict, error_from
from ._shapes import aspect_and_resolution, data_url

__all__ = ["STATUS_WORDS", "TICKS_PER_USD", "XAIClient", "build_body", "to_status", "to_video"]

TICKS_PER_USD = 1e10
"""``usage.cost_in_usd_ticks`` / this = dollars."""

STATUS_WORDS: Mapping[str, Status] = {
    "pending": "queued",  # "in_progress" once progress moves: see to_status
    "queued": "queued",
    "processing": "in_progress",
    "done": "completed",
    "failed": "failed",
    "expired": "expired",
}
"""xAI's status words and the toolkit's (``queued``/``processing`` are tolerated: seen through relays)."""


def to_status(word: object, progress: int | None) -> Status:
    """xAI has one word for waiting and running (``pending``): progress above 0 tells them apart."""
    status = STATUS_WORDS.get(str(word), normalize_status(word))
    if status == "queued" and progress:
        return "in_progress"
    return status


def build_body(
    params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *, extra: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body of ``POST /videos/generations`` (pure).

    >>> build_body({"prompt": "p", "model": "grok-imagine-video", "size": "848x480", "seconds": "6"}, None, extra={})
    {'model': 'grok-imagine-video', 'prompt': 'p', 'duration': 6, 'aspect_ratio': '16:9', 'resolution': '480p'}
    """
    aspect, resolution = aspect_and_resolution(params["size"])
    body: dict[str, Any] = {
        "model": params["model"], "prompt": params["prompt"], "duration": int(params["seconds"]),
        "aspect_ratio": aspect, "resolution": resolution,
    }
    if isinstance(reference, ImageReference):
        body["image"] = {"url": data_url(reference.data, reference.content_type)}
    elif reference is not None and reference.get("image_url"):
        body["image"] = {"url": reference["image_url"]}
    elif reference is not None:
        raise ValidationError("xAI takes a reference image as a file or an image_url, not a file_id. "
                              "Fix: pass the image's path.", field="input_reference")
    body.update(extra)
    return body


def _percent(value: object) -> int | None:
    if isinstance(value, str):
        value = value.strip().rstrip("%")
    try:
        return None if value is None or isinstance(value, bool) else max(0, min(100, int(float(value))))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def to_video(data: dict[str, Any], *, handle: str | None) -> Video:
    """An xAI deferred request (create answer or status) as a :class:`Video` (pure).

    >>> v = to_video({"status": "done", "video": {"url": "https://vidgen.x.ai/a.mp4", "duration": 6,
    ...               "respect_moderation": True}, "usage": {"cost_in_usd_ticks": 4200000000}}, handle="r1")
    >>> v.id, v.status, v.seconds, v.extra["cost_usd"], v.extra["asset_url"]
    ('r1', 'completed', '6', 0.42, 'https://vidgen.x.ai/a.mp4')
    """
    progress = _percent(data.get("progress"))
    word = data.get("status")
    if word is None and data.get("request_id") and not data.get("video"):
        word = "pending"  # the create answer: accepted, nothing more known
    status = to_status(word, progress)
    video = as_dict(data.get("video"))
    usage = as_dict(data.get("usage"))
    extra: dict[str, Any] = {"service": "xai"}
    error = error_from(data.get("error"))
    if status == "completed" and video.get("respect_moderation") is False:
        status, error = "failed", {"code": "moderation_blocked",
                                   "message": "xAI withheld the video: it did not pass moderation."}
    if status == "completed" and isinstance(video.get("url"), str):
        extra["asset_url"] = video["url"]
    ticks = usage.get("cost_in_usd_ticks")
    if isinstance(ticks, (int, float)) and not isinstance(ticks, bool):
        extra["cost_usd"] = round(ticks / TICKS_PER_USD, 10)
    duration = video.get("duration")
    return Video(
        id=str(handle or data.get("request_id") or ""),
        status=status,
        status_raw=word if isinstance(word, str) else None,
        model=data.get("model") or None,
        progress=progress,
        seconds=str(int(duration)) if isinstance(duration, (int, float)) and duration > 0 else None,
        error=VideoError.parse(error),
        extra=extra,
    )


class XAIClient(ProviderClient):
    """xAI's deferred video requests: create, poll by ``request_id``, download from the CDN link."""

    name: ClassVar[str] = "xAI"

    def build_create(
        self, params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *,
        seed: int | None, extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        if seed is not None:
            raise ValidationError("xAI's video API takes no seed. Fix: drop seed=.", field="seed")
        return "videos/generations", {"json": build_body(params, reference, extra=extra)}

    def parse_job(self, data: dict[str, Any], *, handle: str | None) -> Video:
        return to_video(data, handle=handle)

    def poll_path(self, handle: str) -> str:
        return f"videos/{quote(handle, safe='')}"

    async def remix(self, video_id: str, prompt: str, *, known_ids: Claimed = frozenset()) -> Video:
        """A new job from a finished one with a new prompt: xAI's ``POST /videos/edits``."""
        body = {"prompt": check_prompt(prompt), "video": {"url": await self._source_url(video_id)}}
        match = {"prompt": body["prompt"]}
        return await self._send_create("videos/edits", {"json": body}, match, known_ids, operation="edit video")

    async def edit(
        self, video: str | os.PathLike[str], prompt: str, *, known_ids: Claimed = frozenset()
    ) -> Video:
        if not isinstance(video, str):
            raise self._unsupported("upload of local videos", "Fix: pass the id of a completed xAI job.")
        return await self.remix(video, prompt, known_ids=known_ids)

    async def extend(
        self, video: str | os.PathLike[str], prompt: str, *, seconds: str | int = "4",
        known_ids: Claimed = frozenset(),
    ) -> Video:
        """Continue a finished job from its last frame: xAI's ``POST /videos/extensions``."""
        if not isinstance(video, str):
            raise self._unsupported("upload of local videos", "Fix: pass the id of a completed xAI job.")
        duration = int(check_seconds(seconds, capabilities=None))
        if not 1 <= duration <= 15:
            raise ValidationError(f"seconds={seconds!r}: xAI extends by 1 to 15 seconds. Fix: pass 1..15.",
                                  field="seconds", allowed=tuple(str(s) for s in range(1, 16)))
        body = {"prompt": check_prompt(prompt), "duration": duration, "video": {"url": await self._source_url(video)}}
        match = {"prompt": body["prompt"]}
        return await self._send_create("videos/extensions", {"json": body}, match, known_ids,
                                       operation="extend video")

    async def _source_url(self, video_id: str) -> str:
        url = self._assets.get(video_id)
        if url is None:
            await self.poll(video_id)
            url = self._assets.get(video_id)
        if url is None:
            raise ValidationError(f"xAI job {video_id} has no finished video to start from. "
                                  "Fix: wait until it is completed.", field="video")
        return url

