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
* Every failure becomes a `ProviderError` whose message is one line an artist can act on
  (`http_errors.py`).
* Downloads (`download.py`) stream to a temporary file beside the destination and appear
  atomically, are capped in size, must really be the expected kind of file, and are named by the
  caller only.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from . import inflight
from .download import Downloaded, Downloads, NoAuth
from .errors import CancelToken, ProviderError, QueueFull
from .exchanges import ExchangeLog
from .http_errors import (
    connection_error,
    connection_reason,
    never_sent,
    parse_retry_after,
    status_error,
    unconfirmed,
)
from .http_parts import (
    CONNECT_TIMEOUT,
    MIN_RATE,
    NO_RETRY,
    PREFS_HINT,
    READ_TIMEOUT,
    HttpError,
    LinkExpired,
    RetryPolicy,
    ServiceHooks,
    Sleeper,
    as_requests_error,
    default_sleep,
    loggable,
    origin,
    raise_cut,
    url_problem,
)
from .links import is_loopback_host, link_problem
from .redact import redact, secret_forms

__all__ = ["NO_RETRY", "PREFS_HINT", "Downloaded", "HttpClient", "HttpError", "LinkExpired",
           "RetryPolicy", "ServiceHooks", "Sleeper", "bearer", "default_sleep",
           "is_loopback_host", "parse_retry_after", "url_problem"]

log = logging.getLogger(__name__)

# A JSON answer (a task, a status, an error) is kilobytes; a few MB is far beyond any of them.
MAX_ANSWER_BYTES = 4 << 20
# An API call's total deadline, per attempt, plus the time its upload needs at `MIN_RATE`.
API_DEADLINE = 60.0
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})


# --------------------------------------------------------------------------- the client


class _HeaderAuth(requests.auth.AuthBase):
    """Adds the provider's auth headers, but only to the API's own origin.

    Being a session `auth` also stops requests from applying ~/.netrc credentials over ours.
    """

    def __init__(self, headers: Mapping[str, str], origin: tuple[str, str, int | None]) -> None:
        self._headers = dict(headers)
        self._origin = origin

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin(r.url or "") == self._origin:
            r.headers.update(self._headers)
        return r

    def __repr__(self) -> str:
        return "_HeaderAuth(***)"


class HttpClient(Downloads):
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
        exchanges: ExchangeLog | None = None,
    ) -> None:
        self.label = provider_label
        # (issue 12) Every exchange is noted here, redacted, for the job's report (None: not).
        self.exchanges = exchanges
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
        self._origin = origin(self.base_url + "/")
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
        self.download_session.auth = NoAuth()

    def __repr__(self) -> str:
        return f"HttpClient({self.label}, {loggable(self.base_url)})"

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
            return origin(url) == self._origin
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
                unsent = never_sent(exc)
                failure = connection_error(self.label, exc, unsent or safe)
                if not (safe or unsent):
                    raise unconfirmed(self.label, connection_reason(exc)) from None
                wait = policy.backoff(attempt)
            except requests.RequestException as exc:  # a request we could not even build
                raise HttpError(
                    f"{self.label}: the request could not be sent ({type(exc).__name__})"
                ) from None
            else:
                if resp.status_code < 300:
                    return resp
                failure = status_error(resp, context, self.label, self.hooks, self.redact)
                if method == "POST" and self.hooks.queue_full(resp.status_code, failure.body,
                                                              method, path):  # (issue 12)
                    hint = self.hooks.retry_hint(resp.status_code, failure.body, resp.headers)
                    raise QueueFull(failure.message, status=resp.status_code, retry_after=(
                        hint if hint is not None
                        else parse_retry_after(resp.headers.get("Retry-After"))))
                transient = failure.retryable and resp.status_code != 401
                if not transient or not (safe or resp.status_code == 429):
                    if transient and not safe:  # a 5xx to a create: it may have been accepted
                        raise unconfirmed(self.label, failure.message, resp.status_code) from None
                    raise failure
                wait = self._server_wait(resp, failure.body, policy, attempt)
            spent = max(waited, time.monotonic() - started)
            if attempt >= policy.retries or spent + wait > policy.max_total:
                raise failure
            attempt += 1
            log.info(
                "%s %s %s: %s; retry %d/%d in %.1f s", self.label, method, loggable(url),
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
        started = time.monotonic()
        with inflight.exchange(token, seconds, interruptible=safe,
                               public_only=not (self.loopback_base or self.is_api(url))) as ex:
            try:
                resp = self.session.request(method, url, stream=True, timeout=self.timeout,
                                            allow_redirects=False, **kw)
                with resp:
                    content = inflight.read_capped(resp, max_bytes)
            except inflight.TooLarge:
                self._note(method, url, None, started, note="answer too large")
                raise HttpError(
                    f"{self.label} sent an answer larger than {max_bytes >> 20} MB; it was not "
                    f"read — check the base URL in {PREFS_HINT}") from None
            except inflight.LinkRefused as exc:
                raise ProviderError(f"{self.label}: {exc}; it was not contacted") from None
            except (urllib3.exceptions.HTTPError, OSError, requests.RequestException) as exc:
                self._note(method, url, None, started, note=type(exc).__name__)
                raise_cut(ex)
                raise as_requests_error(exc) from None
            raise_cut(ex)
        resp._content = content
        resp._content_consumed = True
        self._note(method, url, resp, started)
        return resp

    def _note(self, method: str, url: str, resp: requests.Response | None, started: float,
              note: str = "", body: bool = True) -> None:
        """Add one exchange to the job's redacted log (the artist's "Copy report")."""
        if self.exchanges is None:
            return
        try:
            self.exchanges.exchange(
                method, url, resp.status_code if resp is not None else None,
                time.monotonic() - started,
                resp.content if resp is not None and body else b"",
                resp.headers.get("Content-Type", "") if resp is not None else "", note)
        except Exception:  # the log is a courtesy: it must never break a request
            log.debug("exchange not noted", exc_info=True)

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

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)


# --------------------------------------------------------------------------- helpers


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


def _header_ok(value: str) -> bool:
    return bool(value) and all(33 <= ord(c) < 127 or c == " " for c in value) and (
        value == value.strip()
    )


def bearer(key: str) -> dict[str, str]:
    """The usual `Authorization: Bearer` header for a key (whitespace around it dropped)."""
    return {"Authorization": f"Bearer {key.strip()}"}
