"""The local server DRESSX talks to: loopback only, secret paths, webhooks checked and queued."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.base import guard_loopback
from text_to_texture.net import local_server as ws
from text_to_texture.net.local_server import LocalServer
from text_to_texture.providers.base import ProviderError

OBJ = b"o Cube\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\n"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    yield
    ws.shutdown()
    assert wait_for(lambda: not server_threads()), server_threads()


@pytest.fixture()
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def mesh(tmp_path: Path) -> str:
    path = tmp_path / "Cube.obj"
    path.write_bytes(OBJ)
    return str(path)


def server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("t2t-local-server")]


def wait_for(check: Any, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.01)
    return bool(check())


def post(srv: LocalServer, token: str, body: Any, prefix: str = "") -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{srv.url}{prefix}/w/{token}", data=data, timeout=5,
                         headers={"Content-Type": "application/json"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# --------------------------------------------------------------------------- binding, tokens


def test_it_listens_on_loopback_only(server: LocalServer) -> None:
    assert server.server_address == ("127.0.0.1", server.port)
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert ws.HOST == "127.0.0.1"


def test_tokens_are_unguessable_and_per_job(server: LocalServer, mesh: str) -> None:
    regs = [server.register(i, mesh) for i in range(1, 201)]
    tokens = [r.webhook_token for r in regs] + [r.mesh_token for r in regs]
    assert len(set(tokens)) == 400
    for token in tokens:
        assert len(token) >= 32 and set(token) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert server.register(999).mesh_token == ""  # no mesh, no mesh path


# --------------------------------------------------------------------------- the mesh


def test_it_serves_only_live_jobs_meshes(server: LocalServer, mesh: str) -> None:
    reg = server.register(7, mesh)
    url = f"{server.url}/m/{reg.mesh_token}/mesh.obj"
    got = requests.get(url, timeout=5)
    assert got.status_code == 200 and got.content == OBJ
    assert got.headers["Content-Type"] == "model/obj"
    head = requests.head(url, timeout=5)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(OBJ))
    assert reg.mesh_fetches == 1  # HEAD is not a fetch
    # Behind a tunnel or proxy that keeps a prefix.
    assert requests.get(f"{server.url}/t2t/m/{reg.mesh_token}/mesh.obj", timeout=5).content == OBJ
    for path in ("/", "/m/", f"/m/{reg.webhook_token}/mesh.obj", f"/m/{reg.mesh_token}",
                 f"/m/{reg.mesh_token}/other.obj", f"/w/{reg.webhook_token}", "/../etc/passwd"):
        assert requests.get(f"{server.url}{path}", timeout=5).status_code == 404, path
    assert requests.post(url, data=b"{}", timeout=5).status_code == 404
    assert requests.put(url, data=b"x", timeout=5).status_code == 404
    assert requests.delete(url, timeout=5).status_code == 404
    server.unregister(reg.webhook_token)
    assert requests.get(url, timeout=5).status_code == 404
    assert reg.mesh_fetches == 2


# --------------------------------------------------------------------------- webhooks


def test_bad_webhooks_are_rejected_and_change_nothing(server: LocalServer) -> None:
    reg = server.register(12345)
    other = server.register(54321)
    cases: list[tuple[str, Any, int]] = [
        ("unknown token", None, 404),
        ("not JSON", b"{'status': 'success',}", 400),
        ("not UTF-8", b"\xff\xfe{}", 400),
        ("an array", [{"status": "success"}], 400),
        ("no status", {"order_id": 12345}, 400),
        ("empty status", {"status": " "}, 400),
        ("status not text", {"status": 1}, 400),
        ("another order", {"order_id": 999, "status": "success"}, 422),
        ("too big", {"status": "success", "pad": "x" * ws.MAX_BODY}, 413),
    ]
    for name, body, code in cases:
        token = ws.new_token() if body is None else reg.webhook_token
        resp = post(server, token, {"status": "success"} if body is None else body)
        assert resp.status_code == code, name
        assert resp.json()["ok"] is False
    assert reg.take() == [] and not reg.arrived.is_set() and reg.terminal is None
    assert other.take() == []


def test_a_request_without_length_is_refused(server: LocalServer) -> None:
    reg = server.register(1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(f"POST /w/{reg.webhook_token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.0 411")
    assert reg.take() == []


def test_accepted_webhooks_reach_the_job_once(server: LocalServer) -> None:
    reg = server.register(12345)
    running = {"order_id": 12345, "status": "PROCESSIN"}
    done = {"order_id": "12345", "status": "SUCCEEDED", "balance": 9}
    assert post(server, reg.webhook_token, running).status_code == 200
    assert reg.arrived.is_set() and reg.terminal is None
    assert post(server, reg.webhook_token, done, prefix="/tunnel").status_code == 200
    again = post(server, reg.webhook_token, done)
    assert again.status_code == 200 and again.json()["message"] == "duplicate ignored"
    spelled = post(server, reg.webhook_token, {"status": "success"})  # same kind, other spelling
    assert spelled.status_code == 200
    late = post(server, reg.webhook_token, {"status": "failure", "message": "late"})
    assert late.status_code == 409
    late_running = post(server, reg.webhook_token, running)
    assert late_running.status_code == 409
    assert reg.take() == [running, done] and reg.terminal == ws.DONE
    assert reg.take() == [] and not reg.arrived.is_set()


def test_a_finished_job_is_gone(server: LocalServer) -> None:
    reg = server.register(5)
    server.unregister(reg.webhook_token)
    resp = post(server, reg.webhook_token, {"status": "success"})
    assert resp.status_code == 410 and reg.take() == []
    assert server.unregister(reg.webhook_token) is False


def test_a_chunked_webhook_is_read(server: LocalServer) -> None:
    reg = server.register(3)
    body = json.dumps({"status": "failure", "message": "no UVs"}).encode()
    resp = requests.post(f"{server.url}/w/{reg.webhook_token}", timeout=5,
                         data=(body[i:i + 7] for i in range(0, len(body), 7)))
    assert resp.status_code == 200
    assert reg.take() == [{"status": "failure", "message": "no UVs"}]
    big = (b"x" * 65536 for _ in range(8))
    resp = requests.post(f"{server.url}/w/{reg.webhook_token}", data=big, timeout=5)
    assert resp.status_code == 413 and reg.take() == []


def test_it_answers_at_once_while_the_consumer_and_a_download_are_slow(
    server: LocalServer, tmp_path: Path
) -> None:
    big = tmp_path / "big.obj"
    big.write_bytes(b"v 0 0 0\n" * 1_000_000)  # 8 MB: a reader that never reads blocks a thread
    reg = server.register(1, str(big))
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /m/{reg.mesh_token}/mesh.obj HTTP/1.0\r\n\r\n".encode())
    taken: list[dict[str, Any]] = []
    stop = threading.Event()

    def slow_consumer() -> None:
        while not stop.is_set():
            if reg.wait(0.05):
                taken.extend(reg.take())
                time.sleep(0.3)  # e.g. a download on the worker thread

    consumer = threading.Thread(target=slow_consumer)
    consumer.start()
    times = []
    try:
        for i in range(10):
            start = time.perf_counter()
            assert post(server, reg.webhook_token, {"status": "processing", "i": i}).ok
            times.append(time.perf_counter() - start)
    finally:
        assert wait_for(lambda: len(taken) == 10)
        stop.set()
        consumer.join()
        stalled.close()
    assert max(times) < 0.25, times
    assert [p["i"] for p in taken] == list(range(10))


def test_a_flood_of_connections_is_bounded_and_yields_to_new_ones(server: LocalServer) -> None:
    """Full slots are not a wall: a new connection takes the slot of the oldest one still
    sending its request; threads never grow past the cap."""
    server.limits.max_connections = 3
    reg = server.register(1)
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
    try:
        assert wait_for(lambda: len(server_threads()) == 4)  # the accept loop + 3
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        assert idle[0].recv(10) == b""  # the oldest was dropped for it
        assert wait_for(lambda: len(server_threads()) == 4)
        extra.close()
    finally:
        for s in idle:
            s.close()
    assert wait_for(lambda: len(server_threads()) == 1)
    assert post(server, reg.webhook_token, {"status": "success"}).status_code == 200


# --------------------------------------------------------------------------- the process-wide one


def test_it_starts_with_the_first_job_and_stops_with_the_last(mesh: str) -> None:
    assert ws.current() is None
    srv, a = ws.acquire(1, mesh)
    same, b = ws.acquire(2)
    assert same is srv and len(srv) == 2
    port = srv.port
    ws.release(a.webhook_token)
    assert ws.current() is srv and not refused(port)
    assert ws.lookup(b.webhook_token) is b and ws.lookup(a.webhook_token) is None
    ws.release(b.webhook_token)
    ws.release(b.webhook_token)  # twice is harmless
    assert ws.current() is None and refused(port)
    assert wait_for(lambda: not server_threads())


def test_the_refcount_is_thread_safe() -> None:
    errors: list[BaseException] = []

    def job(i: int) -> None:
        try:
            for _ in range(5):
                _, reg = ws.acquire(i)
                time.sleep(0.001)
                ws.release(reg.webhook_token)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(1, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert ws.current() is None and wait_for(lambda: not server_threads())


def test_the_same_tokens_again_and_a_fixed_port(mesh: str) -> None:
    port = free_port()
    srv, reg = ws.acquire(4, mesh, port=port)
    assert srv.port == port
    again = ws.acquire(4, mesh, port=port, webhook_token=reg.webhook_token,
                       mesh_token=reg.mesh_token)[1]
    assert again is reg and len(srv) == 1  # counted once
    ws.shutdown()  # Blender quit
    srv2, back = ws.acquire(4, mesh, port=port, webhook_token=reg.webhook_token,
                            mesh_token=reg.mesh_token)
    assert srv2 is not srv and srv2.port == port
    assert requests.get(f"{srv2.url}/m/{reg.mesh_token}/mesh.obj", timeout=5).content == OBJ
    assert post(srv2, reg.webhook_token, {"status": "success"}).status_code == 200
    assert back.take() == [{"status": "success"}]
    ws.release(back.webhook_token)
    assert ws.current() is None


def test_port_problems_are_one_line() -> None:
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(ProviderError) as err:
            ws.acquire(1, port=port)
    assert err.value.message.startswith(f"The DRESSX local port {port} is in use by another "
                                         "program")
    assert ws.current() is None
    _, reg = ws.acquire(1)
    with pytest.raises(ProviderError, match="serving running jobs on port"):
        ws.acquire(2, port=port)
    ws.release(reg.webhook_token)
    srv, reg = ws.acquire(3, port=port)  # no job left on the old one: it moves
    assert srv.port == port
    ws.release(reg.webhook_token)


def test_statuses_are_classified() -> None:
    for word in ("success", "SUCCEEDED", "Succeeded", "completed"):
        assert ws.classify_status(word) == ws.DONE
    for word in ("failure", "FAILED", "error"):
        assert ws.classify_status(word) == ws.FAILED
    for word in ("CANCELED", "cancelled"):
        assert ws.classify_status(word) == ws.CANCELED
    for word in ("PROCESSIN", "processing", "pending", "queued", "something new"):
        assert ws.classify_status(word) == ws.RUNNING
    for value in (None, "", 3, {"a": 1}):
        assert ws.classify_status(value) is None


def test_log_lines_never_hold_a_token(mesh: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    srv, reg = ws.acquire(77, mesh)
    requests.get(f"{srv.url}/m/{reg.mesh_token}/mesh.obj", timeout=5)
    post(srv, reg.webhook_token, {"status": "success", "order_id": 77})
    post(srv, reg.webhook_token, {"status": "failure"})
    post(srv, ws.new_token(), {"status": "success"})
    ws.release(reg.webhook_token)
    # Only the extension's own loggers: urllib3 (DRESSX's side here) logs whole URLs.
    ours = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.startswith("text_to_texture"))
    assert "order 77" in ours
    assert reg.webhook_token not in ours and reg.mesh_token not in ours
    assert reg.webhook_token[:8] not in ours
