"""DRESSX Text to Texture: the mesh goes out as a URL, the result comes back by webhook.

Contract: docs/providers.md §4, which leave most things unknown. Every guess is a setting or a
named constant, marked "Guess:"; what to send and how a webhook reads live in `contract.py`.

How a job runs. `submit` registers the job with the extension's one local server
(`webhook_server`, 127.0.0.1 only), which serves the exported OBJ at ``<public>/m/<token>/mesh.obj``
and takes the webhook at ``<public>/w/<token>``; ``<public>`` is the artist's public URL (a tunnel
such as ngrok or cloudflared forwarding to the local port). It then POSTs
``/v2/pipeline/text-to-texture/``. `poll` does no network at all: it reads what the webhook
delivered. `fetch` downloads the maps the webhook named. DRESSX documents no status, list or
cancel endpoint, so `cancel` only stops listening, and a webhook that never comes ends the job
as timed out, its order id kept so the artist can look it up.

Resume after a restart: the remote id carries the order id, the submit time and the tokens
(``"<order>:<epoch>:<webhook token>:<mesh token>"``), so a resumed job registers the same paths
again. DRESSX keeps the result URL it was given, so this only works when the local port is fixed
(config extra ``local_port``) and the tunnel's public URL is unchanged; otherwise the job times
out with its order id. A success webhook is also kept beside the maps until they are in
(`results.py`), so a restart during the downloads does not lose a paid result. The remote id
holds the webhook token: it is a secret of the job (anyone who has it and the tunnel address can
post a result), so it is journaled but never logged, shown or kept in the .blend (`shown_id`
gives the order id only).

Settings, `ProviderConfig.extras` (preferences / environment) unless said otherwise:

* ``public_url`` (``DRESSX_PUBLIC_URL``): required. ``{port}`` in it is replaced by the local
  server's port (a loopback URL stands in for a tunnel in tests and with a local emulator).
* ``local_port``: fixed port for the local server; "" or 0 = a free one (resume then can't work).
  ``request.options["local_port"]`` wins.
* ``coordinator_key``: sent as the body's optional ``key`` when set.
* The job's time limit (`Provider.timeout_s`, preferences "Give up after" / DRESSX_TIMEOUT_S,
  default 30 min) is how long to wait for the webhook; the runner ends the job when it passes.
* ``num_inference_steps``: default 20 (the document's example); options win; 0 = not sent.
* ``jobs_at_once`` (``DRESSX_JOBS_AT_ONCE``, the "Jobs at once" preference): orders at DRESSX at
  once (default 2; ``max_concurrency`` is read too, as before).

``request.options``: ``mesh_url`` (a URL DRESSX can fetch, sent instead of serving the export),
``refine`` (bool, default False), ``num_inference_steps``, ``timeout_s``, ``local_port``, and
``order`` (an int to use as DRESSX order id instead of the one derived from the job id).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ...net import local_server
from ...net.http import (
    PREFS_HINT,
    HttpClient,
    HttpError,
    LinkExpired,
    RetryPolicy,
    ServiceHooks,
    Sleeper,
    is_loopback_host,
    url_problem,
)
from ..base import (
    BASE_COLOR,
    METALLIC,
    NORMAL,
    ROUGHNESS,
    CancelToken,
    ConnectionCheck,
    ProgressFn,
    ProviderConfig,
    ProviderError,
    RemoteState,
    RemoteStatus,
    TextureRequest,
    duration,
)
from ..cloud import CloudProvider
from .contract import (
    CREATE_PATH,
    DEFAULT_BASE,
    DEFAULT_STEPS,
    DEFAULT_TIMEOUT_S,
    MAX_ORDER,
    MAX_STEPS,
    DressxHooks,
    DressxRef,
    balance_of,
    check_obj,
    order_for,
    status_of,
)
from .results import KeptResults

log = logging.getLogger(__name__)

MB = 1 << 20

_PBR_ROLES = (NORMAL, ROUGHNESS, METALLIC)
_warned: set[str] = set()  # warnings worth giving once per session


class DressxProvider(CloudProvider):
    id = "DRESSX"
    label = "DRESSX"
    description = "DRESSX text-to-texture; needs a public URL for the result webhook"
    extras = (
        ("public_url", "DRESSX_PUBLIC_URL"),
        ("local_port", "DRESSX_LOCAL_PORT"),
        ("coordinator_key", "DRESSX_COORDINATOR_KEY"),
        ("jobs_at_once", "DRESSX_JOBS_AT_ONCE"),
    )
    default_base = DEFAULT_BASE
    default_timeout_s = DEFAULT_TIMEOUT_S
    offline = False
    mesh_format = "OBJ"  # DRESSX takes "an .obj file containing the 3D mesh with UV coordinates"
    resubmit_safe = False  # every order costs balance
    max_concurrency = 2  # Guess: no limit documented; "Jobs at once" changes it
    poll_interval = 0.25  # poll only reads the local webhook queue: no network
    max_map_bytes: ClassVar[int] = 256 * MB

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        poll_interval: float | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleeper | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, poll_interval=poll_interval, retry=retry, sleep=sleep)
        concurrency = _int_or_none(self._extra("max_concurrency"))
        if concurrency and concurrency > 0:
            self.max_concurrency = concurrency  # type: ignore[misc]
        self._clock = clock
        self._running: dict[str, str] = {}  # remote id -> last progress text from a webhook
        self._balance: dict[str, float] = {}
        self._rebound_without_port: set[str] = set()
        self._kept = KeptResults()  # success webhooks on disk until their maps are in

    # ---- settings ------------------------------------------------------------------------------

    def _extra(self, name: str) -> str:
        return str(self.config.extras.get(name) or "").strip()

    def _setting(self, options: Mapping[str, Any], name: str) -> Any:
        value = options.get(name)
        return self._extra(name) if value is None or value == "" else value

    def local_port(self, options: Mapping[str, Any] | None = None) -> int:
        raw = self._setting(options or {}, "local_port")
        port = _int_or_none(raw) if raw not in ("", None) else 0
        if port is None or not 0 <= port <= 65535:
            raise ProviderError(f"The DRESSX local port must be a number from 1 to 65535 (or "
                                f"empty for any free port) — check {PREFS_HINT} > DRESSX")
        return port

    def _steps(self, options: Mapping[str, Any]) -> int | None:
        raw = self._setting(options, "num_inference_steps")
        if raw in ("", None):
            return DEFAULT_STEPS
        value = _int_or_none(raw)
        if value is None or value < 0 or value > MAX_STEPS:
            raise ProviderError(f"DRESSX inference steps must be a whole number from 1 to "
                                f"{MAX_STEPS} (0 leaves it to DRESSX)")
        return value or None

    def public_base(self, port: int) -> str:
        """The public URL with `{port}` filled in, without a trailing slash."""
        return self._extra("public_url").replace("{port}", str(port)).rstrip("/")

    def check_ready(self) -> str:
        if not self.config.api_key.strip():
            return f"DRESSX needs an API key: {PREFS_HINT} > DRESSX, or DRESSX_API_KEY"
        problem = url_problem(self.base_url, self.label, "base URL")
        if problem:
            return problem
        try:
            port = self.local_port()
        except ProviderError as exc:
            return exc.message
        public = self._extra("public_url")
        target = f"http://127.0.0.1:{port}" if port else "the local port you set there"
        if not public:
            return (f"DRESSX sends its result to a public URL that reaches this computer, and "
                    f"none is set: put a tunnel address (ngrok, cloudflared) forwarding to "
                    f"{target} in {PREFS_HINT} > DRESSX > Public URL, or set DRESSX_PUBLIC_URL")
        sample = public.replace("{port}", str(port or 1))
        problem = url_problem(sample, self.label, "public URL")
        if problem:
            return problem
        if urlsplit(sample).query or urlsplit(sample).fragment:
            return (f"The DRESSX public URL must be a plain address without ? or # — check "
                    f"{PREFS_HINT} > DRESSX")
        return ""

    def hooks(self) -> ServiceHooks:
        return DressxHooks()

    def check_connection(self, cancel: CancelToken | None) -> ConnectionCheck:
        """DRESSX has no free endpoint: the key is only known to be set (it is checked by the
        first order). What can be checked is the way back: one request from this computer to
        itself through the public URL must reach the local server, as DRESSX's webhook will."""
        port = self.local_port()
        folder = tempfile.mkdtemp(prefix="t2t-dressx-check-")
        probe = os.path.join(folder, "probe.obj")
        marker = f"# text-to-texture connection check {time.time_ns()}\n".encode()
        with open(probe, "wb") as fh:
            fh.write(marker)
        srv, reg = local_server.acquire(None, probe, port=port)
        local = f"http://127.0.0.1:{srv.port}"
        try:
            public = self.public_base(srv.port)
            try:
                got = self.client().download(f"{public}/m/{reg.mesh_token}/mesh.obj",
                                             os.path.join(folder, "back.obj"), 1 << 16, cancel,
                                             expect=None, what="connection check", attempts=1)
            except HttpError as exc:
                if exc.status is not None:  # something answered, but not our server
                    return ConnectionCheck(False, (
                        f"{public} answers (HTTP {exc.status}), but not from this computer's "
                        f"local server — check that the tunnel forwards to {local}"))
                raise ProviderError(
                    f"DRESSX's results cannot reach this computer: {public} did not answer "
                    f"({exc.message.split(' — ')[0]}) — start the tunnel (ngrok, cloudflared) "
                    f"forwarding to {local}") from None
            with open(got.path, "rb") as fh:
                back = fh.read()
            if back != marker or reg.mesh_fetches < 1:
                return ConnectionCheck(False, (
                    f"{public} answers, but not from this computer's local server — check that "
                    f"the tunnel forwards to {local}"))
        finally:
            local_server.release(reg.webhook_token)
            shutil.rmtree(folder, ignore_errors=True)
        return ConnectionCheck(True, (
            f"DRESSX is set up: the key is set (DRESSX checks it with the first order) and "
            f"{public} reaches this computer's local server"))

    # ---- submit --------------------------------------------------------------------------------

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        client = self.client()  # checks key, base URL, public URL
        opts = request.options or {}
        prompt = request.prompt.strip()
        if not prompt:
            raise ProviderError("DRESSX needs a prompt")
        if request.negative_prompt.strip():
            log.info("DRESSX takes no negative prompt; it is not sent")
        user_mesh = str(opts.get("mesh_url") or "").strip()
        if user_mesh:
            problem = url_problem(user_mesh, self.label, "mesh URL")
            if problem:
                raise ProviderError(problem)
        else:
            check_obj(request.mesh_path)
        order = self._order(request)
        port = self.local_port(opts)
        self.timeout_s(opts)  # refuse a bad setting before paying, not at the deadline
        steps = self._steps(opts)
        cancel.check()
        srv, reg = local_server.acquire(order, "" if user_mesh else request.mesh_path,
                                          port=port)
        try:
            public = self.public_base(srv.port)
            if is_loopback_host(urlsplit(public).hostname or "") and not _warned:
                _warned.add("loopback")
                log.warning("The DRESSX public URL is this computer's own address: only a local "
                            "emulator can reach it, DRESSX cannot")
            body: dict[str, Any] = {
                "order": order,
                "prompt": prompt,
                "result_url": f"{public}/w/{reg.webhook_token}",
                "seed": int(request.seed),
                "refine": bool(opts.get("refine", False)),
                "mesh_url": user_mesh or f"{public}/m/{reg.mesh_token}/mesh.obj",
            }
            if steps:
                body["num_inference_steps"] = steps
            if self._extra("coordinator_key"):
                body["key"] = self._extra("coordinator_key")
            submitted = round(self._clock(), 3)
            self._create(client, body, cancel, order)
        except BaseException:
            local_server.release(reg.webhook_token)
            raise
        log.info("DRESSX order %d sent; waiting for its webhook (%s)", order,
                 local_server.short(reg.webhook_token))
        return DressxRef(order, submitted, reg.webhook_token, reg.mesh_token).encode()

    def _order(self, request: TextureRequest) -> int:
        given = (request.options or {}).get("order")
        if given in (None, ""):
            return order_for(request.job_id)
        value = _int_or_none(given)
        if value is None or not 1 <= value <= MAX_ORDER:
            raise ProviderError(f"A DRESSX order id must be a whole number from 1 to {MAX_ORDER}")
        return value

    def _create(self, client: HttpClient, body: dict[str, Any], cancel: CancelToken,
                order: int) -> Any:
        """Any 2xx is success: the answer's shape is not documented, so it is only logged."""
        try:
            resp = client.request("POST", CREATE_PATH, json_body=body, cancel=cancel, safe=False)
        except HttpError as exc:
            message = self.redact(exc.message)
            if "may still have been created" in message:
                message = message.replace("check your DRESSX account",
                                          f"check your DRESSX account for order {order}")
            raise ProviderError(message, retryable=exc.retryable, status=exc.status) from None
        try:
            answer = resp.json() if resp.content else None
        except ValueError:
            answer = None
        log.debug("DRESSX accepted order %d (HTTP %d, %s)", order, resp.status_code,
                  type(answer).__name__)
        return answer

    # ---- poll ----------------------------------------------------------------------------------

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        ref = DressxRef.parse(remote_id)
        reg = local_server.lookup(ref.webhook_token)
        if reg is None:  # a job resumed in a new session (or after its registration ended)
            saved = self._kept.load(request, ref)
            if saved is not None:
                return self._status_of(ref, saved, remote_id)
            reg = self._rebind(ref, request)
        for payload in reg.take():
            status = self._status_of(ref, payload, remote_id)
            if status.state is RemoteState.SUCCEEDED:
                self._kept.save(request, ref, payload, remote_id)
                return status  # the registration lives on until fetch: duplicates stay harmless
            if status.state.terminal:
                local_server.release(ref.webhook_token)
                return status
        return RemoteStatus(RemoteState.RUNNING, 0.0, self._waiting_text(ref, reg, remote_id),
                            extra=self._extra_of(ref, remote_id))

    def _rebind(self, ref: DressxRef, request: TextureRequest) -> local_server.Registration:
        port = self.local_port(request.options or {})
        mesh = request.mesh_path if ref.mesh_token and os.path.isfile(request.mesh_path) else ""
        try:
            _, reg = local_server.acquire(ref.order, mesh, port=port,
                                            webhook_token=ref.webhook_token,
                                            mesh_token=ref.mesh_token or None)
        except ProviderError as exc:
            raise ProviderError(exc.message, retryable=True) from None
        if not port:
            self._rebound_without_port.add(ref.encode())
            log.warning("DRESSX order %d resumed without a fixed local port: its webhook can only "
                        "arrive if the tunnel reaches the new port", ref.order)
        else:
            log.info("DRESSX order %d: listening again for its webhook", ref.order)
        return reg

    def _status_of(self, ref: DressxRef, payload: dict[str, Any], remote_id: str) -> RemoteStatus:
        balance = balance_of(payload)
        if balance is not None:
            self._balance[remote_id] = balance
        status = status_of(payload, ref.order, self._extra_of(ref, remote_id))
        if status.state is RemoteState.RUNNING:
            self._running[remote_id] = status.message
        return status

    def _extra_of(self, ref: DressxRef, remote_id: str) -> dict[str, Any]:
        extra: dict[str, Any] = {"order": ref.order}
        if remote_id in self._balance:
            extra["balance"] = self._balance[remote_id]
        return extra

    def _waiting_text(self, ref: DressxRef, reg: local_server.Registration,
                      remote_id: str) -> str:
        if remote_id in self._running:
            return self._running[remote_id]
        if ref.mesh_token and reg.mesh_fetches == 0:
            return f"Waiting for DRESSX to fetch the mesh (order {ref.order})"
        return f"DRESSX is texturing (order {ref.order})"

    @classmethod
    def shown_id(cls, remote_id: str) -> str:
        """The order id: the rest of the remote id (the webhook token) is a secret of the job."""
        if not remote_id or remote_id.startswith("order "):
            return remote_id
        try:
            return f"order {DressxRef.parse(remote_id).order}"
        except ProviderError:
            return "order unknown"

    def timed_out_message(self, remote_id: str, seconds: float) -> str:
        """The webhook never came within the time limit (the runner's deadline)."""
        text = (f"DRESSX did not report back within {duration(seconds)} "
                f"({self.shown_id(remote_id)}); look it up in your DRESSX account")
        if remote_id in self._rebound_without_port:
            text += (" (its result address changed when Blender restarted: set a fixed local "
                     "port for DRESSX to keep it)")
        return text

    def abandon(self, remote_id: str) -> None:
        """Stop listening for a timed-out order (its webhook would find a 410)."""
        try:
            ref = DressxRef.parse(remote_id)
        except ProviderError:
            return
        local_server.release(ref.webhook_token)
        self._kept.forget(remote_id)

    # ---- fetch ---------------------------------------------------------------------------------

    def fetch(
        self,
        remote_id: str,
        status: RemoteStatus,
        request: TextureRequest,
        cancel: CancelToken,
        progress: ProgressFn,
    ) -> dict[str, str]:
        """Download the maps the webhook named; the job's local paths end here either way."""
        ref = DressxRef.parse(remote_id)
        try:
            links = dict(status.maps)
            roles = [BASE_COLOR] + [r for r in _PBR_ROLES if request.enable_pbr and r in links]
            if BASE_COLOR not in links:
                raise ProviderError(f"DRESSX finished but sent no albedo map (order {ref.order})")
            out: dict[str, str] = {}
            for i, role in enumerate(roles):
                progress(i / len(roles), f"Downloading {_what(role)}")
                out[role] = self._download(role, links[role], request, cancel, ref)
            progress(1.0, "Maps downloaded")
        except ProviderError as exc:
            self._kept.forget(remote_id)
            if f"order {ref.order}" in exc.message:
                raise
            # DRESSX cannot be asked for the links again: the order id is the way back to them.
            raise ProviderError(f"{exc.message} (order {ref.order})", retryable=exc.retryable,
                                status=exc.status) from None
        finally:
            local_server.release(ref.webhook_token)
        self._kept.forget(remote_id)
        return out

    def _download(self, role: str, url: str, request: TextureRequest, cancel: CancelToken,
                  ref: DressxRef) -> str:
        stem = request.file_stem or request.job_id
        dest = os.path.join(request.out_dir or ".", f"{stem}_{role}.png")
        try:
            got = self.client().download(url, dest, self.max_map_bytes, cancel, expect="image",
                                         what=_what(role))
        except LinkExpired as exc:
            raise ProviderError(
                f"DRESSX's link for the {_what(role)} no longer works (HTTP {exc.status}) — "
                f"look the result up in your DRESSX account (order {ref.order})") from None
        return got.path

    # ---- cancel --------------------------------------------------------------------------------

    def cancel(self, remote_id: str) -> None:
        """DRESSX documents no way to stop an order: this only stops listening for it (the order
        may still finish, and be paid for, at DRESSX)."""
        self.abandon(remote_id)
        log.info("DRESSX %s canceled here; DRESSX has no cancel, it may still finish",
                 self.shown_id(remote_id))


# --------------------------------------------------------------------------- helpers


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _what(role: str) -> str:
    return f"{role.replace('_', ' ')} map"
