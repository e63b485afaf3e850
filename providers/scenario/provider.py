"""Scenario: seamless texture images, and PBR maps for them.

Contract: docs/providers.md §2; what to send and how answers read lives in `contract.py`.

The configured model is read once per session (`GET /models/{id}`) to choose its route: a
trained model with the `txt2img_texture` capability goes through `/generate/txt2img-texture`;
a current texture model (`type` custom, such as PATINA) through `/generate/custom/{modelId}`;
any other model is refused before anything is paid.

`request.options` keys this provider reads (all optional):

* ``model_id``: overrides the configured model (Preferences / SCENARIO_MODEL_ID) for this job.
* ``samples`` (1): images to make (txt2img-texture); each extra one comes back as a variant
  (``f"{role}{VARIANT_SEP}{n}"`` for n >= 1) the artist can switch to.
* ``steps`` (numInferenceSteps, 1–150), ``guidance`` (clamped to the model type's range),
  ``negative_prompt_strength`` (0–10): sent only when given (txt2img-texture).
* ``width`` / ``height``: a non-square size instead of ``request.resolution``.
* ``texture_settings``: {"polished"|"angular"|"raised"|"shiny": 0..1, "invert": bool} for the
  PBR map maker; only given keys are sent.

A job is up to two paid steps: the image job (its id is the remote id) and, with PBR on, one
map job per image, started from `poll` once the images exist (`phase.py` keeps their ids across
a restart). A custom model that returns its own maps needs no map job. The image is paid for
before the maps are made, so a map step that cannot be done keeps the image as base color and
says why in ``job.extra["warning"]`` instead of failing the job.

`fetch` roles: ``base_color`` (the map maker's albedo, else the image), ``normal``,
``roughness`` (the smoothness map inverted here; a JPEG/WEBP one is returned as ``smoothness``
for Blender to invert), ``metallic``, ``height``; sample n >= 1 as ``f"{role}@{n}"``.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any, ClassVar

from ...net.http import (
    NO_RETRY,
    Downloaded,
    HttpError,
    LinkExpired,
    RetryPolicy,
    ServiceHooks,
    Sleeper,
    url_problem,
)
from ..base import (
    BASE_COLOR,
    ROUGHNESS,
    CancelRefused,
    CancelToken,
    ConnectionCheck,
    ProgressFn,
    ProviderConfig,
    ProviderError,
    RemoteState,
    RemoteStatus,
    TextureRequest,
    ramped_delay,
)
from ..cloud import CloudProvider
from . import contract as c
from .phase import MapStep, Phase, to_roughness

log = logging.getLogger(__name__)

_models: dict[tuple[str, str], c.Model] = {}  # (base URL, model id) -> what Scenario said
_model_gates: dict[tuple[str, str], threading.Lock] = {}
_memo_lock = threading.Lock()

CANCEL_REFUSED = ("Scenario could not stop this job (it cancels only image generations): it "
                  "continues at Scenario and may be charged; its result will be kept in the job "
                  "list, not applied")


class ScenarioProvider(MapStep, CloudProvider):
    id = "SCENARIO"
    label = "Scenario"
    description = "Scenario seamless textures with your Scenario key and secret"
    extras = (
        ("api_secret", "SCENARIO_API_SECRET"),
        ("model_id", "SCENARIO_MODEL_ID"),
        ("project_id", "SCENARIO_PROJECT_ID"),
        ("jobs_at_once", "SCENARIO_JOBS_AT_ONCE"),
    )
    default_base = c.DEFAULT_BASE
    offline = False
    mesh_format = ""  # 2D: nothing of the mesh leaves the machine
    seamless_2d = True
    resubmit_safe = False  # every job spends creative units
    # "Jobs at once" default: Scenario publishes no limits [?]; a 429 on a create makes the job
    # wait (and the limit adapt), so a modest start costs nothing.
    max_concurrency = 4
    poll_interval = 3.0  # the official SDK's job.wait() polls every 3 s
    max_map_bytes: ClassVar[int] = 256 * c.MB

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
        self._phases: dict[str, Phase] = {}  # remote id -> map-making state
        self._assets: dict[str, dict[str, Any]] = {}  # asset id -> last asset object read
        self._done_images: dict[str, dict[str, Any]] = {}  # remote id -> its succeeded job
        self._own_maps: dict[str, dict[str, str]] = {}  # remote id -> maps its model made

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
            return f"Scenario needs {listed}: {c.PREFS}, or {' / '.join(m[1] for m in missing)}"
        return url_problem(self.base_url, self.label, "base URL")

    def auth_headers(self) -> dict[str, str]:
        """HTTP Basic base64(key:secret), as Scenario's own clients send it."""
        token = f"{self.config.api_key.strip()}:{self._extra('api_secret')}"
        return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}

    def hooks(self) -> ServiceHooks:
        return c.ScenarioHooks()

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

    def check_request(self, request: TextureRequest) -> str:
        return c.check_options(request)

    def check_connection(self, cancel: CancelToken | None) -> ConnectionCheck:
        """The model: one read checks key, secret and model id, and tells the route [I S1]."""
        model = self.model(self.model_id(), cancel, fresh=True)  # a check asks every time
        if not model.route:
            return ConnectionCheck(False, c.not_a_texture_model(model))
        return ConnectionCheck(True, f"Scenario works: key, secret and model '{model.id}' are "
                                     f"accepted — {model.route_line()}")

    # ---- the model -----------------------------------------------------------------------------

    def model(self, model_id: str, cancel: CancelToken | None, fresh: bool = False) -> c.Model:
        """What Scenario says about a model, read once per model and session. A wrong key or
        model id stops the job before anything is paid; the route cannot be chosen without
        the model, so any other failure fails the submit (after the client's retries)."""
        if not model_id:
            raise ProviderError(self.check_ready() or "Scenario needs a model id")
        key = (self.base_url, model_id)
        with _memo_lock:
            if key in _models and not fresh:
                return _models[key]
            gate = _model_gates.setdefault(key, threading.Lock())
        with gate:  # jobs started together ask once, not once each
            with _memo_lock:
                if key in _models and not fresh:
                    return _models[key]
            try:
                answer = self._get(c.model_path(model_id), cancel, context="model")
            except HttpError as exc:
                if exc.status in (401, 403, 404, 410):
                    raise
                raise ProviderError(f"Scenario could not describe the model '{model_id}' "
                                    f"({exc.message}) — try again", retryable=True) from None
            model = c.model_of(answer, model_id)
            with _memo_lock:
                _models[key] = model
            return model

    def _texture_model(self, request: TextureRequest, cancel: CancelToken | None) -> c.Model:
        model = self.model(self.model_id(request), cancel)
        if not model.route:
            raise ProviderError(c.not_a_texture_model(model))
        return model

    def _create(self, request: TextureRequest, cancel: CancelToken | None,
                **params: str) -> Any:
        problem = c.check_options(request)
        if problem:
            raise ProviderError(problem)
        model = self._texture_model(request, cancel)
        if model.route == c.ROUTE_TXT2IMG:
            path, body = c.TXT2IMG, c.txt2img_body(request, model)
        else:
            path, body = c.custom_path(model.id), c.custom_body(request)
        dry = bool(params)
        return self.client().post_json(path, body, cancel, safe=dry,
                                       retry=NO_RETRY if dry else None,
                                       params=self._params(**params), context="create")

    # ---- submit --------------------------------------------------------------------------------

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        return c.job_id_of(self._create(request, cancel))

    def quote(self, request: TextureRequest,
              cancel: CancelToken | None = None) -> dict[str, Any] | None:
        """{"cost_credits": creative units of the image step, "available_credits": None} from
        `?dryRun=true` (which runs nothing and answers HTTP 269), or None when Scenario does not
        say. The map step cannot be priced before its image exists (said in "note")."""
        try:
            answer = self._create(request, cancel, dryRun="true")
        except ProviderError as exc:
            log.info("Scenario price not available: %s", exc.message)
            return None
        cost = c.cost_of(answer)
        if cost is None:
            return None
        price: dict[str, Any] = {"cost_credits": cost, "available_credits": None,
                                 "unit": "creative units"}
        if request.enable_pbr:
            price["note"] = "the PBR maps are priced by Scenario when they are made"
        return price

    # ---- poll ----------------------------------------------------------------------------------

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        with self._lock:
            done = self._done_images.get(remote_id)
        # Once the image job has succeeded, only the map jobs are asked about.
        job = done or self._job(remote_id, cancel)
        status = self._image_status(job, request)
        model = self._texture_model(request, cancel)
        note = c.size(request, model.type)[2] if model.route == c.ROUTE_TXT2IMG else ""
        if note:
            status.extra["note"] = f"Scenario: {note}"
            if not status.state.terminal:
                status.message = f"{status.message} — {note}"
        if status.state is not RemoteState.SUCCEEDED:
            return status
        outputs = c.asset_ids(job)
        if not outputs:
            raise ProviderError("Scenario finished but sent no image — run the job again")
        with self._lock:
            self._done_images[remote_id] = job
        images = outputs
        if model.route == c.ROUTE_CUSTOM:
            images, own = self._sort_outputs(remote_id, outputs, request, cancel)
            if own:
                return RemoteStatus(RemoteState.SUCCEEDED, 1.0, maps=own, extra=status.extra)
        if not request.enable_pbr:
            return RemoteStatus(RemoteState.SUCCEEDED, 1.0, maps={
                c.variant(BASE_COLOR, n): asset for n, asset in enumerate(images)},
                extra=status.extra)
        pbr = self._pbr_status(remote_id, images, request, cancel)
        pbr.extra = {**status.extra, **pbr.extra}
        if note and not pbr.state.terminal:
            pbr.message = f"{pbr.message} — {note}"
        return pbr

    def _sort_outputs(self, remote_id: str, outputs: list[str], request: TextureRequest,
                      cancel: CancelToken) -> tuple[list[str], dict[str, str]]:
        """A custom model's outputs by each asset's type [C S5]: (images, maps it made itself,
        as role -> asset id; empty when it made none). Its maps are used as they are [I]."""
        with self._lock:
            known = self._own_maps.get(remote_id)
        if known is not None:
            return [], known
        images: list[str] = []
        found: dict[str, str] = {}
        for asset_id in outputs:
            kind = c.asset_type(self._asset(asset_id, cancel, fresh=False))
            role = c.MAP_TYPES.get(kind)
            if role is not None:
                found.setdefault(role, asset_id)
            elif kind not in c.IGNORED_MAP_TYPES:
                images.append(asset_id)
        if not found:
            return images or outputs, {}
        base = found.get(BASE_COLOR) if request.enable_pbr else None
        maps = {BASE_COLOR: base or (images[0] if images else found[BASE_COLOR])}
        if request.enable_pbr:
            maps.update({role: a for role, a in found.items() if role != BASE_COLOR})
        with self._lock:
            self._own_maps[remote_id] = maps
        return images, maps

    def _job(self, job_id: str, cancel: CancelToken | None) -> dict[str, Any]:
        answer = self._get(f"/jobs/{job_id}", cancel, context="task")
        job = answer.get("job", answer)
        if not isinstance(job, dict):
            raise ProviderError("Scenario sent a job in an unexpected shape", retryable=True)
        return job

    def _image_status(self, job: dict[str, Any], request: TextureRequest) -> RemoteStatus:
        raw = str(job.get("status") or "").strip().lower()
        state = c.STATES.get(raw)
        if state is None:  # a status this version does not know: keep watching
            # A status this version cannot read: watched, and counted by the runner.
            log.warning("Scenario reported an unknown job status %r", raw[:40])
            state = RemoteState.UNKNOWN
        share = c.IMAGE_SHARE if request.enable_pbr else 1.0
        if state is RemoteState.SUCCEEDED:
            return RemoteStatus(state, share)
        if state is RemoteState.FAILED:
            return RemoteStatus(state, message=c.failure_message(job))
        if state is RemoteState.CANCELED:
            return RemoteStatus(state, message="The job was canceled at Scenario")
        message = c.MESSAGES.get(raw, "Scenario is generating the texture")
        return RemoteStatus(state, share * c.progress_of(job.get("progress")), message)

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
        wanted = sorted(links, key=c.fetch_order)
        if not any(c.split_variant(k)[0] == BASE_COLOR for k in wanted):
            raise ProviderError("Scenario finished but sent no texture image")
        out: dict[str, str] = {}
        for i, key in enumerate(wanted):
            role, n = c.split_variant(key)
            progress(i / len(wanted), f"Downloading {c.what(role, n)}")
            got = self._download(links[key], c.dest(request, role, n), c.what(role, n), cancel)
            if role == c.SMOOTHNESS:
                with self.heavy:
                    role, path = to_roughness(got, c.dest(request, ROUGHNESS, n))
            else:
                path = got.path
            out[c.variant(role, n)] = path
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
        """`POST /jobs/{id}/action {"action": "cancel"}` for the image job (until it is done)
        and the unfinished map jobs. Only inference jobs can be canceled [I S1]: a refusal of a
        job that is still running means it runs on and may be charged (`CancelRefused`: the
        runner keeps watching it and keeps its result, unapplied). Gone or finished is done."""
        with self._lock:
            phase = self._phases.get(remote_id)
            image_done = remote_id in self._done_images
            maps = [] if phase is None else [
                j for a, j in phase.texture_jobs.items()
                if a not in phase.finished and a not in phase.degraded]
        refused = []
        for job_id in ([] if image_done else [remote_id]) + maps:
            try:
                self.client().post_json(
                    f"/jobs/{job_id}/action", {"action": "cancel"}, None, safe=True,
                    params=self._params(), context="task",
                    retry=RetryPolicy(retries=2, base=0.5, max_total=5.0))
            except HttpError as exc:
                if exc.status in (404, 410):
                    continue
                if exc.status is None or exc.status >= 500:
                    raise
                if self._still_running(job_id):  # a refusal, not "already finished"
                    refused.append(job_id)
        if refused:
            raise CancelRefused(CANCEL_REFUSED)

    def _still_running(self, job_id: str) -> bool:
        try:
            job = self._job(job_id, None)
        except ProviderError:
            return True  # cannot tell: assume it runs on (the artist is told it may cost)
        state = c.STATES.get(str(job.get("status") or "").strip().lower())
        return state is None or not state.terminal
