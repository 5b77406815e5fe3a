"""Veo on the Gemini API, simulated: long-running operations as Google's Veo guide describes them.

Source: ai.google.dev/gemini-api/docs/video (REST examples) and the Gemini API's long-running operation and
error references, read November 2026.

* ``POST /v1beta/models/{model}:predictLongRunning`` (key in ``x-goog-api-key`` or ``?key=``):
  ``{"instances": [{"prompt", "image": {"bytesBase64Encoded", "mimeType"}}], "parameters":
  {"aspectRatio": "16:9"|"9:16", "resolution": "720p"|"1080p"|"4k", "durationSeconds": 4|6|8,
  "negativePrompt", "personGeneration"}}``; 1080p and 4k only at 8 s. Answers ``{"name":
  "models/{model}/operations/{id}"}``.
* ``GET /v1beta/{name}``: ``{"name"}`` while running; then ``done: true`` with ``error: {code, message}``
  or ``response.generateVideoResponse.generatedSamples[0].video.uri`` (a Files API link on the same host,
  ``/v1beta/files/{id}:download?alt=media``, which needs the key and redirects to storage on another
  host). Filtered videos: ``raiMediaFilteredCount`` and ``raiMediaFilteredReasons`` instead of samples.
* Errors: ``{"error": {"code": <http status>, "message", "status": "INVALID_ARGUMENT"...}}``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..._catalog import GEMINI_MODELS
from .._validate import RequestError
from ._base import Dialect, api_origin, cdn_origin, size_for

__all__ = ["GeminiDialect"]

# The models, sizes and durations are the catalog's (what the client's gemini profile checks against).
MODELS = GEMINI_MODELS
_PARAMETERS = ("aspectRatio", "resolution", "durationSeconds", "negativePrompt", "personGeneration",
               "numberOfVideos", "generateAudio")
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}


def _op_id(job_id: str) -> str:
    return job_id.removeprefix("video_")


class GeminiDialect(Dialect):
    name: ClassVar[str] = "gemini"
    api_prefix: ClassVar[str] = "/v1beta"

    def routes(self) -> list[Route]:
        return [
            Route("/v1beta/models/{target}", self.predict, methods=["POST"]),
            Route("/v1beta/models/{model}/operations/{op}", self.operation, methods=["GET"]),
            Route("/v1beta/files/{target}", self.download, methods=["GET"]),
            Route("/gemini-files/{name}", self.storage, methods=["GET"]),
        ]

    def error_body(self, error: RequestError) -> dict[str, Any]:
        return {"error": {"code": error.status, "message": error.message,
                          "status": _STATUS.get(error.status, "UNKNOWN")}}

    def api_key(self, request_headers: Headers, query: dict[str, str]) -> str | None:
        return request_headers.get("x-goog-api-key") or query.get("key") or None

    def is_create(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith(":predictLongRunning")

    async def predict(self, request: Request) -> Response:
        model, _, action = request.path_params["target"].partition(":")
        if action != "predictLongRunning":
            raise RequestError(404, f"Method {action or '(none)'} is not found for models/{model}.")
        if model not in MODELS and self.config.strict_models:
            raise RequestError(404, f"models/{model} is not found for API version v1beta, or is not supported "
                                    "for predictLongRunning. Call ListModels to see the list of available models.")
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise RequestError(400, "Invalid JSON payload received.") from None
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
            raise RequestError(400, "instances must hold exactly one instance.")
        prompt = instances[0].get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise RequestError(400, "A prompt is required: instances[0].prompt.")
        image = instances[0].get("image")
        if image is not None and not (isinstance(image, dict) and image.get("bytesBase64Encoded")
                                      and image.get("mimeType")):
            raise RequestError(400, "instances[0].image needs bytesBase64Encoded and mimeType.")
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise RequestError(400, "parameters must be an object.")
        for name in parameters:
            if name not in _PARAMETERS:
                raise RequestError(400, f'Invalid JSON payload received. Unknown name "{name}" at \'parameters\': '
                                        "Cannot find field.")
        aspect = parameters.get("aspectRatio", "16:9")
        resolution = parameters.get("resolution", "720p")
        try:
            duration = int(parameters.get("durationSeconds", 8))
        except (TypeError, ValueError):
            raise RequestError(400, "durationSeconds must be a number.") from None
        spec = MODELS.get(model) or MODELS[next(iter(MODELS))]  # an unknown model (not strict): like Veo
        allowed = spec.seconds or ()
        if str(duration) not in allowed:
            raise RequestError(400, f"durationSeconds must be one of {', '.join(allowed)}, got {duration}.")
        size = size_for(spec.sizes, str(aspect), str(resolution))
        if size is None:
            raise RequestError(400, "aspectRatio must be 16:9 or 9:16, and resolution 720p, 1080p or 4k.")
        at_size = spec.seconds_at(size) or allowed
        if str(duration) not in at_size:
            raise RequestError(400, f"{resolution} videos must be {' or '.join(at_size)} seconds long "
                                    f"(durationSeconds: {at_size[0]}).")
        job = self.new_job(request, "create", model=model, size=size, seconds=duration, prompt=prompt)
        return self.accepted(request, {"name": f"models/{model}/operations/{_op_id(job.id)}"})

    async def operation(self, request: Request) -> Response:
        model, op = request.path_params["model"], request.path_params["op"]
        name = f"models/{model}/operations/{op}"
        job = self.job("video_" + op)
        if job is None or job.model != model:
            raise RequestError(404, f"Operation {name} not found.")
        status, _ = job.state(self.state.clock())
        answer: dict[str, Any] = {"name": name}
        if status == "failed" and job.plan.error_code == "moderation_blocked":
            answer.update(done=True, response={
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": {"raiMediaFilteredCount": 1,
                                          "raiMediaFilteredReasons": [job.plan.error_message or "filtered"]}})
        elif status == "failed":
            answer.update(done=True, error={"code": 13, "message": job.plan.error_message or "Internal error."})
        elif status == "completed":
            uri = f"{api_origin(request)}/v1beta/files/{op[:16]}-{op[16:]}:download?alt=media"
            answer.update(done=True, response={
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}})
        return JSONResponse(answer)

    def _file_job(self, file_id: str) -> Any:
        job = self.job("video_" + file_id.replace("-", ""))
        if job is None or job.state(self.state.clock())[0] != "completed" or self.expired(job):
            raise RequestError(404, f"File {file_id} not found.")
        return job

    async def download(self, request: Request) -> Response:
        file_id, _, action = request.path_params["target"].partition(":")
        if action != "download":
            raise RequestError(404, f"files/{file_id}: only :download is simulated.")
        self._file_job(file_id)
        return RedirectResponse(f"{cdn_origin(request)}/gemini-files/{file_id}.mp4?expires=3600", status_code=302)

    async def storage(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.log_asset(request)
        try:
            job = self._file_job(name.removesuffix(".mp4"))
        except RequestError:
            return Response("Not Found", status_code=404, media_type="text/plain")
        return await self.video_file(job)
