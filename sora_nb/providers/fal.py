"""fal.ai's queue API (``https://queue.fal.run``) in the toolkit's vocabulary.

From fal's queue documentation (docs.fal.ai/model-endpoints/queue) and the official client's source
(github.com/fal-ai/fal @c6f0afa, ``projects/fal_client/src/fal_client/client.py``), read 2026-12-01:

* ``POST /{model_id}`` with ``Authorization: Key <FAL_KEY>``; the body is the model's own input schema
  (``prompt``, ``duration``, ``aspect_ratio``, ``image_url`` ...). Answers ``{request_id, status_url,
  response_url, cancel_url}``: the three URLs live under the model's *app* (its first two path segments:
  ``fal-ai/veo3/fast`` -> ``fal-ai/veo3``), as ``/{app}/requests/{request_id}[/status|/cancel]``.
* ``GET .../status``: ``IN_QUEUE`` with ``queue_position`` (0 is next), ``IN_PROGRESS`` (logs, no
  percentage), ``COMPLETED``; a ``COMPLETED`` request may still carry ``error`` and ``error_type`` (the
  client's ``Completed(error=...)``): that is a failure, not a video.
* ``GET /{app}/requests/{id}``: the result, the model's own output (``{"video": {"url", "content_type",
  "file_size"}}``), the url on fal's CDN (``v3.fal.media``: no key is sent there). A failed request answers
  an HTTP error with ``{"detail": ...}`` instead.
* ``PUT .../cancel``: 202 ``CANCELLATION_REQUESTED`` while queued; 400 ``ALREADY_COMPLETED`` otherwise.
* No list, no remix; errors are ``{"detail": "..."}`` (FastAPI's), sometimes with ``error_type``.

The job id sora_nb keeps is ``{app}/requests/{request_id}``: it is all a poll needs after a restart
(the client would otherwise have to remember which model made it).

>>> to_video({"status": "IN_QUEUE", "queue_position": 3}, handle="fal-ai/veo3/requests/r1").extra["queue_position"]
3
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .._errors import APIError, AuthenticationError, NotFoundError, RateLimitError, ServerError, ValidationError
from .._retry import poll_after_seconds
from .._types import DeletedVideo, Status, Video, VideoError
from .._validation import ImageReference, check_id
from ._base import ProviderClient, as_dict
from ._shapes import aspect_and_resolution, data_url

__all__ = [
    "MAX_DATA_URL_BYTES", "STATUS_WORDS", "FalClient", "app_of", "build_body", "handle_of", "image_model", "to_video",
]

STATUS_WORDS: Mapping[str, Status] = {"IN_QUEUE": "queued", "IN_PROGRESS": "in_progress", "COMPLETED": "completed"}
"""fal's queue status words (the client's ``Queued``, ``InProgress``, ``Completed``) and the toolkit's."""

MAX_DATA_URL_BYTES = 10 * 1024 * 1024
"""Largest image sent inline as a ``data:`` URL. fal documents data URIs as file inputs without a limit;
its client uploads files to its CDN instead. 10 MB is sora_nb's own bound: above it, pass a URL."""

_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)+$")
_HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*/requests/[A-Za-z0-9][A-Za-z0-9._-]*$")

# How each model family writes its inputs (from each model's schema page on fal.ai, read 2026-12-01).
_SECONDS_SUFFIX = {"fal-ai/veo3": "s"}
"""Apps whose ``duration`` is written ``"8s"`` rather than ``"8"``."""
_SENDS_RESOLUTION = ("fal-ai/veo3", "fal-ai/bytedance")
"""Apps that take a ``resolution`` beside ``aspect_ratio``."""
_NO_ASPECT = ("fal-ai/minimax",)
"""Apps that take no ``aspect_ratio`` (Hailuo's frame follows the image or its own default)."""


def app_of(model: str) -> str:
    """The app a model endpoint belongs to: its first two path segments.

    >>> app_of("fal-ai/kling-video/v2.1/master/text-to-video")
    'fal-ai/kling-video'
    """
    return "/".join(model.split("/")[:2])


def image_model(model: str) -> str:
    """The image-to-video sibling of a text-to-video endpoint (fal names them side by side).

    >>> image_model("fal-ai/kling-video/v2.1/master/text-to-video"), image_model("fal-ai/veo3/fast")
    ('fal-ai/kling-video/v2.1/master/image-to-video', 'fal-ai/veo3/fast/image-to-video')
    """
    if model.endswith("/text-to-video"):
        return model.removesuffix("/text-to-video") + "/image-to-video"
    return model if model.endswith("/image-to-video") else model + "/image-to-video"


def build_body(
    params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *, seed: int | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The JSON input of a fal video model (pure).

    >>> build_body({"prompt": "p", "model": "fal-ai/veo3/fast", "size": "1280x720", "seconds": "8"}, None,
    ...            seed=None, extra={})
    {'prompt': 'p', 'duration': '8s', 'aspect_ratio': '16:9', 'resolution': '720p'}
    """
    app = app_of(params["model"])
    aspect, resolution = aspect_and_resolution(params["size"])
    body: dict[str, Any] = {"prompt": params["prompt"], "duration": f"{int(params['seconds'])}"
                                                                    f"{_SECONDS_SUFFIX.get(app, '')}"}
    if app not in _NO_ASPECT:
        body["aspect_ratio"] = aspect
    if app in _SENDS_RESOLUTION:
        body["resolution"] = resolution
    if seed is not None:
        body["seed"] = seed
    if isinstance(reference, ImageReference):
        if len(reference.data) > MAX_DATA_URL_BYTES:
            raise ValidationError(
                f"input_reference is {len(reference.data) / 1e6:.1f} MB; sora_nb sends images to fal inline "
                f"up to {MAX_DATA_URL_BYTES // 2**20} MB. Fix: pass a smaller image, or its https:// URL.",
                field="input_reference")
        body["image_url"] = data_url(reference.data, reference.content_type)
    elif reference is not None:
        if not reference.get("image_url"):
            raise ValidationError("fal takes a reference image as a file or a URL, not a file_id. "
                                  "Fix: pass the image's path or its https:// URL.", field="input_reference")
        body["image_url"] = reference["image_url"]
    body.update(extra)
    return body


def _error_text(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, dict)) and value:  # FastAPI's validation detail: a list of {loc, msg}
        items = value if isinstance(value, list) else [value]
        return "; ".join(str(as_dict(item).get("msg") or item) for item in items)
    return None


def to_video(data: dict[str, Any], *, handle: str | None, result: dict[str, Any] | None = None) -> Video:
    """A fal status answer (and, once completed, its result) as a :class:`Video` (pure).

    >>> v = to_video({"status": "COMPLETED", "error": "GPU out of memory", "error_type": "runner_error"},
    ...              handle="a/b/requests/c")
    >>> v.status, v.error.code, v.error.message
    ('failed', 'runner_error', 'GPU out of memory')
    """
    word = data.get("status")
    if word is None and data.get("request_id"):
        word = "IN_QUEUE"  # the submit answer: accepted, nothing more known
    status: Status = STATUS_WORDS.get(str(word), "unknown")
    extra: dict[str, Any] = {"service": "fal"}
    position = data.get("queue_position")
    if status == "queued" and isinstance(position, int) and not isinstance(position, bool) and position >= 0:
        extra["queue_position"] = position
    error: dict[str, Any] | None = None
    message = _error_text(data.get("error"))
    if status == "completed" and message:
        status, error = "failed", {"code": str(data.get("error_type") or "fal_error"), "message": message}
    elif status == "completed" and result is not None:
        url = as_dict(result.get("video")).get("url")
        if isinstance(url, str) and url:
            extra["asset_url"] = url
        else:
            status, error = "failed", {"code": "no_video", "message": "fal finished the request without a video."}
    return Video(
        id=str(handle or ""),
        status=status,
        status_raw=word if isinstance(word, str) else None,
        progress=None,
        error=VideoError.parse(error),
        extra=extra,
    )


def handle_of(answer: dict[str, Any]) -> str:
    """The id sora_nb keeps for a submitted request: the path of its ``response_url`` (``{app}/requests/{id}``).

    >>> handle_of({"request_id": "r1", "response_url": "https://queue.fal.run/fal-ai/veo3/requests/r1"})
    'fal-ai/veo3/requests/r1'
    """
    path = urlsplit(str(answer.get("response_url") or "")).path.strip("/")
    if not _HANDLE.match(path) or path.rsplit("/", 1)[-1] != answer.get("request_id"):
        return ""  # no usable id: the caller reports an answer without one
    return path


class FalClient(ProviderClient):
    """fal's queue: submit to a model, poll its app's status, read the result, download from fal's CDN.

    >>> from sora_nb._profiles import PROFILES
    >>> api = FalClient(profile=PROFILES["fal"], base_url="https://queue.fal.run", api_key="k")
    >>> api.poll_path("fal-ai/veo3/requests/r1"), api._http.headers["authorization"]
    ('fal-ai/veo3/requests/r1/status', 'Key k')
    """

    name: ClassVar[str] = "fal"
    id_segments: ClassVar[bool] = True

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Key {api_key}"}

    def build_create(
        self, params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *,
        seed: int | None, extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        model = params["model"]
        if not _MODEL.match(model):
            raise ValidationError(f"model={model!r} is not a fal endpoint id. "
                                  "Fix: e.g. model='fal-ai/veo3/fast'.", field="model")
        endpoint = image_model(model) if reference is not None else model
        return endpoint, {"json": build_body(params, reference, seed=seed, extra=extra)}

    def parse_job(self, data: dict[str, Any], *, handle: str | None) -> Video:
        if handle is None:  # the submit answer: the id is the request's path under its app
            handle = handle_of(data)
        return to_video(data, handle=handle)

    def poll_path(self, handle: str) -> str:
        return f"{self._handle(handle)}/status"

    def _handle(self, handle: str) -> str:
        if not _HANDLE.match(handle):
            raise ValidationError(f"{handle!r} is not a fal request. "
                                  "Fix: pass the id create returned ({app}/requests/{request_id}).", field="id")
        return handle

    async def poll(self, video_id: str) -> tuple[Video, float | None]:
        """The request's status; once ``COMPLETED`` without an error, its result too (where the video is)."""
        handle = self._handle(check_id(video_id, segments=True))
        sent = await self._send("GET", f"{handle}/status", operation="retrieve video")
        data = self._object(sent, "retrieve video")
        status = to_video(data, handle=handle)
        result = None
        if status.status == "completed":
            try:
                result = self._object(await self._send("GET", handle, operation="retrieve video result"),
                                      "retrieve video result")
            except (AuthenticationError, NotFoundError, RateLimitError, ServerError):
                raise
            except APIError as exc:  # a failed request answers its result with an error: the job failed
                data = {**data, "error": _error_text(as_dict(exc.body).get("detail")) or str(exc),
                        "error_type": as_dict(exc.body).get("error_type") or exc.code}
        video = self._adopt(to_video(data, handle=handle, result=result), sent, "retrieve video", handle=handle)
        return video, poll_after_seconds(sent.response.headers)

    async def delete(self, video_id: str) -> DeletedVideo:
        """Cancel a request: fal honours it while the request waits in the queue (202), not once it runs."""
        handle = self._handle(check_id(video_id, segments=True))
        try:
            sent = await self._send("PUT", f"{handle}/cancel", operation="cancel video")
        except APIError as exc:
            if exc.status_code == 400:  # ALREADY_COMPLETED (or running): nothing to cancel any more
                return DeletedVideo(id=video_id, deleted=False)
            raise
        return DeletedVideo(id=video_id, deleted=sent.response.status_code == 202)
