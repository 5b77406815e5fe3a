"""Runway's API (``https://api.dev.runwayml.com/v1``) in the toolkit's vocabulary.

From the official client's source (github.com/runwayml/sdk-python @c604e0e, release 5.13.0: ``api.md``,
``_client.py``, ``types/text_to_video_create_params.py``, ``types/image_to_video_create_params.py``,
``types/task_retrieve_response.py``) and docs.dev.runwayml.com, read 2026-12-01:

* Every request carries ``Authorization: Bearer <RUNWAYML_API_SECRET>`` and ``X-Runway-Version:
  2024-11-06`` (the client's default version).
* ``POST /text_to_video`` ``{model, promptText, ratio: "1280:720", duration, audio?}`` and
  ``POST /image_to_video`` (plus ``promptImage``: an https URL or a ``data:`` URI of at most 5 MB) answer
  ``{"id"}``: a task.
* ``GET /tasks/{id}``: ``status`` ``PENDING`` | ``THROTTLED`` (waiting for a free slot of the
  organisation's concurrency) | ``RUNNING`` with ``progress`` (0..1) | ``SUCCEEDED`` with ``output`` (URLs
  that expire within 24-48 h: re-reading the task gives fresh ones, which a download does once when its link
  has lapsed) | ``FAILED`` with ``failure`` and ``failureCode`` | ``CANCELLED``.
* ``DELETE /tasks/{id}`` cancels a running task (and deletes a finished one): 204.
* No list, no remix. Errors: ``{"error": "..."}``.

>>> to_status("THROTTLED"), to_status("RUNNING"), to_status("CANCELLED")
('queued', 'in_progress', 'cancelled')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from .._download import ProgressCallback
from .._errors import APIError, NotFoundError, ValidationError
from .._types import DeletedVideo, Status, Variant, Video, VideoError
from .._validation import ImageReference, check_id
from ._base import ProviderClient
from ._shapes import data_url, width_height

__all__ = ["API_VERSION", "MAX_DATA_URI_BYTES", "STATUS_WORDS", "RunwayClient", "build_body", "to_status", "to_video"]

API_VERSION = "2024-11-06"
"""The ``X-Runway-Version`` the official client sends by default (``_client.py``)."""

MAX_DATA_URI_BYTES = 5 * 1024 * 1024
"""Largest ``promptImage`` as a ``data:`` URI ("up to 5MB", the client's parameter docs)."""

STATUS_WORDS: Mapping[str, Status] = {
    "PENDING": "queued",
    "THROTTLED": "queued",  # waiting for a slot: not an error, and nothing to resend
    "RUNNING": "in_progress",
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
}
"""Runway's task status words and the toolkit's."""


def to_status(word: object) -> Status:
    """The toolkit's status for a Runway task status word (``unknown`` for a word not documented)."""
    return STATUS_WORDS.get(str(word), "unknown")


def build_body(
    params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *, seed: int | None,
    extra: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """The endpoint and JSON body of a create (pure): text to video, or image to video with a reference.

    >>> build_body({"prompt": "p", "model": "veo3.1_fast", "size": "1280x720", "seconds": "8"}, None,
    ...            seed=None, extra={})
    ('text_to_video', {'model': 'veo3.1_fast', 'promptText': 'p', 'ratio': '1280:720', 'duration': 8})
    """
    width, height = width_height(params["size"])
    body: dict[str, Any] = {"model": params["model"], "promptText": params["prompt"], "ratio": f"{width}:{height}",
                            "duration": int(params["seconds"])}
    if seed is not None:
        body["seed"] = seed
    endpoint = "text_to_video"
    if isinstance(reference, ImageReference):
        uri = data_url(reference.data, reference.content_type)
        if len(uri) > MAX_DATA_URI_BYTES:
            raise ValidationError(
                f"input_reference is {len(uri) / 1e6:.1f} MB as a data URI; Runway takes at most "
                f"{MAX_DATA_URI_BYTES // 2**20} MB. Fix: pass a smaller image (or JPEG), or its https:// URL.",
                field="input_reference")
        endpoint, body["promptImage"] = "image_to_video", uri
    elif reference is not None:
        if not reference.get("image_url"):
            raise ValidationError("Runway takes a reference image as a file or a URL, not a file_id. "
                                  "Fix: pass the image's path or its https:// URL.", field="input_reference")
        endpoint, body["promptImage"] = "image_to_video", reference["image_url"]
    body.update(extra)
    return endpoint, body


def to_video(data: dict[str, Any], *, handle: str | None) -> Video:
    """A Runway task (or the create answer, ``{"id"}``) as a :class:`Video` (pure).

    >>> v = to_video({"id": "t1", "status": "RUNNING", "progress": 0.42}, handle=None)
    >>> v.status, v.progress
    ('in_progress', 42)
    """
    word = data.get("status")
    if word is None and set(data) <= {"id"}:
        word = "PENDING"  # the create answer: accepted, nothing more known
    status = to_status(word)
    extra: dict[str, Any] = {"service": "runway"}
    progress = data.get("progress")
    percent = None
    if isinstance(progress, (int, float)) and not isinstance(progress, bool):
        percent = max(0, min(100, round(progress * 100)))
    if status == "completed":
        percent = 100
    output = data.get("output")
    error: dict[str, Any] | None = None
    if status == "completed" and isinstance(output, list) and output and isinstance(output[0], str):
        extra["asset_url"] = output[0]
    elif status == "completed":
        status, error = "failed", {"code": "no_video", "message": "Runway finished the task without a video."}
    if status == "failed" and error is None:
        error = {"code": str(data.get("failureCode") or "task_failed"),
                 "message": str(data.get("failure") or "the task failed")}
    return Video(
        id=str(data.get("id") or handle or ""),
        status=status,
        status_raw=word if isinstance(word, str) else None,
        progress=percent,
        error=VideoError.parse(error),
        extra=extra,
    )


class RunwayClient(ProviderClient):
    """Runway's tasks: text or image to video, polled with progress, cancelled with DELETE.

    >>> from sora_nb._profiles import PROFILES
    >>> api = RunwayClient(profile=PROFILES["runway"], base_url="https://api.dev.runwayml.com/v1", api_key="k")
    >>> api.poll_path("t1"), api._http.headers["x-runway-version"]
    ('tasks/t1', '2024-11-06')
    """

    name: ClassVar[str] = "Runway"

    def __init__(self, *, headers: dict[str, str] | None = None, **kwargs: Any) -> None:
        # The version travels on every request, keyed or not (a request without it is refused).
        super().__init__(headers={"X-Runway-Version": API_VERSION, **(headers or {})}, **kwargs)

    def build_create(
        self, params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *,
        seed: int | None, extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        endpoint, body = build_body(params, reference, seed=seed, extra=extra)
        return endpoint, {"json": body}

    def parse_job(self, data: dict[str, Any], *, handle: str | None) -> Video:
        return to_video(data, handle=handle)

    def poll_path(self, handle: str) -> str:
        return f"tasks/{quote(handle, safe='')}"

    async def download(
        self, video_id: str, dest: str | os.PathLike[str], *, variant: Variant = "video",
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Download the output; a signed link that lapsed meanwhile is replaced by a fresh one (the task is read
        again, as Runway's client says to), once."""
        try:
            return await super().download(video_id, dest, variant=variant, on_progress=on_progress)
        except APIError as exc:
            if exc.status_code not in (401, 403, 404, 410) or self._same_origin(self._assets.get(video_id, "")):
                raise
            self._assets.pop(video_id, None)
            return await super().download(video_id, dest, variant=variant, on_progress=on_progress)

    async def delete(self, video_id: str) -> DeletedVideo:
        """Cancel the task (or delete a finished one): ``DELETE /tasks/{id}``."""
        try:
            await self._send("DELETE", self.poll_path(check_id(video_id)), operation="cancel video")
        except NotFoundError:
            return DeletedVideo(id=video_id, deleted=False)
        return DeletedVideo(id=video_id, deleted=True)
