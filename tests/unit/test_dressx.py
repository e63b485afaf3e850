"""DRESSX end to end over real loopback HTTP: provider + runner + local server + emulator.

The emulator plays DRESSX: it downloads the mesh from the local server and posts its webhook
back to it. The public URL is the local server's own loopback address (``{port}``), standing in
for the tunnel an artist would run.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.base import (
    Emulator,
    Request,
    Response,
    emulator_fixture,
    expected_pixels,
    guard_loopback,
    marker_pixels,
)
from emulators.dressx import CREATE, DressxEmulator
from runner_driving import fast_runner
from text_to_texture.formats.imagefile import read_png
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.runner import Runner
from text_to_texture.net import local_server as ws
from text_to_texture.net.http import RetryPolicy
from text_to_texture.providers.base import (
    CancelToken,
    ProviderConfig,
    ProviderError,
    RemoteState,
    TextureRequest,
)
from text_to_texture.providers.dressx import (
    DressxProvider,
    DressxRef,
    maps_of,
    order_for,
)

FAST = RetryPolicy(retries=3, base=0.01, cap=0.05, max_total=5.0)
PUBLIC = "http://127.0.0.1:{port}"  # the tunnel's stand-in: the local server itself
ROLES = {"base_color", "normal", "roughness", "metallic"}


def cube_obj(uvs: bool = True, size: float = 1.0) -> bytes:
    s = size
    lines = ["# exported", "o Cube"]
    lines += [f"v {x * s} {y * s} {z * s}" for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    if uvs:
        lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1"]
        lines += ["f 1/1 2/2 4/3 3/4", "f 5/1 6/2 8/3 7/4"]
    else:
        lines += ["f 1 2 4 3", "f 5 6 8 7"]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture(autouse=True)
def fresh_server() -> Iterator[None]:
    ws.shutdown()
    yield
    ws.shutdown()
    end = time.monotonic() + 3
    while any(t.name.startswith("t2t-local-server") for t in threading.enumerate()):
        assert time.monotonic() < end, "a local server thread was left behind"
        time.sleep(0.01)


emu = emulator_fixture(DressxEmulator, job_seconds=0.2)


@pytest.fixture()
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def provider(emu: Emulator, key: str | None = None, **extras: Any) -> DressxProvider:
    cfg = ProviderConfig(api_key=emu.api_key if key is None else key, api_base=emu.url,
                         extras={"public_url": PUBLIC, **{k: str(v) for k, v in extras.items()}})
    return DressxProvider(cfg, poll_interval=0.02, retry=FAST)


def make_job(tmp_path: Path, name: str = "Cube", mesh: bytes | None = None,
             **request: Any) -> Job:
    jid = new_job_id()
    mesh_path = tmp_path / f"{name}_{jid}.obj"
    mesh_path.write_bytes(cube_obj() if mesh is None else mesh)
    req = TextureRequest(job_id=jid, prompt=request.pop("prompt", "worn red leather"),
                         mesh_path=str(mesh_path), mesh_format="OBJ",
                         out_dir=str(tmp_path / "maps"), file_stem=name, **request)
    return Job(id=jid, provider="DRESSX", object_name=name, request=req)


class Watch:
    """What the main thread does: start jobs, drain events, remember every snapshot."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.seen: dict[str, Job] = {}
        self.history: list[Job] = []

    def run(self, jobs: list[Job], make: Any, timeout: float = 15.0) -> dict[str, Job]:
        for job in jobs:
            self.runner.start(job, make())
        return self.settle([j.id for j in jobs], timeout)

    def settle(self, ids: list[str], timeout: float = 15.0) -> dict[str, Job]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump()
            if all(i in self.seen and (self.seen[i].state.terminal
                                       or self.seen[i].state is State.READY) for i in ids) \
                    and not self.runner.busy():
                return self.seen
            time.sleep(0.005)
        states = [(j.state, j.message) for j in self.seen.values()]
        raise AssertionError(f"jobs did not settle: {states}")

    def pump(self) -> None:
        for snap in self.runner.drain():
            self.seen[snap.id] = snap
            self.history.append(snap)

    def wait_state(self, job_id: str, state: State, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump()
            if job_id in self.seen and self.seen[job_id].state is state:
                return
            time.sleep(0.005)
        raise AssertionError(f"job never reached {state}")


def run_one(emu: Emulator, tmp_path: Path, journal: Journal, **kw: Any) -> Job:
    extras = kw.pop("extras", {})
    job = make_job(tmp_path, **kw)
    return Watch(fast_runner(journal)).run([job], lambda: provider(emu, **extras))[job.id]


def pixels(path: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    arr = read_png(path)
    h, w = arr.shape[:2]
    return tuple(int(v) for v in arr[h // 2, w // 2][:3]), tuple(int(v) for v in arr[0, 0][:3])


def wait_for(check: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the happy path


def test_several_objects_end_to_end(emu: DressxEmulator, tmp_path: Path,
                                    journal: Journal) -> None:
    meshes = {f"Obj{i}": cube_obj(size=1.0 + i) for i in range(4)}
    jobs = [make_job(tmp_path, name, mesh) for name, mesh in meshes.items()]
    watch = Watch(fast_runner(journal))
    done = watch.run(jobs, lambda: provider(emu))

    for job in jobs:
        got = done[job.id]
        assert got.state is State.READY, got.message
        assert set(got.maps) == ROLES
        for role, path in got.maps.items():
            assert Path(path).name == f"{job.object_name}_{role}.png"  # ours, not the server's
            assert pixels(path) == (expected_pixels(role), marker_pixels(role)), role
        order = order_for(job.id)
        assert got.extra["order"] == order and isinstance(got.extra["balance"], int)
        assert emu.meshes[order] == meshes[job.object_name]  # DRESSX got this job's mesh
        assert got.remote_id.startswith(f"{order}:")
    assert emu.balance == 96
    assert ws.current() is None  # the local server stopped with the last job

    posts = emu.recorded("POST", f"^{CREATE}$")
    assert len(posts) == 4 and all(r.auth_ok for r in posts)
    for rec in posts:
        body = rec.body
        assert set(body) == {"order", "prompt", "result_url", "seed", "refine", "mesh_url",
                             "num_inference_steps"}
        assert body["prompt"] == "worn red leather" and body["seed"] == 0
        assert body["refine"] is False and body["num_inference_steps"] == 20
        assert body["result_url"].startswith("http://127.0.0.1:")
        assert "/w/" in body["result_url"] and body["mesh_url"].endswith("/mesh.obj")
    assert {r.body["order"] for r in posts} == {order_for(j.id) for j in jobs}
    # At most two orders at DRESSX at once (max_concurrency), each answered by one webhook.
    spans = sorted((r.at, next(s.at for s in emu.webhooks(r.body["order"]))) for r in posts)
    assert max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans) <= 2
    assert all(s.status == 200 for s in emu.webhooks())
    files = emu.recorded("GET", "^/v1/files/")
    assert len(files) == 16 and not any(r.sent_auth for r in files)  # no key to file storage
    assert not list((tmp_path / "maps").glob(".*"))  # no temp or kept-result files left
    assert not list(tmp_path.rglob("outside*"))
    # A create and four map downloads per object, and no status request: the webhook says when.
    assert len(emu.recorded()) == len(posts) + len(files)


def test_both_status_spellings_and_intermediate_webhooks(tmp_path: Path,
                                                         journal: Journal) -> None:
    with DressxEmulator(job_seconds=0.3, status_style="upper", intermediate=3) as emu:
        job = make_job(tmp_path)
        watch = Watch(fast_runner(journal))
        done = watch.run([job], lambda: provider(emu))[job.id]
        assert done.state is State.READY, done.message
        order = order_for(job.id)
        assert [s.payload["status"] for s in emu.webhooks()] == ["PROCESSIN"] * 3 + ["SUCCEEDED"]
        messages = [s.message for s in watch.history]
        assert f"DRESSX is processing (order {order})" in messages
    with DressxEmulator(job_seconds=0.1, final_status="Succeeded") as emu:
        assert run_one(emu, tmp_path, journal).state is State.READY


def test_options_and_the_coordinator_key_reach_dressx(tmp_path: Path, journal: Journal) -> None:
    with DressxEmulator(job_seconds=0.1, coordinator_key="coord-7f3a") as emu:
        job = make_job(tmp_path, seed=42, enable_pbr=False,
                       options={"refine": True, "num_inference_steps": 35, "order": 777})
        done = Watch(fast_runner(journal)).run(
            [job], lambda: provider(emu, coordinator_key="coord-7f3a"))[job.id]
        assert done.state is State.READY, done.message
        assert set(done.maps) == {"base_color"}  # PBR off: only the albedo is downloaded
        body = emu.recorded("POST")[0].body
        assert body["order"] == 777 and body["seed"] == 42 and body["refine"] is True
        assert body["num_inference_steps"] == 35 and body["key"] == "coord-7f3a"
        bad = run_one(emu, tmp_path, journal, extras={"coordinator_key": "wrong-key-1"})
        assert bad.state is State.FAILED
        assert bad.message.startswith("DRESSX refused the coordinator key")
        assert "wrong-key-1" not in bad.message


class FileHost(Emulator):
    """A plain file host for meshes given by URL."""

    name = "files"

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        super().__init__()

    def setup_routes(self) -> None:
        self.route("GET", r"/props/(?P<name>[\w.]+)", self._file, auth=False, is_file=True)

    def _file(self, req: Request) -> Response:
        data = self.files.get(req.params["name"])
        return Response(200, data, "model/obj") if data else Response(404, b"no", "text/plain")


def test_a_mesh_url_is_sent_instead_of_serving_the_export(
    emu: DressxEmulator, tmp_path: Path, journal: Journal
) -> None:
    with FileHost({"chair.obj": cube_obj(), "flat.obj": cube_obj(uvs=False)}) as host:
        url = f"{host.url}/props/chair.obj"
        done = run_one(emu, tmp_path, journal, options={"mesh_url": url})
        assert done.state is State.READY, done.message
        assert emu.recorded("POST")[0].body["mesh_url"] == url
        assert DressxRef.parse(done.remote_id).mesh_token == ""  # nothing served locally
        assert host.count("GET", "chair") == 1
        no_uvs = run_one(emu, tmp_path, journal, options={"mesh_url": f"{host.url}/props/flat.obj"})
        order = order_for(no_uvs.id)
        assert no_uvs.message == f"DRESSX: The mesh has no UV coordinates. (order {order})"
        gone = run_one(emu, tmp_path, journal, options={"mesh_url": f"{host.url}/props/x.obj"})
        assert gone.message.startswith("DRESSX: Could not download mesh_url (HTTP 404).")
    with pytest.raises(ProviderError, match="https://"):
        provider(emu).submit(make_job(tmp_path, options={"mesh_url": "http://x.example/a.obj"}
                                      ).request, CancelToken())


# --------------------------------------------------------------------------- faults


def _fault_cases() -> list[Any]:
    create = f"^{CREATE}$"
    never = {"options": {"timeout_s": 0.6}}
    return [
        # (id, set-up, job kwargs, expected state, message fragment, extra check)
        ("latency", lambda e: setattr(e, "latency", 0.03), {}, State.READY, "", None),
        ("429x2 on create", lambda e: e.fail_next(429, 2, method="POST", retry_after="0"), {},
         State.READY, "", lambda e: e.count("POST") == 3 and len(e.tasks) == 1),
        ("empty create answer", lambda e: setattr(e, "create_answer", "empty"), {},
         State.READY, "", None),
        ("text create answer", lambda e: setattr(e, "create_answer", "text"), {},
         State.READY, "", None),
        ("500 on create", lambda e: e.fail_next(500, 1, method="POST", path=create), {},
         State.FAILED, "DRESSX did not confirm the new job (HTTP 500); it may still have been "
         "created — check your DRESSX account for order", lambda e: e.count("POST") == 1),
        ("drop on create", lambda e: e.drop_next(1, method="POST"), {}, State.FAILED,
         "DRESSX did not confirm the new job (it dropped the connection)",
         lambda e: e.count("POST") == 1),
        ("failure webhook", lambda e: e.fail_tasks("GPU out of memory"), {}, State.FAILED,
         "DRESSX: GPU out of memory (order", None),
        ("failure as error", lambda e: (e.fail_tasks("Bad prompt"),
                                        setattr(e, "failure_field", "error")), {},
         State.FAILED, "DRESSX: Bad prompt (order", None),
        ("failure as detail, upper", lambda e: (
            e.fail_tasks("Mesh too large"), setattr(e, "failure_field", "detail"),
            setattr(e, "status_style", "upper")), {}, State.FAILED,
         "DRESSX: Mesh too large (order", None),
        ("failure without reason", lambda e: (e.fail_tasks("x"),
                                              setattr(e, "failure_field", "zzz")), {},
         State.FAILED, "DRESSX reported the job failed (order", None),
        ("canceled at DRESSX", lambda e: setattr(e, "final_status", "CANCELLED"), {},
         State.FAILED, "The job was canceled at DRESSX (order", None),
        ("duplicate webhook", lambda e: setattr(e, "webhook", "duplicate"), {}, State.READY,
         "", lambda e: len(e.webhooks()) == 2 and e.count("GET", "^/v1/files/") == 4
         and e.webhooks()[1].status in (200, 410)),
        ("intermediate webhooks", lambda e: setattr(e, "intermediate", 4), {}, State.READY, "",
         lambda e: len(e.webhooks()) == 5),
        ("webhook never comes", lambda e: setattr(e, "webhook", "never"), never, State.FAILED,
         "DRESSX did not report back within 0.6 s (order", None),
        ("webhook to a wrong token", lambda e: setattr(e, "webhook", "wrong_token"), never,
         State.FAILED, "DRESSX did not report back within 0.6 s (order",
         lambda e: [s.status for s in e.webhooks()] == [404]),
        ("truncated once", lambda e: e.truncate_downloads(1), {}, State.READY, "", None),
        ("truncated always", lambda e: e.truncate_downloads(-1), {}, State.FAILED,
         "The base color map download from DRESSX kept failing", None),
        ("not an image", lambda e: e.non_image_downloads(1), {}, State.FAILED,
         "DRESSX sent a base color map that is not an image", None),
        ("expired link", lambda e: e.expire_downloads(1, path="normal"), {}, State.FAILED,
         "DRESSX's link for the normal map no longer works (HTTP 403) — look the result up in "
         "your DRESSX account (order", None),
        ("no balance", lambda e: setattr(e, "balance", 0), {}, State.FAILED,
         "Your DRESSX balance is used up — top it up in your DRESSX account, then retry", None),
        ("field error", lambda e: None, {"options": {"num_inference_steps": 200}}, State.FAILED,
         "DRESSX refused the request: num_inference_steps: Ensure this value is between 1 and "
         "150.", None),
        ("503 forever on create", lambda e: e.fail_next(503, -1, method="POST"), {},
         State.FAILED, "DRESSX did not confirm the new job (HTTP 503)", None),
    ]


@pytest.mark.parametrize(("setup", "job_kw", "state", "fragment", "check"),
                         [pytest.param(*c[1:], id=c[0]) for c in _fault_cases()])
def test_each_fault_ends_in_the_right_state(
    emu: DressxEmulator, tmp_path: Path, journal: Journal,
    setup: Any, job_kw: dict[str, Any], state: State, fragment: str, check: Any,
) -> None:
    setup(emu)
    done = run_one(emu, tmp_path, journal, **job_kw)
    assert done.state is state, done.message
    assert fragment in done.message
    assert "\n" not in done.message and emu.api_key not in done.message
    if done.remote_id:
        assert str(order_for(done.id)) in done.message or state is State.READY
    if check is not None:
        emu.stop()  # its task threads are done: their webhooks are all recorded
        assert check(emu)
    if state is State.READY:
        assert pixels(done.maps["normal"])[0] == expected_pixels("normal")
    assert ws.current() is None  # every ending releases the job's paths
    assert not list((tmp_path / "maps").glob(".*"))


def test_the_timeout_counts_from_the_submit_and_keeps_the_order(
    emu: DressxEmulator, tmp_path: Path, journal: Journal
) -> None:
    """The time limit (30 min by default) counts from when the order was sent, across a
    restart; when it has passed, the job ends with its order id, its remote id kept and its
    local paths released."""
    emu.webhook = "never"
    p = provider(emu)
    late, young = make_job(tmp_path, "Late"), make_job(tmp_path, "Young")
    for job, age in ((late, 1800.5), (young, 1790.0)):
        job.remote_id = p.submit(job.request, CancelToken())
        job.state = State.RUNNING
        job.extra["submitted_at"] = time.time() - age
    watch = Watch(fast_runner(journal))
    watch.runner.resume(late, provider(emu))
    watch.runner.resume(young, provider(emu))
    watch.wait_state(late.id, State.FAILED)
    done = watch.seen[late.id]
    assert done.state is State.FAILED and done.extra["timed_out"] is True
    assert done.message == (f"DRESSX did not report back within 30 min (order "
                            f"{order_for(late.id)}); look it up in your DRESSX account")
    assert done.remote_id == late.remote_id
    assert ws.lookup(DressxRef.parse(late.remote_id).webhook_token) is None
    time.sleep(0.3)
    watch.pump()
    assert watch.seen[young.id].state is State.RUNNING  # nine seconds left
    watch.runner.cancel(young.id)
    watch.settle([young.id])
    assert ws.current() is None


def test_the_time_limit_counts_from_when_dressx_took_the_order(
    emu: DressxEmulator, tmp_path: Path, journal: Journal
) -> None:
    """Waiting out 429s on the create is not DRESSX working on the order: a job whose create
    took two seconds of retries still has its whole limit to get its webhook (the soak's one
    failure in 34 runs: a job timed out a second after DRESSX took it)."""
    emu.job_seconds = 0.3
    emu.fail_next(429, 2, method="POST", path=f"^{CREATE}$", retry_after="1")
    done = run_one(emu, tmp_path, journal, options={"timeout_s": 1.5})
    assert done.state is State.READY, done.message
    assert emu.count("POST") == 3 and emu.webhooks()


def test_a_wrong_key_is_one_actionable_line(emu: DressxEmulator, tmp_path: Path,
                                            journal: Journal) -> None:
    job = make_job(tmp_path)
    done = Watch(fast_runner(journal)).run([job], lambda: provider(emu, key="not-the-key-00")
                                           )[job.id]
    assert done.state is State.FAILED
    assert done.message == ("DRESSX rejected the API key — check Preferences > Add-ons > Text to "
                            "Texture > DRESSX (or DRESSX_API_KEY)")
    assert len(emu.recorded()) == 1 and emu.recorded()[0].auth_ok is False
    assert ws.current() is None


# --------------------------------------------------------------------------- cancel, resume


def test_cancel_only_stops_listening(emu: DressxEmulator, tmp_path: Path,
                                     journal: Journal) -> None:
    emu.job_seconds = 30
    job = make_job(tmp_path)
    watch = Watch(fast_runner(journal))
    watch.runner.start(job, provider(emu))
    wait_for(lambda: emu.meshes)
    assert watch.runner.cancel(job.id)
    done = watch.settle([job.id])[job.id]
    assert done.state is State.CANCELED
    assert ws.current() is None  # nothing listens for order any more
    assert emu.count("POST") == 1 and emu.count("DELETE") == 0  # DRESSX has no cancel call


def _start_and_crash(emu: DressxEmulator, job: Job, journal: Journal,
                     make: Any) -> Job:
    first = fast_runner(journal)
    first.start(job, make())

    def sent_and_journaled() -> bool:
        saved = journal.load(job.id)
        return bool(emu.meshes) and saved is not None and saved.state is State.RUNNING

    wait_for(sent_and_journaled)  # DRESSX has the mesh and the job is on disk; Blender quits
    first.kill()
    wait_for(lambda: not first.busy())
    ws.shutdown()  # a new process: no server, no registrations
    (pending,) = journal.unfinished()
    assert pending.state is State.RUNNING and pending.remote_id
    return pending


def test_resume_after_a_restart_with_a_fixed_port(emu: DressxEmulator, tmp_path: Path,
                                                  journal: Journal) -> None:
    emu.job_seconds = 0.8
    port = free_port()
    job = make_job(tmp_path)
    pending = _start_and_crash(emu, job, journal, lambda: provider(emu, local_port=port))
    second = Watch(fast_runner(journal))
    second.runner.resume(pending, provider(emu, local_port=port))
    done = second.settle([job.id])[job.id]
    assert done.state is State.READY, done.message
    assert set(done.maps) == ROLES and emu.count("POST") == 1
    assert [s.status for s in emu.webhooks()] == [200]
    assert f":{port}/w/" in emu.recorded("POST")[0].body["result_url"]


def test_resume_without_a_fixed_port_times_out_keeping_the_order(
    emu: DressxEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.job_seconds = 0.2
    job = make_job(tmp_path, options={"timeout_s": 1.0})
    pending = _start_and_crash(emu, job, journal, lambda: provider(emu))
    second = Watch(fast_runner(journal))
    second.runner.resume(pending, provider(emu))
    done = second.settle([job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message == (
        f"DRESSX did not report back within 1 s (order {order_for(job.id)}); look it up in "
        "your DRESSX account (its result address changed when Blender restarted: set a fixed "
        "local port for DRESSX to keep it)")
    assert [s.status for s in emu.webhooks()] == [None]  # the old port: nobody listening
    assert emu.count("POST") == 1


def test_a_restart_during_the_downloads_keeps_the_paid_result(
    emu: DressxEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.delay_next(0.5, path="normal")
    job = make_job(tmp_path)
    first = Watch(fast_runner(journal))
    first.runner.start(job, provider(emu))
    first.wait_state(job.id, State.DOWNLOADING)
    first.runner.kill()
    wait_for(lambda: not first.runner.busy())
    ws.shutdown()
    (pending,) = journal.unfinished()
    assert pending.state is State.DOWNLOADING
    assert (tmp_path / "maps" / ".Cube.dressx-result.json").exists()
    second = Watch(fast_runner(journal))
    second.runner.resume(pending, provider(emu))
    done = second.settle([job.id])[job.id]
    assert done.state is State.READY, done.message
    assert len(emu.webhooks()) == 1 and emu.count("POST") == 1
    assert pixels(done.maps["metallic"])[0] == expected_pixels("metallic")
    assert not list((tmp_path / "maps").glob(".*"))


# --------------------------------------------------------------------------- checks up front


def test_check_ready_says_what_is_missing(emu: DressxEmulator, tmp_path: Path) -> None:
    def ready(key: str = "k", **extras: str) -> str:
        return DressxProvider(ProviderConfig(api_key=key, extras=extras)).check_ready()

    assert ready("") == ("DRESSX needs an API key: Preferences > Add-ons > Text to Texture > "
                         "DRESSX, or DRESSX_API_KEY")
    assert ready() == (
        "DRESSX sends its result to a public URL that reaches this computer, and none is set: "
        "put a tunnel address (ngrok, cloudflared) forwarding to the local port you set there "
        "in Preferences > Add-ons > Text to Texture > DRESSX > Public URL, or set "
        "DRESSX_PUBLIC_URL")
    assert "forwarding to http://127.0.0.1:8765 in" in ready(local_port="8765")
    assert "must use https://" in ready(public_url="http://tunnel.example.com")
    assert "without ? or #" in ready(public_url="https://t.example.com/?a=1")
    assert "local port must be a number" in ready(public_url="https://t.example", local_port="x")
    assert ready(public_url="https://abc.trycloudflare.com") == ""
    assert ready(public_url="http://127.0.0.1:{port}") == ""
    p = provider(emu)
    p.config.extras["public_url"] = ""
    with pytest.raises(ProviderError, match="public URL"):
        p.submit(make_job(tmp_path).request, CancelToken())
    assert emu.count() == 0 and ws.current() is None


def test_a_mesh_dressx_would_fail_on_is_refused_before_paying(emu: DressxEmulator,
                                                              tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as err:
        provider(emu).submit(make_job(tmp_path, mesh=cube_obj(uvs=False)).request,
                             CancelToken())
    assert err.value.message.startswith("DRESSX needs a mesh with UVs")
    with pytest.raises(ProviderError, match="as OBJ"):
        provider(emu).submit(make_job(tmp_path, mesh=b"glTF\x02\x00").request, CancelToken())
    with pytest.raises(ProviderError, match="needs a prompt"):
        provider(emu).submit(make_job(tmp_path, prompt="  ").request, CancelToken())
    with pytest.raises(ProviderError, match="order id"):
        provider(emu).submit(make_job(tmp_path, options={"order": 2**31}).request,
                             CancelToken())
    assert emu.count() == 0 and ws.current() is None


def test_orders_statuses_and_maps_are_read_carefully() -> None:
    ids = [new_job_id() for _ in range(2000)]
    orders = [order_for(i) for i in ids]
    assert all(1 <= o < 2**31 for o in orders) and len(set(orders)) >= 1999
    assert order_for(ids[0]) == orders[0]  # stable: can be told to the artist any time
    assert maps_of({"pbr_components": {"Albedo": "https://a/1.jpg", "normal": "",
                                       "METALLIC": "https://a/3.jpg", "x": "https://a/4"}}) == {
        "base_color": "https://a/1.jpg", "metallic": "https://a/3.jpg"}
    assert maps_of({"pbr_components": None}) == {}
    ref = DressxRef(12, 34.5, "w" * 32, "")
    assert DressxRef.parse(ref.encode()) == ref
    with pytest.raises(ProviderError, match="damaged"):
        DressxRef.parse("12:x:y")
    p = DressxProvider(ProviderConfig(api_key="k"))
    failed = p._status_of(ref, {"status": "FAILURE", "error": {"message": "Timeout"}}, "r")
    assert failed.state is RemoteState.FAILED and failed.message == "DRESSX: Timeout (order 12)"
    running = p._status_of(ref, {"status": "queued", "balance": 3}, "r")
    assert running.state is RemoteState.RUNNING and running.extra == {"order": 12, "balance": 3}
    assert running.message == "DRESSX is queued (order 12)"
    assert DressxProvider(ProviderConfig(extras={"max_concurrency": "5"})).max_concurrency == 5
    assert DressxProvider.max_concurrency == 2 and DressxProvider.mesh_format == "OBJ"


# --------------------------------------------------------------------------- secrets, emulator


def test_secrets_never_reach_logs_journal_or_messages(
    emu: DressxEmulator, tmp_path: Path, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.fail_next(400, 1, method="POST", message="bad key coord-secret-42 and " + emu.api_key)
    jobs = [make_job(tmp_path, "a"), make_job(tmp_path, "b")]
    watch = Watch(fast_runner(journal))
    done = watch.run(jobs[:1], lambda: provider(emu, coordinator_key="coord-secret-42"))
    done.update(watch.run(jobs[1:], lambda: provider(emu, coordinator_key="coord-secret-42")))
    assert sorted(j.state.value for j in done.values()) == ["failed", "ready"]
    ours = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.startswith("text_to_texture"))
    everything = ours + "".join(j.message for j in done.values())
    stored = "".join(p.read_text() for p in journal.root.glob("*.json"))
    for secret in (emu.api_key, "coord-secret-42"):
        assert secret not in everything + stored
    for job in done.values():
        if job.remote_id:
            ref = DressxRef.parse(job.remote_id)
            assert ref.webhook_token not in everything and ref.mesh_token not in everything


def test_the_emulator_validates_like_a_service(emu: DressxEmulator) -> None:
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    bare = requests.post(f"{emu.url}{CREATE}", json={}, timeout=5,
                         headers={"Authorization": emu.api_key})
    assert bare.status_code == 401 and bare.json() == {"detail": "Invalid credentials."}
    missing = requests.post(f"{emu.url}{CREATE}", json={"prompt": "x"}, headers=auth, timeout=5)
    assert missing.status_code == 400 and missing.json() == {
        "order": ["This field is required."]}
    body = {"order": 5, "prompt": "x", "result_url": "http://127.0.0.1:9/w/t"}
    assert requests.post(f"{emu.url}{CREATE}", json=body, headers=auth, timeout=5).json() == {
        "order_id": 5, "status": "PROCESSIN"}
    again = requests.post(f"{emu.url}{CREATE}", json=body, headers=auth, timeout=5)
    assert again.status_code == 400 and "order" in again.json()
    assert requests.post(f"{emu.url}/v2/pipeline/text-to-texture", json=body, headers=auth,
                         timeout=5).status_code == 404
    wait_for(lambda: emu.webhooks(5))
    sent = emu.webhooks(5)[0]
    assert sent.payload["status"] == "failure" and "No mesh_url" in sent.payload["message"]
    json.dumps(sent.payload)  # valid JSON, unlike the seed's example
    assert sent.status is None  # nobody listens at that result_url
    emu.webhook_retries, emu.retry_delay = 2, 0.01
    body["order"] = 6
    requests.post(f"{emu.url}{CREATE}", json=body, headers=auth, timeout=5)
    wait_for(lambda: len(emu.webhooks(6)) == 3)  # an undelivered webhook is sent again


def test_an_order_canceled_at_dressx(emu: DressxEmulator, tmp_path: Path,
                                     journal: Journal) -> None:
    emu.job_seconds = 0.5
    job = make_job(tmp_path)
    watch = Watch(fast_runner(journal))
    watch.runner.start(job, provider(emu))
    wait_for(lambda: emu.meshes)
    emu.cancel_task(order_for(job.id))
    done = watch.settle([job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message == f"The job was canceled at DRESSX (order {order_for(job.id)})"
    assert [s.payload["status"] for s in emu.webhooks()] == ["canceled"]


def test_the_emulator_runs_by_hand() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.emulators", "dressx", "--job-seconds",
                             "1"], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        env = dict(line.split()[1].split("=", 1) for line in lines[1:])
        answer = requests.post(f"{env['DRESSX_API_BASE']}{CREATE}", json={}, timeout=5,
                               headers={"Authorization": f"Bearer {env['DRESSX_API_KEY']}"})
        assert answer.status_code == 400
    finally:
        proc.terminate()
        proc.wait(5)


# --------------------------------------------------------------------------- figures


def test_wall_time_of_four_objects_against_one(tmp_path: Path, journal: Journal) -> None:
    """Not much of a check: measures what concurrency buys (job 0.5 s, max_concurrency 2)."""
    times = {}
    with DressxEmulator(job_seconds=0.5) as emu:
        for n in (1, 4):
            jobs = [make_job(tmp_path, f"n{n}_{i}") for i in range(n)]
            start = time.perf_counter()
            done = Watch(fast_runner(journal)).run(jobs, lambda: provider(emu))
            times[n] = time.perf_counter() - start
            assert all(j.state is State.READY for j in done.values())
    assert times[4] < 4 * times[1]


# --------------------------------------------------------------------------- test connection


def test_connection_check_reaches_the_local_server_through_the_public_url(
    emu: DressxEmulator,
) -> None:
    """DRESSX has no free endpoint: the check proves the key is set and that a request to the
    public URL comes back to this computer's local server, as the result webhook must."""
    good = provider(emu).test_connection()
    assert good.ok and good.line.startswith("DRESSX is set up: the key is set (DRESSX checks "
                                            "it with the first order) and http://127.0.0.1:")
    assert ws.current() is None  # the probe's registration is gone again
    assert emu.count() == 0  # nothing was ordered, nothing paid
    dead = provider(emu, public_url="http://127.0.0.1:9").test_connection()
    assert not dead.ok and dead.line.startswith(
        "DRESSX's results cannot reach this computer: http://127.0.0.1:9 did not answer")
    assert "start the tunnel" in dead.line
    elsewhere = provider(emu, public_url=emu.url).test_connection()  # a tunnel to elsewhere
    assert not elsewhere.ok and "not from this computer's local server" in elsewhere.line
    unset = DressxProvider(ProviderConfig(api_base=emu.url, extras={"public_url": PUBLIC}))
    assert unset.test_connection().line.startswith("DRESSX needs an API key")
    assert DressxProvider(ProviderConfig(extras={"jobs_at_once": "6"})).max_concurrency == 6
