"""Meshy's API as the code speaks it: routes, the request body, error shapes, and reading a task.

Contract: docs/providers.md §1 (API v2; v1 only as the fallback of §1.6). No network here:
`provider.py` sends; this module says what to send and what an answer means.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from ...formats import imagefile
from ...net.http import PREFS_HINT, HttpError, ServiceHooks
from ...net.redact import clean_text
from .. import cloud
from ..base import (
    BASE_COLOR,
    METALLIC,
    NORMAL,
    ROUGHNESS,
    UV_MESH,
    ProviderError,
    RemoteState,
    RemoteStatus,
    fraction,
)

log = logging.getLogger(__name__)

DEFAULT_BASE = "https://api.meshy.ai"
V2_CREATE = "/openapi/v2/retexture"
V2_TASKS = "/openapi/v2/tasks"  # read, stream and delete: /openapi/v2/tasks/{id}
V2_BALANCE = "/openapi/v2/balance"
V1_CREATE = "/openapi/v1/retexture"  # the fallback's create, reads and deletes (…/{id})
V1_BALANCE = "/openapi/v1/balance"
V1_PREFIX = "v1:"  # remote ids of tasks made through the v1 fallback; v2 ids stay bare
V1_SUNSET = "2027-03-15"
MAX_PROMPT = 600  # v1's documented limit, kept for v2 [?]
MB = 1 << 20

TEXTURE_MODELS = ("meshy-7", "meshy-n1", "meshy-6-lite")
DEFAULT_TEXTURE_MODEL = "meshy-7"
BASE_COLOR_ONLY_MODELS = frozenset({"meshy-n1"})  # 2K base colour, no PBR [C M9]
# The `uv_mode` value for "let Meshy make new UVs". Its enum is not published [?]; a refusal
# drops the field (then the object's own UVs are kept) and the job says so.
UV_MODE_MESHY = "generate"
# Fields a refusal may drop: never the required ones (model, texture model, prompt or image).
OPTIONAL_FIELDS = ("uv_mode", "texture_resolution", "target_formats", "enable_pbr")

# Meshy's 429 codes that mean "the account's unfinished tasks are at the plan's limit": wait for
# one to end (no Retry-After comes with them), never fail [C M5].
QUEUE_FULL_CODES = frozenset({"pending_task_limit_reached", "concurrent_task_limit_reached"})
_V1_QUEUE_FULL = ("NoMoreConcurrentTasks", "TooManyPendingTasks")

STATES = {
    "PENDING": RemoteState.QUEUED,
    "IN_PROGRESS": RemoteState.RUNNING,
    "SUCCEEDED": RemoteState.SUCCEEDED,
    "FAILED": RemoteState.FAILED,
    "CANCELED": RemoteState.CANCELED,
    "CANCELLED": RemoteState.CANCELED,
    "EXPIRED": RemoteState.FAILED,  # the runner has no "expired": the result is gone
}
PBR_ROLES = (METALLIC, ROUGHNESS, NORMAL)
_TAG = re.compile(r"^(?P<text>.*?)\s*\[(?P<type>[\w.-]*)/(?P<code>[\w.-]*)\]$", re.S)


# --------------------------------------------------------------------------- errors


def error_fields(body: Any) -> tuple[str, str, str]:
    """(type, code, message) of a v2 error body (or a task's `task_error`); "" where absent."""
    if not isinstance(body, Mapping):
        return "", "", ""
    values = [body.get(k) for k in ("type", "code", "message")]
    return tuple(" ".join(v.split()) if isinstance(v, str) else "" for v in values)  # type: ignore[return-value]


def is_no_route(exc: HttpError) -> bool:
    """This base has no such route: v2 says `route_not_found`; a v1-era server answers
    `{"message": "NoMatchingRoute: …"}` without a code [C M14]."""
    if exc.status != 404:
        return False
    _type, code, message = error_fields(exc.body)
    return code == "route_not_found" or (not code and "NoMatchingRoute" in message)


class MeshyHooks(ServiceHooks):
    """Meshy v2 errors are `{type, code, message, doc_url}`: lines are chosen by code, then by
    type, never by message [C M4]. The shared client only hands `describe` a message, so the
    type and code ride along at its end ("… [type/code]") and are taken off again there."""

    def error_message(self, status: int, body: Any) -> str:
        kind, code, message = error_fields(body)
        text = message or super().error_message(status, body)
        return f"{text} [{kind}/{code}]" if kind or code else text

    def is_transient(self, status: int, body: Any) -> bool | None:
        if status == 429 and error_fields(body)[1] in QUEUE_FULL_CODES:
            return False  # not a burst: waiting a second or two will not free a slot
        return None

    def queue_full(self, status: int, body: Any, method: str, path: str) -> bool:
        if status != 429:
            return False
        _kind, code, message = error_fields(body)
        return code in QUEUE_FULL_CODES or (not code and any(
            word in message for word in _V1_QUEUE_FULL))

    def describe(self, status: int, message: str, context: str, label: str) -> str | None:
        m = _TAG.match(message)
        kind, code, text = (m["type"], m["code"], m["text"]) if m else ("", "", message)
        said = f": {text}" if text else ""
        if status == 401:
            return f"Meshy rejected the API key — check {PREFS_HINT} > Meshy (or MESHY_API_KEY)"
        if status == 402:
            return ("Your Meshy account has no credits left (or this API key's credit limit is "
                    "reached) — top it up at meshy.ai, then retry")
        if code == "parameters_conflict":
            return ("Meshy refused the request: the prompt and the reference image were both "
                    "sent (a bug in the add-on — please send us the job's report)")
        if code.startswith("moderation") or (status == 403 and "moderation" in kind):
            return ("Meshy refused the content (moderation) — change the prompt or the "
                    "reference image")
        if status == 403:
            return (f"Meshy refused this API key (HTTP 403{said}) — check the key and your plan "
                    f"in {PREFS_HINT} > Meshy")
        if status in (404, 410) and context == "task" and code != "route_not_found":
            return "Meshy no longer knows this job (expired or deleted)"
        if code == "route_not_found" or (status == 404 and "NoMatchingRoute" in text):
            return (f"This Meshy address has no such endpoint (route not found) — check the "
                    f"Meshy base URL in {PREFS_HINT}")
        if status == 429 and (code in QUEUE_FULL_CODES or any(w in text for w in _V1_QUEUE_FULL)):
            return ("Your Meshy plan's limit of unfinished tasks is reached — this job waits "
                    "until one of them ends")
        if status == 429:
            return ("Meshy is getting too many requests from your account (HTTP 429) — try "
                    "again in a moment")
        if status >= 500:
            return f"Meshy is not responding (HTTP {status}) — try again later"
        if m is not None:
            return f"Meshy refused the request{said}" if text else (
                f"Meshy refused the request (HTTP {status}, {kind}/{code})")
        return None


def refused_field(exc: HttpError, body: Mapping[str, Any]) -> str:
    """The optional field of `body` that a 400 `invalid_input` names, else "" (v2 refuses any
    field it does not define [C M4]; which code that 400 carries is [?], so the field is found
    in the message; required fields are never dropped)."""
    kind, code, message = error_fields(exc.body)
    if exc.status != 400 or kind not in ("invalid_input", "") or code == "parameters_conflict":
        return ""
    for name in OPTIONAL_FIELDS:
        if name in body and re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message):
            return name
    return ""


# --------------------------------------------------------------------------- the request


def texture_model(opts: Mapping[str, Any]) -> str:
    chosen = str(opts.get("texture_model") or DEFAULT_TEXTURE_MODEL).strip()
    if chosen not in TEXTURE_MODELS:
        raise ProviderError(f"Meshy has no texture model '{chosen}' — choose "
                            f"{', '.join(TEXTURE_MODELS)}")
    return chosen


def wants_meshy_uvs(opts: Mapping[str, Any]) -> bool:
    """The artist turned "Keep original UVs" off: Meshy makes its own UVs."""
    return not bool(opts.get("enable_original_uv", True))


def v2_body(model_url: str, prompt: str, style_image: str, opts: Mapping[str, Any],
            enable_pbr: bool, resolution: int, dropped: set[str]) -> dict[str, Any]:
    """The v2 create body: required fields always, optional ones unless refused before."""
    model = texture_model(opts)
    body: dict[str, Any] = {"model_url": model_url, "texture_model": model}
    if style_image:  # prompt and image together are refused (parameters_conflict) [C M2]
        body["texture_image_url"] = style_image
    else:
        body["texture_prompt"] = prompt
    if wants_meshy_uvs(opts):
        body["uv_mode"] = UV_MODE_MESHY  # absent = keep usable UVs, the default [C M2]
    if model not in BASE_COLOR_ONLY_MODELS:  # meshy-n1 makes a 2K base colour, nothing else
        body["texture_resolution"] = texture_resolution(resolution)
        body["enable_pbr"] = bool(enable_pbr)
    body["target_formats"] = ["glb"]
    return {k: v for k, v in body.items() if k not in dropped}


def v1_body(model_url: str, prompt: str, style_image: str, opts: Mapping[str, Any],
            enable_pbr: bool, resolution: int) -> dict[str, Any]:
    """The fallback's body in v1 names [C M11]; `enable_original_uv` always explicit."""
    body: dict[str, Any] = {
        "model_url": model_url,
        "ai_model": texture_model(opts),
        "enable_original_uv": not wants_meshy_uvs(opts),
        "enable_pbr": bool(enable_pbr),
        "texture_resolution": texture_resolution(resolution),
    }
    if style_image:
        body["image_style_url"] = style_image
    else:
        body["text_style_prompt"] = prompt
    return body


def texture_resolution(pixels: int) -> str:
    """`"2k"`, `"4k"` [C], `"8k"` [I]: the smallest at least as fine as asked."""
    if pixels > 4096:
        return "8k"
    return "4k" if pixels > 2048 else "2k"


def prompt_problem(prompt: str) -> str:
    """"" or why Meshy would refuse this text. Refused, not truncated: a cut prompt silently
    changes what the artist pays for, and the panel can say so before anything is sent."""
    if len(prompt) > MAX_PROMPT:
        return (f"Meshy takes a prompt of at most {MAX_PROMPT} characters (this one has "
                f"{len(prompt)}) — shorten it")
    return ""


def public_https(url: str, what: str) -> str:
    """Meshy's servers fetch these links themselves: only a public https URL can work."""
    return cloud.public_https(url, what, "Meshy")


def glb_base64(mesh_path: str, max_uri: int) -> str:
    """The exported GLB as base64, checked (a data URI may be at most `max_uri` bytes)."""
    if not mesh_path or not os.path.isfile(mesh_path):
        raise ProviderError("The exported mesh is missing; run the job again")
    size = os.path.getsize(mesh_path)
    max_file = max_uri * 3 // 4 - 64
    if size > max_file:
        raise ProviderError(
            f"The mesh is {size / MB:.0f} MB; Meshy takes uploads up to {max_file / MB:.0f} MB "
            "— simplify it, or give a public mesh URL in the Meshy options")
    with open(mesh_path, "rb") as fh:
        data = fh.read()
    if data[:4] != b"glTF":
        raise ProviderError("Meshy needs the mesh as GLB, and the exported file is not one")
    return base64.b64encode(data).decode("ascii")


def image_data_uri(path: str, max_bytes: int) -> str:
    if not os.path.isfile(path):
        raise ProviderError(f"The reference image {os.path.basename(path)} does not exist")
    if os.path.getsize(path) > max_bytes:
        raise ProviderError(
            f"The reference image is larger than {max_bytes // MB} MB — use a smaller one")
    info = imagefile.image_info(path)
    if info is None or info[0] not in ("PNG", "JPEG"):
        raise ProviderError("Meshy takes a PNG or JPEG reference image")
    mime = "image/png" if info[0] == "PNG" else "image/jpeg"
    with open(path, "rb") as fh:
        return f"data:{mime};base64," + base64.b64encode(fh.read()).decode("ascii")


# --------------------------------------------------------------------------- answers


def task_id_of(answer: Any) -> str:
    """The id of a created task: v2 returns the whole task (`id`) [C M2], v1 `{"result"}`."""
    task_id = None
    if isinstance(answer, dict):
        task_id = answer.get("id") or answer.get("result")
    if not isinstance(task_id, str) or not task_id.strip() or "/" in task_id:
        raise ProviderError(
            "Meshy accepted the job but sent no task id; it may have been created — check your "
            "Meshy account before retrying")
    return task_id.strip()


def result_links(task: Mapping[str, Any]) -> dict[str, str]:
    """Role -> signed URL from `output` (v2) or the top level (v1): `texture_urls[0]` (PBR keys
    may be missing) and `model_urls.glb` (Meshy's textured model, whose UVs the maps follow)."""
    output = task.get("output")
    holder: Mapping[str, Any] = output if isinstance(output, Mapping) else task
    links: dict[str, str] = {}
    textures = holder.get("texture_urls")
    if isinstance(textures, list) and textures and isinstance(textures[0], Mapping):
        for role in (BASE_COLOR, *PBR_ROLES):
            url = textures[0].get(role)
            if isinstance(url, str) and url:
                links[role] = url
    models = holder.get("model_urls")
    if isinstance(models, Mapping) and isinstance(models.get("glb"), str) and models["glb"]:
        links[UV_MESH] = models["glb"]
    return links


def status_of(task: Mapping[str, Any]) -> RemoteStatus:
    """A task object (v2, or the fallback's v1) as a uniform status."""
    raw = str(task.get("status") or "").upper()
    state = STATES.get(raw)
    if state is None:
        # A status this version cannot read: watched, and counted by the runner.
        log.warning("Meshy reported an unknown task status %r", raw[:40])
        state = RemoteState.UNKNOWN
    if state is RemoteState.SUCCEEDED:
        # An old published example says "progress: 1" on a succeeded task: trust the status.
        return RemoteStatus(state, 1.0, maps=result_links(task))
    if raw == "EXPIRED":
        return RemoteStatus(state, message="Meshy's result for this job has expired (Meshy "
                            "keeps results for 3 days) — run the job again")
    if state is RemoteState.FAILED:
        return RemoteStatus(state, message=failure_message(task))
    if state is RemoteState.CANCELED:
        return RemoteStatus(state, message="The job was canceled at Meshy")
    progress = _progress(task.get("progress"))
    if state is RemoteState.QUEUED:
        ahead = task.get("preceding_tasks")
        message = (f"Waiting in Meshy's queue ({ahead} ahead)"
                   if isinstance(ahead, int) and not isinstance(ahead, bool) and ahead > 0
                   else "Waiting in Meshy's queue")
        return RemoteStatus(state, progress, message)
    # Meshy sits at 95–99 % for up to two minutes while it finalises; say so.
    message = "Meshy is finishing the maps" if progress >= 0.95 else "Meshy is texturing"
    return RemoteStatus(state, progress, message)


def failure_message(task: Mapping[str, Any]) -> str:
    """One line from `task_error` (`{type, code, message, doc_url}` in v2, `{message}` in v1)."""
    kind, code, text = error_fields(task.get("task_error"))
    if code.startswith("moderation"):
        return ("Meshy refused the content (moderation) — change the prompt or the reference "
                "image")
    text = clean_text(text, 300)  # one printable line, cut with "…"
    if text:
        return f"Meshy: {text}"
    if code or kind:
        return f"Meshy reported the job failed ({kind or 'error'}/{code or '?'})"
    return "Meshy reported the job failed (no reason given)"


def balance_of(answer: Any) -> float | None:
    value = answer.get("balance") if isinstance(answer, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _progress(value: Any) -> float:
    return fraction(value, 100.0)  # NaN or a non-number is no progress, never 100 %


def what(role: str) -> str:
    return "textured model" if role == UV_MESH else f"{role.replace('_', ' ')} map"
