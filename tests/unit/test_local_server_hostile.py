"""The DRESSX local server against hostile clients (issue 13, cases 1 and 2): anyone can reach
it through the tunnel. Bodies are capped however they are encoded, a malformed chunk size is a
400 (never "read until the connection ends"), every connection has a total deadline, and a
flood of slow clients cannot keep a real webhook out.

Clients here are raw sockets, since no HTTP library sends a negative chunk size.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emulators.base import guard_loopback
from text_to_texture.net import local_server as ws
from text_to_texture.net.local_server import LocalServer

CAP = ws.MAX_BODY
WEBHOOK = json.dumps({"status": "success", "order_id": 7}).encode()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture()
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    try:
        yield srv
    finally:
        srv.stop()
    end = time.monotonic() + 3
    while any(t.name.startswith("t2t-local-server") for t in threading.enumerate()):
        assert time.monotonic() < end, "a local server thread was left behind"
        time.sleep(0.01)


def raw_post(srv: LocalServer, token: str, headers: dict[str, str] | list[tuple[str, str]],
             body: bytes, *, then: bytes = b"") -> tuple[int, dict[str, Any], float]:
    """Send a request as raw bytes (`then` keeps coming after it, from another thread);
    return (status, answer, seconds until the answer)."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    head = f"POST /w/{token} HTTP/1.1\r\nHost: tunnel.example\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    began = time.monotonic()
    sock.sendall(head.encode() + body)
    if then:
        threading.Thread(target=_flood, args=(sock, then), daemon=True).start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            piece = sock.recv(4096)
            if not piece:
                break
            answer += piece
    finally:
        took = time.monotonic() - began
        sock.close()
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1]), took


def _flood(sock: socket.socket, data: bytes) -> None:
    try:
        for i in range(0, len(data), 65536):
            sock.sendall(data[i:i + 65536])
    except OSError:
        pass  # the server hung up: what we want


# --------------------------------------------------------------------------- case 1


def test_a_negative_chunk_size_is_a_400_at_once_not_a_read_to_the_end(
    server: LocalServer,
) -> None:
    reg = server.register(7)
    status, answer, took = raw_post(server, reg.webhook_token, {"Transfer-Encoding": "chunked"},
                                    b"-1\r\n", then=b"x" * (64 << 20))
    assert (status, answer["message"]) == (400, "bad chunk size")
    assert took < 1.0  # answered without waiting for the 64 MB behind it
    assert reg.take() == []


def _chunks(data: bytes, size: int = 1000) -> bytes:
    out = b"".join(f"{len(data[i:i + size]):x}\r\n".encode() + data[i:i + size] + b"\r\n"
                   for i in range(0, len(data), size))
    return out + b"0\r\n\r\n"


BOMB = gzip.compress(b'{"status": "success", "pad": "' + b" " * (16 << 20) + b'"}')


@pytest.mark.parametrize(("headers", "body", "status", "words"), [
    ({"Transfer-Encoding": "chunked"}, b"0x10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n", 400,
     "bad chunk size"),
    ({"Transfer-Encoding": "chunked"}, b"1 0\r\n", 400, "bad chunk size"),
    ({"Transfer-Encoding": "chunked"}, b"\r\n", 400, "bad chunk size"),
    ({"Transfer-Encoding": "chunked"}, b"FFFFFFFFFFFFFFFF\r\n", 413, "larger than"),
    ({"Transfer-Encoding": "chunked"}, _chunks(b"x" * (CAP + 1), 65536), 413, "larger than"),
    ({"Transfer-Encoding": "chunked"}, b"4\r\nabcdXY0\r\n\r\n", 400, "bad chunked body"),
    ({"Transfer-Encoding": "chunked"}, b"2\r\n{}\r\n0\r\n" + b"X: y\r\n" * 40 + b"\r\n", 400,
     "trailers"),
    ({"Content-Length": str(CAP + 1)}, b"", 413, "larger than"),
    ({"Content-Length": "+12"}, b"{}", 400, "bad Content-Length"),
    ({"Content-Length": "1_2"}, b"{}", 400, "bad Content-Length"),
    ([("Content-Length", "2"), ("Content-Length", "3")], b"{}", 400, "bad Content-Length"),
    ({"Content-Length": "2", "Transfer-Encoding": "chunked"}, b"{}", 400, "both"),
    ({"Transfer-Encoding": "gzip"}, b"{}", 400, "must end with chunked"),
    ({"Content-Length": str(len(BOMB)), "Content-Encoding": "gzip"}, BOMB, 413,
     "once decompressed"),
    ({"Transfer-Encoding": "gzip, chunked"}, _chunks(BOMB, 8192), 413, "once decompressed"),
    ({"Content-Length": "2", "Content-Encoding": "br"}, b"{}", 415, "not accepted"),
    ({"Content-Length": "4", "Content-Encoding": "gzip"}, b"junk", 400, "corrupt"),
], ids=["0x prefix", "space in size", "empty size", "huge size", "chunks over the cap",
        "no CRLF after a chunk", "endless trailers", "length over the cap", "signed length",
        "underscored length", "two lengths", "length and chunks", "gzip without chunks",
        "gzip bomb", "chunked gzip bomb", "unknown encoding", "corrupt gzip"])
def test_the_cap_holds_for_every_way_a_body_can_be_encoded(
    server: LocalServer, headers: Any, body: bytes, status: int, words: str
) -> None:
    reg = server.register(7)
    got, answer, _ = raw_post(server, reg.webhook_token, headers, body)
    assert got == status and words in answer["message"], answer
    assert reg.take() == [] and reg.terminal is None


@pytest.mark.parametrize("encoding", ["chunked", "gzip", "chunked gzip", "deflate"])
def test_honest_encodings_still_arrive(server: LocalServer, encoding: str) -> None:
    reg = server.register(7)
    headers: dict[str, str] = {}
    body = WEBHOOK
    if "gzip" in encoding:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    if encoding == "deflate":
        import zlib

        body = zlib.compress(body)
        headers["Content-Encoding"] = "deflate"
    if "chunked" in encoding:
        headers["Transfer-Encoding"] = "chunked"
        body = _chunks(body, 7)
    else:
        headers["Content-Length"] = str(len(body))
    status, answer, _ = raw_post(server, reg.webhook_token, headers, body)
    assert status == 200, answer
    assert reg.take() == [json.loads(WEBHOOK)]


# --------------------------------------------------------------------------- case 2


def _slow_client(port: int, stop: threading.Event, forwarded: str = "") -> None:
    """A byte every half second, never finishing its request (a slowloris)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /w/x HTTP/1.1\r\n")
        while not stop.wait(0.5):
            sock.sendall(b"X")
    except OSError:
        return


def test_a_flood_of_slow_clients_cannot_keep_a_real_webhook_out(server: LocalServer) -> None:
    server.limits.max_connections = 8
    reg = server.register(7)
    stop = threading.Event()
    flood = [threading.Thread(target=_slow_client, args=(server.port, stop), daemon=True)
             for _ in range(32)]
    for t in flood:
        t.start()
    try:
        time.sleep(0.5)  # every slot is taken by a slow client by now
        threads = sum(1 for t in threading.enumerate() if t.name == "t2t-local-server-conn")
        assert threads <= 2 * server.limits.max_connections
        began = time.monotonic()
        resp = requests.post(f"{server.url}/w/{reg.webhook_token}", data=WEBHOOK, timeout=5)
        assert resp.status_code == 200 and time.monotonic() - began < 1.0
        assert reg.take() == [json.loads(WEBHOOK)]
    finally:
        stop.set()


def test_every_connection_has_a_total_deadline(server: LocalServer) -> None:
    """A client that never goes quiet long enough for a read timeout is still cut."""
    server.limits.request_s = 0.6
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    began = time.monotonic()
    sock.sendall(b"POST /w/x HTTP/1.1\r\n")
    closed_after = None
    try:
        while time.monotonic() - began < 5:
            sock.sendall(b"X")
            time.sleep(0.1)
    except OSError:
        closed_after = time.monotonic() - began
    finally:
        sock.close()
    assert closed_after is not None and closed_after < 1.5


def test_one_client_may_hold_only_a_few_requests_at_once(server: LocalServer) -> None:
    """Behind the tunnel every connection comes from this computer: the client is the address
    the tunnel forwards for. One address's extra requests get 429 at once; another's go on."""
    server.limits.per_client = 2
    reg = server.register(7)
    held = []
    for _ in range(2):  # complete headers, a body that never comes
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(f"POST /w/{reg.webhook_token} HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9"
                     f"\r\nContent-Length: 100\r\n\r\n".encode())
        held.append(sock)
    try:
        time.sleep(0.2)
        status, _, took = raw_post(server, reg.webhook_token,
                                        {"X-Forwarded-For": "203.0.113.9",
                                         "Content-Length": str(len(WEBHOOK))}, WEBHOOK)
        assert status == 429 and took < 1.0
        status, _, _ = raw_post(server, reg.webhook_token,
                                {"X-Forwarded-For": "198.51.100.4",
                                 "Content-Length": str(len(WEBHOOK))}, WEBHOOK)
        assert status == 200
    finally:
        for sock in held:
            sock.close()
