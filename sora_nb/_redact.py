"""Keeping secrets out of logs, messages and recordings.

One function, :func:`redact`, scrubs API keys, bearer tokens and the signature parts of signed URLs
from any text; :class:`RedactingFilter` applies it to every record of the ``sora_nb`` logger.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["SIGNED_URL_PARAMS", "RedactingFilter", "logger", "redact", "redact_url"]

logger = logging.getLogger("sora_nb")

REDACTED = "REDACTED"

# Query parameters that make a URL a credential: Azure SAS (se, sig, skoid, ...), S3/GCS signatures
# and the generic token/key names relays use.
SIGNED_URL_PARAMS = frozenset(
    {
        "se", "sig", "skoid", "skt", "ske", "sks", "skv", "sktid", "sp", "sv", "sr",
        "token", "access_token", "api_key", "apikey", "key", "signature",
        "x-amz-signature", "x-amz-credential", "x-amz-security-token",
        "x-goog-signature", "x-goog-credential",
    }
)  # fmt: skip

_PATTERNS = [
    # Authorization headers and bearer tokens.
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1" + REDACTED),
    # OpenAI-style and other prefixed keys (sk-..., sk-proj-..., xai-..., AIza...).
    (re.compile(r"\b(sk|xai|rk|or)-[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), REDACTED),
    # key=value pairs in headers, JSON or query strings.
    (
        re.compile(
            r"(?i)((?:api[-_]?key|x-goog-api-key|authorization|access_token|token|sig|signature|se|skoid|skt|ske|sks|skv)"
            r"[\"']?\s*[:=]\s*[\"']?)([^\"'&\s,;}]+)"
        ),
        r"\1" + REDACTED,
    ),
]


def redact_url(url: str) -> str:
    """Drop the values of signature query parameters, keeping the URL readable.

    >>> redact_url("https://cdn.example/v.mp4?se=2026&sig=abc&x=1")
    'https://cdn.example/v.mp4?se=REDACTED&sig=REDACTED&x=1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if not parts.query:
        return url
    query = [
        (k, REDACTED if k.lower() in SIGNED_URL_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe=REDACTED)))


def redact(text: str, *secrets: str | None) -> str:
    """Scrub keys, bearer tokens and URL signatures from ``text``; also any exact ``secrets`` given.

    >>> redact("Authorization: Bearer sk-abcdefghijkl123")
    'Authorization: REDACTED'
    >>> redact("calling with my-own-key", "my-own-key")
    'calling with REDACTED'
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record of the ``sora_nb`` logger before it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


logger.addFilter(RedactingFilter())
logger.addHandler(logging.NullHandler())
