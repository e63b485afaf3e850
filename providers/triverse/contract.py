"""Triverse's API as the code speaks it: the `{code, message, data}` envelope, documented error
codes, the error hooks, and reading tasks and answers.

Contract: docs/providers.md §3. No network here: `provider.py` sends.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from ...net.http import PREFS_HINT, ServiceHooks
from .. import cloud
from ..base import ProviderError, RemoteState, RemoteStatus, fraction

log = logging.getLogger(__name__)

DEFAULT_BASE = "https://api.triverse.ai/api/v1"
MB = 1 << 20
FLOW_TEXT = "text-to-texture"  # flow names for the pricing quote: not documented, assumed [?]
FLOW_IMAGE = "texture-model"
CREATE_PATHS = frozenset({"/tasks/text-to-texture", "/tasks/texture-model"})
# A task just created may not be readable yet [C T1]. Inside the create answer's
# read-after-write deadline a 404/1006 means "not visible yet"; without hints we allow this
# long after the create before a 404 means "gone" [I: our choice].
READ_AFTER_WRITE_GRACE_S = 10.0
TEXTURE_SIZES = (1024, 4096)
POLYGON_LIMITS = (1_000, 1_500_000)
_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_STATES = {
    "PENDING": RemoteState.QUEUED,
    "QUEUED": RemoteState.QUEUED,
    "RUNNING": RemoteState.RUNNING,
    "SUCCESS": RemoteState.SUCCEEDED,
    "SUCCEEDED": RemoteState.SUCCEEDED,  # tolerated: not documented, but a common spelling
    "FAILED": RemoteState.FAILED,
    "CANCELLED": RemoteState.CANCELED,
    "CANCELED": RemoteState.CANCELED,
}

# Documented error codes [docs/providers.md §3.4] -> one line each. "{m}" is the service's message.
_CODE_LINES: dict[int, str] = {
    1004: "Triverse refused the request as invalid: {m}",
    1005: "Triverse cannot find that file, or this key may not use it: {m}",
    1006: "Triverse no longer knows this job (expired, deleted, or another account's)",
    2000: ("Triverse is too busy: its limit of 10 uploads a minute or its task queue is full "
           "({m}) — wait a minute, then retry"),
    2002: "Triverse does not offer this kind of task: {m}",
    2004: "Triverse does not accept this file type: {m}",
    2005: "Triverse says the job is not in a state for that yet: {m}",
    2008: ("Triverse refused the content (content safety): {m} — change the prompt or the "
           "reference image"),
    2010: ("Your Triverse account does not have enough credits for this job — top it up at "
           "triverse.ai, then retry"),
    4042: "Triverse finished the job but has nothing to download for it — run the job again",
    5003: "Triverse's storage or processing backend is down (code 5003) — try again later",
    5004: "Triverse cannot run this kind of job (invalid flow, code 5004) — update the add-on",
    5005: "Triverse could not save the job (code 5005) — try again later",
}
_TRANSIENT_CODES = frozenset({2000, 5003, 5005})  # busy, backend down, persistence hiccup
_CODE_TAG = re.compile(r"^(?P<text>.*?)\s*\(code (?P<code>-?\d+)\)$")


def envelope_code(body: Any) -> int | None:
    """The `code` of a `{code, message, data}` envelope (None: not an envelope, or success)."""
    if not isinstance(body, Mapping):
        return None
    code = body.get("code")
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        code = int(code)
    if isinstance(code, bool) or not isinstance(code, int) or code == 0:
        return None
    return code


def code_line(code: int | None, text: str) -> str | None:
    """The one line for a documented code (None if the code is not one we know)."""
    if code is None or code not in _CODE_LINES:
        return None
    text = text.strip().rstrip(".") or f"code {code}"
    return _CODE_LINES[code].format(m=text)


class TriverseHooks(ServiceHooks):
    """Teaches the shared client the `{code, message, suggestion}` envelope.

    The code rides along in the message as a trailing "(code N)" so that `describe`, which only
    sees the message, can pick the documented line; nothing of it reaches the artist otherwise.
    """

    def __init__(self, rate_limit_wait: float = 10.0) -> None:
        self.rate_limit_wait = rate_limit_wait

    def error_message(self, status: int, body: Any) -> str:
        code = envelope_code(body)
        if code is None:
            return super().error_message(status, body)
        assert isinstance(body, Mapping)
        text = body.get("message") if isinstance(body.get("message"), str) else ""
        return f"{text} (code {code})"

    def is_transient(self, status: int, body: Any) -> bool | None:
        code = envelope_code(body)
        if code is None or code not in _CODE_LINES:
            return None  # not a documented code: the HTTP status decides
        return code in _TRANSIENT_CODES

    def retry_hint(self, status: int, body: Any, headers: Mapping[str, str]) -> float | None:
        # Code 2000 comes without a documented Retry-After; the upload window is a minute.
        if envelope_code(body) == 2000 and not headers.get("Retry-After"):
            return self.rate_limit_wait
        return None

    def queue_full(self, status: int, body: Any, method: str, path: str) -> bool:
        # 2000 means both "upload limit" and "queue full"; on a task create it is the queue
        # [I: the endpoint tells them apart]. The runner then waits for a slot.
        return envelope_code(body) == 2000 and path in CREATE_PATHS

    def describe(self, status: int, message: str, context: str, label: str) -> str | None:
        tagged = _CODE_TAG.match(message)
        if context == "create" and tagged is not None and tagged["code"] == "2000":
            return ("Triverse's task queue for your account is full — this job waits and is "
                    "sent when a place frees")
        if status == 401:
            return (f"Triverse rejected the API key — check {PREFS_HINT} > Triverse (or "
                    "TRIVERSE_API_KEY)")
        m = _CODE_TAG.match(message)
        if m is None:
            return None
        code, text = int(m.group("code")), m.group("text")
        line = code_line(code, text)
        if line is not None:
            return line
        if status == 403:
            return (f"Triverse refused access with this API key ({text or 'HTTP 403'}) — check "
                    f"the key and your Triverse plan in {PREFS_HINT} > Triverse")
        said = f": {text}" if text else ""
        if status >= 500:
            return f"Triverse is not responding (HTTP {status}{said}) — try again later"
        return f"Triverse refused the request (code {code}){said}"



# --------------------------------------------------------------------------- helpers


def read_after_write(data: dict[str, Any], received: float) -> tuple[float, str]:
    """(epoch until which a 404 on the new task means "not visible yet", header to send then)
    from a create answer's optional hints [C T1 names; I use]; the header's value is the task
    id until documented. Counted from when the answer arrived (not `created_at`: clocks
    differ)."""
    deadline = first_number(data, "read_after_write_deadline_seconds")
    header = first_str(data, "read_after_write_header")
    if header and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
        header = ""  # not a header name we can send
    seconds = max(0.0, min(float(deadline), 300.0)) if deadline is not None else (
        READ_AFTER_WRITE_GRACE_S)
    return received + seconds, header


def client_order_id(job_id: str) -> str:
    """A stable idempotency key for a job: 1–64 of [A-Za-z0-9_-] [docs/providers.md §3.2]."""
    candidate = f"t2t-{job_id}"
    if _ORDER_ID.match(candidate):
        return candidate
    return "t2t-" + hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:40]


def texture_size(resolution: int) -> int:
    """1024–4096 [C]; the panel's choice, kept inside the documented range."""
    lo, hi = TEXTURE_SIZES
    try:
        value = int(resolution)
    except (TypeError, ValueError):
        return lo
    return max(lo, min(hi, value))


def polygon_limit(value: Any) -> int | None:
    """None (not sent) unless given; refused outside 1,000–1,500,000 rather than changed."""
    if value in (None, "", 0, False):
        return None
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ProviderError(f"Triverse's polygon limit must be a whole number, not {value!r}")\
            from None
    lo, hi = POLYGON_LIMITS
    if not lo <= limit <= hi:
        raise ProviderError(f"Triverse's polygon limit must be between {lo:,} and {hi:,} "
                            f"(this one is {limit:,})")
    return limit


def unwrap(answer: Any) -> dict[str, Any]:
    """The `data` of a success envelope (or the answer itself, for older/flat shapes).

    An envelope with a non-zero `code` on an HTTP 2xx is an error all the same.
    """
    if not isinstance(answer, dict):
        raise ProviderError("Triverse sent an answer in an unexpected shape", retryable=True)
    code = envelope_code(answer)
    if code is not None:
        text = answer.get("message") if isinstance(answer.get("message"), str) else ""
        line = code_line(code, str(text or ""))
        raise ProviderError(line or f"Triverse refused the request (code {code}): {text}",
                            retryable=code in _TRANSIENT_CODES)
    data = answer.get("data")
    return data if isinstance(data, dict) else answer


def status_of(task: dict[str, Any]) -> RemoteStatus:
    """A task object of `GET /tasks/{uuid}` (newer or older shape) as a uniform status."""
    raw = str(task.get("status") or task.get("state") or "").upper()
    state = _STATES.get(raw)
    extra: dict[str, Any] = {}
    cost = first_number(task, "cost_credits", "costCredits")
    if cost is not None:
        extra["cost_credits"] = cost
    if state is None:  # a status this version does not know: keep watching
        # A status this version cannot read: watched, and counted by the runner.
        log.warning("Triverse reported an unknown task status %r", raw[:40])
        state = RemoteState.UNKNOWN
    if state is RemoteState.SUCCEEDED:
        return RemoteStatus(state, 1.0, extra=extra)
    if state is RemoteState.FAILED:
        return RemoteStatus(state, message=failure_message(task), extra=extra)
    if state is RemoteState.CANCELED:
        return RemoteStatus(state, message="The job was canceled at Triverse", extra=extra)
    progress = _progress(task.get("progress"))
    if state is RemoteState.QUEUED:
        return RemoteStatus(state, progress, _queue_message(task.get("queue")), extra=extra)
    return RemoteStatus(state, progress, "Triverse is texturing", extra=extra)


def failure_message(task: dict[str, Any]) -> str:
    """The `error` shape is not documented: a string, or an object with message (and code)."""
    error = task.get("error")
    code = None
    if isinstance(error, dict):
        code = envelope_code(error)
        text = first_str(error, "message", "msg", "detail", "reason")
    elif isinstance(error, str):
        text = error
    else:
        text = first_str(task, "error_message", "errorMessage", "message")
        if text.lower() == "success":
            text = ""
    text = " ".join(text.split())[:300]
    if code is None and re.search(r"content.?safety|moderation|sensitive", text, re.I):
        code = 2008
    line = code_line(code, text)
    if line is not None:
        return line
    return f"Triverse: {text}" if text else "Triverse reported the job failed (no reason given)"


def _queue_message(queue: Any) -> str:
    if isinstance(queue, dict):
        position = queue.get("position")
        wait = queue.get("estimated_wait_seconds")
        parts = []
        if isinstance(position, int) and position > 0:
            parts.append(f"position {position}")
        if isinstance(wait, (int, float)) and not isinstance(wait, bool) and wait > 0:
            parts.append(f"about {wait:.0f} s")
        if parts:
            return f"Waiting in Triverse's queue ({', '.join(parts)})"
    return "Waiting in Triverse's queue"


def _progress(value: Any) -> float:
    return fraction(value, 100.0)  # NaN or a non-number is no progress, never 100 %


def first_str(data: Any, *names: str) -> str:
    if not isinstance(data, dict):
        return ""
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def first_number(data: Any, *names: str) -> float | None:
    if not isinstance(data, dict):
        return None
    for name in names:
        value = data.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def public_https(url: str, what: str) -> str:
    """Triverse's servers fetch these links themselves: only a public https URL can work."""
    return cloud.public_https(url, what, "Triverse")


