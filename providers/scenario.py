"""Scenario: seamless texture images (`/generate/txt2img-texture`), PBR maps (`/generate/texture`).

Contract: docs/providers.md §2. Choices where they are silent are
made here and explained in place ([I] = inferred, as in docs/providers.md).

`request.options` keys this provider reads (all optional):

* ``model_id``: overrides the configured model (Preferences / SCENARIO_MODEL_ID) for this job.
* ``samples`` (1): images to make; each extra one comes back as a variant
  (``f"{role}{VARIANT_SEP}{n}"`` for n >= 1) the artist can switch to.
* ``steps`` (numInferenceSteps, 1–150), ``guidance`` (clamped to the model type's range),
  ``negative_prompt_strength`` (0–10; Flux-dev models ignore a negative prompt without it):
  sent only when given, otherwise the model's own defaults apply.
* ``width`` / ``height``: a non-square size instead of ``request.resolution``.
* ``texture_settings``: {"polished"|"angular"|"raised"|"shiny": 0..1, "invert": bool} for the
  PBR map maker; only given keys are sent.

The texture is made at ``request.resolution`` rounded to a multiple of 8 and clamped to what the
model type allows (64–2048; SDXL 512–2048; SD 1.5 64–1024). A clamped size is said in the job's
progress message and in ``job.extra["note"]``.

A job is up to two paid steps: the txt2img job (its id is the remote id) and, with PBR on, one
texture-map job per sample, started from `poll` once the images exist. The remote id cannot
change after `submit`, and `poll` never sees `job.extra` (the runner journals `status.extra` into
`job.extra`, but a resumed job's extra is not handed back to the provider), so the ids of the
map jobs are kept where a resumed `poll` finds them: in memory, and in a small sidecar file
``.{file_stem}.scenario.json`` in `request.out_dir`, written (fsync'ed) as soon as each map job is
accepted. A resumed poll reads it and never starts a map job twice. They are also reported in
``status.extra["scenario_texture_jobs"]`` for the journal and the UI. The file stays after the
job: deleting it in `fetch` would reopen, for the moment between `fetch` and the runner's READY
write, the very window it closes.

The image is paid for before the maps are made, so a map step that cannot be done (its job
fails, its endpoint is gone, its start is refused) keeps that sample's image as base color and
says why in ``job.extra["warning"]`` instead of failing the job.

`fetch` roles: ``base_color`` (the map maker's albedo, else the image), ``normal``,
``roughness`` (the smoothness map inverted here; a JPEG/WEBP one is returned as ``smoothness``
for Blender to invert), ``metallic``, ``height``; sample n >= 1 as ``f"{role}@{n}"``.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote as url_quote

import numpy as np

from ..formats import imagefile
from ..formats.atomic import write_atomic
from ..net.http import (
    NO_RETRY,
    PREFS_HINT,
    Downloaded,
    HttpError,
    LinkExpired,
    RetryPolicy,
    ServiceHooks,
    Sleeper,
    url_problem,
)
from .base import (
    BASE_COLOR,
    HEIGHT,
    METALLIC,
    NORMAL,
    ROUGHNESS,
    VARIANT_SEP,
    CancelToken,
    ProgressFn,
    ProviderConfig,
    ProviderError,
    RemoteState,
    RemoteStatus,
    TextureRequest,
    ramped_delay,
)
from .cloud import CloudProvider

log = logging.getLogger(__name__)

DEFAULT_BASE = "https://api.cloud.scenario.com/v1"
PREFS = f"{PREFS_HINT} > Scenario"
SMOOTHNESS = "smoothness"  # fetch() role when the smoothness map could not be inverted here
TXT2IMG = "/generate/txt2img-texture"
MB = 1 << 20
MAX_SAMPLES = 128
# Share of the progress bar the image takes when PBR maps follow it.
IMAGE_SHARE = 0.6
# A map job that cannot be started for a transient reason is tried on this many polls.
MAX_TEXTURE_ATTEMPTS = 3

# Map makers, in the order tried: `/generate/texture` is the endpoint the docs reference and the
# issue names; its body field is [I] `image` (a live 400 reads "image parameter is required").
# The model `sc-texture-converter` is its newer equivalent with a documented `texture` field; it
# is used when the first answers 404 (retired). The working one is remembered per base URL.
TEXTURE_ROUTES: dict[str, tuple[str, str]] = {
    "texture": ("/generate/texture", "image"),
    "converter": ("/generate/custom/model_sc-texture-converter", "texture"),
}
_ROUTE_ORDER = ("texture", "converter")
_working_route: dict[str, str] = {}
_model_types: dict[tuple[str, str], str] = {}  # (base URL, model id) -> model type
_model_gates: dict[tuple[str, str], threading.Lock] = {}
_memo_lock = threading.Lock()

# Asset `metadata.type` -> role. Never rely on the order of assetIds [C SKILL.md].
MAP_TYPES = {
    "texture-albedo": BASE_COLOR,
    "texture-normal": NORMAL,
    "texture-smoothness": SMOOTHNESS,
    "texture-metallic": METALLIC,
    "texture-height": HEIGHT,
}
IGNORED_MAP_TYPES = frozenset({"texture-ao", "texture-edge"})
_ROLE_ORDER = (BASE_COLOR, NORMAL, SMOOTHNESS, METALLIC, HEIGHT)

# Status words: the documented ones plus the variants the official add-ons accept.
_STATES = {
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
_MESSAGES = {
    "pending": "Waiting in Scenario's queue",
    "queued": "Waiting in Scenario's queue",
    "warming-up": "Scenario is warming up",
    "in-progress": "Scenario is generating the texture",
    "finalizing": "Scenario is finishing the texture",
}
# Size limits per model type [C seed]: (min, max) side in pixels, multiples of 8.
_SIDE_LIMITS = {"sd-xl": (512, 2048), "sd-xl-lora": (512, 2048),
                "sd-xl-composition": (512, 2048), "sd-1_5": (64, 1024)}
_DEFAULT_SIDES = (64, 2048)


class ScenarioHooks(ServiceHooks):
    """Scenario's errors carry `reason` (also message/error/detail) and maybe a `traceId`; a 429
    may say how long to wait in `remainingSeconds` [C blender-plugin client.py]."""

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
        return None


@dataclass
class _Phase:
    """The map-making step of one job: which map job belongs to which image, and what failed."""

    texture_jobs: dict[str, str] = field(default_factory=dict)  # image asset id -> job id
    degraded: dict[str, str] = field(default_factory=dict)  # image asset id -> why no maps
    attempts: dict[str, int] = field(default_factory=dict)  # image asset id -> tries so far
    finished: dict[str, dict[str, str]] = field(default_factory=dict)  # image -> role -> map


class ScenarioProvider(CloudProvider):
    id = "SCENARIO"
    label = "Scenario"
    description = "Scenario seamless textures with your Scenario key and secret"
    extras = (
        ("api_secret", "SCENARIO_API_SECRET"),
        ("model_id", "SCENARIO_MODEL_ID"),
        ("project_id", "SCENARIO_PROJECT_ID"),
    )
    default_base = DEFAULT_BASE
    offline = False
    mesh_format = ""  # 2D: nothing of the mesh leaves the machine
    seamless_2d = True
    resubmit_safe = False  # every job spends creative units
    max_concurrency = 4  # Scenario's limits are not published [?]; stay modest
    poll_interval = 3.0  # the official SDK's job.wait() polls every 3 s
    max_map_bytes: ClassVar[int] = 256 * MB

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        poll_interval: float | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleeper | None = None,
    ) -> None:
        super().__init__(config, poll_interval=poll_interval, retry=retry, sleep=sleep)
        self._lock = threading.Lock()
        self._phases: dict[str, _Phase] = {}  # remote id -> map-making state
        self._assets: dict[str, dict[str, Any]] = {}  # asset id -> last asset object read
        self._done_images: dict[str, dict[str, Any]] = {}  # remote id -> its succeeded job
        self._type_unknown: set[str] = set()  # model ids whose type Scenario did not give

    def poll_delay(self, elapsed: float) -> float:
        # 1 s while young, then 2 s, then 3 s (`ramped_delay`; the SDK polls every 3 s).
        # Scenario publishes no rate limit; a 429 is honoured (`remainingSeconds`) by http.py.
        return ramped_delay(elapsed, self.poll_interval)

    # ---- set-up --------------------------------------------------------------------------------

    def _extra(self, key: str) -> str:
        return str(self.config.extras.get(key) or "").strip()

    def model_id(self, request: TextureRequest | None = None) -> str:
        override = str(((request.options or {}) if request else {}).get("model_id") or "")
        return override.strip() or self._extra("model_id")

    def check_ready(self) -> str:
        missing = [(what, env) for what, env, value in (
            ("an API key", "SCENARIO_API_KEY", self.config.api_key.strip()),
            ("an API secret", "SCENARIO_API_SECRET", self._extra("api_secret")),
            ("a model id", "SCENARIO_MODEL_ID", self._extra("model_id")),
        ) if not value]
        if missing:
            names = [m[0] for m in missing]
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            return f"Scenario needs {listed}: {PREFS}, or {' / '.join(m[1] for m in missing)}"
        return url_problem(self.base_url, self.label, "base URL")

    def auth_headers(self) -> dict[str, str]:
        """HTTP Basic base64(key:secret), as Scenario's own clients send it."""
        token = f"{self.config.api_key.strip()}:{self._extra('api_secret')}"
        return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}

    def hooks(self) -> ServiceHooks:
        return ScenarioHooks()

    def _params(self, **more: str) -> dict[str, str]:
        """Query parameters of every API call: the project, when one is configured."""
        params = dict(more)
        project = self._extra("project_id")
        if project:
            params["projectId"] = project
        return params

    def _get(self, path: str, cancel: CancelToken | None, context: str = "api") -> dict[str, Any]:
        answer = self.client().get_json(path, cancel, params=self._params(), context=context)
        if not isinstance(answer, dict):
            raise ProviderError("Scenario sent an answer in an unexpected shape", retryable=True)
        return answer

    # ---- submit --------------------------------------------------------------------------------

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        body = self._body(request, cancel)
        answer = self.client().post_json(TXT2IMG, body, cancel, safe=False,
                                         params=self._params())
        return _job_id_of(answer)

    def check_request(self, request: TextureRequest) -> str:
        """What Scenario would refuse, found without asking it (main thread, no network)."""
        if not request.prompt.strip():
            return "Scenario needs a prompt"
        opts = request.options or {}
        try:
            _samples(opts)
            for key, lo, hi in (("steps", 1, 150), ("guidance", 0, 20),
                                ("negative_prompt_strength", 0, 10)):
                if opts.get(key) is not None:
                    _clamp(opts[key], lo, hi, key.replace("_", " "))
            _texture_settings(opts)
        except ProviderError as exc:
            return exc.message
        return ""

    def quote(self, request: TextureRequest,
              cancel: CancelToken | None = None) -> dict[str, Any] | None:
        """{"cost_credits": creative units of the image step, "available_credits": None} from
        `?dryRun=true` (which runs nothing), or None when Scenario does not say. The map step
        cannot be priced before its image exists, so it is not included (said in "note")."""
        try:
            body = self._body(request, cancel)
            answer = self.client().post_json(TXT2IMG, body, cancel, safe=True, retry=NO_RETRY,
                                             params=self._params(dryRun="true"))
        except ProviderError as exc:
            log.info("Scenario price not available: %s", exc.message)
            return None
        cost = _cost_of(answer)
        if cost is None:
            return None
        price: dict[str, Any] = {"cost_credits": cost, "available_credits": None,
                                 "unit": "creative units"}
        if request.enable_pbr:
            price["note"] = "the PBR maps are priced by Scenario when they are made"
        return price

    def _body(self, request: TextureRequest, cancel: CancelToken | None) -> dict[str, Any]:
        problem = self.check_request(request)
        if problem:
            raise ProviderError(problem)
        prompt = request.prompt.strip()
        model_id = self.model_id(request)
        if not model_id:
            raise ProviderError(self.check_ready() or "Scenario needs a model id")
        opts = request.options or {}
        model_type = self._model_type(model_id, cancel)
        width, height, _note = self.size(request, model_type)
        body: dict[str, Any] = {
            "modelId": model_id,
            "prompt": prompt,
            "numSamples": _samples(opts),
            "seed": int(request.seed),  # a number: the docs allow string or number
            "width": width,
            "height": height,
        }
        if request.negative_prompt.strip():
            body["negativePrompt"] = request.negative_prompt.strip()
        # Only what the artist set: Scenario validates strictly and picks per-model defaults.
        if opts.get("negative_prompt_strength") is not None:
            body["negativePromptStrength"] = _clamp(opts["negative_prompt_strength"], 0, 10)
        if opts.get("steps") is not None:
            body["numInferenceSteps"] = int(_clamp(opts["steps"], 1, 150))
        if opts.get("guidance") is not None:
            body["guidance"] = _clamp(opts["guidance"], *_guidance_range(model_type))
        return body

    def _model_type(self, model_id: str, cancel: CancelToken | None) -> str:
        """The model's type, which sets the allowed sizes; asked once per model and session.
        Unknown (""), if Scenario cannot say: the general 64–2048 range is used then."""
        key = (self.base_url, model_id)
        with _memo_lock:
            if key in _model_types:
                return _model_types[key]
            gate = _model_gates.setdefault(key, threading.Lock())
        if model_id in self._type_unknown:
            return ""
        with gate:  # jobs started together ask once, not once each
            with _memo_lock:
                if key in _model_types:
                    return _model_types[key]
            return self._read_model_type(key, model_id, cancel)

    def _read_model_type(self, key: tuple[str, str], model_id: str,
                         cancel: CancelToken | None) -> str:
        try:
            answer = self._get(f"/models/{url_quote(model_id, safe='')}", cancel, context="model")
        except ProviderError as exc:
            if isinstance(exc, HttpError) and exc.status in (401, 403, 404, 410):
                raise  # a wrong key or model id: say so before anything is paid for
            log.info("Scenario model type not available: %s", exc.message)
            self._type_unknown.add(model_id)  # not asked again on every poll
            return ""
        model = answer.get("model") if isinstance(answer.get("model"), dict) else answer
        kind = str(model.get("type") or "") if isinstance(model, dict) else ""
        with _memo_lock:
            _model_types[key] = kind
        return kind

    def size(self, request: TextureRequest, model_type: str) -> tuple[int, int, str]:
        """(width, height, note): multiples of 8 within the model type's range; the note says
        why the size differs from the one asked for ("" when it was only rounded)."""
        lo, hi = _SIDE_LIMITS.get(model_type, _DEFAULT_SIDES)
        opts = request.options or {}
        wanted_w = _int(opts.get("width"), request.resolution)
        wanted_h = _int(opts.get("height"), request.resolution)
        width, height = _side(wanted_w, lo, hi), _side(wanted_h, lo, hi)
        note = ""
        if not (lo <= wanted_w <= hi and lo <= wanted_h <= hi):
            asked = f"{wanted_w}" if wanted_w == wanted_h else f"{wanted_w}×{wanted_h}"
            made = f"{width}" if width == height else f"{width}×{height}"
            note = (f"made at {made} px ({asked} px asked; this Scenario model makes "
                    f"{lo}–{hi} px)")
        return width, height, note

    # ---- poll ----------------------------------------------------------------------------------

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        with self._lock:
            done = self._done_images.get(remote_id)
        # Once the image job has succeeded, only the map jobs are asked about.
        job = done or self._job(remote_id, cancel)
        status = self._image_status(job, request)
        note = self._note(request, cancel)
        if note:
            status.extra["note"] = f"Scenario: {note}"
            if not status.state.terminal:
                status.message = f"{status.message} — {note}"
        if status.state is not RemoteState.SUCCEEDED:
            return status
        images = _asset_ids(job)
        if not images:
            raise ProviderError("Scenario finished but sent no image — run the job again")
        with self._lock:
            self._done_images[remote_id] = job
        if not request.enable_pbr:
            return RemoteStatus(RemoteState.SUCCEEDED, 1.0, maps={
                _variant(BASE_COLOR, n): asset for n, asset in enumerate(images)},
                extra=status.extra)
        pbr = self._pbr_status(remote_id, images, request, cancel)
        pbr.extra = {**status.extra, **pbr.extra}
        if note and not pbr.state.terminal:
            pbr.message = f"{pbr.message} — {note}"
        return pbr

    def _job(self, job_id: str, cancel: CancelToken | None) -> dict[str, Any]:
        answer = self._get(f"/jobs/{job_id}", cancel, context="task")
        job = answer.get("job", answer)
        if not isinstance(job, dict):
            raise ProviderError("Scenario sent a job in an unexpected shape", retryable=True)
        return job

    def _note(self, request: TextureRequest, cancel: CancelToken) -> str:
        model_id = self.model_id(request)
        try:
            model_type = self._model_type(model_id, cancel) if model_id else ""
        except ProviderError:
            model_type = ""
        return self.size(request, model_type)[2]

    def _image_status(self, job: dict[str, Any], request: TextureRequest) -> RemoteStatus:
        raw = str(job.get("status") or "").strip().lower()
        state = _STATES.get(raw)
        if state is None:  # a status this version cannot read: watched, counted by the runner
            log.warning("Scenario reported an unknown job status %r", raw[:40])
            state = RemoteState.UNKNOWN
        share = IMAGE_SHARE if request.enable_pbr else 1.0
        if state is RemoteState.SUCCEEDED:
            return RemoteStatus(state, share)
        if state is RemoteState.FAILED:
            return RemoteStatus(state, message=_failure_message(job))
        if state is RemoteState.CANCELED:
            return RemoteStatus(state, message="The job was canceled at Scenario")
        message = _MESSAGES.get(raw, "Scenario is generating the texture")
        return RemoteStatus(state, share * _progress(job.get("progress")), message)

    # ---- the map-making step -------------------------------------------------------------------

    def _pbr_status(self, remote_id: str, images: list[str], request: TextureRequest,
                    cancel: CancelToken) -> RemoteStatus:
        phase = self._phase(remote_id, request)
        for asset in images:
            if asset not in phase.texture_jobs and asset not in phase.degraded:
                self._start_maps(remote_id, asset, phase, request, cancel)
        maps: dict[str, str] = {}
        fractions: list[float] = []
        for n, asset in enumerate(images):
            fraction = self._sample_maps(remote_id, n, asset, phase, request, cancel, maps)
            fractions.append(fraction)
        extra: dict[str, Any] = {"scenario_texture_jobs": dict(phase.texture_jobs)}
        if phase.degraded:
            extra["warning"] = _degraded_warning(images, phase)
        if all(f >= 1.0 for f in fractions):
            return RemoteStatus(RemoteState.SUCCEEDED, 1.0, maps=maps, extra=extra)
        done = sum(1 for f in fractions if f >= 1.0)
        progress = IMAGE_SHARE + (1.0 - IMAGE_SHARE) * sum(fractions) / len(fractions)
        message = "Scenario is making the PBR maps"
        if len(images) > 1:
            message += f" ({done} of {len(images)} done)"
        return RemoteStatus(RemoteState.RUNNING, min(progress, 0.99), message, extra=extra)

    def _sample_maps(self, remote_id: str, n: int, asset: str, phase: _Phase,
                     request: TextureRequest, cancel: CancelToken,
                     maps: dict[str, str]) -> float:
        """Add sample n's maps to `maps` when its map job is done; return its progress 0..1."""
        if asset in phase.degraded:
            maps[_variant(BASE_COLOR, n)] = asset
            return 1.0
        if asset in phase.finished:  # not asked again while the other samples finish
            maps.update({_variant(r, n): m for r, m in phase.finished[asset].items()})
            return 1.0
        try:
            job = self._job(phase.texture_jobs[asset], cancel)
        except HttpError as exc:
            if exc.status not in (404, 410):
                raise
            self._degrade(remote_id, asset, phase, request,
                          "Scenario no longer knows the map job")
            maps[_variant(BASE_COLOR, n)] = asset
            return 1.0
        state = _STATES.get(str(job.get("status") or "").strip().lower(), RemoteState.RUNNING)
        if state is RemoteState.SUCCEEDED:
            found = self._map_assets(job, cancel)
            found.setdefault(BASE_COLOR, asset)  # "the original as albedo" [C docs]
            phase.finished[asset] = found
            for role, map_asset in found.items():
                maps[_variant(role, n)] = map_asset
            return 1.0
        if state in (RemoteState.FAILED, RemoteState.CANCELED):
            reason = (_failure_message(job) if state is RemoteState.FAILED
                      else "the map job was canceled at Scenario")
            self._degrade(remote_id, asset, phase, request, reason)
            maps[_variant(BASE_COLOR, n)] = asset
            return 1.0
        return _progress(job.get("progress"))

    def _map_assets(self, job: dict[str, Any], cancel: CancelToken) -> dict[str, str]:
        """Role -> asset id of a finished map job, by each asset's `metadata.type`."""
        found: dict[str, str] = {}
        for asset_id in _asset_ids(job):
            asset = self._asset(asset_id, cancel, fresh=False)
            kind = _asset_type(asset)
            role = MAP_TYPES.get(kind)
            if role is None:
                if kind not in IGNORED_MAP_TYPES:
                    log.debug("Scenario map job output of type %r ignored", kind)
                continue
            found.setdefault(role, asset_id)
        return found

    def _start_maps(self, remote_id: str, asset: str, phase: _Phase, request: TextureRequest,
                    cancel: CancelToken) -> None:
        """Start the (paid) map job for one image, remembering it before anything else."""
        body_extra = _texture_settings(request.options or {})
        last: HttpError | None = None
        for key in self._route_order():
            path, field_name = TEXTURE_ROUTES[key]
            try:
                answer = self.client().post_json(path, {field_name: asset, **body_extra}, cancel,
                                                 safe=False, params=self._params())
            except HttpError as exc:
                if exc.status == 404:
                    last = exc
                    continue
                self._map_start_failed(remote_id, asset, phase, request, exc)
                return
            with _memo_lock:
                _working_route[self.base_url] = key
            try:
                job_id = _job_id_of(answer)
            except ProviderError as exc:
                self._degrade(remote_id, asset, phase, request, exc.message)
                return
            phase.texture_jobs[asset] = job_id
            self._save_phase(remote_id, request, phase)
            return
        reason = "Scenario offers no PBR map maker at this address"
        if last is not None and last.provider_message:
            reason += f" ({last.provider_message})"
        self._degrade(remote_id, asset, phase, request, reason)

    def _map_start_failed(self, remote_id: str, asset: str, phase: _Phase,
                          request: TextureRequest, exc: HttpError) -> None:
        """A transient refusal is tried again on the next polls; anything else keeps the image
        without maps, because the image is paid for and must not be thrown away."""
        if exc.retryable:
            tries = phase.attempts.get(asset, 0) + 1
            phase.attempts[asset] = tries
            if tries < MAX_TEXTURE_ATTEMPTS:
                raise ProviderError(exc.message, retryable=True, status=exc.status)
        self._degrade(remote_id, asset, phase, request, exc.message)

    def _degrade(self, remote_id: str, asset: str, phase: _Phase, request: TextureRequest,
                 reason: str) -> None:
        log.warning("Scenario: no PBR maps for image %s: %s", asset, reason)
        phase.degraded[asset] = " ".join(reason.split())
        self._save_phase(remote_id, request, phase)

    def _route_order(self) -> list[str]:
        with _memo_lock:
            known = _working_route.get(self.base_url)
        order = list(_ROUTE_ORDER)
        if known:
            order.remove(known)
            order.insert(0, known)
        return order

    # ---- the phase record (memory + sidecar file) ----------------------------------------------

    def _phase(self, remote_id: str, request: TextureRequest) -> _Phase:
        with self._lock:
            phase = self._phases.get(remote_id)
            if phase is None:
                phase = _load_phase(_sidecar(request), remote_id)
                self._phases[remote_id] = phase
            return phase

    def _save_phase(self, remote_id: str, request: TextureRequest, phase: _Phase) -> None:
        path = _sidecar(request)
        if not path:
            return
        try:
            _write_phase(path, remote_id, phase)
        except OSError as exc:  # the job goes on; only a crash right now could cost twice
            log.warning("Scenario: could not record the map jobs in %s: %s", path, exc)

    # ---- fetch ---------------------------------------------------------------------------------

    def fetch(
        self,
        remote_id: str,
        status: RemoteStatus,
        request: TextureRequest,
        cancel: CancelToken,
        progress: ProgressFn,
    ) -> dict[str, str]:
        """Download every map of every sample; smoothness becomes roughness by inverting it."""
        links = dict(status.maps) or self.poll(remote_id, request, cancel).maps
        wanted = sorted(links, key=_fetch_order)
        if not any(_split_variant(k)[0] == BASE_COLOR for k in wanted):
            raise ProviderError("Scenario finished but sent no texture image")
        out: dict[str, str] = {}
        for i, key in enumerate(wanted):
            role, n = _split_variant(key)
            progress(i / len(wanted), f"Downloading {_what(role, n)}")
            got = self._download(links[key], _dest(request, role, n), _what(role, n), cancel)
            if role == SMOOTHNESS:
                with self.heavy:
                    role, path = _to_roughness(got, _dest(request, ROUGHNESS, n))
            else:
                path = got.path
            out[_variant(role, n)] = path
        progress(1.0, "Maps downloaded")
        return out

    def _download(self, asset_id: str, dest: str, what: str, cancel: CancelToken) -> Downloaded:
        """Signed asset URLs expire: on an expired one, read the asset again for a fresh URL."""
        asset = self._asset(asset_id, cancel, fresh=False)
        for renewed in (False, True):
            url = asset.get("url")
            if not isinstance(url, str) or not url:
                raise ProviderError(f"Scenario no longer offers the {what} for this job")
            try:
                return self.client().download(url, dest, self.max_map_bytes, cancel,
                                              expect="image", what=what)
            except LinkExpired:
                if renewed:
                    break
                asset = self._asset(asset_id, cancel, fresh=True)
        raise ProviderError("Scenario's links to this job's images have expired and could not "
                            "be renewed — run the job again")

    def _asset(self, asset_id: str, cancel: CancelToken | None, fresh: bool) -> dict[str, Any]:
        with self._lock:
            cached = None if fresh else self._assets.get(asset_id)
        if cached is not None:
            return cached
        answer = self._get(f"/assets/{asset_id}", cancel)
        asset = answer.get("asset", answer)
        if not isinstance(asset, dict):
            raise ProviderError("Scenario sent an image record in an unexpected shape",
                                retryable=True)
        with self._lock:
            self._assets[asset_id] = asset
        return asset

    # ---- cancel --------------------------------------------------------------------------------

    def cancel(self, remote_id: str) -> None:
        """`POST /jobs/{id}/action {"action": "cancel"}` (the body is [I], after the uploads'
        `{"action": "complete"}`), for the image job and any map jobs of this session. Best
        effort: a job already finished or gone is what we wanted anyway."""
        with self._lock:
            phase = self._phases.get(remote_id)
            jobs = [remote_id, *(phase.texture_jobs.values() if phase else ())]
        for job_id in jobs:
            try:
                self.client().post_json(
                    f"/jobs/{job_id}/action", {"action": "cancel"}, None, safe=True,
                    params=self._params(), context="task",
                    retry=RetryPolicy(retries=2, base=0.5, max_total=5.0))
            except HttpError as exc:
                if exc.status not in (400, 404, 409, 410):
                    raise


# --------------------------------------------------------------------------- helpers


def _job_id_of(answer: Any) -> str:
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


def _cost_of(answer: Any) -> float | None:
    """`creativeUnitsCost`, at the top level or one object down (its place is not documented)."""
    if not isinstance(answer, dict):
        return None
    for holder in (answer, *(v for v in answer.values() if isinstance(v, dict))):
        value = holder.get("creativeUnitsCost")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _asset_ids(job: dict[str, Any]) -> list[str]:
    meta = job.get("metadata")
    ids = meta.get("assetIds") if isinstance(meta, dict) else None
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, str) and i and "/" not in i]


def _asset_type(asset: dict[str, Any]) -> str:
    meta = asset.get("metadata")
    kind = meta.get("type") if isinstance(meta, dict) else None
    return str(kind or "").strip().lower()


def _failure_message(job: dict[str, Any]) -> str:
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


def _degraded_warning(images: list[str], phase: _Phase) -> str:
    which = [n for n, asset in enumerate(images) if asset in phase.degraded]
    reason = phase.degraded[images[which[0]]]
    if len(images) == 1:
        return f"No PBR maps ({reason}); the base color was kept"
    samples = ", ".join(str(n + 1) for n in which)
    return f"No PBR maps for sample {samples} ({reason}); the base color was kept"


def _progress(value: Any) -> float:
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


def _samples(opts: dict[str, Any]) -> int:
    return int(_clamp(opts.get("samples", 1) or 1, 1, MAX_SAMPLES, "number of samples"))


def _clamp(value: Any, lo: float, hi: float, name: str = "option") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProviderError(f"The Scenario {name} must be a number, not {str(value)[:40]!r}") \
            from None
    if math.isnan(number):
        number = lo
    out = max(lo, min(hi, number))
    return int(out) if out == int(out) else out


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else int(default)
    except (TypeError, ValueError):
        return int(default)


def _side(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, math.floor(value / 8 + 0.5) * 8))  # half up, not to even


def _guidance_range(model_type: str) -> tuple[float, float]:
    """[C seed]: Flux dev 0–10, Flux pro 2–5, SDXL and SD 1.5 0–20."""
    if model_type.startswith("flux"):
        return (2.0, 5.0) if "pro" in model_type else (0.0, 10.0)
    return (0.0, 20.0)


def _texture_settings(opts: dict[str, Any]) -> dict[str, Any]:
    given = opts.get("texture_settings")
    if not isinstance(given, dict):
        return {}
    out: dict[str, Any] = {}
    for key in ("polished", "angular", "raised", "shiny"):
        if given.get(key) is not None:
            out[key] = _clamp(given[key], 0, 1, f"texture setting {key}")
    if given.get("invert") is not None:
        out["invert"] = bool(given["invert"])
    return out


def _variant(role: str, n: int) -> str:
    return role if n == 0 else f"{role}{VARIANT_SEP}{n}"


def _split_variant(key: str) -> tuple[str, int]:
    role, sep, number = key.partition(VARIANT_SEP)
    return (role, int(number)) if sep and number.isdigit() else (key, 0)


def _fetch_order(key: str) -> tuple[int, int]:
    role, n = _split_variant(key)
    rank = _ROLE_ORDER.index(role) if role in _ROLE_ORDER else len(_ROLE_ORDER)
    return (n, rank)


def _what(role: str, n: int) -> str:
    name = f"{role.replace('_', ' ')} map"
    return name if n == 0 else f"{name} of sample {n + 1}"


def _dest(request: TextureRequest, role: str, n: int) -> str:
    stem = request.file_stem or request.job_id
    suffix = "" if n == 0 else f"_v{n}"
    return os.path.join(request.out_dir or ".", f"{stem}_{role}{suffix}.png")


def _to_roughness(got: Downloaded, dest: str) -> tuple[str, str]:
    """(role, path): roughness = 1 - smoothness, decoded and inverted here for PNGs. A JPEG or
    WEBP cannot be decoded without PIL: it stays "smoothness" for Blender to invert."""
    if got.kind != "PNG":
        return SMOOTHNESS, got.path
    try:
        pixels = imagefile.read_png(got.path)
    except (OSError, ValueError) as exc:
        log.info("Scenario smoothness map left for Blender to invert: %s", exc)
        return SMOOTHNESS, got.path
    top = np.iinfo(pixels.dtype).max
    inverted = pixels.copy()
    color = inverted if inverted.ndim == 2 else inverted[..., : 3 if pixels.shape[2] >= 3 else 1]
    color[...] = top - color  # alpha (if any) is kept as it is
    try:
        imagefile.write_png(dest, inverted)
    except OSError as exc:
        raise ProviderError(f"Could not save {os.path.basename(dest)}: "
                            f"{exc.strerror or exc}") from None
    try:
        os.unlink(got.path)
    except OSError:
        pass
    return ROUGHNESS, dest


def _sidecar(request: TextureRequest) -> str:
    if not request.out_dir:
        return ""
    stem = request.file_stem or request.job_id
    return os.path.join(request.out_dir, f".{stem}.scenario.json")


def _load_phase(path: str, remote_id: str) -> _Phase:
    if not path:
        return _Phase()
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return _Phase()
    except (OSError, ValueError) as exc:
        log.warning("Scenario: the map-job record %s is unreadable: %s", path, exc)
        return _Phase()
    entry = data.get(remote_id) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        return _Phase()
    return _Phase(texture_jobs=_str_dict(entry.get("texture_jobs")),
                  degraded=_str_dict(entry.get("degraded")))


def _str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _write_phase(path: str, remote_id: str, phase: _Phase) -> None:
    """Atomic and durable: this record is what stops a resumed job from paying twice."""
    data = {remote_id: {"texture_jobs": phase.texture_jobs, "degraded": phase.degraded}}
    write_atomic(path, json.dumps(data, sort_keys=True), durable=True, mode=None)
