"""How the HTTP client's failures read: one line an artist can act on for a status, a lost
connection or a create whose fate is unknown; and what a failure says about trying again
(whether the request ever left, when the service asks us to come back)."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3.exceptions

from .http_parts import PREFS_HINT, TRANSIENT, HttpError, ServiceHooks


def status_error(resp: requests.Response, context: str, label: str, hooks: ServiceHooks,
                 redact: Callable[[str], str]) -> HttpError:
    """A non-2xx answer as an `HttpError`: the service's own words (redacted, one line, capped)
    and our line for the artist, the service's hooks first."""
    status = resp.status_code
    body = _body_of(resp)
    message = _provider_message(status, body, hooks, redact)
    hooked = hooks.is_transient(status, body)
    transient = (status in TRANSIENT) if hooked is None else hooked
    line = hooks.describe(status, message, context, label)
    if line is None:
        line = standard_line(label, status, message, context)
    return HttpError(
        redact(line), status=status, retryable=transient,
        provider_message=message, body=body,
    )


def _provider_message(status: int, body: Any, hooks: ServiceHooks,
                      redact: Callable[[str], str]) -> str:
    raw = hooks.error_message(status, body) or ""
    text = " ".join(redact(str(raw)).split())
    return text if len(text) <= 300 else text[:297] + "…"


def standard_line(label: str, status: int, message: str, context: str) -> str:
    said = f": {message}" if message else ""
    if status == 401:
        return f"{label} rejected the API key — check {PREFS_HINT}"
    if status == 403:
        return (f"{label} refused access with this API key (HTTP 403{said}) — check the key "
                f"and your {label} plan in {PREFS_HINT}")
    if status == 402:
        return f"Your {label} account has no credits left — top it up at {label}, then retry"
    if status in (404, 410) and context == "task":
        return f"{label} no longer knows this job (expired or deleted)"
    if status in (404, 405):
        return (f"{label} has no such endpoint (HTTP {status}{said}) — check the base URL "
                f"in {PREFS_HINT}")
    if status == 429:
        return f"{label} is too busy for more requests (HTTP 429{said}) — try again later"
    if status >= 500:
        return f"{label} is not responding (HTTP {status}) — try again later"
    if 300 <= status < 400:
        return (f"{label} redirected the request elsewhere (HTTP {status}) — check the base "
                f"URL in {PREFS_HINT}")
    if message:
        return f"{label} refused the request: {message}"
    return f"{label} refused the request (HTTP {status})"


def connection_error(label: str, exc: Exception, retryable: bool) -> HttpError:
    return HttpError(
        f"{label} {connection_reason(exc)} — check your internet connection, then "
        f"try again",
        retryable=retryable,
    )


def unconfirmed(label: str, cause: str, status: int | None = None) -> HttpError:
    """A create whose fate is unknown: say so, and never send it again on our own."""
    what = f"HTTP {status}" if status else f"it {cause}"
    return HttpError(
        f"{label} did not confirm the new job ({what}); it may still have been "
        f"created — check your {label} account before retrying",
        status=status, retryable=False,
    )


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def never_sent(exc: BaseException) -> bool:
    """True when the request certainly never reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        cur = stack.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)):
            return True
        if isinstance(cur, urllib3.exceptions.MaxRetryError):
            stack.append(cur.reason)
        if isinstance(cur, BaseException):
            stack.extend(a for a in cur.args if isinstance(a, BaseException))
            stack.extend([cur.__cause__, cur.__context__])
    return False


def connection_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.ProxyError):
        return "could not be reached through the configured proxy (HTTPS_PROXY)"
    if isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectTimeout):
        return "did not answer in time"
    if never_sent(exc):
        return "could not be reached"
    return "dropped the connection"


def _body_of(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text[:2000] if resp.content else None
