"""Veo on the Gemini API (``https://generativelanguage.googleapis.com/v1beta``) in the toolkit's vocabulary.

From Google's Gemini API guide "Generate videos with Veo 3.1" (ai.google.dev/gemini-api/docs/video, its
REST tab) and the long-running operations reference, read November 2026, cross-checked against LiteLLM's
Gemini video transformation (BerriAI/litellm ``litellm/llms/gemini/videos/transformation.py``):

* ``POST /models/{model}:predictLongRunning`` with header ``x-goog-api-key``: ``{"instances": [{"prompt",
  "image": {"bytesBase64Encoded", "mimeType"}}], "parameters": {"aspectRatio": "16:9"|"9:16",
  "resolution": "720p"|"1080p"|"4k", "durationSeconds": 4|6|8, "negativePrompt", ...}}``. Answers a
  long-running operation ``{"name": "models/{model}/operations/{id}"}``.
* ``GET /{operation name}`` until ``done: true``; then either ``error: {code, message}`` (google.rpc.Status)
  or ``response.generateVideoResponse.generatedSamples[].video.uri``: a Files API download link on the
  same host that needs the key (and redirects to storage, which must not get it). No status words, no
  progress, no cost in the answer (priced per second: see the profile).
* No list, delete, remix or thumbnail for these operations. Errors: ``{"error": {"code", "message",
  "status"}}``.

>>> to_video({"name": "models/veo/operations/1", "done": False}, handle=None).status
'in_progress'
"""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar
from urllib.parse import urljoin

from .._errors import ValidationError
from .._types import Video, VideoError
from .._validation import ImageReference
from ._base import ProviderClient, as_dict, error_from
from ._shapes import aspect_and_resolution

__all__ = ["GeminiClient", "build_body", "to_video"]

_OPERATION = re.compile(r"^(models/[A-Za-z0-9._-]+/)?operations/[A-Za-z0-9._-]+$")
_MODEL = re.compile(r"^[A-Za-z0-9._-]+$")


def build_body(
    params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *, extra: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body of ``predictLongRunning`` (pure); ``extra`` goes into ``parameters``.

    >>> build_body({"prompt": "p", "size": "720x1280", "seconds": "8"}, None, extra={"negativePrompt": "rain"})
    {'instances': [{'prompt': 'p'}], 'parameters': {'aspectRatio': '9:16', 'resolution': '720p', \
'durationSeconds': 8, 'negativePrompt': 'rain'}}
    """
    aspect, resolution = aspect_and_resolution(params["size"])
    instance: dict[str, Any] = {"prompt": params["prompt"]}
    if isinstance(reference, ImageReference):
        instance["image"] = {"bytesBase64Encoded": base64.b64encode(reference.data).decode("ascii"),
                             "mimeType": reference.content_type}
    elif reference is not None:
        raise ValidationError("Veo on the Gemini API takes a reference image as a file, not a URL or file id. "
                              "Fix: pass the image's path.", field="input_reference")
    parameters = {"aspectRatio": aspect, "resolution": resolution, "durationSeconds": int(params["seconds"])}
    return {"instances": [instance], "parameters": {**parameters, **extra}}


def to_video(data: dict[str, Any], *, handle: str | None) -> Video:
    """A long-running operation as a :class:`Video` (pure).

    >>> v = to_video({"name": "models/m/operations/1", "done": True, "response": {"generateVideoResponse": {
    ...     "generatedSamples": [{"video": {"uri": "https://g.example/v1beta/files/f:download?alt=media"}}]}}},
    ...     handle=None)
    >>> v.status, v.extra["asset_url"]
    ('completed', 'https://g.example/v1beta/files/f:download?alt=media')
    """
    done = data.get("done") is True
    extra: dict[str, Any] = {"service": "gemini"}
    error: Any = None
    if not done:
        status = "in_progress"
    elif data.get("error"):
        status, error = "failed", error_from(data["error"])
    else:
        generated = as_dict(as_dict(data.get("response")).get("generateVideoResponse"))
        samples = generated.get("generatedSamples") or [{}]
        uri = as_dict(as_dict(samples[0]).get("video")).get("uri")
        if isinstance(uri, str) and uri:
            status = "completed"
            extra["asset_url"] = uri
        else:
            reasons = generated.get("raiMediaFilteredReasons") or ["the operation finished without a video"]
            status, error = "failed", {"code": "content_filtered", "message": "; ".join(map(str, reasons))}
    return Video(
        id=str(data.get("name") or handle or ""),
        status=status,  # type: ignore[arg-type]
        status_raw="done" if done else "running",
        progress=None,
        error=VideoError.parse(error),
        extra=extra,
    )


class GeminiClient(ProviderClient):
    """Veo through the Gemini API: a long-running operation per video, the key in ``x-goog-api-key``."""

    name: ClassVar[str] = "Gemini"

    id_segments: ClassVar[bool] = True

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def build_create(
        self, params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *,
        seed: int | None, extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        if seed is not None:
            raise ValidationError("Veo on the Gemini API takes no seed (Vertex AI does). Fix: drop seed=.",
                                  field="seed")
        if not _MODEL.match(params["model"]):
            raise ValidationError(f"model={params['model']!r} is not a Gemini model name. "
                                  "Fix: e.g. model='veo-3.1-fast-generate-preview'.", field="model")
        url = urljoin(self.base_url, f"models/{params['model']}:predictLongRunning")
        return url, {"json": build_body(params, reference, extra=extra)}

    def parse_job(self, data: dict[str, Any], *, handle: str | None) -> Video:
        return to_video(data, handle=handle)

    def poll_path(self, handle: str) -> str:
        if not _OPERATION.match(handle):
            raise ValidationError(f"{handle!r} is not a Gemini operation name. "
                                  "Fix: pass the name create returned (models/.../operations/...).", field="id")
        return handle
