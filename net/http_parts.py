"""What the two halves of the HTTP client (requests in `http.py`, downloads in `download.py`)
share: the retry policy, the errors, a service's hooks, the base URL rule, and how a request the
watchdog cut (`inflight.py`) ends."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from . import inflight
from .errors import Canceled, CancelToken, ProviderError, TimedOut
from .links import is_loopback_host

PREFS_HINT = "Preferences > Add-ons > Text to Texture"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
MIN_RATE = 256 * 1024  # bytes per second a request's deadline gives its upload or download
MAX_REDIRECTS = 5
# Statuses worth another try: throttling and server-side trouble. 501 is permanent.
TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})

Sleeper = Callable[[float, CancelToken | None], None]


def default_sleep(seconds: float, cancel: CancelToken | None) -> None:
    """Wait, waking at once with `Canceled` when the job is canceled."""
    if cancel is not None:
        cancel.sleep(seconds)
    else:
        time.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try again. Defaults follow Meshy's own client (waits of about 1, 2, 4 s)."""

    retries: int = 3  # extra attempts after the first
    base: float = 1.0  # first backoff, doubled each time
    cap: float = 30.0  # no single wait longer than this, unless the server asks for it
    max_total: float = 90.0  # never spend longer than this waiting on one call
    jitter: float = 0.5  # fraction of each wait that is randomised, so clients spread out

    def backoff(self, attempt: int) -> float:
        """Wait before retry number `attempt` (0-based): exponential, capped, jittered."""
        full = min(self.cap, self.base * (2**attempt))
        return full * (1.0 - self.jitter) + random.uniform(0.0, full * self.jitter)


NO_RETRY = RetryPolicy(retries=0)


class HttpError(ProviderError):
    """A `ProviderError` that also keeps what the service said, for provider-specific handling."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        provider_message: str = "",
        body: Any = None,
    ) -> None:
        super().__init__(message, retryable=retryable, status=status)
        self.provider_message = provider_message
        self.body = body


class LinkExpired(HttpError):
    """A signed result URL that the storage no longer honours (403/404/410 on a download)."""


class ServiceHooks:
    """Where a provider teaches the client its error shapes and throttling hints.

    Subclass and override what the service does differently; the defaults read the common
    `{"message"|"error"|"detail"|"reason": ...}` shapes and the standard `Retry-After` header.
    """

    def error_message(self, status: int, body: Any) -> str:
        """The service's own human message in an error body ("" if none)."""
        if isinstance(body, Mapping):
            for key in ("message", "error", "detail", "reason", "msg"):
                value = body.get(key)
                if isinstance(value, str) and value.strip():
                    return value
                if isinstance(value, Mapping):
                    inner = self.error_message(status, value)
                    if inner:
                        return inner
        if isinstance(body, str):
            return body if len(body) < 300 and "<" not in body else ""
        return ""

    def retry_hint(self, status: int, body: Any, headers: Mapping[str, str]) -> float | None:
        """Seconds the service asks us to wait (Scenario `remainingSeconds`, …), else None."""
        return None

    def is_transient(self, status: int, body: Any) -> bool | None:
        """Override the default transient/permanent decision for a status (Triverse code 2000)."""
        return None

    def queue_full(self, status: int, body: Any, method: str, path: str) -> bool:
        """True when this answer refuses a *new task* because the account's queue is full
        (Meshy `pending_task_limit_reached`, Triverse 2000 on a create). Such an answer is not
        retried here: `QueueFull` goes up to the runner, which waits for a slot instead."""
        return False

    def describe(self, status: int, message: str, context: str, label: str) -> str | None:
        """A provider-specific one-liner for this failure (e.g. a 403 that means "content
        refused" or "no credits"), or None for the standard wording."""
        return None


def url_problem(url: str, label: str, what: str = "address") -> str:
    """"" if `url` may be used, else one line: HTTPS is required except on loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f"The {label} {what} is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return f"The {label} {what} must start with https://"
    if parts.scheme == "http" and not is_loopback_host(host):
        return (
            f"The {label} {what} must use https:// (plain http is only allowed for this "
            f"computer) — check {PREFS_HINT}"
        )
    return ""


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def loggable(url: str) -> str:
    """host/path without userinfo or query: signed URLs carry their signature in the query."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}{parts.path}"


def raise_cut(ex: inflight.Exchange) -> None:
    """Turn a request the watchdog cut into its ending: the job's cancel or deadline, or (its own
    total deadline) a read timeout the retry logic knows."""
    if ex.reason == inflight.CANCELED:
        raise Canceled()
    if ex.reason == inflight.EXPIRED:
        raise TimedOut()
    if ex.reason == inflight.DEADLINE:
        raise requests.ReadTimeout("the request's total deadline passed")


def as_requests_error(exc: BaseException) -> requests.RequestException:
    """A failure while reading an answer, as the requests exception the retry logic knows."""
    if isinstance(exc, requests.RequestException):
        return exc
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return requests.ReadTimeout(str(exc))
    return requests.ConnectionError(exc)
