"""What every dialect shares: the fault gate, auth, error envelopes, CDN links and job bookkeeping.

A dialect is the simulator speaking one hosted service's API instead of OpenAI's: its paths, fields,
status words, error shape, where the bytes live and how the key travels. The jobs underneath are the
simulator's own (:class:`~sora_nb.simulator._store.SimulatorState`: lifecycle from the clock, the audit of
accepted creates, rendered H.264 assets), so timing, failures and faults behave as in the OpenAI dialect.

Like the services, and unlike the OpenAI simulator, a dialect wants a key on every API path (any key unless
``api_keys`` is set). Asset links point at another origin (a "CDN": ``localhost`` for ``127.0.0.1`` and back
on a loopback server, ``cdn.<host>`` in process) when the service serves bytes from elsewhere; every request
to an asset path is logged with whether credentials came with it (``GET /_simulator/assets``), so tests
can prove that keys stay on the API's origin.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import anyio
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..._capabilities import ModelSpec, usd_cost
from .._app import SimulatorApp, sender
from .._faults import DropConnection, roll, roll_server_error
from .._render import ensure_rendered
from .._routes import RequestContext, in_thread, request_context
from .._store import Job, JobKind, SimulatorState, hash_api_key
from .._validate import RequestError

__all__ = ["RATIOS", "Dialect", "DialectApp", "aspect_and_resolution", "cdn_origin", "create_dialect_app",
           "external_id", "internal_id", "read_json", "simulated_cost", "size_for", "size_of"]

RATIOS: dict[str, tuple[int, int]] = {
    "16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "3:2": (3, 2), "2:3": (2, 3),
    "21:9": (21, 9), "9:21": (9, 21),
}  # fmt: skip
"""The aspect ratios services name, as width:height."""
_RESOLUTIONS = {480: "480p", 720: "720p", 1080: "1080p", 2160: "4k"}


def aspect_and_resolution(size: str) -> tuple[str, str] | None:
    """What a service calls a catalog size: its aspect ratio (within 1 %) and resolution (the short side).

    >>> aspect_and_resolution("848x480"), aspect_and_resolution("1080x1920"), aspect_and_resolution("1000x999")
    (('16:9', '480p'), ('9:16', '1080p'), None)
    """
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()) or int(height) == 0:
        return None
    ratio = int(width) / int(height)
    aspect = min(RATIOS, key=lambda name: abs(RATIOS[name][0] / RATIOS[name][1] - ratio))
    resolution = _RESOLUTIONS.get(min(int(width), int(height)))
    if resolution is None or abs(RATIOS[aspect][0] / RATIOS[aspect][1] - ratio) / ratio > 0.01:
        return None
    return aspect, resolution


def size_for(sizes: Sequence[str] | None, aspect: str, resolution: str) -> str | None:
    """The catalog size a request's ``aspect`` and ``resolution`` name, among ``sizes`` (the model's, from
    ``sora_nb._catalog``; ``None``: not known, so any aspect and resolution the service names), else ``None``.

    >>> size_for(("848x480", "1280x720"), "16:9", "480p"), size_for(None, "16:9", "480p")
    ('848x480', '854x480')
    """
    if sizes is not None:
        return next((size for size in sizes if aspect_and_resolution(size) == (aspect, resolution)), None)
    if aspect not in RATIOS or resolution not in _RESOLUTIONS.values():
        return None
    short = next(side for side, name in _RESOLUTIONS.items() if name == resolution)
    return size_of(*RATIOS[aspect], short)


def size_of(width_ratio: int, height_ratio: int, short_side: int) -> str:
    """``WIDTHxHEIGHT`` of an aspect ratio at a short side, widths rounded to even pixels.

    >>> size_of(16, 9, 720), size_of(9, 16, 1080), size_of(16, 9, 768)
    ('1280x720', '1080x1920', '1366x768')
    """
    if width_ratio >= height_ratio:
        return f"{2 * round(short_side * width_ratio / height_ratio / 2)}x{short_side}"
    return f"{short_side}x{2 * round(short_side * height_ratio / width_ratio / 2)}"


async def read_json(
    request: Request, *, unreadable: str = "The request body is not valid JSON.", not_object: int = 400
) -> dict[str, Any]:
    """The request's JSON object body; else a 400 saying ``unreadable``, or ``not_object`` for JSON that is
    not an object (each service words and numbers these its own way)."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise RequestError(400, unreadable) from None
    if not isinstance(body, dict):
        raise RequestError(not_object, "The request body must be a JSON object.")
    return body


def simulated_cost(spec: ModelSpec | None, size: str, seconds: float, placeholder: float) -> float:
    """What the simulated service bills for a job: the catalog's price (:func:`usd_cost`, the one price ×
    seconds) or, where the catalog does not know it, the dialect's ``placeholder`` rate (not a price)."""
    price = spec.price(size) if spec is not None else None
    return usd_cost(placeholder if price is None else price, seconds) or 0.0


def external_id(job_id: str) -> str:
    """A simulator job id (``video_<32 hex>``) as a UUID-shaped id, the way most services write theirs.

    >>> external_id("video_" + "ab" * 16)
    'abababab-abab-abab-abab-abababababab'
    """
    h = job_id.removeprefix("video_")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def internal_id(external: str) -> str:
    """The inverse of :func:`external_id` (an unknown shape maps to an id no job has)."""
    return "video_" + external.replace("-", "")


def cdn_origin(request: Request) -> str:
    """Another origin that still reaches this server: ``127.0.0.1`` <-> ``localhost`` on loopback,
    ``cdn.<host>`` in process (an in-process transport answers every host)."""
    host = request.url.hostname or "localhost"
    port = f":{request.url.port}" if request.url.port else ""
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host, f"cdn.{host}")
    return f"{request.url.scheme}://{other}{port}"


def api_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


class Dialect:
    """One service's API over the simulator's state. Subclasses define the routes and the envelopes."""

    name: ClassVar[str] = "dialect"
    api_prefix: ClassVar[str] = "/v1"
    """Requests under this path are API calls: they need a key and meet the faults."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.config = state.config
        self.asset_requests: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ what a dialect defines
    def routes(self) -> list[Route]:
        raise NotImplementedError

    def error_body(self, error: RequestError) -> dict[str, Any]:
        """The service's error envelope (default: OpenAI's, which several services copy)."""
        return error.body()

    def api_key(self, request_headers: Headers, query: dict[str, str]) -> str | None:
        """The key the request carries (default: ``Authorization: Bearer``)."""
        scheme, _, token = request_headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def is_create(self, method: str, path: str) -> bool:
        return False

    def is_api(self, path: str) -> bool:
        """Whether ``path`` is an API call (needs a key, meets the faults); the rest are CDN links."""
        return path.startswith(self.api_prefix + "/")

    # ------------------------------------------------------------------ shared helpers
    def new_job(self, request: Request, kind: JobKind, **fields: Any) -> Job:
        """Accept a job; ``extra=`` keeps what the service's answers need beyond the simulator's job
        (a price, a resolution) with it, on disk too when the simulator has a ``state_dir``."""
        return self.state.create_job(kind, api_key_hash=request_context(request).api_key_hash, **fields)

    def accepted(self, request: Request, body: dict[str, Any], status_code: int = 200) -> JSONResponse:
        """Answer a job-creating request, or (fault) drop the connection after accepting it."""
        with self.state.lock:
            drop = roll(self.state.fault_rng, self.config.drop_after_create_rate)
        if drop:
            request_context(request).drop = "reset"
        return JSONResponse(body, status_code=status_code)

    def job(self, job_id: str) -> Job | None:
        return self.state.get(job_id)

    def expired(self, job: Job) -> bool:
        return self.state.clock() >= job.expires_at(self.state.ttl)

    async def video_file(self, job: Job) -> FileResponse:
        assets = await in_thread(ensure_rendered, job.render_spec(self.config), self.state.cache_dir)
        return FileResponse(assets.video, media_type="video/mp4")

    def log_asset(self, request: Request) -> None:
        headers = request.headers
        self.asset_requests.append({
            "path": request.url.path,
            "host": request.url.netloc,
            "credentials": any(name in headers for name in ("authorization", "x-goog-api-key", "api-key"))
            or "key" in request.query_params,
        })

    async def assets_log(self, request: Request) -> Response:
        del request
        return JSONResponse(self.asset_requests)

    async def audit(self, request: Request) -> Response:
        del request
        return JSONResponse(self.state.audit())

    def simulator_routes(self) -> list[Route]:
        return [Route("/_simulator/audit", self.audit, methods=["GET"]),
                Route("/_simulator/assets", self.assets_log, methods=["GET"])]

    def gate(self, method: str, path: str, key: str | None, context: RequestContext) -> RequestError | None:
        """Authentication, rate limits and injected 5xx, in the order a client meets them (under the lock)."""
        state, config = self.state, self.config
        limiter_key = context.api_key_hash or "anonymous"
        now = state.clock()
        if key is None:
            return RequestError(401, "No API key was provided. Send your key with the request.",
                                code="missing_api_key", type="authentication_error")
        if config.api_keys is not None and key not in config.api_keys:
            return RequestError(401, "The API key is not valid.", code="invalid_api_key", type="authentication_error")
        for limiter, what in ((state.rate_limiter, "requests"), (state.create_rate_limiter, "video creations")):
            if limiter is state.create_rate_limiter and not self.is_create(method, path):
                continue
            decision = limiter.check(limiter_key, now)
            if not decision.allowed:
                wait = max(decision.reset_s, 0.001)
                return RequestError(429, f"Rate limit exceeded for {what}: {decision.limit} per minute.",
                                    code="rate_limit_exceeded", type="rate_limit_error",
                                    headers={"retry-after": str(max(1, math.ceil(wait)))})
        status = roll_server_error(state.fault_rng, config.error_rate)
        if status is not None:
            return RequestError(status, "The service had an error while processing the request.",
                                code="server_error", type="server_error")
        return None


class DialectApp(SimulatorApp):
    """A simulator app speaking a dialect: the gate below replaces the OpenAI one."""

    dialect: Dialect

    async def _gate(self, scope: Scope, receive: Receive, send: Send) -> None:
        dialect, state, config = self.dialect, self.simulator, self.simulator.config
        path: str = scope["path"]
        headers = Headers(scope=scope)
        query = dict(Request(scope).query_params)
        key = dialect.api_key(headers, query)
        context = RequestContext(request_id=state.new_request_id(), api_key_hash=hash_api_key(key))
        scope.setdefault("state", {})["sora_nb_simulator"] = context
        is_api = dialect.is_api(path)
        if is_api and config.latency > 0:
            await anyio.sleep(config.latency)
        rejection = None
        if is_api:
            with state.lock:
                if roll(state.fault_rng, config.drop_rate):
                    raise DropConnection("close")
                rejection = dialect.gate(scope["method"], path, key, context)
        send_with_headers = sender(send, [(b"x-request-id", context.request_id.encode())], context)

        if rejection is not None:
            response = JSONResponse(dialect.error_body(rejection), status_code=rejection.status,
                                    headers=rejection.headers)
            await response(scope, receive, send_with_headers)
            return
        await Starlette.__call__(self, scope, receive, send_with_headers)
        if context.drop is not None:
            raise DropConnection(context.drop)


def create_dialect_app(state: SimulatorState, make: Callable[[SimulatorState], Dialect]) -> DialectApp:
    """Build the app of one dialect around a simulator state."""
    dialect = make(state)

    async def request_error(request: Request, exc: Exception) -> Response:
        del request
        assert isinstance(exc, RequestError)
        return JSONResponse(dialect.error_body(exc), status_code=exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = RequestError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                             code="not_found" if exc.status_code == 404 else None)
        return JSONResponse(dialect.error_body(error), status_code=exc.status_code)

    app = DialectApp(
        routes=[*dialect.routes(), *dialect.simulator_routes()],
        exception_handlers={RequestError: request_error, HTTPException: http_error},
    )
    app.simulator = state
    app.state.simulator = state
    app.dialect = dialect
    return app
