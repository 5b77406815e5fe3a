"""Downloads: media streamed from a Videos API (or the CDN links it hands out) to disk, atomically.

Mixed into :class:`~sora_nb._contract.ContractClient` (and so into every provider adapter), which owns the
HTTP clients, the retry policy and the rate gate these methods use. Kept apart from the request/answer
operations because a download is a different kind of exchange: a stream, not a JSON answer, with its own
checks (content type before a byte is written, length after, redirects followed by hand so credentials
never leave the base URL's origin) and its own failure (the local disk).

>>> import asyncio, tempfile, pathlib, sora_nb.simulator as sim
>>> from sora_nb._contract import ContractClient
>>> now = [0.0]
>>> async def main(folder):
...     async with ContractClient(base_url="http://simulator.local/v1", api_key="any-key",
...                               transport=sim.SimulatorTransport(clock=lambda: now[0])) as api:
...         video = await api.create(prompt="a corgi surfing", model="sora-2", seconds="4")
...         now[0] += 3600.0  # the job has long finished
...         path = await api.download(video.id, pathlib.Path(folder) / "corgi.mp4", variant="thumbnail")
...         return path.name, path.stat().st_size > 0
>>> with tempfile.TemporaryDirectory() as folder:
...     asyncio.run(main(folder))
('corgi.mp4', True)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from ._errors import DownloadError, StorageError, TransportError, ValidationError, api_error_from_response
from ._ratelimit import RateGate
from ._redact import redact, redact_url
from ._retry import RETRYABLE_STATUS, RetryPolicy, retry_after_seconds
from ._types import Variant
from ._validation import check_id

__all__ = ["Downloads", "ProgressCallback"]

T = TypeVar("T")

ProgressCallback = Callable[[int, "int | None"], None]
"""Called as ``(bytes_done, bytes_total_or_None)`` while a download streams."""

_VIDEO_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")
_IMAGE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
_MAX_REDIRECTS = 5


class Downloads:
    """The streaming half of the contract client: ``GET`` media to a file, retried, never left half-written."""

    # Owned by ContractClient, the class this is mixed into.
    base_url: str
    retry: RetryPolicy
    gate: RateGate
    _http: httpx.AsyncClient
    _origin: tuple[str, str]
    _api_key: str | None
    _sleep: Callable[[float], Awaitable[None]]
    _rng: random.Random

    if TYPE_CHECKING:

        @property
        def _anon(self) -> httpx.AsyncClient: ...

        def _observe(self, response: httpx.Response) -> None: ...

        def _transport_error(self, exc: httpx.TransportError, operation: str) -> TransportError: ...

    async def download(
        self,
        video_id: str,
        dest: str | os.PathLike[str],
        *,
        variant: Variant = "video",
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Stream ``GET /videos/{id}/content?variant=...`` to ``dest`` atomically; return the path.

        The content type is checked before a byte is written (a JSON error saved as ``.mp4`` is a
        classic failure), the length is checked after, and a partial file never appears at ``dest``.
        """
        if variant not in ("video", "thumbnail", "spritesheet"):
            raise ValidationError(
                f"variant={variant!r} is unknown. Allowed: 'video', 'thumbnail', 'spritesheet'.", field="variant"
            )
        accept = _VIDEO_TYPES if variant == "video" else _IMAGE_TYPES
        url = self._http.base_url.join(f"videos/{check_id(video_id)}/content")
        return await self._stream_to_file(
            self._http,
            url,
            {"variant": variant},
            Path(dest),
            accept=accept,
            on_progress=on_progress,
            operation=f"download {variant} of {video_id}",
        )

    async def download_url(
        self,
        url: str,
        dest: str | os.PathLike[str],
        *,
        kind: Literal["video", "image"] = "video",
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Stream any asset URL a server returned (relative URLs resolved against the base URL).

        The key goes only to the server's own origin; a CDN or signed link gets no credentials.
        """
        absolute = urljoin(self.base_url, url)
        client = self._client_for(absolute)
        accept = _VIDEO_TYPES if kind == "video" else _IMAGE_TYPES
        return await self._stream_to_file(
            client,
            httpx.URL(absolute),
            None,
            Path(dest),
            accept=accept,
            on_progress=on_progress,
            operation=f"download {redact_url(absolute)}",
        )

    def _client_for(self, url: str | httpx.URL) -> httpx.AsyncClient:
        """The client with credentials for the base URL's origin, the one without for any other."""
        parts = urlsplit(str(url))
        return self._http if (parts.scheme, parts.netloc) == self._origin else self._anon

    @contextlib.asynccontextmanager
    async def _open_stream(
        self, client: httpx.AsyncClient, url: httpx.URL, params: dict[str, Any] | None
    ) -> AsyncIterator[httpx.Response]:
        """``GET url`` as a stream, following redirects by hand so that each hop gets credentials only
        when it is on the base URL's origin (httpx drops ``Authorization`` on a cross-origin redirect,
        but would forward other auth headers such as Gemini's ``x-goog-api-key``)."""
        for hop in range(_MAX_REDIRECTS + 1):
            if url.scheme not in ("http", "https"):
                # httpx would say "unsupported protocol", reported as a broken connection and retried.
                came = "redirected the download to" if hop else "gave as the download link"
                raise DownloadError(
                    f"download: the server {came} a {url.scheme or 'schemeless'}: URL ({redact_url(str(url))[:120]}), "
                    "not http(s); sora_nb fetches media only over http(s) and never reads local files for a "
                    "server. Nothing was written. Fix: check that base_url points at a trusted Videos API."
                )
            # Media does not compress: ask for it as is, so Content-Length is the length of the file.
            request = client.build_request("GET", url, params=params, headers={"Accept-Encoding": "identity"})
            response = await client.send(request, stream=True)
            if not (response.is_redirect and "location" in response.headers):
                break
            await response.aclose()
            url, params = response.url.join(response.headers["location"]), None
            client = self._client_for(url)
        else:
            raise DownloadError(
                f"download {redact_url(str(url))}: more than {_MAX_REDIRECTS} redirects. Fix: check the asset URL."
            )
        try:
            yield response
        finally:
            await response.aclose()

    async def _stream_to_file(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        params: dict[str, Any] | None,
        dest: Path,
        *,
        accept: tuple[str, ...],
        on_progress: ProgressCallback | None,
        operation: str,
    ) -> Path:
        tmp: Path | None = None
        try:
            # Making a file waits on the disk (its directory's lock, the journal): off the event loop,
            # which every other job and the notebook share.
            tmp = await _new_part_file_off_loop(dest)
            for attempt in range(self.retry.max_retries + 1):
                try:
                    await self._stream_once(
                        client, url, params, tmp, accept=accept, on_progress=on_progress, operation=operation
                    )
                    break
                except (httpx.TransportError, _Retry) as exc:
                    error = exc.error if isinstance(exc, _Retry) else self._transport_error(exc, operation)
                    if attempt >= self.retry.max_retries:
                        raise error from None
                    await self._sleep(self.retry.delay(attempt, rng=self._rng))
            await asyncio.to_thread(os.replace, tmp, dest)
            tmp = None  # it is ``dest`` now: nothing left to remove
            return dest
        except OSError as exc:  # the local disk refused (full, read-only, over quota); httpx's errors are not OSErrors
            raise StorageError(
                f"{operation}: cannot write to {str(dest.parent)!r} ({exc.strerror or exc}). "
                "Fix: free space there, or choose a writable directory (run_dir=... or out_dir=...)."
            ) from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):  # a read-only disk refuses this too; the error above says why
                    tmp.unlink(missing_ok=True)

    async def _stream_once(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        params: dict[str, Any] | None,
        tmp: Path,
        *,
        accept: tuple[str, ...],
        on_progress: ProgressCallback | None,
        operation: str,
    ) -> None:
        await self.gate.wait()
        async with self._open_stream(client, url, params) as response:
            self._observe(response)
            if response.status_code >= 400:
                await response.aread()
                error = api_error_from_response(
                    response,
                    operation=operation,
                    retry_after=retry_after_seconds(response.headers),
                    secret=self._api_key,
                )
                if response.status_code in RETRYABLE_STATUS:
                    raise _Retry(error)
                raise error
            ctype = response.headers.get("content-type", "").lower()
            if not ctype.startswith(accept):
                body = (await response.aread())[:300].decode("utf-8", "replace")
                raise DownloadError(
                    f"{operation}: the server sent {ctype or 'no content type'} instead of "
                    f"{accept[0].rstrip('/')} data ({redact(body, self._api_key)!r}). Nothing was written. "
                    "Fix: check that the job is completed and the variant exists on this server."
                )
            total = _as_int(response.headers.get("content-length"))
            done = 0
            # Opened in a thread, as it was made: opening a path waits on the file system, which a loaded
            # disk makes slow (py-spy: 4 % of a busy kernel's loop in Path.open).
            with await _off_loop(functools.partial(_open_part, tmp), lambda opened: opened.close()) as out:
                async for chunk in response.aiter_bytes(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(response.num_bytes_downloaded or done, total)
                out.flush()
                # The sync waits on the disk: off the event loop, which other jobs share.
                await asyncio.to_thread(os.fsync, out.fileno())
            # Content-Length counts the bytes on the wire, which a server may still have compressed
            # (a body handed over already in memory has no wire count: then the two are the same).
            received = response.num_bytes_downloaded or done
        if total is not None and received != total:
            raise _Retry(
                DownloadError(
                    f"{operation}: truncated: got {received} of {total} bytes. Nothing was kept. "
                    "Fix: download again later."
                )
            )
        if done == 0:
            raise DownloadError(f"{operation}: the server sent an empty body. Nothing was kept.")


async def _off_loop(make: Callable[[], T], undo: Callable[[T], object]) -> T:
    """``make()`` in a thread; cancelled meanwhile, what it made is undone when it ends, not left behind
    (a part file, an open file).

    The thread undoes it itself: a loop callback would never run once the loop has ended, and a script's
    ``asyncio.run`` ends its loop right after cancelling, while the thread may still be on the disk.
    """
    handoff = _Handoff[T]()
    making = asyncio.ensure_future(asyncio.to_thread(handoff.make, make, undo))
    try:
        await asyncio.shield(making)
    except asyncio.CancelledError:
        handoff.abandon(undo)
        making.add_done_callback(_retrieved)  # the error of a make given up on is nobody's to raise
        raise
    return handoff.take()


def _retrieved(making: asyncio.Future[None]) -> None:
    if not making.cancelled():
        making.exception()


class _Handoff(Generic[T]):
    """What a thread made, handed to the loop unless the loop gave up on it first (then the thread undoes it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: list[T] = []
        self._abandoned = False

    def make(self, make: Callable[[], T], undo: Callable[[T], object]) -> None:
        made = make()
        with self._lock:
            if not self._abandoned:
                self._made.append(made)
                return
        with contextlib.suppress(OSError):
            undo(made)

    def abandon(self, undo: Callable[[T], object]) -> None:
        with self._lock:
            self._abandoned = True
            made, self._made = self._made, []
        for value in made:  # made already, its hand-over not yet seen by the cancelled caller
            with contextlib.suppress(OSError):
                undo(value)

    def take(self) -> T:
        with self._lock:
            return self._made.pop()


def _new_part_file_off_loop(dest: Path) -> Awaitable[Path]:
    """:func:`_new_part_file` in a thread (making a file waits on the disk)."""
    return _off_loop(functools.partial(_new_part_file, dest), lambda made: made.unlink(missing_ok=True))


def _open_part(part: Path) -> BinaryIO:
    """The part file, emptied, for writing; never made again: a cancelled download may have removed it
    already, while this waited on the disk, and a file made then would be left behind."""
    return os.fdopen(os.open(part, os.O_WRONLY | os.O_TRUNC), "wb")


def _new_part_file(dest: Path) -> Path:
    """An empty, new ``.<name>.<random>.part`` file beside ``dest`` (its directory made if need be)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(name)


class _Retry(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
