"""Together AI's video API (``https://api.together.xyz/v2/videos``) in the toolkit's vocabulary.

From Together's API reference "Create a video" / "Retrieve a video" (docs.together.ai/reference/create-videos)
and its guide (docs.together.ai/docs/inference/videos/overview, parameters), read November 2026:

* ``POST /videos`` (JSON): ``model``, ``prompt``, ``width``, ``height`` (integers, not ``size``),
  ``seconds`` (a string), ``fps``, ``steps`` (10-50), ``seed``, ``guidance_scale``, ``negative_prompt``,
  ``output_format``... Answers the job: ``{id, model, status, created_at, size, seconds, object: "video"}``.
* ``GET /videos/{id}``: ``status`` ``in_progress`` (there is no ``queued``), ``completed`` or ``failed``;
  no progress; ``outputs: {video_url, cost}`` once completed (``video_url`` a link on another host, which
  gets no credentials); ``error: {message, code}``. ``created_at`` is seconds or an ISO 8601 time.
* No list, delete, remix or thumbnail endpoint. Reference images go in ``media`` fields that vary by model:
  not sent by this adapter (refused with a clear error).

>>> v = to_video({"id": "019a", "status": "completed", "size": "1366x768", "seconds": "6",
...               "outputs": {"cost": 0.28, "video_url": "https://api.together.ai/shrt/x"}}, handle=None)
>>> v.status, v.size, v.extra["cost_usd"], v.extra["asset_url"]
('completed', '1366x768', 0.28, 'https://api.together.ai/shrt/x')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from .._errors import ValidationError
from .._types import Status, Video, VideoError, normalize_status
from .._validation import ImageReference
from ._base import ProviderClient, as_dict, error_from
from ._shapes import width_height

__all__ = ["STATUS_WORDS", "TogetherClient", "build_body", "to_video"]

STATUS_WORDS: Mapping[str, Status] = {
    "queued": "queued",
    "in_progress": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}
"""Together's status words and the toolkit's (``queued`` and ``cancelled`` tolerated, not documented)."""


def build_body(params: dict[str, Any], *, seed: int | None, extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of ``POST /videos`` (pure).

    >>> build_body({"prompt": "p", "model": "google/veo-3.0", "size": "1280x720", "seconds": "8"}, seed=3, extra={})
    {'model': 'google/veo-3.0', 'prompt': 'p', 'width': 1280, 'height': 720, 'seconds': '8', 'seed': 3}
    """
    width, height = width_height(params["size"])
    body: dict[str, Any] = {"model": params["model"], "prompt": params["prompt"], "width": width,
                            "height": height, "seconds": str(params["seconds"])}
    if seed is not None:
        body["seed"] = seed
    body.update(extra)
    return body


def _timestamp(value: object) -> int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None


def to_video(data: dict[str, Any], *, handle: str | None) -> Video:
    """A Together video job as a :class:`Video` (pure)."""
    word = data.get("status")
    outputs = as_dict(data.get("outputs"))
    extra: dict[str, Any] = {"service": "together"}
    if isinstance(outputs.get("video_url"), str) and outputs["video_url"]:
        extra["asset_url"] = outputs["video_url"]
    if isinstance(outputs.get("cost"), (int, float)) and not isinstance(outputs.get("cost"), bool):
        extra["cost_usd"] = float(outputs["cost"])
    seconds = data.get("seconds")
    return Video(
        id=str(data.get("id") or handle or ""),
        status=STATUS_WORDS.get(str(word), normalize_status(word)),
        status_raw=word if isinstance(word, str) else None,
        model=data.get("model"),
        progress=None,
        created_at=_timestamp(data.get("created_at")),
        completed_at=_timestamp(data.get("completed_at")),
        size=data.get("size") if isinstance(data.get("size"), str) else None,
        seconds=None if seconds is None else str(seconds),
        error=VideoError.parse(error_from(data.get("error"))),
        extra=extra,
    )


class TogetherClient(ProviderClient):
    """Together's ``/v2/videos`` jobs: width and height instead of size, the file at ``outputs.video_url``."""

    name: ClassVar[str] = "Together"

    def build_create(
        self, params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *,
        seed: int | None, extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        if reference is not None:
            raise ValidationError(
                "reference images on Together go in model-specific media fields that sora_nb does not send. "
                "Fix: drop input_reference, or pass the model's own fields in extra=.", field="input_reference")
        return "videos", {"json": build_body(params, seed=seed, extra=extra)}

    def parse_job(self, data: dict[str, Any], *, handle: str | None) -> Video:
        return to_video(data, handle=handle)

    def poll_path(self, handle: str) -> str:
        return f"videos/{quote(handle, safe='')}"
