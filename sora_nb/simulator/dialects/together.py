"""Together AI's video API, simulated: ``/v2/videos`` jobs as Together's API reference describes them.

Source: docs.together.ai/reference/create-videos (and retrieve), docs.together.ai/docs/inference/videos
(overview, parameters), read November 2026.

* ``POST /v2/videos`` (JSON): ``model`` (required), ``prompt``, ``width``, ``height``, ``seconds`` (a
  string), ``fps``, ``steps`` (10-50), ``seed``, ``guidance_scale``, ``negative_prompt``, ``output_format``,
  ``output_quality``. Answers the job ``{id, object: "video", model, status: "in_progress", created_at,
  size, seconds}``.
* ``GET /v2/videos/{id}``: ``in_progress`` (no ``queued``) until ``completed`` (``outputs: {cost,
  video_url}``, ``completed_at``) or ``failed`` (``error: {message, code}``). ``video_url`` is a short link
  on another host (``api.together.ai/shrt/...``) that redirects to the file; neither needs the key.
* Errors: OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``. No list, no delete.

Simulated costs are $0.05 per generated second for every model: a placeholder, not Together's prices.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..._catalog import TOGETHER_MODELS
from .._store import Job
from .._validate import RequestError, require_prompt
from ._base import Dialect, api_origin, cdn_origin, external_id, internal_id, simulated_cost

__all__ = ["TogetherDialect"]

# The models are the catalog's (what the client's together profile offers); their sizes, durations and prices
# are not known there, so any width, height and seconds in the API's bounds are taken, and billed at a
# placeholder rate.
MODELS = TOGETHER_MODELS
_DEFAULT_SECONDS = {"google/veo-3.0": "8", "minimax/video-01-director": "6"}
"""What the service does when a request names no ``seconds`` (the toolkit always names it): "5" otherwise."""
_PLACEHOLDER_USD_PER_SECOND = 0.05
_KNOWN = ("model", "prompt", "width", "height", "seconds", "fps", "steps", "seed", "guidance_scale",
          "negative_prompt", "output_format", "output_quality", "frame_images", "reference_images", "media")


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat().replace("+00:00", "Z")


class TogetherDialect(Dialect):
    name: ClassVar[str] = "together"
    api_prefix: ClassVar[str] = "/v2"

    def routes(self) -> list[Route]:
        return [
            Route("/v2/videos", self.create, methods=["POST"]),
            Route("/v2/videos/{job_id}", self.retrieve, methods=["GET"]),
            Route("/shrt/{code}", self.short_link, methods=["GET"]),
            Route("/together-media/{name}", self.media, methods=["GET"]),
        ]

    def is_create(self, method: str, path: str) -> bool:
        return method == "POST" and path == "/v2/videos"

    async def create(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise RequestError(400, "Invalid JSON body.") from None
        if not isinstance(body, dict):
            raise RequestError(400, "The body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError(400, "model is required.", param="model")
        if model not in MODELS and self.config.strict_models:
            raise RequestError(404, f"Unable to access model {model}. Please visit https://api.together.ai/models "
                                    "to view the list of supported models.", param="model", code="model_not_available")
        unknown = [name for name in body if name not in _KNOWN]
        if unknown and self.config.strict_models:
            raise RequestError(400, f"Unknown parameter(s): {', '.join(unknown)}.", param=unknown[0])
        prompt = require_prompt(body)
        width, height = body.get("width", 1280), body.get("height", 720)
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 64 <= value <= 4096:
                raise RequestError(400, f"{name} must be an integer between 64 and 4096.", param=name)
        seconds = body.get("seconds", _DEFAULT_SECONDS.get(model, "5"))
        if not isinstance(seconds, str) or not seconds.isdigit() or not 1 <= int(seconds) <= 20:
            raise RequestError(400, f"seconds must be a string of 1 to 20 whole seconds, got {seconds!r}.",
                               param="seconds")
        steps = body.get("steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 10 <= steps <= 50):
            raise RequestError(400, "steps must be an integer in [10, 50].", param="steps")
        job = self.new_job(request, "create", model=model, size=f"{width}x{height}", seconds=int(seconds),
                           prompt=prompt)
        return self.accepted(request, self._resource(request, job))

    def _resource(self, request: Request, job: Job) -> dict[str, Any]:
        status, _ = job.state(self.state.clock())
        resource: dict[str, Any] = {
            "id": external_id(job.id), "object": "video", "model": job.model,
            "status": "in_progress" if status == "queued" else status,
            "created_at": _iso(job.plan.created_at), "size": job.size, "seconds": str(job.seconds),
        }
        if status == "completed":
            resource["completed_at"] = int(job.plan.finished_at)
            resource["outputs"] = {"cost": simulated_cost(MODELS.get(job.model), job.size, job.seconds,
                                                          _PLACEHOLDER_USD_PER_SECOND),
                                   "video_url": f"{cdn_origin(request)}/shrt/{external_id(job.id)}"}
        elif status == "failed":
            resource["completed_at"] = int(job.plan.finished_at)
            resource["error"] = {"message": job.plan.error_message or "Video generation failed.",
                                 "code": job.plan.error_code or "internal_error"}
        return resource

    async def retrieve(self, request: Request) -> Response:
        job = self.job(internal_id(request.path_params["job_id"]))
        if job is None:
            raise RequestError(404, f"Video job {request.path_params['job_id']} not found.", code="not_found")
        return JSONResponse(self._resource(request, job))

    async def short_link(self, request: Request) -> Response:
        self.log_asset(request)
        job = self.job(internal_id(request.path_params["code"]))
        if job is None or self.expired(job):
            return Response("Not Found", status_code=404, media_type="text/plain")
        # The file sits on the short link's own host.
        return RedirectResponse(f"{api_origin(request)}/together-media/{external_id(job.id)}.mp4", status_code=302)

    async def media(self, request: Request) -> Response:
        self.log_asset(request)
        job = self.job(internal_id(request.path_params["name"].removesuffix(".mp4")))
        if job is None or job.state(self.state.clock())[0] != "completed" or self.expired(job):
            return Response("Not Found", status_code=404, media_type="text/plain")
        return await self.video_file(job)
