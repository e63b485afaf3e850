"""Triverse end to end over real loopback HTTP: provider + runner against the Triverse emulator."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from emulators.base import emulator_fixture, expected_pixels, guard_loopback, marker_pixels
from emulators.glb import cube_glb, positions_of, quad_glb, uvs_of
from emulators.triverse import MR_PIXELS, TriverseEmulator, parse_multipart
from runner_driving import fast_runner, run, settle
from text_to_texture.formats.imagefile import encode_png, read_png
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.runner import MAX_POLL_FAILURES
from text_to_texture.net.http import RetryPolicy
from text_to_texture.providers.base import (
    RESULT_MESH,
    CancelToken,
    ProviderConfig,
    ProviderError,
    RemoteState,
    TextureRequest,
)
from text_to_texture.providers.triverse import (
    TriverseProvider,
    client_order_id,
    failure_message,
    polygon_limit,
    status_of,
    texture_size,
)
from text_to_texture.providers.triverse import uploads as uploads_module

FAST = RetryPolicy(retries=3, base=0.01, cap=0.05, max_total=5.0)
FAST_UPLOAD = RetryPolicy(retries=6, base=0.01, cap=0.05, max_total=5.0)
CDN = "https://cdn.example.com/props/chair.glb"
UPLOADS = r"^/upload/(model|image)$"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture(autouse=True)
def fresh_upload_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports are reused between tests: the gate's memory of uploads must not leak across."""
    monkeypatch.setattr(uploads_module, "UPLOAD_GATE", uploads_module.UploadGate())
    monkeypatch.setattr(uploads_module, "UPLOADED", uploads_module.UploadedFiles())


# A fresh Triverse emulator per test on a free loopback port: jobs take 0.25 s.
emu = emulator_fixture(TriverseEmulator, job_seconds=0.25)


@pytest.fixture()
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def provider(emu: TriverseEmulator, key: str | None = None, **kw: Any) -> TriverseProvider:
    cfg = ProviderConfig(api_key=emu.api_key if key is None else key, api_base=emu.url)
    return TriverseProvider(cfg, poll_interval=kw.pop("poll_interval", 0.05),
                            retry=kw.pop("retry", FAST),
                            upload_retry=kw.pop("upload_retry", FAST_UPLOAD),
                            rate_limit_wait=kw.pop("rate_limit_wait", 0.05), **kw)


def make_job(tmp_path: Path, name: str = "Cube", mesh: bytes | None = None,
             **request: Any) -> Job:
    jid = new_job_id()
    mesh_path = tmp_path / f"{name}.glb"
    mesh_path.write_bytes(cube_glb() if mesh is None else mesh)
    req = TextureRequest(job_id=jid, prompt=request.pop("prompt", "weathered oak planks"),
                         mesh_path=str(mesh_path), mesh_format="GLB",
                         out_dir=str(tmp_path / "maps"), file_stem=name, **request)
    return Job(id=jid, provider="TRIVERSE", object_name=name, request=req)


def reference_png(tmp_path: Path, gray: int = 90) -> Path:
    ref = tmp_path / f"ref{gray}.png"
    ref.write_bytes(encode_png(np.full((8, 8, 3), gray, np.uint8)))
    return ref


def run_one(emu: TriverseEmulator, tmp_path: Path, journal: Journal, **kw: Any) -> Job:
    job = make_job(tmp_path, **kw)
    return run(fast_runner(journal), [job], lambda: provider(emu))[job.id]


def pixels(path: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    arr = read_png(path)
    h, w = arr.shape[:2]
    return tuple(int(v) for v in arr[h // 2, w // 2][:3]), tuple(int(v) for v in arr[0, 0][:3])


def assert_maps_by_pixels(job: Job) -> None:
    """Each socket's file, told apart by content alone (the emulator's known images)."""
    assert set(job.maps) == {"base_color", "metallic_roughness", "normal", RESULT_MESH}
    for role in ("base_color", "normal"):
        assert pixels(job.maps[role]) == (expected_pixels(role), marker_pixels(role)), role
    mr = read_png(job.maps["metallic_roughness"])
    assert tuple(mr[mr.shape[0] // 2, mr.shape[1] // 2]) == MR_PIXELS[0]
    assert tuple(mr[0, 0]) == MR_PIXELS[1]
    assert mr[5, 40, 1] == expected_pixels("roughness")[0]  # G = roughness
    assert mr[5, 40, 2] == expected_pixels("metallic")[0]  # B = metallic


def count_kinds(emu: TriverseEmulator, task_id: str) -> dict[str, int]:
    """Requests per job by kind (the client's; the emulator's own fetch of model_url apart)."""
    kinds = {
        "upload": r"^/upload/(model|image)$", "presign": r"^/upload/presigned-get-url$",
        "create": r"^/tasks/(text-to-texture|texture-model)$",
        "status": rf"^/tasks/{task_id}$", "result url": rf"^/tasks/url/{task_id}$",
        "download": rf"^/storage/results/{task_id}\.glb$|^/tasks/download/{task_id}$",
        "balance": r"^/users/balance$", "quote": r"^/tasks/pricing/quote$",
    }
    return {k: emu.count(path=p) for k, p in kinds.items()}


# --------------------------------------------------------------------------- the three modes


def test_text_mode_several_objects_through_presigned_urls(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal
) -> None:
    meshes = {"Cube": cube_glb(), "Plane": quad_glb(), "Box": cube_glb(2.0)}
    jobs = [make_job(tmp_path, name, mesh) for name, mesh in meshes.items()]
    done = run(fast_runner(journal), jobs, lambda: provider(emu))

    for job in jobs:
        got = done[job.id]
        assert got.state is State.READY, got.message
        assert_maps_by_pixels(got)
        for role, path in got.maps.items():
            suffix = "triverse.glb" if role == RESULT_MESH else f"{role}.png"
            assert Path(path).name == f"{job.object_name}_{suffix}"  # our names only
        result = Path(got.maps[RESULT_MESH]).read_bytes()
        np.testing.assert_allclose(positions_of(result), positions_of(meshes[job.object_name]))
        assert got.extra["cost_credits"] == 20 and "balance" in got.extra
    assert emu.charged() == 60 and emu.available() == 1000 - 60

    uploads = emu.recorded("POST", "^/upload/model$")
    assert len(uploads) == 3 and all(r.query == {"modelVariant": ["geometry"]} for r in uploads)
    creates = emu.recorded("POST", "^/tasks/text-to-texture$")
    assert sorted(r.body["client_order_id"] for r in creates) == sorted(
        f"t2t-{j.id}" for j in jobs)
    for rec in creates:
        assert rec.body["text_prompt"] == "weathered oak planks"
        assert rec.body["model_url"].startswith(f"{emu.url}/storage/tasks/uid_")
        assert rec.body["texture_size"] == 1024 and "polygon_limit" not in rec.body
        assert "model_version" not in rec.body
    fetched = emu.recorded("GET", "^/storage/tasks/")  # the service downloaded each upload
    assert len(fetched) == 3 and not any(r.sent_auth for r in fetched)
    api = [r for r in emu.recorded() if not r.path.startswith("/storage/")]
    assert all(r.auth_ok for r in api)
    assert not any(r.sent_auth for r in emu.recorded("GET", "^/storage/results/"))
    assert not list((tmp_path / "maps").glob(".*")) and not list(tmp_path.rglob("*outside*"))
    task_id = done[jobs[0].id].remote_id
    kinds = count_kinds(emu, task_id)
    # What a job costs in requests: one upload, presign, create and balance check per object;
    # this job's result link and download once each; no price quote.
    assert kinds.pop("status") >= 1
    assert kinds == {"upload": 3, "presign": 3, "create": 3, "balance": 3, "quote": 0,
                     "result url": 1, "download": 1}


def test_artist_url_mode_sends_the_url_and_uploads_nothing(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.publish(CDN, quad_glb())
    done = run_one(emu, tmp_path, journal, options={"model_url": CDN, "polygon_limit": 20000})
    assert done.state is State.READY, done.message
    assert_maps_by_pixels(done)
    assert emu.count(path=UPLOADS) == 0
    body = emu.recorded("POST", "^/tasks/text-to-texture$")[0].body
    assert body["model_url"] == CDN and body["polygon_limit"] == 20000
    np.testing.assert_allclose(positions_of(Path(done.maps[RESULT_MESH]).read_bytes()),
                               positions_of(quad_glb()))  # what the service downloaded
    with pytest.raises(ProviderError, match="public https://"):
        provider(emu).submit(make_job(tmp_path, options={"model_url": "http://x.example/a.glb"})
                             .request, CancelToken())
    with pytest.raises(ProviderError, match="public https://"):
        provider(emu).submit(make_job(tmp_path, options={
            "model_url": "https://127.0.0.1/a.glb"}).request, CancelToken())


def test_image_guided_mode_uploads_image_and_mesh(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal
) -> None:
    ref = reference_png(tmp_path)
    done = run_one(emu, tmp_path, journal, resolution=4096,
                   options={"reference_image_path": str(ref), "polygon_limit": 1000,
                            "model_version": "v2"})
    assert done.state is State.READY, done.message
    assert_maps_by_pixels(done)
    assert emu.count("POST", "^/upload/presigned") == 0
    assert emu.count("POST", "^/tasks/text-to-texture$") == 0
    body = emu.recorded("POST", "^/tasks/texture-model$")[0].body
    assert emu.files[body["image_file"]] == (ref.read_bytes(), "image")
    assert emu.files[body["model_file"]] == (cube_glb(), "model")
    assert body["texture_size"] == 4096 and body["polygon_limit"] == 1000
    assert body["model_version"] == "v2" and "text_prompt" not in body
    assert emu.charged() == 40
    kinds = count_kinds(emu, done.remote_id)
    assert kinds.pop("status") >= 1
    assert kinds == {"upload": 2, "presign": 0, "create": 1, "balance": 1, "quote": 0,
                     "result url": 1, "download": 1}  # the model and the image, nothing twice


def test_a_different_topology_comes_back_with_its_own_uvs(
    tmp_path: Path, journal: Journal
) -> None:
    with TriverseEmulator(job_seconds=0.2, result_topology="different") as emu:
        done = run_one(emu, tmp_path, journal)
    assert done.state is State.READY, done.message
    result = Path(done.maps[RESULT_MESH]).read_bytes()
    pos = positions_of(result)
    assert len(pos) == 150 and len(positions_of(cube_glb())) == 24
    np.testing.assert_allclose(pos.min(axis=0), [-0.5] * 3, atol=1e-6)  # same bounds
    np.testing.assert_allclose(pos.max(axis=0), [0.5] * 3, atol=1e-6)
    uvs = uvs_of(result)
    assert len(uvs) == 150 and uvs.min() > 0 and uvs.max() < 1
    assert_maps_by_pixels(done)


def test_pbr_off_gives_base_color_and_the_model(emu: TriverseEmulator, tmp_path: Path,
                                                journal: Journal) -> None:
    done = run_one(emu, tmp_path, journal, enable_pbr=False)
    assert done.state is State.READY
    assert set(done.maps) == {"base_color", RESULT_MESH}


# --------------------------------------------------------------------------- idempotent create


def test_a_lost_create_answer_is_retried_without_paying_twice(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.lose_create_answers(1)
    job = make_job(tmp_path)
    done = run(fast_runner(journal), [job], lambda: provider(emu))[job.id]
    assert done.state is State.READY, done.message
    creates = emu.recorded("POST", "^/tasks/text-to-texture$")
    assert len(creates) == 2  # the answer to the first was lost; the retry is the same order
    assert {r.body["client_order_id"] for r in creates} == {f"t2t-{job.id}"}
    assert creates[0].body == creates[1].body
    assert len(emu.tasks) == 1 and done.remote_id in emu.tasks
    assert emu.charged() == 20 and emu.available() == 980  # charged once
    assert creates[1].headers.get("idempotency-key") == f"t2t-{job.id}"


def test_a_create_without_client_order_id_support_is_sent_once_without_it(
    emu: TriverseEmulator, tmp_path: Path
) -> None:
    emu.fail_code(1004, 1, method="POST", path="text-to-texture$",
                  message="Unknown field: client_order_id")
    rid = provider(emu).submit(make_job(tmp_path).request, CancelToken())
    creates = emu.recorded("POST", "^/tasks/text-to-texture$")
    assert len(creates) == 2 and "client_order_id" not in creates[1].body
    assert rid in emu.tasks


# --------------------------------------------------------------------------- upload rate limit


def test_the_upload_limit_is_hit_and_recovered(tmp_path: Path, journal: Journal) -> None:
    """Another client used up the account's uploads: code 2000 is waited out and retried."""
    with TriverseEmulator(job_seconds=0.2, upload_limit=3, upload_window=0.4) as emu:
        jobs = [make_job(tmp_path, f"o{i}", cube_glb(1.0 + i), options={
            "reference_image_path": str(reference_png(tmp_path, 10 + i))}) for i in range(3)]
        done = run(fast_runner(journal), jobs, lambda: provider(emu, rate_limit_wait=0.15))
        assert all(j.state is State.READY for j in done.values()), done
        sent = emu.recorded("POST", UPLOADS)
        assert len(sent) > 6  # 6 uploads against 3 per 0.4 s: some refused with 2000, resent
        assert len(emu.files) == 6 and len(emu.tasks) == 3


def test_a_batch_uploads_its_shared_reference_image_once(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal
) -> None:
    ref = str(reference_png(tmp_path))
    jobs = [make_job(tmp_path, f"o{i}", cube_glb(1.0 + i), options={
        "reference_image_path": ref}) for i in range(3)]
    done = run(fast_runner(journal), jobs, lambda: provider(emu))
    assert all(j.state is State.READY for j in done.values()), done
    assert emu.count("POST", "^/upload/image$") == 1 and emu.count("POST", "^/upload/model$") == 3
    image_keys = {r.body["image_file"] for r in emu.recorded("POST", "texture-model$")}
    assert len(image_keys) == 1


def test_a_forgotten_upload_is_uploaded_again(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal
) -> None:
    ref = str(reference_png(tmp_path))
    first = run_one(emu, tmp_path, journal, options={"reference_image_path": ref})
    assert first.state is State.READY
    with emu.lock:  # Triverse's storage dropped the image
        for key in [k for k, (_, kind) in emu.files.items() if kind == "image"]:
            del emu.files[key]
    job = make_job(tmp_path, "Other", cube_glb(3.0), options={"reference_image_path": ref})
    second = run(fast_runner(journal), [job], lambda: provider(emu))[job.id]
    assert second.state is State.READY, second.message
    assert emu.count("POST", "^/upload/image$") == 2
    creates = emu.recorded("POST", "texture-model$")
    assert len(creates) == 3 and len(emu.tasks) == 2  # one refused with 1005, then sent anew


def test_an_upload_limit_that_never_clears_fails_clearly(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.fail_code(2000, -1, method="POST", path=UPLOADS,
                  message="Upload rate limit exceeded")
    done = run_one(emu, tmp_path, journal)
    assert done.state is State.FAILED
    assert done.message == ("Triverse is too busy: its limit of 10 uploads a minute or its task "
                            "queue is full (Upload rate limit exceeded) — wait a minute, then "
                            "retry")
    assert emu.count("POST", UPLOADS) == FAST_UPLOAD.retries + 1
    assert emu.count("POST", "^/tasks/") == 0


def test_the_client_paces_its_own_uploads(tmp_path: Path, journal: Journal,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Knowing the limit, a batch spaces its uploads instead of collecting refusals."""
    monkeypatch.setattr(TriverseProvider, "upload_limit", 2)
    monkeypatch.setattr(TriverseProvider, "upload_window", 0.5)
    with TriverseEmulator(job_seconds=0.1, upload_limit=2, upload_window=0.5) as emu:
        jobs = [make_job(tmp_path, f"o{i}", cube_glb(1.0 + i)) for i in range(3)]
        done = run(fast_runner(journal), jobs, lambda: provider(emu))
        assert all(j.state is State.READY for j in done.values()), done
        uploads = emu.recorded("POST", UPLOADS)
        assert len(uploads) == 3 and not any(r.fault for r in uploads)
        times = sorted(r.at for r in uploads)
        assert times[2] - times[0] >= 0.45  # the third waited for the window


# --------------------------------------------------------------------------- faults


def _fault_cases() -> list[Any]:
    poll = r"^/tasks/[0-9a-f-]{36}$"
    create = r"^/tasks/text-to-texture$"
    results = "^/storage/results/"
    return [
        # (id, set-up, expected state, message fragment, extra check)
        ("latency", lambda e: setattr(e, "latency", 0.02), State.READY, "", None),
        ("2000 queue full x2 on create", lambda e: e.fail_code(2000, 2, path=create),
         State.READY, "", lambda e: e.count("POST", create) == 3 and len(e.tasks) == 1),
        ("5003 x2 on create", lambda e: e.fail_code(5003, 2, path=create), State.READY, "",
         lambda e: e.count("POST", create) == 3 and len(e.tasks) == 1),
        ("drop on create", lambda e: e.drop_next(1, method="POST", path=create), State.READY,
         "", lambda e: len(e.tasks) == 1),
        ("500 x2 on poll", lambda e: e.fail_next(500, 2, method="GET", path=poll),
         State.READY, "", None),
        ("drop on poll", lambda e: e.drop_next(2, method="GET", path=poll), State.READY, "",
         None),
        ("drop on upload", lambda e: e.drop_next(1, method="POST", path="^/upload/model"),
         State.READY, "", lambda e: e.count("POST", "^/upload/model") == 2),
        ("truncated once", lambda e: e.truncate_downloads(1, path=results), State.READY, "",
         None),
        ("expired link once", lambda e: e.expire_downloads(1, path=results), State.READY, "",
         lambda e: e.count("GET", "^/tasks/url/") == 2),
        ("expired links always", lambda e: e.expire_downloads(-1, path=results), State.READY,
         "", lambda e: e.count("GET", "^/tasks/download/") == 1),
        ("no /tasks/url", lambda e: setattr(e, "url_route", False), State.READY, "",
         lambda e: e.count("GET", "^/tasks/download/") == 1),
        ("url outside the envelope", lambda e: setattr(e, "url_in_envelope", False),
         State.READY, "", None),
        ("presign says url", lambda e: setattr(e, "presign_field", "url"), State.READY, "",
         None),
        ("older field names", lambda e: setattr(e, "legacy_fields", True), State.READY, "",
         None),
        ("images as data URIs", lambda e: setattr(e, "embed_images", "data_uri"), State.READY,
         "", None),
        ("no balance route", lambda e: setattr(e, "balance_route", False), State.READY, "",
         lambda e: e.count("GET", "^/users/balance$") == 1),
        ("500 forever on poll", lambda e: e.fail_next(500, -1, method="GET", path=poll),
         State.FAILED, f"Triverse did not answer after {MAX_POLL_FAILURES} tries: Triverse is "
         "not responding (HTTP 500: Internal Server Error) — try again later", None),
        ("2010 no credits", lambda e: setattr(e, "credits", 10), State.FAILED,
         "Your Triverse account does not have enough credits for this job — top it up at "
         "triverse.ai, then retry", lambda e: e.count("POST", create) == 1),
        ("2008 content safety", lambda e: e.fail_tasks(
            "The prompt violates the content safety policy.", code=2008), State.FAILED,
         "Triverse refused the content (content safety): The prompt violates the content "
         "safety policy — change the prompt or the reference image",
         lambda e: e.charged() == 0 and e.available() == e.credits),
        ("FAILED with a string error", lambda e: (setattr(e, "error_shape", "string"),
                                                  e.fail_tasks("GPU worker crashed.")),
         State.FAILED, "Triverse: GPU worker crashed.", None),
        ("2004 on upload", lambda e: e.fail_code(2004, 1, path="^/upload/model",
                                                 message="The file type is unsupported."),
         State.FAILED, "Triverse does not accept this file type: The file type is unsupported",
         None),
        ("1004 twice on create", lambda e: e.fail_code(1004, 2, path=create,
                                                       message="texture_size is out of range"),
         State.FAILED, "Triverse refused the request as invalid: texture_size is out of range",
         lambda e: e.count("POST", create) == 2
         and "client_order_id" not in e.recorded("POST", create)[1].body),
        ("5004 on create", lambda e: e.fail_code(5004, 1, path=create), State.FAILED,
         "Triverse cannot run this kind of job (invalid flow, code 5004)",
         lambda e: e.count("POST", create) == 1),
        ("1005 on presign", lambda e: e.fail_code(1005, 1, path="presigned",
                                                  message="Resource not found"),
         State.FAILED, "Triverse cannot find that file, or this key may not use it", None),
        ("4042 no assets", lambda e: setattr(e, "no_assets", True), State.FAILED,
         "Triverse finished the job but has nothing to download for it — run the job again",
         None),
        ("5003 forever on create", lambda e: e.fail_code(5003, -1, path=create), State.FAILED,
         "Triverse's storage or processing backend is down (code 5003) — try again later",
         lambda e: e.count("POST", create) == FAST.retries + 1),
        ("truncated always", lambda e: e.truncate_downloads(-1, path=results), State.FAILED,
         "The textured model download from Triverse kept failing", None),
        ("not a GLB", lambda e: e.non_image_downloads(1, path=results), State.FAILED,
         "Triverse sent a textured model that is not a GLB model", None),
        ("presigned link unusable", lambda e: e.expire_downloads(2, path="^/storage/tasks/"),
         State.FAILED, "Triverse refused the request as invalid: The model URL is inaccessible",
         lambda e: len(e.tasks) == 0),
    ]


@pytest.mark.parametrize(("setup", "state", "fragment", "check"),
                         [pytest.param(*c[1:], id=c[0]) for c in _fault_cases()])
def test_each_fault_ends_in_the_right_state(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal,
    setup: Any, state: State, fragment: str, check: Any,
) -> None:
    setup(emu)
    done = run_one(emu, tmp_path, journal)
    assert done.state is state, done.message
    assert fragment in done.message
    assert "\n" not in done.message and emu.api_key not in done.message
    assert "(code " not in done.message or "code 500" in done.message
    if check is not None:
        assert check(emu)
    if state is State.READY:
        assert_maps_by_pixels(done)


def test_image_upload_refused_by_moderation(emu: TriverseEmulator, tmp_path: Path,
                                            journal: Journal) -> None:
    emu.moderate_images = True
    done = run_one(emu, tmp_path, journal,
                   options={"reference_image_path": str(reference_png(tmp_path))})
    assert done.state is State.FAILED
    assert done.message.startswith("Triverse refused the content (content safety): The image "
                                   "did not pass content safety review")


@pytest.mark.parametrize("fetch_at", ["create", "task"])
def test_an_inaccessible_artist_url(tmp_path: Path, journal: Journal, fetch_at: str) -> None:
    with TriverseEmulator(job_seconds=0.2, fetch_model_at=fetch_at) as emu:
        done = run_one(emu, tmp_path, journal, options={"model_url": CDN})  # not published
        assert done.state is State.FAILED
        if fetch_at == "create":
            assert done.message == ("Triverse refused the request as invalid: The model URL is "
                                    "inaccessible")
            assert len(emu.tasks) == 0
        else:
            assert done.message == ("Triverse refused the request as invalid: Failed to "
                                    "download the model from model_url")
            assert emu.charged() == 0


def test_wrong_key_is_one_actionable_line(emu: TriverseEmulator, tmp_path: Path,
                                          journal: Journal) -> None:
    job = make_job(tmp_path)
    done = run(fast_runner(journal), [job], lambda: provider(emu, key="tv_wrong_key_000"))
    assert done[job.id].state is State.FAILED
    assert done[job.id].message == ("Triverse rejected the API key — check Preferences > "
                                    "Add-ons > Text to Texture > Triverse (or TRIVERSE_API_KEY)")
    assert len(emu.recorded()) == 1 and emu.recorded()[0].auth_ok is False


def test_a_task_that_goes_away(emu: TriverseEmulator, tmp_path: Path, journal: Journal) -> None:
    emu.job_seconds = 30
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    task_id = wait_for_task(emu)
    emu.tasks[task_id].deleted = True
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message == ("Triverse no longer knows this job (expired, deleted, or another "
                            "account's)")


def wait_for_task(emu: TriverseEmulator, timeout: float = 5.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with emu.lock:
            polled = [t for t in emu.tasks if emu.status_requests(t)]
        if polled:
            return polled[0]
        time.sleep(0.01)
    raise AssertionError("no task was polled")


# --------------------------------------------------------------------------- corrected contract


def test_early_polls_carry_the_read_after_write_header(emu: TriverseEmulator, tmp_path: Path,
                                                       journal: Journal) -> None:
    done = run_one(emu, tmp_path, journal)
    assert done.state is State.READY, done.message
    polls = emu.recorded("GET", rf"^/tasks/{done.remote_id}$")
    header = emu.raw_header.lower()
    assert polls[0].headers.get(header) == done.remote_id  # the hint's value: the task uuid
    assert emu.not_visible_answers == 0
    assert done.extra["read_after_write_header"] == emu.raw_header


@pytest.mark.parametrize("hints", [True, False], ids=["hints, header ignored", "no hints"])
def test_a_task_not_readable_yet_is_waited_for_not_failed(
    tmp_path: Path, journal: Journal, hints: bool
) -> None:
    """Triverse runs (and charges) the task while our first polls still get 1006/404: inside
    the read-after-write window (or the grace without hints) that is "not visible yet"."""
    with TriverseEmulator(job_seconds=0.3, read_lag=0.5, raw_hints=hints,
                          raw_header_honoured=False) as emu:
        seen: list[str] = []
        job = make_job(tmp_path)
        done = run(fast_runner(journal), [job], lambda: provider(emu),
                   seen_messages=seen)[job.id]
        assert done.state is State.READY, done.message
        assert emu.not_visible_answers >= 2 and len(emu.tasks) == 1
        assert "Triverse is registering the job" in seen


def test_text_to_texture_without_client_order_id_support(tmp_path: Path,
                                                         journal: Journal) -> None:
    with TriverseEmulator(job_seconds=0.2, order_id_on_text=False) as emu:
        done = run_one(emu, tmp_path, journal)
        assert done.state is State.READY, done.message
        creates = emu.recorded("POST", "^/tasks/text-to-texture$")
        assert [("client_order_id" in r.body) for r in creates] == [True, False]
        assert "idempotency-key" not in creates[1].headers
        assert done.extra["note"] == ("Triverse refused the request with client_order_id; "
                                      "sent without it")


def test_a_full_task_queue_is_waiting_not_failure(tmp_path: Path, journal: Journal) -> None:
    with TriverseEmulator(job_seconds=0.2, queue_limit=0) as emu:
        job = make_job(tmp_path)
        runner = fast_runner(journal)
        runner.start(job, provider(emu))
        seen: list[tuple[State, str]] = []
        end = time.monotonic() + 10
        while emu.count("POST", "^/tasks/text-to-texture$") < 3 and time.monotonic() < end:
            seen += [(snap.state, snap.message) for snap in runner.drain()]
            time.sleep(0.01)
        assert (State.QUEUED, "Triverse's task queue for your account is full — this job "
                              "waits and is sent when a place frees") in seen
        assert not any(state.terminal for state, _ in seen)
        emu.queue_limit = 20  # a slot frees at Triverse
        done = settle(runner, [job.id])[job.id]
        assert done.state is State.READY and len(emu.tasks) == 1 and emu.charged() == 20
        assert emu.count("POST", "^/upload/model$") == 1  # the upload is not repeated


def test_connection_check_is_a_free_price_quote(emu: TriverseEmulator) -> None:
    good = provider(emu).test_connection()
    assert good.ok and good.line == ("Triverse works: the key is accepted; a 1024 px text "
                                     "texture costs 20 credits (1,000 available)")
    bad = provider(emu, key="tv_wrong_key_000000").test_connection()
    assert not bad.ok and bad.line.startswith("Triverse rejected the API key — check")
    assert {r.path for r in emu.recorded()} == {"/tasks/pricing/quote"}
    assert len(emu.tasks) == 0 and emu.available() == 1000


# --------------------------------------------------------------------------- cancel, resume


def test_cancel_is_local_only(emu: TriverseEmulator, tmp_path: Path, journal: Journal,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    emu.job_seconds = 30
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    task_id = wait_for_task(emu)
    before = emu.count()
    assert runner.cancel(job.id)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.CANCELED
    assert emu.count() - before <= 1  # at most a poll already under way; nothing to cancel with
    assert not emu.recorded("DELETE")
    assert f"task {task_id} keeps running at Triverse" in caplog.text


def test_a_restart_resumes_polling_without_paying_twice(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.job_seconds = 0.6
    job = make_job(tmp_path)
    first = fast_runner(journal)
    first.start(job, provider(emu))
    wait_for_task(emu)
    first.kill()
    time.sleep(0.05)
    (pending,) = journal.unfinished()
    assert pending.state is State.RUNNING and pending.remote_id
    second = fast_runner(journal)
    second.resume(pending, provider(emu))
    done = settle(second, [job.id])[job.id]
    assert done.state is State.READY and len(emu.tasks) == 1 and emu.charged() == 20


# --------------------------------------------------------------------------- pricing


def test_the_price_quote(emu: TriverseEmulator, tmp_path: Path) -> None:
    p = provider(emu)
    text = p.quote(make_job(tmp_path).request)
    assert text == {"flow_name": "text-to-texture", "cost_credits": 20,
                    "available_credits": 1000}
    image = p.quote(make_job(tmp_path, resolution=4096, options={
        "reference_image_path": "x.png"}).request)
    assert image is not None and image["flow_name"] == "texture-model"
    assert image["cost_credits"] == 40
    body = emu.recorded("POST", "quote$")[-1].body
    assert body == {"flow_name": "texture-model", "params": {"texture_size": 4096}}
    assert len(emu.tasks) == 0 and emu.available() == 1000  # read-only
    emu.quote_route = False
    assert p.quote(make_job(tmp_path).request) is None
    assert provider(emu, key="tv_wrong_key_000").quote(make_job(tmp_path).request) is None
    assert TriverseProvider(ProviderConfig()).quote(make_job(tmp_path).request) is None
    bad = make_job(tmp_path, options={"polygon_limit": 5})
    assert p.quote(bad.request) is None


# --------------------------------------------------------------------------- checks up front


def test_checks_before_anything_is_sent(emu: TriverseEmulator, tmp_path: Path,
                                        loopback_only: list[str]) -> None:
    p = provider(emu)
    cases = [
        (make_job(tmp_path, options={"polygon_limit": 999}), "between 1,000 and 1,500,000"),
        (make_job(tmp_path, options={"polygon_limit": "many"}), "whole number"),
        (make_job(tmp_path, prompt="  "), "needs a prompt"),
        (make_job(tmp_path, options={"reference_image_path": str(tmp_path / "nope.png")}),
         "does not exist"),
    ]
    for job, fragment in cases:
        with pytest.raises(ProviderError, match=fragment):
            p.submit(job.request, CancelToken())
    not_glb = make_job(tmp_path, "Obj")
    Path(not_glb.request.mesh_path).write_bytes(b"o cube\nv 0 0 0\n")
    with pytest.raises(ProviderError, match="as GLB"):
        p.submit(not_glb.request, CancelToken())
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ProviderError, match="PNG, JPEG or WebP"):
        p.submit(make_job(tmp_path, options={"reference_image_path": str(text)}).request,
                 CancelToken())
    small = provider(emu)
    small.max_model_bytes = 100  # type: ignore[misc]
    with pytest.raises(ProviderError, match="give a public mesh URL"):
        small.submit(make_job(tmp_path).request, CancelToken())
    missing = make_job(tmp_path)
    missing.request.mesh_path = str(tmp_path / "gone.glb")
    with pytest.raises(ProviderError, match="exported mesh is missing"):
        p.submit(missing.request, CancelToken())
    assert emu.count() == 0 and loopback_only == []


def test_check_ready_and_https(tmp_path: Path, loopback_only: list[str]) -> None:
    assert TriverseProvider(ProviderConfig()).check_ready() == (
        "Triverse needs an API key: Preferences > Add-ons > Text to Texture > Triverse, or "
        "TRIVERSE_API_KEY")
    assert TriverseProvider(ProviderConfig(api_key="k")).check_ready() == ""
    assert TriverseProvider(ProviderConfig(api_key="k")).base_url == (
        "https://api.triverse.ai/api/v1")
    insecure = TriverseProvider(ProviderConfig(api_key="k", api_base="http://tv.example"))
    assert "https://" in insecure.check_ready()
    with pytest.raises(ProviderError, match="https://"):
        insecure.submit(make_job(tmp_path).request, CancelToken())
    # The real service, with the network guard on: nothing may leave the machine.
    real = TriverseProvider(ProviderConfig(api_key="k"), retry=RetryPolicy(retries=0))
    with pytest.raises(ProviderError, match="could not be reached"):
        real.poll("92483a80-236c-4889-9a95-4c90bb64dfd8", make_job(tmp_path).request,
                  CancelToken())
    assert loopback_only and set(loopback_only) == {"api.triverse.ai"}


def test_parameters_and_ids() -> None:
    assert [texture_size(r) for r in (512, 1024, 2048, 4096, 8192)] == [
        1024, 1024, 2048, 4096, 4096]
    assert polygon_limit(None) is None and polygon_limit("") is None
    assert polygon_limit("250000") == 250000
    assert client_order_id("0123456789ab") == "t2t-0123456789ab"
    odd = client_order_id("job with spaces/ünïcode" * 4)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", odd) and odd == client_order_id(
        "job with spaces/ünïcode" * 4)


def test_status_is_normalised() -> None:
    queued = status_of({"task_uuid": "t", "status": "QUEUED", "progress": 0,
                        "queue": {"is_queued": True, "position": 3,
                                  "estimated_wait_seconds": 40}})
    assert queued.state is RemoteState.QUEUED
    assert queued.message == "Waiting in Triverse's queue (position 3, about 40 s)"
    assert status_of({"status": "PENDING"}).state is RemoteState.QUEUED
    running = status_of({"taskId": "t", "status": "RUNNING", "progress": 42, "costCredits": 9})
    assert running.progress == pytest.approx(0.42) and running.extra == {"cost_credits": 9}
    assert status_of({"status": "SUCCESS", "progress": 100}).state is RemoteState.SUCCEEDED
    assert status_of({"status": "CANCELLED"}).state is RemoteState.CANCELED
    assert status_of({"status": "SOMETHING_NEW"}).state is RemoteState.UNKNOWN
    assert failure_message({"status": "FAILED", "error": None}) == (
        "Triverse reported the job failed (no reason given)")
    assert failure_message({"error": {"message": "Out of memory."}}) == "Triverse: Out of memory."
    assert failure_message({"error": "NSFW content detected by moderation"}).startswith(
        "Triverse refused the content (content safety)")
    assert failure_message({"error": {"code": 2010, "message": "x"}}).startswith(
        "Your Triverse account does not have enough credits")


# --------------------------------------------------------------------------- secrets, emulator


def test_the_key_never_reaches_logs_journal_or_messages(
    emu: TriverseEmulator, tmp_path: Path, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.fail_next(503, 2, method="GET", path=r"^/tasks/[0-9a-f-]{36}$")
    emu.fail_code(1004, 2, method="POST", path="text-to-texture",
                  message=f"bad key {emu.api_key}")
    jobs = [make_job(tmp_path, "a"), make_job(tmp_path, "b")]
    runner = fast_runner(journal)
    done = run(runner, jobs[:1], lambda: provider(emu))
    done.update(run(runner, jobs[1:], lambda: provider(emu)))
    assert sorted(j.state.value for j in done.values()) == ["failed", "ready"]
    everything = caplog.text + "".join(j.message for j in done.values())
    everything += "".join(p.read_text() for p in journal.root.glob("*.json"))
    assert emu.api_key not in everything


def test_the_emulator_validates_like_the_docs(emu: TriverseEmulator) -> None:
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    url = emu.url

    def post(path: str, **kw: Any) -> requests.Response:
        return requests.post(url + path, headers=auth, timeout=5, **kw)

    up = post("/upload/model?modelVariant=geometry", files={"file": ("m.glb", cube_glb())})
    assert up.status_code == 200 and up.json()["code"] == 0
    key = up.json()["data"]["file_key"]
    assert re.fullmatch(r"tasks/uid_[0-9a-f-]+/\d{8}/[0-9a-f-]+\.glb", key)
    bad = post("/tasks/text-to-texture", json={"text_prompt": "x", "model_url": key})
    assert bad.status_code == 400 and bad.json()["code"] == 1004
    assert "file_key" in bad.json()["message"] and "suggestion" in bad.json()
    wrong_field = post("/upload/model", files={"upload": ("m.glb", cube_glb())})
    assert wrong_field.json()["code"] == 1004
    wrong_type = post("/upload/model", files={"file": ("m.blend", b"BLENDER")})
    assert wrong_type.status_code == 400 and wrong_type.json()["code"] == 2004
    not_image = post("/upload/image", files={"file": ("a.png", b"GIF89a", "image/png")})
    assert not_image.json()["code"] == 2004
    emu.max_image_bytes = 10
    too_big = post("/upload/image", files={"file": ("a.png", encode_png(
        np.zeros((8, 8, 3), np.uint8)), "image/png")})
    assert too_big.status_code == 400 and "too large" in too_big.json()["message"]
    bad_key = post("/tasks/texture-model", json={"image_file": "tasks/x.png", "model_file": key})
    assert bad_key.status_code == 404 and bad_key.json()["code"] == 1005
    bad_size = post("/tasks/texture-model", json={"image_file": key, "model_file": key,
                                                  "texture_size": 8192})
    assert bad_size.json()["code"] == 1004
    assert post("/tasks/pricing/quote", json={"flow_name": "nope"}).json()["code"] == 2002
    missing = requests.get(f"{url}/tasks/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=auth,
                           timeout=5)
    assert missing.status_code == 404 and missing.json()["code"] == 1006
    anon = requests.get(f"{url}/users/balance", timeout=5)
    assert anon.status_code == 401 and anon.json()["code"] == 1001
    presigned = post("/upload/presigned-get-url", json={"file_key": key}).json()["data"]
    link = presigned["download_url"]
    assert requests.get(link, timeout=5).content == cube_glb()  # public: no key needed
    assert requests.get(link.replace("Signature=", "Signature=x"), timeout=5).status_code == 403
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.glb\"\r\nContent-Type: model/gltf-binary\r\n\r\n").encode()
    parts = parse_multipart(f"multipart/form-data; boundary={boundary}",
                            body + b"DATA\r\n--" + boundary.encode() + b"--\r\n")
    assert parts["file"].data == b"DATA" and parts["file"].filename == "a.glb"


def test_the_emulator_runs_by_hand() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.emulators", "triverse",
                             "--job-seconds", "1"], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        env = dict(line.split()[1].split("=", 1) for line in lines[1:])
        answer = requests.get(f"{env['TRIVERSE_API_BASE']}/users/balance", timeout=5,
                              headers={"Authorization": f"Bearer {env['TRIVERSE_API_KEY']}"})
        assert answer.json() == {"code": 0, "message": "success",
                                 "data": {"balance": 1000, "frozen": None}}
    finally:
        proc.terminate()
        proc.wait(5)

