"""Hostile servers and networks against the shared HTTP client (issue 13, cases 3, 4 and 9):
links that point home, answers that never end or expand, servers that trickle.

Each test talks to a raw-socket server on loopback (`emulators.hostile`) that does what an
honest server never would, and checks what the artist would notice: the one line they read,
that nothing was fetched that must not be, that memory stays small, that Esc is felt at once.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.base import guard_loopback, map_png
from emulators.hostile import (
    HostileServer,
    endless,
    gzip_bomb,
    huge_json,
    json_answer,
    png_answer,
    trickle,
)
from text_to_texture.net import http as http_module
from text_to_texture.net import inflight
from text_to_texture.net.http import NO_RETRY, HttpClient, HttpError, bearer
from text_to_texture.providers.base import (
    BASE_COLOR,
    Canceled,
    CancelToken,
    ProviderConfig,
    ProviderError,
    RemoteState,
    RemoteStatus,
    TextureRequest,
)
from text_to_texture.providers.dressx import DressxProvider
from text_to_texture.providers.triverse.results import download_direct

KEY = "sk_test_SECRET_hostile_0123456789"
MB = 1 << 20


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture()
def server() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        yield srv


def client(base: str, **kw: Any) -> HttpClient:
    return HttpClient(base, bearer(KEY), "Acme", retry=kw.pop("retry", NO_RETRY), **kw)


def peak_of(fn: Callable[[], Any]) -> tuple[Any, int]:
    """(what `fn` returned or raised, the peak bytes Python allocated while it ran)."""
    tracemalloc.start()
    try:
        try:
            out: Any = fn()
        except Exception as exc:  # the test looks at it
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- case 3: links


@pytest.mark.parametrize("link", [
    "http://127.0.0.1:{port}/m.png",  # plain http to another port of this computer
    "https://127.0.0.1:{port}/m.png",
    "https://localhost:{port}/m.png",
    "https://[::1]:{port}/m.png",
    "https://2130706433:{port}/m.png",  # 127.0.0.1 written as one number
    "https://0x7f.1:{port}/m.png",
    "https://10.0.0.7/m.png",
    "https://192.168.1.1/m.png",
    "https://169.254.169.254/latest/meta-data",  # a cloud's metadata service
    "https://router/m.png",
    "https://nas.local/m.png",
])
def test_a_link_pointing_home_is_refused_when_the_api_is_public(
    server: HostileServer, tmp_path: Path, link: str, loopback_only: list[str]
) -> None:
    server.routes["/m.png"] = png_answer(map_png("base_color"))
    port = server.url.rsplit(":", 1)[1]
    c = client("https://api.example.com")
    with pytest.raises(ProviderError) as err:
        c.download(link.format(port=port), str(tmp_path / "m.png"), MB, what="base color map")
    line = err.value.message
    assert "base color map link from Acme" in line and "was not fetched" in line, line
    assert server.connections == 0 and not loopback_only  # nothing was even tried
    assert not (tmp_path / "m.png").exists()


def test_a_public_name_that_resolves_home_is_refused_before_anything_is_sent(
    server: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS can point a public-looking name at this computer: the address the connection
    reached is checked before the request is written."""
    server.routes["/m.png"] = png_answer(map_png("base_color"))
    port = int(server.url.rsplit(":", 1)[1])
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "cdn.example.com" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    c = client("https://api.example.com")
    with pytest.raises(ProviderError) as err:
        c.download(f"https://cdn.example.com:{port}/m.png", str(tmp_path / "m.png"), MB)
    assert "resolves to a private address (127.0.0.1)" in err.value.message
    time.sleep(0.1)
    assert server.requests == []  # connected, but not one byte of a request was sent


def test_loopback_links_are_fine_when_the_api_itself_is_on_this_computer(
    server: HostileServer, tmp_path: Path
) -> None:
    server.routes["/m.png"] = png_answer(map_png("base_color"))
    got = client(server.url).download(f"{server.url}/m.png", str(tmp_path / "m.png"), MB)
    assert got.kind == "PNG" and Path(got.path).is_file()


def test_a_dressx_webhook_cannot_make_us_fetch_from_this_computer(
    server: HostileServer, tmp_path: Path
) -> None:
    """The webhook names the maps; DRESSX's API is public, so a loopback link is refused."""
    server.routes["/"] = png_answer(map_png("base_color"))
    provider = DressxProvider(ProviderConfig(
        api_key=KEY, api_base="https://api.dressx.example",
        extras={"public_url": "https://tunnel.example"}), retry=NO_RETRY)
    request = TextureRequest(job_id="abc123", prompt="x", out_dir=str(tmp_path),
                             file_stem="Cube")
    status = RemoteStatus(RemoteState.SUCCEEDED, 1.0,
                          maps={BASE_COLOR: f"{server.url}/steal"})
    with pytest.raises(ProviderError) as err:
        provider.fetch("17:1700000000.000:tok_0123456789abcdef0123:", status, request,
                       CancelToken(), lambda f, m: None)
    assert "points to this computer" in err.value.message and "order 17" in err.value.message
    assert server.connections == 0


# --------------------------------------------------------------------------- case 4: sizes


def test_a_huge_status_answer_is_refused_while_it_is_read(server: HostileServer) -> None:
    server.routes["/tasks/1"] = huge_json(256 * MB)
    out, peak = peak_of(lambda: client(server.url).get_json("/tasks/1"))
    assert isinstance(out, HttpError), out
    assert out.message.startswith("Acme sent an answer larger than 4 MB"), out.message
    assert peak < 32 * MB, peak  # read up to the cap, not the 256 MB


def test_a_gzip_bomb_is_stopped_by_its_decompressed_size(server: HostileServer) -> None:
    server.routes["/tasks/1"] = gzip_bomb(100 * MB)  # about 0.1 MB on the wire
    out, peak = peak_of(lambda: client(server.url).get_json("/tasks/1"))
    assert isinstance(out, HttpError) and "larger than 4 MB" in out.message, out
    assert peak < 64 * MB, peak


def test_an_endless_error_page_is_capped_too(server: HostileServer) -> None:
    server.routes["/tasks/1"] = endless()
    out, peak = peak_of(lambda: client(server.url).get_json("/tasks/1"))
    assert isinstance(out, HttpError) and "larger than 4 MB" in out.message
    assert peak < 32 * MB


def test_an_endless_download_stops_at_its_cap_without_holding_it(
    server: HostileServer, tmp_path: Path
) -> None:
    server.routes["/m.png"] = endless("image/png")
    out, peak = peak_of(lambda: client(server.url).download(
        f"{server.url}/m.png", str(tmp_path / "m.png"), 64 * MB))
    assert isinstance(out, HttpError) and "larger than the 64 MB" in out.message, out
    assert peak < 16 * MB, peak  # streamed to disk, never held
    assert not list(tmp_path.iterdir())  # the partial file is gone


def test_small_answers_still_arrive_whole(server: HostileServer) -> None:
    server.routes["/tasks/1"] = json_answer({"status": "SUCCEEDED", "progress": 100})
    assert client(server.url).get_json("/tasks/1") == {"status": "SUCCEEDED", "progress": 100}


# --------------------------------------------------------------------------- case 9: trickles


def _cancel_after(token: CancelToken, seconds: float) -> list[float]:
    """Cancel `token` after `seconds`; returns [when it was canceled]."""
    when: list[float] = []

    def go() -> None:
        time.sleep(seconds)
        when.append(time.monotonic())
        token.cancel()

    threading.Thread(target=go, daemon=True).start()
    return when


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "status line"])
def test_cancel_cuts_a_trickling_status_answer_within_a_second(
    server: HostileServer, headers_too: bool
) -> None:
    server.routes["/tasks/1"] = trickle(b'{"status": "IN_PROGRESS"}' + b" " * 500, 2.0,
                                        headers_too=headers_too)
    token = CancelToken()
    canceled = _cancel_after(token, 0.5)
    with pytest.raises(Canceled):
        client(server.url).get_json("/tasks/1", token)
    assert time.monotonic() - canceled[0] < 1.0


def test_cancel_cuts_a_trickling_download_within_a_second(
    server: HostileServer, tmp_path: Path
) -> None:
    server.routes["/m.png"] = trickle(map_png("base_color", 256), 2.0, "image/png")
    token = CancelToken()
    canceled = _cancel_after(token, 0.5)
    with pytest.raises(Canceled):
        client(server.url).download(f"{server.url}/m.png", str(tmp_path / "m.png"), MB, token)
    assert time.monotonic() - canceled[0] < 1.0
    assert not list(tmp_path.iterdir())


def test_a_request_made_without_a_token_is_cut_by_the_jobs_own(server: HostileServer) -> None:
    """A provider that forgets to pass the token is still canceled: the runner sets the job's
    token for everything its worker thread sends."""
    server.routes["/tasks/1"] = trickle(b"{}" + b" " * 500, 2.0)
    token = CancelToken()
    canceled = _cancel_after(token, 0.5)
    with inflight.job_scope(token), pytest.raises(Canceled):
        client(server.url).get_json("/tasks/1")
    assert time.monotonic() - canceled[0] < 1.0


def test_every_request_has_a_total_deadline(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/tasks/1"] = trickle(b"{}" + b" " * 500, 0.2)  # a byte before any timeout
    monkeypatch.setattr(http_module, "API_DEADLINE", 1.0)
    began = time.monotonic()
    with pytest.raises(HttpError) as err:
        client(server.url).get_json("/tasks/1")
    assert err.value.message.startswith("Acme did not answer in time"), err.value.message
    assert 0.9 < time.monotonic() - began < 3.0


def test_a_create_in_flight_is_not_cut_by_cancel(server: HostileServer) -> None:
    """A create may start a paid task: its answer is waited for (within its own deadline), so
    the task's id is learnt and it can be canceled, instead of running on unseen."""
    server.routes["/tasks"] = trickle(b'{"id": "t1"}', 0.1)
    token = CancelToken()
    _cancel_after(token, 0.3)
    answer = client(server.url).post_json("/tasks", {"prompt": "x"}, token)
    assert answer == {"id": "t1"} and token.canceled


def test_triverses_direct_download_streams_and_stops_at_its_cap(
    server: HostileServer, tmp_path: Path
) -> None:
    """`/tasks/download` (the key's own route) is streamed to the file like any download: an
    endless body stops at the cap instead of being read whole first."""
    from text_to_texture.providers.triverse import TriverseProvider

    def endless_glb(conn: socket.socket) -> None:
        from emulators.hostile import head

        conn.sendall(head(200, {"Content-Type": "model/gltf-binary", "Connection": "close"})
                     + b"glTF" + b"\x00" * 8)
        block = b"\x00" * 65536
        while True:
            conn.sendall(block)

    server.routes["/tasks/download/"] = endless_glb
    provider = TriverseProvider(ProviderConfig(api_key=KEY, api_base=server.url), retry=NO_RETRY)
    provider.max_glb_bytes = 32 * MB  # type: ignore[misc]
    out, peak = peak_of(lambda: download_direct(provider.client(), "t1",
                                                str(tmp_path / "m.glb"), provider.max_glb_bytes,
                                                CancelToken()))
    assert isinstance(out, HttpError), out
    assert out.message.startswith("The textured model from Triverse is larger than the 32 MB")
    assert peak < 8 * MB and not list(tmp_path.iterdir())
