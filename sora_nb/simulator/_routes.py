"""The simulator's route handlers: OpenAI's ``/v1/videos`` routes over one :class:`SimulatorState`.

Requests reach these only after the gate of :class:`~sora_nb.simulator._app.SimulatorApp` (keys, rate
limits, faults), which shares its per-request facts through :class:`RequestContext`. Kept apart from the
gate: the handlers are the contract's behaviour, the gate is the weather around it.

Choices where the contract is silent (callers rely on them):

* Remix, edit, extend and content of a video that is not ``completed`` answer **409**
  (``video_not_ready``): the request is fine, the video is in the wrong state.
* ``DELETE`` works in any state; deleting a queued or running job is how a client cancels.
* Content past ``expires_at`` answers 404 with code ``video_expired``; the job itself stays
  retrievable as ``completed``.
* ``input_reference`` given as an ``image_url`` (http) or ``file_id`` is accepted but cannot be
  fetched offline, so it does not show in the render; uploaded files and data URLs are checked
  (format, dimensions) and used as the video's background.

>>> from sora_nb.simulator import SimulatorTransport
>>> [route.path for route in Api(SimulatorTransport().state).routes()][:2]
['/v1/videos', '/v1/videos']
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._catalog import DEFAULT_MODEL, SECONDS
from ._faults import DropKind, roll
from ._render import ensure_rendered, poster_of_clip, probe_video, store_reference_image
from ._store import SERVER_THREADS, Job, JobKind, SimulatorState
from ._validate import (
    MAX_EXTENSIONS,
    MAX_TOTAL_SECONDS,
    BodySource,
    CreateRequest,
    RequestError,
    Upload,
    check_character_clip,
    check_image,
    check_list_query,
    error_body,
    nest_form_items,
    validate_character,
    validate_create,
    validate_edit,
    validate_extend,
    validate_remix,
)

__all__ = ["Api", "RequestContext", "http_error", "in_thread", "request_context", "request_error"]

_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
_MAX_TEXT_PART_BYTES = 32 * 1024 * 1024  # an image_url data URL may be ~20 MB

_MEDIA_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}

_T = TypeVar("_T")


_pools: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _workers(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    with _pools_lock:
        if threads not in _pools:
            # Idle threads cost nothing; they stay for the next simulator, as the measuring pool's do.
            _pools[threads] = concurrent.futures.ThreadPoolExecutor(threads, f"sora_nb-worker-simulator-{threads}")
        return _pools[threads]


async def in_thread(function: Callable[..., _T], *args: Any, threads: int = SERVER_THREADS) -> _T:
    """Run blocking work (render, image and video decoding, a file read) off the event loop, on the
    simulator's pool of ``threads`` threads (``state.worker_threads``: fewer in-process, see
    :data:`~sora_nb.simulator._store.IN_PROCESS_THREADS`), shared by the simulators of the process of that
    size. Other backends than asyncio use anyio's threads.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(functools.partial(function, *args))
    return await loop.run_in_executor(_workers(threads), functools.partial(function, *args))


@dataclass
class RequestContext:
    """Per-request facts the gate shares with the handlers (via ``scope["state"]``)."""

    request_id: str
    api_key_hash: str | None
    drop: DropKind | None = None



def request_context(request: Request) -> RequestContext:
    """The facts the gate recorded for ``request`` (its id, whose key, whether to drop the connection)."""
    context = request.scope.get("state", {}).get("sora_nb_simulator")
    if not isinstance(context, RequestContext):  # pragma: no cover - the gate always sets it
        raise RuntimeError("request did not pass through the simulator gate")
    return context



async def _read_body(request: Request) -> tuple[dict[str, Any], BodySource]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        items: list[tuple[str, Any]] = []
        async with request.form(max_files=16, max_fields=256, max_part_size=_MAX_TEXT_PART_BYTES) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read(_MAX_UPLOAD_BYTES + 1)
                    if len(data) > _MAX_UPLOAD_BYTES:
                        raise RequestError(
                            413,
                            f"File '{name}' is larger than {_MAX_UPLOAD_BYTES // (1024 * 1024)} MB.",
                            param=name,
                            code="file_too_large",
                        )
                    items.append((name, Upload(value.filename, value.content_type, data)))
                else:
                    items.append((name, value))
        return nest_form_items(items), "form"
    raw = await request.body()
    if not raw.strip():
        return {}, "json"
    try:
        body = json.loads(raw)
    except ValueError:
        raise RequestError(
            400,
            "We could not parse the JSON body of your request. The API expects a JSON object "
            "(or multipart/form-data); check the request body and the Content-Type header.",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise RequestError(400, "Invalid request body: expected a JSON object.", code="invalid_type")
    return body, "json"


def _not_found(video_id: str) -> RequestError:
    return RequestError(404, f"Video with id '{video_id}' not found.", param="video_id", code="video_not_found")


def _size_for(width: int, height: int) -> str:
    # Uploaded clips get the contract size of their orientation: VideoResource.size is an enum.
    return "720x1280" if height >= width else "1280x720"


def _nearest_seconds(duration: float) -> int:
    return min((int(value) for value in SECONDS), key=lambda value: abs(value - duration))


class Api:
    """The route handlers, bound to one simulator state."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.config = state.config

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos", self.create, methods=["POST"]),
            Route("/v1/videos", self.list, methods=["GET"]),
            Route("/v1/videos/edits", self.edit, methods=["POST"]),
            Route("/v1/videos/extensions", self.extend, methods=["POST"]),
            Route("/v1/videos/characters", self.create_character, methods=["POST"]),
            Route("/v1/videos/characters/{character_id}", self.get_character, methods=["GET"]),
            Route("/v1/videos/{video_id}", self.retrieve, methods=["GET"]),
            Route("/v1/videos/{video_id}", self.delete, methods=["DELETE"]),
            Route("/v1/videos/{video_id}/content", self.content, methods=["GET"]),
            Route("/v1/videos/{video_id}/remix", self.remix, methods=["POST"]),
            Route("/_simulator/audit", self.audit, methods=["GET"]),
        ]

    # Helpers.

    async def _in_thread(self, function: Callable[..., _T], *args: Any) -> _T:
        """:func:`in_thread` on this simulator's number of threads (fewer in-process: ``state.worker_threads``)."""
        return await in_thread(function, *args, threads=self.state.worker_threads)

    def _job(self, video_id: str) -> Job:
        job = self.state.get(video_id)
        if job is None:
            raise _not_found(video_id)
        return job

    def _completed(self, video_id: str, action: str) -> Job:
        job = self._job(video_id)
        status, _ = job.state(self.state.clock())
        if status != "completed":
            raise RequestError(
                409,
                f"Video '{video_id}' is {status}, so it cannot be {action} yet. Wait until its status is "
                "'completed' (poll GET /v1/videos/{video_id}).",
                param="video_id",
                code="video_not_ready",
            )
        return job

    def _accepted(self, request: Request, job: Job) -> JSONResponse:
        """Answer a job-creating request, or (fault) drop the connection after accepting it."""
        with self.state.lock:
            drop = roll(self.state.fault_rng, self.config.drop_after_create_rate)
        if drop:
            request_context(request).drop = "reset"
        return JSONResponse(job.resource(self.state.clock(), self.state.ttl))

    def _new_job(self, request: Request, kind: JobKind, **fields: Any) -> Job:
        return self.state.create_job(kind, api_key_hash=request_context(request).api_key_hash, **fields)

    async def _reference_path(self, create: CreateRequest) -> str | None:
        if create.reference is None or create.reference.image is None:
            return None
        image = await self._in_thread(check_image, create.reference.image, create.size)
        return await self._in_thread(store_reference_image, image, self.state.reference_dir)

    async def _probe(self, upload: Upload) -> tuple[int, int, float]:
        probed = await self._in_thread(probe_video, upload.data)
        if probed is None or probed[2] <= 0:
            raise RequestError(
                400,
                "Invalid file for 'video': expected a decodable video (MP4 with H.264, for example).",
                param="video",
                code="invalid_video",
            )
        return probed

    # Routes.

    async def create(self, request: Request) -> Response:
        body, source = await _read_body(request)
        create = validate_create(body, source, strict=self.config.strict_models)
        cast = self._cast(create)
        reference = await self._reference_path(create)
        job = self._new_job(
            request,
            "create",
            model=create.model,
            size=create.size,
            seconds=create.seconds,
            prompt=create.prompt,
            reference=reference,
            extra={"characters": cast} if cast else None,
        )
        return self._accepted(request, job)

    def _cast(self, create: CreateRequest) -> list[dict[str, Any]]:
        """The characters a create names, checked: known here, and each named verbatim in the prompt."""
        cast = []
        for index, character_id in enumerate(create.characters):
            character = self.state.character(character_id)
            if character is None:
                raise RequestError(
                    400,
                    f"Invalid 'characters[{index}].id': character '{character_id}' not found.",
                    param=f"characters[{index}].id",
                    code="character_not_found",
                )
            if character.name not in create.prompt:
                raise RequestError(
                    400,
                    f"Invalid 'prompt': character '{character.name}' ({character.id}) must be mentioned by name "
                    "in the prompt.",
                    param="prompt",
                    code="character_not_in_prompt",
                )
            cast.append({"id": character.id, "name": character.name, "poster": character.poster})
        return cast

    async def list(self, request: Request) -> Response:
        limit, order, after = check_list_query(dict(request.query_params))
        try:
            jobs, has_more = self.state.page(limit=limit, order=order, after=after)
        except KeyError:
            raise RequestError(
                400,
                f"Invalid 'after': no video with id '{after}'. Pass the 'last_id' of the previous page.",
                param="after",
                code="invalid_value",
            ) from None
        now = self.state.clock()
        data = [job.resource(now, self.state.ttl) for job in jobs]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": has_more,
            }
        )

    async def retrieve(self, request: Request) -> Response:
        job = self._job(request.path_params["video_id"])
        headers = {}
        if self.config.poll_after_ms is not None:
            headers["openai-poll-after-ms"] = str(self.config.poll_after_ms)
        return JSONResponse(job.resource(self.state.clock(), self.state.ttl), headers=headers)

    async def delete(self, request: Request) -> Response:
        video_id = request.path_params["video_id"]
        if not self.state.delete(video_id):
            raise _not_found(video_id)
        return JSONResponse({"id": video_id, "object": "video.deleted", "deleted": True})

    async def content(self, request: Request) -> Response:
        variant = request.query_params.get("variant", "video")
        if variant not in _MEDIA_TYPES:
            raise RequestError(
                400,
                f"Invalid value: '{variant}'. Supported values are: 'video', 'thumbnail', and 'spritesheet'.",
                param="variant",
                code="invalid_value",
            )
        video_id = request.path_params["video_id"]
        job = self._completed(video_id, "downloaded")
        if self.state.clock() >= job.expires_at(self.state.ttl):
            raise RequestError(
                404,
                f"The assets of video '{video_id}' have expired. Create the video again.",
                param="video_id",
                code="video_expired",
            )
        assets = await self._in_thread(ensure_rendered, job.render_spec(self.config), self.state.cache_dir)
        path = {"video": assets.video, "thumbnail": assets.thumbnail, "spritesheet": assets.spritesheet}[variant]
        # Read whole in one worker-thread hop (the files are small) rather than streamed by FileResponse:
        # its anyio thread calls look for the root task among every task of the loop at each chunk, which
        # on a kernel's loop (no root task to find) with 200 jobs in flight blocked it for seconds.
        return Response(await self._in_thread(path.read_bytes), media_type=_MEDIA_TYPES[variant])

    async def remix(self, request: Request) -> Response:
        source = self._completed(request.path_params["video_id"], "remixed")
        body, _ = await _read_body(request)
        prompt = validate_remix(body, strict=self.config.strict_models)
        job = self._new_job(
            request,
            "remix",
            model=source.model,
            size=source.size,
            seconds=source.seconds,
            prompt=prompt,
            segments=((prompt, source.seconds),),
            reference=source.reference,
            source_video_id=source.id,
        )
        return self._accepted(request, job)

    async def edit(self, request: Request) -> Response:
        body, _ = await _read_body(request)
        video, prompt = validate_edit(body, strict=self.config.strict_models)
        if isinstance(video, Upload):
            width, height, duration = await self._probe(video)
            model, size, seconds = DEFAULT_MODEL, _size_for(width, height), _nearest_seconds(duration)
            reference, source_id = None, None
        else:
            source = self._completed(video, "edited")
            model, size, seconds = source.model, source.size, source.seconds
            reference, source_id = source.reference, source.id
        job = self._new_job(
            request,
            "edit",
            model=model,
            size=size,
            seconds=seconds,
            prompt=prompt,
            segments=((prompt, seconds),),
            reference=reference,
            source_video_id=source_id,
        )
        return self._accepted(request, job)

    async def extend(self, request: Request) -> Response:
        body, _ = await _read_body(request)
        extension = validate_extend(body, strict=self.config.strict_models)
        if isinstance(extension.video, Upload):
            width, height, duration = await self._probe(extension.video)
            base_seconds = max(1, round(duration))
            model, size = DEFAULT_MODEL, _size_for(width, height)
            segments: tuple[tuple[str, int], ...] = (("(uploaded video)", base_seconds),)
            reference, source_id, count = None, None, 0
        else:
            source = self._completed(extension.video, "extended")
            base_seconds, model, size = source.seconds, source.model, source.size
            segments, reference, source_id = source.segments, source.reference, source.id
            count = source.extension_count
        if count + 1 > MAX_EXTENSIONS:
            raise RequestError(
                400,
                f"Video '{source_id}' was already extended {count} times; at most {MAX_EXTENSIONS} "
                "extensions are allowed per video.",
                param="video",
                code="invalid_value",
            )
        total = base_seconds + extension.seconds
        if total > MAX_TOTAL_SECONDS:
            raise RequestError(
                400,
                f"Invalid value: '{extension.seconds}'. The extended video would be {total} seconds long; "
                f"the total is at most {MAX_TOTAL_SECONDS} seconds.",
                param="seconds",
                code="invalid_value",
            )
        job = self._new_job(
            request,
            "extend",
            model=model,
            size=size,
            seconds=total,
            generate_seconds=extension.seconds,
            prompt=extension.prompt,
            segments=(*segments, (extension.prompt, extension.seconds)),
            reference=reference,
            source_video_id=source_id,
            extension_count=count + 1,
        )
        return self._accepted(request, job)

    async def create_character(self, request: Request) -> Response:
        body, source = await _read_body(request)
        if source != "form":
            raise RequestError(
                400,
                "Characters are made from an uploaded clip: send multipart/form-data with a 'video' file "
                "part and a 'name'.",
                param="video",
                code="invalid_type",
            )
        video, name = validate_character(body)
        check_character_clip(*await self._probe(video))
        # Its look, for the videos that use it (the simulator's stand-in for learning a person).
        poster = await self._in_thread(poster_of_clip, video.data, self.state.reference_dir)
        return JSONResponse(self.state.add_character(name, poster).resource())

    async def get_character(self, request: Request) -> Response:
        character_id = request.path_params["character_id"]
        character = self.state.character(character_id)
        if character is None:
            raise RequestError(
                404,
                f"Character with id '{character_id}' not found.",
                param="character_id",
                code="character_not_found",
            )
        return JSONResponse(character.resource())

    async def audit(self, request: Request) -> Response:
        del request
        return JSONResponse(self.state.audit())


async def request_error(request: Request, exc: Exception) -> Response:
    del request
    assert isinstance(exc, RequestError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        message = f"Invalid URL ({request.method} {request.url.path})"
        code = "unknown_url" if exc.status_code == 404 else "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    return JSONResponse(
        error_body(message, type="invalid_request_error", param=None, code=code),
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )
