"""OpenRouter's video API (``https://openrouter.ai/api/v1/videos``) in the toolkit's vocabulary.

From OpenRouter's published API reference (openrouter.ai/docs/api/api-reference/video-generation:
"Submit a video generation request", "Poll video generation status", "Download generated video content")
and its errors page (openrouter.ai/docs/api/reference/errors-and-debugging), read November 2026:

* ``POST /videos``, JSON only: ``model``, ``prompt``, ``duration`` (integer seconds), ``resolution``
  (``720p``...), ``aspect_ratio`` (``16:9``...), optional ``seed``, ``frame_images``
  (``[{type: "image_url", image_url: {url}, frame_type: "first_frame"}]``), ``generate_audio``...
  Answers **202** with ``{id, polling_url, status: "pending"}``; ``polling_url`` may be relative
  (``/api/v1/videos/{id}``).
* ``GET /videos/{id}``: ``status`` in ``pending, in_progress, completed, failed, cancelled, expired``; no
  progress; ``error`` is a string; once completed ``unsigned_urls`` (the authenticated content proxy,
  ``/api/v1/videos/{id}/content?index=0``: it needs the Bearer key) and ``usage.cost`` (USD).
* No list, delete, remix, extension or thumbnail endpoint. Errors: ``{"error": {"code": 400, "message"}}``.

>>> from sora_nb._profiles import PROFILES
>>> api = OpenRouterClient(profile=PROFILES["openrouter"], base_url="https://openrouter.ai/api/v1")
>>> v = api.parse_job({"id": "job-1", "status": "completed", "unsigned_urls": ["/api/v1/videos/job-1/content?index=0"],
...                    "usage": {"cost": 0.5}}, handle="job-1")
>>> v.status, v.progress, v.extra["cost_usd"], v.extra["asset_url"]
('completed', None, 0.5, 'https://openrouter.ai/api/v1/videos/job-1/content?index=0')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urljoin

from .._types import Status, Video, VideoError, normalize_status
from .._validation import ImageReference
from ._base import ProviderClient, as_dict, error_from
from ._shapes import aspect_and_resolution, data_url

__all__ = ["STATUS_WORDS", "OpenRouterClient", "build_body", "to_video"]

STATUS_WORDS: Mapping[str, Status] = {
    "pending": "queued",
    "in_progress": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "expired",
}
"""OpenRouter's status words (its ``VideoGenerationResponseStatus`` enum) and the toolkit's."""


def build_body(
    params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *, seed: int | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The JSON body of ``POST /videos`` (pure).

    >>> build_body({"prompt": "p", "model": "google/veo-3.1", "size": "1280x720", "seconds": "8"}, None,
    ...            seed=7, extra={})
    {'model': 'google/veo-3.1', 'prompt': 'p', 'duration': 8, 'resolution': '720p', 'aspect_ratio': '16:9', 'seed': 7}
    """
    aspect, resolution = aspect_and_resolution(params["size"])
    body: dict[str, Any] = {
        "model": params["model"], "prompt": params["prompt"], "duration": int(params["seconds"]),
        "resolution": resolution, "aspect_ratio": aspect,
    }
    if seed is not None:
        body["seed"] = seed
    if isinstance(reference, ImageReference):
        url = data_url(reference.data, reference.content_type)
    elif reference is not None:
        url = reference.get("image_url", "")
    else:
        url = ""
    if url:
        body["frame_images"] = [{"type": "image_url", "image_url": {"url": url}, "frame_type": "first_frame"}]
    body.update(extra)
    return body


def to_video(data: dict[str, Any], *, handle: str | None, base_url: str) -> Video:
    """An OpenRouter job as a :class:`Video` (pure); relative URLs are resolved against ``base_url``."""
    word = data.get("status")
    urls = data.get("unsigned_urls") or []
    usage = as_dict(data.get("usage"))
    extra: dict[str, Any] = {"service": "openrouter"}
    if urls and isinstance(urls[0], str):
        extra["asset_url"] = urljoin(base_url, urls[0])
    if isinstance(usage.get("cost"), (int, float)):
        extra["cost_usd"] = float(usage["cost"])
    for key in ("polling_url", "generation_id"):
        if data.get(key):
            extra[key] = data[key]
    error = error_from(data.get("error"))
    return Video(
        id=str(data.get("id") or handle or ""),
        status=STATUS_WORDS.get(str(word), normalize_status(word)),
        status_raw=word if isinstance(word, str) else None,
        model=data.get("model"),
        progress=None,
        error=VideoError.parse(error),
        extra=extra,
    )


class OpenRouterClient(ProviderClient):
    """OpenRouter's asynchronous video API: JSON creates, 202 + ``polling_url``, bytes behind the key."""

    name: ClassVar[str] = "OpenRouter"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._polling: dict[str, str] = {}

    def build_create(
        self, params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *,
        seed: int | None, extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        return "videos", {"json": build_body(params, reference, seed=seed, extra=extra)}

    def parse_job(self, data: dict[str, Any], *, handle: str | None) -> Video:
        video = to_video(data, handle=handle, base_url=self.base_url)
        polling = video.extra.get("polling_url")
        if isinstance(polling, str):
            self._polling[video.id] = polling
        return video

    def poll_path(self, handle: str) -> str:
        # The polling_url the service gave, when it is on the API's own origin (it gets the key);
        # otherwise (or after a restart) the documented path.
        polling = self._polling.get(handle)
        if polling:
            absolute = urljoin(self.base_url, polling)
            if self._same_origin(absolute):
                return absolute
        return f"videos/{quote(handle, safe='')}"
