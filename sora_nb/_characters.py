"""The local registry of characters (cameos): what ``client.characters()`` lists across sessions.

The contract can make a character and fetch one by id, but has no list endpoint, so the client keeps
its own list. Where: ``<run_root>/characters/`` (``sora_runs/characters/`` by default), beside the runs,
holding ``characters.json``, each character's clip (``<id>.mp4``, what was uploaded) and its poster
(``<id>.png``). Next to the runs rather than in a per-user data directory because that is the one place
the client already writes, chosen by the user (``run_root=``): a project's characters travel with its
runs and notebooks, a test's ``run_root`` in a temporary directory isolates it, and no new dependency
is needed to find a platform's data directory.

JSON rather than SQLite: a handful of small records a person may want to read, rewritten whole. Each
write goes to a temporary file that is renamed over the old one (a reader sees the old list or the new,
never half of one), under an exclusive lock on ``characters.lock`` so that two notebooks adding at once
both keep theirs. Records name the server (its base URL, passwords redacted) and profile the character
belongs to, since an id means nothing to another server; no key is ever written (a record that looks
like one is refused).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     registry = CharacterRegistry(d, server="http://simulator.local/v1/")
...     _ = registry.add(Character(id="char_1", name="Ada", created_at=1700000000))
...     [c.name for c in CharacterRegistry(d, server="http://simulator.local/v1/").all()]
['Ada']
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _catalog
from ._clip import cut_clip, poster_frame, probe_clip
from ._errors import StorageError, ValidationError
from ._redact import looks_like_secret, redact_url
from ._types import Character
from ._validation import check_id

if TYPE_CHECKING:
    from ._contract import ContractClient

__all__ = ["REGISTRY_DIR", "REGISTRY_FILE", "CharacterRegistry", "make_character"]

REGISTRY_DIR = "characters"
REGISTRY_FILE = "characters.json"
_VERSION = 1


class CharacterRegistry:
    """The characters made through one server, kept in ``<run_root>/characters/``."""

    def __init__(self, run_root: str | os.PathLike[str], *, server: str) -> None:
        self.directory = Path(run_root) / REGISTRY_DIR
        self.path = self.directory / REGISTRY_FILE
        self.server = redact_url(server)

    def all(self) -> list[Character]:
        """This server's characters, oldest first (an empty list when none were made)."""
        return [self._character(entry) for entry in self._read() if entry.get("server") == self.server]

    def get(self, character_id: str) -> Character | None:
        """This server's character with ``character_id``, or ``None``."""
        return next((c for c in self.all() if c.id == character_id), None)

    def file(self, character_id: str, suffix: str) -> Path:
        """Where the character's clip (``.mp4``) or poster (``.png``) is kept (the id is checked first)."""
        return self.directory / f"{check_id(character_id, field='character id')}{suffix}"

    def add(self, character: Character) -> Character:
        """Record ``character`` (replacing a record of the same id); return it as listed."""
        if not character.id or character.name is None:
            raise ValueError("a character needs an id and a name to be recorded.")
        check_id(character.id, field="character id")
        entry = {
            "id": character.id,
            "name": character.name,
            "created_at": character.created_at,
            "poster": Path(character.poster_path).name if character.poster_path else None,
            "server": self.server,
        }
        with self._locked():
            entries = [e for e in self._read() if not (e.get("id") == character.id and e.get("server") == self.server)]
            self._write([*entries, entry])
        return self._character(entry)

    def _character(self, entry: dict[str, Any]) -> Character:
        poster = entry.get("poster")
        path = self.directory / poster if isinstance(poster, str) and poster else None
        return Character(
            id=entry.get("id"),
            name=entry.get("name"),
            created_at=entry.get("created_at"),
            poster_path=str(path) if path is not None and path.is_file() else None,
        )

    def _read(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"the character registry {str(self.path)!r} cannot be read ({type(exc).__name__}: {exc}). "
                "Fix: restore it or delete it (the characters stay on their server; get_character(id) "
                "records one again)."
            ) from None
        entries = data.get("characters") if isinstance(data, dict) else None
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def _write(self, entries: list[dict[str, Any]]) -> None:
        text = json.dumps({"version": _VERSION, "characters": entries}, ensure_ascii=False, indent=1)
        if looks_like_secret(text):
            raise ValueError(
                "a character record looks like it holds an API key; the registry never stores keys. "
                "Fix: choose another name for the character."
            )
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock across processes for a read-modify-write (none where ``fcntl`` is missing)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # Windows: the rename still keeps the file whole; a race may drop one record
            yield
            return
        with open(self.directory / "characters.lock", "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def with_poster(character: Character, poster: Path | None) -> Character:
    """``character`` with its poster's path set."""
    return dataclasses.replace(character, poster_path=str(poster) if poster is not None else None)


async def make_character(
    api: ContractClient,
    registry: CharacterRegistry,
    path: Path,
    name: str,
    *,
    size: tuple[int, int] | None,
    start: float,
    seconds: float | None,
    trim: bool,
) -> Character:
    """Cut ``path`` to a character's clip where needed, upload it, and record the character with its clip
    and poster. The PyAV work runs in worker threads, off the loop.

    The cut is made when the clip is too long, when ``start``/``seconds`` ask for a part of it, or when it is
    not at ``size`` (a job's video, which a server may deliver smaller than it was asked for). The contract
    client checks the result (2-4 s, 16:9 or 9:16, 720p-1080p) before anything is sent.
    """
    if looks_like_secret(name):  # refused now: the registry would refuse it only once the server made (and billed) it
        raise ValidationError(
            "name looks like an API key; a character's name is stored and shown, keys never are. "
            "Allowed: a name such as 'Ada'. Fix: choose another name.", field="name")
    width, height, duration = await asyncio.to_thread(functools.partial(probe_clip, path, field="source"))
    longest = _catalog.CHARACTER_SECONDS[1]
    cut_needed = (duration > longest + _catalog.CHARACTER_TOLERANCE_S or start > 0 or seconds is not None
                  or (size is not None and size != (width, height)))
    registry.directory.mkdir(parents=True, exist_ok=True)
    clip, cut = path, None
    if trim and cut_needed:
        length = seconds if seconds is not None else min(longest, max(0.0, duration - start))
        cut = registry.directory / f".cut-{uuid.uuid4().hex}.mp4"
        clip = await asyncio.to_thread(
            functools.partial(cut_clip, path, cut, start=start, seconds=float(length), size=size)
        )
    try:
        made = await api.create_character(clip, name)
        assert made.id is not None  # the contract client refuses an answer without a safe id
        try:
            kept = registry.file(made.id, ".mp4")
            await asyncio.to_thread(os.replace if cut is not None else shutil.copyfile, clip, kept)
            poster = await asyncio.to_thread(poster_frame, kept, registry.file(made.id, ".png"))
            return registry.add(with_poster(made, poster))
        except OSError as exc:
            # The server has it (and billed it) but has no list of characters: without its id it would be lost.
            raise StorageError(
                f"character {made.id!r} was made on the server but could not be kept in {registry.directory}: "
                f"{exc.strerror or exc}. Fix: free space on that disk (or make it writable), then "
                f"client.get_character({made.id!r}) records it (making it again would make a second one).",
                run_dir=registry.directory,
            ) from exc
    finally:
        if cut is not None:
            cut.unlink(missing_ok=True)
