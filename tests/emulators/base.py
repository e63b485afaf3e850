"""What every provider emulator shares: a threaded loopback HTTP server, routes, recording,
auth checks, simulated task lifecycles, recognisable map images and fault knobs.

An emulator is a stand-in for a remote service that tests drive over real HTTP. It deliberately
shares no code with the extension (its PNG writer is its own), so a bug in the client cannot
hide itself by being mirrored here.

Fault knobs (each hits the next `count` matching requests; `method`/`path` narrow the match,
`path` being a regular expression searched in the request path):

* ``latency`` (attribute): seconds added to every request.
* ``delay_next(seconds)``: one slow answer (e.g. to trip a client's read timeout).
* ``fail_next(status)``: answer with an error status in the provider's error shape; for 429
  a ``Retry-After`` is sent (``retry_after=None`` sends none).
* ``drop_next()``: read the request, then close the socket without answering.
* ``truncate_downloads()``: announce the full Content-Length, send half, close.
* ``non_image_downloads()``: answer a file route 200 with an HTML page labelled image/png.
* ``expire_downloads()``: answer a file route 403 AccessDenied "Request has expired".
* ``fail_tasks(message)``: tasks created from now on end FAILED with that message.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# --------------------------------------------------------------------------- map images

# Each map role is a solid fill with an 8x8 marker block in the top-left corner, so a test can
# tell from pixels alone which map reached which socket, and that row 0 is the top.
ROLE_PIXELS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    # role: (fill, marker)
    "base_color": ((200, 60, 40), (255, 220, 0)),
    "roughness": ((170, 170, 170), (20, 20, 20)),
    "metallic": ((60, 60, 60), (230, 230, 230)),
    "normal": ((128, 128, 255), (255, 128, 128)),
    "height": ((100, 100, 100), (0, 0, 0)),
}
MARKER = 8  # marker block size in pixels


def expected_pixels(role: str) -> tuple[int, int, int]:
    """The fill colour of `role`'s map: what any pixel outside the top-left marker holds."""
    return ROLE_PIXELS[role][0]


def marker_pixels(role: str) -> tuple[int, int, int]:
    """The colour of the top-left 8x8 block of `role`'s map."""
    return ROLE_PIXELS[role][1]


def role_of_pixels(center: tuple[int, ...], corner: tuple[int, ...] | None = None) -> str | None:
    """Which role's map a (centre pixel, optional top-left pixel) pair belongs to."""
    for role, (fill, mark) in ROLE_PIXELS.items():
        if tuple(center[:3]) == fill and (corner is None or tuple(corner[:3]) == mark):
            return role
    return None


def png_bytes(width: int, height: int, rgb_rows: Callable[[int], bytes]) -> bytes:
    """A minimal 8-bit RGB PNG; `rgb_rows(y)` returns the packed pixels of row y."""
    raw = b"".join(b"\x00" + rgb_rows(y) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(data, zlib.crc32(kind))
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def map_png(role: str, size: int = 64) -> bytes:
    fill, mark = ROLE_PIXELS[role]
    m = min(MARKER, size // 2)
    marked = bytes(mark) * m + bytes(fill) * (size - m)
    plain = bytes(fill) * size
    return png_bytes(size, size, lambda y: marked if y < m else plain)


# --------------------------------------------------------------------------- recording, faults


@dataclass
class Recorded:
    """One request as the service saw it. The Authorization value itself is never kept."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names; authorization shown as "<present>"
    sent_auth: bool  # an Authorization header was present
    auth_ok: bool | None  # None for routes that need no auth (signed file links)
    body: Any  # parsed JSON, or None
    body_size: int
    at: float
    fault: str = ""


@dataclass
class Fault:
    kind: str  # status | drop | delay | truncate | not_image | expired
    count: int = 1
    method: str | None = None
    path: str | None = None
    status: int = 500
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    files_only: bool = False

    def matches(self, method: str, path: str, is_file: bool) -> bool:
        if self.count == 0 or (self.files_only and not is_file):
            return False
        if self.method and self.method != method:
            return False
        return not self.path or re.search(self.path, path) is not None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    params: dict[str, str]  # named groups of the route pattern
    json: Any = None
    json_error: bool = False

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # server-sent events and the like; closes after
    truncate: bool = False  # send half the body under the full Content-Length, then close
    drop: bool = False  # close without answering


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), "application/json", dict(headers or {}))


# --------------------------------------------------------------------------- task lifecycle


@dataclass
class SimTask:
    """A remote job whose phase follows the clock: queued, then running for `job_seconds`."""

    id: str
    kind: str
    created: float  # epoch seconds
    job_seconds: float
    pending_seconds: float = 0.0
    fail_message: str = ""
    canceled: bool = False
    expired: bool = False
    deleted: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # the create body, or what it implies
    files: dict[str, bytes] = field(default_factory=dict)  # file name -> content

    def phase(self, now: float | None = None) -> tuple[str, float]:
        """(queued|running|succeeded|failed|canceled|expired, progress 0..1)."""
        now = time.time() if now is None else now
        if self.expired:
            return "expired", 0.0
        if self.canceled:
            return "canceled", 0.0
        elapsed = now - self.created - self.pending_seconds
        if elapsed < 0:
            return "queued", 0.0
        span = self.job_seconds / 2 if self.fail_message else self.job_seconds
        if elapsed < span:
            return "running", min(0.99, elapsed / max(span, 1e-9))
        return ("failed", 0.0) if self.fail_message else ("succeeded", 1.0)

    def started_at(self) -> float:
        return self.created + self.pending_seconds

    def finished_at(self) -> float:
        span = self.job_seconds / 2 if self.fail_message else self.job_seconds
        return self.started_at() + span


# --------------------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real services do
    disable_nagle_algorithm = True  # else small answers stall ~40 ms on delayed ACKs
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        resp = self.server.emulator.dispatch(self.command, self.path, dict(self.headers), raw)
        if resp.drop:
            self._hang_up()
            return
        body = resp.body
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        if resp.stream is not None:
            self.send_header("Connection", "close")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self._write_stream(resp.stream)
            return
        self.send_header("Content-Length", str(len(body)))
        if resp.truncate:
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self._hang_up()
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _write_stream(self, stream: Iterator[bytes]) -> None:
        self.close_connection = True
        try:
            for piece in stream:
                self.wfile.write(piece)
                self.wfile.flush()
        except OSError:
            pass  # the client went away: that is how SSE ends

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _serve


Handler = Callable[[Request], Response]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool
    is_file: bool


class Emulator:
    """Base class: subclasses add routes in `setup_routes` and shape errors in `error`."""

    name = "base"
    env_prefix = "BASE"  # MESHY_API_KEY / MESHY_API_BASE when run by hand
    default_key = "emulator_test_key_0123456789"

    def __init__(
        self,
        api_key: str | None = None,
        job_seconds: float = 0.5,
        pending_seconds: float = 0.0,
        map_size: int = 64,
        port: int = 0,
    ) -> None:
        self.api_key = api_key or self.default_key
        self.job_seconds = job_seconds
        self.pending_seconds = pending_seconds
        self.map_size = map_size
        self.port = port
        self.latency = 0.0
        self.lock = threading.RLock()
        self.routes: list[_Route] = []
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.tasks: dict[str, SimTask] = {}
        self.task_fail_message = ""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.setup_routes()

    # ---- life ----------------------------------------------------------------------------------

    def start(self) -> Emulator:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.emulator = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"emulator-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget requests, tasks and faults (routes and key stay)."""
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.tasks.clear()
            self.task_fail_message = ""
            self.latency = 0.0

    # ---- routes --------------------------------------------------------------------------------

    def setup_routes(self) -> None:
        """Subclasses register their routes here with `route`."""

    def route(self, method: str, pattern: str, handler: Handler, *, auth: bool = True,
              is_file: bool = False) -> None:
        self.routes.append(_Route(method, re.compile(f"^{pattern}$"), handler, auth, is_file))

    def check_auth(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization", "") == f"Bearer {self.api_key}"

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        """The provider's error shape (override)."""
        return json_response({"message": message}, status, headers)

    def unauthorized(self) -> Response:
        return self.error(401, "Unauthorized")

    def no_route(self, req: Request) -> Response:
        return self.error(404, "Not found")

    # ---- knobs ---------------------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, *, method: str | None = None,
                  path: str | None = None, message: str = "",
                  retry_after: str | None = "1") -> None:
        headers = {"Retry-After": retry_after} if status == 429 and retry_after else {}
        self._add(Fault("status", count, method, path, status, message, headers))

    def drop_next(self, count: int = 1, *, method: str | None = None,
                  path: str | None = None) -> None:
        self._add(Fault("drop", count, method, path))

    def delay_next(self, seconds: float, count: int = 1, *, method: str | None = None,
                   path: str | None = None) -> None:
        self._add(Fault("delay", count, method, path, seconds=seconds))

    def truncate_downloads(self, count: int = 1, *, path: str | None = None) -> None:
        self._add(Fault("truncate", count, "GET", path, files_only=True))

    def non_image_downloads(self, count: int = 1, *, path: str | None = None) -> None:
        self._add(Fault("not_image", count, "GET", path, files_only=True))

    def expire_downloads(self, count: int = 1, *, path: str | None = None) -> None:
        self._add(Fault("expired", count, "GET", path, files_only=True))

    def fail_tasks(self, message: str = "Internal server error.") -> None:
        with self.lock:
            self.task_fail_message = message

    def _add(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def _take_fault(self, method: str, path: str, is_file: bool) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path, is_file):
                    if fault.count > 0:
                        fault.count -= 1
                    return fault
        return None

    # ---- inspection ----------------------------------------------------------------------------

    def recorded(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method)
                    and (path is None or re.search(path, r.path))]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.recorded(method, path))

    # ---- tasks ---------------------------------------------------------------------------------

    def new_task(self, kind: str, data: dict[str, Any]) -> SimTask:
        with self.lock:
            task = SimTask(
                id=str(uuid.uuid4()), kind=kind, created=time.time(),
                job_seconds=self.job_seconds, pending_seconds=self.pending_seconds,
                fail_message=self.task_fail_message, data=data,
            )
            self.tasks[task.id] = task
            return task

    def task(self, task_id: str) -> SimTask | None:
        with self.lock:
            task = self.tasks.get(task_id)
            return None if task is None or task.deleted else task

    # ---- dispatch ------------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, raw_headers: dict[str, str],
                 raw: bytes) -> Response:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        headers = {k.lower(): v for k, v in raw_headers.items()}
        route, params = self._match(method, path)
        is_file = bool(route and route.is_file)
        req = Request(method, path, query, headers, raw, params)
        if raw and "json" in headers.get("content-type", ""):
            try:
                req.json = json.loads(raw)
            except ValueError:
                req.json_error = True
        auth_ok = self.check_auth(headers) if route is None or route.auth else None
        rec = Recorded(
            method=method, path=path, query=query,
            headers={k: ("<present>" if k == "authorization" else v) for k, v in headers.items()},
            sent_auth="authorization" in headers, auth_ok=auth_ok, body=req.json,
            body_size=len(raw), at=time.time(),
        )
        with self.lock:
            self.requests.append(rec)
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(method, path, is_file)
        if fault is not None:
            rec.fault = fault.kind
            early = self._apply_early(fault)
            if early is not None:
                return early
        if route is None:
            return self.no_route(req)
        if route.auth and not auth_ok:
            return self.unauthorized()
        resp = route.handler(req)
        if fault is not None:
            resp = self._apply_late(fault, resp)
        return resp

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
        for route in self.routes:
            m = route.pattern.match(path)
            if m and route.method == method:
                return route, m.groupdict()
        return None, {}

    def _apply_early(self, fault: Fault) -> Response | None:
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return None
        if fault.kind == "drop":
            return Response(drop=True)
        if fault.kind == "status":
            return self.error(fault.status, fault.message or _REASONS.get(fault.status, "Error"),
                              fault.headers)
        if fault.kind == "expired":
            body = (b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                    b"<Message>Request has expired</Message></Error>")
            return Response(403, body, "application/xml")
        if fault.kind == "not_image":
            return Response(200, b"<html><body>Service unavailable</body></html>", "image/png",
                            {"Content-Disposition": 'attachment; filename="../../evil.png"'})
        return None

    def _apply_late(self, fault: Fault, resp: Response) -> Response:
        if fault.kind == "truncate" and resp.status == 200:
            resp.truncate = True
        return resp


_REASONS = {
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 422: "Unprocessable Entity", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


def emulator_fixture(cls: type[Emulator], scope: Any = "function", **kwargs: Any) -> Any:
    """A pytest fixture that starts `cls(**kwargs)` on a free loopback port and stops it after.

    In a test module:  ``meshy = emulator_fixture(MeshyEmulator, job_seconds=0.3)``
    """
    import pytest

    @pytest.fixture(scope=scope)
    def _emulator() -> Iterator[Emulator]:
        emu = cls(**kwargs).start()
        try:
            yield emu
        finally:
            emu.stop()

    return _emulator


# --------------------------------------------------------------------------- loopback guard


class NetworkGuardError(OSError):
    """A test tried to reach beyond 127.0.0.1/::1."""


def _loopback(host: Any) -> bool:
    import ipaddress

    text = str(host).strip("[]").lower()
    if text in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def guard_loopback(monkeypatch: Any) -> list[str]:
    """Make every connect (and name lookup) to a non-loopback address fail in this test.

    Returns the list of refused targets, so a test can also assert nothing even tried.
    """
    refused: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            refused.append(str(address[0]))
            raise NetworkGuardError(f"test tried to reach {address[0]} (only loopback allowed)")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _loopback(host):
            refused.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: lookups beyond loopback refused")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return refused
