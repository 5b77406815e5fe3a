"""The simulator's ASGI app: OpenAI's ``/v1/videos`` routes, validation, and the fault gate.

Every request passes through :meth:`SimulatorApp._gate` first. The gate sits *outside* Starlette's
middleware stack on purpose: Starlette's error middleware turns any exception into a 500, and a
dropped connection must reach the transport as no answer at all. The gate adds ``x-request-id`` and
the ``x-ratelimit-*`` headers to every response, then applies the configured faults in the order a
client meets them on the wire: latency, dropped connection, authentication, rate limits, random 5xx.

Choices where the contract is silent (callers rely on them):

* Remix, edit, extend and content of a video that is not ``completed`` answer **409**
  (``video_not_ready``): the request is fine, the video is in the wrong state.
* ``DELETE`` works in any state; deleting a queued or running job is how a client cancels.
* Content past ``expires_at`` answers 404 with code ``video_expired``; the job itself stays
  retrievable as ``completed``.
* ``input_reference`` given as an ``image_url`` (http) or ``file_id`` is accepted but cannot be
  fetched offline, so it does not show in the render; uploaded files and data URLs are checked
  (format, dimensions) and used as the video's background.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .._catalog import DEFAULT_MODEL, SECONDS
from ._faults import DropConnection, DropKind, RateDecision, format_reset, roll, roll_server_error
from ._render import ensure_rendered, probe_video, store_reference_image
from ._store import Job, JobKind, SimulatorState, hash_api_key
from ._validate import (
    MAX_EXTENSIONS,
    MAX_TOTAL_SECONDS,
    BodySource,
    CreateRequest,
    RequestError,
    Upload,
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

__all__ = ["SimulatorApp", "create_state_app"]

_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
_MAX_TEXT_PART_BYTES = 32 * 1024 * 1024  # an image_url data URL may be ~20 MB
_CHARACTER_SECONDS = (2.0, 4.0)
_CHARACTER_TOLERANCE_S = 0.25

_MEDIA_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
_CREATE_PATHS = ("/v1/videos", "/v1/videos/edits", "/v1/videos/extensions")

_SERVER_ERRORS = {
    500: ("The server had an error while processing your request. Sorry about that!", "server_error"),
    502: ("Bad gateway. The upstream service did not answer; retry the request.", "bad_gateway"),
    503: ("The engine is currently overloaded, please try again later.", "service_unavailable"),
}


_T = TypeVar("_T")


async def _in_thread(function: Callable[..., _T], *args: Any) -> _T:
    """Run blocking work (render, image and video decoding) off the event loop.

    On asyncio the loop's default executor is used: ``asyncio.run`` joins its threads on exit, so a
    short-lived loop (a script, a test) leaves no worker thread behind. Other backends use anyio.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(function, *args)
    return await loop.run_in_executor(None, functools.partial(function, *args))


@dataclass
class RequestContext:
    """Per-request facts the gate shares with the handlers (via ``scope["state"]``)."""

    request_id: str
    api_key_hash: str | None
    drop: DropKind | None = None


def sender(send: Send, extra_headers: list[tuple[bytes, bytes]], context: RequestContext) -> Send:
    """``send`` with ``extra_headers`` added to the response, or nothing sent at all once a handler
    marked the request's connection to be dropped (``context.drop``): the answer must never leave."""
    swallowed = False

    async def send_with_headers(message: Message) -> None:
        nonlocal swallowed
        if message["type"] == "http.response.start":
            if context.drop is not None:
                swallowed = True
                return
            message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
        elif swallowed:
            return
        await send(message)

    return send_with_headers


def _context(request: Request) -> RequestContext:
    context = request.scope.get("state", {}).get("sora_nb_simulator")
    if not isinstance(context, RequestContext):  # pragma: no cover - the gate always sets it
        raise RuntimeError("request did not pass through the simulator gate")
    return context


def _api_key(headers: Headers) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("api-key") or None


def _is_create(method: str, path: str) -> bool:
    if method != "POST":
        return False
    if path in _CREATE_PATHS:
        return True
    parts = path.split("/")
    return len(parts) == 5 and parts[:3] == ["", "v1", "videos"] and parts[4] == "remix"


def _rate_headers(decision: RateDecision) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit-requests", str(decision.limit).encode()),
        (b"x-ratelimit-remaining-requests", str(decision.remaining).encode()),
        (b"x-ratelimit-reset-requests", format_reset(decision.reset_s).encode()),
    ]


def _rate_limited(decision: RateDecision, what: str) -> RequestError:
    wait = max(decision.reset_s, 0.001)
    return RequestError(
        429,
        f"Rate limit reached for {what}: limit {decision.limit} per minute. Please try again in {format_reset(wait)}.",
        code="rate_limit_exceeded",
        type="requests",
        headers={"retry-after": str(max(1, math.ceil(wait))), "retry-after-ms": str(math.ceil(wait * 1000))},
    )


class SimulatorApp(Starlette):
    """A Starlette app with the simulator's gate in front of its middleware stack."""

    simulator: SimulatorState

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await self._gate(scope, receive, send)

    async def _gate(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.simulator
        config = state.config
        path: str = scope["path"]
        method: str = scope["method"]
        key = _api_key(Headers(scope=scope))
        key_hash = hash_api_key(key)
        limiter_key = key_hash or "anonymous"
        is_api = path == "/v1" or path.startswith("/v1/")
        context = RequestContext(request_id=state.new_request_id(), api_key_hash=key_hash)
        scope.setdefault("state", {})["sora_nb_simulator"] = context

        if is_api and config.latency > 0:
            await anyio.sleep(config.latency)

        rejection: RequestError | None = None
        with state.lock:
            now = state.clock()
            if is_api and roll(state.fault_rng, config.drop_rate):
                raise DropConnection("close")
            # As the real service: no key is a 401; api_keys=None accepts any key, a set only its keys.
            if is_api and (key is None or (config.api_keys is not None and key not in config.api_keys)):
                decision = state.rate_limiter.peek(limiter_key, now)
                rejection = RequestError(
                    401,
                    "Incorrect API key provided. Check the key, or create a new one."
                    if key
                    else "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    code="invalid_api_key" if key else "missing_api_key",
                )
            elif is_api:
                decision = state.rate_limiter.check(limiter_key, now)
                if not decision.allowed:
                    rejection = _rate_limited(decision, "requests")
                elif _is_create(method, path):
                    creates = state.create_rate_limiter.check(limiter_key, now)
                    if not creates.allowed:
                        rejection = _rate_limited(creates, "video creations")
                if rejection is None:
                    status = roll_server_error(state.fault_rng, config.error_rate)
                    if status is not None:
                        message, code = _SERVER_ERRORS[status]
                        rejection = RequestError(status, message, code=code, type="server_error")
            else:
                decision = state.rate_limiter.peek(limiter_key, now)

        extra_headers = [(b"x-request-id", context.request_id.encode()), *_rate_headers(decision)]
        send_with_headers = sender(send, extra_headers, context)

        if rejection is not None:
            response = JSONResponse(rejection.body(), status_code=rejection.status, headers=rejection.headers)
            await response(scope, receive, send_with_headers)
            return
        await super().__call__(scope, receive, send_with_headers)
        if context.drop is not None:
            raise DropConnection(context.drop)


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


class _Api:
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
            _context(request).drop = "reset"
        return JSONResponse(job.resource(self.state.clock(), self.state.ttl))

    def _new_job(self, request: Request, kind: JobKind, **fields: Any) -> Job:
        return self.state.create_job(kind, api_key_hash=_context(request).api_key_hash, **fields)

    async def _reference_path(self, create: CreateRequest) -> str | None:
        if create.reference is None or create.reference.image is None:
            return None
        image = await _in_thread(check_image, create.reference.image, create.size)
        return await _in_thread(store_reference_image, image, self.state.reference_dir)

    async def _probe(self, upload: Upload) -> tuple[int, int, float]:
        probed = await _in_thread(probe_video, upload.data)
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
        reference = await self._reference_path(create)
        job = self._new_job(
            request,
            "create",
            model=create.model,
            size=create.size,
            seconds=create.seconds,
            prompt=create.prompt,
            reference=reference,
        )
        return self._accepted(request, job)

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
        assets = await _in_thread(ensure_rendered, job.render_spec(self.config), self.state.cache_dir)
        path = {"video": assets.video, "thumbnail": assets.thumbnail, "spritesheet": assets.spritesheet}[variant]
        return FileResponse(path, media_type=_MEDIA_TYPES[variant])

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
        _, _, duration = await self._probe(video)
        low, high = _CHARACTER_SECONDS
        if not low - _CHARACTER_TOLERANCE_S <= duration <= high + _CHARACTER_TOLERANCE_S:
            raise RequestError(
                400,
                f"Invalid 'video': character clips must be {low:g} to {high:g} seconds long, "
                f"got {duration:.2f} seconds.",
                param="video",
                code="invalid_value",
            )
        return JSONResponse(self.state.add_character(name).resource())

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


async def _request_error(request: Request, exc: Exception) -> Response:
    del request
    assert isinstance(exc, RequestError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
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


def create_state_app(state: SimulatorState) -> SimulatorApp:
    """Build the app around an existing state (``create_app`` is the public entry point)."""
    app = SimulatorApp(
        routes=_Api(state).routes(),
        exception_handlers={RequestError: _request_error, HTTPException: _http_error},
    )
    app.simulator = state
    app.state.simulator = state
    return app
