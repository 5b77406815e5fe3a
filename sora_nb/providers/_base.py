"""The adapter interface: one async client per kind of server, with the methods the engine calls.

::

    ContractClient        the OpenAI Videos contract: retries, never-pay-twice creates, atomic downloads
    └── ProfileClient     + the profile's capabilities: a missing operation refuses visibly
        └── ProviderClient  + request building and job parsing for a service that is a cousin of the contract
            ├── OpenRouterClient   (openrouter.py)
            ├── XAIClient          (xai.py)
            ├── GeminiClient       (gemini.py)
            ├── TogetherClient     (together.py)
            ├── FalClient          (fal.py)
            ├── ReplicateClient    (replicate.py)
            └── RunwayClient       (runway.py)

The engine calls ``create``, ``remix``, ``extend``, ``edit``, ``poll``, ``reconcile``, ``download``,
``delete``, ``aclose`` and reads ``gate`` and ``reconciled_creates``; every adapter answers in the toolkit's
vocabulary (:class:`~sora_nb.Video` with a normalised status, ``progress`` or ``None``, an error, and in
``extra``: ``cost_usd`` when the service reports a cost, ``asset_url`` where the bytes are). A service adapter
overrides only :meth:`ProviderClient.build_create`, :meth:`ProviderClient.parse_job` and
:meth:`ProviderClient.poll_path` (and the auth header); the plumbing is the contract client's.

Where a service has no list endpoint, a create whose answer was lost cannot be looked for: it is never sent
again blindly; the job is ``ambiguous`` (:class:`~sora_nb.AmbiguousCreateError` names the dashboard to check).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

import httpx

from .._contract import ContractClient, _Sent
from .._download import _VIDEO_TYPES, ProgressCallback
from .._errors import AmbiguousCreateError, DownloadError, UnexpectedResponseError, UnsupportedOperationError
from .._profiles import Profile
from .._retry import poll_after_seconds
from .._search import Claimed
from .._types import DeletedVideo, Variant, Video, VideoList
from .._validation import ImageReference, ReferenceInput, check_create, check_id, load_reference, reference_url

__all__ = ["ProfileClient", "ProviderClient"]


class ProfileClient(ContractClient):
    """The contract client, aware of its profile: operations the profile lacks refuse with a clear error.

    Used as is for OpenAI-shaped servers (the simulator, LiteLLM, vLLM-Omni, SGLang, any base URL).

    >>> from sora_nb._profiles import PROFILES
    >>> api = ProfileClient(profile=PROFILES["litellm"], base_url="http://localhost:4000/v1")
    >>> api.profile.capabilities.supports_list
    False
    """

    def __init__(self, *, profile: Profile, **kwargs: Any) -> None:
        kwargs.setdefault("multipart_only", profile.multipart_only)
        kwargs.setdefault("seconds_as_int", profile.seconds_as_int)
        kwargs.setdefault("validate", profile.capabilities.models is not None)
        kwargs.setdefault("capabilities", profile.capabilities)
        super().__init__(**kwargs)
        self.profile = profile

    @property
    def service(self) -> str:
        """The service's name, for messages."""
        return self.profile.name

    def _unsupported(self, what: str, hint: str = "") -> UnsupportedOperationError:
        return UnsupportedOperationError(
            f"{self.service} has no {what} (see connect(...).profile.capabilities). "
            + (hint or "Fix: use a profile whose server supports it.")
        )

    async def reconcile(
        self, match: dict[str, Any], *, since: float, known_ids: Claimed = frozenset(),
        lost: AmbiguousCreateError | None = None,
    ) -> Video | None:
        """Look for a job whose create answer was lost; where the server cannot list jobs, refuse to guess."""
        if not self.profile.capabilities.supports_list:
            where = f" ({self.profile.dashboard_url})" if self.profile.dashboard_url else ""
            prompt = str(match.get("prompt") or "")[:60]
            raise AmbiguousCreateError(
                f"the request to start this job may have reached {self.service} but its answer never arrived, "
                f"and {self.service} has no way to list jobs, so sora_nb did not send it again (that could pay "
                f"twice). Fix: check your {self.service} dashboard{where} for a job with the prompt {prompt!r}; "
                "if there is none, send it again by hand (client.generate or run.submit).",
                sent_at=lost.sent_at if lost else since, reason=lost.reason if lost else None,
                problem=f"{self.service} has no way to list jobs",
            )
        return await super().reconcile(match, since=since, known_ids=known_ids, lost=lost)

    async def list(
        self, *, limit: int = 20, order: Literal["asc", "desc"] = "desc", after: str | None = None
    ) -> VideoList:
        if not self.profile.capabilities.supports_list:
            raise self._unsupported("endpoint listing jobs", "Fix: keep the ids that create returned (runs do).")
        return await super().list(limit=limit, order=order, after=after)

    async def delete(self, video_id: str) -> DeletedVideo:
        if not self.profile.capabilities.supports_delete:
            raise self._unsupported("delete", "Cancelling a job only stops polling it; the service finishes it.")
        return await super().delete(video_id)

    async def remix(self, video_id: str, prompt: str, *, known_ids: Claimed = frozenset()) -> Video:
        if not self.profile.capabilities.supports_remix:
            raise self._unsupported("remix")
        return await super().remix(video_id, prompt, known_ids=known_ids)

    async def extend(
        self, video: str | os.PathLike[str], prompt: str, *, seconds: str | int = "4",
        known_ids: Claimed = frozenset(),
    ) -> Video:
        if not self.profile.capabilities.supports_extend:
            raise self._unsupported("extension of videos")
        return await super().extend(video, prompt, seconds=seconds, known_ids=known_ids)


class ProviderClient(ProfileClient):
    """Base of the adapters for hosted services whose wire format differs from the contract.

    Subclasses implement :meth:`build_create`, :meth:`parse_job` and :meth:`poll_path` (delegating to pure
    module-level functions and a status table, tested without I/O), and :meth:`auth_headers` when the key does
    not travel as ``Authorization: Bearer``.
    The key is sent only to the base URL's origin: asset links on other hosts (CDNs) get no credentials.
    """

    name: ClassVar[str] = "service"
    """The service's name in messages (``"OpenRouter"``)."""
    id_segments: ClassVar[bool] = False
    """Whether the service's job ids are paths of several segments (Gemini's ``models/.../operations/...``)."""

    def __init__(self, *, profile: Profile, api_key: str | None = None, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        auth = self.auth_headers(api_key) if api_key else {}
        super().__init__(profile=profile, api_key=None, headers={**(headers or {}), **auth}, **kwargs)
        # Kept for redaction of error messages and for repr's "key=set"; the headers above are its only use.
        self._api_key = api_key
        self._secrets = (*self._secrets, *((api_key,) if api_key else ()))
        self._assets: dict[str, str] = {}

    @property
    def service(self) -> str:
        return self.name

    # ------------------------------------------------------------------ the hooks a service implements
    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the key (Bearer unless the service says otherwise)."""
        return {"Authorization": f"Bearer {api_key}"}

    def build_create(
        self, params: dict[str, Any], reference: ImageReference | dict[str, str] | None, *,
        seed: int | None, extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        """The path (relative to the base URL) and ``httpx`` keyword arguments that start a job (pure)."""
        raise NotImplementedError

    def parse_job(self, data: dict[str, Any], *, handle: str | None) -> Video:
        """The service's job object as a :class:`Video` (pure). ``handle`` is the id the job was created under."""
        raise NotImplementedError

    async def prepare_reference(self, reference: ImageReference | dict[str, str]) -> ImageReference | dict[str, str]:
        """The reference image as the create will carry it (as is, unless the service wants it uploaded first)."""
        return reference

    def poll_path(self, handle: str) -> str:
        """Where to ask about a job (relative to the base URL, or an absolute URL on its origin)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the engine's calls
    async def create(
        self,
        *,
        prompt: str,
        model: str | None = None,
        size: str | None = None,
        seconds: str | int | None = None,
        input_reference: ReferenceInput | None = None,
        extra: dict[str, Any] | None = None,
        known_ids: Claimed = frozenset(),
        characters: tuple[str, ...] | list[str] = (),
        seed: int | None = None,
    ) -> Video:
        """Start a job: checked against the profile first, then translated into the service's request."""
        if characters:
            raise self._unsupported("characters")
        caps = self.profile.capabilities
        model = model or caps.default_model
        size = size or caps.default_size_for(model)
        params = check_create(prompt=prompt, model=model, size=size,
                              seconds=seconds or caps.default_seconds_for(model, size), capabilities=caps)
        reference = None
        url = reference_url(input_reference)
        if url is not None:  # passed on as a link (the service fetches it); every other string is a local path
            input_reference = {"image_url": url}
        if input_reference is not None:
            # Services scale the image themselves: only the format is checked, not the dimensions.
            reference = await self.prepare_reference(
                load_reference(input_reference, params["size"], check_dimensions=False))
        path, request = self.build_create(params, reference, seed=seed, extra=dict(extra or {}))
        return await self._send_create(path, request, params, known_ids, operation="create video")

    async def poll(self, video_id: str) -> tuple[Video, float | None]:
        # The id goes into a URL: checked first, whichever way the service builds its path.
        sent = await self._send("GET", self.poll_path(check_id(video_id, segments=self.id_segments)),
                                operation="retrieve video")
        return self._parse(sent, "retrieve video", handle=video_id), poll_after_seconds(sent.response.headers)

    async def download(
        self,
        video_id: str,
        dest: str | os.PathLike[str],
        *,
        variant: Variant = "video",
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Stream the job's video to ``dest`` from wherever the service keeps it (see ``extra["asset_url"]``)."""
        if variant != "video":
            raise self._unsupported(f"{variant} variant", "sora_nb makes thumbnails from the video locally.")
        url = self._assets.get(video_id)
        if url is None:
            video, _ = await self.poll(video_id)
            url = self._assets.get(video_id)
            if url is None:
                raise DownloadError(
                    f"download {video_id}: {self.service} gives no video for a job that is {video.status}. "
                    "Fix: wait until the job is completed."
                )
        # Named by job and host only: asset paths can be signed, and some look like keys (xAI's "xai-video-...").
        absolute = urljoin(self.base_url, url)
        return await self._stream_to_file(
            self._client_for(absolute), httpx.URL(absolute), None, Path(dest), accept=_VIDEO_TYPES,
            on_progress=on_progress, operation=f"download the video of {video_id} from {urlsplit(absolute).netloc}",
        )

    async def edit(
        self, video: str | os.PathLike[str], prompt: str, *, known_ids: Claimed = frozenset()
    ) -> Video:
        raise self._unsupported("edit endpoint")

    async def create_character(self, video: str | os.PathLike[str], name: str) -> Any:
        raise self._unsupported("characters")

    async def get_character(self, character_id: str) -> Any:
        raise self._unsupported("characters")

    # ------------------------------------------------------------------ plumbing
    def _video(self, sent: _Sent, operation: str) -> Video:
        return self._parse(sent, operation, handle=None)

    def _parse(self, sent: _Sent, operation: str, *, handle: str | None) -> Video:
        return self._adopt(self.parse_job(self._object(sent, operation), handle=handle), sent, operation,
                           handle=handle)

    def _adopt(self, video: Video, sent: _Sent, operation: str, *, handle: str | None) -> Video:
        """``video`` (parsed from ``sent``) checked, redacted, and its asset link remembered for download."""
        if not video.id:
            raise UnexpectedResponseError(
                f"{operation}: the answer has no job id. Fix: check that base_url points at {self.service}'s API.",
                status_code=sent.response.status_code, body=sent.data,
            )
        video = self._checked(video, sent, operation, segments=self.id_segments)
        asset = video.extra.get("asset_url")
        if isinstance(asset, str) and asset:
            self._assets[handle or video.id] = asset
        return video

    def _same_origin(self, url: str) -> bool:
        return self._client_for(url) is self._http


def as_dict(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (services omit or null out nested objects)."""
    return value if isinstance(value, dict) else {}


def error_from(raw: Any) -> dict[str, Any] | str | None:
    """A service's error field as the contract's ``{code, message}`` (or the message alone)."""
    if isinstance(raw, dict):
        message = raw.get("message") or raw.get("detail") or raw.get("status")
        code = raw.get("code") if raw.get("code") is not None else raw.get("status")
        return {"code": None if code is None else str(code), "message": str(message or code or "unknown error")}
    if isinstance(raw, str) and raw:
        return raw
    return None
