"""Meshy (API v2) end to end over real loopback HTTP: provider + runner against the emulator."""

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
from emulators.meshy import (
    BALANCE,
    NO_ROUTE,
    RETEXTURE,
    TASKS,
    V1_RETEXTURE,
    MeshyEmulator,
)
from runner_driving import fast_runner, run, settle
from text_to_texture.formats.imagefile import encode_png, read_png
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.runner import MAX_POLL_FAILURES, Runner
from text_to_texture.net.http import RetryPolicy
from text_to_texture.providers.base import (
    CancelToken,
    ProviderConfig,
    ProviderError,
    RemoteState,
    TextureRequest,
)
from text_to_texture.providers.meshy import UV_MESH, MeshyProvider
from text_to_texture.providers.meshy import contract as c
from text_to_texture.providers.meshy import provider as meshy_module

FAST = RetryPolicy(retries=3, base=0.01, cap=0.05, max_total=5.0)
POLL = rf"^{TASKS}/[^/]+$"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture(autouse=True)
def fresh_session_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meshy_module, "_facts", {})
    monkeypatch.setattr(meshy_module, "_warned", set())


# A fresh Meshy emulator per test on a free loopback port: jobs take 0.25 s.
emu = emulator_fixture(MeshyEmulator, job_seconds=0.25)


@pytest.fixture()
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def provider(emu: MeshyEmulator, key: str | None = None, **kw: Any) -> MeshyProvider:
    extras = kw.pop("extras", {})
    cfg = ProviderConfig(api_key=emu.api_key if key is None else key, api_base=emu.url,
                         extras=extras)
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


def creates(emu: MeshyEmulator) -> list[Any]:
    return [r.body for r in emu.recorded("POST", f"^{RETEXTURE}$")]


# --------------------------------------------------------------------------- the happy path


def test_several_objects_end_to_end_on_api_v2(emu: MeshyEmulator, tmp_path: Path,
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
        assert "note" not in got.extra and "warning" not in got.extra
    assert emu.balance == 1000 - 3 * 10

    bodies = creates(emu)
    assert len(bodies) == 3 and all(r.auth_ok for r in emu.recorded(path="^/openapi"))
    uploaded = set()
    prefix = "data:model/gltf-binary;base64,"
    for body in bodies:
        assert set(body) == {"model_url", "texture_model", "texture_prompt",
                             "texture_resolution", "target_formats", "enable_pbr"}
        assert body["texture_prompt"] == "weathered oak planks"
        assert body["texture_model"] == "meshy-7" and body["enable_pbr"] is True
        assert body["texture_resolution"] == "2k" and body["target_formats"] == ["glb"]
        assert body["model_url"].startswith(prefix)
        uploaded.add(base64.b64decode(body["model_url"][len(prefix):]))
    assert uploaded == set(meshes.values())
    assert emu.count("GET", POLL) >= 3 and emu.count("GET", f"^{BALANCE}$") == 3
    assert emu.count(path="^/openapi/v1") == 0  # nothing of v1 is left
    files = emu.recorded("GET", "^/assets/")
    assert len(files) == 12 and not any(r.sent_auth for r in files)  # no key to the storage
    assert not list((tmp_path / "maps").glob(".*"))  # no temp files left
    assert not list(tmp_path.rglob("outside*"))  # the server's file name was ignored


def test_without_original_uvs_meshy_makes_them_with_uv_mode(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    job = make_job(tmp_path, "Cube", options={"enable_original_uv": False})
    done = run(fast_runner(journal), [job], lambda: provider(emu))[job.id]
    assert done.state is State.READY, done.message
    assert creates(emu)[0]["uv_mode"] == c.UV_MODE_MESHY
    assert done.extra["meshy_uvs"] is True
    glb_path = Path(done.maps[UV_MESH])
    assert glb_path.name == "Cube_meshy.glb"
    glb = glb_path.read_bytes()
    original = cube_glb()
    assert len(positions_of(glb)) == len(positions_of(original)) == 24  # vertex for vertex
    np.testing.assert_allclose(uvs_of(glb), meshy_uvs(positions_of(original)))
    assert not np.allclose(uvs_of(glb), uvs_of(original))


def test_a_reference_image_replaces_the_prompt_and_options_reach_meshy(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(encode_png(np.full((4, 4, 3), 9, np.uint8)))
    job = make_job(tmp_path, enable_pbr=False, resolution=4096, options={
        "reference_image_path": str(ref), "texture_model": "meshy-6-lite"})
    done = run(fast_runner(journal), [job], lambda: provider(emu))[job.id]
    assert done.state is State.READY, done.message
    assert set(done.maps) == {"base_color"}
    body = creates(emu)[0]
    assert "texture_prompt" not in body  # both together are refused (parameters_conflict)
    assert body["enable_pbr"] is False and body["texture_resolution"] == "4k"
    assert body["texture_model"] == "meshy-6-lite"
    assert body["texture_image_url"] == "data:image/png;base64," + base64.b64encode(
        ref.read_bytes()).decode()


def test_meshy_n1_gets_a_minimal_body_and_gives_base_colour_only(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    job = make_job(tmp_path, resolution=4096, options={"texture_model": "meshy-n1"})
    done = run(fast_runner(journal), [job], lambda: provider(emu))[job.id]
    assert done.state is State.READY, done.message
    assert set(done.maps) == {"base_color"}
    assert set(creates(emu)[0]) == {"model_url", "texture_model", "texture_prompt",
                                    "target_formats"}
    with pytest.raises(ProviderError, match="no texture model 'meshy-6'"):
        provider(emu).submit(make_job(tmp_path, options={"texture_model": "meshy-6"}).request,
                             CancelToken())


def test_a_mesh_url_is_sent_instead_of_an_upload(emu: MeshyEmulator, tmp_path: Path) -> None:
    url = "https://cdn.example.com/props/chair.glb?sig=abc"
    p = provider(emu)
    job = make_job(tmp_path, options={"model_url": url})
    p.submit(job.request, CancelToken())
    assert creates(emu)[0]["model_url"] == url
    with pytest.raises(ProviderError, match="https://"):
        p.submit(make_job(tmp_path, options={"model_url": "http://x.example/a.glb"}).request,
                 CancelToken())


# --------------------------------------------------------------------------- v2 strictness


def test_a_refused_optional_field_is_dropped_once_and_said(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.refuse_fields = {"uv_mode", "target_formats"}
    first = make_job(tmp_path, "a", options={"enable_original_uv": False})
    runner = fast_runner(journal)
    done = run(runner, [first], lambda: provider(emu))[first.id]
    assert done.state is State.READY, done.message
    assert len(creates(emu)) == 3 and len(emu.tasks) == 1  # two refusals, one task, one charge
    assert done.extra["note"] == ("Meshy refused `uv_mode`; sent without it; Meshy refused "
                                  "`target_formats`; sent without it")
    # Without uv_mode Meshy keeps the object's UVs: no Meshy UVs are expected or taken.
    assert done.extra["meshy_uvs"] is False and UV_MESH not in done.maps
    # The next job of the session leaves them out at once, and says so.
    second = make_job(tmp_path, "b", options={"enable_original_uv": False})
    again = run(runner, [second], lambda: provider(emu))[second.id]
    assert again.state is State.READY and len(creates(emu)) == 4
    assert "uv_mode" not in creates(emu)[-1] and "target_formats" not in creates(emu)[-1]
    assert again.extra["note"] == ("sent without `target_formats` (Meshy refused it earlier); "
                                   "sent without `uv_mode` (Meshy refused it earlier)")


def test_a_refused_required_field_fails_with_one_line(emu: MeshyEmulator, tmp_path: Path,
                                                      journal: Journal) -> None:
    emu.refuse_fields = {"texture_model"}
    job = make_job(tmp_path)
    done = run(fast_runner(journal), [job], lambda: provider(emu))[job.id]
    assert done.state is State.FAILED
    assert done.message == "Meshy refused the request: Unknown parameter: texture_model"
    assert len(creates(emu)) == 1


def test_v1_fallback_only_for_a_base_without_v2(tmp_path: Path, journal: Journal) -> None:
    with MeshyEmulator(job_seconds=0.2, v2=False, v1=True) as emu:
        jobs = [make_job(tmp_path, f"o{i}", options={"enable_original_uv": False})
                for i in range(2)]
        runner = fast_runner(journal)
        done = run(runner, jobs[:1], lambda: provider(emu))
        done.update(run(runner, jobs[1:], lambda: provider(emu)))
        assert all(j.state is State.READY for j in done.values()), done
        assert all(j.remote_id.startswith("v1:") for j in done.values())
        assert all(UV_MESH in j.maps for j in done.values())
        assert emu.count("POST", f"^{RETEXTURE}$") == 1  # v2 asked once, then remembered
        (v1,) = {json.dumps(r.body, sort_keys=True) for r in emu.recorded("POST", V1_RETEXTURE)}
        body = json.loads(v1)
        assert body["text_style_prompt"] == "weathered oak planks"
        assert body["ai_model"] == "meshy-7" and body["enable_original_uv"] is False
        assert body["model_url"].startswith("data:application/octet-stream;base64,")
        warning = next(iter(done.values())).extra["warning"]
        assert "only speaks API v1, which stops working on 2027-03-15" in warning
        assert emu.count("GET", f"^{V1_RETEXTURE}/") >= 2 and emu.count("GET", TASKS) == 0
    with MeshyEmulator(v2=False, v1=False) as emu:
        with pytest.raises(ProviderError) as err:
            provider(emu).submit(make_job(tmp_path).request, CancelToken())
        assert "no texturing endpoint at this address" in err.value.message
        assert emu.count("POST") == 2


# --------------------------------------------------------------------------- faults


def _fault_cases() -> list[Any]:
    return [
        # (id, set-up, expected state, message fragment, extra check)
        ("latency", lambda e: setattr(e, "latency", 0.03), State.READY, "", None),
        ("rate limit x2 on create",
         lambda e: e.fail_next(429, 2, method="POST", retry_after="0"), State.READY, "",
         lambda e: e.count("POST") == 3 and len(e.tasks) == 1),
        ("500x2 on poll", lambda e: e.fail_next(500, 2, method="GET", path=POLL),
         State.READY, "", None),
        ("drop on poll", lambda e: e.drop_next(2, method="GET", path=POLL), State.READY, "",
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
        ("500 forever on poll", lambda e: e.fail_next(500, -1, method="GET", path=POLL),
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
         "Your Meshy account has no credits left (or this API key's credit limit is reached)",
         None),
        ("no balance route", lambda e: setattr(e, "balance_route", False), State.READY, "",
         lambda e: e.count("GET", "/balance$") == 1),
        ("rate limited", lambda e: (setattr(e, "rps_limit", 0),
                                    setattr(e, "rate_limit_retry_after", "0")), State.FAILED,
         "Meshy is getting too many requests from your account (HTTP 429)",
         lambda e: e.count("POST") == FAST.retries + 1),
        ("moderation", lambda e: e.fail_next(403, 1, method="POST", message="NSFW"),
         State.FAILED, "Meshy refused this API key (HTTP 403: NSFW)", None),
        ("bad model file", lambda e: e.fail_next(400, 1, method="POST",
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
    assert "[" not in done.message  # the type/code tag never reaches the artist
    if check is not None:
        assert check(emu)
    if state is State.READY:
        assert pixels(done.maps["normal"])[0] == expected_pixels("normal")


def settle_one(runner: Runner, job: Job, emu: MeshyEmulator) -> Job:
    return run(runner, [job], lambda: provider(emu))[job.id]


@pytest.mark.parametrize(("code", "line"), [
    ("moderation_blocked_nsfw", "Meshy refused the content (moderation) — change the prompt"),
    ("parameters_conflict", "the prompt and the reference image were both sent"),
])
def test_error_lines_follow_the_code_not_the_message(
    emu: MeshyEmulator, tmp_path: Path, code: str, line: str
) -> None:
    status = 403 if code.startswith("moderation") else 400
    emu.fail_next(status, 1, method="POST", message="whatever the wording is today")
    emu.faults[-1].message = "whatever the wording is today"
    real_error = emu.error

    def coded(status: int, message: str, headers: Any = None, **kw: Any) -> Any:
        return real_error(status, message, headers, code=code, kind="invalid_input")

    emu.error = coded  # type: ignore[method-assign]
    with pytest.raises(ProviderError) as err:
        provider(emu).submit(make_job(tmp_path).request, CancelToken())
    assert line in err.value.message and "wording" not in err.value.message


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
        if emu.count("GET", POLL):
            return next(iter(emu.tasks))
        time.sleep(0.01)
    raise AssertionError("no task was polled")


# --------------------------------------------------------------------------- plan limits


def test_a_full_plan_queue_is_waiting_not_failure(emu: MeshyEmulator, tmp_path: Path,
                                                  journal: Journal) -> None:
    """A 10-task plan, two of its slots used by another tool, and 12 jobs at once (the artist
    set "Jobs at once" too high): the extra creates are refused with
    pending_task_limit_reached, the jobs wait QUEUED and are sent when a task ends; every job
    succeeds and each is paid once."""
    emu.job_seconds = 1.0
    other_tool = [emu.new_task("retexture", {"_api": "v2"}) for _ in range(2)]
    emu.balance -= 20
    jobs = [make_job(tmp_path, f"o{i}") for i in range(12)]
    runner = fast_runner(journal)
    seen: list[str] = []
    done = run(runner, jobs, lambda: provider(emu, extras={"jobs_at_once": "12"}),
               timeout=30, seen_messages=seen)
    assert all(j.state is State.READY for j in done.values()), [
        j.message for j in done.values()]
    assert emu.queue_full_answers >= 1 and len(emu.tasks) == 12 + len(other_tool)
    assert len(creates(emu)) == 12 + emu.queue_full_answers
    assert emu.balance == 1000 - 20 - 12 * 10  # no double charge
    assert ("Your Meshy plan's limit of unfinished tasks is reached — this job waits until "
            "one of them ends") in seen
    limit, inside, refusals = runner.gate_facts("MESHY")
    assert refusals == emu.queue_full_answers and inside == 0 and limit <= 10


def test_jobs_at_once_comes_from_the_setting(emu: MeshyEmulator) -> None:
    assert MeshyProvider.max_concurrency == 10  # a Pro plan's unfinished tasks
    assert provider(emu, extras={"jobs_at_once": "30"}).max_concurrency == 30
    assert provider(emu, extras={"jobs_at_once": "0"}).max_concurrency == 10
    assert provider(emu, extras={"jobs_at_once": "lots"}).max_concurrency == 10
    # Status reads of all jobs together stay under half of Meshy's 20 requests a second.
    ultra = MeshyProvider(ProviderConfig(api_key="k", extras={"jobs_at_once": "100"}))
    assert ultra.poll_delay(0.0) == 10.0 and MeshyProvider().poll_delay(0.0) == 1.0


# --------------------------------------------------------------------------- cancel, resume


def test_cancel_of_a_waiting_task_deletes_it(emu: MeshyEmulator, tmp_path: Path,
                                             journal: Journal) -> None:
    emu.job_seconds, emu.pending_seconds = 30, 30
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    task_id = wait_for_task(emu)
    assert runner.cancel(job.id)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.CANCELED and done.message == "Canceled"
    deletes = emu.recorded("DELETE")
    assert [r.path for r in deletes] == [f"{TASKS}/{task_id}"] and deletes[0].auth_ok
    assert emu.task(task_id) is None and emu.balance == 1000  # refunded


def test_a_running_task_meshy_will_not_stop_is_kept_not_lost(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.job_seconds = 1.0
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    task_id = wait_for_task(emu)
    assert runner.cancel(job.id)
    seen: list[str] = []
    done = settle(runner, [job.id], seen_messages=seen)[job.id]
    assert done.state is State.READY and done.extra["kept_unapplied"] is True
    assert done.extra["warning"] == (
        "Meshy could not stop the running task: it continues at Meshy and may be charged; "
        "its result will be kept in the job list, not applied")
    assert any(m.endswith("(canceled here; the result will be kept, not applied)")
               for m in seen)
    assert emu.task(task_id) is not None and len(emu.recorded("DELETE")) == 1


def test_canceling_a_kept_job_again_stops_watching(emu: MeshyEmulator, tmp_path: Path,
                                                   journal: Journal) -> None:
    emu.job_seconds = 30
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    wait_for_task(emu)
    runner.cancel(job.id)
    end = time.monotonic() + 5
    kept = False
    while not kept and time.monotonic() < end:  # the refusal has been taken in
        kept = any(s.extra.get("kept_unapplied") for s in runner.drain())
        time.sleep(0.01)
    assert kept
    runner.cancel(job.id)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.CANCELED
    assert done.message == "Canceled here; Meshy may still finish this job and charge it"
    assert len(emu.recorded("DELETE")) == 1


def test_a_restart_resumes_polling_without_paying_twice(
    emu: MeshyEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.job_seconds = 0.6
    job = make_job(tmp_path, options={"enable_original_uv": False})
    first = fast_runner(journal)
    first.start(job, provider(emu))
    wait_for_task(emu)
    time.sleep(0.1)
    first.kill()  # Blender quit while Meshy was working
    time.sleep(0.05)
    (pending,) = journal.unfinished()
    assert pending.state is State.RUNNING and pending.remote_id
    second = fast_runner(journal)
    second.resume(pending, provider(emu))
    done = settle(second, [job.id])[job.id]
    assert done.state is State.READY and emu.count("POST") == 1
    assert UV_MESH in done.maps


# --------------------------------------------------------------------------- test connection


def test_connection_check_is_free_and_says_what_works(emu: MeshyEmulator) -> None:
    good = provider(emu).test_connection()
    assert good.ok and good.line == "Meshy works: the key is accepted (API v2), 1,000 credits left"
    bad = provider(emu, key="msy_wrong_key_123456").test_connection()
    assert not bad.ok and bad.line.startswith("Meshy rejected the API key — check Preferences")
    missing = MeshyProvider(ProviderConfig(api_base=emu.url)).test_connection()
    assert not missing.ok and "needs an API key" in missing.line
    assert emu.count("POST") == 0 and emu.count("DELETE") == 0 and emu.balance == 1000
    assert {r.path for r in emu.recorded()} == {BALANCE}
    with MeshyEmulator(v2=False, v1=True) as old:
        line = provider(old).test_connection().line
        assert "only speaks API v1, which stops working on 2027-03-15" in line
        assert old.count("POST") == 0


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
    ok = c.status_of({"status": "SUCCEEDED", "progress": 1,
                      "output": {"texture_urls": [{"base_color": "https://a/b.png"}]}})
    assert ok.state is RemoteState.SUCCEEDED and ok.progress == 1.0
    assert ok.maps == {"base_color": "https://a/b.png"}
    v1 = c.status_of({"status": "SUCCEEDED", "texture_urls": [{"base_color": "https://a/c"}]})
    assert v1.maps == {"base_color": "https://a/c"}  # v1's top-level results are read too
    queued = c.status_of({"status": "PENDING", "progress": 0, "preceding_tasks": 3})
    assert queued.state is RemoteState.QUEUED and "3 ahead" in queued.message
    running = c.status_of({"status": "IN_PROGRESS", "progress": 97})
    assert running.progress == pytest.approx(0.97) and "finishing" in running.message
    assert c.status_of({"status": "SOMETHING_NEW"}).state is RemoteState.UNKNOWN
    failed = c.status_of({"status": "FAILED", "task_error": {
        "type": "invalid_input", "code": "moderation_blocked_nsfw", "message": "x"}})
    assert failed.message.startswith("Meshy refused the content (moderation)")
    assert c.status_of({"status": "FAILED", "task_error": None}).message
    assert c.texture_resolution(1024) == "2k" and c.texture_resolution(4096) == "4k"
    assert c.texture_resolution(8192) == "8k"


# --------------------------------------------------------------------------- secrets, report


def test_the_key_never_reaches_logs_journal_messages_or_the_report(
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
    everything += "".join(p.read_text() for p in journal.root.rglob("*.json*"))
    assert emu.api_key not in everything and emu.api_key[4:] not in everything
    logs = [journal.exchanges_path(j.id).read_text() for j in jobs]
    assert all(logs) and "data:" not in "".join(logs) and "Signature=" not in "".join(logs)
    assert "/openapi/v2/retexture" in logs[0] and '"status": 400' in logs[0]


def test_the_emulator_lists_streams_and_validates(emu: MeshyEmulator, tmp_path: Path) -> None:
    import requests

    auth = {"Authorization": f"Bearer {emu.api_key}"}
    rid = provider(emu).submit(make_job(tmp_path).request, CancelToken())
    listing = requests.get(f"{emu.url}{TASKS}?type=retexture&page_size=5", headers=auth,
                           timeout=5).json()
    assert isinstance(listing, list) and listing[0]["id"] == rid
    with requests.get(f"{emu.url}{TASKS}/{rid}/stream", headers=auth, stream=True,
                      timeout=5) as sse:
        events = [json.loads(line[5:]) for line in sse.iter_lines(decode_unicode=True)
                  if line.startswith("data:")]
    assert events[-1]["status"] == "SUCCEEDED" and events[-1]["output"]["texture_urls"]
    bad = requests.post(f"{emu.url}{RETEXTURE}", headers=auth,
                        json={"model_url": "x", "text_style_prompt": "v1 name"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["type"] == "invalid_input"
    assert "text_style_prompt" in bad.json()["message"]
    nope = requests.get(f"{emu.url}/openapi/v1/retexture/x", headers=auth, timeout=5)
    assert nope.status_code == 404 and nope.json()["code"] == "route_not_found"
    assert nope.json()["message"] == NO_ROUTE
    assert requests.get(f"{emu.url}{BALANCE}", timeout=5).status_code == 401
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
        answer = requests.get(f"{env['MESHY_API_BASE']}{BALANCE}", timeout=5,
                              headers={"Authorization": f"Bearer {env['MESHY_API_KEY']}"})
        assert answer.json()["balance"] == 1000
    finally:
        proc.terminate()
        proc.wait(5)

