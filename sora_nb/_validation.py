"""Checking a request before it is sent, so that a mistake costs nothing and says how to fix it.

Pure functions. What a model takes is the server's :class:`~sora_nb._capabilities.Capabilities` (by default
OpenAI's contract, :data:`sora_nb._catalog.CONTRACT`); values it does not know pass through, since only the
server knows them.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Union

from . import _catalog
from ._capabilities import Capabilities
from ._errors import ValidationError

__all__ = [
    "MAX_ID_CHARS",
    "MAX_REFERENCE_BYTES",
    "ImageReference",
    "ReferenceInput",
    "check_character_clip",
    "check_character_name",
    "check_characters",
    "check_id",
    "check_user_file",
    "check_max_concurrency",
    "check_prompt",
    "check_seconds",
    "check_size",
    "check_timeout",
    "load_reference",
    "read_user_file",
    "reference_url",
]

ReferenceInput = Union[str, "os.PathLike[str]", bytes, BinaryIO, dict[str, str]]
"""A reference image: a path, raw bytes, an open binary file, or ``{"image_url": ...}`` / ``{"file_id": ...}``."""

_IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

MAX_ID_CHARS = 256
"""Longest id taken from a server or a user (OpenAI's are ~40 characters; Gemini's operation names ~90)."""
MAX_REFERENCE_BYTES = 50 * 1024 * 1024
"""Largest reference image read from disk (the services take a few MB; a bigger file is a mistake)."""
MAX_VIDEO_UPLOAD_BYTES = 512 * 1024 * 1024
"""Largest local video read for an extension, an edit or a character."""

# An id is one URL path segment and a safe file name: letters, digits and a few punctuation marks, starting
# with a letter or digit (so never ``.``, ``..`` or ``.env``); no ``/``, ``%``, ``?``, spaces or control
# characters. ``segments=True`` (Gemini's ``models/.../operations/...``) allows ``/`` between such segments.
_ID_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+~@-]*")


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def check_prompt(prompt: object, *, field: str = "prompt") -> str:
    """Return the prompt, or raise if it is not 1..32000 characters of text.

    >>> check_prompt("a corgi surfing")
    'a corgi surfing'
    """
    if not isinstance(prompt, str):
        raise ValidationError(
            f"{field} must be a string, got {type(prompt).__name__}. Fix: pass the prompt as text.",
            field=field,
        )
    if not prompt.strip():
        raise ValidationError(
            f"{field} is empty. Fix: describe the video in 1 to {_catalog.MAX_PROMPT_CHARS} characters.",
            field=field,
        )
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (half of an emoji, from a bad decode or a cut string) is not text: no server,
        # and no ledger, can store it.
        raise ValidationError(
            f"{field} has a character that is not valid text at position {exc.start} "
            f"({prompt[exc.start]!r}, half of a surrogate pair, e.g. from a string cut inside an emoji). "
            f"Fix: remove it, e.g. {field}.encode('utf-8', 'replace').decode('utf-8').",
            field=field,
        ) from None
    if len(prompt) > _catalog.MAX_PROMPT_CHARS:
        raise ValidationError(
            f"{field} has {len(prompt)} characters; the limit is {_catalog.MAX_PROMPT_CHARS}. Fix: shorten the prompt.",
            field=field,
        )
    return prompt


def check_id(value: object, *, field: str = "id", segments: bool = False) -> str:
    """Return ``value`` when it is safe to put in a URL path or a file name, else raise :class:`ValidationError`.

    Ids come from servers, which are untrusted: ``.env``, ``../x``, ``a\r\nb`` or 10 kB of text never
    become part of a URL or a path.

    >>> check_id("video_68d1")
    'video_68d1'
    >>> check_id("../etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sora_nb.ValidationError: id '../etc/passwd' is not a valid id. Allowed: 1 to 256 letters, ...
    """
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        parts = value.split("/") if segments else [value]
        if all(_ID_SEGMENT.fullmatch(part) for part in parts):
            return value
    shown = repr(value[:60]) + f"... ({len(value)} characters)" if isinstance(value, str) and len(value) > 60 else (
        repr(value))
    raise ValidationError(
        f"{field} {shown} is not a valid id. Allowed: 1 to {MAX_ID_CHARS} letters, digits and . _ : = + ~ @ -, "
        f"starting with a letter or digit{' (/ between parts)' if segments else ''}. "
        "Fix: pass the id the server returned (e.g. 'video_...').",
        field=field,
    )


def check_user_file(path: str | os.PathLike[str], *, field: str, what: str) -> None:
    """Refuse a path the user named that is not a readable regular file, before a library opens it.

    >>> check_user_file("/dev/zero", field="source", what="video clip")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sora_nb.ValidationError: source '/dev/zero' is not a regular file (a character device). ...
    """
    read_user_file(path, field=field, limit=0, what=what, read=False)


def read_user_file(path: str | os.PathLike[str], *, field: str, limit: int, what: str, read: bool = True) -> bytes:
    """Read a file the user named: a regular file only, at most ``limit`` bytes, read with that limit.

    A device (``/dev/zero`` reads forever), a FIFO (blocks until a writer comes) or a directory is refused
    before it is opened for reading; a file that grows past ``limit`` while read is refused too.
    ``read=False`` only checks (and returns ``b""``).

    >>> read_user_file("/dev/zero", field="input_reference", limit=10, what="image file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sora_nb.ValidationError: input_reference '/dev/zero' is not a regular file (a character device). ...
    """
    name = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise block here, before fstat can refuse it.
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ValidationError(
            f"{field} {name!r} cannot be read ({exc.strerror}). Fix: pass an existing {what}.",
            field=field,
        ) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValidationError(
                f"{field} {name!r} is not a regular file ({_file_kind(info.st_mode)}). "
                f"Fix: pass the path of a regular {what}.",
                field=field,
            )
        if not read:
            return b""
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(
            f"{field} {name!r} is larger than {limit // (1024 * 1024)} MB. Fix: pass a smaller file "
            "(compress or resize it).",
            field=field,
        )
    return data


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def check_timeout(timeout: object, *, field: str = "timeout") -> float | None:
    """Return a wait's ``timeout`` (seconds, or ``None`` for no bound) when it is one.

    >>> check_timeout(600), check_timeout(None)
    (600, None)
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{field} must be a number of seconds or None, got {timeout!r}. Fix: e.g. {field}=600.")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(
            f"{field}={timeout!r} is not a duration. Allowed: 0 or more seconds, or None to wait without a bound. "
            f"Fix: e.g. {field}=600."
        )
    return timeout


def check_max_concurrency(value: object, *, field: str = "max_concurrency") -> int | None:
    """Return ``value`` when it is a number of jobs in flight (1 or more), or ``None`` for the default.

    >>> check_max_concurrency(4), check_max_concurrency(None)
    (4, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be a whole number of jobs, got {value!r}. Fix: e.g. {field}=4.")
    if value < 1:
        raise ValueError(
            f"{field}={value} would run no job at all. Allowed: 1 or more (None: the profile's default). "
            f"Fix: e.g. {field}=4."
        )
    return value


def check_seconds(
    seconds: object, model: str = "", *, field: str = "seconds", capabilities: Capabilities | None = _catalog.CONTRACT
) -> str:
    """Return ``seconds`` as the contract's string when it is a whole number of seconds that ``model`` takes
    (per ``capabilities``; ``None``: any); an int is converted.

    >>> check_seconds(8, "sora-2")
    '8'
    >>> check_seconds("7", "my-gateway-model")
    '7'
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (str, int, float)):
        allowed = (capabilities.seconds(model) if capabilities else None) or _catalog.SECONDS
        raise ValidationError(
            f"{field} must be a string such as {_choices(allowed)}, got {seconds!r}. Fix: pass {field}='4'.",
            field=field,
            allowed=allowed,
        )
    if isinstance(seconds, float):
        if not seconds.is_integer():
            raise ValidationError(
                f"{field}={seconds!r} is not a whole number of seconds. Fix: pass a whole number as a string.",
                field=field,
            )
        seconds = int(seconds)
    text = str(seconds).strip()
    if capabilities is not None:
        capabilities.check(model, None, text)
    return text


def check_size(
    size: object, model: str = "", *, field: str = "size", capabilities: Capabilities | None = _catalog.CONTRACT
) -> str:
    """Return the size when it is ``WIDTHxHEIGHT`` and ``model`` takes it (per ``capabilities``; ``None``: any).

    >>> check_size("1280x720", "sora-2")
    '1280x720'
    """
    if not isinstance(size, str) or "x" not in size:
        allowed = (capabilities.sizes(model) if capabilities else None) or _catalog.SIZES
        raise ValidationError(
            f"{field}={size!r} is not WIDTHxHEIGHT. Allowed: {_choices(allowed)}. Fix: e.g. {field}='1280x720'.",
            field=field,
            allowed=allowed,
        )
    if capabilities is not None:
        capabilities.check(model, size, None)
    return size


def parse_size(size: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``."""
    width, _, height = size.partition("x")
    return int(width), int(height)


@dataclass(frozen=True)
class ImageReference:
    """A checked reference image: its bytes, file name and MIME type, ready for a multipart part."""

    data: bytes
    filename: str
    content_type: str


def reference_url(reference: object) -> str | None:
    """``reference`` when it is an ``http(s)://`` URL (the service fetches it), else ``None`` (a local path...).

    >>> reference_url("https://images.example/first.png"), reference_url("first.png")
    ('https://images.example/first.png', None)
    """
    if isinstance(reference, str) and reference.startswith(("https://", "http://")):
        return reference
    return None


def load_reference(
    reference: ReferenceInput, size: str, *, check_dimensions: bool = True
) -> ImageReference | dict[str, str]:
    """Read and check a reference image; JSON references (``image_url``/``file_id``) are checked for shape only.

    The image must be JPEG, PNG or WebP and, for the contract's servers, exactly ``size``.
    """
    if isinstance(reference, dict):
        keys = set(reference) & {"image_url", "file_id"}
        if len(keys) != 1 or len(reference) != 1:
            raise ValidationError(
                "input_reference as a dict must have exactly one of 'image_url' or 'file_id', "
                f"got keys {sorted(reference)}. Fix: pass {{'image_url': 'https://...'}} or a file path.",
                field="input_reference",
                allowed=("image_url", "file_id"),
            )
        return dict(reference)
    filename = "reference"
    if isinstance(reference, (str, os.PathLike)):
        path = Path(reference)
        data = read_user_file(path, field="input_reference", limit=MAX_REFERENCE_BYTES, what="image file")
        filename = path.name
    elif isinstance(reference, (bytes, bytearray)):
        data = bytes(reference)
    elif hasattr(reference, "read"):
        data = reference.read(MAX_REFERENCE_BYTES + 1)
        filename = Path(getattr(reference, "name", filename)).name
    else:
        raise ValidationError(
            f"input_reference must be a path, bytes, a binary file or a dict, got {type(reference).__name__}. "
            "Fix: pass the path of a JPEG, PNG or WebP image.",
            field="input_reference",
        )
    if len(data) > MAX_REFERENCE_BYTES:
        raise ValidationError(
            f"input_reference has more than {MAX_REFERENCE_BYTES // (1024 * 1024)} MB. "
            "Fix: pass a smaller image (compress or resize it).",
            field="input_reference",
        )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, dims = image.format, image.size
    except (UnidentifiedImageError, OSError):
        fmt, dims = None, (0, 0)
    if fmt not in _IMAGE_TYPES:
        raise ValidationError(
            f"input_reference is not a JPEG, PNG or WebP image (found {fmt or 'unknown data'}). "
            "Fix: convert it to one of those formats.",
            field="input_reference",
            allowed=tuple(_IMAGE_TYPES),
        )
    if check_dimensions and "x" in size:
        want = parse_size(size)
        if dims != want:
            raise ValidationError(
                f"input_reference is {dims[0]}x{dims[1]} but size is {size}; the image must match it exactly. "
                f"Fix: resize or crop the image to {size} (e.g. PIL.ImageOps.fit(image, {want})), or pick that size.",
                field="input_reference",
                allowed=(size,),
            )
    if "." not in filename:
        filename += "." + fmt.lower().replace("jpeg", "jpg")
    return ImageReference(data=data, filename=filename, content_type=_IMAGE_TYPES[fmt])


def check_create(
    *, prompt: object, model: str, size: object, seconds: object, capabilities: Capabilities | None
) -> dict[str, Any]:
    """Check the create parameters against what the server takes; return them normalised (``seconds`` a string).

    ``capabilities=None`` checks the shapes only (the prompt, ``WIDTHxHEIGHT``, whole seconds).

    >>> check_create(prompt="a fox", model="sora-2", size="1280x720", seconds=8, capabilities=_catalog.CONTRACT)
    {'prompt': 'a fox', 'model': 'sora-2', 'size': '1280x720', 'seconds': '8'}
    """
    params = {
        "prompt": check_prompt(prompt),
        "model": model,
        "size": check_size(size, model, capabilities=None),
        "seconds": check_seconds(seconds, model, capabilities=None),
    }
    if capabilities is not None:
        capabilities.check(model, params["size"], params["seconds"])
    return params


def check_character_name(name: object, *, field: str = "name") -> str:
    """A character's name: text of 1 to 80 characters.

    >>> check_character_name("Ada")
    'Ada'
    >>> check_character_name("")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sora_nb.ValidationError: name is empty. Allowed: 1 to 80 characters. Fix: ...
    """
    limit = _catalog.MAX_CHARACTER_NAME
    if not isinstance(name, str):
        raise TypeError(f"{field} must be a str, got {type(name).__name__}. Fix: e.g. {field}='Ada'.")
    if not name.strip():
        raise ValidationError(
            f"{field} is empty. Allowed: 1 to {limit} characters. Fix: name the character, e.g. {field}='Ada' "
            "(prompts then call it by that name).",
            field=field,
        )
    if len(name) > limit:
        raise ValidationError(
            f"{field} has {len(name)} characters. Allowed: 1 to {limit}. Fix: shorten the name.", field=field
        )
    return name


def check_character_clip(width: int, height: int, duration: float, *, field: str = "video") -> None:
    """Refuse a clip the server would not take for a character: 2-4 s, 16:9 or 9:16, 720p to 1080p.

    >>> check_character_clip(1280, 720, 4.0)
    >>> check_character_clip(1280, 720, 10.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sora_nb.ValidationError: video is 10.00 s long. Allowed: 2 to 4 s. Fix: ...
    """
    low, high = _catalog.CHARACTER_SECONDS
    slack = _catalog.CHARACTER_TOLERANCE_S
    if not low - slack <= duration <= high + slack:
        fix = (
            "Fix: let client.create_character trim it (the default: a 4 s cut from start=, in seconds), "
            "or cut the clip to 2-4 s yourself."
            if duration > high else "Fix: use a longer clip (a character needs at least 2 s of the person or thing)."
        )
        raise ValidationError(f"{field} is {duration:.2f} s long. Allowed: {low:g} to {high:g} s. {fix}", field=field)
    short, long = sorted((width, height))
    if short <= 0 or abs(long / short - 16 / 9) > 0.02:
        raise ValidationError(
            f"{field} is {width}x{height}. Allowed: 16:9 or 9:16 (e.g. 1280x720, 720x1280, 1920x1080). "
            "Fix: crop the clip to 16:9 or 9:16.",
            field=field,
        )
    small, big = _catalog.CHARACTER_SIDES
    if not small <= short <= big:
        raise ValidationError(
            f"{field} is {width}x{height}. Allowed: 720p to 1080p (the short side {small} to {big} pixels). "
            "Fix: scale the clip to 1280x720 or 1920x1080 (or the portrait 720x1280, 1080x1920).",
            field=field,
        )


def check_characters(
    prompt: str, characters: Sequence[tuple[str, str]], *, field: str = "characters"
) -> tuple[tuple[str, str], ...]:
    """Check the ``(id, name)`` of the characters a create names against its prompt; return them.

    At most two, no one twice, and each name verbatim in the prompt (the server finds the cameo by name).

    >>> check_characters("Ada walks in the rain", [("char_1", "Ada")])
    (('char_1', 'Ada'),)
    >>> check_characters("a walk in the rain", [("char_1", "Ada")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sora_nb.ValidationError: character 'Ada' is not named in the prompt ...
    """
    chosen = tuple(characters)
    limit = _catalog.MAX_CHARACTERS
    names = ", ".join(repr(name) for _, name in chosen)
    if len(chosen) > limit:
        raise ValidationError(
            f"{len(chosen)} characters given ({names}). Allowed: at most {limit} per video. "
            f"Fix: keep {limit} of them, and make another video for the others.",
            field=field,
        )
    ids = [character_id for character_id, _ in chosen]
    if len(set(ids)) != len(ids):
        raise ValidationError(f"a character is given twice ({names}). Fix: name each once.", field=field)
    for _, name in chosen:
        if name not in prompt:
            raise ValidationError(
                f"character {name!r} is not named in the prompt {prompt[:80]!r}: the server finds a character by "
                f"its name, written verbatim in the prompt. Fix: write {name!r} into the prompt "
                f"(e.g. '{name} walks through the rain'), or leave the character out.",
                field=field,
            )
    return chosen
