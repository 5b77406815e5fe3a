"""Typed objects of the contract, and the pure functions that parse server JSON into them.

Parsing is tolerant (CONTRACT.md §2): status words are normalised to one vocabulary, ``progress``
may be null or missing, ``seconds`` may be an int, ``error`` may be a string, and fields the
contract does not name are kept in ``extra`` instead of being dropped or crashing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "TERMINAL_STATUSES",
    "JobStatus",
    "Character",
    "DeletedVideo",
    "JobKind",
    "JobSpec",
    "RateLimitInfo",
    "Status",
    "Video",
    "VideoError",
    "VideoList",
    "Variant",
    "normalize_status",
]

Status = Literal["queued", "in_progress", "completed", "failed", "cancelled", "expired", "unknown"]
"""The toolkit's one status vocabulary. ``unknown`` is a word no server table knows: not terminal."""

JobStatus = Literal[
    "pending_submit", "queued", "in_progress", "completed", "failed", "cancelled", "expired", "unknown", "ambiguous",
]  # fmt: skip
"""A job's status (``job.status``, the ledger's ``status``): ``pending_submit`` (local: not created yet), then the
server's :data:`Status` words, and ``ambiguous`` (local: a create may have made the job, but its answer was lost
and the server could not be searched for it)."""

Variant = Literal["video", "thumbnail", "spritesheet"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "expired"})

_STATUS_WORDS: dict[str, Status] = {
    "queued": "queued",
    "pending": "queued",
    "submitted": "queued",
    "in_progress": "in_progress",
    "processing": "in_progress",
    "running": "in_progress",
    "generating": "in_progress",
    "completed": "completed",
    "complete": "completed",
    "done": "completed",
    "succeeded": "completed",
    "success": "completed",
    "failed": "failed",
    "error": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "expired": "expired",
}


def normalize_status(word: object) -> Status:
    """Map any server's status word onto the toolkit's vocabulary.

    >>> normalize_status("processing"), normalize_status("Succeeded"), normalize_status("weird")
    ('in_progress', 'completed', 'unknown')
    """
    if not isinstance(word, str):
        return "unknown"
    return _STATUS_WORDS.get(word.strip().lower(), "unknown")


def _as_int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class VideoError:
    """Why a job failed: ``code`` (e.g. ``moderation_blocked``) and a human ``message``."""

    code: str | None
    message: str

    @classmethod
    def parse(cls, raw: object) -> VideoError | None:
        if raw is None or raw == "" or raw == {}:
            return None
        if isinstance(raw, str):
            return cls(code=None, message=raw)
        if isinstance(raw, dict):
            code = raw.get("code")
            message = raw.get("message") or raw.get("detail") or str(code or "unknown error")
            return cls(code=str(code) if code is not None else None, message=str(message))
        return cls(code=None, message=str(raw))


@dataclass(frozen=True)
class Video:
    """A video job as the server last described it.

    ``status`` is normalised (``status_raw`` keeps the server's word); ``progress`` is ``None`` when the
    server does not report it; ``seconds`` is always a string, as in the contract.

    >>> v = Video.parse({"id": "video_1", "status": "processing", "seconds": 8, "progress": None})
    >>> v.status, v.seconds, v.progress, v.done
    ('in_progress', '8', None, False)
    """

    id: str
    status: Status
    status_raw: str | None = None
    model: str | None = None
    progress: int | None = None
    created_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    prompt: str | None = None
    size: str | None = None
    seconds: str | None = None
    remixed_from_video_id: str | None = None
    error: VideoError | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def done(self) -> bool:
        """True once the job can change no more (completed, failed, cancelled or expired)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Video:
        known = {f.name for f in dataclasses.fields(cls)}
        seconds = raw.get("seconds")
        progress = _as_int(raw.get("progress"))
        return cls(
            id=str(raw.get("id") or raw.get("request_id") or ""),
            status=normalize_status(raw.get("status")),
            status_raw=raw.get("status") if isinstance(raw.get("status"), str) else None,
            model=raw.get("model"),
            progress=None if progress is None else max(0, min(100, progress)),
            created_at=_as_int(raw.get("created_at")),
            completed_at=_as_int(raw.get("completed_at")),
            expires_at=_as_int(raw.get("expires_at")),
            prompt=raw.get("prompt"),
            size=raw.get("size"),
            seconds=None if seconds is None else str(seconds),
            remixed_from_video_id=raw.get("remixed_from_video_id"),
            error=VideoError.parse(raw.get("error")),
            extra={k: v for k, v in raw.items() if k not in known and k != "object"},
        )


@dataclass(frozen=True)
class VideoList:
    """One page of ``GET /videos``; pass ``last_id`` as ``after`` for the next page."""

    data: list[Video]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> VideoList:
        data = [Video.parse(item) for item in raw.get("data") or [] if isinstance(item, dict)]
        last_id = raw.get("last_id") or (data[-1].id if data else None)
        first_id = raw.get("first_id") or (data[0].id if data else None)
        return cls(data=data, first_id=first_id, last_id=last_id, has_more=bool(raw.get("has_more")))


@dataclass(frozen=True)
class DeletedVideo:
    """The answer to ``DELETE /videos/{id}``."""

    id: str
    deleted: bool

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> DeletedVideo:
        return cls(id=str(raw.get("id", "")), deleted=bool(raw.get("deleted", False)))


@dataclass(frozen=True)
class Character:
    """A reusable character (a cameo) made from a short clip (``POST /videos/characters``).

    Use it by its ``name`` in a prompt and pass it in ``characters=[...]``; ``poster_path`` is a still of the
    clip kept on disk by ``client.create_character`` (``None`` when the character came from the server only).

    >>> Character.parse({"id": "char_1", "name": "Ada", "created_at": 1700000000})
    Character(id='char_1', name='Ada', created_at=1700000000, poster_path=None)
    """

    id: str | None
    name: str | None
    created_at: int | None
    poster_path: str | None = field(default=None, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Character:
        known = {"id", "name", "created_at"}
        return cls(
            id=raw.get("id"),
            name=raw.get("name"),
            created_at=_as_int(raw.get("created_at")),
            extra={k: v for k, v in raw.items() if k not in known},
        )


@dataclass(frozen=True)
class RateLimitInfo:
    """The rate-limit headers of the last response (``None`` where the server sent none)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: str | None = None

    @classmethod
    def from_headers(cls, headers: Any) -> RateLimitInfo:
        return cls(
            limit_requests=_as_int(headers.get("x-ratelimit-limit-requests")),
            remaining_requests=_as_int(headers.get("x-ratelimit-remaining-requests")),
            reset_requests=headers.get("x-ratelimit-reset-requests"),
        )


assert set(get_args(Status)) >= set(_STATUS_WORDS.values())


JobKind = Literal["create", "remix", "extend", "edit", "stitch"]
"""``stitch``: a storyboard's joined file, made locally from its shots (never sent)."""


@dataclass(frozen=True)
class JobSpec:
    """What one job asks for: the request, and the sweep coordinates it came from.

    ``prompt`` is the prompt as the user wrote it (templates filled); the style preset is applied when
    the request is built. ``axes`` holds the sweep's coordinates for this job (``prompt``, ``model``,
    ``size``, ``seconds``, ``style``, ``repeat`` and any template variables), which become DataFrame
    columns. ``parent_id`` is the remote id of the source video for remix/extend/edit.
    ``backend`` pins the job to one backend of a pool (the same request on two backends is two requests).
    """

    prompt: str
    model: str
    size: str
    seconds: str
    style: str | None = None
    input_reference: str | None = None
    kind: JobKind = "create"
    parent_id: str | None = None
    repeat: int = 0
    axes: dict[str, Any] = field(default_factory=dict, compare=False)
    retry_of: str | None = field(default=None, compare=False)
    """The local id of the failed job this one retries (the same request: not part of equality)."""
    characters: tuple[tuple[str, str], ...] = ()
    """The characters (cameos) the create names, as ``(id, name)``: the ids are sent, the names are shown."""
    backend: str | None = None
    """The pool backend this job must go to (a sweep's ``backend`` axis); ``None``: the pool chooses."""

    def __post_init__(self) -> None:
        # Read back from the ledger's JSON, pairs are lists: kept as tuples, so equal specs stay equal.
        object.__setattr__(self, "characters", tuple((str(i), str(n)) for i, n in self.characters))
