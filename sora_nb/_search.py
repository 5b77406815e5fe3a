"""The search for lost creates: is a job whose create lost its answer on the server, and whose is it?

There is no idempotency key in the contract, so a create whose answer was lost (a dropped connection, a
timeout, a 5xx that may have come after the job was made) can only be resolved by looking through the
server's list for a job like it made since it left. :class:`Searching` is mixed into
:class:`~sora_nb._contract.ContractClient`, whose ``list`` it walks; the audit of a run (``_audit``) uses the
same :func:`matches` and :data:`CLOCK_SKEW`. Kept apart from the operations because its rules (the window in
the server's clock, when a walk proves absence, who owns a job) are their own subject.

>>> matches(Video.parse({"id": "v", "status": "queued", "prompt": "a cat"}), {"prompt": "a dog"})
False
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._errors import AmbiguousCreateError, APIError, TransportError, UnsupportedOperationError
from ._types import Video, VideoList

__all__ = ["CLOCK_SKEW", "Claimed", "CreateSearch", "LIST_SETTLE", "Searching", "matches"]

LIST_SETTLE = 1.0
"""Seconds between the two looks that prove a create absent, by default."""
CLOCK_SKEW = 120.0
"""Seconds of clock difference allowed between us and the server when searching for a create."""

Claimed = Collection[str] | Callable[[], Collection[str]]
"""Remote ids already owned (or a function returning them, read when a search decides): never adopted."""


@dataclass(frozen=True)
class CreateSearch:
    """One look through the server's list for jobs like a create whose answer was lost.

    Attributes:
        found: the matching jobs made since the create left, newest first.
        covered: the list worked and reached back to before the create left (or to its end), so a
            job that is not in ``found`` is not on the server.
        problem: why the server could not be searched (``covered`` is then False).
    """

    found: tuple[Video, ...]
    covered: bool
    problem: str | None = None


class Searching:
    """Looking through the server's list for a create whose answer was lost, and adopting what no one owns."""

    # Owned by ContractClient, the class this is mixed into.
    list_settle: float
    server_clock_behind: float
    _sleep: Callable[[float], Awaitable[None]]

    if TYPE_CHECKING:

        async def list(
            self, *, limit: int = 20, order: Literal["asc", "desc"] = "desc", after: str | None = None
        ) -> VideoList: ...

    async def search_created(self, match: dict[str, Any], *, since: float) -> CreateSearch:
        """One walk of the server's list, newest first, for jobs like ``match`` made since ``since`` (unix time).

        ``covered`` says whether the walk can prove absence: every page was read back to before ``since``
        (less :data:`CLOCK_SKEW`), or to the list's end. A list that fails (no list route, a timeout, a 5xx
        after retries) proves nothing.
        """
        found: list[Video] = []
        after: str | None = None
        cursors: set[str] = set()
        newest_first = True
        previous: int | None = None
        try:
            while True:
                page = await self.list(limit=100, order="desc", after=after)
                # The window in the server's clock: a job it made a moment ago may be stamped minutes "ago".
                start = since - self.server_clock_behind - CLOCK_SKEW
                for video in page.data:
                    if video.created_at is not None and previous is not None and video.created_at > previous:
                        newest_first = False  # a server that ignores order=desc: read it all
                    previous = video.created_at if video.created_at is not None else previous
                    if newest_first and video.created_at is not None and video.created_at < start:
                        return CreateSearch(tuple(found), covered=True)
                    if matches(video, match):
                        found.append(video)
                if not page.has_more:
                    return CreateSearch(tuple(found), covered=True)
                # A cursor seen before (A, B, A, ...) or an empty page that has "more" would page forever.
                if not page.last_id or page.last_id in cursors or not page.data:
                    return CreateSearch(tuple(found), covered=False, problem="the list says it has more, but "
                                        "its cursor does not move on")
                cursors.add(page.last_id)
                after = page.last_id
        except (APIError, TransportError, UnsupportedOperationError) as exc:
            return CreateSearch(tuple(found), covered=False, problem=f"listing jobs failed: {exc}")

    async def reconcile(
        self,
        match: dict[str, Any],
        *,
        since: float,
        known_ids: Claimed = frozenset(),
        lost: AmbiguousCreateError | None = None,
    ) -> Video | None:
        """The job like ``match`` that the server made since ``since`` (unix time) and no one owns, or ``None``.

        ``None`` only when a search that worked and covered the window found nothing, twice a second apart
        (a fresh job may take a moment to be listed). When the server could not be searched, raises
        :class:`AmbiguousCreateError` (``lost``, the create's own, with the search's problem added): the
        caller must not send it again.
        """
        for look in range(2):
            if look:
                await self._sleep(self.list_settle)
            search = await self.search_created(match, since=since)
            claimed = known_ids() if callable(known_ids) else known_ids  # read now: ids claimed meanwhile count
            for video in search.found:
                if video.id not in claimed:
                    return video
            if not search.covered:
                raise _unsearchable(lost, search.problem or "the server's list could not be read", since)
        return None


_MATCHED = ("prompt", "model", "size", "seconds", "remixed_from_video_id")


def matches(video: Video, match: dict[str, Any]) -> bool:
    """Whether ``video`` could be the job a request like ``match`` made (fields the server leaves out match).

    >>> matches(Video.parse({"id": "v", "status": "queued", "prompt": "a cat", "seconds": 4}),
    ...         {"prompt": "a cat", "seconds": "4", "model": "sora-2"})
    True
    """
    return all(
        str(getattr(video, key)) == str(match[key])
        for key in _MATCHED
        if match.get(key) is not None and getattr(video, key) is not None
    )


def _clock(when: float) -> str:
    """A unix time as ``2026-12-01 14:05:09 UTC``, for messages."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


def _unsearchable(lost: AmbiguousCreateError | None, problem: str, since: float) -> AmbiguousCreateError:
    """The error of a create whose fate stays unknown because the server could not be searched."""
    what = str(lost).split(". It was not sent again", 1)[0] if lost else (
        f"a create sent at {_clock(since)} may have reached the server"
    )
    return AmbiguousCreateError(
        f"{what}, and the server could not be searched for it ({problem}). It was not sent again, so as not to "
        "pay twice. Fix: reconcile() later (run.reconcile() for a run) to look again and adopt it; check the "
        "service's dashboard or logs; send it again by hand only once you know it was not made.",
        sent_at=lost.sent_at if lost else since,
        reason=lost.reason if lost else None,
        problem=problem,
    )


def _clock_behind(date: str | None, now: float) -> float:
    """Seconds a server's clock (its ``Date`` header) is behind ``now``; 0 when ahead or unreadable.

    >>> _clock_behind("Tue, 01 Dec 2026 14:50:00 GMT", 1796137200.0), _clock_behind(None, 0.0)
    (600.0, 0.0)
    """
    try:
        server = email.utils.parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError, IndexError, OverflowError):
        server = None
    return max(0.0, now - server) if server is not None else 0.0
