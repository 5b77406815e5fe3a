"""Replicate's predictions API, simulated: predictions for a model, deployment or version; files; outputs that
expire an hour after they are made.

Source: replicate.com/docs/reference/http, replicate.com/docs/topics/predictions/lifecycle and
.../data-retention, and the official client (github.com/replicate/replicate-python @0110c2c: ``prediction.py``,
``model.py``, ``deployment.py``, ``file.py``), read 2026-12-01.

* ``POST /v1/models/{owner}/{name}/predictions``, ``POST /v1/deployments/{owner}/{name}/predictions``, or
  ``POST /v1/predictions`` with ``version``: ``{"input": {...}}``. Answers 201 with the prediction.
* ``GET /v1/predictions/{id}``: ``{id, model, version, input, logs, output, data_removed, error, status,
  created_at, started_at, completed_at, urls: {get, cancel, stream}, metrics: {predict_time}}``; status
  ``starting`` -> ``processing`` -> ``succeeded`` | ``failed`` | ``canceled`` (``aborted`` is not simulated).
* ``POST /v1/predictions/{id}/cancel`` answers the prediction, ``canceled``.
* ``POST /v1/files`` (multipart ``content``) answers ``{id, name, content_type, size, urls: {get}}``.
* Outputs are served from another host (``replicate.delivery``) without a key, and are deleted an hour after
  the prediction was made (``asset_ttl`` when set): then the link answers 404, and the prediction reads
  ``output: null, data_removed: true``.
* Errors: RFC 7807 ``{"title", "detail", "status"}``.

Not simulated: ``Prefer: wait``, ``Cancel-After`` deadlines, webhooks, streaming, billing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..._catalog import REPLICATE_MODELS
from .._store import Job
from .._validate import RequestError, require_prompt
from ._base import RATIOS, Dialect, api_origin, cdn_origin, external_id, internal_id, read_json, size_of

__all__ = ["OUTPUT_LIFETIME_S", "ReplicateDialect"]

OUTPUT_LIFETIME_S = 3600.0
"""Replicate deletes an API prediction's outputs (and inputs, and files) an hour after it is made."""

MODELS = REPLICATE_MODELS
"""The catalog's models (the profile's own table); their sizes and durations are not known there, so any
aspect ratio, resolution and duration in the API's bounds are taken."""
_RATIOS = {name: RATIOS[name] for name in ("16:9", "9:16", "1:1")}
_SIDES = {"480p": 480, "720p": 720, "1080p": 1080}
_TITLES = {400: "Bad Request", 401: "Unauthenticated", 404: "Not found", 422: "Input validation failed",
           429: "Request was throttled"}


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat().replace("+00:00", "Z")


class ReplicateDialect(Dialect):
    name: ClassVar[str] = "replicate"
    api_prefix: ClassVar[str] = "/v1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cancelled: set[str] = set()
        self.files: set[str] = set()
        self.lifetime = self.config.asset_ttl if self.config.asset_ttl is not None else OUTPUT_LIFETIME_S

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models/{owner}/{name}/predictions", self.create_for_model, methods=["POST"]),
            Route("/v1/deployments/{owner}/{name}/predictions", self.create_for_deployment, methods=["POST"]),
            Route("/v1/predictions", self.create_for_version, methods=["POST"]),
            Route("/v1/predictions/{prediction_id}", self.retrieve, methods=["GET"]),
            Route("/v1/predictions/{prediction_id}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/files", self.upload, methods=["POST"]),
            Route("/delivery/{prediction_id}/output.mp4", self.delivery, methods=["GET"]),
        ]

    def is_create(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith("/predictions")

    def error_body(self, error: RequestError) -> dict[str, Any]:
        return {"title": _TITLES.get(error.status, "Internal Server Error"), "detail": error.message,
                "status": error.status}

    # ------------------------------------------------------------------ creates
    async def create_for_model(self, request: Request) -> Response:
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        if model not in MODELS and self.config.strict_models:
            raise RequestError(404, f"The requested model {model} was not found.")
        return await self._create(request, model, version="", body=await read_json(request))

    async def create_for_deployment(self, request: Request) -> Response:
        # A deployment serves one of the models: the simulator serves the first one under the deployment's name.
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        return await self._create(request, model, version="", body=await read_json(request))

    async def create_for_version(self, request: Request) -> Response:
        body = await read_json(request)
        version = body.get("version")
        if not isinstance(version, str) or not version:
            raise RequestError(422, "version is required.", param="version")
        return await self._create(request, "replicate/versioned", version=version, body=body)

    async def _create(self, request: Request, model: str, *, version: str, body: dict[str, Any]) -> Response:
        payload = body.get("input")
        if not isinstance(payload, dict):
            raise RequestError(422, "input is required and must be an object.", param="input")
        prompt = require_prompt(payload)
        duration = payload.get("duration", 8)
        if isinstance(duration, bool) or not isinstance(duration, int) or not 1 <= duration <= 20:
            raise RequestError(422, f"duration: must be an integer from 1 to 20, got {duration!r}.", param="duration")
        ratio, resolution = payload.get("aspect_ratio", "16:9"), payload.get("resolution", "720p")
        if ratio not in _RATIOS:
            raise RequestError(422, f"aspect_ratio: must be one of {', '.join(_RATIOS)}.", param="aspect_ratio")
        if resolution not in _SIDES:
            raise RequestError(422, f"resolution: must be one of {', '.join(_SIDES)}.", param="resolution")
        for field in ("image", "start_image", "first_frame_image"):
            value = payload.get(field)
            if value is not None and not (isinstance(value, str) and self._readable(request, value)):
                raise RequestError(422, f"{field}: the file could not be read ({str(value)[:60]!r}).", param=field)
        job = self.new_job(request, "create", model=model, size=size_of(*_RATIOS[ratio], _SIDES[resolution]),
                           seconds=duration, prompt=prompt, extra={"version": version or "0" * 64,
                                                                   "input": {"prompt": prompt}})
        return self.accepted(request, self._prediction(request, job), status_code=201)

    def _readable(self, request: Request, url: str) -> bool:
        if url.startswith("data:image/"):
            return True
        prefix = f"{api_origin(request)}/v1/files/"
        if url.startswith(prefix):  # an upload of this server's: it must exist
            return url[len(prefix):] in self.files
        return url.startswith(("https://", "http://"))  # any other link is fetched by the model (not simulated)

    # ------------------------------------------------------------------ the prediction
    def _prediction(self, request: Request, job: Job) -> dict[str, Any]:
        now = self.state.clock()
        status, _ = job.state(now)
        pid = external_id(job.id)
        api = f"{api_origin(request)}/v1/predictions/{pid}"
        word = {"queued": "starting", "in_progress": "processing", "completed": "succeeded"}.get(status, status)
        plan = job.plan
        gone = now >= plan.created_at + self.lifetime
        answer: dict[str, Any] = {
            "id": pid, "model": job.model, "version": job.extra.get("version"),
            "input": None if gone else job.extra.get("input"), "logs": "", "output": None, "data_removed": gone,
            "error": None, "status": word, "created_at": _iso(plan.created_at),
            "started_at": _iso(plan.started_at) if status != "queued" else None, "completed_at": None,
            "urls": {"get": api, "cancel": f"{api}/cancel", "stream": f"{api}/stream"}, "metrics": {},
        }
        if job.id in self.cancelled:
            answer.update(status="canceled", completed_at=_iso(now))
        elif status == "completed":
            answer.update(completed_at=_iso(plan.finished_at), metrics={"predict_time": round(plan.run_s, 3)})
            if not gone:
                answer["output"] = f"{cdn_origin(request)}/delivery/{pid}/output.mp4"
        elif status == "failed":
            answer.update(completed_at=_iso(plan.finished_at),
                          error=plan.error_message or "Prediction failed for an unknown reason.")
        return answer

    def _job(self, prediction_id: str) -> Job:
        job = self.job(internal_id(prediction_id))
        if job is None:
            raise RequestError(404, "The requested prediction was not found.")
        return job

    async def retrieve(self, request: Request) -> Response:
        return JSONResponse(self._prediction(request, self._job(request.path_params["prediction_id"])))

    async def cancel(self, request: Request) -> Response:
        job = self._job(request.path_params["prediction_id"])
        if job.state(self.state.clock())[0] in ("queued", "in_progress"):
            with self.state.lock:
                self.cancelled.add(job.id)
        return JSONResponse(self._prediction(request, job))

    async def upload(self, request: Request) -> Response:
        async with request.form() as form:  # closed after: the upload's spooled file must not leak
            content = form.get("content")
            if content is None or isinstance(content, str):
                raise RequestError(422, "content: a file is required.", param="content")
            data = await content.read()
        file_id = external_id(self.state.new_request_id().replace("req_", "video_"))
        with self.state.lock:
            self.files.add(file_id)
        return JSONResponse({"id": file_id, "name": content.filename, "content_type": content.content_type,
                             "size": len(data), "urls": {"get": f"{api_origin(request)}/v1/files/{file_id}"}},
                            status_code=201)

    async def delivery(self, request: Request) -> Response:
        self.log_asset(request)
        job = self.job(internal_id(request.path_params["prediction_id"]))
        now = self.state.clock()
        if job is None or job.state(now)[0] != "completed" or now >= job.plan.created_at + self.lifetime:
            return Response("Not Found", status_code=404, media_type="text/plain")
        return await self.video_file(job)
