"""fal.ai's queue API, simulated: submit, status with queue position, result, cancel, files on a CDN.

Source: docs.fal.ai/model-endpoints/queue and the official client (github.com/fal-ai/fal @c6f0afa,
``projects/fal_client/src/fal_client/client.py``: ``_parse_status``, ``Completed(error, error_type)``,
``cancel`` with ``PUT``), model input schemas from fal.ai/models/<id>/llms.txt, read 2026-12-01.

* ``POST /{model_id}`` (``Authorization: Key ...``), the model's own input: ``prompt``, ``duration``
  (``"5"`` or ``"8s"`` by model), ``aspect_ratio``, ``resolution``, ``image_url`` (image-to-video
  endpoints), ``seed``. Answers ``{request_id, response_url, status_url, cancel_url, queue_position}``;
  the URLs live under the model's app (its first two path segments).
* ``GET /{app}/requests/{id}/status``: ``IN_QUEUE`` with ``queue_position`` (requests ahead of it that are
  still waiting), ``IN_PROGRESS`` with ``logs``, ``COMPLETED``. A request that failed is ``COMPLETED``
  with ``error`` and ``error_type`` (as the client reads it), and its result answers 422 ``{"detail"}``.
* ``GET /{app}/requests/{id}``: ``{"video": {"url", "content_type", "file_name"}}``, the url on another host
  (fal's CDN, ``v3.fal.media``) that needs no key.
* ``PUT /{app}/requests/{id}/cancel``: 202 ``CANCELLATION_REQUESTED`` while it waits, else 400
  ``ALREADY_COMPLETED``. A cancelled request then reads ``COMPLETED`` with an error (not documented by fal:
  this simulator's choice).
* Errors: ``{"detail": "..."}``; invalid input 422 with FastAPI's ``[{loc, msg, type}]``.

Not simulated: logs' content, webhooks, ``X-Fal-Request-Timeout``, streaming status. No costs in answers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..._capabilities import ModelSpec
from ..._catalog import FAL_MODELS
from .._store import Job
from .._validate import RequestError, require_prompt
from ._base import (
    RATIOS,
    Dialect,
    api_origin,
    aspect_and_resolution,
    cdn_origin,
    external_id,
    internal_id,
    read_json,
    size_for,
    size_of,
)

__all__ = ["FalDialect"]

_SECONDS_SUFFIX = {"fal-ai/veo3": "s"}
"""Apps whose ``duration`` is written ``"8s"`` rather than ``"8"`` (fal's model pages)."""
_NO_SIZES = {"ratios": ("16:9",), "resolutions": ("768p",)}
"""Hailuo 02 Standard: 768p, no aspect ratio to choose (its size is not in the catalog)."""


def _wire(model: str, spec: ModelSpec) -> dict[str, Any]:
    """What one model takes in fal's words, from the catalog's :class:`ModelSpec` (the profile's own table)."""
    suffix = _SECONDS_SUFFIX.get("/".join(model.split("/")[:2]), "")
    named = [pair for pair in map(aspect_and_resolution, spec.sizes or ()) if pair is not None]
    shapes = {"ratios": tuple(dict.fromkeys(a for a, _ in named)),
              "resolutions": tuple(dict.fromkeys(r for _, r in named))} if named else _NO_SIZES
    return {"durations": tuple(f"{s}{suffix}" for s in spec.seconds or ()), "sizes": spec.sizes, **shapes}


MODELS: dict[str, dict[str, Any]] = {model: _wire(model, spec) for model, spec in FAL_MODELS.items()}
"""The text-to-video endpoints served (the catalog's), and what each takes (its ``/image-to-video`` sibling
takes the same)."""


def _text_model(endpoint: str) -> str:
    if endpoint.endswith("/image-to-video"):
        base = endpoint.removesuffix("/image-to-video")
        return base if base in MODELS else base + "/text-to-video"
    return endpoint


def _invalid(field: str, message: str) -> RequestError:
    return RequestError(422, message, param=field, code="validation_error")


class FalDialect(Dialect):
    name: ClassVar[str] = "fal"
    api_prefix: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order: list[str] = []  # job ids in submission order, for queue positions
        self.cancelled: set[str] = set()

    def routes(self) -> list[Route]:
        return [
            Route("/files/{name}", self.cdn, methods=["GET"]),
            Route("/{owner}/{alias}/requests/{request_id}/status", self.status, methods=["GET"]),
            Route("/{owner}/{alias}/requests/{request_id}/cancel", self.cancel, methods=["PUT"]),
            Route("/{owner}/{alias}/requests/{request_id}", self.result, methods=["GET"]),
            Route("/{model:path}", self.submit, methods=["POST"]),
        ]

    def is_api(self, path: str) -> bool:
        return not path.startswith(("/files/", "/_simulator/"))

    def is_create(self, method: str, path: str) -> bool:
        return method == "POST" and self.is_api(path)

    def api_key(self, request_headers: Headers, query: dict[str, str]) -> str | None:
        scheme, _, token = request_headers.get("authorization", "").partition(" ")
        return token.strip() if scheme == "Key" and token.strip() else None

    def error_body(self, error: RequestError) -> dict[str, Any]:
        if error.status == 422 and error.param:
            return {"detail": [{"loc": ["body", error.param], "msg": error.message, "type": "value_error"}]}
        return {"detail": error.message}

    # ------------------------------------------------------------------ routes
    async def submit(self, request: Request) -> Response:
        endpoint = request.path_params["model"].strip("/")
        spec = MODELS.get(_text_model(endpoint))
        if spec is None and self.config.strict_models:
            raise RequestError(404, f"Application '{endpoint}' not found.")
        spec = spec or MODELS["fal-ai/veo3/fast"]
        body = await read_json(request)
        prompt = require_prompt(body)
        duration = str(body.get("duration", spec["durations"][-1]))
        if duration not in spec["durations"]:
            raise _invalid("duration", f"Input should be {' or '.join(map(repr, spec['durations']))}.")
        ratio = body.get("aspect_ratio", spec["ratios"][0])
        if ratio not in spec["ratios"]:
            raise _invalid("aspect_ratio", f"Input should be {' or '.join(map(repr, spec['ratios']))}.")
        resolution = body.get("resolution", spec["resolutions"][0])
        if resolution not in spec["resolutions"]:
            raise _invalid("resolution", f"Input should be {' or '.join(map(repr, spec['resolutions']))}.")
        image_url = body.get("image_url")
        if endpoint.endswith("/image-to-video") and not (
            isinstance(image_url, str) and image_url.startswith(("https://", "http://", "data:image/"))
        ):
            raise _invalid("image_url", "Field required: an image URL or a data URI.")
        size = size_for(spec["sizes"], ratio, resolution) or size_of(*RATIOS[ratio], int(resolution.rstrip("p")))
        job = self.new_job(request, "create", model=endpoint, size=size, seconds=int(duration.rstrip("s")),
                           prompt=prompt)
        with self.state.lock:
            self.order.append(job.id)
        base = f"{api_origin(request)}/{'/'.join(endpoint.split('/')[:2])}/requests/{external_id(job.id)}"
        return self.accepted(request, {
            "request_id": external_id(job.id), "response_url": base, "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel", "queue_position": self._position(job),
        })

    def _job(self, request: Request) -> Job:
        job = self.job(internal_id(request.path_params["request_id"]))
        if job is None or "/".join(job.model.split("/")[:2]) != (
            f"{request.path_params['owner']}/{request.path_params['alias']}"
        ):
            raise RequestError(404, f"Request {request.path_params['request_id']} not found.")
        return job

    def _position(self, job: Job) -> int:
        now = self.state.clock()
        with self.state.lock:
            ahead = self.order[: self.order.index(job.id)] if job.id in self.order else []
        waiting = (self.job(other) for other in ahead if other not in self.cancelled)
        return sum(1 for other_job in waiting if other_job is not None and other_job.state(now)[0] == "queued")

    async def status(self, request: Request) -> Response:
        job = self._job(request)
        status, _ = job.state(self.state.clock())
        answer: dict[str, Any] = {"request_id": external_id(job.id),
                                  "response_url": str(request.url).removesuffix("/status").split("?")[0]}
        if job.id in self.cancelled:
            answer.update(status="COMPLETED", logs=None, error="The request was cancelled.",
                          error_type="request_cancelled")
        elif status == "queued":
            answer.update(status="IN_QUEUE", queue_position=self._position(job))
        elif status == "in_progress":
            answer.update(status="IN_PROGRESS", logs=[])
        elif status == "failed":
            answer.update(status="COMPLETED", logs=[], metrics={},
                          error=job.plan.error_message or "The model failed to generate a video.",
                          error_type=job.plan.error_code or "runner_error")
        else:
            answer.update(status="COMPLETED", logs=[], metrics={"inference_time": job.plan.run_s})
        return JSONResponse(answer)

    async def result(self, request: Request) -> Response:
        job = self._job(request)
        status, _ = job.state(self.state.clock())
        if status in ("queued", "in_progress"):
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if status == "failed" or job.id in self.cancelled:
            return JSONResponse({"detail": job.plan.error_message or "The request failed.",
                                 "error_type": job.plan.error_code or "runner_error"}, status_code=422)
        name = f"{external_id(job.id)}_output.mp4"
        return JSONResponse({"video": {"url": f"{cdn_origin(request)}/files/{name}", "content_type": "video/mp4",
                                       "file_name": name}, "seed": job.seq})

    async def cancel(self, request: Request) -> Response:
        job = self._job(request)
        if job.state(self.state.clock())[0] != "queued" or job.id in self.cancelled:
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        with self.state.lock:
            self.cancelled.add(job.id)
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    async def cdn(self, request: Request) -> Response:
        self.log_asset(request)
        job = self.job(internal_id(request.path_params["name"].removesuffix("_output.mp4")))
        if job is None or job.state(self.state.clock())[0] != "completed" or self.expired(job):
            return Response("Not Found", status_code=404, media_type="text/plain")
        return await self.video_file(job)
