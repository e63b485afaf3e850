"""Scenario's API as the code speaks it: routes, bodies, error hooks, and reading jobs, models
and assets.

Contract: docs/providers.md §2 ([I] = inferred, as there). No network here: `provider.py` sends.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote as url_quote

from ...net.http import PREFS_HINT, ServiceHooks
from ..base import (
    BASE_COLOR,
    HEIGHT,
    METALLIC,
    NORMAL,
    VARIANT_SEP,
    ProviderError,
    RemoteState,
    TextureRequest,
)

log = logging.getLogger(__name__)

DEFAULT_BASE = "https://api.cloud.scenario.com/v1"
PREFS = f"{PREFS_HINT} > Scenario"
SMOOTHNESS = "smoothness"  # fetch() role when the smoothness map could not be inverted here
TXT2IMG = "/generate/txt2img-texture"
CUSTOM = "/generate/custom/"  # + model id: current texture models (PATINA, …) [C S5, S6]
MB = 1 << 20
MAX_SAMPLES = 128
# Share of the progress bar the image takes when PBR maps follow it.
IMAGE_SHARE = 0.6
# A map job that cannot be started for a transient reason is tried on this many polls.
MAX_TEXTURE_ATTEMPTS = 3

# Map makers, in the order tried: `/generate/texture` takes the image's asset id as `texture`
# [I S1; the same name C S2]; the `sc-texture-converter` custom model is its documented
# equivalent [C S2], used when the first route is missing (404). The working one is remembered.
TEXTURE_ROUTES: dict[str, str] = {
    "texture": "/generate/texture",
    "converter": "/generate/custom/model_sc-texture-converter",
}
ROUTE_ORDER = ("texture", "converter")

# How a model makes textures [I S1, C S4]: its `capabilities` or its `type`.
ROUTE_TXT2IMG = "txt2img-texture"
ROUTE_CUSTOM = "custom"

# Asset `metadata.type` -> role. Never rely on the order of assetIds [C S5].
MAP_TYPES = {
    "texture-albedo": BASE_COLOR,
    "texture-normal": NORMAL,
    "texture-smoothness": SMOOTHNESS,
    "texture-metallic": METALLIC,
    "texture-height": HEIGHT,
}
IGNORED_MAP_TYPES = frozenset({"texture-ao", "texture-edge"})
ROLE_ORDER = (BASE_COLOR, NORMAL, SMOOTHNESS, METALLIC, HEIGHT)

# Status words: the documented ones plus the variants the official add-ons accept.
STATES = {
    "pending": RemoteState.QUEUED,
    "queued": RemoteState.QUEUED,
    "warming-up": RemoteState.RUNNING,
    "in-progress": RemoteState.RUNNING,
    "finalizing": RemoteState.RUNNING,
    "success": RemoteState.SUCCEEDED,
    "succeeded": RemoteState.SUCCEEDED,
    "completed": RemoteState.SUCCEEDED,
    "failure": RemoteState.FAILED,
    "failed": RemoteState.FAILED,
    "error": RemoteState.FAILED,
    "canceled": RemoteState.CANCELED,
    "cancelled": RemoteState.CANCELED,
}
MESSAGES = {
    "pending": "Waiting in Scenario's queue",
    "queued": "Waiting in Scenario's queue",
    "warming-up": "Scenario is warming up",
    "in-progress": "Scenario is generating the texture",
    "finalizing": "Scenario is finishing the texture",
}
# Size limits per model type [C S7]: (min, max) side in pixels, multiples of 8.
SIDE_LIMITS = {"sd-xl": (512, 2048), "sd-xl-lora": (512, 2048),
               "sd-xl-composition": (512, 2048), "sd-1_5": (64, 1024)}
DEFAULT_SIDES = (64, 2048)


class ScenarioHooks(ServiceHooks):
    """Scenario's errors carry `reason` (also message/error/detail) and maybe a `traceId`; a 429
    may say how long to wait in `remainingSeconds` [C S4]."""

    def error_message(self, status: int, body: Any) -> str:
        if not isinstance(body, dict):
            return super().error_message(status, body)
        text = ""
        for key in ("reason", "message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                text = value
                break
        text = text or super().error_message(status, body)
        trace = body.get("traceId") or body.get("trace_id")
        if text and isinstance(trace, str) and 0 < len(trace) <= 64 and trace.isprintable():
            text = f"{text} (trace {trace})"  # support can find the request; still one line
        return text

    def retry_hint(self, status: int, body: Any, headers: Mapping[str, str]) -> float | None:
        if status == 429 and isinstance(body, dict):
            value = body.get("remainingSeconds")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                # Honoured as given: the client's max_total still bounds the whole wait, so a
                # long one fails at once with the 429 message instead of hanging the job.
                return float(value)
        return None

    def queue_full(self, status: int, body: Any, method: str, path: str) -> bool:
        # A 429 to a create: Scenario's limits are not published [?]; nothing was created, so
        # the job waits (for `remainingSeconds` when given) instead of failing.
        return status == 429 and path.startswith("/generate/")

    def describe(self, status: int, message: str, context: str, label: str) -> str | None:
        said = f": {message}" if message else ""
        if status == 401:
            return ("Scenario rejected the API key or secret — check "
                    f"{PREFS} (or SCENARIO_API_KEY / SCENARIO_API_SECRET)")
        if status == 402:
            return ("Your Scenario workspace has no creative units left — top it up at "
                    "scenario.com, then retry")
        if status == 403:
            return (f"Scenario refused access with this key (HTTP 403{said}) — check the key, "
                    f"secret and project in {PREFS}")
        if status in (404, 410) and context == "model":
            return (f"Scenario has no such model (HTTP 404{said}) — check the model id in "
                    f"{PREFS} (or SCENARIO_MODEL_ID)")
        if status == 429 and context == "create":
            return ("Scenario is busy for this account (HTTP 429) — this job waits and is sent "
                    "again shortly")
        return None


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Model:
    """What `GET /models/{id}` says that matters here [I S1]."""

    id: str
    type: str
    capabilities: tuple[str, ...]

    @property
    def route(self) -> str:
        """txt2img-texture for trained models with that mode; custom for current texture
        models; "" when this model cannot make textures."""
        if "txt2img_texture" in self.capabilities:
            return ROUTE_TXT2IMG
        if self.type == "custom":
            return ROUTE_CUSTOM
        return ""

    def route_line(self) -> str:
        if self.route == ROUTE_TXT2IMG:
            return f"a {self.type or 'trained'} model, textures through txt2img-texture"
        if self.route == ROUTE_CUSTOM:
            return f"a custom texture model, textures through {CUSTOM}{self.id}"
        return "it cannot make textures"


def model_path(model_id: str) -> str:
    return f"/models/{url_quote(model_id, safe='')}"


def model_of(answer: Any, model_id: str) -> Model:
    model = answer.get("model") if isinstance(answer, dict) else None
    if not isinstance(model, dict):
        model = answer if isinstance(answer, dict) else {}
    caps = model.get("capabilities")
    capabilities = tuple(str(c) for c in caps if isinstance(c, str)) if isinstance(
        caps, list) else ()
    return Model(model_id, str(model.get("type") or "").strip(), capabilities)


def not_a_texture_model(model: Model) -> str:
    return (f"The Scenario model '{model.id}' cannot make textures (type "
            f"{model.type or 'unknown'}, no txt2img_texture capability) — pick a texture model "
            f"in {PREFS}")


def custom_path(model_id: str) -> str:
    return CUSTOM + url_quote(model_id, safe="")


# --------------------------------------------------------------------------- answers


def job_id_of(answer: Any) -> str:
    job = answer.get("job") if isinstance(answer, dict) else None
    job_id = None
    if isinstance(job, dict):
        job_id = job.get("jobId") or job.get("id")  # the quick-start shows `job.id`
    if job_id is None and isinstance(answer, dict):
        job_id = answer.get("jobId")
    if not isinstance(job_id, str) or not job_id.strip() or "/" in job_id:
        raise ProviderError("Scenario accepted the job but sent no job id; it may have been "
                            "created — check your Scenario account before retrying")
    return job_id.strip()


def cost_of(answer: Any) -> float | None:
    """`creativeUnitsCost`, at the top level or one object down (its place is not documented)."""
    if not isinstance(answer, dict):
        return None
    for holder in (answer, *(v for v in answer.values() if isinstance(v, dict))):
        value = holder.get("creativeUnitsCost")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def asset_ids(job: dict[str, Any]) -> list[str]:
    meta = job.get("metadata")
    ids = meta.get("assetIds") if isinstance(meta, dict) else None
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, str) and i and "/" not in i]


def asset_type(asset: dict[str, Any]) -> str:
    meta = asset.get("metadata")
    kind = meta.get("type") if isinstance(meta, dict) else None
    return str(kind or "").strip().lower()


def failure_message(job: dict[str, Any]) -> str:
    """One line from metadata.error / reason (or the job's own), never the raw JSON."""
    meta = job.get("metadata")
    holders = [meta, job] if isinstance(meta, dict) else [job]
    text = ""
    for holder in holders:
        for key in ("error", "reason", "message"):
            value = holder.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("reason")
            if isinstance(value, str) and value.strip():
                text = value
                break
        if text:
            break
    text = " ".join(text.split())
    if len(text) > 200:
        text = text[:197] + "…"
    return f"Scenario: {text}" if text else "Scenario reported the job failed (no reason given)"


def progress_of(value: Any) -> float:
    """Scenario reports 0–1; a 0–100 value (other job kinds, older APIs) is scaled down."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(number):
        return 0.0
    if number > 1.0:
        number /= 100.0
    return max(0.0, min(1.0, number))


# --------------------------------------------------------------------------- request values


def samples(opts: dict[str, Any]) -> int:
    return int(clamp(opts.get("samples", 1) or 1, 1, MAX_SAMPLES, "number of samples"))


def clamp(value: Any, lo: float, hi: float, name: str = "option") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProviderError(f"The Scenario {name} must be a number, not {str(value)[:40]!r}") \
            from None
    if math.isnan(number):
        number = lo
    out = max(lo, min(hi, number))
    return int(out) if out == int(out) else out


def as_int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else int(default)
    except (TypeError, ValueError):
        return int(default)


def side(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, math.floor(value / 8 + 0.5) * 8))  # half up, not to even


def guidance_range(model_type: str) -> tuple[float, float]:
    """[C S7]: Flux dev 0–10, Flux pro 2–5, SDXL and SD 1.5 0–20."""
    if model_type.startswith("flux"):
        return (2.0, 5.0) if "pro" in model_type else (0.0, 10.0)
    return (0.0, 20.0)


def size(request: TextureRequest, model_type: str) -> tuple[int, int, str]:
    """(width, height, note): multiples of 8 within the model type's range; the note says
    why the size differs from the one asked for ("" when it was only rounded)."""
    lo, hi = SIDE_LIMITS.get(model_type, DEFAULT_SIDES)
    opts = request.options or {}
    wanted_w = as_int(opts.get("width"), request.resolution)
    wanted_h = as_int(opts.get("height"), request.resolution)
    width, height = side(wanted_w, lo, hi), side(wanted_h, lo, hi)
    note = ""
    if not (lo <= wanted_w <= hi and lo <= wanted_h <= hi):
        asked = f"{wanted_w}" if wanted_w == wanted_h else f"{wanted_w}×{wanted_h}"
        made = f"{width}" if width == height else f"{width}×{height}"
        note = (f"made at {made} px ({asked} px asked; this Scenario model makes "
                f"{lo}–{hi} px)")
    return width, height, note


def texture_settings(opts: dict[str, Any]) -> dict[str, Any]:
    given = opts.get("texture_settings")
    if not isinstance(given, dict):
        return {}
    out: dict[str, Any] = {}
    for key in ("polished", "angular", "raised", "shiny"):
        if given.get(key) is not None:
            out[key] = clamp(given[key], 0, 1, f"texture setting {key}")
    if given.get("invert") is not None:
        out["invert"] = bool(given["invert"])
    return out


def check_options(request: TextureRequest) -> str:
    """What Scenario would refuse, found without asking it (main thread, no network)."""
    if not request.prompt.strip():
        return "Scenario needs a prompt"
    opts = request.options or {}
    try:
        samples(opts)
        for key, lo, hi in (("steps", 1, 150), ("guidance", 0, 20),
                            ("negative_prompt_strength", 0, 10)):
            if opts.get(key) is not None:
                clamp(opts[key], lo, hi, key.replace("_", " "))
        texture_settings(opts)
    except ProviderError as exc:
        return exc.message
    return ""


def txt2img_body(request: TextureRequest, model: Model) -> dict[str, Any]:
    """`/generate/txt2img-texture` [I S1, C S7]: the seed goes as a string; optional values
    only when the artist set them (Scenario validates strictly and picks per-model defaults)."""
    opts = request.options or {}
    width, height, _note = size(request, model.type)
    body: dict[str, Any] = {
        "modelId": model.id,
        "prompt": request.prompt.strip(),
        "numSamples": samples(opts),
        "seed": str(int(request.seed)),
        "width": width,
        "height": height,
    }
    if request.negative_prompt.strip():
        body["negativePrompt"] = request.negative_prompt.strip()
    if opts.get("negative_prompt_strength") is not None:
        body["negativePromptStrength"] = clamp(opts["negative_prompt_strength"], 0, 10)
    if opts.get("steps") is not None:
        body["numInferenceSteps"] = int(clamp(opts["steps"], 1, 150))
    if opts.get("guidance") is not None:
        body["guidance"] = clamp(opts["guidance"], *guidance_range(model.type))
    return body


def custom_body(request: TextureRequest) -> dict[str, Any]:
    """`/generate/custom/{modelId}`: each model documents its own body [C S2]; the prompt is
    what a texture model takes [I], and nothing else is sent."""
    return {"prompt": request.prompt.strip()}


# --------------------------------------------------------------------------- files and roles


def variant(role: str, n: int) -> str:
    return role if n == 0 else f"{role}{VARIANT_SEP}{n}"


def split_variant(key: str) -> tuple[str, int]:
    role, sep, number = key.partition(VARIANT_SEP)
    return (role, int(number)) if sep and number.isdigit() else (key, 0)


def fetch_order(key: str) -> tuple[int, int]:
    role, n = split_variant(key)
    rank = ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)
    return (n, rank)


def what(role: str, n: int) -> str:
    name = f"{role.replace('_', ' ')} map"
    return name if n == 0 else f"{name} of sample {n + 1}"


def dest(request: TextureRequest, role: str, n: int) -> str:
    stem = request.file_stem or request.job_id
    suffix = "" if n == 0 else f"_v{n}"
    return os.path.join(request.out_dir or ".", f"{stem}_{role}{suffix}.png")
