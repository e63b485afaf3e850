"""The routines every line we show, log, journal or report passes through: `redact` keeps
secrets out, `clean_text` keeps a server's text to one short, printable line."""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Iterable

# Shorter values are not masked: replacing two or three characters everywhere would garble
# messages, and no service issues keys that short.
MIN_SECRET = 4
MASK = "***"
# The longest line a job, the journal or the panel keeps: a message names the provider and says
# what to do, and the server's own words inside it are capped shorter by the providers.
MAX_TEXT = 400
ELLIPSIS = "…"


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


def clean_text(text: object, limit: int = MAX_TEXT, secrets: Iterable[str] = ()) -> str:
    """One printable line of at most `limit` characters: control and format characters
    (escape sequences, bidi overrides, zero-width marks) dropped, whitespace runs made one
    space, secrets masked, the end cut with "…". Everything a server says that we show or
    store goes through here (a job's message, journal entries, the panel, reports)."""
    raw = text if isinstance(text, str) else str(text)
    if len(raw) > 8 * limit:  # a megabyte of message is cut before any per-character work
        raw = raw[: 8 * limit]
    kept = "".join(_printable(c) for c in raw)
    line = " ".join(kept.split())
    if secrets:
        line = redact(line, secrets)
    if len(line) > limit:
        line = line[: max(0, limit - 1)].rstrip() + ELLIPSIS
    return line


def _printable(char: str) -> str:
    """A control character (line breaks, tabs, ESC) becomes a space; other invisible ones
    (format, private-use, unassigned) disappear; everything else stays."""
    if char.isprintable():
        return char
    return " " if unicodedata.category(char) == "Cc" or char.isspace() else ""
