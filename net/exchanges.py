"""A job's conversation with its service, short and redacted, for the report an artist can send.

When a live job fails in a way nobody foresaw, what the service actually answered is what support
needs. Each cloud job keeps one line per HTTP exchange (method, path, status, time, and the first
2 kB of each JSON answer) plus the notes the code adds ("Meshy refused `uv_mode`; sent without
it"), appended as JSON lines to a file of the job's own under the extension's user folder (never
in the .blend) as they happen, so a job resumed after a restart keeps its history.

Nothing secret is written: the account's keys and secrets in every form, inline data (`data:`
URIs, which also carry the artist's mesh), the query strings of links (signed URLs carry their
signature there), values of fields named like tokens or secrets, the local server's path tokens,
and long opaque strings are all masked before a line is kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .redact import MASK, redact, secret_forms

log = logging.getLogger(__name__)

BODY_CHARS = 2048  # of each JSON answer, after masking
MAX_PARSE = 256 * 1024  # a JSON answer bigger than this is masked as text, not walked
MAX_LINES = 400  # lines written per job; later ones only when they are errors or notes
HEAD, TAIL = 20, 40  # lines a report shows from the start and the end of a long log

_DATA_URI = re.compile(
    r"data:(?:[\w.+-]+/[\w.+-]+)?(?:;[\w.+=-]+)*(?:,[A-Za-z0-9+/=%._~\\-]*|(?=…))", re.I)
_URL_QUERY = re.compile(r"(https?://[^\s\"'<>?#]+)[?#][^\s\"'<>]*", re.I)
_PATH_TOKEN = re.compile(r"/(w|m)/[A-Za-z0-9_-]{16,128}")  # the local server's per-job paths
_JWT = re.compile(r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*")
_OPAQUE = re.compile(r"[A-Za-z0-9_+=-]{48,}")  # not "/": paths stay readable
_SECRET_NAME = re.compile(
    r"(token|secret|passw|signature|authori[sz]ation|api_?key|access_?key|credential|cookie)",
    re.I)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret, inline datum, link query and opaque token masked."""
    text = redact(text, secrets)
    text = _DATA_URI.sub(lambda m: f"<inline data, {len(m.group(0))} chars>", text)
    text = _URL_QUERY.sub(lambda m: f"{m.group(1)}?{MASK}", text)
    text = _PATH_TOKEN.sub(lambda m: f"/{m.group(1)}/{MASK}", text)
    text = _JWT.sub(MASK, text)
    return _OPAQUE.sub(MASK, text)


def _masked(value: Any) -> Any:
    """A parsed JSON answer with the values of secret-looking fields masked (before `scrub`)."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_NAME.search(k) and v not in (None, "")
                    and not isinstance(v, (dict, list)) else _masked(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def excerpt(body: bytes, content_type: str, secrets: Iterable[str] = ()) -> str:
    """The first `BODY_CHARS` of a JSON answer, masked; "" when the answer is not JSON."""
    if not body:
        return ""
    if "json" not in content_type.lower() and body[:1] not in (b"{", b"["):
        return ""
    text = body[:MAX_PARSE].decode("utf-8", "replace")
    if len(body) <= MAX_PARSE:
        try:
            text = json.dumps(_masked(json.loads(text)), ensure_ascii=False,
                              separators=(",", ":"))
        except ValueError:
            pass
    text = scrub(text, secrets)
    return text if len(text) <= BODY_CHARS else text[:BODY_CHARS] + "…"


def where(url: str) -> str:
    """What a line shows of a URL: the path for the API, host and path for anything else; never
    the query or userinfo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unreadable URL)"
    if not parts.hostname:
        return parts.path or "/"
    return f"{parts.hostname}{parts.path}"


class ExchangeLog:
    """The exchange lines of one job (one provider instance serves one job). Thread-safe."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = secret_forms(secrets)
        self._lock = threading.Lock()
        self._lines: list[dict[str, Any]] = []
        self._path = ""
        self._written = 0
        self._api_origin = ""

    def add_secrets(self, values: Iterable[str]) -> None:
        with self._lock:
            self._secrets = secret_forms([*self._secrets, *values])

    def set_api(self, base_url: str) -> None:
        """Requests to this origin are shown by path alone; other hosts (storage) with host."""
        parts = urlsplit(base_url)
        self._api_origin = f"{parts.scheme}://{parts.netloc}".lower()

    def attach(self, path: str) -> None:
        """Append to `path` from now on (lines kept so far are written first)."""
        with self._lock:
            self._path = path
            pending, self._written = list(self._lines), 0
        for line in pending:
            self._write(line)

    # ---- adding lines --------------------------------------------------------------------------

    def exchange(self, method: str, url: str, status: int | None, seconds: float,
                 body: bytes = b"", content_type: str = "", note: str = "") -> None:
        """One request and its answer (`status` None: no answer, `note` says why)."""
        shown = url
        if self._api_origin and url.lower().startswith(self._api_origin):
            shown = url[len(self._api_origin):]
        line: dict[str, Any] = {
            "t": round(time.time(), 3), "method": method.upper(),
            "path": scrub(where(shown) if "://" in shown else urlsplit(shown).path,
                          self._secrets),
            "status": status, "ms": int(max(0.0, seconds) * 1000),
        }
        text = excerpt(body, content_type, self._secrets) if body else ""
        if text:
            line["body"] = text
        if note:
            line["note"] = scrub(note, self._secrets)[:300]
        self._add(line)

    def note(self, text: str) -> None:
        """Something the code decided that the exchanges alone do not show."""
        self._add({"t": round(time.time(), 3), "note": scrub(text, self._secrets)[:500]})

    def _add(self, line: dict[str, Any]) -> None:
        with self._lock:
            self._lines.append(line)
            if len(self._lines) > HEAD + TAIL + 200:  # memory stays small on a long job
                del self._lines[HEAD:HEAD + 100]
        self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        with self._lock:
            path = self._path
            if not path:
                return
            important = "note" in line or not (isinstance(line.get("status"), int)
                                               and line["status"] < 400)
            if self._written >= MAX_LINES and not important:
                return
            self._written += 1
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        except OSError as exc:  # the log is a courtesy: never a reason to fail a job
            log.debug("exchange log %s not written: %s", path, exc)

    def lines(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._lines)


def read_lines(path: str) -> list[dict[str, Any]]:
    """The lines of a job's log file ([] when there is none or it is unreadable)."""
    out: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict):
                    out.append(line)
    except OSError:
        return []
    return out


def format_lines(lines: list[dict[str, Any]], since: float | None = None) -> list[str]:
    """Report text for log lines: time since the first line, what was asked, what came back.
    A long log keeps its first `HEAD` and last `TAIL` lines and says how many were left out."""
    if not lines:
        return ["(no exchanges recorded)"]
    start = since if since is not None else float(lines[0].get("t") or 0.0)
    shown: list[dict[str, Any] | None] = list(lines)
    if len(lines) > HEAD + TAIL:
        shown = [*lines[:HEAD], None, *lines[-TAIL:]]
    out: list[str] = []
    for line in shown:
        if line is None:
            out.append(f"  … {len(lines) - HEAD - TAIL} more exchanges left out …")
            continue
        at = f"+{max(0.0, float(line.get('t') or start) - start):7.2f} s"
        if "method" in line:
            status = line.get("status")
            answer = f"HTTP {status}" if status is not None else "no answer"
            text = (f"{at}  {line['method']} {line.get('path', '')} → {answer} "
                    f"({line.get('ms', 0)} ms)")
            if line.get("note"):
                text += f" — {line['note']}"
            out.append(text)
            if line.get("body"):
                out.append(f"             {line['body']}")
        else:
            out.append(f"{at}  note: {line.get('note', '')}")
    return out
