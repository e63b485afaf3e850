"""The one small local HTTP server the extension runs: it hands DRESSX each job's mesh and takes
DRESSX's result webhook.

DRESSX has no upload endpoint and no status endpoint: it downloads the mesh from a URL and POSTs
the result to a URL (docs/providers.md §4). So, while DRESSX jobs exist, this process
listens on 127.0.0.1 (never another interface: a tunnel such as ngrok or cloudflared, set up by
the artist, is what makes it public) and serves, per job, two unguessable paths:

* ``GET /m/<mesh token>/mesh.obj``: the job's exported OBJ, while the job lives;
* ``POST /w/<webhook token>``: DRESSX's webhook for that job.

The paths may sit under any prefix (``/t2t/w/<token>``), so a reverse proxy that keeps its own
prefix still works; the tokens alone authorise. Everything else answers 404.

The webhook handler only checks and queues: it never downloads, so DRESSX gets its answer at
once, and the job's worker thread picks the payload up in the provider's `poll`. Answers:

* 200: accepted (also for an exact duplicate of the terminal webhook already taken: delivering
  twice is what an at-least-once sender does, and a 4xx would only make it try again);
* 400 not JSON / not an object / no ``status`` / malformed framing (a bad chunk size, a length
  and chunks); 411 no length; 413 body over the cap, however it was encoded; 415 an encoding
  other than gzip/deflate; 429 too many requests at once from one address;
* 404 unknown token; 410 a job that already ended here; 409 a different terminal status after
  the terminal one; 422 an ``order_id`` that is not this job's.
Nothing but a 200 changes anything. Connections, deadlines and bodies: `local_http.py`.

The server starts with the first registered job and stops when the last one is released (a
refcount of live jobs, thread-safe). Tokens are secrets: log lines show only their first
characters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ProviderError
from .http import PREFS_HINT
from .local_http import GuardedHandler, LocalHTTPServer, ServerLimits, client_of

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = ServerLimits.max_body  # a webhook is a few hundred bytes
TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 32 characters, 192 bits
_FINISHED_MEMORY = 1024  # recently released tokens, answered 410 instead of 404
_CHUNK = 1 << 16

# Webhook status kinds. The DRESSX document disagrees with itself (`success`/`failure` in the
# example, `PROCESSIN`/`SUCCEEDED`/`FAILED`/`CANCELED` in the text): both are read, any case.
DONE = "done"
FAILED = "failed"
CANCELED = "canceled"
RUNNING = "running"
TERMINAL = frozenset({DONE, FAILED, CANCELED})
STATUS_KINDS: dict[str, str] = {
    "success": DONE, "succeeded": DONE, "successful": DONE, "succeed": DONE,
    "completed": DONE, "complete": DONE, "done": DONE,
    "failure": FAILED, "failed": FAILED, "fail": FAILED, "error": FAILED,
    "canceled": CANCELED, "cancelled": CANCELED,
}  # anything else (PROCESSIN, processing, pending, queued, …) means "still working"

_TOKEN = r"(?P<token>[A-Za-z0-9_-]{16,128})"
_WEBHOOK_PATH = re.compile(rf"(?:^|/)w/{_TOKEN}/?$")
_MESH_PATH = re.compile(rf"(?:^|/)m/{_TOKEN}/mesh\.obj$")


def classify_status(value: Any) -> str | None:
    """DONE/FAILED/CANCELED/RUNNING for a webhook's `status`; None when there is none."""
    if not isinstance(value, str) or not value.strip():
        return None
    return STATUS_KINDS.get(value.strip().lower(), RUNNING)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def short(token: str) -> str:
    """What a log line may show of a token."""
    return f"{token[:4]}…" if token else "-"


class Registration:
    """One live job as the server knows it: its tokens, its mesh and the webhooks received.

    The handler `offer`s payloads; the job's worker `take`s them. Only the worker decides what a
    payload means for the job; the server only keeps a finished job finished.
    """

    def __init__(self, order: int | None, mesh_path: str, webhook_token: str,
                 mesh_token: str) -> None:
        self.order = order
        self.mesh_path = mesh_path
        self.webhook_token = webhook_token
        self.mesh_token = mesh_token
        self.arrived = threading.Event()
        self.terminal: str | None = None  # kind of the terminal webhook taken, once there is one
        self.mesh_fetches = 0
        self._updates: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registration(order={self.order}, webhook={short(self.webhook_token)})"

    def offer(self, payload: dict[str, Any], kind: str) -> tuple[int, str]:
        with self._lock:
            if self.terminal is not None:
                if kind == self.terminal:
                    return 200, "duplicate ignored"
                return 409, "this job has already finished"
            if kind in TERMINAL:
                self.terminal = kind
            self._updates.append(payload)
            self.arrived.set()
        return 200, "accepted"

    def take(self) -> list[dict[str, Any]]:
        """The payloads received since the last call, oldest first."""
        with self._lock:
            out, self._updates = self._updates, []
            self.arrived.clear()
        return out

    def wait(self, timeout: float) -> bool:
        return self.arrived.wait(timeout)

    def _count_fetch(self) -> None:
        with self._lock:
            self.mesh_fetches += 1


class LocalServer:
    """A loopback HTTP server with a table of live jobs. Use the module functions for the
    process-wide one; tests may run their own."""

    def __init__(self, port: int = 0, max_body: int = MAX_BODY,
                 limits: ServerLimits | None = None) -> None:
        self.requested_port = port
        self.limits = limits or ServerLimits()
        self.limits.max_body = max_body
        self._lock = threading.Lock()
        self._by_webhook: dict[str, Registration] = {}
        self._by_mesh: dict[str, Registration] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._httpd: LocalHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life ----------------------------------------------------------------------------------

    def start(self) -> LocalServer:
        try:
            httpd = LocalHTTPServer((HOST, self.requested_port), _Handler, self.limits, self)
        except OSError as exc:
            raise ProviderError(_bind_problem(self.requested_port, exc)) from None
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name="t2t-local-server", daemon=True,
        )
        self._thread.start()
        log.info("local server for DRESSX listening on %s", self.url)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(2.0)
        log.info("local server for DRESSX stopped")

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def server_address(self) -> tuple[str, int]:
        if self._httpd is None:
            raise RuntimeError("the local server is not running")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        """The loopback base URL (what a tunnel must forward to)."""
        return f"http://{HOST}:{self.port}"

    # ---- jobs ----------------------------------------------------------------------------------

    def register(self, order: int | None, mesh_path: str = "", *,
                 webhook_token: str | None = None, mesh_token: str | None = None) -> Registration:
        """Serve a job. With the tokens of a job registered before (a resumed job), the same
        paths come back; registering a live token again returns its registration unchanged."""
        with self._lock:
            if webhook_token and webhook_token in self._by_webhook:
                return self._by_webhook[webhook_token]
            reg = Registration(order, mesh_path, webhook_token or new_token(),
                               (mesh_token or new_token()) if mesh_path else "")
            self._by_webhook[reg.webhook_token] = reg
            if reg.mesh_token:
                self._by_mesh[reg.mesh_token] = reg
            self._finished.pop(reg.webhook_token, None)
        log.debug("local server: job for order %s registered (webhook %s)", order,
                  short(reg.webhook_token))
        return reg

    def unregister(self, webhook_token: str) -> bool:
        with self._lock:
            reg = self._by_webhook.pop(webhook_token, None)
            if reg is None:
                return False
            if reg.mesh_token:
                self._by_mesh.pop(reg.mesh_token, None)
            self._finished[webhook_token] = None
            while len(self._finished) > _FINISHED_MEMORY:
                self._finished.popitem(last=False)
        log.debug("local server: job for order %s released", reg.order)
        return True

    def lookup(self, webhook_token: str) -> Registration | None:
        with self._lock:
            return self._by_webhook.get(webhook_token)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_webhook)

    # ---- requests (handler threads) ------------------------------------------------------------

    def deliver(self, token: str, raw: bytes) -> tuple[int, str]:
        """Check one webhook and queue it for its job; never blocks on the job."""
        with self._lock:
            reg = self._by_webhook.get(token)
            finished = token in self._finished
        if reg is None:
            return (410, "this job has already finished") if finished else (404, "not found")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return 400, "the body is not JSON"
        if not isinstance(payload, dict):
            return 400, "the body must be a JSON object"
        kind = classify_status(payload.get("status"))
        if kind is None:
            return 400, "the body has no status"
        if not _order_matches(payload, reg.order):
            return 422, "order_id does not belong to this address"
        answer = reg.offer(payload, kind)
        log.info("DRESSX webhook for order %s (%s, %s): %d %s", reg.order,
                 str(payload.get("status"))[:20], short(token), *answer)
        return answer

    def mesh_for(self, token: str) -> Registration | None:
        with self._lock:
            return self._by_mesh.get(token)


def _order_matches(payload: Mapping[str, Any], order: int | None) -> bool:
    """A webhook naming another order was sent to the wrong address: refuse it. The field is
    `order_id` in the document's example; `order` is accepted too. Absent means no claim."""
    if order is None:
        return True
    for name in ("order_id", "order"):
        if name in payload and payload[name] is not None:
            return str(payload[name]).strip() == str(order)
    return True


def _bind_problem(port: int, exc: OSError) -> str:
    if port and getattr(exc, "errno", None) in _ADDR_IN_USE:
        return (f"The DRESSX local port {port} is in use by another program (another Blender?) "
                f"— close it, or pick another port in {PREFS_HINT} > DRESSX")
    if port:
        return (f"The DRESSX local server could not listen on port {port} "
                f"({exc.strerror or exc}) — pick another port in {PREFS_HINT} > DRESSX")
    return f"The DRESSX local server could not start ({exc.strerror or exc})"


_ADDR_IN_USE = {98, 48, 10048}  # EADDRINUSE on Linux, macOS, Windows


# --------------------------------------------------------------------------- HTTP


class _Handler(GuardedHandler):
    def do_GET(self) -> None:
        self._mesh(head=False)

    def do_HEAD(self) -> None:
        self._mesh(head=True)

    def do_POST(self) -> None:
        m = _WEBHOOK_PATH.search(urlsplit(self.path).path)
        if m is None:
            self.reply(404, "not found")
            return
        raw, problem = self.body()
        if problem is not None:
            self.reply(*problem)
            return
        self.reply(*self.server.owner.deliver(m["token"], raw))

    def _not_found(self) -> None:
        self.reply(404, "not found")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_found

    def _mesh(self, head: bool) -> None:
        if not self.server.claim_client(client_of(self.headers, self.client_address[0])):
            self.reply(429, "too many requests at once from one address")
            return
        m = _MESH_PATH.search(urlsplit(self.path).path)
        reg = self.server.owner.mesh_for(m["token"]) if m else None
        if reg is None or not reg.mesh_path:
            self.server.request_arrived(self.server.limits.answer_s)
            self.reply(404, "not found")
            return
        try:
            fh = open(reg.mesh_path, "rb")
        except OSError:
            self.reply(404, "not found")
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            limits = self.server.limits
            self.server.request_arrived(limits.answer_s + size / limits.send_rate)
            self.send_response(200)
            self.send_header("Content-Type", "model/obj")
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if head:
                return
            reg._count_fetch()
            log.info("DRESSX fetched the mesh for order %s (%d bytes)", reg.order, size)
            while chunk := fh.read(_CHUNK):
                self.wfile.write(chunk)


# --------------------------------------------------------------------------- the process-wide one

_lock = threading.RLock()
_server: LocalServer | None = None


def acquire(order: int | None, mesh_path: str = "", *, port: int = 0,
            webhook_token: str | None = None,
            mesh_token: str | None = None) -> tuple[LocalServer, Registration]:
    """Register a job with the process-wide server, starting it if needed.

    `port` 0 takes whatever port is running (or a free one). A fixed `port` that differs from
    the running server's restarts it when no job uses it, else refuses: moving would strand the
    live jobs' webhooks.
    """
    global _server
    with _lock:
        srv = _server
        if srv is not None and port and srv.port != port:
            if len(srv):
                raise ProviderError(
                    f"The DRESSX local server is serving running jobs on port {srv.port}; let "
                    f"them finish (or cancel them) before it can move to port {port}")
            srv.stop()
            srv = _server = None
        if srv is None:
            srv = LocalServer(port).start()
            _server = srv
        reg = srv.register(order, mesh_path, webhook_token=webhook_token, mesh_token=mesh_token)
        return srv, reg


def release(webhook_token: str) -> None:
    """The job is over: stop serving it, and stop the server once no job is left."""
    global _server
    with _lock:
        srv = _server
        if srv is None:
            return
        srv.unregister(webhook_token)
        if not len(srv):
            srv.stop()
            _server = None


def lookup(webhook_token: str) -> Registration | None:
    with _lock:
        return _server.lookup(webhook_token) if _server is not None else None


def current() -> LocalServer | None:
    """The running server, if any (the panel may show its loopback URL for the tunnel)."""
    with _lock:
        return _server


def shutdown() -> None:
    """Stop the server and forget every job (add-on unregister; tests simulating a restart)."""
    global _server
    with _lock:
        srv, _server = _server, None
        if srv is not None:
            srv.stop()
