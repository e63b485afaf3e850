"""The HTTP client every cloud provider shares: HTTPS, bounded retries, one-line errors, downloads.

Rules it enforces so that no provider module has to remember them:

* HTTPS only, except for loopback (emulators, local tunnels); a link a server sent (a map, a
  model, a redirect) only to a public host, unless the API itself is on this computer
  (`links.py`).
* Every request has a total deadline, a cancel cuts it within a fraction of a second, and every
  answer is read with a cap that counts decoded bytes (`inflight.py`).
* The API key goes only to the API's own origin, never to a download host or into a message or a
  log line (secrets are redacted even when a server echoes them back).
* A request that may have created a paid task is never sent twice unless the caller says it is
  idempotent; reads and deletes are retried with exponential backoff and jitter, bounded in count
  and total time, honouring `Retry-After` and provider-specific hints.
* Every failure becomes a `ProviderError` whose message is one line an artist can act on.
* Downloads stream to a temporary file beside the destination and appear atomically, are capped
  in size, must really be the expected kind of file, and are named by the caller only.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions

from ..formats import imagefile, limits
from . import inflight
from .errors import Canceled, CancelToken, ProviderError, TimedOut
from .links import is_loopback_host, link_problem
from .redact import redact, secret_forms

__all__ = ["NO_RETRY", "PREFS_HINT", "Downloaded", "HttpClient", "HttpError", "LinkExpired",
           "RetryPolicy", "ServiceHooks", "Sleeper", "bearer", "is_loopback_host",
           "parse_retry_after", "url_problem"]

log = logging.getLogger(__name__)

PREFS_HINT = "Preferences > Add-ons > Text to Texture"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# A JSON answer (a task, a status, an error) is kilobytes; a few MB is far beyond any of them.
MAX_ANSWER_BYTES = 4 << 20
# Total deadlines, per attempt: an API call has a minute plus the time its upload needs at a slow
# rate; a download has two minutes plus the time its size needs at that rate.
API_DEADLINE = 60.0
DOWNLOAD_DEADLINE = 120.0
MIN_RATE = 256 * 1024  # bytes per second
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
_MAX_REDIRECTS = 5
# Statuses worth another try: throttling and server-side trouble. 501 is permanent.
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})

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

    def describe(self, status: int, message: str, context: str, label: str) -> str | None:
        """A provider-specific one-liner for this failure (e.g. a 403 that means "content
        refused" or "no credits"), or None for the standard wording."""
        return None


@dataclass
class Downloaded:
    path: str
    kind: str  # "PNG" | "JPEG" | "WEBP" | "GLB" | "" (unchecked)
    width: int
    height: int
    size: int


_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GLB": ".glb"}


# --------------------------------------------------------------------------- URL policy


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


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def _loggable(url: str) -> str:
    """host/path without userinfo or query: signed URLs carry their signature in the query."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}{parts.path}"


# --------------------------------------------------------------------------- the client


class _HeaderAuth(requests.auth.AuthBase):
    """Adds the provider's auth headers, but only to the API's own origin.

    Being a session `auth` also stops requests from applying ~/.netrc credentials over ours.
    """

    def __init__(self, headers: Mapping[str, str], origin: tuple[str, str, int | None]) -> None:
        self._headers = dict(headers)
        self._origin = origin

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if _origin(r.url or "") == self._origin:
            r.headers.update(self._headers)
        return r

    def __repr__(self) -> str:
        return "_HeaderAuth(***)"


class HttpClient:
    """One provider's connection to its service (a `requests.Session` with policy around it).

    `auth_headers` are applied only to requests to `base_url`'s origin. `sleep` and `retry` are
    injectable so tests run at full speed; every wait goes through `sleep(seconds, cancel)`.
    """

    def __init__(
        self,
        base_url: str,
        auth_headers: Mapping[str, str],
        provider_label: str,
        *,
        hooks: ServiceHooks | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleeper | None = None,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        session: requests.Session | None = None,
        user_agent: str = "text-to-texture-blender",
    ) -> None:
        self.label = provider_label
        problem = url_problem(base_url, provider_label, "base URL")
        if problem:
            raise ProviderError(problem)
        self.base_url = base_url.rstrip("/")
        self.hooks = hooks or ServiceHooks()
        self.retry = retry or RetryPolicy()
        self.sleep: Sleeper = sleep or default_sleep
        self.timeout = timeout
        self._secrets = secret_forms(auth_headers.values())
        if not all(_header_ok(value) for value in auth_headers.values()):
            raise ProviderError(
                f"The {provider_label} API key contains spaces, line breaks or other "
                f"characters a key cannot have — paste it again in {PREFS_HINT}"
            )
        self._origin = _origin(self.base_url + "/")
        # Links a server sends may point home only when the API itself is at home (emulators).
        self.loopback_base = is_loopback_host(urlsplit(self.base_url).hostname or "")
        self.session = session or inflight.watched_session(user_agent)
        if session is not None:
            adapter = inflight.WatchedAdapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = user_agent
        self.session.auth = _HeaderAuth(auth_headers, self._origin)
        # Result files live on storage hosts (CDNs, signed URLs) that must never see the key.
        self.download_session = inflight.watched_session(user_agent)
        self.download_session.auth = _NoAuth()

    def __repr__(self) -> str:
        return f"HttpClient({self.label}, {_loggable(self.base_url)})"

    def close(self) -> None:
        self.session.close()
        self.download_session.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def is_api(self, url: str) -> bool:
        """True for a URL on the API's own origin (the base URL the artist configured)."""
        try:
            return _origin(url) == self._origin
        except ValueError:
            return False

    def address_problem(self, url: str, what: str = "result") -> str:
        """"" if `url` may be fetched: the API's own origin by the base URL's rule, anything
        else (a link a server sent) only over HTTPS to a public host (`links.link_problem`)."""
        if self.is_api(url):
            return url_problem(url, self.label)
        return link_problem(url, allow_loopback=self.loopback_base, label=self.label, what=what)

    # ---- JSON helpers --------------------------------------------------------------------------

    def get_json(self, path: str, cancel: CancelToken | None = None, **kw: Any) -> Any:
        return self.json_of(self.request("GET", path, cancel=cancel, **kw))

    def post_json(
        self,
        path: str,
        body: Any,
        cancel: CancelToken | None = None,
        *,
        safe: bool = False,
        idempotency_key: str | None = None,
        **kw: Any,
    ) -> Any:
        """POST creates things: not retried after it may have arrived, unless `safe`/keyed."""
        resp = self.request(
            "POST", path, json_body=body, cancel=cancel, safe=safe,
            idempotency_key=idempotency_key, **kw,
        )
        return self.json_of(resp)

    def delete(self, path: str, cancel: CancelToken | None = None, **kw: Any) -> None:
        self.request("DELETE", path, cancel=cancel, **kw)

    def json_of(self, resp: requests.Response) -> Any:
        if not resp.content:
            return None
        try:
            return resp.json()
        except (ValueError, RecursionError):
            raise HttpError(
                f"{self.label} sent an answer that is not JSON (HTTP {resp.status_code}) — "
                f"check the base URL in {PREFS_HINT}",
                status=resp.status_code,
            ) from None

    # ---- requests with retries -----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        cancel: CancelToken | None = None,
        safe: bool | None = None,
        idempotency_key: str | None = None,
        retry: RetryPolicy | None = None,
        context: str = "api",
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> requests.Response:
        """Send one API call and return its 2xx response (its body read, at most `max_bytes`),
        or raise `HttpError`.

        `safe` says whether sending the call twice is harmless; None derives it from the method
        (POST/PATCH are not). An unsafe call is retried only where the service certainly did not
        act on it: a 429 answer, or a connection that was never made. `context` picks the
        wording of a 404: "task" (a job the service forgot) or anything else (wrong endpoint).

        Each attempt has a total deadline (`API_DEADLINE` plus its upload's time at `MIN_RATE`).
        `cancel` (or, when None, the token of the job this worker runs) cuts a safe call in
        flight; an unsafe one is left to finish, so a task it creates is not lost unseen.
        """
        method = method.upper()
        if safe is None:
            safe = method in _SAFE_METHODS
        extra = dict(headers or {})
        if idempotency_key:
            extra["Idempotency-Key"] = idempotency_key
            safe = True
        policy = retry or self.retry
        url = self.url(path)
        problem = self.address_problem(url, "request")
        if problem:
            raise ProviderError(problem)
        body = None if json_body is None else json.dumps(json_body).encode("utf-8")
        if body is not None:
            extra.setdefault("Content-Type", "application/json")
        token = cancel if cancel is not None else inflight.job_token()
        seconds = API_DEADLINE + _upload_size(body, data, files) / MIN_RATE
        attempt, waited, started = 0, 0.0, time.monotonic()
        while True:
            if token is not None:
                token.check()
            try:
                resp = self._send(
                    method, url, token, seconds, safe, max_bytes, params=params,
                    data=body if body is not None else data, files=files, headers=extra,
                )
            except requests.exceptions.SSLError:
                # Retrying cannot fix a certificate; usually a proxy or antivirus intercepting.
                raise HttpError(
                    f"{self.label}'s secure connection could not be verified (certificate "
                    "problem) — a proxy or antivirus may be intercepting HTTPS"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                never_sent = _never_sent(exc)
                failure = self._connection_error(exc, never_sent or safe)
                if not (safe or never_sent):
                    raise self._unconfirmed(_connection_reason(exc)) from None
                wait = policy.backoff(attempt)
            except requests.RequestException as exc:  # a request we could not even build
                raise HttpError(
                    f"{self.label}: the request could not be sent ({type(exc).__name__})"
                ) from None
            else:
                if resp.status_code < 300:
                    return resp
                failure = self._status_error(resp, context)
                transient = failure.retryable and resp.status_code != 401
                if not transient or not (safe or resp.status_code == 429):
                    if transient and not safe:  # a 5xx to a create: it may have been accepted
                        raise self._unconfirmed(failure.message, resp.status_code) from None
                    raise failure
                wait = self._server_wait(resp, failure.body, policy, attempt)
            spent = max(waited, time.monotonic() - started)
            if attempt >= policy.retries or spent + wait > policy.max_total:
                raise failure
            attempt += 1
            log.info(
                "%s %s %s: %s; retry %d/%d in %.1f s", self.label, method, _loggable(url),
                self.redact(failure.message), attempt, policy.retries, wait,
            )
            self.sleep(wait, token)
            waited += wait

    def _send(self, method: str, url: str, token: CancelToken | None, seconds: float,
              safe: bool, max_bytes: int, **kw: Any) -> requests.Response:
        """One attempt: the request and its whole answer, as an exchange the watchdog guards.

        Failures come out as requests' own exceptions (a cut at the total deadline as a
        `ReadTimeout`), a cancel as `Canceled`/`TimedOut`, an oversized answer as `HttpError`.
        """
        with inflight.exchange(token, seconds, interruptible=safe,
                               public_only=not (self.loopback_base or self.is_api(url))) as ex:
            try:
                resp = self.session.request(method, url, stream=True, timeout=self.timeout,
                                            allow_redirects=False, **kw)
                with resp:
                    content = inflight.read_capped(resp, max_bytes)
            except inflight.TooLarge:
                raise HttpError(
                    f"{self.label} sent an answer larger than {max_bytes >> 20} MB; it was not "
                    f"read — check the base URL in {PREFS_HINT}") from None
            except inflight.LinkRefused as exc:
                raise ProviderError(f"{self.label}: {exc}; it was not contacted") from None
            except (urllib3.exceptions.HTTPError, OSError, requests.RequestException) as exc:
                _raise_cut(ex)
                raise _as_requests_error(exc) from None
            _raise_cut(ex)
        resp._content = content
        resp._content_consumed = True
        return resp

    def _server_wait(
        self, resp: requests.Response, body: Any, policy: RetryPolicy, attempt: int
    ) -> float:
        """The service's own hint wins over our backoff (a little jitter on top of it)."""
        hint = self.hooks.retry_hint(resp.status_code, body, resp.headers)
        if hint is None:
            hint = parse_retry_after(resp.headers.get("Retry-After"))
        if hint is None:
            return policy.backoff(attempt)
        return max(0.0, hint) * (1.0 + random.uniform(0.0, 0.1 * policy.jitter))

    # ---- error wording -------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _provider_message(self, status: int, body: Any) -> str:
        raw = self.hooks.error_message(status, body) or ""
        text = " ".join(self.redact(str(raw)).split())
        return text if len(text) <= 300 else text[:297] + "…"

    def _status_error(self, resp: requests.Response, context: str) -> HttpError:
        status = resp.status_code
        body = _body_of(resp)
        message = self._provider_message(status, body)
        hooked = self.hooks.is_transient(status, body)
        transient = (status in _TRANSIENT) if hooked is None else hooked
        line = self.hooks.describe(status, message, context, self.label)
        if line is None:
            line = self._standard_line(status, message, context)
        return HttpError(
            self.redact(line), status=status, retryable=transient,
            provider_message=message, body=body,
        )

    def _standard_line(self, status: int, message: str, context: str) -> str:
        label, said = self.label, f": {message}" if message else ""
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

    def _connection_error(self, exc: Exception, retryable: bool) -> HttpError:
        return HttpError(
            f"{self.label} {_connection_reason(exc)} — check your internet connection, then "
            f"try again",
            retryable=retryable,
        )

    def _unconfirmed(self, cause: str, status: int | None = None) -> HttpError:
        """A create whose fate is unknown: say so, and never send it again on our own."""
        what = f"HTTP {status}" if status else f"it {cause}"
        return HttpError(
            f"{self.label} did not confirm the new job ({what}); it may still have been "
            f"created — check your {self.label} account before retrying",
            status=status, retryable=False,
        )

    # ---- downloads -----------------------------------------------------------------------------

    def download(
        self,
        url: str,
        dest_path: str,
        max_bytes: int,
        cancel: CancelToken | None = None,
        expect: str | None = "image",
        *,
        what: str = "result",
        attempts: int = 3,
        fix_extension: bool = True,
        with_key: bool = False,
    ) -> Downloaded:
        """Stream `url` to `dest_path` (named by the caller; nothing is taken from the server).

        `expect`: "image" (PNG/JPEG/WEBP by content, not Content-Type; its size checked
        against the job's limits before anything decodes it), "glb", or None. With
        `fix_extension`, the suffix of `dest_path` is replaced by the one of the sniffed format
        (a JPEG is never saved as .png). Truncated or dropped transfers are retried `attempts`
        times. A 403/404/410 raises `LinkExpired`: signed URLs expire, and only the provider
        knows how to get fresh ones (by asking for the task again), so it is not retried here.
        No API key is sent (result files live on storage hosts that must not see it), unless
        `with_key` (an API route that streams a file: the key still goes to the API's origin
        only). `url` may be a path of the API. Every attempt has a total deadline, and
        `cancel` (or the job's token) cuts it within a fraction of a second.
        """
        url = self.url(url)
        problem = self.address_problem(url, what)
        if problem:
            raise ProviderError(problem)
        folder = os.path.dirname(os.path.abspath(dest_path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ProviderError(f"Could not create the folder {folder}: "
                                f"{exc.strerror or exc}") from None
        token = cancel if cancel is not None else inflight.job_token()
        last: HttpError | None = None
        for attempt in range(max(1, attempts)):
            if token is not None:
                token.check()
            if attempt:
                self.sleep(self.retry.backoff(attempt - 1), token)
            try:
                return self._download_once(url, dest_path, max_bytes, token, expect, what,
                                           fix_extension, with_key)
            except HttpError as exc:
                if not exc.retryable:
                    raise
                last = exc
                log.info("%s download of %s failed (%s); attempt %d/%d", self.label,
                         _loggable(url), exc.message, attempt + 1, attempts)
        assert last is not None
        reason = last.message.split(" — ")[0].rstrip(".")
        raise HttpError(
            f"The {what} download from {self.label} kept failing ({reason}) — try again later",
            status=last.status, retryable=True,
        )

    def _download_once(
        self,
        url: str,
        dest_path: str,
        max_bytes: int,
        token: CancelToken | None,
        expect: str | None,
        what: str,
        fix_extension: bool,
        with_key: bool,
    ) -> Downloaded:
        public_only = not (self.loopback_base or self.is_api(url))
        with inflight.exchange(token, DOWNLOAD_DEADLINE, public_only=public_only) as ex:
            try:
                return self._fetch_to_file(ex, url, dest_path, max_bytes, expect, what,
                                           fix_extension, with_key)
            except inflight.LinkRefused as exc:
                raise ProviderError(f"The {what} link from {self.label} was not fetched: "
                                    f"{exc}") from None
            except (ProviderError, requests.RequestException) as exc:
                if ex.reason == inflight.DEADLINE:
                    raise HttpError(
                        f"The {what} download from {self.label} was too slow (not done within "
                        f"{_duration(ex.deadline - ex.started)}) — try again later") from None
                _raise_cut(ex)
                if isinstance(exc, ProviderError):
                    raise
                if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
                    raise self._connection_error(exc, True) from None
                raise HttpError(f"The {what} link from {self.label} cannot be fetched "
                                f"({type(exc).__name__})") from None

    def _fetch_to_file(
        self,
        ex: inflight.Exchange,
        url: str,
        dest_path: str,
        max_bytes: int,
        expect: str | None,
        what: str,
        fix_extension: bool,
        with_key: bool,
    ) -> Downloaded:
        resp = self._open_download(ex, url, what, with_key)
        with resp:
            declared = _content_length(resp)
            encoded = resp.headers.get("Content-Encoding", "identity").lower() != "identity"
            if declared is not None and declared > max_bytes and not encoded:
                raise HttpError(_too_big(what, self.label, declared, max_bytes))
            ex.extend(DOWNLOAD_DEADLINE + min(declared or max_bytes, max_bytes) / MIN_RATE)
            folder = os.path.dirname(os.path.abspath(dest_path))
            try:
                fd, tmp = tempfile.mkstemp(prefix=".t2t-", suffix=".part", dir=folder)
            except OSError as exc:
                raise ProviderError(f"Could not write into {folder}: "
                                    f"{exc.strerror or exc}") from None
            try:
                size = self._stream(resp, fd, max_bytes, what, folder)
                _raise_cut(ex)  # a cut may look like the end of a body without a length
                if declared is not None and size < declared and not encoded:
                    raise HttpError(f"the {what} arrived incomplete ({size} of {declared} bytes)",
                                    retryable=True)
                kind, width, height = self._verify(tmp, expect, what)
                final = dest_path
                if fix_extension and kind in _EXT:
                    final = os.path.splitext(dest_path)[0] + _EXT[kind]
                os.chmod(tmp, 0o644)
                try:
                    os.replace(tmp, final)
                except OSError as exc:  # e.g. Windows, with the old map open in Blender
                    raise ProviderError(f"Could not save {os.path.basename(final)} in "
                                        f"{folder}: {exc.strerror or exc}") from None
            except BaseException:
                _unlink(tmp)
                raise
        return Downloaded(final, kind, width, height, size)

    def _open_download(self, ex: inflight.Exchange, url: str, what: str,
                       with_key: bool) -> requests.Response:
        """GET with redirects followed by hand, so each hop is checked against the policy."""
        session = self.session if with_key else self.download_session
        for _ in range(_MAX_REDIRECTS + 1):
            resp = session.get(url, stream=True, timeout=self.timeout, allow_redirects=False,
                               headers={"Accept-Encoding": "identity"})
            if resp.status_code in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])
                resp.close()
                problem = self.address_problem(url, what)
                if problem:
                    raise ProviderError(problem)
                ex.public_only = not (self.loopback_base or self.is_api(url))
                continue
            if resp.status_code in (403, 404, 410):
                raise LinkExpired(
                    f"The {what} link from {self.label} has expired (HTTP {resp.status_code})",
                    status=resp.status_code, retryable=False, body=_error_body(resp),
                )
            if resp.status_code >= 300:
                status = resp.status_code
                raise HttpError(
                    f"{self.label} storage answered HTTP {status} for the {what}",
                    status=status, retryable=status in _TRANSIENT, body=_error_body(resp),
                )
            return resp
        raise HttpError(f"The {what} link from {self.label} redirects too often")

    def _stream(self, resp: requests.Response, fd: int, max_bytes: int, what: str,
                folder: str) -> int:
        """Copy the body to `fd`; the cap counts decoded bytes, so a compressed bomb is stopped."""
        written = [0]

        def sink(piece: bytes) -> None:
            try:
                fh.write(piece)
            except OSError as exc:
                raise ProviderError(f"Could not save the {what} in {folder}: "
                                    f"{exc.strerror or exc}") from None
            written[0] += len(piece)

        with os.fdopen(fd, "wb") as fh:
            try:
                inflight.read_capped(resp, max_bytes, sink)
            except inflight.TooLarge as exc:
                raise HttpError(_too_big(what, self.label, exc.size, max_bytes)) from None
            except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError):
                raise HttpError(f"the {what} transfer was cut off after {written[0]} bytes",
                                retryable=True) from None
        return written[0]

    def _verify(self, path: str, expect: str | None, what: str) -> tuple[str, int, int]:
        if expect is None:
            return ("", 0, 0)
        if expect == "glb":
            with open(path, "rb") as fh:
                head = fh.read(12)
            if head[:4] != b"glTF":
                raise HttpError(f"{self.label} sent a {what} that is not a GLB model",
                                body=_small_json(path))
            return ("GLB", 0, 0)
        info = imagefile.image_info(path)
        if info is None:
            raise HttpError(f"{self.label} sent a {what} that is not an image (PNG, JPEG, WEBP)")
        problem = limits.current().map_problem(info[1], info[2])
        if problem:
            raise HttpError(f"The {what} from {self.label} {problem}")
        return info


class _NoAuth(requests.auth.AuthBase):
    """Explicitly no credentials (also keeps ~/.netrc out of downloads)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


# --------------------------------------------------------------------------- helpers


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


def _never_sent(exc: BaseException) -> bool:
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


def _connection_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.ProxyError):
        return "could not be reached through the configured proxy (HTTPS_PROXY)"
    if isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectTimeout):
        return "did not answer in time"
    if _never_sent(exc):
        return "could not be reached"
    return "dropped the connection"


def _body_of(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text[:2000] if resp.content else None


def _content_length(resp: requests.Response) -> int | None:
    try:
        value = int(resp.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _raise_cut(ex: inflight.Exchange) -> None:
    """Turn a request the watchdog cut into its ending: the job's cancel or deadline, or (its own
    total deadline) a read timeout the retry logic knows."""
    if ex.reason == inflight.CANCELED:
        raise Canceled()
    if ex.reason == inflight.EXPIRED:
        raise TimedOut()
    if ex.reason == inflight.DEADLINE:
        raise requests.ReadTimeout("the request's total deadline passed")


def _as_requests_error(exc: BaseException) -> requests.RequestException:
    """A failure while reading an answer, as the requests exception the retry logic knows."""
    if isinstance(exc, requests.RequestException):
        return exc
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return requests.ReadTimeout(str(exc))
    return requests.ConnectionError(exc)


def _upload_size(*bodies: Any) -> int:
    """Roughly how many bytes a request sends (JSON, form data, files), for its deadline."""
    size = 0
    for body in bodies:
        if isinstance(body, (bytes, bytearray, str)):
            size += len(body)
        elif isinstance(body, Mapping):
            size += _upload_size(*body.values())
        elif isinstance(body, (list, tuple)):
            size += _upload_size(*body)
    return size


def _error_body(resp: requests.Response) -> Any:
    """A download's error answer (at most 64 kB of it), as JSON if it is JSON; then closed."""
    with resp:
        try:
            raw = inflight.read_capped(resp, 64 * 1024)
        except (inflight.TooLarge, urllib3.exceptions.HTTPError, OSError):
            return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _small_json(path: str) -> Any:
    """The JSON in a small file (an error envelope where a file was expected), else None."""
    try:
        if os.path.getsize(path) > 64 * 1024:
            return None
        with open(path, "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _too_big(what: str, label: str, size: int, limit: int) -> str:
    return (f"The {what} from {label} is larger than the {limit // (1 << 20)} MB this add-on "
            f"accepts ({size // (1 << 20)} MB or more)")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _header_ok(value: str) -> bool:
    return bool(value) and all(33 <= ord(c) < 127 or c == " " for c in value) and (
        value == value.strip()
    )


def bearer(key: str) -> dict[str, str]:
    """The usual `Authorization: Bearer` header for a key (whitespace around it dropped)."""
    return {"Authorization": f"Bearer {key.strip()}"}
