"""Request validation with the real service's rules, status codes and error envelope.

Pure functions over an already-parsed body (a dict in which multipart file parts are
:class:`Upload` values), so each rule is testable without HTTP. The allowed values come from
``sora_nb._catalog`` only: the client validates against the same tables, so the two cannot drift.
Messages follow OpenAI's wording ("Missing required parameter: 'prompt'.", "Invalid value: ...
Supported values are: ...") so that a client's error display can be checked against the simulator.

Why one module of ~520 lines: it is one rule book, the service's checks for every route's body, built from
a handful of shared helpers (the envelope, the "invalid value" wording, ``nest_form_items``). Split by
route, each part would import the same helpers back and a reader comparing two routes' rules (create
and extend both check seconds, sizes and references) would flip between files.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from .._catalog import (
    CHARACTER_SECONDS,
    CHARACTER_SIDES,
    CHARACTER_TOLERANCE_S,
    DEFAULT_MODEL,
    DEFAULT_SECONDS,
    DEFAULT_SIZE,
    MAX_CHARACTER_NAME,
    MAX_CHARACTERS,
    MAX_EXTENSION_SECONDS,
    MAX_EXTENSIONS,
    MAX_PROMPT_CHARS,
    MAX_TOTAL_SECONDS,
    MODELS,
    SECONDS,
    SIZES,
)

__all__ = [
    "MAX_EXTENSIONS",
    "MAX_EXTENSION_SECONDS",
    "MAX_TOTAL_SECONDS",
    "BodySource",
    "CreateRequest",
    "ExtendRequest",
    "ImageReference",
    "RequestError",
    "Upload",
    "check_character_clip",
    "check_image",
    "check_list_query",
    "error_body",
    "human_list",
    "nest_form_items",
    "require_prompt",
    "validate_character",
    "validate_create",
    "validate_edit",
    "validate_extend",
    "validate_remix",
]


_IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

BodySource = Literal["json", "form"]


class RequestError(Exception):
    """An HTTP error answer: raised anywhere in a handler, turned into the envelope by the app."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON error envelope."""
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str, param: str | None, code: str | None) -> dict[str, Any]:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True)
class Upload:
    """A multipart file part, read into memory (references and clips are small)."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class ImageReference:
    """A validated ``input_reference``: decoded image bytes, or a URL/file id the simulator can't see."""

    image: bytes | None = None
    image_url: str | None = None
    file_id: str | None = None


@dataclass(frozen=True)
class CreateRequest:
    """A validated ``POST /videos``. ``reference`` images still need :func:`check_image`."""

    prompt: str
    model: str
    size: str
    seconds: int
    reference: ImageReference | None
    characters: tuple[str, ...] = ()
    """The ids of the characters (cameos) named: their names are checked against the prompt later."""


@dataclass(frozen=True)
class ExtendRequest:
    """A validated ``POST /videos/extensions``."""

    video: str | Upload
    prompt: str
    seconds: int


def human_list(values: tuple[str, ...] | list[str]) -> str:
    """``'4', '8', and '12'`` — OpenAI's way of listing supported values.

    >>> human_list(["4", "8", "12"]), human_list(["a"]), human_list(["a", "b"])
    ("'4', '8', and '12'", "'a'", "'a' and 'b'")
    """
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Upload):
        return "a file"
    return "a string"


def _invalid_type(param: str, expected: str, value: object) -> RequestError:
    return RequestError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> RequestError:
    return RequestError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _invalid_value(param: str, value: object, allowed: tuple[str, ...] | list[str], why: str = "") -> RequestError:
    return RequestError(
        400,
        f"Invalid value: '{value}'.{why} Supported values are: {human_list(allowed)}.",
        param=param,
        code="invalid_value",
    )


_OBJECT_FIELDS = frozenset({"input_reference", "video", "characters"})


def nest_form_items(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Turn multipart fields into a body dict, unfolding ``a[b]`` keys into nested objects.

    The official SDK sends objects inside multipart bodies that way (``video[id]=video_123``); a
    text field of an object-valued parameter (``video``, ``input_reference``) holding JSON is
    decoded too. Other text fields stay strings, whatever they look like.

    >>> nest_form_items([("prompt", "hi"), ("video[id]", "video_1")])
    {'prompt': 'hi', 'video': {'id': 'video_1'}}
    """
    body: dict[str, Any] = {}
    for key, value in items:
        match = re.fullmatch(r"([^\[\]]+)\[([^\[\]]+)\]", key)
        if match:
            outer, inner = match.groups()
            nested = body.get(outer)
            if not isinstance(nested, dict):
                nested = {}
                body[outer] = nested
            nested[inner] = value
        elif key in _OBJECT_FIELDS and isinstance(value, str) and value.strip()[:1] in ("{", "["):
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = value
            body[key] = decoded
        else:
            body[key] = value
    return body


def _check_known(body: dict[str, Any], known: tuple[str, ...], strict: bool) -> None:
    if not strict:
        return
    for name in body:
        if name not in known:
            raise RequestError(
                400, f"Unrecognized request argument supplied: {name}", param=name, code="unknown_parameter"
            )


def require_prompt(body: dict[str, Any], param: str = "prompt") -> str:
    """The validated prompt (1..32000 characters).

    >>> require_prompt({"prompt": "a fox"})
    'a fox'
    """
    if param not in body or body[param] is None:
        raise _missing(param)
    value = body[param]
    if not isinstance(value, str):
        raise _invalid_type(param, "a string", value)
    if not value:
        raise RequestError(
            400,
            f"Invalid '{param}': string too short. Expected a string with minimum length 1, "
            "but got an empty string instead.",
            param=param,
            code="string_below_min_length",
        )
    if len(value) > MAX_PROMPT_CHARS:
        raise RequestError(
            400,
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{MAX_PROMPT_CHARS}, but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )
    return value


def _optional_string(body: dict[str, Any], param: str, default: str, expected: str) -> str:
    # Absent means the default; an explicit null is a type error (the spec's schemas are not nullable).
    if param not in body:
        return default
    value = body[param]
    if not isinstance(value, str):
        raise _invalid_type(param, expected, value)
    return value


def _seconds(body: dict[str, Any], allowed: tuple[str, ...], *, required: bool = False) -> int:
    value = body.get("seconds")
    if "seconds" not in body:
        if required:
            raise _missing("seconds")
        value = DEFAULT_SECONDS
    if not isinstance(value, str):
        # The contract's seconds is a string enum; an integer is rejected even in JSON.
        raise _invalid_type("seconds", f"one of {human_list(allowed)} (a string)", value)
    if value not in allowed:
        raise _invalid_value("seconds", value, allowed)
    return int(value)


def _model(body: dict[str, Any], strict: bool) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The model and the sizes and seconds it accepts."""
    model = _optional_string(body, "model", DEFAULT_MODEL, "a string")
    spec = MODELS.get(model)
    if spec is not None:
        return model, spec.sizes or SIZES, spec.seconds or SECONDS
    if strict:
        raise _invalid_value("model", model, list(MODELS))
    # A gateway passes unknown models through; the contract's tables still bound size and seconds.
    return model, SIZES, SECONDS


def _size(body: dict[str, Any], model: str, allowed: tuple[str, ...]) -> str:
    size = _optional_string(body, "size", DEFAULT_SIZE, f"one of {human_list(SIZES)} (a string)")
    if size not in SIZES:
        raise _invalid_value("size", size, SIZES)
    if size not in allowed:
        raise _invalid_value("size", size, allowed, f" Model '{model}' does not support this size.")
    return size


def _reference(value: object) -> ImageReference:
    if isinstance(value, Upload):
        return ImageReference(image=value.data)
    if not isinstance(value, dict):
        raise _invalid_type("input_reference", "a file or an object with 'image_url' or 'file_id'", value)
    unknown = set(value) - {"image_url", "file_id"}
    if unknown:
        name = sorted(unknown)[0]
        raise RequestError(
            400,
            f"Unrecognized request argument supplied: input_reference.{name}",
            param=f"input_reference.{name}",
            code="unknown_parameter",
        )
    given = [key for key in ("image_url", "file_id") if value.get(key) is not None]
    if len(given) != 1:
        raise RequestError(
            400,
            "Invalid 'input_reference': provide exactly one of 'image_url' or 'file_id'.",
            param="input_reference",
            code="invalid_value",
        )
    key = given[0]
    text = value[key]
    if not isinstance(text, str) or not text:
        raise _invalid_type(f"input_reference.{key}", "a non-empty string", text)
    if key == "file_id":
        return ImageReference(file_id=text)
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header:
            raise RequestError(
                400,
                "Invalid 'input_reference.image_url': a data URL must be base64-encoded.",
                param="input_reference.image_url",
                code="invalid_value",
            )
        try:
            return ImageReference(image=base64.b64decode(payload, validate=True), image_url=text[:64])
        except (binascii.Error, ValueError):
            raise RequestError(
                400,
                "Invalid 'input_reference.image_url': the data URL is not valid base64.",
                param="input_reference.image_url",
                code="invalid_value",
            ) from None
    if not re.match(r"https?://", text):
        raise RequestError(
            400,
            "Invalid 'input_reference.image_url': expected an http(s) URL or a base64 data URL.",
            param="input_reference.image_url",
            code="invalid_value",
        )
    return ImageReference(image_url=text)


def validate_create(body: dict[str, Any], source: BodySource, *, strict: bool) -> CreateRequest:
    """Validate ``POST /videos``.

    >>> validate_create({"prompt": "a fox", "seconds": "8"}, "json", strict=True).seconds
    8
    """
    del source  # Same rules for JSON and multipart: form values are strings, so "8" is fine in both.
    _check_known(body, ("prompt", "model", "seconds", "size", "input_reference", "characters"), strict)
    prompt = require_prompt(body)
    model, sizes, seconds_allowed = _model(body, strict)
    size = _size(body, model, sizes)
    seconds = _seconds(body, seconds_allowed)
    raw_reference = body.get("input_reference")
    reference = None if raw_reference is None or raw_reference == "" else _reference(raw_reference)
    return CreateRequest(prompt, model, size, seconds, reference, _characters(body.get("characters")))


def _characters(value: object) -> tuple[str, ...]:
    """The ids of ``characters: [{"id": ...}, ...]`` (at most two)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid_type("characters", "an array of objects with 'id'", value)
    ids = []
    for index, item in enumerate(value):
        character_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(character_id, str) or not character_id:
            raise _invalid_type(f"characters[{index}].id", "a string", character_id)
        ids.append(character_id)
    if len(ids) > MAX_CHARACTERS:
        raise RequestError(
            400,
            f"Invalid 'characters': at most {MAX_CHARACTERS} characters can be used in one video, got {len(ids)}.",
            param="characters",
            code="invalid_value",
        )
    return tuple(ids)


def check_image(data: bytes, size: str) -> Image.Image:
    """Decode a reference image and check it is JPEG/PNG/WebP with exactly the requested dimensions.

    Blocking (decodes the image): call it in a thread for large uploads.
    """
    allowed = ", ".join(_IMAGE_FORMATS.values())
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format = probe.format or ""
            probe.load()
            image: Image.Image = probe.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise RequestError(
            400,
            f"Invalid file format for 'input_reference'. Supported formats are: {allowed}.",
            param="input_reference",
            code="unsupported_file_format",
        ) from None
    if image_format not in _IMAGE_FORMATS:
        raise RequestError(
            400,
            f"Invalid file format for 'input_reference' ({image_format or 'unknown'}). "
            f"Supported formats are: {allowed}.",
            param="input_reference",
            code="unsupported_file_format",
        )
    width, height = (int(part) for part in size.split("x"))
    if image.size != (width, height):
        raise RequestError(
            400,
            "Inpaint image must match the requested width and height "
            f"(got {image.size[0]}x{image.size[1]}, expected {size}).",
            param="input_reference",
            code="invalid_value",
        )
    return image


def validate_remix(body: dict[str, Any], *, strict: bool) -> str:
    """Validate ``POST /videos/{id}/remix``; returns the prompt."""
    _check_known(body, ("prompt",), strict)
    return require_prompt(body)


def _video_ref(body: dict[str, Any]) -> str | Upload:
    if "video" not in body or body["video"] is None:
        raise _missing("video")
    value = body["video"]
    if isinstance(value, Upload):
        return value
    if isinstance(value, dict):
        video_id = value.get("id")
        if not isinstance(video_id, str) or not video_id:
            raise _missing("video.id") if video_id is None else _invalid_type("video.id", "a string", video_id)
        return video_id
    raise _invalid_type("video", "an object with 'id' or a file upload", value)


def validate_edit(body: dict[str, Any], *, strict: bool) -> tuple[str | Upload, str]:
    """Validate ``POST /videos/edits``; returns ``(video id or upload, prompt)``."""
    _check_known(body, ("video", "prompt"), strict)
    video = _video_ref(body)
    return video, require_prompt(body)


def validate_extend(body: dict[str, Any], *, strict: bool) -> ExtendRequest:
    """Validate ``POST /videos/extensions`` (the per-extension and total limits are checked later,
    against the source video)."""
    if body.get("characters") not in (None, "", []):
        raise RequestError(
            400,
            "Characters are not supported for video extensions: an extension continues the source video as it "
            "is. Create a new video with 'characters' instead.",
            param="characters",
            code="invalid_value",
        )
    _check_known(body, ("video", "prompt", "seconds"), strict)
    video = _video_ref(body)
    prompt = require_prompt(body)
    value = body.get("seconds")
    if isinstance(value, str) and value.isdigit() and int(value) > MAX_EXTENSION_SECONDS:
        raise RequestError(
            400,
            f"Invalid value: '{value}'. Each extension is at most {MAX_EXTENSION_SECONDS} seconds.",
            param="seconds",
            code="invalid_value",
        )
    seconds = _seconds(body, SECONDS, required=True)
    return ExtendRequest(video, prompt, seconds)


def validate_character(body: dict[str, Any]) -> tuple[Upload, str]:
    """Validate ``POST /videos/characters``; returns ``(clip, name)``."""
    if "video" not in body or body["video"] is None:
        raise _missing("video")
    video = body["video"]
    if not isinstance(video, Upload):
        raise _invalid_type("video", "a video file (multipart/form-data)", video)
    if "name" not in body or body["name"] is None:
        raise _missing("name")
    name = body["name"]
    if not isinstance(name, str):
        raise _invalid_type("name", "a string", name)
    if not 1 <= len(name) <= MAX_CHARACTER_NAME:
        raise RequestError(
            400,
            f"Invalid 'name': expected 1 to {MAX_CHARACTER_NAME} characters, got {len(name)}.",
            param="name",
            code="invalid_value",
        )
    return video, name


def check_character_clip(width: int, height: int, duration: float) -> None:
    """The clip rules of ``POST /videos/characters``: 2-4 s, 16:9 or 9:16, 720p to 1080p.

    >>> check_character_clip(1280, 720, 10.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sora_nb.simulator._validate.RequestError: Invalid 'video': character clips must be 2 to 4 seconds long, ...
    """
    low, high = CHARACTER_SECONDS
    if not low - CHARACTER_TOLERANCE_S <= duration <= high + CHARACTER_TOLERANCE_S:
        raise RequestError(
            400,
            f"Invalid 'video': character clips must be {low:g} to {high:g} seconds long, got {duration:.2f} seconds.",
            param="video",
            code="invalid_value",
        )
    short, long = sorted((width, height))
    small, big = CHARACTER_SIDES
    if short <= 0 or abs(long / short - 16 / 9) > 0.02 or not small <= short <= big:
        raise RequestError(
            400,
            f"Invalid 'video': character clips must be 16:9 or 9:16 at 720p to 1080p, got {width}x{height}.",
            param="video",
            code="invalid_value",
        )


def check_list_query(params: dict[str, str]) -> tuple[int, Literal["asc", "desc"], str | None]:
    """Validate ``GET /videos`` query parameters: ``limit`` 0..100 (20), ``order`` (desc), ``after``.

    >>> check_list_query({"limit": "5", "order": "asc"})
    (5, 'asc', None)
    """
    raw_limit = params.get("limit")
    limit = 20
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise RequestError(
                400,
                f"Invalid type for 'limit': expected an integer, but got '{raw_limit}' instead.",
                param="limit",
                code="invalid_type",
            ) from None
        if limit < 0:
            raise RequestError(
                400,
                f"Invalid 'limit': integer below minimum value. Expected a value >= 0, but got {limit} instead.",
                param="limit",
                code="integer_below_min_value",
            )
        if limit > 100:
            raise RequestError(
                400,
                f"Invalid 'limit': integer above maximum value. Expected a value <= 100, but got {limit} instead.",
                param="limit",
                code="integer_above_max_value",
            )
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise _invalid_value("order", order, ("asc", "desc"))
    after = params.get("after") or None
    return limit, "asc" if order == "asc" else "desc", after
