"""The simulator's ASGI app: OpenAI's ``/v1/videos`` routes, validation, and the fault gate.

Every request passes through :meth:`SimulatorApp._gate` first. The gate sits *outside* Starlette's
middleware stack on purpose: Starlette's error middleware turns any exception into a 500, and a
dropped connection must reach the transport as no answer at all. The gate adds ``x-request-id`` and
the ``x-ratelimit-*`` headers to every response, then applies the configured faults in the order a
client meets them on the wire: latency, dropped connection, authentication, rate limits, random 5xx.

The route handlers, and the choices they make where the contract is silent, are in ``_routes``.
"""


from __future__ import annotations

import math

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from ._faults import DropConnection, RateDecision, format_reset, roll, roll_server_error
from ._routes import Api, RequestContext, http_error, request_error
from ._store import SimulatorState, hash_api_key
from ._validate import (
    RequestError,
)

__all__ = ["SimulatorApp", "create_state_app"]

_CREATE_PATHS = ("/v1/videos", "/v1/videos/edits", "/v1/videos/extensions")

_SERVER_ERRORS = {
    500: ("The server had an error while processing your request. Sorry about that!", "server_error"),
    502: ("Bad gateway. The upstream service did not answer; retry the request.", "bad_gateway"),
    503: ("The engine is currently overloaded, please try again later.", "service_unavailable"),
}



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



def create_state_app(state: SimulatorState) -> SimulatorApp:
    """Build the app around an existing state (``create_app`` is the public entry point)."""
    app = SimulatorApp(
        routes=Api(state).routes(),
        exception_handlers={RequestError: request_error, HTTPException: http_error},
    )
    app.simulator = state
    app.state.simulator = state
    return app
