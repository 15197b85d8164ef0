"""Secrets never reach the model, the checkpoint or the logs: scrub keys and tokens out of the user's text."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted secret]"

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S)),
    ("url password", re.compile(r"(?<=://)[^:/@\s]*:[^@\s]+(?=@)")),
    ("openai key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}")),
    ("iqts token", re.compile(r"\biqts_[A-Za-z0-9_\-]{16,}")),
    ("github token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    ("aws key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("bearer token", re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/\-]{12,}=*")),
    (
        "labelled secret",
        re.compile(
            r"(?i)(\b(?:api[_\s-]?key|api[_\s-]?secret|secret(?:[_\s-]?key)?|password|passphrase|token|"
            r"private[_\s-]?key)\b\s*(?:is|=|:)\s*)(?!\[redacted)(\"[^\"]{6,}\"|'[^']{6,}'|[^\s,;]{6,})"
        ),
    ),
    ("hex secret", re.compile(r"\b[0-9a-fA-F]{40,}\b")),
    ("base64 secret", re.compile(r"\b(?=[A-Za-z0-9+/_\-]*[0-9])(?=[A-Za-z0-9+/_\-]*[A-Z])[A-Za-z0-9+/_\-]{40,}={0,2}")),
)


def redact_secrets(text: str, known: Iterable[str] = ()) -> tuple[str, list[str]]:
    """The text with every secret-looking value replaced, and the kinds that were found."""
    found: list[str] = []
    for value in sorted({k for k in known if len(k) >= 6}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
            found.append("configured secret")
    for kind, pattern in _PATTERNS:
        if kind == "labelled secret":
            new = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            new = pattern.sub(REDACTED, text)
        if new != text:
            found.append(kind)
            text = new
    return text, found
