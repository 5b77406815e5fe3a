"""Replicate's predictions API (``https://api.replicate.com/v1``) in the toolkit's vocabulary.

From Replicate's HTTP API reference (replicate.com/docs/reference/http), its prediction lifecycle and data
retention pages (replicate.com/docs/topics/predictions/lifecycle, .../data-retention) and the official
client's source (github.com/replicate/replicate-python @0110c2c: ``prediction.py``, ``model.py``,
``deployment.py``, ``file.py``), read 2026-12-01:

* ``POST /models/{owner}/{name}/predictions`` ``{"input": {...}}`` (the model's own input schema), or
  ``POST /deployments/{owner}/{name}/predictions`` for a deployment, or ``POST /predictions`` with
  ``version`` for a pinned version. ``Authorization: Bearer``. Answers the prediction (201).
* ``GET /predictions/{id}``: ``status`` ``starting`` -> ``processing`` -> ``succeeded`` | ``failed`` |
  ``canceled`` | ``aborted`` (a deadline hit before it started); ``output`` (a URL, or a list of them, on
  ``replicate.delivery``: no key is sent there), ``error`` (a string), ``metrics.predict_time``.
* ``POST /predictions/{id}/cancel`` answers the prediction, ``canceled``.
* ``POST /files`` (multipart ``content``) answers ``{id, urls: {get}}``: how a local image reaches a model.
* Outputs of API predictions are deleted **one hour** after they are made (``data_removed: true``
  afterwards): sora_nb downloads at once, and says so when a resume finds the link gone.
* Errors are RFC 7807 problems: ``{"title", "detail", "status"}``.

Model names: ``owner/name`` (a model), ``owner/name:version`` (a pinned version), or
``deployments/owner/name`` (a deployment).

>>> to_video({"id": "p1", "status": "processing"}, handle=None).status
'in_progress'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from .._download import ProgressCallback
from .._errors import APIError, DownloadError, ValidationError
from .._types import DeletedVideo, Status, Variant, Video, VideoError
from .._validation import ImageReference, check_id
from ._base import ProviderClient, as_dict
from ._shapes import aspect_and_resolution, data_url

__all__ = ["OUTPUT_LIFETIME_S", "STATUS_WORDS", "ReplicateClient", "build_body", "create_path", "to_video"]

STATUS_WORDS: Mapping[str, Status] = {
    "starting": "queued",
    "processing": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "cancelled",
    "aborted": "cancelled",
}
"""Replicate's prediction status words and the toolkit's (``aborted``: its deadline passed before it started)."""

OUTPUT_LIFETIME_S = 3600
"""Replicate deletes an API prediction's outputs an hour after it is made (its data-retention page)."""

MAX_DATA_URL_BYTES = 256 * 1024
"""Images up to this size go inline as a ``data:`` URL; larger ones are uploaded with ``POST /files``
(Replicate's guidance: data URLs for small files, the files API for the rest)."""

_IMAGE_FIELD = {"kwaivgi/kling-v2.1": "start_image", "minimax/hailuo-02": "first_frame_image"}
"""Where each model takes its first frame (its input schema on replicate.com); ``image`` for the others."""
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_MODEL = re.compile(rf"^(deployments/)?{_NAME}/{_NAME}(:[0-9a-f]{{16,64}})?$")

_EXPIRED = ("Replicate deletes a prediction's output an hour after it is made, and this one is gone "
            "(the link has expired). Fix: job.retry() generates it again (and is paid again); next time let "
            "the run download while it goes (sora_nb fetches each video as soon as it is done).")


def create_path(model: str) -> tuple[str, dict[str, Any]]:
    """Where to create a prediction for ``model``, and what the body names beside ``input`` (pure).

    >>> create_path("google/veo-3-fast"), create_path("deployments/acme/veo")
    (('models/google/veo-3-fast/predictions', {}), ('deployments/acme/veo/predictions', {}))
    >>> create_path("acme/m:" + "a" * 64)[0]
    'predictions'
    """
    if not _MODEL.match(model):
        raise ValidationError(f"model={model!r} is not a Replicate model. Allowed: 'owner/name', "
                              "'owner/name:version' or 'deployments/owner/name'. Fix: e.g. "
                              "model='google/veo-3-fast'.", field="model")
    name, _, version = model.partition(":")
    if version:
        return "predictions", {"version": version}
    if name.startswith("deployments/"):
        return f"{name}/predictions", {}
    return f"models/{name}/predictions", {}


def build_body(
    params: dict[str, Any], image_url: str | None, *, seed: int | None, extra: dict[str, Any],
) -> dict[str, Any]:
    """The JSON body of a create (pure); ``extra`` goes into ``input``.

    >>> build_body({"prompt": "p", "model": "google/veo-3-fast", "size": "1280x720", "seconds": "8"}, None,
    ...            seed=None, extra={})
    {'input': {'prompt': 'p', 'duration': 8, 'aspect_ratio': '16:9', 'resolution': '720p'}}
    """
    aspect, resolution = aspect_and_resolution(params["size"])
    _, named = create_path(params["model"])
    model = params["model"].partition(":")[0]
    payload: dict[str, Any] = {"prompt": params["prompt"], "duration": int(params["seconds"]),
                               "aspect_ratio": aspect, "resolution": resolution}
    if seed is not None:
        payload["seed"] = seed
    if image_url is not None:
        payload[_IMAGE_FIELD.get(model, "image")] = image_url
    payload.update(extra)
    return {**named, "input": payload}


def to_video(data: dict[str, Any], *, handle: str | None) -> Video:
    """A prediction as a :class:`Video` (pure).

    >>> v = to_video({"id": "p1", "status": "succeeded", "output": ["https://replicate.delivery/x/out.mp4"]},
    ...              handle=None)
    >>> v.status, v.extra["asset_url"]
    ('completed', 'https://replicate.delivery/x/out.mp4')
    >>> gone = to_video({"id": "p1", "status": "succeeded", "output": None, "data_removed": True}, handle=None)
    >>> gone.status, gone.error.code
    ('expired', 'output_expired')
    """
    word = data.get("status")
    status: Status = STATUS_WORDS.get(str(word), "unknown")
    output = data.get("output")
    url = output[0] if isinstance(output, list) and output else output
    extra: dict[str, Any] = {"service": "replicate"}
    error: dict[str, Any] | str | None = None
    if status == "completed" and isinstance(url, str) and url:
        extra["asset_url"] = url
    elif status == "completed" and data.get("data_removed"):
        status, error = "expired", {"code": "output_expired", "message": _EXPIRED}
    elif status == "completed":
        status, error = "failed", {"code": "no_video", "message": "Replicate finished the prediction without a video."}
    elif status == "failed":
        error = {"code": "prediction_failed", "message": str(data.get("error") or "the prediction failed")}
    elif word == "aborted":
        error = {"code": "aborted", "message": "Replicate aborted the prediction: its deadline passed before it "
                                               "started (not billed). Fix: job.retry()."}
    predict_time = as_dict(data.get("metrics")).get("predict_time")
    if isinstance(predict_time, (int, float)) and not isinstance(predict_time, bool):
        extra["predict_time_s"] = float(predict_time)
    return Video(
        id=str(data.get("id") or handle or ""),
        status=status,
        status_raw=word if isinstance(word, str) else None,
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        progress=None,
        error=VideoError.parse(error),
        extra=extra,
    )


class ReplicateClient(ProviderClient):
    """Replicate's predictions: create for a model, deployment or version; poll; download at once.

    >>> from sora_nb._profiles import PROFILES
    >>> api = ReplicateClient(profile=PROFILES["replicate"], base_url="https://api.replicate.com/v1", api_key="k")
    >>> api.build_create({"prompt": "p", "model": "deployments/acme/veo", "size": "1280x720", "seconds": "8"},
    ...                  None, seed=None, extra={})[0]
    'deployments/acme/veo/predictions'
    """

    name: ClassVar[str] = "Replicate"

    def build_create(
        self, params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *,
        seed: int | None, extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        image_url = None
        if isinstance(reference, ImageReference):
            image_url = data_url(reference.data, reference.content_type)
        elif reference is not None:
            image_url = reference.get("image_url") or None
            if image_url is None:
                raise ValidationError("Replicate takes a reference image as a file or a URL, not a file_id. "
                                      "Fix: pass the image's path or its https:// URL.", field="input_reference")
        path, _ = create_path(params["model"])
        return path, {"json": build_body(params, image_url, seed=seed, extra=extra)}

    async def prepare_reference(self, reference: ImageReference | dict[str, str]) -> ImageReference | dict[str, str]:
        """An image too big for a ``data:`` URL is uploaded first (``POST /files``) and sent as its URL."""
        if isinstance(reference, ImageReference) and len(reference.data) > MAX_DATA_URL_BYTES:
            return {"image_url": await self._upload(reference)}
        return reference

    async def _upload(self, image: ImageReference) -> str:
        # Not billed: an upload lost on the way is merely sent again (a file nobody uses expires on its own).
        sent = await self._send("POST", "files", operation="upload the reference image",
                                files={"content": (image.filename, image.data, image.content_type)})
        url = as_dict(as_dict(sent.data).get("urls")).get("get")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise DownloadError("Replicate's answer to the image upload has no URL. Fix: pass the image's https:// "
                                "URL instead of the file.")
        return url

    def parse_job(self, data: dict[str, Any], *, handle: str | None) -> Video:
        return to_video(data, handle=handle)

    def poll_path(self, handle: str) -> str:
        return f"predictions/{quote(handle, safe='')}"

    async def delete(self, video_id: str) -> DeletedVideo:
        """Cancel a prediction (Replicate bills a cancelled public-model prediction for the time it ran)."""
        sent = await self._send("POST", f"predictions/{quote(check_id(video_id), safe='')}/cancel",
                                operation="cancel video")
        return DeletedVideo(id=video_id, deleted=as_dict(sent.data).get("status") == "canceled")

    async def download(
        self, video_id: str, dest: str | os.PathLike[str], *, variant: Variant = "video",
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Download the output; an output Replicate has already deleted is said to have expired."""
        if variant == "video" and video_id not in self._assets:
            video, _ = await self.poll(video_id)  # a resume: the prediction says whether its output still exists
            if video.status == "expired":
                raise DownloadError(f"download {video_id}: {_EXPIRED}")
        try:
            return await super().download(video_id, dest, variant=variant, on_progress=on_progress)
        except APIError as exc:
            if exc.status_code in (403, 404, 410) and not self._same_origin(self._assets.get(video_id, "")):
                raise DownloadError(f"download {video_id}: {_EXPIRED}") from exc
            raise
