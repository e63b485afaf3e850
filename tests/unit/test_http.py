"""The shared HTTP client over real loopback HTTP: retries, errors, secrets, downloads."""

from __future__ import annotations

import email.utils
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.base import Emulator, Request, Response, guard_loopback, json_response, map_png
from text_to_texture.net.http import (
    HttpClient,
    HttpError,
    LinkExpired,
    RetryPolicy,
    ServiceHooks,
    bearer,
    parse_retry_after,
)
from text_to_texture.providers.base import Canceled, CancelToken, ProviderError

KEY = "sk_test_SECRET_4f1c2b9d8e7a6f50"
JPEG_HEAD = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
             b"\xff\xc0\x00\x11\x08\x00\x20\x00\x30\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01")


class Service(Emulator):
    """A generic service: a few JSON routes and files, with the base fault knobs."""

    default_key = KEY

    def setup_routes(self) -> None:
        self.created = 0
        self.route("GET", "/thing", lambda r: json_response({"ok": True}))
        self.route("POST", "/tasks", self._create)
        self.route("DELETE", "/tasks/(?P<tid>\\w+)", lambda r: json_response({}))
        self.route("GET", "/echo-key", lambda r: self.error(400, f"bad key {KEY} for you"))
        self.route("GET", "/hint", lambda r: json_response({"remainingSeconds": 4}, 429))
        self.route("GET", "/files/map.png", lambda r: Response(200, map_png("roughness"),
                                                              "image/png"), auth=False,
                   is_file=True)
        self.route("GET", "/files/photo.png", lambda r: Response(
            200, JPEG_HEAD + b"\x00" * 64, "image/png",
            {"Content-Disposition": 'attachment; filename="../../escape.png"'}),
            auth=False, is_file=True)
        self.route("GET", "/files/big.png", lambda r: Response(200, map_png("normal", 256),
                                                              "image/png"), auth=False,
                   is_file=True)
        self.route("GET", "/files/endless.png", self._endless, auth=False, is_file=True)
        self.route("GET", "/files/away.png", lambda r: Response(
            302, b"", "text/plain", {"Location": "http://example.com/x.png"}), auth=False,
            is_file=True)
        self.route("GET", "/files/hop.png", lambda r: Response(
            302, b"", "text/plain", {"Location": "/files/map.png"}), auth=False, is_file=True)

    def _create(self, req: Request) -> Response:
        with self.lock:
            self.created += 1
        return json_response({"id": f"t{self.created}"}, 201)

    def _endless(self, req: Request) -> Response:
        def chunks() -> Iterator[bytes]:  # no Content-Length: only the byte count can stop it
            yield map_png("roughness")
            for _ in range(1000):
                yield b"\x00" * 65536

        return Response(200, content_type="image/png", stream=chunks())


class Waits:
    """An injected sleep: records every wait instead of sleeping, honours cancel."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float, cancel: CancelToken | None) -> None:
        self.waits.append(seconds)
        if cancel is not None:
            cancel.check()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture()
def svc() -> Iterator[Service]:
    with Service() as emu:
        yield emu  # type: ignore[misc]


def client(svc: Service, waits: Waits | None = None, **kw: Any) -> HttpClient:
    policy = kw.pop("retry", RetryPolicy(retries=3, base=0.2, cap=5.0, max_total=60.0))
    return HttpClient(svc.url, bearer(KEY), "Acme", retry=policy, sleep=waits or Waits(), **kw)


# --------------------------------------------------------------------------- URL policy


@pytest.mark.parametrize("url", ["http://api.example.com", "ftp://api.example.com",
                                 "http://10.0.0.5:8080", "api.example.com"])
def test_plain_http_is_refused_beyond_loopback(url: str) -> None:
    with pytest.raises(ProviderError) as err:
        HttpClient(url, bearer(KEY), "Acme")
    assert "\n" not in err.value.message and "Acme" in err.value.message
    assert "https://" in err.value.message


@pytest.mark.parametrize("url", ["https://api.example.com", "http://127.0.0.1:9",
                                 "http://127.8.9.10", "http://localhost:5000", "http://[::1]:80"])
def test_https_and_loopback_are_accepted(url: str) -> None:
    client = HttpClient(url, bearer(KEY), "Acme")
    try:
        assert client.base_url == url
        # Loopback result links are allowed only when the base itself is loopback (issue 13).
        assert client.loopback_base is url.startswith("http://")
    finally:
        client.close()


def test_a_key_with_a_line_break_is_refused_without_echoing_it() -> None:
    with pytest.raises(ProviderError) as err:
        HttpClient("https://api.example.com", {"Authorization": f"Bearer {KEY}\n"}, "Acme")
    assert KEY not in err.value.message and "paste it again" in err.value.message


# --------------------------------------------------------------------------- retries


def test_get_is_retried_on_5xx_with_growing_jittered_backoff(svc: Service) -> None:
    waits = Waits()
    svc.fail_next(503, 2, path="^/thing")
    assert client(svc, waits).get_json("/thing") == {"ok": True}
    assert svc.count("GET", "^/thing") == 3
    assert len(waits.waits) == 2
    assert 0.1 <= waits.waits[0] <= 0.2 and 0.2 <= waits.waits[1] <= 0.4


def test_retries_are_bounded_in_count(svc: Service) -> None:
    waits = Waits()
    svc.fail_next(500, 100, path="^/thing")
    with pytest.raises(HttpError) as err:
        client(svc, waits).get_json("/thing")
    assert err.value.message == "Acme is not responding (HTTP 500) — try again later"
    assert err.value.retryable and err.value.status == 500
    assert svc.count("GET", "^/thing") == 4 and len(waits.waits) == 3


def test_retries_are_bounded_in_total_time(svc: Service) -> None:
    waits = Waits()
    svc.fail_next(503, 100, path="^/thing")
    policy = RetryPolicy(retries=50, base=1.0, cap=4.0, max_total=10.0)
    with pytest.raises(HttpError):
        client(svc, waits, retry=policy).get_json("/thing")
    assert sum(waits.waits) <= 10.0
    assert 3 <= len(waits.waits) < 10


def test_retry_after_seconds_is_honoured(svc: Service) -> None:
    waits = Waits()
    svc.fail_next(429, 1, path="^/thing", retry_after="7")
    assert client(svc, waits).get_json("/thing") == {"ok": True}
    assert len(waits.waits) == 1 and 7.0 <= waits.waits[0] <= 7.4


def test_retry_after_http_date_is_honoured(svc: Service) -> None:
    waits = Waits()
    when = email.utils.formatdate(time.time() + 12, usegmt=True)
    svc.fail_next(503, 1, path="^/thing", retry_after=None)
    svc.faults[-1].headers["Retry-After"] = when
    client(svc, waits).get_json("/thing")
    assert 9.0 <= waits.waits[0] <= 13.5
    assert parse_retry_after("garbage") is None and parse_retry_after("3") == 3.0


def test_a_retry_after_beyond_the_budget_gives_up_at_once(svc: Service) -> None:
    waits = Waits()
    svc.fail_next(429, 1, path="^/thing", retry_after="3600")
    with pytest.raises(HttpError) as err:
        client(svc, waits).get_json("/thing")
    assert waits.waits == [] and "HTTP 429" in err.value.message


def test_a_provider_hint_in_the_body_sets_the_wait(svc: Service) -> None:
    class Hooks(ServiceHooks):  # Scenario's `remainingSeconds` in a 429 body
        def retry_hint(self, status: int, body: Any, headers: Any) -> float | None:
            return float(body["remainingSeconds"]) if isinstance(body, dict) else None

    waits = Waits()
    policy = RetryPolicy(retries=2, base=0.1, max_total=60)
    with pytest.raises(HttpError):
        client(svc, waits, hooks=Hooks(), retry=policy).get_json("/hint")
    assert len(waits.waits) == 2 and all(4.0 <= w <= 4.3 for w in waits.waits)


def test_a_wait_is_cancellable(svc: Service) -> None:
    svc.fail_next(429, 1, path="^/thing", retry_after="30")
    c = HttpClient(svc.url, bearer(KEY), "Acme")  # the real sleep, on the job's token
    token = CancelToken()
    threading.Timer(0.1, token.cancel).start()
    start = time.monotonic()
    with pytest.raises(Canceled):
        c.get_json("/thing", token)
    assert time.monotonic() - start < 2.0


# --------------------------------------------------------------------------- paid creates


@pytest.mark.parametrize("fault", ["500", "502", "drop", "timeout"])
def test_a_create_is_never_sent_twice_when_it_may_have_arrived(svc: Service, fault: str) -> None:
    waits = Waits()
    if fault == "drop":
        svc.drop_next(1, method="POST")
    elif fault == "timeout":
        svc.delay_next(1.0, 1, method="POST")
    else:
        svc.fail_next(int(fault), 1, method="POST")
    c = client(svc, waits, timeout=(2.0, 0.3))
    with pytest.raises(HttpError) as err:
        c.post_json("/tasks", {"prompt": "oak"})
    assert svc.count("POST") == 1 and waits.waits == []
    assert not err.value.retryable
    assert err.value.message.startswith("Acme did not confirm the new job")
    assert "check your Acme account before retrying" in err.value.message


def test_a_create_is_retried_after_429(svc: Service) -> None:
    waits = Waits()
    svc.fail_next(429, 2, method="POST", retry_after="2")
    assert client(svc, waits).post_json("/tasks", {"p": 1}) == {"id": "t1"}
    assert svc.count("POST") == 3 and svc.created == 1 and len(waits.waits) == 2


def test_a_create_is_retried_when_no_connection_was_made() -> None:
    waits = Waits()
    with Service() as dead:
        url = dead.url
    c = HttpClient(url, bearer(KEY), "Acme", retry=RetryPolicy(retries=2, base=0.01),
                   sleep=waits)
    with pytest.raises(HttpError) as err:
        c.post_json("/tasks", {"p": 1})
    assert len(waits.waits) == 2  # connection refused: nothing was sent, so it was safe
    assert err.value.message == ("Acme could not be reached — check your internet connection, "
                                 "then try again")


def test_an_idempotency_key_makes_a_create_retryable(svc: Service) -> None:
    svc.fail_next(500, 1, method="POST")
    assert client(svc).post_json("/tasks", {"p": 1}, idempotency_key="job-42") == {"id": "t1"}
    posts = svc.recorded("POST")
    assert len(posts) == 2 and all(r.headers["idempotency-key"] == "job-42" for r in posts)


def test_get_and_delete_are_retried_after_a_dropped_connection(svc: Service) -> None:
    svc.drop_next(1, method="GET")
    svc.drop_next(1, method="DELETE")
    c = client(svc)
    assert c.get_json("/thing") == {"ok": True}
    c.delete("/tasks/t1")
    assert svc.count("GET") == 2 and svc.count("DELETE") == 2


# --------------------------------------------------------------------------- error wording


@pytest.mark.parametrize(("status", "context", "expected"), [
    (401, "api", "Acme rejected the API key — check Preferences > Add-ons > Text to Texture"),
    (402, "api", "Your Acme account has no credits left — top it up at Acme, then retry"),
    (404, "task", "Acme no longer knows this job (expired or deleted)"),
    (400, "api", "Acme refused the request: model_url is required"),
    (422, "api", "Acme refused the request: model_url is required"),
])
def test_errors_become_one_actionable_line(
    svc: Service, status: int, context: str, expected: str
) -> None:
    svc.fail_next(status, 1, message="model_url is required")
    with pytest.raises(HttpError) as err:
        client(svc).request("GET", "/thing", context=context)
    assert err.value.message == expected
    assert not err.value.retryable and err.value.status == status
    assert svc.count() == 1


def test_a_403_hook_can_say_what_the_provider_means(svc: Service) -> None:
    class Hooks(ServiceHooks):
        def describe(self, status: int, message: str, context: str, label: str) -> str | None:
            return f"{label} refused the prompt: {message}" if status == 403 else None

    svc.fail_next(403, 1, message="content policy")
    with pytest.raises(HttpError) as err:
        client(svc, hooks=Hooks()).get_json("/thing")
    assert err.value.message == "Acme refused the prompt: content policy"


def test_wrong_key_is_401_and_only_the_api_origin_gets_the_key(svc: Service, tmp_path: Path,
                                                              ) -> None:
    bad = HttpClient(svc.url, bearer("sk_wrong_key_000000"), "Acme", retry=RetryPolicy(0))
    with pytest.raises(HttpError) as err:
        bad.get_json("/thing")
    assert err.value.status == 401
    with Service() as other:  # another origin (port): an absolute URL there gets no key
        client(svc).request("GET", f"{other.url}/files/map.png")
        assert other.recorded()[0].sent_auth is False
    client(svc).download(f"{svc.url}/files/map.png", str(tmp_path / "m.png"), 1 << 20)
    assert svc.recorded("GET", "^/files")[0].sent_auth is False
    assert svc.recorded("GET", "^/thing")[0].sent_auth is True


def test_no_key_in_messages_or_logs(svc: Service, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    c = client(svc, retry=RetryPolicy(retries=2, base=0.01))
    svc.fail_next(500, 3, path="^/thing")
    svc.drop_next(1, method="POST")
    calls = [lambda: c.get_json("/thing"), lambda: c.get_json("/echo-key"),
             lambda: c.post_json("/tasks", {}),
             lambda: HttpClient(svc.url, bearer("nope_nope_nope"), "Acme").get_json("/thing"),
             lambda: c.download(f"{svc.url}/files/nothing.png", str(tmp_path / "x.png"), 10)]
    for call in calls:
        with pytest.raises(ProviderError) as err:
            call()
        messages.append(err.value.message)
    assert any("bad key *** for you" in m for m in messages)  # an echoed key is redacted
    text = caplog.text + "\n".join(messages) + repr(c) + repr(c.session.auth)
    assert KEY not in text and KEY[8:] not in text
    assert all("\n" not in m for m in messages)


# --------------------------------------------------------------------------- downloads


def test_download_names_the_file_itself_and_sniffs_the_type(svc: Service, tmp_path: Path) -> None:
    got = client(svc).download(f"{svc.url}/files/photo.png", str(tmp_path / "Cube_base.png"),
                               1 << 20)
    assert got.path == str(tmp_path / "Cube_base.jpg")  # JPEG content: .jpg, never the server's
    assert (got.kind, got.width, got.height) == ("JPEG", 48, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Cube_base.jpg"]
    assert not list(tmp_path.parent.glob("escape*"))


def test_download_cap_by_content_length_and_by_bytes(svc: Service, tmp_path: Path) -> None:
    c = client(svc)
    with pytest.raises(HttpError) as err:
        c.download(f"{svc.url}/files/big.png", str(tmp_path / "n.png"), 100, what="normal map")
    assert "larger than" in err.value.message and "normal map" in err.value.message
    with pytest.raises(HttpError):
        c.download(f"{svc.url}/files/endless.png", str(tmp_path / "e.png"), 2 << 20)
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_a_truncated_download_is_retried_then_fails_clearly(svc: Service, tmp_path: Path) -> None:
    waits = Waits()
    c = client(svc, waits)
    svc.truncate_downloads(1)
    got = c.download(f"{svc.url}/files/map.png", str(tmp_path / "r.png"), 1 << 20)
    assert Path(got.path).read_bytes() == map_png("roughness")
    assert svc.count("GET", "^/files") == 2

    svc.truncate_downloads(10)
    with pytest.raises(HttpError) as err:
        c.download(f"{svc.url}/files/map.png", str(tmp_path / "r2.png"), 1 << 20,
                   what="roughness map", attempts=3)
    assert err.value.message.startswith("The roughness map download from Acme kept failing")
    assert svc.count("GET", "^/files") == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png"]


def test_a_download_that_is_not_an_image_is_refused(svc: Service, tmp_path: Path) -> None:
    svc.non_image_downloads(1)
    with pytest.raises(HttpError) as err:
        client(svc).download(f"{svc.url}/files/map.png", str(tmp_path / "m.png"), 1 << 20,
                             what="base color map")
    assert err.value.message == "Acme sent a base color map that is not an image (PNG, JPEG, WEBP)"
    assert list(tmp_path.iterdir()) == []


def test_an_expired_link_is_reported_not_retried(svc: Service, tmp_path: Path) -> None:
    svc.expire_downloads(1)
    with pytest.raises(LinkExpired) as err:
        client(svc).download(f"{svc.url}/files/map.png", str(tmp_path / "m.png"), 1 << 20)
    assert "has expired" in err.value.message and not err.value.retryable
    assert svc.count("GET", "^/files") == 1


def test_plain_http_download_links_are_refused(
    svc: Service, tmp_path: Path, loopback_only: list[str]
) -> None:
    c = client(svc)
    with pytest.raises(ProviderError) as err:
        c.download("http://cdn.example.com/m.png", str(tmp_path / "m.png"), 1 << 20)
    assert "https://" in err.value.message
    with pytest.raises(ProviderError):  # nor may a redirect lead there
        c.download(f"{svc.url}/files/away.png", str(tmp_path / "m.png"), 1 << 20)
    got = c.download(f"{svc.url}/files/hop.png", str(tmp_path / "m.png"), 1 << 20)
    assert got.kind == "PNG"
    assert loopback_only == []  # nothing even tried to leave the machine
    assert os.listdir(tmp_path) == ["m.png"]


def test_the_suite_cannot_reach_beyond_loopback(loopback_only: list[str]) -> None:
    import socket

    import requests

    with pytest.raises(OSError), socket.socket() as sock:
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: would time out if it were really tried
    with pytest.raises(requests.ConnectionError):
        requests.get("https://api.meshy.ai/openapi/v1/balance", timeout=1)
    assert loopback_only == ["192.0.2.1", "api.meshy.ai"]


def test_an_unwritable_destination_is_one_clear_line(svc: Service, tmp_path: Path) -> None:
    blocker = tmp_path / "maps"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ProviderError) as err:
        client(svc).download(f"{svc.url}/files/map.png", str(blocker / "m.png"), 1 << 20)
    assert err.value.message.startswith("Could not create the folder") and svc.count() == 0
