"""Downloads: a map or a model streamed to a temporary file beside its destination and moved
into place at once, capped in size while it arrives (decoded bytes counted), checked to really be
the kind of file expected (an image's size against the job's limits, from its header, before
anything decodes it), named by the caller only, every attempt under a total deadline that a
cancel cuts within a fraction of a second.

A mixin of `HttpClient`, which provides the sessions, the label, the retry policy and the address
rules it uses.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3.exceptions

from ..formats import imagefile, limits
from . import inflight
from .errors import CancelToken, ProviderError
from .http_errors import connection_error
from .http_parts import (
    MAX_REDIRECTS,
    MIN_RATE,
    TRANSIENT,
    HttpError,
    LinkExpired,
    RetryPolicy,
    Sleeper,
    loggable,
    raise_cut,
)

log = logging.getLogger(__name__)

DOWNLOAD_DEADLINE = 120.0  # per attempt, plus the time its size needs at `MIN_RATE`


@dataclass
class Downloaded:
    path: str
    kind: str  # "PNG" | "JPEG" | "WEBP" | "GLB" | "" (unchecked)
    width: int
    height: int
    size: int


_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GLB": ".glb"}


class Downloads:
    """The download half of `HttpClient`."""

    label: str
    timeout: tuple[float, float]
    retry: RetryPolicy
    sleep: Sleeper
    session: requests.Session
    download_session: requests.Session
    loopback_base: bool

    # Provided by `HttpClient`:
    def url(self, path: str) -> str:
        raise NotImplementedError

    def _note(self, method: str, url: str, resp: requests.Response | None, started: float,
              note: str = "", body: bool = True) -> None:
        raise NotImplementedError

    def is_api(self, url: str) -> bool:
        raise NotImplementedError

    def address_problem(self, url: str, what: str = "result") -> str:
        raise NotImplementedError

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
                         loggable(url), exc.message, attempt + 1, attempts)
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
                raise_cut(ex)
                if isinstance(exc, ProviderError):
                    raise
                if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
                    raise connection_error(self.label, exc, True) from None
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
                raise_cut(ex)  # a cut may look like the end of a body without a length
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
        for _ in range(MAX_REDIRECTS + 1):
            started = time.monotonic()
            try:
                resp = session.get(url, stream=True, timeout=self.timeout, allow_redirects=False,
                                   headers={"Accept-Encoding": "identity"})
            except requests.RequestException as exc:
                self._note("GET", url, None, started, note=type(exc).__name__)
                raise
            self._note("GET", url, resp, started, body=False)  # a file: no body in the log
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
                    status=status, retryable=status in TRANSIENT, body=_error_body(resp),
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


class NoAuth(requests.auth.AuthBase):
    """Explicitly no credentials (also keeps ~/.netrc out of downloads)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


# --------------------------------------------------------------------------- helpers


def _content_length(resp: requests.Response) -> int | None:
    try:
        value = int(resp.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


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
