"""Keeping secrets out of logs, messages and recordings.

One function, :func:`redact`, scrubs API keys, bearer tokens and the signature parts of signed URLs
from any text, and every credential a live client holds (:func:`watch_secrets`: a key of any shape, a
base URL's password), which no pattern could recognise; :class:`RedactingFilter` applies it to
every record of the ``sora_nb`` logger and of httpx's and httpcore's loggers (httpx logs each request's
URL at INFO, httpcore each response's headers at DEBUG: both may carry what a server echoes).
"""

from __future__ import annotations

import logging
import re
import weakref
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MAX_SERVER_TEXT",
    "SIGNED_URL_PARAMS",
    "RedactingFilter",
    "logger",
    "looks_like_secret",
    "redact",
    "redact_server_text",
    "redact_url",
    "watch_secrets",
]

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
    (re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{6,}"), r"\1" + REDACTED),
    # OpenAI-style and other prefixed keys (sk-..., sk-proj-..., sk-or-..., AIza...); xAI keys are
    # ``xai-`` and some 80 letters and digits (a shorter ``xai-video-<uuid>`` is a CDN path, not a key).
    (re.compile(r"\b(sk|rk)-[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\bxai-[A-Za-z0-9]{32,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), REDACTED),
    # key: value pairs in headers and JSON.
    (
        re.compile(
            r"(?i)\b((?:api[-_]?key|x-goog-api-key|authorization|access_token)[\"']?\s*[:=]\s*[\"']?)"
            # Not "...": the fix in sora_nb's own messages ("pass api_key=...") is not a key.
            r"(?!\.\.\.)([^\"'&\s,;}]+)"
        ),
        r"\1" + REDACTED,
    ),
    # A password in a URL's user info (``https://user:password@host``).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\\]+:)[^/\s@\\]+@"), r"\1" + REDACTED + "@"),
    # Signature parameters inside URLs' query strings.
    (
        re.compile(r"(?i)([?&](?:" + "|".join(re.escape(p) for p in sorted(SIGNED_URL_PARAMS)) + r")=)([^&\s\"'#]+)"),
        r"\1" + REDACTED,
    ),
]

# A password in a URL's user info, with or without a scheme (``alice:pw@host/v1`` is a typo, not an email).
_USER_INFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?[^/:@\s]*:)[^/@\s]+@")

_SECRET = re.compile(
    r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}"
    r"|\b(?:sk|rk)-[A-Za-z0-9_-]{16,}|\bxai-[A-Za-z0-9]{32,}"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
    r"|[?&](?:sig|skoid|signature|x-amz-signature|x-goog-signature|access_token|api_key|key)=[^&\s]{8,}"
    r"|\b(?:api[-_]?key|x-goog-api-key|authorization)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9._-]{12,}"
    # A JSON member named like a credential, whatever its value looks like.
    r"|\"(?:api[-_]?key|apikey|x-goog-api-key|authorization|access_token|token|secret|password)\"\s*:\s*\"[^\"]{4,}\""
)


def looks_like_secret(text: str) -> bool:
    """True when ``text`` holds something shaped like a credential (stricter than :func:`redact`,
    which also scrubs weaker matches from logs). Used to refuse storing keys anywhere on disk.

    >>> looks_like_secret("a horse: galloping"), looks_like_secret("Bearer sk-proj-abcdefghijklmnop")
    (False, True)
    """
    return _SECRET.search(text) is not None


def redact_url(url: str) -> str:
    """Drop the values of signature query parameters and a user-info password, keeping the URL readable.

    >>> redact_url("https://cdn.example/v.mp4?se=2026&sig=abc&x=1")
    'https://cdn.example/v.mp4?se=REDACTED&sig=REDACTED&x=1'
    >>> redact_url("https://alice:pa55word@relay.example/v1")
    'https://alice:REDACTED@relay.example/v1'
    >>> redact_url("alice:pa55word@relay.example/v1")  # no scheme (a typo): still a password
    'alice:REDACTED@relay.example/v1'
    """
    url = _USER_INFO.sub(r"\1" + REDACTED + "@", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.partition(':')[0]}:{REDACTED}@{host}")
        url = urlunsplit(parts)
    if not parts.query:
        return url
    query = [
        (k, REDACTED if k.lower() in SIGNED_URL_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe=REDACTED)))


# The clients alive in this process, whose credentials (whatever their shape) are scrubbed from any text,
# so that what a server echoes back (a 401 message, an error code, a response header in httpcore's log)
# loses them too. Weak: the keys stay in the clients (DESIGN.md invariant 7), and go with them.
# By id, each a weak reference that removes itself: ``list(dict.values())`` copies in one step, safe while
# another thread makes a client (no lock: this module is pure core, see the layers in pyproject.toml).
_HOLDERS: dict[int, weakref.ref[Any]] = {}


def watch_secrets(holder: Any) -> None:
    """Make :func:`redact` scrub ``holder._secrets`` (a tuple of strings) for as long as ``holder`` lives.

    >>> class Client:
    ...     _secrets = ("hunter2-pass",)
    >>> client = Client(); watch_secrets(client); redact("echo: hunter2-pass")
    'echo: REDACTED'
    """
    key = id(holder)
    _HOLDERS[key] = weakref.ref(holder, lambda _ref: _HOLDERS.pop(key, None))


def _watched() -> set[str]:
    holders = [ref() for ref in list(_HOLDERS.values())]
    # Six characters or more: scrubbing a short "key" (a test's "test") everywhere would mangle paths and words.
    return {s for holder in holders if holder is not None for s in getattr(holder, "_secrets", ()) if s and len(s) >= 6}


def redact(text: str, *secrets: str | None) -> str:
    """Scrub keys, bearer tokens and URL signatures from ``text``; also any exact ``secrets`` given, and
    those of the clients watched with :func:`watch_secrets`.

    >>> redact("Authorization: Bearer sk-abcdefghijkl123")
    'Authorization: REDACTED REDACTED'
    >>> redact("calling with my-own-key", "my-own-key")
    'calling with REDACTED'
    """
    # Longest first: a key that contains another remembered secret is scrubbed whole.
    for secret in sorted({*(s for s in secrets if s and len(s) >= 4), *_watched()}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


MAX_SERVER_TEXT = 2000
"""Characters kept of one string a server sends (an error's message, code, param): a proxy may paste a whole
page there, and each lands in the ledger, DataFrames, cards saved in notebooks and exception text."""


def redact_server_text(text: str, *secrets: str | None) -> str:
    """:func:`redact`, then clip to :data:`MAX_SERVER_TEXT` characters, saying how many were left out.

    Redacted before clipping: a key cut in two would be recognised by neither half.

    >>> redact_server_text("x" * 2005)[-30:]
    'xxxxxx... (5 more characters)'
    """
    text = redact(text, *secrets)
    if len(text) <= MAX_SERVER_TEXT:
        return text
    return f"{text[:MAX_SERVER_TEXT]}... ({len(text) - MAX_SERVER_TEXT} more characters)"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record (its message and its traceback) before it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text when it is set: the traceback's exception messages, scrubbed.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# A logger's filters do not apply to its children's records, so each logger that httpx and httpcore
# write to gets one (httpcore names one per module).
_LIBRARY_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                    "httpcore.proxy", "httpcore.socks")
_FILTER = RedactingFilter()
for _name in ("sora_nb", *_LIBRARY_LOGGERS):
    logging.getLogger(_name).addFilter(_FILTER)
logger.addHandler(logging.NullHandler())
