"""xAI's video API, simulated: deferred requests as xAI's REST reference and video guides describe them.

Source: docs.x.ai/developers/rest-api-reference ("Video generation /v1/videos/generations", "Video edit
/v1/videos/edits", "Get video generation results /v1/videos/{request_id}") and
docs.x.ai/developers/model-capabilities/video (generation, editing, extension), read November 2026.

* ``POST /v1/videos/generations``: ``prompt``, ``model`` (``grok-imagine-video``), ``duration`` 1-15
  (default 8), ``aspect_ratio`` (``16:9 9:16 1:1 4:3 3:4 3:2 2:3``), ``resolution`` (``480p``,
  ``720p``), ``image: {url}``. Answers ``{"request_id"}``.
* ``POST /v1/videos/edits`` (``prompt``, ``video: {url}``) and ``/v1/videos/extensions`` (plus
  ``duration``): the source is an xAI video URL. Answer ``{"request_id"}`` too.
* ``GET /v1/videos/{request_id}``: ``{"status": "pending", "progress"}`` until ``done`` (with ``video:
  {url, duration, respect_moderation}``, ``usage: {cost_in_usd_ticks}``), ``failed`` (with ``error:
  {code, message}``) or ``expired``. A moderated video is ``done`` with ``respect_moderation: false`` and
  no url. The url is a temporary link on another host (xAI's CDN, vidgen.x.ai) that needs no key.
* Errors: ``{"code": "<reason>", "error": "<message>"}``. No list, no delete.

Costs: $0.05/s at 480p, $0.07/s at 720p (as listed for grok-imagine-video), in ticks of 1e-10 USD.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..._capabilities import ModelSpec
from ..._catalog import XAI_MODELS
from .._store import Job
from .._validate import RequestError, require_prompt
from ._base import Dialect, cdn_origin, external_id, internal_id, read_json, simulated_cost, size_for

__all__ = ["XAIDialect"]

# The models, sizes, durations and prices are the catalog's (what the client's xai profile checks against).
MODELS = XAI_MODELS
_REASONS = {400: "Client specified an invalid argument", 401: "Request is not authenticated",
            404: "Some requested entity was not found", 429: "Too many requests"}
_BUCKET = "/xai-vidgen-bucket/"
_EXTEND_SECONDS = 6  # an extension's duration when the request names none
_XAI_ASPECTS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3")


def _spec(model: str) -> ModelSpec:
    return MODELS.get(model) or MODELS[next(iter(MODELS))]  # an unknown model (not strict): like grok


class XAIDialect(Dialect):
    name: ClassVar[str] = "xai"
    api_prefix: ClassVar[str] = "/v1"

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos/generations", self.generate, methods=["POST"]),
            Route("/v1/videos/edits", self.edit, methods=["POST"]),
            Route("/v1/videos/extensions", self.extend, methods=["POST"]),
            Route("/v1/videos/{request_id}", self.retrieve, methods=["GET"]),
            Route(_BUCKET + "{name}", self.cdn, methods=["GET"]),
        ]

    def error_body(self, error: RequestError) -> dict[str, Any]:
        return {"code": _REASONS.get(error.status, "Internal error"), "error": error.message}

    def is_create(self, method: str, path: str) -> bool:
        return method == "POST" and path in ("/v1/videos/generations", "/v1/videos/edits", "/v1/videos/extensions")

    async def _json(self, request: Request) -> dict[str, Any]:
        return await read_json(request, unreadable="Failed to parse the request body as JSON.", not_object=422)

    def _duration(self, body: dict[str, Any], default: int | None, model: str) -> int:
        duration = body.get("duration", default)
        allowed = _spec(model).seconds or ()
        if isinstance(duration, bool) or not isinstance(duration, int) or str(duration) not in allowed:
            raise RequestError(400, f"duration must be an integer in [{allowed[0]}, {allowed[-1]}], got {duration!r}.",
                               param="duration")
        return duration

    def _model(self, body: dict[str, Any]) -> str:
        model = body.get("model") or next(iter(MODELS))
        if model not in MODELS and self.config.strict_models:
            raise RequestError(404, f"The model {model} does not exist or your team does not have access to it.")
        return str(model)

    def _source(self, body: dict[str, Any]) -> Job:
        video = body.get("video")
        url = video.get("url") if isinstance(video, dict) else None
        if not isinstance(url, str) or not url:
            raise RequestError(422, "video.url is required.", param="video")
        path = urlsplit(url).path
        job = None
        if path.startswith(_BUCKET + "xai-video-") and path.endswith(".mp4"):
            job = self.job(internal_id(path[len(_BUCKET + "xai-video-"):-4]))
        if job is None or job.state(self.state.clock())[0] != "completed":
            raise RequestError(400, f"Could not fetch the video at {url}.", param="video")
        return job

    async def generate(self, request: Request) -> Response:
        body = await self._json(request)
        prompt = require_prompt(body)
        model = self._model(body)
        duration = self._duration(body, 8, model)
        aspect, resolution = body.get("aspect_ratio") or "16:9", body.get("resolution") or "480p"
        if aspect not in _XAI_ASPECTS:
            raise RequestError(400, f"aspect_ratio must be one of {', '.join(_XAI_ASPECTS)}.", param="aspect_ratio")
        size = size_for(_spec(model).sizes, str(aspect), str(resolution))
        if size is None:
            raise RequestError(400, "resolution must be one of 480p, 720p.", param="resolution")
        image = body.get("image")
        if image is not None and not (isinstance(image, dict) and isinstance(image.get("url"), str)):
            raise RequestError(422, "image must be an object with a url.", param="image")
        job = self.new_job(request, "create", model=model, size=size, seconds=duration,
                           prompt=prompt, extra={"resolution": resolution})
        return self.accepted(request, {"request_id": external_id(job.id)})

    async def edit(self, request: Request) -> Response:
        body = await self._json(request)
        prompt = require_prompt(body)
        source = self._source(body)
        job = self.new_job(request, "remix", model=source.model, size=source.size, seconds=source.seconds,
                           prompt=prompt, segments=((prompt, source.seconds),), source_video_id=source.id,
                           extra={"resolution": source.extra.get("resolution", "480p")})
        return self.accepted(request, {"request_id": external_id(job.id)})

    async def extend(self, request: Request) -> Response:
        body = await self._json(request)
        prompt = require_prompt(body)
        source = self._source(body)
        duration = self._duration(body, _EXTEND_SECONDS, source.model)
        job = self.new_job(request, "extend", model=source.model, size=source.size,
                           seconds=source.seconds + duration, generate_seconds=duration, prompt=prompt,
                           segments=(*source.segments, (prompt, duration)), source_video_id=source.id,
                           extension_count=source.extension_count + 1,
                           extra={"resolution": source.extra.get("resolution", "480p")})
        return self.accepted(request, {"request_id": external_id(job.id)})

    async def retrieve(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        job = self.job(internal_id(request_id))
        if job is None:
            raise RequestError(404, f"No video generation request with id {request_id}.")
        status, progress = job.state(self.state.clock())
        answer: dict[str, Any] = {"model": job.model}
        if status in ("queued", "in_progress"):
            answer.update(status="pending", progress=progress)
        elif status == "failed" and job.plan.error_code == "moderation_blocked":
            answer.update(status="done", progress=100, video={"duration": 0, "respect_moderation": False})
        elif status == "failed":
            answer.update(status="failed", error={"code": job.plan.error_code or "internal_error",
                                                  "message": job.plan.error_message or "Video generation failed."})
        elif self.expired(job):
            answer.update(status="expired")
        else:
            generated = job.segments[-1][1] if job.kind == "extend" else job.seconds  # billed: the new part
            ticks = round(simulated_cost(_spec(job.model), job.size, generated, 0.05) * 1e10)
            url = f"{cdn_origin(request)}{_BUCKET}xai-video-{external_id(job.id)}.mp4"
            answer.update(status="done", progress=100, usage={"cost_in_usd_ticks": ticks},
                          video={"url": url, "duration": job.seconds, "respect_moderation": True})
        return JSONResponse(answer)

    async def cdn(self, request: Request) -> Response:
        name = request.path_params["name"]
        job = None
        if name.startswith("xai-video-") and name.endswith(".mp4"):
            job = self.job(internal_id(name[len("xai-video-"):-4]))
        if job is None or job.state(self.state.clock())[0] != "completed" or self.expired(job):
            return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404, media_type="application/xml")
        self.log_asset(request)
        return await self.video_file(job)
