"""The contract client: every operation of OpenAI's Videos API over one ``httpx.AsyncClient``.

This is the only module that sends requests (with the two halves mixed into its client: ``_download``,
which streams media to disk atomically, and ``_search``, which looks for lost creates). It builds the
requests, retries what is safe to retry, maps failures to the error tree, and keeps the key in the
client's headers and nowhere else. A create whose fate is unknown (its answer was lost) is sent again
only when a search of the server's list that worked and covered the time since it left proved it absent
(there is no idempotency key in the contract); when the server cannot be searched,
:class:`~sora_nb.AmbiguousCreateError` says so and nothing is re-sent.

Why it is still ~600 lines: what is left is one class, the operations of the contract (create, poll,
list, delete, remix, edit, extend, characters) and the one ``_send`` they all go through, with the answer
checks and error mapping every operation shares. Split further, a reader of an operation would chase
its retry and ambiguity rules across modules, and "the only module that sends requests" would stop
being true.

>>> import asyncio, sora_nb.simulator as sim
>>> async def main():
...     async with ContractClient(base_url="http://simulator.local/v1", api_key="any-key",
...                               transport=sim.SimulatorTransport()) as api:
...         video = await api.create(prompt="a corgi surfing", model="sora-2", seconds="4")
...         return video.status
>>> asyncio.run(main())
'queued'
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import dataclasses
import json as _json
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from . import _catalog
from ._capabilities import Capabilities
from ._clip import probe_clip
from ._download import Downloads
from ._errors import (
    AmbiguousCreateError,
    TransportError,
    UnexpectedResponseError,
    ValidationError,
    api_error_from_response,
)
from ._ratelimit import RateGate
from ._redact import logger, redact, redact_server_text, redact_url, watch_secrets
from ._retry import RETRYABLE_STATUS, RetryPolicy, poll_after_seconds, retry_after_seconds
from ._search import LIST_SETTLE, Claimed, Searching, _clock, _clock_behind
from ._types import Character, DeletedVideo, RateLimitInfo, Video, VideoError, VideoList
from ._validation import (
    MAX_VIDEO_UPLOAD_BYTES,
    ImageReference,
    ReferenceInput,
    check_character_clip,
    check_character_name,
    check_create,
    check_id,
    check_prompt,
    check_seconds,
    load_reference,
    read_user_file,
)

__all__ = [
    "DEFAULT_CREATE_TIMEOUT",
    "ContractClient",
    "build_create_request",
    "resending_while",
]

# Errors after which the server certainly did not act on the request: nothing (or not all) was sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError, httpx.WriteTimeout)
DEFAULT_CREATE_TIMEOUT = 180.0
"""Seconds a create may take to answer by default, whatever ``timeout`` is: gateways in front of a video
service often answer a create only once the job is queued upstream, and a create cut short by a timeout
is the one request whose fate is then unknown (ambiguous), where every other request is simply retried."""

_RESEND_WHILE: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("resend_while", default=None)


@contextmanager
def resending_while(wanted: Callable[[], bool]) -> Iterator[None]:
    """Within (in this task): a create refused for certain (a 429, a connection that could not be made: nothing
    was made) is sent again only while ``wanted()``; once not (its job was cancelled meanwhile), the refusal is
    raised instead of a create sent after ``cancel()`` returned, to be paid for and deleted.

    >>> with resending_while(lambda: False):
    ...     _resend_wanted()
    False
    >>> _resend_wanted()
    True
    """
    token = _RESEND_WHILE.set(wanted)
    try:
        yield
    finally:
        _RESEND_WHILE.reset(token)


def _resend_wanted() -> bool:
    wanted = _RESEND_WHILE.get()
    return wanted is None or wanted()


POOL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=None)
"""Connections of a client: as many as requests in flight (the runner caps those), each kept for the next.
httpx's default (100, 20 of them kept) made a 120-job sweep over TCP open a connection for each of its
480 requests, and queued requests past 100 in httpcore's pool, whose assignment is quadratic in them."""


def build_create_request(
    params: dict[str, Any],
    reference: ImageReference | dict[str, str] | None,
    *,
    multipart_only: bool = False,
    seconds_as_int: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments for ``httpx`` that send a create (pure: no I/O).

    JSON unless a file is attached or the server takes only multipart.

    >>> build_create_request({"prompt": "p", "model": "sora-2", "seconds": "4", "size": "720x1280"}, None)
    {'json': {'prompt': 'p', 'model': 'sora-2', 'seconds': '4', 'size': '720x1280'}}
    """
    body: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    if seconds_as_int and "seconds" in body:
        body["seconds"] = int(body["seconds"])
    body.update(extra or {})
    if isinstance(reference, ImageReference) or multipart_only:
        data = {k: (v if isinstance(v, str) else _form_value(v)) for k, v in body.items()}
        files: dict[str, Any] = {}
        if isinstance(reference, ImageReference):
            files["input_reference"] = (reference.filename, reference.data, reference.content_type)
        elif isinstance(reference, dict):
            # A JSON-style reference inside a multipart form travels as a JSON string field.
            data["input_reference"] = _json.dumps(reference)
        if not files:
            # Without a file httpx would send urlencoded: fields as parts force multipart/form-data.
            return {"files": _as_parts(data)}
        return {"data": data, "files": files}
    if isinstance(reference, dict):
        body["input_reference"] = reference
    return {"json": body}


def _form_value(value: Any) -> str:
    return _json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _as_parts(data: dict[str, str]) -> list[tuple[str, tuple[None, str]]]:
    """Form fields as multipart parts with no file name (how ``curl -F key=value`` sends them)."""
    return [(k, (None, v)) for k, v in data.items()]


@dataclass
class _Sent:
    """What one request produced: the response, already read for JSON calls."""

    response: httpx.Response
    data: Any


class ContractClient(Downloads, Searching):
    """Async client for the Videos API contract (``POST /videos``, poll, download, ...).

    Args:
        base_url: the API root, e.g. ``http://localhost:4000/v1``.
        api_key: sent as ``Authorization: Bearer`` to ``base_url``'s origin only; never logged.
        headers: extra headers for every request.
        timeout: seconds, or an ``httpx.Timeout``.
        create_timeout: seconds to wait for the answer to a create (and remix, extend, edit); default
            ``max(timeout, DEFAULT_CREATE_TIMEOUT)``, since a create cut short is the costly case.
        ambiguous_creates: what a create whose answer was lost does: ``"search"`` (look for it on the
            server, send it again only if a working search proves it absent, else raise
            :class:`~sora_nb.AmbiguousCreateError`) or ``"raise"`` at once (the runner decides itself,
            knowing every job of the run).
        transport: an ``httpx.AsyncBaseTransport``; the simulator plugs in here.
        retry: the retry policy for failures that are safe to retry.
        multipart_only: send creates as multipart even without a file (vLLM-Omni).
        seconds_as_int: send ``seconds`` as an integer (LLMGateway, DeepInfra).
        validate: check known OpenAI models' parameters before sending.
        capabilities: what the server takes, checked before sending (default: OpenAI's contract when
            ``validate``, else only the shapes).
        gate: a :class:`RateGate` shared with other clients of the same server.
        sleep, clock: injectable for tests, so that retries never sleep for real.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | httpx.Timeout = 60.0,
        create_timeout: float | None = None,
        ambiguous_creates: Literal["search", "raise"] = "search",
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        multipart_only: bool = False,
        seconds_as_int: bool = False,
        validate: bool = True,
        capabilities: Capabilities | None = None,
        gate: RateGate | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"base_url {redact_url(base_url)!r} is not an http(s) URL. "
                "Fix: pass e.g. base_url='http://localhost:4000/v1'."
            )
        # A user and password in the URL (https://user:pw@host/v1) become HTTP basic auth, but the URL that
        # httpx (and its INFO log, and every message) sees carries none. Both take the Authorization header:
        # an api_key given as well wins it (a Bearer key is what a Videos API checks).
        user_info = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or "")) if (
            (parts.username or parts.password) and not api_key) else None
        if api_key and parts.password:
            logger.warning("base_url has a password and api_key is given: the key is sent (Authorization: "
                           "Bearer), the password is not")
        host = parts.netloc.rpartition("@")[2]
        self.base_url = urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/"
        self._origin = (parts.scheme, host)
        self._api_key = api_key
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if isinstance(timeout, (int, float)):
            timeout = httpx.Timeout(timeout, connect=min(10.0, float(timeout)))
        read = create_timeout if create_timeout is not None else max(timeout.read or 0.0, DEFAULT_CREATE_TIMEOUT)
        self._create_timeout = httpx.Timeout(
            connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool
        )
        if ambiguous_creates not in ("search", "raise"):
            raise ValueError(f"ambiguous_creates={ambiguous_creates!r}: allowed 'search' or 'raise'.")
        self.ambiguous_creates = ambiguous_creates
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={**(headers or {}), **auth, "User-Agent": "sora-nb/0.1"},
            auth=user_info,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            limits=POOL_LIMITS,
        )
        # What redaction scrubs wherever it appears (a server may echo any of them): the key, the password
        # and the basic-auth header made of it (base64 of "user:pw", the password in another form).
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        self._secrets: tuple[str, ...] = tuple(s for s in (
            api_key, unquote(parts.password or ""), base64.b64encode(pair.encode()).decode() if parts.password else ""
        ) if s)
        watch_secrets(self)
        self._shown_url = redact_url(base_url.rstrip("/") + "/")
        # Links to other origins (CDNs) go through a client that has no credentials at all, made on
        # first use: most servers never hand one out.
        self._anon_client: httpx.AsyncClient | None = None
        self._anon_options: dict[str, Any] = {"timeout": timeout, "transport": transport, "limits": POOL_LIMITS}
        self.retry = retry or RetryPolicy()
        self.multipart_only = multipart_only
        self.seconds_as_int = seconds_as_int
        self.validate = validate
        self.capabilities = capabilities or (_catalog.CONTRACT if validate else None)
        self.gate = gate or RateGate(sleep=sleep, clock=clock)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.rate_limits = RateLimitInfo()
        self.refused_creates: Literal["retry", "raise"] = "retry"
        """What a create refused with a 429 (certainly not made) does: wait for the gate and ask again, or raise
        :class:`~sora_nb.RateLimitError` at once (a pool sends it to another backend instead)."""
        self.reconciled_creates = 0
        self.list_settle = LIST_SETTLE
        """Seconds between the two looks that prove a create absent (a fresh job may take a moment to be listed)."""
        self.server_clock_behind = 0.0
        """Seconds the server's clock is behind ours, from its last ``Date`` header (0 when ahead or unknown):
        a search for a lost create reads its window in the server's clock."""

    # ------------------------------------------------------------------ lifecycle
    async def aclose(self) -> None:
        await self._http.aclose()
        if self._anon_client is not None:
            await self._anon_client.aclose()

    @property
    def _anon(self) -> httpx.AsyncClient:
        if self._anon_client is None:
            # Redirects are followed by hand (``_open_stream``), where each hop's scheme and origin are checked.
            self._anon_client = httpx.AsyncClient(follow_redirects=False, **self._anon_options)
        return self._anon_client

    async def __aenter__(self) -> ContractClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ContractClient(base_url={self._shown_url!r}, key={'set' if self._api_key else 'none'})"

    # ------------------------------------------------------------------ operations
    async def create(
        self,
        *,
        prompt: str,
        model: str = _catalog.DEFAULT_MODEL,
        size: str = _catalog.DEFAULT_SIZE,
        seconds: str | int = _catalog.DEFAULT_SECONDS,
        input_reference: ReferenceInput | None = None,
        extra: dict[str, Any] | None = None,
        known_ids: Claimed = frozenset(),
        characters: tuple[str, ...] | list[str] = (),
    ) -> Video:
        """Start a video job (``POST /videos``). Validated first; never sent twice.

        ``known_ids`` are ids the caller already owns (or a function returning them, read when a search
        decides), so a search after a lost answer never adopts one of them. ``characters`` are the ids of
        at most two characters, sent as ``characters: [{"id": ...}]`` (their names must be in the prompt:
        ``client.generate`` checks that, knowing the names).
        """
        params = check_create(prompt=prompt, model=model, size=size, seconds=seconds, capabilities=self.capabilities)
        reference = load_reference(input_reference, params["size"]) if input_reference is not None else None
        if characters:
            ids = [check_id(character_id, field="characters") for character_id in characters]
            if len(ids) > _catalog.MAX_CHARACTERS:
                raise ValidationError(
                    f"{len(ids)} characters given. Allowed: at most {_catalog.MAX_CHARACTERS} per video. "
                    f"Fix: keep {_catalog.MAX_CHARACTERS} of them.",
                    field="characters",
                )
            extra = {**(extra or {}), "characters": [{"id": character_id} for character_id in ids]}
        request = build_create_request(
            params, reference, multipart_only=self.multipart_only, seconds_as_int=self.seconds_as_int, extra=extra
        )
        return await self._send_create("videos", request, params, known_ids, operation="create video")

    async def poll(self, video_id: str) -> tuple[Video, float | None]:
        """Retrieve a job, with the server's advice for the next poll (``openai-poll-after-ms``) in seconds."""
        sent = await self._send("GET", f"videos/{check_id(video_id)}", operation="retrieve video")
        return self._video(sent, "retrieve video"), poll_after_seconds(sent.response.headers)

    async def retrieve(self, video_id: str) -> Video:
        """``GET /videos/{id}``."""
        return (await self.poll(video_id))[0]

    async def list(
        self, *, limit: int = 20, order: Literal["asc", "desc"] = "desc", after: str | None = None
    ) -> VideoList:
        """One page of ``GET /videos`` (``limit`` 0..100, cursor ``after``)."""
        if not 0 <= limit <= 100:
            raise ValidationError(
                f"limit={limit} is out of range. Allowed: 0..100. Fix: pass limit=100 or less.", field="limit"
            )
        params: dict[str, Any] = {"limit": limit, "order": order}
        if after:
            params["after"] = after
        sent = await self._send("GET", "videos", params=params, operation="list videos")
        page = VideoList.parse(self._object(sent, "list videos"))
        # A gallery shows these: their errors are scrubbed like a retrieved job's (ids are checked at use).
        return dataclasses.replace(page, data=[self._scrubbed(video) for video in page.data])

    async def iter_videos(
        self, *, order: Literal["asc", "desc"] = "desc", page_size: int = 100
    ) -> AsyncIterator[Video]:
        """Every video on the server, page after page.

        >>> # async for video in api.iter_videos(): ...
        """
        after: str | None = None
        cursors: set[str] = set()
        while True:
            page = await self.list(limit=page_size, order=order, after=after)
            for video in page.data:
                yield video
            # A cursor seen before (A, B, A, ...) or an empty page that has "more" would page forever.
            if not page.has_more or not page.last_id or page.last_id in cursors or not page.data:
                return
            cursors.add(page.last_id)
            after = page.last_id

    async def delete(self, video_id: str) -> DeletedVideo:
        """``DELETE /videos/{id}``: removes the job and its assets (there is no cancel endpoint)."""
        sent = await self._send("DELETE", f"videos/{check_id(video_id)}", operation="delete video")
        return DeletedVideo.parse(self._object(sent, "delete video"))

    async def remix(self, video_id: str, prompt: str, *, known_ids: Claimed = frozenset()) -> Video:
        """A new job from a completed one with a new prompt (``POST /videos/{id}/remix``)."""
        body = {"prompt": check_prompt(prompt)}
        path = f"videos/{check_id(video_id)}/remix"
        match = {**body, "remixed_from_video_id": video_id}
        return await self._send_create(path, {"json": body}, match, known_ids, operation="remix video")

    async def edit(
        self, video: str | os.PathLike[str], prompt: str, *, known_ids: Claimed = frozenset()
    ) -> Video:
        """Edit a video given by id (or a local file) with a prompt (``POST /videos/edits``)."""
        body = {"prompt": check_prompt(prompt)}
        request = self._video_ref_request(video, body)
        return await self._send_create("videos/edits", request, body, known_ids, operation="edit video")

    async def extend(
        self,
        video: str | os.PathLike[str],
        prompt: str,
        *,
        seconds: str | int = "4",
        known_ids: Claimed = frozenset(),
    ) -> Video:
        """Continue a completed video (``POST /videos/extensions``); the result's ``seconds`` is the total."""
        # The contract's extensions take the same durations as creates; other servers decide for themselves.
        body = {
            "prompt": check_prompt(prompt),
            "seconds": check_seconds(seconds, "sora-2", capabilities=_catalog.CONTRACT if self.validate else None),
        }
        if body["seconds"].isdigit() and int(body["seconds"]) > _catalog.MAX_EXTENSION_SECONDS:
            raise ValidationError(
                f"seconds={seconds!r}: an extension adds at most {_catalog.MAX_EXTENSION_SECONDS} seconds. "
                f"Fix: pass seconds='{_catalog.MAX_EXTENSION_SECONDS}' or less.",
                field="seconds",
            )
        request = self._video_ref_request(video, body)
        match = {"prompt": body["prompt"]}
        return await self._send_create("videos/extensions", request, match, known_ids, operation="extend video")

    async def create_character(self, video: str | os.PathLike[str], name: str) -> Character:
        """Make a reusable character from a 2-4 s clip on disk (``POST /videos/characters``).

        The clip is checked first (2-4 s, 16:9 or 9:16, 720p to 1080p): one the server would refuse is never
        uploaded. ``client.create_character`` cuts a longer clip (or a finished job's video) to fit.
        """
        check_character_name(name)
        path = Path(video)
        width, height, duration = await asyncio.to_thread(probe_clip, path)
        check_character_clip(width, height, duration)
        data = read_user_file(path, field="video", limit=MAX_VIDEO_UPLOAD_BYTES, what="video file")
        files = {"video": (path.name, data, "video/mp4")}
        sent = await self._send(
            "POST",
            "videos/characters",
            data={"name": name},
            files=files,
            operation="create character",
            idempotent=False,
        )
        return self._character(sent, "create character")

    async def get_character(self, character_id: str) -> Character:
        """``GET /videos/characters/{id}``."""
        sent = await self._send("GET", f"videos/characters/{check_id(character_id)}", operation="get character")
        return self._character(sent, "get character")

    def _character(self, sent: _Sent, operation: str) -> Character:
        """The character answered, when its id is safe in a URL and a file name and its name is text."""
        character = Character.parse(self._object(sent, operation))
        try:
            check_id(character.id, field="character id")
            if not isinstance(character.name, str):
                raise ValidationError("the character has no name", field="name")
        except ValidationError as exc:
            raise _unsafe_answer(sent, operation, f"a character that is not safe to use ({exc}). It was not "
                                 "stored or used") from None
        return character

    def _video_ref_request(self, video: str | os.PathLike[str], body: dict[str, Any]) -> dict[str, Any]:
        """A source video for an extension or an edit: a ``str`` is always an id (ids come from servers,
        and a server's id must never name a local file to upload); only a ``Path`` uploads a file."""
        if isinstance(video, str):
            return {"json": {"video": {"id": check_id(video)}, **body}}
        if isinstance(video, os.PathLike):
            path = Path(video)
            data = read_user_file(path, field="video", limit=MAX_VIDEO_UPLOAD_BYTES, what="video file")
            return {"data": body, "files": {"video": (path.name, data, "video/mp4")}}
        raise TypeError(
            f"video must be an id (str) or a local file (pathlib.Path), got {type(video).__name__}. "
            "Fix: pass the id the server returned, or pathlib.Path('clip.mp4') to upload a file."
        )

    def _video(self, sent: _Sent, operation: str) -> Video:
        data = self._object(sent, operation)
        if not (data.get("id") or data.get("request_id")):
            raise UnexpectedResponseError(
                f"{operation}: the answer has no video id. Fix: check that base_url points at a Videos API.",
                status_code=sent.response.status_code,
                body=data,
            )
        return self._checked(Video.parse(data), sent, operation)

    def _scrubbed(self, video: Video) -> Video:
        """``video`` with its error's code and message redacted (a server may echo the key in them) and clipped."""
        if video.error is None:
            return video
        code = None if video.error.code is None else redact_server_text(video.error.code, self._api_key)
        message = redact_server_text(video.error.message, self._api_key)
        return dataclasses.replace(video, error=VideoError(code=code, message=message))

    def _checked(self, video: Video, sent: _Sent, operation: str, *, segments: bool = False) -> Video:
        """``video`` when its id is safe to use in a URL or a file name; else the server is not trusted.

        Its error (code and message, bound for the ledger, DataFrames and cards) is redacted here, at the
        edge: a server may echo the key back in them.
        """
        video = self._scrubbed(video)
        try:
            check_id(video.id, segments=segments)
        except ValidationError as exc:
            raise _unsafe_answer(sent, operation, f"with an id that is not safe to use ({exc}). It was not used "
                                 "in any URL or file name") from None
        return video

    @staticmethod
    def _object(sent: _Sent, operation: str) -> dict[str, Any]:
        if not isinstance(sent.data, dict):
            raise UnexpectedResponseError(
                f"{operation}: expected a JSON object, got {type(sent.data).__name__}. "
                "Fix: check that base_url points at a Videos API.",
                status_code=sent.response.status_code,
                body=sent.data,
            )
        return sent.data

    async def _send_create(
        self, path: str, request: dict[str, Any], match: dict[str, Any], known_ids: Claimed, *, operation: str
    ) -> Video:
        """Send a request that starts a billed job: sent again only when the server surely did not start it.

        When the outcome is unknown (the connection dropped after sending, a timeout, a 5xx that may
        have come after the job was made), the job is looked for in the server's list; it is sent again
        only when that search worked and proved it absent. Otherwise :class:`AmbiguousCreateError`.
        """
        attempt = 0
        while True:
            sent_at = time.time()
            try:
                try:
                    sent = await self._send(
                        "POST", path, operation=operation, idempotent=False, timeout=self._create_timeout, **request
                    )
                    return self._video(sent, operation)
                except UnexpectedResponseError as exc:
                    # A 2xx whose body cannot be read (cut short, no id): the server took the create, and may
                    # have billed it; its answer is as lost as a dropped one. Not so an unsafe id (it is known),
                    # nor an HTML page (a login page or the wrong base URL, which made nothing).
                    if exc.code in ("unsafe_id", "html_page") or not 200 <= (exc.status_code or 0) < 300:
                        raise
                    raise _AmbiguousCreate(f"HTTP {exc.status_code} with an answer that cannot be read", exc) from exc
            except _AmbiguousCreate as ambiguous:
                lost = AmbiguousCreateError(
                    f"{operation}: the request may have reached the server (sent at {_clock(sent_at)}) but its "
                    f"answer was lost ({ambiguous.reason}). It was not sent again. Fix: look for it with "
                    "reconcile(), or in the server's list, before sending it again.",
                    sent_at=sent_at,
                    reason=ambiguous.reason,
                )
                if self.ambiguous_creates == "raise":
                    raise lost from ambiguous.error
                found = await self.reconcile(match, since=sent_at, known_ids=known_ids, lost=lost)
                if found is not None:
                    self.reconciled_creates += 1
                    logger.warning(
                        "%s: outcome unknown (%s); found job %s on the server, not re-sending",
                        operation,
                        ambiguous.reason,
                        found.id,
                    )
                    return found
                if attempt >= self.retry.max_retries:
                    raise ambiguous.error from None
                logger.warning(
                    "%s: outcome unknown (%s) and the server's list proves it absent; sending again",
                    operation,
                    ambiguous.reason,
                )
                await self._sleep(self.retry.delay(attempt, rng=self._rng))
                attempt += 1

    async def _send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        idempotent: bool = True,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: Any = None,
        timeout: httpx.Timeout | None = None,
    ) -> _Sent:
        """One logical request with retries. Non-idempotent ones raise ``_AmbiguousCreate`` when unsure."""
        attempt = 0
        refused: Exception | None = None  # what refused the last attempt, when it is sent again
        while True:
            await self.gate.wait()
            if refused is not None and not idempotent and not _resend_wanted():
                raise refused
            t0 = time.monotonic()
            try:
                extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
                response = await self._http.request(
                    method, path, params=params, json=json, data=data, files=files, **extra
                )
                await response.aread()
            except httpx.TransportError as exc:
                logger.debug("%s %s -> %s", method, path, type(exc).__name__)
                certain = isinstance(exc, _NOT_SENT)
                transport_error = self._transport_error(exc, operation)
                if not idempotent and not certain:
                    raise _AmbiguousCreate(type(exc).__name__, transport_error) from exc
                if attempt >= self.retry.max_retries:
                    raise transport_error from None
                await self._sleep(self.retry.delay(attempt, rng=self._rng))
                attempt, refused = attempt + 1, transport_error
                continue
            self._observe(response)
            logger.debug(
                "%s %s -> %d in %.3fs",
                method,
                redact_url(str(response.url)),
                response.status_code,
                time.monotonic() - t0,
            )
            if response.status_code < 400:
                return _Sent(response=response, data=self._json(response, operation))
            retry_after = retry_after_seconds(response.headers)
            error = api_error_from_response(
                response, operation=operation, retry_after=retry_after, secret=self._api_key
            )
            if response.status_code == 429:
                self.gate.pause(self.retry.delay(attempt, retry_after=retry_after, rng=self._rng))
            if response.status_code not in RETRYABLE_STATUS or (
                    response.status_code == 429 and not idempotent and self.refused_creates == "raise"):
                raise error
            if not idempotent and response.status_code != 429:
                # A 5xx or 408 may come after the job was created (e.g. from a proxy).
                raise _AmbiguousCreate(f"HTTP {response.status_code}", error)
            if attempt >= self.retry.max_retries:
                raise error
            logger.warning(
                "%s: HTTP %d, retry %d of %d", operation, response.status_code, attempt + 1, self.retry.max_retries
            )
            if response.status_code != 429:
                await self._sleep(self.retry.delay(attempt, retry_after=retry_after, rng=self._rng))
            attempt, refused = attempt + 1, error

    def _observe(self, response: httpx.Response) -> None:
        self.server_clock_behind = _clock_behind(response.headers.get("date"), time.time())
        info = RateLimitInfo.from_headers(response.headers)
        if info.remaining_requests is not None or info.limit_requests is not None:
            self.rate_limits = info
            self.gate.observe(info)

    def _json(self, response: httpx.Response, operation: str) -> Any:
        ctype = response.headers.get("content-type", "")
        if "html" in ctype:
            raise UnexpectedResponseError(
                f"{operation}: the server answered HTTP {response.status_code} with an HTML page, not JSON "
                "(a login page, a proxy, or the wrong base URL). Fix: check base_url; it should end in /v1.",
                status_code=response.status_code,
                code="html_page",
                body=redact(response.text[:300], self._api_key),
            )
        try:
            return response.json()
        except ValueError:
            raise UnexpectedResponseError(
                f"{operation}: the answer is not valid JSON ({len(response.content)} bytes, content-type "
                f"{ctype or 'none'}). Fix: check base_url and the server's logs.",
                status_code=response.status_code,
                body=redact(response.text[:300], self._api_key),
            ) from None

    def _transport_error(self, exc: httpx.TransportError, operation: str) -> TransportError:
        where = urlsplit(self.base_url)
        host = f"{where.scheme}://{where.netloc}"
        if isinstance(exc, httpx.TimeoutException):
            hint = "the server is slow or unreachable. Fix: raise timeout=..., or try again later."
        elif isinstance(exc, httpx.ConnectError):
            hint = "cannot connect. Fix: check base_url and that the server is running."
        else:
            hint = "the connection broke. Fix: try again; check proxies between you and the server."
        return TransportError(f"{operation} at {host}: {type(exc).__name__}: {hint}")

class _AmbiguousCreate(Exception):
    def __init__(self, reason: str, error: Exception) -> None:
        super().__init__(reason)
        self.reason, self.error = reason, error


def _unsafe_answer(sent: _Sent, operation: str, what: str) -> UnexpectedResponseError:
    """The error for an answer whose ids or fields are not safe to use (the server is not trusted)."""
    return UnexpectedResponseError(
        f"{operation}: the server answered {what}. Fix: check that base_url points at the Videos API you meant "
        "to use.",
        status_code=sent.response.status_code,
        code="unsafe_id",
        body=None,
    )
