"""Runway's API, simulated: text and image to video tasks, polled with progress, cancelled with DELETE.

Source: the official client (github.com/runwayml/sdk-python @c604e0e, release 5.13.0: ``api.md``,
``_client.py``, ``types/text_to_video_create_params.py``, ``types/image_to_video_create_params.py``,
``types/task_retrieve_response.py``) and docs.dev.runwayml.com, read 2026-12-01.

* Every API request needs ``Authorization: Bearer`` and ``X-Runway-Version: 2024-11-06`` (else 400).
* ``POST /v1/text_to_video`` ``{model, promptText, ratio, duration, audio?}`` and ``POST /v1/image_to_video``
  (plus ``promptImage``: an https URL or a ``data:image/...`` URI of at most 5 MB) answer ``{"id"}``.
  Ratios and durations per model: the catalog's (``sora_nb._catalog.RUNWAY_MODELS``), from the client's types.
* ``GET /v1/tasks/{id}``: ``{id, createdAt, status}`` with ``PENDING``, ``THROTTLED`` (the organisation
  has as many tasks under way as its concurrency allows: here, two of the same key ahead of it),
  ``RUNNING`` with ``progress`` 0..1, ``SUCCEEDED`` with ``output: [url]`` (on another host, no key; a signed
  link that lapses after ``asset_ttl``, else 24 h, and is handed out fresh on every read of the task),
  ``FAILED`` with ``failure`` and ``failureCode``, ``CANCELLED``.
* ``DELETE /v1/tasks/{id}``: 204; an unfinished task is cancelled, a finished one deleted (404 afterwards).
* Errors: ``{"error": "..."}``.

Not simulated: credits and their costs, organisation usage, other task kinds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..._catalog import RUNWAY_MODELS
from .._store import Job
from .._validate import RequestError
from ._base import Dialect, cdn_origin, external_id, internal_id, read_json

__all__ = ["RunwayDialect"]

VERSION = "2024-11-06"
MODELS: dict[str, dict[str, tuple[Any, ...]]] = {
    model: {"ratios": tuple(size.replace("x", ":") for size in spec.sizes or ()),
            "durations": tuple(int(s) for s in spec.seconds or ())}
    for model, spec in RUNWAY_MODELS.items()
}
"""The catalog's Runway models (the profile's own table) in Runway's words: ``1280:720``, whole seconds."""
MAX_DATA_URI = 5 * 1024 * 1024
CONCURRENCY = 2
"""Tasks of one key under way (ahead of a pending one) that make it read ``THROTTLED`` (a simulator choice;
Runway's own limit depends on the organisation's tier)."""


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat().replace("+00:00", "Z")


class RunwayDialect(Dialect):
    name: ClassVar[str] = "runway"
    api_prefix: ClassVar[str] = "/v1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order: list[str] = []
        self.cancelled: set[str] = set()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/text_to_video", self.text_to_video, methods=["POST"]),
            Route("/v1/image_to_video", self.image_to_video, methods=["POST"]),
            Route("/v1/tasks/{task_id}", self.retrieve, methods=["GET"]),
            Route("/v1/tasks/{task_id}", self.delete, methods=["DELETE"]),
            Route("/runway-output/{name}", self.output, methods=["GET"]),
        ]

    def is_create(self, method: str, path: str) -> bool:
        return method == "POST" and path in ("/v1/text_to_video", "/v1/image_to_video")

    def error_body(self, error: RequestError) -> dict[str, Any]:
        return {"error": error.message}

    @staticmethod
    def _version(request: Request) -> None:
        if request.headers.get("x-runway-version") != VERSION:
            raise RequestError(400, f"The X-Runway-Version header is missing or not a supported version. "
                                    f"Use {VERSION}.")

    async def text_to_video(self, request: Request) -> Response:
        return await self._create(request, image=False)

    async def image_to_video(self, request: Request) -> Response:
        return await self._create(request, image=True)

    async def _create(self, request: Request, *, image: bool) -> Response:
        self._version(request)
        body = await read_json(request)
        model = body.get("model")
        spec = MODELS.get(str(model))
        if spec is None:
            raise RequestError(400, f"model: must be one of {', '.join(MODELS)}.", param="model")
        prompt = body.get("promptText")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > 1000:
            raise RequestError(400, "promptText: a non-empty string of at most 1000 characters.", param="promptText")
        ratio, duration = body.get("ratio"), body.get("duration", spec["durations"][-1])
        if ratio not in spec["ratios"]:
            raise RequestError(400, f"ratio: must be one of {', '.join(spec['ratios'])} for {model}.", param="ratio")
        if duration not in spec["durations"]:
            raise RequestError(400, f"duration: {duration!r} is not allowed for {model}.", param="duration")
        if image:
            picture = body.get("promptImage")
            if not isinstance(picture, str) or not picture.startswith(("https://", "http://", "data:image/")):
                raise RequestError(400, "promptImage: an https URL or a data:image URI is required.",
                                   param="promptImage")
            if picture.startswith("data:") and len(picture) > MAX_DATA_URI:
                raise RequestError(400, "promptImage: a data URI must be at most 5MB.", param="promptImage")
        width, _, height = str(ratio).partition(":")
        job = self.new_job(request, "create", model=str(model), size=f"{width}x{height}", seconds=int(duration),
                           prompt=prompt)
        with self.state.lock:
            self.order.append(job.id)
        return self.accepted(request, {"id": external_id(job.id)})

    def _throttled(self, job: Job, now: float) -> bool:
        with self.state.lock:
            ahead = self.order[: self.order.index(job.id)] if job.id in self.order else []
        busy = 0
        for other_id in ahead:
            other = self.job(other_id)
            if other is not None and other.api_key_hash == job.api_key_hash and other_id not in self.cancelled \
                    and other.state(now)[0] in ("queued", "in_progress"):
                busy += 1
        return busy >= CONCURRENCY

    def _task(self, request: Request) -> Job:
        self._version(request)
        job = self.job(internal_id(request.path_params["task_id"]))
        if job is None:
            raise RequestError(404, "Task not found.")
        return job

    async def retrieve(self, request: Request) -> Response:
        job = self._task(request)
        now = self.state.clock()
        status, progress = job.state(now)
        task: dict[str, Any] = {"id": external_id(job.id), "createdAt": _iso(job.plan.created_at)}
        if job.id in self.cancelled:
            task["status"] = "CANCELLED"
        elif status == "queued":
            task["status"] = "THROTTLED" if self._throttled(job, now) else "PENDING"
        elif status == "in_progress":
            task.update(status="RUNNING", progress=round(progress / 100, 3))
        elif status == "failed":
            code = "SAFETY.INPUT.TEXT" if job.plan.error_code == "moderation_blocked" else "INTERNAL"
            task.update(status="FAILED", failure=job.plan.error_message or "An unexpected error occurred.",
                        failureCode=code)
        else:
            # A signed link that lapses (asset_ttl, else 24 h) after it is handed out; reading the task again
            # hands out a fresh one, as Runway's are.
            lapses = int(now + self.state.ttl)
            task.update(status="SUCCEEDED",
                        output=[f"{cdn_origin(request)}/runway-output/{external_id(job.id)}.mp4?exp={lapses}"])
        return JSONResponse(task)

    async def delete(self, request: Request) -> Response:
        job = self._task(request)
        if job.state(self.state.clock())[0] in ("queued", "in_progress") and job.id not in self.cancelled:
            with self.state.lock:
                self.cancelled.add(job.id)
        else:
            self.state.delete(job.id)
        return Response(status_code=204)

    async def output(self, request: Request) -> Response:
        self.log_asset(request)
        job = self.job(internal_id(request.path_params["name"].removesuffix(".mp4")))
        if job is None or job.state(self.state.clock())[0] != "completed" or job.id in self.cancelled:
            return Response("Not Found", status_code=404, media_type="text/plain")
        lapses = request.query_params.get("exp", "")
        if not lapses.isdigit() or self.state.clock() > int(lapses):
            return Response("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                            status_code=403, media_type="application/xml")
        return await self.video_file(job)
