"""Meshy end to end over real loopback HTTP: provider + runner against the Meshy emulator."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emulators.base import (
    emulator_fixture,
    expected_pixels,
    guard_loopback,
    map_png,
    marker_pixels,
)
from emulators.glb import cube_glb, meshy_uvs, positions_of, quad_glb, uvs_of
from emulators.meshy import LEGACY, NO_ROUTE, RETEXTURE, MeshyEmulator
from runner_driving import fast_runner, run, settle
from text_to_texture.formats.imagefile import encode_png, read_png
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.runner import MAX_POLL_FAILURES, Runner
from text_to_texture.net.http import RetryPolicy
from text_to_texture.providers import meshy as meshy_module
from text_to_texture.providers.base import (
    CancelToken,
    ProviderConfig,
    ProviderError,
    RemoteState,
    TextureRequest,
)
from text_to_texture.providers.meshy import UV_MESH, MeshyProvider

FAST = RetryPolicy(retries=3, base=0.01, cap=0.05, max_total=5.0)
STATUS_COUNTS: dict[str, list[int]] = {}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture(autouse=True)
def fresh_route_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meshy_module, "_working_route", {})


# A fresh Meshy emulator per test on a free loopback port: jobs take 0.25 s.
emu = emulator_fixture(MeshyEmulator, job_seconds=0.25)


@pytest.fixture()
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def provider(emu: MeshyEmulator, key: str | None = None, **kw: Any) -> MeshyProvider:
    cfg = ProviderConfig(api_key=emu.api_key if key is None else key, api_base=emu.url)
    return MeshyProvider(cfg, poll_interval=kw.pop("poll_interval", 0.05),
                         retry=kw.pop("retry", FAST), **kw)


def make_job(tmp_path: Path, name: str = "Cube", mesh: bytes | None = None,
             **request: Any) -> Job:
    jid = new_job_id()
    mesh_path = tmp_path / f"{name}.glb"
    mesh_path.write_bytes(cube_glb() if mesh is None else mesh)
    req = TextureRequest(job_id=jid, prompt=request.pop("prompt", "weathered oak planks"),
                         mesh_path=str(mesh_path), mesh_format="GLB",
                         out_dir=str(tmp_path / "maps"), file_stem=name, **request)
    return Job(id=jid, provider="MESHY", object_name=name, request=req)


def pixels(path: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    arr = read_png(path)
    h, w = arr.shape[:2]
    return tuple(int(v) for v in arr[h // 2, w // 2][:3]), tuple(int(v) for v in arr[0, 0][:3])


def note_status_requests(label: str, emu: MeshyEmulator) -> None:
    with emu.lock:
        ids = list(emu.tasks)
    counts = [emu.status_requests(t) for t in ids]
    STATUS_COUNTS[label] = counts
    print(f"\n[{label}] status requests per job: {counts}")


# --------------------------------------------------------------------------- the happy path


def test_several_objects_end_to_end(emu: MeshyEmulator, tmp_path: Path,
                                    journal: Journal) -> None:
    meshes = {"Cube": cube_glb(), "Plane": quad_glb(), "Box": cube_glb(2.0)}
    jobs = [make_job(tmp_path, name, mesh) for name, mesh in meshes.items()]
    runner = fast_runner(journal)
    done = run(runner, jobs, lambda: provider(emu))

    for job in jobs:
        got = done[job.id]
        assert got.state is State.READY, got.message
        assert set(got.maps) == {"base_color", "metallic", "roughness", "normal"}
        for role, path in got.maps.items():
            assert Path(path).name == f"{job.object_name}_{role}.png"  # our names, not Meshy's
            assert pixels(path) == (expected_pixels(role), marker_pixels(role)), role
        assert got.extra.get("balance") is not None
    assert emu.balance == 1000 - 3 * 10

    posts = emu.recorded("POST", RETEXTURE)
    assert len(posts) == 3 and all(r.auth_ok for r in emu.recorded(path="^/openapi"))
    uploaded = set()
    for rec in posts:
        body = rec.body
        assert body["text_style_prompt"] == "weathered oak planks"
        assert body["enable_original_uv"] is True and body["enable_pbr"] is True
        assert body["texture_resolution"] == "2k"
        assert "negative_prompt" not in body and "art_style" not in body  # legacy-only fields
        prefix = "data:application/octet-stream;base64,"
        assert body["model_url"].startswith(prefix)
        uploaded.add(base64.b64decode(body["model_url"][len(prefix):]))
    assert uploaded == set(meshes.values())
    files = emu.recorded("GET", "^/assets/")
    assert len(files) == 12 and not any(r.sent_auth for r in files)  # no key to the storage
    assert not list((tmp_path / "maps").glob(".*"))  # no temp files left
    assert not list(tmp_path.rglob("outside*"))  # the server's file name was ignored
    note_status_requests("3 objects, job 0.25 s, poll 0.05 s", emu)


def test_without_original_uvs_the_maps_come_with_meshys_uvs(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    job = make_job(tmp_path, "Cube", options={"enable_original_uv": False})
    done = run(fast_runner(journal), [job], lambda: provider(emu))[job.id]
    assert done.state is State.READY, done.message
    assert emu.recorded("POST")[0].body["enable_original_uv"] is False
    glb_path = Path(done.maps[UV_MESH])
    assert glb_path.name == "Cube_meshy.glb"
    glb = glb_path.read_bytes()
    original = cube_glb()
    assert len(positions_of(glb)) == len(positions_of(original)) == 24  # vertex for vertex
    np.testing.assert_allclose(uvs_of(glb), meshy_uvs(positions_of(original)))
    assert not np.allclose(uvs_of(glb), uvs_of(original))


def test_pbr_off_gives_base_color_only_and_options_reach_meshy(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(encode_png(np.full((4, 4, 3), 9, np.uint8)))
    job = make_job(tmp_path, enable_pbr=False, resolution=4096, options={
        "reference_image_path": str(ref), "ai_model": "meshy-6", "remove_lighting": False,
        "art_style": "japanese-anime"})
    done = run(fast_runner(journal), [job], lambda: provider(emu))[job.id]
    assert done.state is State.READY, done.message
    assert set(done.maps) == {"base_color"}
    body = emu.recorded("POST")[0].body
    assert body["enable_pbr"] is False and body["texture_resolution"] == "4k"
    assert body["ai_model"] == "meshy-6" and body["remove_lighting"] is False
    assert body["image_style_url"] == "data:image/png;base64," + base64.b64encode(
        ref.read_bytes()).decode()


def test_a_mesh_url_is_sent_instead_of_an_upload(emu: MeshyEmulator, tmp_path: Path) -> None:
    url = "https://cdn.example.com/props/chair.glb?sig=abc"
    p = provider(emu)
    job = make_job(tmp_path, options={"model_url": url})
    p.submit(job.request, CancelToken())
    assert emu.recorded("POST")[0].body["model_url"] == url
    with pytest.raises(ProviderError, match="https://"):
        p.submit(make_job(tmp_path, options={"model_url": "http://x.example/a.glb"}).request,
                 CancelToken())


# --------------------------------------------------------------------------- legacy fallback


def test_legacy_text_to_texture_when_retexture_has_no_route(
    tmp_path: Path, journal: Journal
) -> None:
    with MeshyEmulator(job_seconds=0.2, retexture_route=False) as emu:
        jobs = [make_job(tmp_path, f"o{i}", negative_prompt="blurry", resolution=2048,
                         options={"art_style": "realistic-hand-drawn"}) for i in range(2)]
        runner = fast_runner(journal)
        done = run(runner, jobs[:1], lambda: provider(emu))
        done.update(run(runner, jobs[1:], lambda: provider(emu)))
        assert all(j.state is State.READY for j in done.values()), done
        assert all(j.remote_id.startswith("t2t:") for j in done.values())
        assert emu.count("POST", f"^{RETEXTURE}$") == 1  # the route is remembered
        legacy = emu.recorded("POST", f"^{LEGACY[0]}$")
        assert len(legacy) == 2
        body = legacy[0].body
        assert body["object_prompt"] == body["style_prompt"] == "weathered oak planks"
        assert body["negative_prompt"] == "blurry" and body["resolution"] == "2048"
        assert body["art_style"] == "realistic-hand-drawn"
        assert emu.count("GET", f"^{LEGACY[0]}/") >= 2  # polled where it was created
        assert emu.count("GET", f"^{RETEXTURE}/") == 0


def test_the_oldest_route_and_no_route_at_all(tmp_path: Path) -> None:
    with MeshyEmulator(retexture_route=False) as emu:
        emu.routes = [r for r in emu.routes if not r.pattern.pattern.startswith(f"^{LEGACY[0]}")]
        rid = provider(emu).submit(make_job(tmp_path).request, CancelToken())
        assert rid.startswith("t2t-v1:") and emu.count("POST", f"^{LEGACY[1]}$") == 1
    with MeshyEmulator(retexture_route=False, legacy_routes=False) as emu:
        with pytest.raises(ProviderError) as err:
            provider(emu).submit(make_job(tmp_path).request, CancelToken())
        assert "no texturing endpoint" in err.value.message
        assert emu.count("POST") == 3


# --------------------------------------------------------------------------- faults


def _fault_cases() -> list[Any]:
    poll = f"^{RETEXTURE}/[^/]+$"
    return [
        # (id, set-up, expected state, message fragment, extra check)
        ("latency", lambda e: setattr(e, "latency", 0.03), State.READY, "", None),
        ("429x2 on create", lambda e: e.fail_next(429, 2, method="POST", retry_after="0"),
         State.READY, "", lambda e: e.count("POST") == 3 and len(e.tasks) == 1),
        ("500x2 on poll", lambda e: e.fail_next(500, 2, method="GET", path=poll),
         State.READY, "", None),
        ("drop on poll", lambda e: e.drop_next(2, method="GET", path=poll), State.READY, "",
         None),
        ("truncated once", lambda e: e.truncate_downloads(1), State.READY, "", None),
        ("expired link once", lambda e: e.expire_downloads(1), State.READY, "",
         lambda e: e.recorded("GET", "^/assets/")[0].fault == "expired"),
        ("500 on create", lambda e: e.fail_next(500, 1, method="POST"), State.FAILED,
         "Meshy did not confirm the new job (HTTP 500); it may still have been created — "
         "check your Meshy account before retrying", lambda e: e.count("POST") == 1),
        ("drop on create", lambda e: e.drop_next(1, method="POST"), State.FAILED,
         "Meshy did not confirm the new job (it dropped the connection)",
         lambda e: e.count("POST") == 1),
        ("500 forever on poll", lambda e: e.fail_next(500, -1, method="GET", path=poll),
         State.FAILED, f"Meshy did not answer after {MAX_POLL_FAILURES} tries: Meshy is not "
         "responding (HTTP 500) — try again later", None),
        ("truncated always", lambda e: e.truncate_downloads(-1), State.FAILED,
         "The base color map download from Meshy kept failing", None),
        ("expired links always", lambda e: e.expire_downloads(-1), State.FAILED,
         "Meshy's result links for this job have expired and could not be renewed", None),
        ("not an image", lambda e: e.non_image_downloads(1), State.FAILED,
         "Meshy sent a base color map that is not an image", None),
        ("FAILED task", lambda e: e.fail_tasks("The server is busy. Please try again later."),
         State.FAILED, "Meshy: The server is busy. Please try again later.", None),
        ("no credits", lambda e: setattr(e, "balance", 3), State.FAILED,
         "Your Meshy account has no credits left — top it up at meshy.ai, then retry", None),
        ("queue full", lambda e: setattr(e, "queue_limit", 0), State.FAILED,
         "Meshy's task queue for your account is full (NoMoreConcurrentTasks)",
         lambda e: e.count("POST") == FAST.retries + 1),
        ("no balance route", lambda e: setattr(e, "balance_route", False), State.READY, "",
         lambda e: e.count("GET", "/balance$") == 1),
        ("rate limited", lambda e: setattr(e, "rps_limit", 0), State.FAILED,
         "Meshy is too busy for more requests (HTTP 429: RateLimitExceeded) — try again later",
         lambda e: e.count("POST") == FAST.retries + 1),
        ("rejected prompt", lambda e: e.fail_next(400, 1, method="POST",
                                                   message="Invalid model file extension: .3dm"),
         State.FAILED, "Meshy refused the request: Invalid model file extension: .3dm", None),
    ]


@pytest.mark.parametrize(("setup", "state", "fragment", "check"),
                         [pytest.param(*c[1:], id=c[0]) for c in _fault_cases()])
def test_each_fault_ends_in_the_right_state(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal,
    setup: Any, state: State, fragment: str, check: Any,
) -> None:
    setup(emu)
    job = make_job(tmp_path)
    done = settle_one(fast_runner(journal), job, emu)
    assert done.state is state, done.message
    assert fragment in done.message
    assert "\n" not in done.message and emu.api_key not in done.message
    if check is not None:
        assert check(emu)
    if state is State.READY:
        assert pixels(done.maps["normal"])[0] == expected_pixels("normal")


def settle_one(runner: Runner, job: Job, emu: MeshyEmulator) -> Job:
    return run(runner, [job], lambda: provider(emu))[job.id]


def test_wrong_key_is_one_actionable_line(emu: MeshyEmulator, tmp_path: Path,
                                          journal: Journal) -> None:
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    done = run(runner, [job], lambda: provider(emu, key="msy_not_the_right_key_000"))[job.id]
    assert done.state is State.FAILED
    assert done.message == ("Meshy rejected the API key — check Preferences > Add-ons > Text to "
                            "Texture > Meshy (or MESHY_API_KEY)")
    assert emu.recorded()[0].auth_ok is False and len(emu.recorded()) == 1


@pytest.mark.parametrize(("knob", "fragment"), [
    ("expire_task", "Meshy's result for this job has expired"),
    ("cancel_task", "The job was canceled at Meshy"),
    ("delete", "Meshy no longer knows this job (expired or deleted)"),
])
def test_a_task_that_goes_away_remotely(emu: MeshyEmulator, tmp_path: Path, journal: Journal,
                                        knob: str, fragment: str) -> None:
    emu.job_seconds = 30
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    task_id = wait_for_task(emu)
    if knob == "delete":
        emu.tasks[task_id].deleted = True
    else:
        getattr(emu, knob)(task_id)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.FAILED and fragment in done.message


def wait_for_task(emu: MeshyEmulator, timeout: float = 5.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if emu.count("GET", f"^{RETEXTURE}/"):
            return next(iter(emu.tasks))
        time.sleep(0.01)
    raise AssertionError("no task was polled")


# --------------------------------------------------------------------------- cancel, resume


def test_cancel_reaches_meshy_as_delete(emu: MeshyEmulator, tmp_path: Path,
                                        journal: Journal) -> None:
    emu.job_seconds = 30
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    task_id = wait_for_task(emu)
    assert runner.cancel(job.id)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.CANCELED
    deletes = emu.recorded("DELETE")
    assert [r.path for r in deletes] == [f"{RETEXTURE}/{task_id}"] and deletes[0].auth_ok
    assert emu.task(task_id) is None


def test_a_restart_resumes_polling_without_paying_twice(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.job_seconds = 0.6
    job = make_job(tmp_path)
    first = fast_runner(journal)
    first.start(job, provider(emu))
    wait_for_task(emu)
    first.kill()  # Blender quit while Meshy was working
    time.sleep(0.05)
    (pending,) = journal.unfinished()
    assert pending.state is State.RUNNING and pending.remote_id
    second = fast_runner(journal)
    second.resume(pending, provider(emu))
    done = settle(second, [job.id])[job.id]
    assert done.state is State.READY and emu.count("POST") == 1


# --------------------------------------------------------------------------- checks up front


def test_check_ready_and_https(tmp_path: Path, loopback_only: list[str]) -> None:
    assert MeshyProvider(ProviderConfig()).check_ready() == (
        "Meshy needs an API key: Preferences > Add-ons > Text to Texture > Meshy, or "
        "MESHY_API_KEY")
    assert MeshyProvider(ProviderConfig(api_key="msy_x")).check_ready() == ""
    insecure = MeshyProvider(ProviderConfig(api_key="msy_x", api_base="http://meshy.example"))
    assert "https://" in insecure.check_ready()
    with pytest.raises(ProviderError, match="https://"):
        insecure.submit(make_job(tmp_path).request, CancelToken())
    assert loopback_only == []


def test_a_long_prompt_is_refused_before_anything_is_sent(emu: MeshyEmulator,
                                                          tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as err:
        provider(emu).submit(make_job(tmp_path, prompt="x" * 601).request, CancelToken())
    assert err.value.message == ("Meshy takes a prompt of at most 600 characters (this one has "
                                 "601) — shorten it")
    assert emu.count() == 0
    provider(emu).submit(make_job(tmp_path, prompt="x" * 600).request, CancelToken())


def test_a_mesh_too_big_for_a_data_uri_is_refused(emu: MeshyEmulator, tmp_path: Path) -> None:
    p = provider(emu)
    p.max_data_uri_bytes = 1000  # type: ignore[misc]
    with pytest.raises(ProviderError) as err:
        p.submit(make_job(tmp_path).request, CancelToken())
    assert "give a public mesh URL" in err.value.message and emu.count() == 0
    obj = make_job(tmp_path, "Obj")
    Path(obj.request.mesh_path).write_bytes(b"o cube\nv 0 0 0\n")
    with pytest.raises(ProviderError, match="as GLB"):
        provider(emu).submit(obj.request, CancelToken())


def test_status_is_normalised() -> None:
    p = MeshyProvider(ProviderConfig(api_key="k"))
    ok = p._status_of({"status": "SUCCEEDED", "progress": 1,
                       "texture_urls": [{"base_color": "https://a/b.png"}]})
    assert ok.state is RemoteState.SUCCEEDED and ok.progress == 1.0
    assert ok.maps == {"base_color": "https://a/b.png"}
    queued = p._status_of({"status": "PENDING", "progress": 0, "preceding_tasks": 3})
    assert queued.state is RemoteState.QUEUED and "3 ahead" in queued.message
    running = p._status_of({"status": "IN_PROGRESS", "progress": 97})
    assert running.progress == pytest.approx(0.97) and "finishing" in running.message
    assert p._status_of({"status": "SOMETHING_NEW"}).state is RemoteState.UNKNOWN
    assert p._status_of({"status": "FAILED", "task_error": {"message": ""}}).message
    assert meshy_module._retexture_resolution(1024) == "2k"
    assert meshy_module._retexture_resolution(4096) == "4k"
    assert meshy_module._legacy_resolution(512) == "1024"
    assert meshy_module._legacy_resolution(3000) == "4096"


# --------------------------------------------------------------------------- secrets, emulator


def test_the_key_never_reaches_logs_journal_or_messages(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.fail_next(503, 2, method="GET")
    emu.fail_next(400, 1, method="POST", message=f"bad key {emu.api_key}")
    jobs = [make_job(tmp_path, "a"), make_job(tmp_path, "b")]
    runner = fast_runner(journal)
    done = run(runner, jobs[:1], lambda: provider(emu))
    done.update(run(runner, jobs[1:], lambda: provider(emu)))
    states = sorted(j.state.value for j in done.values())
    assert states == ["failed", "ready"]
    everything = caplog.text + "".join(j.message for j in done.values())
    everything += "".join(p.read_text() for p in journal.root.glob("*.json"))
    assert emu.api_key not in everything and emu.api_key[4:] not in everything


def test_the_emulator_lists_streams_and_validates(emu: MeshyEmulator, tmp_path: Path) -> None:
    import requests

    auth = {"Authorization": f"Bearer {emu.api_key}"}
    rid = provider(emu).submit(make_job(tmp_path).request, CancelToken())
    listing = requests.get(f"{emu.url}{RETEXTURE}?page_size=5", headers=auth, timeout=5).json()
    assert isinstance(listing, list) and listing[0]["id"] == rid
    with requests.get(f"{emu.url}{RETEXTURE}/{rid}/stream", headers=auth, stream=True,
                      timeout=5) as sse:
        events = [json.loads(line[5:]) for line in sse.iter_lines(decode_unicode=True)
                  if line.startswith("data:")]
    assert events[-1]["status"] == "SUCCEEDED" and events[-1]["progress"] == 100
    bad = requests.post(f"{emu.url}{RETEXTURE}", headers=auth, json={"model_url": "x"}, timeout=5)
    assert bad.status_code == 400 and "message" in bad.json()
    nope = requests.get(f"{emu.url}/v2/text-to-texture", headers=auth, timeout=5)
    assert nope.status_code == 404 and nope.json() == {"message": NO_ROUTE}
    assert requests.get(f"{emu.url}/openapi/v1/balance", timeout=5).status_code == 401
    assert emu.image("roughness") == map_png("roughness", emu.map_size)


def test_the_emulator_runs_by_hand() -> None:
    import subprocess
    import sys

    import requests

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.emulators", "meshy", "--job-seconds",
                             "1"], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        env = dict(line.split()[1].split("=", 1) for line in lines[1:])
        answer = requests.get(f"{env['MESHY_API_BASE']}/openapi/v1/balance", timeout=5,
                              headers={"Authorization": f"Bearer {env['MESHY_API_KEY']}"})
        assert answer.json() == {"balance": 1000}
    finally:
        proc.terminate()
        proc.wait(5)


def test_print_status_request_counts() -> None:
    """Not a check: prints what the runs above cost in status requests (-s to see it)."""
    for label, counts in STATUS_COUNTS.items():
        if counts:
            print(f"{label}: {sum(counts) / len(counts):.1f} status requests per job")
