"""What every cassette test shares: record mode, scrubbing, and a header saying where a cassette
was recorded from. Cassettes are recorded only with ``SORA_NB_RECORD=1`` (from the simulator served
on loopback) and replayed with record mode ``none`` otherwise."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vcr.persisters.filesystem import FilesystemPersister

RECORDING = os.environ.get("SORA_NB_RECORD") == "1"
CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
SECRET_HEADERS = ["authorization", "x-goog-api-key", "api-key", "cookie", "set-cookie"]


def vcr_options(scrub: Callable[[str], str]) -> dict[str, Any]:
    """pytest-vcr options whose request and response bodies pass through ``scrub`` before writing."""

    def scrub_request(request: Any) -> Any:
        if isinstance(request.body, (bytes, str)) and request.body:
            body = request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) else request.body
            if scrub(body) != body:
                request.body = scrub(body)
        request.uri = re.sub(r"([?&]key=)[^&]+", r"\1REDACTED", request.uri)
        return request

    def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body", {}).get("string")
        if isinstance(body, bytes) and body[:1] in (b"{", b"["):
            response["body"]["string"] = scrub(body.decode("utf-8", "replace")).encode()
        return response

    return {
        "record_mode": "all" if RECORDING else "none",
        "filter_headers": SECRET_HEADERS,
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
        "decode_compressed_response": True,
    }


def annotating_persister(header_for: Callable[[Path], str]) -> type[FilesystemPersister]:
    """A persister that starts each cassette with ``header_for(path)``: where it was recorded from."""

    class AnnotatedPersister(FilesystemPersister):
        @staticmethod
        def save_cassette(cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
            FilesystemPersister.save_cassette(cassette_path, cassette_dict, serializer)
            path = Path(cassette_path)
            path.write_text(header_for(path) + path.read_text())

    return AnnotatedPersister
