"""The local server's HTTP plumbing: connections, deadlines, bodies. Anyone can reach it
through the artist's tunnel, so nothing a client sends is trusted.

* Every connection has a total deadline: the whole request (line, headers, body) must arrive
  within `ServerLimits.request_s`; the answer then has its own (a mesh download gets time for its
  size). The server's loop shuts down any socket past its deadline, so a client that sends a
  byte every ten seconds holds a thread for seconds, not for ever.
* Connection slots are bounded; when they are full, a new connection takes the slot of the
  oldest one still sending its request (the slowest), so a flood of slow clients cannot keep a
  real webhook out. One client (behind a tunnel: the address the tunnel forwards for) may hold
  only `per_client` requests at once; more get 429 at once.
* A body is read under one cap whatever its encoding: a Content-Length, chunks (sizes must be
  plain hexadecimal: a negative or malformed size is a 400, never "read to the end"), gzip or
  deflate (counted after decompression). Ambiguous framing (a length and chunks) is a 400.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

Problem = tuple[int, str]
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,12}")
_LINE = 1024  # longest chunk-size line or trailer we read
_TRAILERS = 32
LINGER_S = 0.5  # at most this long, and this much, is read of a refused body before closing
LINGER_BYTES = 4 << 20
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass
class ServerLimits:
    max_body: int = 256 * 1024  # a webhook is a few hundred bytes; anything near this is not one
    request_s: float = 10.0  # the whole request must arrive within this
    answer_s: float = 30.0  # a short answer must be taken within this
    send_rate: int = 256 * 1024  # bytes/s a mesh download is given time for (plus `answer_s`)
    max_connections: int = 32
    per_client: int = 8
    socket_timeout: float = 5.0  # one silent read or write; the deadlines bound the total


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    deadline: float
    started: float
    sending_request: bool = True  # still reading its request: may be evicted for a new one
    client: str = ""


class LocalHTTPServer(ThreadingHTTPServer):
    """Tracks its connections: deadlines, slots, clients; `stop` leaves no thread behind."""

    daemon_threads = True
    block_on_close = False
    # SO_REUSEADDR lets a fixed port be bound again at once after a stop (TIME_WAIT); on Windows
    # it would let two servers share the port, so it is off there.
    allow_reuse_address = os.name != "nt"

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 limits: ServerLimits, owner: Any) -> None:
        super().__init__(address, handler)
        self.limits = limits
        self.owner = owner
        self._conns: dict[threading.Thread, _Conn] = {}
        self._lock = threading.Lock()

    # ---- slots ---------------------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        now = time.monotonic()
        with self._lock:
            busy = list(self._conns.values())
            if len(busy) >= self.limits.max_connections:
                waiting = [c for c in busy if c.sending_request]
                if not waiting or len(busy) >= 2 * self.limits.max_connections:
                    log.warning("local server: every connection is busy; one was refused")
                    self.shutdown_request(request)
                    return
                victim = min(waiting, key=lambda c: c.started)
                victim.deadline = 0.0  # cut by `service_actions` or right here
                _shut(victim.sock)
                log.info("local server: all slots taken; the slowest request was dropped")
            conn = _Conn(request, now + self.limits.request_s, now)
            thread = threading.Thread(target=self._serve_one, args=(request, client_address),
                                      name="t2t-local-server-conn", daemon=True)
            self._conns[thread] = conn
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception as exc:  # a client that went away must not print a traceback
            log.debug("local server: connection ended: %s", type(exc).__name__)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._conns.pop(threading.current_thread(), None)

    def conn(self) -> _Conn | None:
        with self._lock:
            return self._conns.get(threading.current_thread())

    def request_arrived(self, answer_s: float) -> None:
        """This thread's request is in: it is no longer evictable, and its answer has
        `answer_s` seconds."""
        conn = self.conn()
        if conn is not None:
            conn.sending_request = False
            conn.deadline = time.monotonic() + answer_s

    def claim_client(self, client: str) -> bool:
        """Count this thread's request for `client`; False if that client has too many."""
        with self._lock:
            conn = self._conns.get(threading.current_thread())
            if conn is None:
                return True
            others = sum(1 for c in self._conns.values() if c.client == client and c is not conn)
            if others >= self.limits.per_client:
                return False
            conn.client = client
            return True

    def service_actions(self) -> None:
        """Called by `serve_forever` every poll interval: cut connections past their deadline."""
        now = time.monotonic()
        with self._lock:
            late = [c for c in self._conns.values() if c.deadline <= now]
        for conn in late:
            _shut(conn.sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("local server: request failed", exc_info=True)

    def close_connections(self, timeout: float = 2.0) -> None:
        """Cut open connections (a slow mesh download) and wait for their threads."""
        with self._lock:
            conns = list(self._conns.items())
        for _, conn in conns:
            _shut(conn.sock)
        for thread, _ in conns:
            thread.join(timeout)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def client_of(headers: Any, peer: str) -> str:
    """Who is asking: behind a tunnel (every connection comes from this computer), the address
    the tunnel says it forwards for (the last X-Forwarded-For hop is the one it added)."""
    try:
        local = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        local = False
    if local:
        for name in ("Cf-Connecting-Ip", "X-Real-Ip"):
            value = (headers.get(name) or "").strip()
            if value:
                return value[:64]
        forwarded = headers.get_all("X-Forwarded-For") or []
        hops = [h.strip() for v in forwarded for h in v.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return peer


# --------------------------------------------------------------------------- bodies


def read_body(headers: Any, rfile: Any, cap: int) -> tuple[bytes, Problem | None]:
    """The request body, decoded, or the status and line to answer instead."""
    lengths = headers.get_all("Content-Length") or []
    transfer = [c.strip().lower() for v in headers.get_all("Transfer-Encoding") or []
                for c in v.split(",") if c.strip()]
    content = [c.strip().lower() for v in headers.get_all("Content-Encoding") or []
               for c in v.split(",") if c.strip()]
    if transfer and lengths:
        return b"", (400, "both Content-Length and Transfer-Encoding")
    if transfer:
        if transfer[-1] != "chunked":
            return b"", (400, "Transfer-Encoding must end with chunked")
        raw, problem = _chunked(rfile, cap)
        codings = content + [c for c in transfer[:-1] if c != "identity"]
    else:
        if not lengths:
            return b"", (411, "a Content-Length is required")
        if len({v.strip() for v in lengths}) != 1 or not _DIGITS.fullmatch(lengths[0].strip()):
            return b"", (400, "bad Content-Length")
        length = int(lengths[0])
        if length > cap:
            return b"", (413, f"the body is larger than {cap} bytes")
        raw = rfile.read(length)
        problem = (400, "the body is incomplete") if len(raw) < length else None
        codings = content
    if problem is not None:
        return b"", problem
    for coding in reversed([c for c in codings if c != "identity"]):
        raw, problem = _decode(raw, coding, cap)
        if problem is not None:
            return b"", problem
    return raw, None


def _chunked(rfile: Any, cap: int) -> tuple[bytes, Problem | None]:
    parts: list[bytes] = []
    size = 0
    while True:
        line = rfile.readline(_LINE)
        if not line.endswith(b"\n"):
            return b"", (400, "bad chunked body")
        head = line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(head):  # "-1", "0x10", "1 2", "": never a size
            return b"", (400, "bad chunk size")
        n = int(head, 16)
        if n == 0:
            return b"".join(parts), _trailers(rfile)
        size += n
        if size > cap:
            return b"", (413, f"the body is larger than {cap} bytes")
        data = rfile.read(n)
        if len(data) < n or rfile.readline(3) not in (b"\r\n", b"\n"):
            return b"", (400, "bad chunked body")
        parts.append(data)


def _trailers(rfile: Any) -> Problem | None:
    for _ in range(_TRAILERS):
        line = rfile.readline(_LINE)
        if line in (b"\r\n", b"\n"):
            return None
        if not line.endswith(b"\n"):
            return (400, "bad chunked body")
    return (400, "too many trailers")


def _decode(data: bytes, coding: str, cap: int) -> tuple[bytes, Problem | None]:
    wbits = _CODINGS.get(coding)
    if wbits is None:
        return b"", (415, f"the body's encoding {coding[:20]!r} is not accepted")
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(data, cap + 1)
    except zlib.error:
        return b"", (400, f"the {coding} body is corrupt")
    if len(out) > cap or inflater.unconsumed_tail:
        return b"", (413, f"the body is larger than {cap} bytes once decompressed")
    return out, None


# --------------------------------------------------------------------------- handler base


class GuardedHandler(BaseHTTPRequestHandler):
    """HTTP/1.0 (one request per connection, so no idle keep-alive thread outlives it), quiet
    logs (the request line holds a token), and one JSON shape for every answer."""

    protocol_version = "HTTP/1.0"
    server_version = "TextToTexture"
    sys_version = ""
    server: LocalHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.limits.socket_timeout)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def body(self) -> tuple[bytes, Problem | None]:
        """The request body under the server's cap, after the per-client check."""
        if not self.server.claim_client(client_of(self.headers, self.client_address[0])):
            self.linger = True
            return b"", (429, "too many requests at once from one address")
        raw, problem = read_body(self.headers, self.rfile, self.server.limits.max_body)
        self.server.request_arrived(self.server.limits.answer_s)
        self.linger = problem is not None
        return raw, problem

    def finish(self) -> None:
        """After refusing a body that was not read to its end, read a little more of it before
        closing: closing on unread bytes resets the connection, and the client might never see
        our answer (the 400 or 413 it should act on)."""
        super().finish()
        if not getattr(self, "linger", False):
            return
        try:
            self.connection.shutdown(socket.SHUT_WR)
            end = time.monotonic() + LINGER_S
            drained = 0
            while drained < LINGER_BYTES and time.monotonic() < end:
                self.connection.settimeout(max(0.01, end - time.monotonic()))
                piece = self.connection.recv(65536)
                if not piece:
                    break
                drained += len(piece)
        except OSError:
            pass

    def reply(self, status: int, message: str) -> None:
        body = json.dumps({"ok": status < 300, "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
