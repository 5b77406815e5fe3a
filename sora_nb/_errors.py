"""The one error tree of sora_nb.

::

    SoraError                      everything sora_nb raises on purpose
    ├── ConfigurationError         no key, unknown profile, bad base URL (also a ValueError)
    ├── ValidationError            a request the server would reject (also a ValueError)
    ├── BudgetExceededError        a sweep's estimated cost is over its budget; nothing sent (also a ValueError)
    ├── APIError                   the server answered with an HTTP error
    │   ├── BadRequestError        400, 422
    │   ├── AuthenticationError    401
    │   ├── PermissionDeniedError  403
    │   ├── NotFoundError          404
    │   ├── ConflictError          409
    │   ├── RateLimitError         429 (``retry_after``)
    │   ├── ServerError            5xx
    │   └── UnexpectedResponseError  a 2xx that is not what the contract says (HTML page, bad JSON)
    ├── TransportError             the request did not get an answer (connect, read, timeout)
    │   └── AmbiguousCreateError   a create may have started a job, and the server cannot be searched for it
    ├── DownloadError              bytes could not be fetched as asked (wrong content type, truncated)
    ├── StorageError               the run's files cannot be written: disk full, read-only (also an OSError)
    ├── RunLockedError             another live driver holds the run (``pid``, ``host``, ``since``)
    ├── UnsupportedOperationError  the service has no such operation (delete, list, remix, thumbnails, ...)
    ├── JobFailedError             a job reached ``failed``/``cancelled``/``expired`` (``.job``)
    └── JobTimeoutError            a wait ran past its deadline (``.job``); the job goes on

Every message says what to do next. Messages never contain an API key: they are built from the
server's error body and the request's method and redacted path only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from ._cost import Estimate

__all__ = [
    "APIError",
    "AmbiguousCreateError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigurationError",
    "ConflictError",
    "DownloadError",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RunLockedError",
    "ServerError",
    "SoraError",
    "StorageError",
    "TransportError",
    "UnexpectedResponseError",
    "UnsupportedOperationError",
    "ValidationError",
]


class SoraError(Exception):
    """Root of every error sora_nb raises on purpose."""


class ConfigurationError(SoraError, ValueError):
    """The client cannot be set up as asked (missing key, unknown profile, bad base URL)."""


class ValidationError(SoraError, ValueError):
    """A request that the server would reject, caught before it is sent.

    ``field`` names the offending parameter and ``allowed`` lists the values it accepts.
    """

    def __init__(self, message: str, *, field: str, allowed: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed


class BudgetExceededError(SoraError, ValueError):
    """A sweep's estimated cost is over ``budget_usd``; nothing was sent.

    ``estimate`` is the :class:`sora_nb.Estimate` and ``budget_usd`` the budget it was checked against.
    """

    def __init__(self, message: str, *, estimate: Estimate, budget_usd: float) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.budget_usd = budget_usd


class APIError(SoraError):
    """The server answered with an HTTP error status.

    Attributes: ``status_code``, ``code`` and ``type`` and ``param`` from the error envelope,
    ``request_id`` (``x-request-id``) and ``body`` (the parsed JSON, or the text when it was not JSON).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.type = type
        self.param = param
        self.request_id = request_id
        self.body = body


class BadRequestError(APIError):
    """400 or 422: the server rejected the request's content."""


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIError):
    """403: the key is valid but may not do this."""


class NotFoundError(APIError):
    """404: no such video, character or path."""


class ConflictError(APIError):
    """409: the resource is not in a state that allows this (e.g. remixing an unfinished video)."""


class RateLimitError(APIError):
    """429: too many requests; ``retry_after`` is the server's advice in seconds, when given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server failed; retried automatically before this is raised."""


class UnexpectedResponseError(APIError):
    """A success status whose body is not what the contract says (an HTML proxy page, broken JSON)."""


class TransportError(SoraError):
    """No answer came back: connection refused, DNS failure, read or connect timeout."""


class AmbiguousCreateError(TransportError):
    """A create (or remix, extend) may have reached the server, but its answer was lost, and the server
    could not be searched for the job (no list endpoint, or the list failed). It is not sent again, so
    nothing is paid twice; the message says where to check before retrying by hand.

    Attributes:
        sent_at: unix time the create left (``None`` when unknown).
        reason: why its fate is unknown (``"ReadTimeout"``, ``"HTTP 502"``).
        problem: why the server could not be searched, or ``None`` when no search was made yet.
    """

    def __init__(
        self, message: str, *, sent_at: float | None = None, reason: str | None = None, problem: str | None = None
    ) -> None:
        super().__init__(message)
        self.sent_at, self.reason, self.problem = sent_at, reason, problem


class DownloadError(SoraError):
    """Bytes could not be fetched as asked (wrong content type, truncated, too many redirects).

    A file that cannot be written where asked is a :class:`StorageError`."""


class StorageError(SoraError, OSError):
    """The run's files could not be written: the disk is full, read-only, or over a quota.

    Jobs it ended are ``failed`` with ``error_code == "storage_error"`` and stay resumable: after freeing
    space, ``sora_nb.resume(run_dir)`` downloads the ones the server made and creates the ones never sent,
    paying for none twice. ``run.wait()`` raises it with ``jobs`` (those jobs) and ``run_dir`` set.
    """

    def __init__(self, message: str, *, run_dir: Any = None, jobs: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.jobs = jobs


class RunLockedError(SoraError):
    """Another driver holds the run: a second one would send its unsent jobs again, and pay twice.

    ``pid``, ``host`` and ``since`` (unix time) name the holder when it wrote them. The lock is the
    operating system's: it dies with its process, so it is never left behind by a crash.
    """

    def __init__(
        self, message: str, *, run_dir: Any, pid: int | None, host: str | None, since: float | None
    ) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.pid = pid
        self.host = host
        self.since = since


class UnsupportedOperationError(SoraError, NotImplementedError):
    """The service has no such operation (delete, list, remix, extend, a thumbnail variant, ...).

    The profile's ``capabilities`` say beforehand what a service supports; this is raised when asked anyway.
    """


class JobFailedError(SoraError):
    """A job ended without a video. ``job`` is the failed job, with ``error`` set."""

    def __init__(self, message: str, *, job: Any) -> None:
        super().__init__(message)
        self.job = job


class JobTimeoutError(SoraError, TimeoutError):
    """A wait ran past its deadline. The job is not cancelled: wait again, or cancel it."""

    def __init__(self, message: str, *, job: Any) -> None:
        super().__init__(message)
        self.job = job


_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}

_NEXT_STEP: dict[type[APIError], str] = {
    BadRequestError: "Fix: change the request as the message says, then send it again.",
    AuthenticationError: (
        "Fix: Check the API key: pass api_key=..., or set the profile's environment variable "
        "(e.g. OPENAI_API_KEY); keys are never shown in messages."
    ),
    PermissionDeniedError: "Fix: this key may not do that: check the key's project, organisation or model access.",
    NotFoundError: "Fix: Check the id and the base URL (it should end in /v1 for OpenAI-compatible servers).",
    ConflictError: "Fix: wait until the video is completed (or failed) before doing this.",
    RateLimitError: "Fix: slow down: lower max_concurrency, or wait and retry; sora_nb already retried with backoff.",
    ServerError: (
        "Fix: the server failed and sora_nb retried with backoff. Try again later or check the server's status."
    ),
}


def api_error_from_response(
    response: httpx.Response, *, operation: str, retry_after: float | None = None, secret: str | None = None
) -> APIError:
    """Build the right APIError for an HTTP error response (pure: reads the already-read body).

    Servers echo parts of keys in 401 messages, so the message and body are redacted (``secret``
    is the client's own key, scrubbed wherever it appears).
    """
    from ._redact import redact, redact_server_text

    status = response.status_code
    cls = _STATUS_ERRORS.get(status, ServerError if status >= 500 else APIError)
    body: Any
    code = type_ = param = None
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500]
    server_message = None
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            server_message = err.get("message")
            code, type_, param = err.get("code"), err.get("type"), err.get("param")
        elif isinstance(err, str):
            server_message = err
    if server_message is None:
        ctype = response.headers.get("content-type", "")
        server_message = (
            "the server answered with an HTML page (a proxy or the wrong base URL?)"
            if "html" in ctype
            else "no error message in the response"
        )
    # Every string the server sent is untrusted text bound for the ledger, DataFrames, cards and logs:
    # a server may echo the key (or anything) in any of them, so each is redacted, not only the message.
    def scrub(value: Any) -> str | None:
        return None if value is None else redact_server_text(str(value), secret)

    code, type_, param = scrub(code), scrub(type_), scrub(param)
    where = f" (param: {param})" if param else ""
    hint = _NEXT_STEP.get(cls, "Fix: check the server's documentation for this status.")
    server_message = redact_server_text(str(server_message), secret)
    message = redact(f"{operation} failed with HTTP {status}: {server_message}{where}. {hint}", secret)
    if isinstance(body, str):
        body = redact(body, secret)
    elif body is not None:
        import json

        body = json.loads(redact(json.dumps(body), secret))
    kwargs: dict[str, Any] = dict(
        status_code=status,
        code=code,
        type=type_,
        param=param,
        request_id=scrub(response.headers.get("x-request-id")),
        body=body,
    )
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)


def storage_error(
    exc: BaseException, *, doing: str, run_dir: Path, resumable: bool = True, jobs: tuple[Any, ...] = ()
) -> StorageError:
    """A :class:`StorageError` for a failed write to a run directory, saying why and what to do: resume
    the run, or, when it is not ``resumable`` (no ledger yet: nothing was sent), start it again."""
    if isinstance(exc, StorageError) and isinstance(exc.__cause__, OSError):
        exc = exc.__cause__  # the disk's own words, not the lower layer's advice
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
    if resumable:
        then = (
            f"sora_nb.resume({str(run_dir)!r}): videos already saved are kept, jobs the server made are "
            "downloaded, unsent ones are created, none is paid twice."
        )
    else:
        then = "start it again: nothing was sent."
    return StorageError(
        f"could not {doing} in {run_dir}: {cause}{where}. Fix: free space on that disk (or make the directory "
        f"writable), then {then}",
        run_dir=run_dir,
        jobs=jobs,
    )
