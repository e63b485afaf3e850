"""Scenario end to end over real loopback HTTP: provider + runner against the Scenario emulator."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from emulators.base import emulator_fixture, guard_loopback
from emulators.scenario import (
    BASE_TYPE,
    CONVERTER,
    MAP_TYPES,
    TEXTURE,
    TXT2IMG,
    ScenarioEmulator,
    albedo_of,
    map_fill,
    smoothness_value,
)
from runner_driving import fast_runner, run, settle
from text_to_texture.formats.imagefile import image_info, read_png
from text_to_texture.jobs.gate import QUEUE_HINT_MIN_S, QUEUE_WAIT_S
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.runner import MAX_POLL_FAILURES
from text_to_texture.net.http import RetryPolicy
from text_to_texture.providers.base import (
    VARIANT_SEP,
    CancelToken,
    ProviderConfig,
    ProviderError,
    QueueFull,
    RemoteState,
    TextureRequest,
)
from text_to_texture.providers.scenario import CANCEL_REFUSED, SMOOTHNESS, ScenarioProvider
from text_to_texture.providers.scenario import phase as phase_module
from text_to_texture.providers.scenario import provider as scenario_module

FAST = RetryPolicy(retries=3, base=0.01, cap=0.05, max_total=5.0)
PBR_ROLES = {"base_color", "normal", "roughness", "metallic", "height"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phase_module, "_working_route", {})
    monkeypatch.setattr(scenario_module, "_models", {})


# A fresh Scenario emulator per test on a free loopback port: each job takes 0.2 s.
emu = emulator_fixture(ScenarioEmulator, job_seconds=0.2, pending_seconds=0.04)


@pytest.fixture()
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def provider(emu: ScenarioEmulator, key: str | None = None, secret: str | None = None,
             model: str | None = None, project: str = "", **kw: Any) -> ScenarioProvider:
    extras = {"api_secret": emu.api_secret if secret is None else secret,
              "model_id": emu.default_model if model is None else model}
    if project:
        extras["project_id"] = project
    cfg = ProviderConfig(api_key=emu.api_key if key is None else key, api_base=f"{emu.url}/v1",
                         extras=extras)
    return ScenarioProvider(cfg, poll_interval=kw.pop("poll_interval", 0.03),
                            retry=kw.pop("retry", FAST), **kw)


def make_job(tmp_path: Path, name: str = "Wall", **request: Any) -> Job:
    jid = new_job_id()
    req = TextureRequest(job_id=jid, prompt=request.pop("prompt", "mossy cobblestones"),
                         out_dir=str(tmp_path / "maps"), file_stem=name,
                         resolution=request.pop("resolution", 1024), seed=request.pop("seed", 7),
                         **request)
    return Job(id=jid, provider="SCENARIO", object_name=name, request=req)


def one(emu: ScenarioEmulator, journal: Journal, tmp_path: Path, **request: Any) -> Job:
    job = make_job(tmp_path, **request)
    return run(fast_runner(journal), [job], lambda: provider(emu))[job.id]


def rgb(path: str) -> np.ndarray:
    arr = read_png(path)
    return arr if arr.ndim == 3 else arr[..., None]


def solid(path: str) -> tuple[int, ...]:
    arr = rgb(path)
    assert (arr == arr[0, 0]).all(), f"{path} is not a solid fill"
    return tuple(int(v) for v in arr[0, 0][:3])


def assert_seamless(arr: np.ndarray) -> None:
    """Across the wrap the image changes no more than between any two neighbours inside it."""
    a = arr.astype(int)
    inner_x = np.abs(np.diff(a, axis=1)).max()
    inner_y = np.abs(np.diff(a, axis=0)).max()
    assert np.abs(a[:, -1] - a[:, 0]).max() <= inner_x
    assert np.abs(a[-1, :] - a[0, :]).max() <= inner_y


def base_assets(emu: ScenarioEmulator) -> list[Any]:
    (job,) = emu.jobs_of("inference")
    return [emu.assets[a] for a in job.data["_outputs"]]


# --------------------------------------------------------------------------- happy paths


def test_pbr_maps_for_several_objects(emu: ScenarioEmulator, tmp_path: Path,
                                      journal: Journal) -> None:
    jobs = [make_job(tmp_path, name) for name in ("Wall", "Floor", "Pillar")]
    done = run(fast_runner(journal), jobs, lambda: provider(emu))

    by_source = {}
    for tex in emu.jobs_of("texture"):
        by_source[tex.data["texture"]] = tex
    for job in jobs:
        got = done[job.id]
        assert got.state is State.READY, got.message
        assert set(got.maps) == PBR_ROLES
        for role, path in got.maps.items():
            assert Path(path).name == f"{job.object_name}_{role}.png"  # ours, not the server's
        assert got.extra["scenario_texture_jobs"] and "warning" not in got.extra
        (image_id,) = list(got.extra["scenario_texture_jobs"])
        image = emu.assets[image_id]
        albedo = emu.asset_of_type(by_source[image_id], "texture-albedo")
        np.testing.assert_array_equal(rgb(got.maps["base_color"]), emu.pixels(albedo))
        assert not np.array_equal(emu.pixels(albedo), emu.pixels(image))  # albedo, not image
        assert solid(got.maps["normal"]) == map_fill("texture-normal", 0)
        assert solid(got.maps["metallic"]) == map_fill("texture-metallic", 0)
        assert solid(got.maps["height"]) == map_fill("texture-height", 0)
        assert solid(got.maps["roughness"]) == (255 - smoothness_value(0),) * 3
    api = [r for r in emu.recorded() if not r.path.startswith("/files/")]
    assert all(r.auth_ok for r in api)
    files = emu.recorded("GET", "^/files/")
    assert len(files) == 15 and not any(r.sent_auth for r in files)  # no key to the storage
    for rec in emu.recorded("POST", TXT2IMG):
        assert rec.body == {"modelId": emu.default_model, "prompt": "mossy cobblestones",
                            "numSamples": 1, "seed": "7", "width": 1024, "height": 1024}
    assert all(set(r.body) == {"texture"} for r in emu.recorded("POST", f"{TEXTURE}$"))
    assert emu.count("GET", "/models/") == 1  # the model type is asked once per session
    maps = tmp_path / "maps"
    assert not list(maps.glob(".t2t-*")) and not list(tmp_path.rglob("outside*"))
    assert not list(maps.glob("*smoothness*"))  # inverted into roughness, not left behind


def test_pbr_off_gives_the_seamless_image_as_base_color(emu: ScenarioEmulator, tmp_path: Path,
                                                        journal: Journal) -> None:
    got = one(emu, journal, tmp_path, enable_pbr=False)
    assert got.state is State.READY, got.message
    assert set(got.maps) == {"base_color"}
    (image,) = base_assets(emu)
    pixels = rgb(got.maps["base_color"])
    np.testing.assert_array_equal(pixels, emu.pixels(image))
    assert_seamless(pixels)
    assert emu.count("POST", TEXTURE) == 0 and emu.count("POST", CONVERTER) == 0


def test_three_samples_come_back_as_variants(emu: ScenarioEmulator, tmp_path: Path,
                                             journal: Journal) -> None:
    got = one(emu, journal, tmp_path, options={"samples": 3})
    assert got.state is State.READY, got.message
    expected = {f"{r}{VARIANT_SEP}{n}" if n else r for r in PBR_ROLES for n in range(3)}
    assert set(got.maps) == expected
    assert emu.recorded("POST", TXT2IMG)[0].body["numSamples"] == 3
    images = base_assets(emu)
    assert sorted(t.data["texture"] for t in emu.jobs_of("texture")) == sorted(a.id for a in images)
    colors = []
    for n in range(3):
        def key(role: str, n: int = n) -> str:
            return f"{role}{VARIANT_SEP}{n}" if n else role

        base = rgb(got.maps[key("base_color")])
        np.testing.assert_array_equal(base, albedo_of(emu.pixels(images[n])))
        assert_seamless(base)
        colors.append(base)
        assert solid(got.maps[key("roughness")])[0] == 255 - smoothness_value(n)
        assert Path(got.maps[key("normal")]).name == (
            "Wall_normal.png" if n == 0 else f"Wall_normal_v{n}.png")
    assert not np.array_equal(colors[0], colors[1]) and not np.array_equal(colors[1], colors[2])


def test_three_samples_without_pbr(emu: ScenarioEmulator, tmp_path: Path,
                                   journal: Journal) -> None:
    got = one(emu, journal, tmp_path, enable_pbr=False, options={"samples": 3})
    assert got.state is State.READY, got.message
    assert set(got.maps) == {"base_color", f"base_color{VARIANT_SEP}1",
                             f"base_color{VARIANT_SEP}2"}
    images = base_assets(emu)
    for n, key in enumerate(("base_color", f"base_color{VARIANT_SEP}1",
                             f"base_color{VARIANT_SEP}2")):
        np.testing.assert_array_equal(rgb(got.maps[key]), emu.pixels(images[n]))
        assert_seamless(rgb(got.maps[key]))
    assert len({rgb(p).tobytes() for p in got.maps.values()}) == 3  # all different


def test_options_and_project_reach_scenario(emu: ScenarioEmulator, tmp_path: Path,
                                            journal: Journal) -> None:
    job = make_job(tmp_path, negative_prompt="blurry, text", options={
        "model_id": "model_emulator_flux", "steps": 40, "guidance": 14,
        "negative_prompt_strength": 2.5, "texture_settings": {"shiny": 0.8, "invert": False,
                                                              "bogus": 1}})
    got = run(fast_runner(journal), [job], lambda: provider(emu, project="proj_42"))[job.id]
    assert got.state is State.READY, got.message
    body = emu.recorded("POST", TXT2IMG)[0].body
    assert body["modelId"] == "model_emulator_flux" and body["numInferenceSteps"] == 40
    assert body["guidance"] == 10  # clamped to Flux dev's [0, 10]
    assert body["negativePrompt"] == "blurry, text" and body["negativePromptStrength"] == 2.5
    assert emu.recorded("POST", TEXTURE)[0].body == {
        "texture": base_assets(emu)[0].id, "shiny": 0.8, "invert": False}
    for rec in emu.recorded():
        on_api = not rec.path.startswith("/files/")
        assert (rec.query.get("projectId") == ["proj_42"]) == on_api, rec.path


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize(("model", "asked", "made", "noted"), [
    ("model_emulator_sdxl", (1024, 1024), (1024, 1024), False),
    ("model_emulator_sdxl", (4096, 4096), (2048, 2048), True),
    ("model_emulator_sdxl", (256, 256), (512, 512), True),
    ("model_emulator_sd15", (2048, 2048), (1024, 1024), True),
    ("model_emulator_flux", (1020, 1020), (1024, 1024), False),  # rounded to a multiple of 8
    ("model_emulator_flux", (1500, 700), (1504, 704), False),
    ("model_emulator_flux", (3000, 100), (2048, 104), True),
])
def test_size_is_a_multiple_of_8_within_the_models_range(
    emu: ScenarioEmulator, tmp_path: Path, model: str, asked: tuple[int, int],
    made: tuple[int, int], noted: bool,
) -> None:
    options: dict[str, Any] = {"model_id": model}
    if asked[0] != asked[1]:
        options.update(width=asked[0], height=asked[1])
    job = make_job(tmp_path, resolution=asked[0], options=options)
    p = provider(emu)
    p.submit(job.request, CancelToken())
    body = emu.recorded("POST", TXT2IMG)[0].body
    assert (body["width"], body["height"]) == made
    status = p.poll(emu.jobs_of("inference")[0].id, job.request, CancelToken())
    assert ("note" in status.extra) == noted
    if noted:
        assert f"{made[0]}" in status.extra["note"] and status.message.endswith(
            status.extra["note"].removeprefix("Scenario: "))


def test_4096_is_made_at_2048_and_the_job_says_so(emu: ScenarioEmulator, tmp_path: Path,
                                                   journal: Journal) -> None:
    job = make_job(tmp_path, resolution=4096)
    messages: list[str] = []
    got = run(fast_runner(journal), [job], lambda: provider(emu), seen_messages=messages)[job.id]
    assert got.state is State.READY, got.message
    assert got.extra["note"] == ("Scenario: made at 2048 px (4096 px asked; this Scenario model "
                                 "makes 512–2048 px)")
    assert any("made at 2048 px" in m for m in messages)


# --------------------------------------------------------------------------- faults


def _fault_cases() -> list[Any]:
    poll = "/jobs/[^/]+$"
    return [
        # (id, set-up, expected state, message fragment, extra check)
        ("latency", lambda e: setattr(e, "latency", 0.02), State.READY, "", None),
        ("429x2 on create", lambda e: e.rate_limit_next(2, 0, method="POST", path=TXT2IMG),
         State.READY, "", lambda e, j: e.count("POST", TXT2IMG) == 3
         and len(e.jobs_of("inference")) == 1),
        ("500x2 on poll", lambda e: e.fail_next(500, 2, method="GET", path=poll), State.READY,
         "", None),
        ("drop on poll", lambda e: e.drop_next(2, method="GET", path=poll), State.READY, "",
         None),
        ("truncated once", lambda e: e.truncate_downloads(1), State.READY, "", None),
        ("expired link once", lambda e: e.expire_downloads(1), State.READY, "",
         lambda e, j: e.recorded("GET", "^/files/")[0].fault == "expired"),
        ("status spelled differently", lambda e: e.status_words.update(
            {"success": "succeeded", "in-progress": "running", "warming-up": "warming_up"}),
         State.READY, "", None),
        ("job.id instead of job.jobId", lambda e: setattr(e, "job_id_key", "id"), State.READY,
         "", None),
        ("500 on create", lambda e: e.fail_next(500, 1, method="POST", path=TXT2IMG),
         State.FAILED, "Scenario did not confirm the new job (HTTP 500); it may still have been "
         "created — check your Scenario account before retrying",
         lambda e, j: e.count("POST") == 1),
        ("drop on create", lambda e: e.drop_next(1, method="POST", path=TXT2IMG), State.FAILED,
         "Scenario did not confirm the new job (it dropped the connection)",
         lambda e, j: e.count("POST") == 1),
        ("500 forever on poll", lambda e: e.fail_next(500, -1, method="GET", path=poll),
         State.FAILED, f"Scenario did not answer after {MAX_POLL_FAILURES} tries: Scenario is "
         "not responding (HTTP 500) — try again later", None),
        ("truncated always", lambda e: e.truncate_downloads(-1), State.FAILED,
         "The base color map download from Scenario kept failing", None),
        ("expired links always", lambda e: e.expire_downloads(-1), State.FAILED,
         "Scenario's links to this job's images have expired and could not be renewed — run "
         "the job again", None),
        ("not an image", lambda e: e.non_image_downloads(1), State.FAILED,
         "Scenario sent a base color map that is not an image", None),
        ("job failure", lambda e: e.fail_tasks("Prompt flagged by the content filter"),
         State.FAILED, "Scenario: Prompt flagged by the content filter", None),
        ("no creative units", lambda e: setattr(e, "creative_units", 3), State.FAILED,
         "Your Scenario workspace has no creative units left — top it up at scenario.com, "
         "then retry", None),
        ("refused body", lambda e: e.fail_next(400, 1, method="POST", path=TXT2IMG,
                                               message='"width" must be a multiple of 8'),
         State.FAILED, 'Scenario refused the request: "width" must be a multiple of 8 (trace ',
         None),
        ("unknown model", lambda e: e.models.pop(e.default_model), State.FAILED,
         "Scenario has no such model (HTTP 404: Model model_emulator_sdxl not found",
         lambda e, j: e.count("POST") == 0),
        # The map step: the image is paid for, so it is kept with a warning instead of failing.
        ("map job failure", lambda e: e.fail_texture_jobs("Texture generation failed"),
         State.READY, "", lambda e, j: set(j.maps) == {"base_color"} and j.extra["warning"]
         == "No PBR maps (Scenario: Texture generation failed); the base color was kept"),
        ("map maker retired", lambda e: setattr(e, "texture_route", False), State.READY, "",
         lambda e, j: set(j.maps) == PBR_ROLES and e.recorded("POST", CONVERTER)[0].body
         == {"texture": e.jobs_of("inference")[0].data["_outputs"][0]}),
        ("no map maker at all", lambda e: e.__dict__.update(texture_route=False,
                                                           converter_route=False),
         State.READY, "", lambda e, j: set(j.maps) == {"base_color"}
         and "Scenario offers no PBR map maker" in j.extra["warning"]),
        ("500 on map start", lambda e: e.fail_next(500, 1, method="POST", path=TEXTURE),
         State.READY, "", lambda e, j: set(j.maps) == {"base_color"}
         and "did not confirm the new job" in j.extra["warning"]
         and e.count("POST", TEXTURE) == 1),
        ("429 on map start x2", lambda e: e.rate_limit_next(2, 0, method="POST",
                                                            path=TEXTURE),
         State.READY, "", lambda e, j: set(j.maps) == PBR_ROLES and "warning" not in j.extra
         and e.count("POST", TEXTURE) == 3 and len(e.jobs_of("texture")) == 1),
        ("no albedo among the maps", lambda e: setattr(e, "map_types", MAP_TYPES[1:]),
         State.READY, "", lambda e, j: np.array_equal(
             rgb(j.maps["base_color"]), e.pixels(base_assets(e)[0]))),
    ]


@pytest.mark.parametrize(("setup", "state", "fragment", "check"),
                         [pytest.param(*c[1:], id=c[0]) for c in _fault_cases()])
def test_each_fault_ends_in_the_right_state(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal,
    setup: Any, state: State, fragment: str, check: Any,
) -> None:
    setup(emu)
    done = one(emu, journal, tmp_path)
    assert done.state is state, done.message
    assert fragment in done.message
    assert "\n" not in done.message and emu.api_key not in done.message
    if check is not None:
        assert check(emu, done)
    if state is State.READY and "roughness" in done.maps:
        assert solid(done.maps["roughness"])[0] == 255 - smoothness_value(0)


def test_wrong_key_or_secret_is_one_actionable_line(emu: ScenarioEmulator, tmp_path: Path,
                                                    journal: Journal) -> None:
    for key, secret in (("scn_wrong_key_000", None), (None, "scn_wrong_secret_000")):
        emu.reset()
        job = make_job(tmp_path)
        done = run(fast_runner(journal), [job],
                   lambda k=key, s=secret: provider(emu, key=k, secret=s))[job.id]
        assert done.state is State.FAILED
        assert done.message == (
            "Scenario rejected the API key or secret — check Preferences > Add-ons > Text to "
            "Texture > Scenario (or SCENARIO_API_KEY / SCENARIO_API_SECRET)")
        assert [r.auth_ok for r in emu.recorded()] == [False]  # refused before any paid call


# --------------------------------------------------------------------------- the model's route


def test_a_custom_texture_model_with_its_own_maps(emu: ScenarioEmulator, tmp_path: Path,
                                                  journal: Journal) -> None:
    """A PATINA-like custom model: one job through /generate/custom/{id}, its own maps used as
    they are (by type, not order), no map job, nothing sent the model's page does not list."""
    job = make_job(tmp_path)
    got = run(fast_runner(journal), [job],
              lambda: provider(emu, model="model_emulator_patina"))[job.id]
    assert got.state is State.READY, got.message
    assert set(got.maps) == PBR_ROLES and "warning" not in got.extra
    (custom,) = emu.jobs_of("custom")
    assert emu.recorded("POST", "/generate/custom/model_emulator_patina$")[0].body == {
        "prompt": "mossy cobblestones"}
    assert emu.count("POST", TXT2IMG) == 0 and emu.count("POST", TEXTURE) == 0
    albedo = emu.asset_of_type(custom, "texture-albedo")
    np.testing.assert_array_equal(rgb(got.maps["base_color"]), emu.pixels(albedo))
    assert solid(got.maps["normal"]) == map_fill("texture-normal", 0)
    assert solid(got.maps["roughness"]) == (255 - smoothness_value(0),) * 3
    plain = one_with(emu, journal, tmp_path, model="model_emulator_patina",
                     job=make_job(tmp_path, "Plain", enable_pbr=False))
    image = emu.asset_of_type(emu.jobs_of("custom")[1], BASE_TYPE)
    assert set(plain.maps) == {"base_color"}
    np.testing.assert_array_equal(rgb(plain.maps["base_color"]), emu.pixels(image))


def test_a_custom_model_making_one_image_gets_a_map_job(emu: ScenarioEmulator, tmp_path: Path,
                                                        journal: Journal) -> None:
    got = one_with(emu, journal, tmp_path, model="model_emulator_tiles")
    assert got.state is State.READY, got.message
    assert set(got.maps) == PBR_ROLES
    (custom,) = emu.jobs_of("custom")
    (tex,) = emu.jobs_of("texture")
    assert tex.data["texture"] == custom.data["_outputs"][0]


def test_a_model_that_cannot_make_textures_is_refused_before_paying(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal
) -> None:
    got = one_with(emu, journal, tmp_path, model="model_emulator_photo")
    assert got.state is State.FAILED
    assert got.message.startswith("The Scenario model 'model_emulator_photo' cannot make "
                                  "textures (type sd-xl, no txt2img_texture capability)")
    assert emu.count("POST") == 0 and emu.creative_units == 100_000


def test_canceling_a_custom_job_is_refused_and_its_result_kept(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.job_seconds = 0.8
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu, model="model_emulator_patina"))
    wait_for(lambda: emu.count("GET", "/jobs/job_"))
    assert runner.cancel(job.id)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.READY and done.extra["kept_unapplied"] is True
    assert done.extra["warning"] == CANCEL_REFUSED and emu.refused_cancels == 1


def test_connection_check_reads_the_model_and_names_its_route(emu: ScenarioEmulator) -> None:
    sdxl = provider(emu).test_connection()
    assert sdxl.ok and sdxl.line == ("Scenario works: key, secret and model "
                                     "'model_emulator_sdxl' are accepted — a sd-xl model, "
                                     "textures through txt2img-texture")
    patina = provider(emu, model="model_emulator_patina").test_connection()
    assert patina.ok and patina.line.endswith(
        "a custom texture model, textures through /generate/custom/model_emulator_patina")
    photo = provider(emu, model="model_emulator_photo").test_connection()
    assert not photo.ok and "cannot make textures" in photo.line
    wrong = provider(emu, secret="scn_wrong_secret_0000").test_connection()
    assert not wrong.ok and wrong.line.startswith("Scenario rejected the API key or secret")
    missing = provider(emu, model="model_nope").test_connection()
    assert not missing.ok and missing.line.startswith("Scenario has no such model (HTTP 404")
    assert emu.count("POST") == 0 and emu.creative_units == 100_000
    assert {r.path.split("/")[2] for r in emu.recorded()} == {"models"}


# --------------------------------------------------------------------------- expiry, 429


def test_an_expired_asset_url_is_renewed(emu: ScenarioEmulator, tmp_path: Path,
                                         journal: Journal) -> None:
    emu.url_ttl = 0.3
    emu.delay_next(0.5, path="^/files/")  # the first download starts after its link expired
    got = one(emu, journal, tmp_path, enable_pbr=False)
    assert got.state is State.READY, got.message
    (image,) = base_assets(emu)
    files = emu.recorded("GET", "^/files/")
    assert len(files) == 2 and emu.count("GET", f"/assets/{image.id}$") == 2
    np.testing.assert_array_equal(rgb(got.maps["base_color"]), emu.pixels(image))


def test_429_remaining_seconds_is_honoured(emu: ScenarioEmulator, tmp_path: Path,
                                           journal: Journal) -> None:
    """A 429 to a create makes the job wait `remainingSeconds` (the runner does, as for any
    full queue); a 429 to a read is waited out by the client the same way."""
    emu.rate_limit_next(1, 7.5, method="POST", path=TXT2IMG)
    with pytest.raises(QueueFull) as full:
        provider(emu).submit(make_job(tmp_path).request, CancelToken())
    assert full.value.retry_after == 7.5 and emu.count("POST", TXT2IMG) == 1
    assert full.value.message == ("Scenario is busy for this account (HTTP 429) — this job "
                                  "waits and is sent again shortly")
    assert not emu.jobs_of("inference")

    waits: list[float] = []

    def sleep(seconds: float, cancel: CancelToken | None) -> None:
        waits.append(seconds)

    policy = RetryPolicy(retries=3, base=0.01, jitter=0.0, max_total=60.0)
    emu.reset()
    emu.rate_limit_next(1, 4, method="GET", path="/jobs/")
    got = one_with(emu, journal, tmp_path, retry=policy, sleep=sleep)
    assert got.state is State.READY and waits == [4.0]
    assert not any("retry-after" in r.headers for r in emu.recorded())


def test_a_busy_scenario_is_waiting_not_failure(emu: ScenarioEmulator, tmp_path: Path,
                                                journal: Journal) -> None:
    emu.rate_limit_next(3, 0, method="POST", path=TXT2IMG)
    seen: list[str] = []
    job = make_job(tmp_path)
    got = run(fast_runner(journal), [job], lambda: provider(emu), seen_messages=seen)[job.id]
    assert got.state is State.READY, got.message
    assert emu.count("POST", TXT2IMG) == 4 and len(emu.jobs_of("inference")) == 1
    assert ("Scenario is busy for this account (HTTP 429) — this job waits and is sent again "
            "shortly") in seen


def test_a_short_remaining_seconds_is_not_stretched_to_our_backoff(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal
) -> None:
    """Six 429s in a row on the create, each saying "again in 0.2 s": the job is sent again
    after what Scenario said, not after our own full-queue backoff (5 s doubling to 60 s, for
    answers that name no wait), which once kept a soak run's Scenario jobs queued for minutes
    (seed 413084067)."""
    emu.rate_limit_next(6, 0.2, method="POST", path=TXT2IMG)
    runner = fast_runner(journal)
    runner.queue_wait_s = QUEUE_WAIT_S  # the shipped backoff: the old rule waited 195 s here
    runner.queue_hint_min_s = QUEUE_HINT_MIN_S
    job = make_job(tmp_path)
    got = run(runner, [job], lambda: provider(emu), timeout=15.0)[job.id]
    assert got.state is State.READY, got.message
    assert emu.count("POST", TXT2IMG) == 7 and len(emu.jobs_of("inference")) == 1


def one_with(emu: ScenarioEmulator, journal: Journal, tmp_path: Path, job: Job | None = None,
             **kw: Any) -> Job:
    job = job or make_job(tmp_path)
    return run(fast_runner(journal), [job], lambda: provider(emu, **kw))[job.id]


# --------------------------------------------------------------------------- smoothness


def test_smoothness_is_inverted_to_roughness_by_pixels(emu: ScenarioEmulator, tmp_path: Path,
                                                      journal: Journal) -> None:
    emu.smoothness_format = "gray"  # an 8-bit single-channel PNG
    got = one(emu, journal, tmp_path, options={"samples": 2})
    assert got.state is State.READY, got.message
    for n, key in ((0, "roughness"), (1, f"roughness{VARIANT_SEP}1")):
        arr = read_png(got.maps[key])
        assert arr.ndim == 2 and (arr == 255 - smoothness_value(n)).all()


def test_a_jpeg_smoothness_map_is_left_for_blender_to_invert(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.smoothness_format = "jpeg"
    got = one(emu, journal, tmp_path)
    assert got.state is State.READY, got.message
    assert set(got.maps) == (PBR_ROLES - {"roughness"}) | {SMOOTHNESS}
    path = got.maps[SMOOTHNESS]
    assert path.endswith("Wall_smoothness.jpg") and image_info(path) == ("JPEG", 64, 64)


# --------------------------------------------------------------------------- cancel, resume


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached")


def test_cancel_mid_job_reaches_the_action_endpoint(emu: ScenarioEmulator, tmp_path: Path,
                                                    journal: Journal) -> None:
    emu.job_seconds = 30
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    wait_for(lambda: emu.count("GET", "/jobs/"))
    assert runner.cancel(job.id)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.CANCELED
    (image_job,) = emu.jobs_of("inference")
    (action,) = emu.recorded("POST", "/action$")
    assert action.path == f"/v1/jobs/{image_job.id}/action" and action.auth_ok
    assert action.body == {"action": "cancel"}
    assert emu.scenario_status(image_job)[0] == "canceled"


def test_cancel_while_the_maps_are_made_is_refused_and_the_result_kept(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal
) -> None:
    """Only inference jobs can be canceled: the map job runs on (and is paid), so the job is
    watched to its end and its maps are kept in the job list, not applied."""
    emu.texture_seconds = 1.0
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    wait_for(lambda: emu.count("GET", "/jobs/job_") >= 3 and emu.jobs_of("texture"))
    assert runner.cancel(job.id)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.READY and done.extra["kept_unapplied"] is True
    assert done.extra["warning"] == CANCEL_REFUSED and set(done.maps) == PBR_ROLES
    (tex,) = emu.jobs_of("texture")
    assert emu.scenario_status(tex)[0] == "success" and emu.refused_cancels == 1
    assert {r.path for r in emu.recorded("POST", "/action$")} == {f"/v1/jobs/{tex.id}/action"}


def test_the_remote_job_canceled_elsewhere(emu: ScenarioEmulator, tmp_path: Path,
                                           journal: Journal) -> None:
    emu.job_seconds = 30
    job = make_job(tmp_path)
    runner = fast_runner(journal)
    runner.start(job, provider(emu))
    wait_for(lambda: emu.jobs_of("inference"))
    emu.jobs_of("inference")[0].canceled = True
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.FAILED and done.message == "The job was canceled at Scenario"


def test_a_restart_during_the_map_step_never_pays_twice(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.texture_seconds = 0.6
    job = make_job(tmp_path, options={"samples": 2})
    first = fast_runner(journal)
    first.start(job, provider(emu))
    sidecar = tmp_path / "maps" / ".Wall.scenario.json"
    wait_for(lambda: len(emu.jobs_of("texture")) == 2 and sidecar.exists()
             and len(json.loads(sidecar.read_text()).popitem()[1]["texture_jobs"]) == 2)
    first.kill()  # Blender quit while Scenario made the maps
    time.sleep(0.05)
    (pending,) = journal.unfinished()
    assert pending.remote_id and not pending.state.terminal
    second = fast_runner(journal)
    second.resume(pending, provider(emu))  # a new provider: nothing in memory
    done = settle(second, [job.id])[job.id]
    assert done.state is State.READY, done.message
    assert set(done.maps) == PBR_ROLES | {f"{r}{VARIANT_SEP}1" for r in PBR_ROLES}
    assert emu.count("POST", TXT2IMG) == 1 and emu.count("POST", TEXTURE) == 2
    assert set(done.extra["scenario_texture_jobs"].values()) == {
        t.id for t in emu.jobs_of("texture")}


def test_a_restart_during_the_image_step_resumes_polling(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal
) -> None:
    emu.job_seconds = 0.6
    job = make_job(tmp_path)
    first = fast_runner(journal)
    first.start(job, provider(emu))
    wait_for(lambda: emu.count("GET", "/jobs/"))
    first.kill()
    time.sleep(0.05)
    (pending,) = journal.unfinished()
    second = fast_runner(journal)
    second.resume(pending, provider(emu))
    done = settle(second, [job.id])[job.id]
    assert done.state is State.READY and emu.count("POST", TXT2IMG) == 1
    assert emu.count("POST", TEXTURE) == 1


# --------------------------------------------------------------------------- checks up front


def test_check_ready_names_what_is_missing_and_where(loopback_only: list[str]) -> None:
    where = "Preferences > Add-ons > Text to Texture > Scenario"
    assert ScenarioProvider(ProviderConfig()).check_ready() == (
        f"Scenario needs an API key, an API secret and a model id: {where}, or "
        "SCENARIO_API_KEY / SCENARIO_API_SECRET / SCENARIO_MODEL_ID")
    assert ScenarioProvider(ProviderConfig(api_key="k", extras={"model_id": "m"})).check_ready() \
        == f"Scenario needs an API secret: {where}, or SCENARIO_API_SECRET"
    assert ScenarioProvider(ProviderConfig(api_key="k", extras={
        "api_secret": "s"})).check_ready() == (
        f"Scenario needs a model id: {where}, or SCENARIO_MODEL_ID")
    ready = ProviderConfig(api_key="k", extras={"api_secret": "s", "model_id": "m"})
    assert ScenarioProvider(ready).check_ready() == ""
    ready.api_base = "http://scenario.example/v1"
    assert "https://" in ScenarioProvider(ready).check_ready()
    assert loopback_only == []


def test_an_empty_prompt_is_refused_before_anything_is_sent(emu: ScenarioEmulator,
                                                            tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="Scenario needs a prompt"):
        provider(emu).submit(make_job(tmp_path, prompt="  ").request, CancelToken())
    assert emu.count() == 0


def test_quote_is_a_dry_run(emu: ScenarioEmulator, tmp_path: Path) -> None:
    p = provider(emu)
    quote = p.quote(make_job(tmp_path, options={"samples": 3}).request)
    assert quote is not None and quote["cost_credits"] == 15 and "PBR" in quote["note"]
    assert quote["available_credits"] is None and quote["unit"] == "creative units"
    assert emu.recorded("POST", TXT2IMG)[0].query["dryRun"] == ["true"]
    assert emu.jobs_of("inference") == [] and emu.creative_units == 100_000
    emu.fail_next(500, 1, method="POST")
    assert p.quote(make_job(tmp_path).request) is None
    custom = provider(emu, model="model_emulator_patina").quote(make_job(tmp_path).request)
    assert custom is not None and custom["cost_credits"] == 8  # HTTP 269 is success
    assert emu.jobs_of("custom") == []


def test_check_request_refuses_without_asking(emu: ScenarioEmulator, tmp_path: Path) -> None:
    p = provider(emu)
    assert p.check_request(make_job(tmp_path).request) == ""
    assert p.check_request(make_job(tmp_path, prompt=" ").request) == "Scenario needs a prompt"
    assert p.check_request(make_job(tmp_path, options={"guidance": "lots"}).request) == (
        "The Scenario guidance must be a number, not 'lots'")
    assert emu.count() == 0


def test_the_default_service_is_never_reached_from_tests(tmp_path: Path,
                                                         loopback_only: list[str]) -> None:
    cfg = ProviderConfig(api_key="k", extras={"api_secret": "s", "model_id": "m"})
    p = ScenarioProvider(cfg, retry=RetryPolicy(retries=0))
    with pytest.raises(ProviderError, match="could not be reached"):
        p.submit(make_job(tmp_path).request, CancelToken())
    assert loopback_only and set(loopback_only) == {"api.cloud.scenario.com"}


def test_status_and_failures_are_normalised() -> None:
    p = ScenarioProvider(ProviderConfig(api_key="k"))
    req = TextureRequest(job_id="j", prompt="p", enable_pbr=False)
    for word, state in (("pending", "queued"), ("warming-up", "running"),
                        ("FINALIZING", "running"), ("completed", "succeeded"),
                        ("error", "failed"), ("cancelled", "canceled"), ("new-thing", "unknown")):
        assert p._image_status({"status": word}, req).state is RemoteState(state), word
    assert p._image_status({"status": "in-progress", "progress": 0.4}, req).progress == 0.4
    assert p._image_status({"status": "in-progress", "progress": 55}, req).progress == 0.55
    pbr = TextureRequest(job_id="j", prompt="p", enable_pbr=True)
    assert p._image_status({"status": "in-progress", "progress": 0.5}, pbr).progress == 0.3
    failed = p._image_status({"status": "failure", "metadata": {"error": {
        "message": "GPU\nout of memory"}}}, req)
    assert failed.message == "Scenario: GPU out of memory"
    assert p._image_status({"status": "failed", "reason": "x" * 500}, req).message.endswith("…")
    assert "no reason" in p._image_status({"status": "failure"}, req).message


# --------------------------------------------------------------------------- secrets, emulator


def test_key_and_secret_never_reach_logs_journal_or_messages(
    emu: ScenarioEmulator, tmp_path: Path, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.fail_next(503, 2, method="GET")
    emu.fail_next(400, 1, method="POST", path=TXT2IMG,
                  message=f"bad {emu.api_key}:{emu.api_secret}")
    jobs = [make_job(tmp_path, "a"), make_job(tmp_path, "b")]
    runner = fast_runner(journal)
    done = run(runner, jobs[:1], lambda: provider(emu))
    done.update(run(runner, jobs[1:], lambda: provider(emu)))
    assert sorted(j.state.value for j in done.values()) == ["failed", "ready"]
    everything = caplog.text + "".join(j.message for j in done.values())
    everything += "".join(p.read_text() for p in journal.root.glob("*.json"))
    everything += "".join(p.read_text() for p in (tmp_path / "maps").glob(".*.json"))
    token = base64.b64encode(f"{emu.api_key}:{emu.api_secret}".encode()).decode()
    for secret in (emu.api_key, emu.api_secret, token):
        assert secret not in everything


def test_the_emulator_follows_the_documents(emu: ScenarioEmulator) -> None:
    token = base64.b64encode(f"{emu.api_key}:{emu.api_secret}".encode()).decode()
    basic = {"Authorization": f"Basic {token}"}
    bearer = {"Authorization": f"Bearer {emu.bearer_token}"}
    url = f"{emu.url}/v1{TXT2IMG}"

    def post(body: Any, headers: dict[str, str] = basic) -> requests.Response:
        return requests.post(url, json=body, headers=headers, timeout=5)

    good = {"modelId": emu.default_model, "prompt": "bark", "numSamples": 2, "width": 512,
            "height": 512}
    for body, reason in (({"prompt": "x"}, '"modelId" must be a string'),
                         ({**good, "modelId": 5}, '"modelId" must be a string'),
                         ({**good, "width": 1001}, '"width" must be a multiple of 8'),
                         ({**good, "width": 4096}, '"width" must be less than or equal to 2048'),
                         ({**good, "height": 256}, '"height" must be within [512, 2048]'),
                         ({**good, "numSamples": 0}, '"numSamples" must be greater than'),
                         ({**good, "steps": 30}, '"steps" is not allowed')):
        answer = post(body)
        assert answer.status_code == 400 and answer.json()["reason"].startswith(reason)
        assert answer.json()["traceId"]
    assert post(good, {}).status_code == 401
    assert post(good, {"Authorization": f"Bearer {emu.api_key}"}).status_code == 401
    dry = requests.post(url + "?dryRun=true", json={**good, "seed": "3"}, headers=bearer,
                        timeout=5)
    assert dry.status_code == 269
    assert dry.json() == {"creativeUnitsCost": 10, "creativeUnitsDiscount": 0}
    assert post({**good, "seed": 3}).json()["reason"] == '"seed" must be a string'
    photo = post({**good, "modelId": "model_emulator_photo"})
    assert photo.status_code == 400 and "txt2img_texture" in photo.json()["reason"]
    job = post(good, bearer).json()["job"]
    assert job["jobId"].startswith("job_") and "assetIds" not in job["metadata"]
    seen: list[tuple[str, float, dict[str, Any]]] = []
    while not seen or seen[-1][0] != "success":
        current = requests.get(f"{emu.url}/v1/jobs/{job['jobId']}", headers=bearer,
                               timeout=5).json()["job"]
        seen.append((current["status"], current["progress"], current["metadata"]))
        time.sleep(0.01)
    # What a poller sees depends on when it polls (a loaded machine skips the 20 ms "pending"),
    # so the answers are checked for order and the full sequence on the job's own clock.
    order = ["pending", "queued", "warming-up", "in-progress", "finalizing", "success"]
    statuses = [s for s, _, _ in seen]
    assert set(statuses) <= set(order) and statuses == sorted(statuses, key=order.index)
    task = emu.tasks[job["jobId"]]
    span = task.pending_seconds + task.job_seconds
    clock = [emu.scenario_status(task, task.created + span * i / 400)[0] for i in range(402)]
    assert list(dict.fromkeys(clock)) == order
    assert all(0.0 <= p <= 1.0 for _, p, _ in seen) and seen[-1][1] == 1.0
    assert all("assetIds" not in m for s, _, m in seen if s != "success")
    asset_ids = seen[-1][2]["assetIds"]
    assert len(asset_ids) == 2
    asset = requests.get(f"{emu.url}/v1/assets/{asset_ids[0]}", headers=basic,
                         timeout=5).json()["asset"]
    assert asset["metadata"]["type"] == BASE_TYPE and asset["url"].startswith(emu.url)
    assert requests.get(asset["url"], timeout=5).content[:4] == b"\x89PNG"
    bad_action = requests.post(f"{emu.url}/v1/jobs/{job['jobId']}/action", headers=basic,
                               json={"action": "cancel"}, timeout=5)
    assert bad_action.status_code == 400  # finished already
    assert requests.post(f"{emu.url}/v1{TEXTURE}", headers=basic, json={},
                         timeout=5).json()["reason"] == "texture parameter is required"
    assert requests.post(f"{emu.url}/v1{TEXTURE}", headers=basic, json={"image": "x"},
                         timeout=5).json()["reason"] == '"image" is not allowed'
    model = requests.get(f"{emu.url}/v1/models/model_emulator_patina", headers=basic,
                         timeout=5).json()["model"]
    assert model["type"] == "custom" and model["capabilities"] == []
    missing = requests.get(f"{emu.url}/v1/jobs/job_nope", headers=basic, timeout=5)
    assert missing.status_code == 404 and missing.json()["reason"] == "Job job_nope not found"


def test_the_emulator_runs_by_hand() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.emulators", "scenario",
                             "--job-seconds", "1"], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        env = dict(line.split()[1].split("=", 1) for line in lines[1:])
        token = base64.b64encode(
            f"{env['SCENARIO_API_KEY']}:{ScenarioEmulator.default_secret}".encode()).decode()
        answer = requests.get(f"{env['SCENARIO_API_BASE']}/v1/models/"
                              f"{ScenarioEmulator.default_model}", timeout=5,
                              headers={"Authorization": f"Basic {token}"})
        assert answer.json()["model"]["type"] == "sd-xl"
    finally:
        proc.terminate()
        proc.wait(5)

