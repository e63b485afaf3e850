"""The one routine that keeps secrets out of every line we show, log, journal or report."""

from __future__ import annotations

import base64
from collections.abc import Iterable

# Shorter values are not masked: replacing two or three characters everywhere would garble
# messages, and no service issues keys that short.
MIN_SECRET = 4
MASK = "***"


def secret_forms(values: Iterable[str]) -> list[str]:
    """Every form in which these credentials could leak, longest first: each value, the token
    of an auth header ("Bearer <token>"), and the key and secret inside a Basic token."""
    found: set[str] = set()
    for value in values:
        value = (value or "").strip()
        found.add(value)
        scheme, _, token = value.partition(" ")
        if token:
            found.add(token)
            if scheme.lower() == "basic":
                found.update(_basic_parts(token))
    return sorted((s for s in found if len(s) >= MIN_SECRET), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret masked (`secrets` as `secret_forms` gives them)."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


def _basic_parts(token: str) -> list[str]:
    try:
        user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return []
    return [user, password]
