"""Triverse: `/tasks/text-to-texture` and the image-guided `/tasks/texture-model`.

Contract: docs/providers.md §3. Where they disagree or are silent,
the choices a careful client of the paid service needs are made here and explained in place.

Flow. The exported GLB is uploaded (`POST /upload/model?modelVariant=geometry`, multipart field
`file`) for a `file_key`. Text mode needs a *public* `model_url`, so the key is turned into a
presigned download link (`POST /upload/presigned-get-url`); image-guided mode uploads the
reference image too (`POST /upload/image`) and sends both keys. The task is watched with
`GET /tasks/{uuid}`; its result is one textured GLB (`/tasks/url/{uuid}`, else
`/tasks/download/{uuid}`) whose material images are copied out by `glb_maps`.

`request.options` keys this provider reads (all optional):

* ``model_url``: a public https URL of the mesh, used instead of uploading `request.mesh_path`.
* ``reference_image_path``: a PNG/JPEG/WebP file: switches to image-guided texturing (the prompt
  is then not used: `/tasks/texture-model` takes no text). ``reference_image_url``: the same as a
  public https URL.
* ``polygon_limit``: 1,000–1,500,000; not sent unless given (the service then keeps its default).
* ``model_version``: sent only when given (the service defaults to "v2").

`fetch` returns roles ``base_color``, ``metallic_roughness`` (glTF's packed image: G = roughness,
B = metallic, for a Separate Color node), ``normal`` when present, and ``result_mesh``: the
downloaded GLB itself, whose geometry and UVs the maps belong to (Triverse may remesh).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ...formats import glb_maps, imagefile
from ...net.http import (
    NO_RETRY,
    PREFS_HINT,
    HttpError,
    RetryPolicy,
    ServiceHooks,
    Sleeper,
    default_sleep,
    url_problem,
)
from ..base import (
    BASE_COLOR,
    METALLIC_ROUGHNESS,
    NORMAL,
    RESULT_MESH,
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
from . import results, uploads
from .contract import (
    DEFAULT_BASE,
    FLOW_IMAGE,
    FLOW_TEXT,
    MB,
    READ_AFTER_WRITE_GRACE_S,
    TriverseHooks,
    client_order_id,
    envelope_code,
    first_number,
    first_str,
    polygon_limit,
    public_https,
    read_after_write,
    status_of,
    texture_size,
    unwrap,
)

log = logging.getLogger(__name__)

class TriverseProvider(CloudProvider):
    id = "TRIVERSE"
    label = "Triverse"
    description = "Triverse texturing with your Triverse API key"
    offline = False
    mesh_format = "GLB"
    default_base = DEFAULT_BASE
    # Every task costs credits. Creates carry a client_order_id derived from the job id, so a
    # create whose answer was lost is retried (by http.py, as an idempotent call) and Triverse
    # hands back the same task instead of charging twice. Submitting again after Blender stopped
    # mid-submit would be just as safe *if* the text endpoint honours client_order_id, which is
    # only inferred from its sibling endpoint [docs/providers.md §3.2]: so not marked safe.
    resubmit_safe = False
    extras = (("jobs_at_once", "TRIVERSE_JOBS_AT_ONCE"),)
    # "Jobs at once" default. Triverse's queue size is not documented [?]; every job uploads its
    # mesh and uploads are limited to 10 a minute [C T3], so more would only wait for uploads.
    # A full queue (2000 on a create) makes the job wait for a place, never fail.
    max_concurrency = 10
    poll_interval = 3.0
    upload_limit: ClassVar[int] = 10  # uploads per window, images and models together [C]
    upload_window: ClassVar[float] = 60.0
    max_model_bytes: ClassVar[int] = 200 * MB  # /upload/model cap [C]
    max_image_bytes: ClassVar[int] = 50 * MB  # /upload/image cap [C]
    max_glb_bytes: ClassVar[int] = 1024 * MB  # the textured result: 3 × 4k PNGs and a mesh
    max_map_bytes: ClassVar[int] = 512 * MB

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        poll_interval: float | None = None,
        retry: RetryPolicy | None = None,
        upload_retry: RetryPolicy | None = None,
        rate_limit_wait: float = 10.0,
        sleep: Sleeper | None = None,
    ) -> None:
        super().__init__(config, poll_interval=poll_interval, retry=retry, sleep=sleep)
        # A code 2000 waits `rate_limit_wait` per try; 6 tries outlast the one-minute window.
        self._upload_retry = upload_retry or RetryPolicy(retries=6, base=2.0, cap=30.0,
                                                         max_total=150.0)
        self._rate_limit_wait = rate_limit_wait
        self._balance_seen: set[str] = set()
        self._cost: dict[str, Any] = {}  # remote id -> credits the create answer quoted
        # remote id -> (epoch until which a 404 means "not visible yet", header name or "")
        self._visible_after: dict[str, tuple[float, str]] = {}
        self._notes: dict[str, str] = {}  # remote id -> what the job should say it changed
        self._reused_upload = False  # the job being sent reuses an earlier upload's file_key

    def poll_delay(self, elapsed: float) -> float:
        # 1 s while young, then 2 s, then 3 s (`ramped_delay`). Triverse publishes no limit on
        # status reads (only on uploads: 10 a minute); one GET a second per job, at most 4 jobs.
        return ramped_delay(elapsed, self.poll_interval)

    # ---- set-up --------------------------------------------------------------------------------

    def check_ready(self) -> str:
        if not self.config.api_key.strip():
            return f"Triverse needs an API key: {PREFS_HINT} > Triverse, or TRIVERSE_API_KEY"
        return url_problem(self.base_url, self.label, "base URL")

    def hooks(self) -> ServiceHooks:
        return TriverseHooks(self._rate_limit_wait)

    # ---- submit --------------------------------------------------------------------------------

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        opts = request.options or {}
        common = self._common_params(request)
        image_mode = bool(str(opts.get("reference_image_path") or "").strip()
                          or str(opts.get("reference_image_url") or "").strip())
        if not image_mode and not request.prompt.strip():
            raise ProviderError("Triverse needs a prompt (or a reference image)")
        if request.negative_prompt.strip():
            log.info("Triverse takes no negative prompt; it is not sent")
        if image_mode and request.prompt.strip():
            log.info("Triverse's image-guided texturing takes no text; the prompt is unused")
        self.client()  # a missing key fails here, before anything is read or sent
        for fresh in (False, True):
            self._reused_upload = False
            try:
                return self._send(request, dict(common), image_mode, fresh, cancel)
            except HttpError as exc:
                # A remembered upload Triverse no longer has (1005): upload again, once.
                if fresh or not self._reused_upload or envelope_code(exc.body) != 1005:
                    raise
                log.info("Triverse forgot an earlier upload (%s); uploading again",
                         exc.provider_message)
        raise AssertionError("unreachable")

    def _send(self, request: TextureRequest, body: dict[str, Any], image_mode: bool,
              fresh: bool, cancel: CancelToken) -> str:
        opts = request.options or {}
        if image_mode:
            body["image_file"] = self._reference_image(opts, cancel, fresh)
            body["model_file"] = self._model_for_image_mode(request, cancel, fresh)
            path = "/tasks/texture-model"
        else:
            body["text_prompt"] = request.prompt.strip()
            body["model_url"] = self._public_model_url(request, cancel, fresh)
            path = "/tasks/text-to-texture"
        cancel.check()
        return self._create(path, body, client_order_id(request.job_id), cancel)

    def _common_params(self, request: TextureRequest) -> dict[str, Any]:
        opts = request.options or {}
        body: dict[str, Any] = {"texture_size": texture_size(request.resolution)}
        limit = polygon_limit(opts.get("polygon_limit"))
        if limit is not None:
            body["polygon_limit"] = limit
        if str(opts.get("model_version") or "").strip():
            body["model_version"] = str(opts["model_version"]).strip()
        return body

    def _create(self, path: str, body: dict[str, Any], order_id: str,
                cancel: CancelToken) -> str:
        """Create the task, idempotently: the same client_order_id gives back the same task.

        `client_order_id` is documented on the sibling endpoints only [?]: on a 1004 (invalid
        parameters; it also means "file too large" or "URL not reachable") the create is sent
        once more without it and without automatic retries; a second 1004 fails the job."""
        keyed = {**body, "client_order_id": order_id}
        note = ""
        try:
            answer = self.client().post_json(path, keyed, cancel, idempotency_key=order_id,
                                             context="create")
        except HttpError as exc:
            if envelope_code(exc.body) != 1004:
                raise
            note = "Triverse refused the request with client_order_id; sent without it"
            log.warning("%s (%s)", note, path)
            if self.exchanges is not None:
                self.exchanges.note(note)
            answer = self.client().post_json(path, body, cancel, safe=False, context="create")
        received = time.time()
        data = unwrap(answer)
        task_id = first_str(data, "task_uuid", "taskUuid", "task_id", "taskId", "uuid", "id")
        if not task_id or "/" in task_id:
            raise ProviderError(
                "Triverse accepted the job but sent no task id; it may have been created — "
                "check your Triverse account before retrying")
        cost = first_number(data, "cost_credits", "costCredits")
        if cost is not None:
            self._cost[task_id] = cost
        if note:
            self._notes[task_id] = note
        self._visible_after[task_id] = read_after_write(data, received)
        return task_id

    # ---- what the mesh and image become --------------------------------------------------------

    def _public_model_url(self, request: TextureRequest, cancel: CancelToken,
                          fresh: bool) -> str:
        """Text mode: Triverse's servers download the mesh themselves, from a public URL."""
        given = str((request.options or {}).get("model_url") or "").strip()
        if given:
            return public_https(given, "mesh URL")
        file_key = self._upload_mesh(request, cancel, fresh)
        return self._presigned_url(file_key, cancel)

    def _model_for_image_mode(self, request: TextureRequest, cancel: CancelToken,
                              fresh: bool) -> str:
        given = str((request.options or {}).get("model_url") or "").strip()
        if given:
            return public_https(given, "mesh URL")
        return self._upload_mesh(request, cancel, fresh)

    def _reference_image(self, opts: Mapping[str, Any], cancel: CancelToken,
                         fresh: bool) -> str:
        url = str(opts.get("reference_image_url") or "").strip()
        if url:
            return public_https(url, "reference image URL")
        path = str(opts.get("reference_image_path") or "").strip()
        if not os.path.isfile(path):
            raise ProviderError(f"The reference image {os.path.basename(path)} does not exist")
        size = os.path.getsize(path)
        if size > self.max_image_bytes:
            raise ProviderError(f"The reference image is {size / MB:.0f} MB; Triverse takes "
                                f"images up to {self.max_image_bytes // MB} MB")
        info = imagefile.image_info(path)
        if info is None:
            raise ProviderError("Triverse takes a PNG, JPEG or WebP reference image")
        kind = info[0]
        ext = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}[kind]
        with open(path, "rb") as fh:
            data = fh.read()
        return self._upload("/upload/image", None, data, f"reference{ext}",
                            f"image/{kind.lower()}", "reference image", cancel, fresh)

    def _upload_mesh(self, request: TextureRequest, cancel: CancelToken, fresh: bool) -> str:
        path = request.mesh_path
        if not path or not os.path.isfile(path):
            raise ProviderError("The exported mesh is missing; run the job again")
        size = os.path.getsize(path)
        if size > self.max_model_bytes:
            raise ProviderError(
                f"The mesh is {size / MB:.0f} MB; Triverse takes uploads up to "
                f"{self.max_model_bytes // MB} MB — simplify it, or give a public mesh URL")
        with open(path, "rb") as fh:
            data = fh.read()
        if data[:4] != b"glTF":
            raise ProviderError("Triverse needs the mesh as GLB, and the exported file is not one")
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", request.file_stem or "mesh")[:60] or "mesh"
        return self._upload("/upload/model", {"modelVariant": "geometry"}, data, f"{name}.glb",
                            "model/gltf-binary", "mesh", cancel, fresh)

    def _upload(self, path: str, params: dict[str, str] | None, data: bytes, filename: str,
                content_type: str, what: str, cancel: CancelToken, fresh: bool = False) -> str:
        """One multipart upload → file_key. Safe to resend: an extra upload costs nothing.

        The same bytes are uploaded once per account for a while (a batch shares one reference
        image): with 10 uploads a minute, that halves an image-guided batch's uploads.
        """
        account = hashlib.sha256(self.config.api_key.strip().encode("utf-8")).hexdigest()[:16]
        slot = (self.base_url, account, path, hashlib.sha256(data).hexdigest())
        with uploads.UPLOADED.single_flight(slot, cancel):  # a batch waits for one upload
            known = "" if fresh else uploads.UPLOADED.get(slot)
            if known:
                self._reused_upload = True
                return known
            client = self.client()
            with uploads.UPLOAD_GATE.turn(self.base_url, self.upload_limit, self.upload_window,
                                          cancel, self._sleep or default_sleep):
                resp = client.request(
                    "POST", path, params=params, files={"file": (filename, data, content_type)},
                    cancel=cancel, safe=True, retry=self._upload_retry,
                )
            key = first_str(unwrap(client.json_of(resp)), "file_key", "fileKey", "key")
            if not key:
                raise ProviderError(f"Triverse took the {what} upload but sent no file key")
            uploads.UPLOADED.put(slot, key)
            return key

    def _presigned_url(self, file_key: str, cancel: CancelToken) -> str:
        """A public link to our upload. Field names are inferred from a third-party spec
        (`download_url`, or `url`): both are read, plus a few likely spellings."""
        answer = self.client().post_json("/upload/presigned-get-url", {"file_key": file_key},
                                         cancel, safe=True)
        data = unwrap(answer)
        url = first_str(data, "download_url", "url", "downloadUrl", "presigned_url",
                         "signed_url")
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise ProviderError("Triverse sent no public link for the uploaded mesh — try "
                                "again, or give a public mesh URL")
        return url

    # ---- pricing -------------------------------------------------------------------------------

    def quote(self, request: TextureRequest,
              cancel: CancelToken | None = None) -> dict[str, Any] | None:
        """What this job would cost, before submitting (read-only; call on a worker thread).

        Returns {"flow_name", "cost_credits", "available_credits" (None if not given)}, or None
        whenever Triverse cannot say (no key, no such endpoint, unknown flow, offline).
        """
        opts = request.options or {}
        image_mode = bool(opts.get("reference_image_path") or opts.get("reference_image_url"))
        flow = FLOW_IMAGE if image_mode else FLOW_TEXT
        try:
            params = self._common_params(request)
            answer = self.client().post_json(
                "/tasks/pricing/quote", {"flow_name": flow, "params": params}, cancel,
                safe=True, retry=RetryPolicy(retries=1, base=0.5, max_total=5.0))
            data = unwrap(answer)
        except ProviderError as exc:
            log.info("Triverse price quote not available: %s", exc.message)
            return None
        cost = first_number(data, "cost_credits", "costCredits", "cost")
        if cost is None:
            return None
        return {"flow_name": flow, "cost_credits": cost,
                "available_credits": first_number(data, "available_credits",
                                                   "availableCredits")}

    def check_connection(self, cancel: CancelToken | None) -> ConnectionCheck:
        """A price quote: read-only and free [C T8]; it proves the key and says the price."""
        answer = self.client().post_json(
            "/tasks/pricing/quote", {"flow_name": FLOW_TEXT, "params": {"texture_size": 1024}},
            cancel, safe=True, retry=RetryPolicy(retries=1, base=0.5, max_total=5.0))
        data = unwrap(answer)
        cost = first_number(data, "cost_credits", "costCredits", "cost")
        left = first_number(data, "available_credits", "availableCredits")
        line = "Triverse works: the key is accepted"
        if cost is not None:
            line += f"; a 1024 px text texture costs {cost:g} credits"
            if left is not None:
                line += f" ({left:,.0f} available)"
        return ConnectionCheck(True, line)

    # ---- poll ----------------------------------------------------------------------------------

    def restore(self, remote_id: str, extra: dict[str, Any]) -> None:
        """A resumed job: its read-after-write window and notes, from its journaled facts."""
        until = extra.get("read_after_write_until")
        if isinstance(until, (int, float)) and not isinstance(until, bool):
            header = extra.get("read_after_write_header")
            self._visible_after.setdefault(remote_id, (float(until), str(header or "")))
        if isinstance(extra.get("note"), str) and extra["note"]:
            self._notes.setdefault(remote_id, extra["note"])

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        # A job resumed before its window was journaled gets the grace from its first poll.
        until, header = self._visible_after.setdefault(
            remote_id, (time.time() + READ_AFTER_WRITE_GRACE_S, ""))
        young = time.time() < until
        headers = {header: remote_id} if young and header else None
        try:
            answer = self.client().get_json(f"/tasks/{remote_id}", cancel, context="task",
                                            headers=headers)
        except HttpError as exc:
            not_found = exc.status == 404 or envelope_code(exc.body) == 1006
            if not (young and not_found):
                raise
            # Just created and not readable yet [C T1]: not "gone", and nothing to fail.
            if self.exchanges is not None:
                self.exchanges.note("task not visible yet (read-after-write window)")
            return RemoteStatus(RemoteState.QUEUED, 0.0, "Triverse is registering the job",
                                extra=self._facts(remote_id))
        status = status_of(unwrap(answer))
        status.extra.update(self._facts(remote_id))
        cost = self._cost.get(remote_id)
        if cost is not None:
            status.extra.setdefault("cost_credits", cost)
        balance = self._balance_once(remote_id, cancel)
        if balance is not None:
            status.extra["balance"] = balance
        return status

    def _facts(self, remote_id: str) -> dict[str, Any]:
        """What a resumed job needs (the read-after-write window) and what it should say."""
        facts: dict[str, Any] = {}
        until, header = self._visible_after.get(remote_id, (0.0, ""))
        if until:
            facts["read_after_write_until"] = until
            if header:
                facts["read_after_write_header"] = header
        if self._notes.get(remote_id):
            facts["note"] = self._notes[remote_id]
        return facts

    def _balance_once(self, remote_id: str, cancel: CancelToken) -> float | None:
        """`GET /users/balance` exists only per a third-party spec: asked once per job, and
        any failure (a 404 included) just means the balance is not shown."""
        if remote_id in self._balance_seen:
            return None
        self._balance_seen.add(remote_id)
        try:
            answer = self.client().get_json("/users/balance", cancel, retry=NO_RETRY)
        except ProviderError as exc:
            log.info("Triverse balance not available: %s", exc.message)
            return None
        return first_number(unwrap(answer), "balance", "available_credits", "availableCredits",
                             "credits")

    # ---- fetch ---------------------------------------------------------------------------------

    def fetch(
        self,
        remote_id: str,
        status: RemoteStatus,
        request: TextureRequest,
        cancel: CancelToken,
        progress: ProgressFn,
    ) -> dict[str, str]:
        """Download the textured GLB, then copy its maps out of it (no pixel is decoded)."""
        folder = request.out_dir or "."
        stem = request.file_stem or request.job_id
        progress(0.0, "Downloading the textured model")
        glb = results.download_result(self.client(), remote_id,
                                      os.path.join(folder, f"{stem}_triverse.glb"),
                                      self.max_glb_bytes, cancel)
        progress(0.9, "Reading the maps out of the model")
        roles = (BASE_COLOR, METALLIC_ROUGHNESS, NORMAL) if request.enable_pbr else (BASE_COLOR,)
        try:
            got = glb_maps.extract_maps(glb, folder, stem, roles=roles,
                                        max_image_bytes=self.max_map_bytes)
        except glb_maps.GlbError as exc:
            raise ProviderError(f"Triverse's textured model cannot be used: {exc}") from None
        except OSError as exc:
            raise ProviderError(f"Could not save the maps in {folder}: "
                                f"{exc.strerror or exc}") from None
        if got.material.factors:
            status.extra["material_factors"] = dict(got.material.factors)
        if got.notes:
            status.extra["model_notes"] = list(got.notes)
        progress(1.0, "Maps ready")
        return {**got.paths, RESULT_MESH: glb}

    # ---- cancel --------------------------------------------------------------------------------

    def cancel(self, remote_id: str) -> None:
        """Triverse documents no cancel endpoint: the task runs to its end there (and is
        charged if it succeeds). Only logged; the job is canceled on this side."""
        log.info("Triverse has no cancel endpoint; task %s keeps running at Triverse", remote_id)
