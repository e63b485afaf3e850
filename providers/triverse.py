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

import collections
import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..formats import glb_maps, imagefile
from ..net.http import (
    NO_RETRY,
    PREFS_HINT,
    HttpError,
    LinkExpired,
    RetryPolicy,
    ServiceHooks,
    Sleeper,
    default_sleep,
    is_loopback_host,
    url_problem,
)
from .base import (
    BASE_COLOR,
    METALLIC_ROUGHNESS,
    NORMAL,
    RESULT_MESH,
    CancelToken,
    ProgressFn,
    ProviderConfig,
    ProviderError,
    RemoteState,
    RemoteStatus,
    TextureRequest,
    fraction,
    ramped_delay,
)
from .cloud import CloudProvider

log = logging.getLogger(__name__)

DEFAULT_BASE = "https://api.triverse.ai/api/v1"
MB = 1 << 20
FLOW_TEXT = "text-to-texture"  # flow names for the pricing quote: not documented, assumed [?]
FLOW_IMAGE = "texture-model"
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

    def describe(self, status: int, message: str, context: str, label: str) -> str | None:
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


# --------------------------------------------------------------------------- upload pacing


class _UploadGate:
    """Keeps this Blender under Triverse's upload limit (10 a minute, images and models together).

    Shared by every provider instance (one is made per job) and keyed by base URL, so a batch of
    objects spaces its uploads instead of collecting code-2000 refusals. Other programs using the
    same account can still use up the limit: then the server's 2000 is retried with patience.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, collections.deque[float]] = {}

    def wait_turn(self, key: str, limit: int, window: float, cancel: CancelToken | None,
                  sleep: Sleeper) -> float:
        """Block until one more upload fits in the window; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                sent = self._sent.setdefault(key, collections.deque())
                while sent and sent[0] <= now - window:
                    sent.popleft()
                if len(sent) < max(1, limit):
                    sent.append(now)
                    return waited
                # The service counts arrivals, we count departures: leave room for latency.
                wait = sent[0] + window - now + max(0.05, 0.05 * window)
            log.info("Triverse: %d uploads in the last %.0f s; waiting %.1f s", len(sent),
                     window, wait)
            sleep(wait, cancel)
            waited += wait


_UPLOAD_GATE = _UploadGate()


class _UploadedFiles:
    """file_keys of recent uploads by (base URL, account, route, content hash).

    How long Triverse keeps uploads is not documented; a key is reused for `ttl` seconds, and
    a 1005 "not found" on a reused key makes the job upload again (see `submit`).
    """

    def __init__(self, ttl: float = 20 * 60.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, ...], tuple[str, float]] = {}
        self._busy: dict[tuple[str, ...], threading.Lock] = {}

    def get(self, slot: tuple[str, ...]) -> str:
        with self._lock:
            entry = self._keys.get(slot)
            if entry is None or time.monotonic() - entry[1] > self.ttl:
                self._keys.pop(slot, None)
                return ""
            return entry[0]

    def put(self, slot: tuple[str, ...], key: str) -> None:
        with self._lock:
            self._keys[slot] = (key, time.monotonic())

    @contextlib.contextmanager
    def single_flight(self, slot: tuple[str, ...], cancel: CancelToken) -> Iterator[None]:
        """Hold `slot` while uploading, so identical bytes are uploaded once; cancelable."""
        with self._lock:
            lock = self._busy.setdefault(slot, threading.Lock())
        while not lock.acquire(timeout=0.1):
            cancel.check()
        try:
            yield
        finally:
            lock.release()


_UPLOADED = _UploadedFiles()


# --------------------------------------------------------------------------- the provider


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
    max_concurrency = 4  # Triverse's per-account queue size is not documented
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
        """Create the task, idempotently: the same client_order_id gives back the same task."""
        keyed = {**body, "client_order_id": order_id}
        try:
            answer = self.client().post_json(path, keyed, cancel, idempotency_key=order_id)
        except HttpError as exc:
            # client_order_id on the text endpoint is only inferred: if Triverse rejects the
            # field itself, send the documented body once, without automatic retries.
            if envelope_code(exc.body) != 1004 or "client_order_id" not in exc.provider_message:
                raise
            log.warning("Triverse does not take client_order_id on %s; sending without", path)
            answer = self.client().post_json(path, body, cancel, safe=False)
        data = unwrap(answer)
        task_id = _first_str(data, "task_uuid", "taskUuid", "task_id", "taskId", "uuid", "id")
        if not task_id or "/" in task_id:
            raise ProviderError(
                "Triverse accepted the job but sent no task id; it may have been created — "
                "check your Triverse account before retrying")
        cost = _first_number(data, "cost_credits", "costCredits")
        if cost is not None:
            self._cost[task_id] = cost
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
        with _UPLOADED.single_flight(slot, cancel):  # jobs of a batch wait for one upload
            known = "" if fresh else _UPLOADED.get(slot)
            if known:
                self._reused_upload = True
                return known
            _UPLOAD_GATE.wait_turn(self.base_url, self.upload_limit, self.upload_window, cancel,
                                   self._sleep or default_sleep)
            client = self.client()
            resp = client.request(
                "POST", path, params=params, files={"file": (filename, data, content_type)},
                cancel=cancel, safe=True, retry=self._upload_retry,
            )
            key = _first_str(unwrap(client.json_of(resp)), "file_key", "fileKey", "key")
            if not key:
                raise ProviderError(f"Triverse took the {what} upload but sent no file key")
            _UPLOADED.put(slot, key)
            return key

    def _presigned_url(self, file_key: str, cancel: CancelToken) -> str:
        """A public link to our upload. Field names are inferred from a third-party spec
        (`download_url`, or `url`): both are read, plus a few likely spellings."""
        answer = self.client().post_json("/upload/presigned-get-url", {"file_key": file_key},
                                         cancel, safe=True)
        data = unwrap(answer)
        url = _first_str(data, "download_url", "url", "downloadUrl", "presigned_url",
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
        cost = _first_number(data, "cost_credits", "costCredits", "cost")
        if cost is None:
            return None
        return {"flow_name": flow, "cost_credits": cost,
                "available_credits": _first_number(data, "available_credits",
                                                   "availableCredits")}

    # ---- poll ----------------------------------------------------------------------------------

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        answer = self.client().get_json(f"/tasks/{remote_id}", cancel, context="task")
        status = status_of(unwrap(answer))
        cost = self._cost.get(remote_id)
        if cost is not None:
            status.extra.setdefault("cost_credits", cost)
        balance = self._balance_once(remote_id, cancel)
        if balance is not None:
            status.extra["balance"] = balance
        return status

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
        return _first_number(unwrap(answer), "balance", "available_credits", "availableCredits",
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
        glb = self._download_result(remote_id, os.path.join(folder, f"{stem}_triverse.glb"),
                                    cancel)
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

    def _download_result(self, remote_id: str, dest: str, cancel: CancelToken) -> str:
        """`/tasks/url` gives a (signed) link; an expired link is asked for once more; without
        that endpoint or link, `/tasks/download` streams the file from the API itself."""
        client = self.client()
        for attempt in range(2):
            url = self._result_url(remote_id, cancel)
            if not url:
                break
            try:
                return client.download(url, dest, self.max_glb_bytes, cancel, expect="glb",
                                       what="textured model").path
            except LinkExpired:
                if attempt:
                    log.info("Triverse result link expired twice; downloading through the API")
        return self._download_direct(remote_id, dest, cancel)

    def _result_url(self, remote_id: str, cancel: CancelToken) -> str:
        try:
            answer = self.client().get_json(f"/tasks/url/{remote_id}", cancel, context="task")
        except HttpError as exc:
            if exc.status in (404, 405) and envelope_code(exc.body) not in (1006, 4042):
                log.info("Triverse has no /tasks/url here; using /tasks/download")
                return ""  # no such route (not Triverse's "no such task" / "no assets")
            raise
        # Documented fields inside `data` [I]; tolerated at the top level too, or as a bare URL.
        data = answer.get("data", answer) if isinstance(answer, dict) else answer
        url = data if isinstance(data, str) else _first_str(
            unwrap(answer), "download_url", "downloadUrl", "url")
        if url and url.startswith("/"):
            url = self.client().url(url)
        return url

    def _download_direct(self, remote_id: str, dest: str, cancel: CancelToken) -> str:
        """`GET /tasks/download/{uuid}` needs the key: streamed to the file like any download
        (capped while it arrives), the key going to the API's own origin only."""
        try:
            return self.client().download(
                f"/tasks/download/{remote_id}", dest, self.max_glb_bytes, cancel, expect="glb",
                what="textured model", with_key=True, fix_extension=False).path
        except HttpError as exc:
            if isinstance(exc.body, dict):
                unwrap(exc.body)  # an error envelope (even on a 200): its documented line
            raise

    # ---- cancel --------------------------------------------------------------------------------

    def cancel(self, remote_id: str) -> None:
        """Triverse documents no cancel endpoint: the task runs to its end there (and is
        charged if it succeeds). Only logged; the job is canceled on this side."""
        log.info("Triverse has no cancel endpoint; task %s keeps running at Triverse", remote_id)


# --------------------------------------------------------------------------- helpers


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
    cost = _first_number(task, "cost_credits", "costCredits")
    if cost is not None:
        extra["cost_credits"] = cost
    if state is None:  # a status this version cannot read: watched, counted by the runner
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
        text = _first_str(error, "message", "msg", "detail", "reason")
    elif isinstance(error, str):
        text = error
    else:
        text = _first_str(task, "error_message", "errorMessage", "message")
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


def _first_str(data: Any, *names: str) -> str:
    if not isinstance(data, dict):
        return ""
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _first_number(data: Any, *names: str) -> float | None:
    if not isinstance(data, dict):
        return None
    for name in names:
        value = data.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def public_https(url: str, what: str) -> str:
    """Triverse's servers fetch these links themselves: only a public https URL can work."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme != "https" or not parts.hostname or is_loopback_host(
            parts.hostname):
        raise ProviderError(f"The {what} must be a public https:// address Triverse can "
                            "download")
    return url


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
