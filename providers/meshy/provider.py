"""Meshy Retexture on API v2 (`POST /openapi/v2/retexture`, tasks at `/openapi/v2/tasks/{id}`).

Contract: docs/providers.md §1; what to send and how answers read lives in `contract.py`.

`request.options` keys this provider reads (all optional):

* ``model_url``: a public https URL of the mesh, sent instead of the exported GLB (a data URI).
* ``reference_image_path``: a PNG/JPEG file sent as ``texture_image_url`` (a data URI);
  ``reference_image_url``: the same as a public URL. With an image the prompt is not sent
  (v2 refuses both together).
* ``texture_model``: ``meshy-7`` (default), ``meshy-n1`` (base colour only), ``meshy-6-lite``.
* ``enable_original_uv`` (default True): texture the artist's UVs. When False, Meshy makes its
  own UVs (``uv_mode``) and `fetch` also returns role ``"uv_mesh"``: the textured GLB whose
  TEXCOORD_0 the maps belong to.

A configured base that answers the v2 create with `route_not_found` gets the v1 fallback of §1.6
(remote ids ``"v1:<id>"``), with a warning that v1 stops working on 2027-03-15.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...net.http import (
    NO_RETRY,
    PREFS_HINT,
    HttpError,
    LinkExpired,
    RetryPolicy,
    ServiceHooks,
    Sleeper,
    url_problem,
)
from ..base import (
    BASE_COLOR,
    UV_MESH,
    CancelRefused,
    CancelToken,
    ConnectionCheck,
    ProgressFn,
    ProviderConfig,
    ProviderError,
    RemoteStatus,
    TextureRequest,
    ramped_delay,
)
from ..cloud import CloudProvider
from . import contract as c

log = logging.getLogger(__name__)

# Meshy allows 20 requests a second per account (Pro) [C M5]; all of this Blender's status reads
# together stay at half that, so creates, downloads and the artist's other tools fit beside them.
MAX_READS_PER_S = 10.0
MB = 1 << 20


@dataclass
class _BaseFacts:
    """What one base URL taught this session (a provider instance is made per job)."""

    v1_only: bool = False  # it answered the v2 create with route_not_found
    refused: set[str] = field(default_factory=set)  # optional fields it refused


_facts: dict[str, _BaseFacts] = {}
_facts_lock = threading.Lock()
_warned: set[str] = set()


def _facts_of(base: str) -> _BaseFacts:
    with _facts_lock:
        return _facts.setdefault(base, _BaseFacts())


class MeshyProvider(CloudProvider):
    id = "MESHY"
    label = "Meshy"
    description = "Meshy Retexture (API v2) with your Meshy API key"
    extras = (("jobs_at_once", "MESHY_JOBS_AT_ONCE"),)
    offline = False
    mesh_format = "GLB"
    default_base = c.DEFAULT_BASE
    resubmit_safe = False  # every task costs credits
    # "Jobs at once" default: Meshy Pro allows 10 unfinished tasks per account [C M5]. A full
    # queue (pending_task_limit_reached) makes the job wait for a slot, never fail.
    max_concurrency = 10
    poll_interval = 3.0
    # A data URI may be 100 MB [C M2]; base64 grows by 4/3, so the GLB may be 75 MB. With
    # positions, normals, UVs and indices a triangle costs ~40-60 bytes: 1.5 M triangles.
    max_triangles: ClassVar[int] = 1_500_000
    max_data_uri_bytes: ClassVar[int] = 100 * MB
    max_reference_bytes: ClassVar[int] = 20 * MB
    max_map_bytes: ClassVar[int] = 512 * MB  # an 8k RGBA PNG stays well below
    max_glb_bytes: ClassVar[int] = 1024 * MB

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        poll_interval: float | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleeper | None = None,
    ) -> None:
        super().__init__(config, poll_interval=poll_interval, retry=retry, sleep=sleep)
        self._balance_seen: set[str] = set()
        self._notes: dict[str, str] = {}  # remote id -> what the job should say it changed
        self._meshy_uvs: dict[str, bool] = {}  # remote id -> Meshy made new UVs

    def poll_delay(self, elapsed: float) -> float:
        # 1 s while young, then 2 s, then 3 s (`ramped_delay`), but never more status reads
        # than MAX_READS_PER_S for all jobs together: with 100 jobs at once (Ultra), one read a
        # job every 10 s. Scaled with `poll_interval`, which tests shorten.
        spread = self.max_concurrency / MAX_READS_PER_S * (
            self.poll_interval / type(self).poll_interval)
        return max(ramped_delay(elapsed, self.poll_interval), spread)

    # ---- set-up --------------------------------------------------------------------------------

    def check_ready(self) -> str:
        if not self.config.api_key.strip():
            return f"Meshy needs an API key: {PREFS_HINT} > Meshy, or MESHY_API_KEY"
        return url_problem(self.base_url, self.label, "base URL")

    def check_request(self, request: TextureRequest) -> str:
        try:
            c.texture_model(request.options or {})
        except ProviderError as exc:
            return exc.message
        return c.prompt_problem(request.prompt)

    def hooks(self) -> ServiceHooks:
        return c.MeshyHooks()

    def check_connection(self, cancel: CancelToken | None) -> ConnectionCheck:
        """The balance: free, and it proves the key [C M6]. A base without v2 is tried on v1."""
        client = self.client()
        quick = RetryPolicy(retries=1, base=0.5, max_total=5.0)
        try:
            answer = client.get_json(c.V2_BALANCE, cancel, retry=quick)
            api = "API v2"
        except HttpError as exc:
            if not c.is_no_route(exc):
                raise
            answer = client.get_json(c.V1_BALANCE, cancel, retry=quick)
            return ConnectionCheck(True, (
                f"Meshy works, but this address only speaks API v1, which stops working on "
                f"{c.V1_SUNSET} — use https://api.meshy.ai (clear the base URL in {PREFS_HINT})"))
        balance = c.balance_of(answer)
        credits = f", {balance:,.0f} credits left" if balance is not None else ""
        return ConnectionCheck(True, f"Meshy works: the key is accepted ({api}){credits}")

    # ---- submit --------------------------------------------------------------------------------

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        opts = request.options or {}
        prompt = request.prompt.strip()
        problem = c.prompt_problem(prompt)
        if problem:
            raise ProviderError(problem)
        c.texture_model(opts)
        if request.negative_prompt.strip() and "negative" not in _warned:
            _warned.add("negative")
            log.info("Meshy Retexture takes no negative prompt; it is not sent")
        url = str(opts.get("model_url") or "").strip()
        mesh = c.public_https(url, "mesh URL") if url else ""
        packed = "" if mesh else c.glb_base64(request.mesh_path, self.max_data_uri_bytes)
        style = self._style_image(opts)
        if not prompt and not style:
            raise ProviderError("Meshy needs a prompt or a reference image")
        facts = _facts_of(self.base_url)
        if not facts.v1_only:
            try:
                return self._create_v2(request, mesh or f"data:model/gltf-binary;base64,{packed}",
                                       style, facts, cancel)
            except HttpError as exc:
                if not c.is_no_route(exc):
                    raise
                facts.v1_only = True
        return self._create_v1(request, mesh or f"data:application/octet-stream;base64,{packed}",
                               style, cancel)

    def _style_image(self, opts: dict[str, Any]) -> str:
        url = str(opts.get("reference_image_url") or "").strip()
        if url:
            return c.public_https(url, "reference image URL")
        path = str(opts.get("reference_image_path") or "").strip()
        return c.image_data_uri(path, self.max_reference_bytes) if path else ""

    def _create_v2(self, request: TextureRequest, model_url: str, style: str,
                   facts: _BaseFacts, cancel: CancelToken) -> str:
        """Send the create; an optional field the service refuses is dropped and the create
        sent again (a 400 creates nothing, so nothing is paid twice), once per field."""
        opts = request.options or {}
        dropped: list[str] = []
        earlier = set(facts.refused)
        while True:
            body = c.v2_body(model_url, request.prompt.strip(), style, opts, request.enable_pbr,
                             request.resolution, earlier | set(dropped))
            try:
                answer = self.client().post_json(c.V2_CREATE, body, cancel, safe=False)
                break
            except HttpError as exc:
                name = c.refused_field(exc, body)
                if not name:
                    raise
                dropped.append(name)
                with _facts_lock:
                    facts.refused.add(name)
                self._note(f"Meshy refused `{name}`; sent without it")
        task_id = c.task_id_of(answer)
        skipped = sorted(n for n in earlier if n in _wanted_fields(opts))
        notes = [f"Meshy refused `{n}`; sent without it" for n in dropped]
        notes += [f"sent without `{n}` (Meshy refused it earlier)" for n in skipped]
        if notes:
            self._notes[task_id] = "; ".join(notes)
        uv_sent = c.wants_meshy_uvs(opts) and "uv_mode" not in earlier | set(dropped)
        self._meshy_uvs[task_id] = uv_sent
        return task_id

    def _create_v1(self, request: TextureRequest, model_url: str, style: str,
                   cancel: CancelToken) -> str:
        """The §1.6 fallback for a base without v2; said once per session and on the job."""
        warning = (f"This Meshy address only speaks API v1, which stops working on "
                   f"{c.V1_SUNSET} — use https://api.meshy.ai (clear the Meshy base URL in "
                   f"{PREFS_HINT})")
        if self.base_url not in _warned:
            _warned.add(self.base_url)
            log.warning(warning)
        self._note(warning)
        body = c.v1_body(model_url, request.prompt.strip(), style, request.options or {},
                         request.enable_pbr, request.resolution)
        try:
            answer = self.client().post_json(c.V1_CREATE, body, cancel, safe=False)
        except HttpError as exc:
            if c.is_no_route(exc):
                raise ProviderError(
                    "Meshy has no texturing endpoint at this address (route not found) — "
                    f"check the Meshy base URL in {PREFS_HINT}") from None
            raise
        remote_id = c.V1_PREFIX + c.task_id_of(answer)
        self._notes[remote_id] = warning
        self._meshy_uvs[remote_id] = c.wants_meshy_uvs(request.options or {})
        return remote_id

    def _note(self, text: str) -> None:
        log.info("%s", text)
        if self.exchanges is not None:
            self.exchanges.note(text)

    # ---- poll ----------------------------------------------------------------------------------

    def restore(self, remote_id: str, extra: dict[str, Any]) -> None:
        """A resumed job: what its earlier polls said about notes and who made the UVs."""
        if isinstance(extra.get("meshy_uvs"), bool):
            self._meshy_uvs.setdefault(remote_id, extra["meshy_uvs"])
        note = extra.get("warning") or extra.get("note")
        if isinstance(note, str) and note:
            self._notes.setdefault(remote_id, note)

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        task = self._task(remote_id, cancel)
        status = c.status_of(task)
        note = self._notes.get(remote_id, "")
        if note:
            status.extra["warning" if remote_id.startswith(c.V1_PREFIX) else "note"] = note
        if remote_id in self._meshy_uvs:
            status.extra["meshy_uvs"] = self._meshy_uvs[remote_id]
        balance = self._balance_once(remote_id, cancel)
        if balance is not None:
            status.extra["balance"] = balance
        return status

    def _task_path(self, remote_id: str) -> str:
        if remote_id.startswith(c.V1_PREFIX):
            return f"{c.V1_CREATE}/{remote_id[len(c.V1_PREFIX):]}"
        return f"{c.V2_TASKS}/{remote_id}"

    def _task(self, remote_id: str, cancel: CancelToken | None) -> dict[str, Any]:
        task = self.client().get_json(self._task_path(remote_id), cancel, context="task")
        if not isinstance(task, dict):
            raise ProviderError("Meshy sent a task in an unexpected shape", retryable=True)
        return task

    def _balance_once(self, remote_id: str, cancel: CancelToken) -> float | None:
        """The account balance, asked once per job; any failure just means "not shown"."""
        if remote_id in self._balance_seen:
            return None
        self._balance_seen.add(remote_id)
        path = c.V1_BALANCE if remote_id.startswith(c.V1_PREFIX) else c.V2_BALANCE
        try:
            answer = self.client().get_json(path, cancel, retry=NO_RETRY)
        except ProviderError as exc:
            log.info("Meshy balance not available: %s", exc.message)
            return None
        return c.balance_of(answer)

    # ---- fetch ---------------------------------------------------------------------------------

    def fetch(
        self,
        remote_id: str,
        status: RemoteStatus,
        request: TextureRequest,
        cancel: CancelToken,
        progress: ProgressFn,
    ) -> dict[str, str]:
        """Download the maps (and, when Meshy made the UVs, its GLB) into `request.out_dir`.

        Result links are signed and expire. The runner does not poll again once it is
        downloading, so on an expired link this asks Meshy for the task once more (which signs
        fresh links) and retries; only if that also fails does the job fail.
        """
        links = dict(status.maps) or c.result_links(self._task(remote_id, cancel))
        wanted = self._wanted(links, request, remote_id)
        out: dict[str, str] = {}
        renewed = False
        for i, role in enumerate(wanted):
            progress(i / len(wanted), f"Downloading {c.what(role)}")
            while role not in out:
                try:
                    out[role] = self._download(role, links.get(role, ""), request, cancel)
                except LinkExpired:
                    if renewed:
                        raise ProviderError(
                            "Meshy's result links for this job have expired and could not be "
                            "renewed — run the job again") from None
                    renewed = True
                    links = c.result_links(self._task(remote_id, cancel))
        progress(1.0, "Maps downloaded")
        return out

    def _wanted(self, links: dict[str, str], request: TextureRequest,
                remote_id: str) -> list[str]:
        if BASE_COLOR not in links:
            raise ProviderError("Meshy finished but sent no base color map")
        roles = [BASE_COLOR] + [r for r in c.PBR_ROLES if request.enable_pbr and r in links]
        meshy_uvs = self._meshy_uvs.get(remote_id, c.wants_meshy_uvs(request.options or {}))
        if meshy_uvs:
            if UV_MESH not in links:
                raise ProviderError(
                    "Meshy made new UVs but sent no GLB to take them from — turn 'Keep "
                    "original UVs' on, or run the job again")
            roles.append(UV_MESH)
        return roles

    def _download(self, role: str, url: str, request: TextureRequest,
                  cancel: CancelToken) -> str:
        if not url:
            raise ProviderError(f"Meshy no longer offers the {c.what(role)} for this job")
        stem = request.file_stem or request.job_id
        folder = request.out_dir or "."
        if role == UV_MESH:
            dest = os.path.join(folder, f"{stem}_meshy.glb")
            got = self.client().download(url, dest, self.max_glb_bytes, cancel, expect="glb",
                                         what="textured model")
        else:
            dest = os.path.join(folder, f"{stem}_{role}.png")
            got = self.client().download(url, dest, self.max_map_bytes, cancel, expect="image",
                                         what=c.what(role))
        return got.path

    # ---- price (kept self-contained: a published table, no request) -----------------------------
    # Credits per Retexture task by texture model and resolution: 10 for meshy-7 [docs
    # providers.md §1.2; C], 15 at 8k [I]. Models not listed have no published price: None.
    CREDITS: ClassVar[dict[str, dict[str, int]]] = {"meshy-7": {"2k": 10, "4k": 10, "8k": 15}}

    def price_per_task(self, request: TextureRequest) -> dict | None:
        opts = request.options or {}
        model = str(opts.get("texture_model") or opts.get("ai_model") or c.DEFAULT_TEXTURE_MODEL)
        size = c.texture_resolution(request.resolution)
        credits = self.CREDITS.get(model, {}).get(size)
        return None if credits is None else {"cost_credits": credits, "unit": "credits",
                                             "note": f"Meshy's price for {model} at {size}"}

    # ---- cancel --------------------------------------------------------------------------------

    def cancel(self, remote_id: str) -> None:
        """DELETE is Meshy's only way to stop a task [C M1]. A waiting task is deleted (and
        refunded); a running one is refused [I M10]: it runs on and may be charged, so the
        runner keeps watching it and keeps its result, unapplied. Gone (404/410) is done."""
        try:
            self.client().delete(self._task_path(remote_id), None, context="task",
                                 retry=RetryPolicy(retries=2, base=0.5, max_total=5.0))
        except HttpError as exc:
            if exc.status in (404, 410):
                return
            if exc.status is not None and 400 <= exc.status < 500:
                raise CancelRefused(
                    "Meshy could not stop the running task: it continues at Meshy and may be "
                    "charged; its result will be kept in the job list, not applied") from None
            raise


def _wanted_fields(opts: dict[str, Any]) -> set[str]:
    """The optional fields this job would send if none had been refused before."""
    names = set(c.OPTIONAL_FIELDS)
    if not c.wants_meshy_uvs(opts):
        names.discard("uv_mode")
    if c.texture_model(opts) in c.BASE_COLOR_ONLY_MODELS:
        names -= {"texture_resolution", "enable_pbr"}
    return names
