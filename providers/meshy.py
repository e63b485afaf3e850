"""Meshy: Retexture (`/openapi/v1/retexture`), with the legacy Text to Texture as a fallback.

Contract: docs/providers.md §1. Where they disagree or are silent,
the choices a careful client of the paid service needs are made here and explained in place.

`request.options` keys this provider reads (all optional):

* ``model_url``: a public https URL of the mesh, sent instead of uploading `request.mesh_path`.
* ``reference_image_path``: a PNG/JPEG file sent as ``image_style_url`` (a data URI);
  ``reference_image_url``: the same as a public URL. On Retexture an image wins over the text.
* ``enable_original_uv`` (default True): texture the artist's UVs. When False, Meshy makes its own
  UVs and `fetch` also returns role ``"uv_mesh"``: the textured GLB whose TEXCOORD_0 the maps
  belong to.
* ``art_style`` (legacy only), ``ai_model`` and ``remove_lighting`` (Retexture only),
  ``object_prompt`` (legacy only; defaults to the prompt).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..formats import imagefile
from ..net.http import (
    NO_RETRY,
    PREFS_HINT,
    HttpError,
    LinkExpired,
    RetryPolicy,
    ServiceHooks,
    Sleeper,
    is_loopback_host,
    url_problem,
)
from .base import (
    BASE_COLOR,
    METALLIC,
    NORMAL,
    ROUGHNESS,
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

DEFAULT_BASE = "https://api.meshy.ai"
UV_MESH = "uv_mesh"  # fetch() role: Meshy's textured GLB, whose UVs the maps belong to
MAX_PROMPT = 600
MB = 1 << 20

# Route keys -> paths. Tasks live at the route that created them, so a legacy task's remote id
# carries its route key ("t2t:<id>"); a Retexture id stays bare, exactly as Meshy shows it.
ROUTES: dict[str, str] = {
    "retexture": "/openapi/v1/retexture",
    "t2t": "/openapi/v1/text-to-texture",
    "t2t-v1": "/v1/text-to-texture",
}
_ROUTE_ORDER = ("retexture", "t2t", "t2t-v1")
# Which route works, per base URL, learnt once per session (a new provider is made per job).
_working_route: dict[str, str] = {}
_route_lock = threading.Lock()

_STATES = {
    "PENDING": RemoteState.QUEUED,
    "IN_PROGRESS": RemoteState.RUNNING,
    "SUCCEEDED": RemoteState.SUCCEEDED,
    "FAILED": RemoteState.FAILED,
    "CANCELED": RemoteState.CANCELED,
    "CANCELLED": RemoteState.CANCELED,
    "EXPIRED": RemoteState.FAILED,  # the runner has no "expired": the result is gone
}
_PBR_ROLES = (METALLIC, ROUGHNESS, NORMAL)


class MeshyHooks(ServiceHooks):
    """Meshy's errors are `{"message": ...}`; its 429 says which limit was hit."""

    def describe(self, status: int, message: str, context: str, label: str) -> str | None:
        if status == 429 and "NoMoreConcurrentTasks" in message:
            return ("Meshy's task queue for your account is full (NoMoreConcurrentTasks) — "
                    "wait for running tasks to finish, then retry")
        if status == 402:
            return ("Your Meshy account has no credits left — top it up at meshy.ai, "
                    "then retry")
        if status == 403:
            return ("Meshy refused this API key (HTTP 403) — check the key and your plan in "
                    f"{PREFS_HINT} > Meshy")
        if status == 401:
            return f"Meshy rejected the API key — check {PREFS_HINT} > Meshy (or MESHY_API_KEY)"
        return None


def is_no_route(exc: HttpError) -> bool:
    return exc.status == 404 and "NoMatchingRoute" in (exc.provider_message or "")


def prompt_problem(prompt: str, name: str = "prompt") -> str:
    """"" or why Meshy would refuse this text. Refused, not truncated: a cut prompt silently
    changes what the artist pays for, and the panel can say so before anything is sent."""
    if len(prompt) > MAX_PROMPT:
        return (f"Meshy takes a {name} of at most {MAX_PROMPT} characters (this one has "
                f"{len(prompt)}) — shorten it")
    return ""


class MeshyProvider(CloudProvider):
    id = "MESHY"
    label = "Meshy"
    description = "Meshy Retexture with your Meshy API key"
    offline = False
    mesh_format = "GLB"
    default_base = DEFAULT_BASE
    resubmit_safe = False  # every task costs credits
    # Meshy Pro queues 10 tasks per account (all keys, all task kinds): leave room for the
    # artist's other tools; a full queue answers 429 NoMoreConcurrentTasks.
    max_concurrency = 4
    poll_interval = 3.0
    # A data URI may be at most 100 MB [docs/providers.md §1.2]; base64 grows by 4/3, so the GLB file
    # may be at most 75 MB. Larger meshes must go as a URL (options["model_url"]).
    # A GLB data URI may be 100 MB; with positions, normals, UVs and indices a triangle costs
    # ~40-60 bytes, so 1.5 M triangles is where uploads start to fail.
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

    def poll_delay(self, elapsed: float) -> float:
        # 1 s while young, then 2 s, then 3 s (`ramped_delay`): one job makes at most one
        # status request a second; Meshy allows 20 a second per account (Pro) and queues at
        # most 10 tasks, so even a full queue stays at half the limit.
        return ramped_delay(elapsed, self.poll_interval)

    # ---- set-up --------------------------------------------------------------------------------

    def check_ready(self) -> str:
        if not self.config.api_key.strip():
            return (f"Meshy needs an API key: {PREFS_HINT} > Meshy, or MESHY_API_KEY")
        return url_problem(self.base_url, self.label, "base URL")

    def check_request(self, request: TextureRequest) -> str:
        return prompt_problem(request.prompt) or prompt_problem(
            request.negative_prompt, "negative prompt")

    def hooks(self) -> ServiceHooks:
        return MeshyHooks()

    # ---- submit --------------------------------------------------------------------------------

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        opts = request.options or {}
        for text, name in ((request.prompt, "prompt"),
                           (request.negative_prompt, "negative prompt"),
                           (str(opts.get("object_prompt") or ""), "object prompt")):
            problem = prompt_problem(text, name)
            if problem:
                raise ProviderError(problem)
        model_url = self._model_url(request)
        style_image = self._style_image(opts)
        if not request.prompt.strip() and not style_image:
            raise ProviderError("Meshy needs a prompt or a reference image")
        client = self.client()
        for key in self._route_order():
            body = (self._retexture_body(request, model_url, style_image) if key == "retexture"
                    else self._legacy_body(request, model_url))
            if body is None:
                continue
            if key != "retexture" and style_image:
                log.warning("Meshy's legacy Text to Texture takes no reference image; "
                            "sending the prompt only")
            try:
                answer = client.post_json(ROUTES[key], body, cancel, safe=False)
            except HttpError as exc:
                if is_no_route(exc):
                    log.info("Meshy %s: no such route, trying the next", ROUTES[key])
                    continue
                raise
            with _route_lock:
                _working_route[self.base_url] = key
            return _remote_id(key, _task_id_of(answer))
        raise ProviderError(
            "Meshy has no texturing endpoint at this address (NoMatchingRoute) — check the "
            f"Meshy base URL in {PREFS_HINT}"
        )

    def _route_order(self) -> list[str]:
        with _route_lock:
            known = _working_route.get(self.base_url)
        order = list(_ROUTE_ORDER)
        if known:
            order.remove(known)
            order.insert(0, known)
        return order

    def _model_url(self, request: TextureRequest) -> str:
        url = str((request.options or {}).get("model_url") or "").strip()
        if url:
            return _public_https(url, "mesh URL")
        return _data_uri(request.mesh_path, self.max_data_uri_bytes)

    def _style_image(self, opts: dict[str, Any]) -> str:
        url = str(opts.get("reference_image_url") or "").strip()
        if url:
            return _public_https(url, "reference image URL")
        path = str(opts.get("reference_image_path") or "").strip()
        if not path:
            return ""
        return _image_data_uri(path, self.max_reference_bytes)

    def _retexture_body(self, request: TextureRequest, model_url: str,
                        style_image: str) -> dict[str, Any]:
        opts = request.options or {}
        body: dict[str, Any] = {
            "model_url": model_url,
            # Always explicit: the docs disagree on the default (EN true, zh-Hant false).
            "enable_original_uv": bool(opts.get("enable_original_uv", True)),
            "enable_pbr": bool(request.enable_pbr),  # Retexture defaults to false
            "texture_resolution": _retexture_resolution(request.resolution),
        }
        if request.prompt.strip():
            body["text_style_prompt"] = request.prompt.strip()
        if style_image:
            body["image_style_url"] = style_image  # wins over the text at Meshy
        if opts.get("ai_model"):
            body["ai_model"] = str(opts["ai_model"])
        if "remove_lighting" in opts:
            body["remove_lighting"] = bool(opts["remove_lighting"])
        return body

    def _legacy_body(self, request: TextureRequest, model_url: str) -> dict[str, Any] | None:
        """Text to Texture needs an object and a style prompt; it has no reference image."""
        opts = request.options or {}
        prompt = request.prompt.strip()
        if not prompt:
            return None
        body: dict[str, Any] = {
            "model_url": model_url,
            "object_prompt": str(opts.get("object_prompt") or prompt),
            "style_prompt": prompt,
            "enable_original_uv": bool(opts.get("enable_original_uv", True)),
            "enable_pbr": bool(request.enable_pbr),
            "resolution": _legacy_resolution(request.resolution),
        }
        if request.negative_prompt.strip():
            body["negative_prompt"] = request.negative_prompt.strip()
        if opts.get("art_style"):
            body["art_style"] = str(opts["art_style"])
        return body

    # ---- poll ----------------------------------------------------------------------------------

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        task = self._task(remote_id, cancel)
        status = self._status_of(task)
        balance = self._balance_once(remote_id, cancel)
        if balance is not None:
            status.extra["balance"] = balance
        return status

    def _task(self, remote_id: str, cancel: CancelToken | None) -> dict[str, Any]:
        route, task_id = _split_remote_id(remote_id)
        task = self.client().get_json(f"{ROUTES[route]}/{task_id}", cancel, context="task")
        if not isinstance(task, dict):
            raise ProviderError("Meshy sent a task in an unexpected shape", retryable=True)
        return task

    def _status_of(self, task: dict[str, Any]) -> RemoteStatus:
        raw = str(task.get("status") or "").upper()
        state = _STATES.get(raw)
        if state is None:  # a status this version cannot read: watched, counted by the runner
            log.warning("Meshy reported an unknown task status %r", raw[:40])
            state = RemoteState.UNKNOWN
        if state is RemoteState.SUCCEEDED:
            # The seed's example says "progress: 1" on a succeeded task: trust the status.
            return RemoteStatus(state, 1.0, maps=_result_links(task))
        if raw == "EXPIRED":
            return RemoteStatus(state, message="Meshy's result for this job has expired (Meshy "
                                "keeps results for 3 days) — run the job again")
        if state is RemoteState.FAILED:
            return RemoteStatus(state, message=_failure_message(task))
        if state is RemoteState.CANCELED:
            return RemoteStatus(state, message="The job was canceled at Meshy")
        progress = _progress(task.get("progress"))
        if state is RemoteState.QUEUED:
            ahead = task.get("preceding_tasks")
            message = (f"Waiting in Meshy's queue ({ahead} ahead)"
                       if isinstance(ahead, int) and ahead > 0 else "Waiting in Meshy's queue")
            return RemoteStatus(state, progress, message)
        # Meshy sits at 95–99 % for up to two minutes while it finalises; say so.
        message = "Meshy is finishing the maps" if progress >= 0.95 else "Meshy is texturing"
        return RemoteStatus(state, progress, message)

    def _balance_once(self, remote_id: str, cancel: CancelToken) -> float | None:
        """The account balance, asked once per job; any failure just means "not shown"."""
        if remote_id in self._balance_seen:
            return None
        self._balance_seen.add(remote_id)
        try:
            answer = self.client().get_json("/openapi/v1/balance", cancel, retry=NO_RETRY)
        except ProviderError as exc:
            log.info("Meshy balance not available: %s", exc.message)
            return None
        value = answer.get("balance") if isinstance(answer, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return value

    # ---- fetch ---------------------------------------------------------------------------------

    def fetch(
        self,
        remote_id: str,
        status: RemoteStatus,
        request: TextureRequest,
        cancel: CancelToken,
        progress: ProgressFn,
    ) -> dict[str, str]:
        """Download the maps (and, without original UVs, Meshy's GLB) into `request.out_dir`.

        Result links are signed and expire. The runner does not poll again once it is
        downloading, so on an expired link this asks Meshy for the task once more (which signs
        fresh links) and retries; only if that also fails does the job fail.
        """
        links = dict(status.maps) or _result_links(self._task(remote_id, cancel))
        wanted = self._wanted(links, request)
        out: dict[str, str] = {}
        renewed = False
        for i, role in enumerate(wanted):
            progress(i / len(wanted), f"Downloading {_what(role)}")
            while role not in out:
                try:
                    out[role] = self._download(role, links.get(role, ""), request, cancel)
                except LinkExpired:
                    if renewed:
                        raise ProviderError(
                            "Meshy's result links for this job have expired and could not be "
                            "renewed — run the job again") from None
                    renewed = True
                    links = _result_links(self._task(remote_id, cancel))
        progress(1.0, "Maps downloaded")
        return out

    def _wanted(self, links: dict[str, str], request: TextureRequest) -> list[str]:
        if BASE_COLOR not in links:
            raise ProviderError("Meshy finished but sent no base color map")
        roles = [BASE_COLOR] + [r for r in _PBR_ROLES if request.enable_pbr and r in links]
        if not bool((request.options or {}).get("enable_original_uv", True)):
            if UV_MESH not in links:
                raise ProviderError(
                    "Meshy made new UVs but sent no GLB to take them from — turn 'original "
                    "UVs' on, or run the job again")
            roles.append(UV_MESH)
        return roles

    def _download(self, role: str, url: str, request: TextureRequest,
                  cancel: CancelToken) -> str:
        if not url:
            raise ProviderError(f"Meshy no longer offers the {_what(role)} for this job")
        stem = request.file_stem or request.job_id
        folder = request.out_dir or "."
        if role == UV_MESH:
            dest = os.path.join(folder, f"{stem}_meshy.glb")
            got = self.client().download(url, dest, self.max_glb_bytes, cancel, expect="glb",
                                         what="textured model")
        else:
            dest = os.path.join(folder, f"{stem}_{role}.png")
            got = self.client().download(url, dest, self.max_map_bytes, cancel, expect="image",
                                         what=_what(role))
        return got.path

    # ---- cancel --------------------------------------------------------------------------------

    def cancel(self, remote_id: str) -> None:
        """DELETE is Meshy's only way to stop a task (it also deletes it). Best effort: a task
        already gone (404) is what we wanted anyway. Whether credits come back is unknown."""
        route, task_id = _split_remote_id(remote_id)
        try:
            self.client().delete(f"{ROUTES[route]}/{task_id}", None, context="task",
                                 retry=RetryPolicy(retries=2, base=0.5, max_total=5.0))
        except HttpError as exc:
            if exc.status in (404, 410):
                return
            raise


# --------------------------------------------------------------------------- helpers


def _remote_id(route: str, task_id: str) -> str:
    return task_id if route == "retexture" else f"{route}:{task_id}"


def _split_remote_id(remote_id: str) -> tuple[str, str]:
    route, sep, rest = remote_id.partition(":")
    if sep and route in ROUTES:
        return route, rest
    return "retexture", remote_id


def _task_id_of(answer: Any) -> str:
    task_id = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(task_id, str) or not task_id.strip() or "/" in task_id:
        raise ProviderError(
            "Meshy accepted the job but sent no task id; it may have been created — check your "
            "Meshy account before retrying")
    return task_id.strip()


def _result_links(task: dict[str, Any]) -> dict[str, str]:
    """Role -> signed URL from `texture_urls[0]` (PBR keys may be missing) and model_urls.glb."""
    links: dict[str, str] = {}
    textures = task.get("texture_urls")
    if isinstance(textures, list) and textures and isinstance(textures[0], dict):
        for role in (BASE_COLOR, *_PBR_ROLES):
            url = textures[0].get(role)
            if isinstance(url, str) and url:
                links[role] = url
    models = task.get("model_urls")
    if isinstance(models, dict) and isinstance(models.get("glb"), str) and models["glb"]:
        links[UV_MESH] = models["glb"]
    return links


def _failure_message(task: dict[str, Any]) -> str:
    error = task.get("task_error")
    text = error.get("message") if isinstance(error, dict) else None
    text = " ".join(str(text or "").split())
    return f"Meshy: {text}" if text else "Meshy reported the job failed (no reason given)"


def _progress(value: Any) -> float:
    return fraction(value, 100.0)  # NaN or a non-number is no progress, never 100 %


def _retexture_resolution(pixels: int) -> str:
    """Retexture offers 2k (default), 4k and 8k: the smallest at least as fine as asked."""
    if pixels > 4096:
        return "8k"
    return "4k" if pixels > 2048 else "2k"


def _legacy_resolution(pixels: int) -> str:
    for size in (1024, 2048):
        if pixels <= size:
            return str(size)
    return "4096"


def _what(role: str) -> str:
    return "textured model" if role == UV_MESH else f"{role.replace('_', ' ')} map"


def _public_https(url: str, what: str) -> str:
    """Meshy's servers fetch these links themselves: only a public https URL can work."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme != "https" or not parts.hostname or is_loopback_host(
            parts.hostname):
        raise ProviderError(f"The {what} must be a public https:// address Meshy can download")
    return url


def _data_uri(mesh_path: str, max_uri: int) -> str:
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
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")


def _image_data_uri(path: str, max_bytes: int) -> str:
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
