"""OpenRouter's video API, simulated: ``/api/v1/videos`` as OpenRouter's API reference describes it.

Source: openrouter.ai/docs/api/api-reference/video-generation (submit, poll, download, list models) and
openrouter.ai/docs/api/reference/errors-and-debugging, read November 2026.

* ``POST /api/v1/videos`` takes JSON only (``model``, ``prompt``, ``duration``, ``resolution``,
  ``aspect_ratio``, ``size``, ``seed``, ``frame_images``, ``generate_audio``...) and answers **202**
  ``{id, polling_url, status: "pending", generation_id}``; ``polling_url`` is relative.
* ``GET /api/v1/videos/{id}``: ``pending -> in_progress -> completed | failed`` (``expired`` once the
  assets are gone; ``cancelled`` exists but nothing here cancels); no progress; ``error`` a string; when
  completed ``unsigned_urls: [".../api/v1/videos/{id}/content?index=0"]`` and ``usage: {cost, is_byok}``.
* ``GET /api/v1/videos/{id}/content?index=0`` streams ``video/mp4`` and needs the Bearer key.
* ``GET /api/v1/videos/models`` lists the models with their supported durations, resolutions, ratios.
* Errors: ``{"error": {"code": <http status>, "message": ...}}``. No list of jobs, no delete.

The simulated costs use OpenRouter's published example SKU prices; they are not a price list.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..._capabilities import ModelSpec
from ..._catalog import OPENROUTER_MODELS
from .._validate import RequestError, require_prompt
from ._base import Dialect, api_origin, aspect_and_resolution, external_id, internal_id, simulated_cost, size_for

__all__ = ["OpenRouterDialect"]

# The models, sizes and durations are the catalog's (what the client's openrouter profile checks against);
# OpenRouter publishes no price table the catalog could hold, so jobs are billed at example SKU rates.
MODELS = OPENROUTER_MODELS
_EXAMPLE_USD_PER_SECOND = {"google/veo-3.1": 0.50, "google/veo-3.1-fast": 0.15, "alibaba/wan-2.6": 0.04,
                           "bytedance/seedance-2.0": 0.10}
_WORDS = {"queued": "pending", "in_progress": "in_progress", "completed": "completed", "failed": "failed"}


def _described(spec: ModelSpec) -> dict[str, list[Any]]:
    """The model's entry of ``GET /videos/models``: its durations, resolutions and aspect ratios."""
    named = [pair for pair in map(aspect_and_resolution, spec.sizes or ()) if pair is not None]
    return {"supported_durations": [int(s) for s in spec.seconds or ()],
            "supported_resolutions": list(dict.fromkeys(resolution for _, resolution in named)),
            "supported_aspect_ratios": list(dict.fromkeys(aspect for aspect, _ in named))}


class OpenRouterDialect(Dialect):
    name: ClassVar[str] = "openrouter"
    api_prefix: ClassVar[str] = "/api/v1"

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/videos", self.create, methods=["POST"]),
            Route("/api/v1/videos/models", self.models, methods=["GET"]),
            Route("/api/v1/videos/{job_id}", self.retrieve, methods=["GET"]),
            Route("/api/v1/videos/{job_id}/content", self.content, methods=["GET"]),
        ]

    def error_body(self, error: RequestError) -> dict[str, Any]:
        body: dict[str, Any] = {"code": error.status, "message": error.message}
        if error.param:
            body["metadata"] = {"param": error.param}
        return {"error": body}

    def is_create(self, method: str, path: str) -> bool:
        return method == "POST" and path == "/api/v1/videos"

    async def create(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise RequestError(400, "Request body must be JSON (Content-Type: application/json).")
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise RequestError(400, "Invalid JSON in request body.") from None
        if not isinstance(body, dict):
            raise RequestError(400, "Request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError(400, "Missing required parameter: model.", param="model")
        prompt = require_prompt(body)
        spec = MODELS.get(model)
        if spec is None:
            raise RequestError(400, f"Model {model} is not a video generation model. See GET /api/v1/videos/models.",
                               param="model")
        described = _described(spec)
        duration = body.get("duration", int((spec.seconds or ("8",))[-1]))
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
            raise RequestError(400, f"duration must be an integer >= 1, got {duration!r}.", param="duration")
        resolution = body.get("resolution", (described["supported_resolutions"] or ["720p"])[0])
        aspect = body.get("aspect_ratio", (described["supported_aspect_ratios"] or ["16:9"])[0])
        for name, value in (("duration", duration), ("resolution", resolution), ("aspect_ratio", aspect)):
            allowed = described[f"supported_{name}s"]
            if allowed and value not in allowed:
                raise RequestError(400, f"{model} does not support {name}={value!r}. "
                                        f"Supported: {', '.join(map(str, allowed))}.", param=name)
        size = size_for(spec.sizes, str(aspect), str(resolution))
        if size is None:
            raise RequestError(400, f"{model} does not support aspect_ratio={aspect!r} at resolution={resolution!r}.",
                               param="aspect_ratio")
        at_size = spec.seconds_at(size)
        if at_size and str(duration) not in at_size:
            raise RequestError(400, f"{model} does not support duration={duration!r} at {resolution}. "
                                    f"Supported: {', '.join(at_size)}.", param="duration")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise RequestError(400, "seed must be an integer.", param="seed")
        cost = simulated_cost(spec, size, duration, _EXAMPLE_USD_PER_SECOND.get(model, 0.10))
        job = self.new_job(request, "create", model=model, size=size, seconds=duration, prompt=prompt,
                           extra={"cost": cost})
        job_id = external_id(job.id)
        return self.accepted(request, {"id": job_id, "polling_url": f"/api/v1/videos/{job_id}",
                                       "status": "pending", "generation_id": f"gen-{job_id[:13]}"}, 202)

    async def retrieve(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = self.job(internal_id(job_id))
        if job is None:
            raise RequestError(404, f"Video generation job {job_id} not found.")
        status, _ = job.state(self.state.clock())
        answer: dict[str, Any] = {"id": job_id, "polling_url": f"/api/v1/videos/{job_id}",
                                  "status": _WORDS[status], "generation_id": f"gen-{job_id[:13]}"}
        if status == "completed" and self.expired(job):
            answer["status"] = "expired"
        elif status == "completed":
            answer["unsigned_urls"] = [f"{api_origin(request)}/api/v1/videos/{job_id}/content?index=0"]
            answer["usage"] = {"cost": job.extra.get("cost", 0.0), "is_byok": False}
        elif status == "failed":
            answer["error"] = job.plan.error_message or "Video generation failed."
        return JSONResponse(answer)

    async def content(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = self.job(internal_id(job_id))
        if job is None:
            raise RequestError(404, f"Video generation job {job_id} not found.")
        index = request.query_params.get("index", "0")
        if index != "0":
            raise RequestError(404, f"No output with index {index} for job {job_id}.", param="index")
        status, _ = job.state(self.state.clock())
        if status != "completed":
            raise RequestError(400, f"Video generation job {job_id} is {_WORDS[status]}, not completed.")
        if self.expired(job):
            raise RequestError(404, f"The outputs of job {job_id} have expired.")
        self.log_asset(request)
        return await self.video_file(job)

    async def models(self, request: Request) -> Response:
        del request
        data = [{"id": name, **_described(spec),
                 "pricing_skus": {"per-video-second": f"{_EXAMPLE_USD_PER_SECOND.get(name, 0.10):.2f}"}}
                for name, spec in MODELS.items()]
        return JSONResponse({"data": data})
