"""Meshy end to end in real Blender, through the installed zip, against the Meshy emulator."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bake_checks import covered_texels, pixels
from emulators.base import expected_pixels, marker_pixels
from emulators.meshy import RETEXTURE, TASKS
from t2t_testing import add_mesh, engine, image_array, installed, linked_image, select, set_prompt

KEY = "msy_emulator_SECRET_0123456789"  # the key the `meshy` fixture sets


def three_objects():  # type: ignore[no-untyped-def]
    crate = add_mesh("cube", "Crate")
    ball = add_mesh("sphere", "Ball", (3, 0, 0))
    bust = add_mesh("monkey", "Bust", (6, 0, 0))
    bust.modifiers.new("Subdiv", "SUBSURF").levels = 1
    return crate, ball, bust


def center_and_corner(image: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    arr = image_array(image)
    h, w = arr.shape[:2]
    return tuple(arr[h // 2, w // 2, :3]), tuple(arr[1, 1, :3])


def test_meshy_textures_several_objects_with_each_map_on_its_socket(blender, meshy) -> None:
    bpy = blender
    objs = three_objects()
    select(*objs)
    set_prompt("weathered bronze with green patina", provider="MESHY")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}

    recs = bpy.context.scene.text_to_texture.jobs
    assert [r.state for r in recs] == ["applied"] * 3, [r.message for r in recs]
    for obj in objs:
        mat = obj.active_material
        assert mat.name.startswith(f"T2T {obj.name}")
        for socket, role in (("Base Color", "base_color"), ("Roughness", "roughness"),
                             ("Metallic", "metallic"), ("Normal", "normal")):
            image = linked_image(mat, socket).image
            center, corner = center_and_corner(image)
            assert center == expected_pixels(role), (obj.name, socket)
            assert corner == marker_pixels(role), (obj.name, socket)  # and not upside down
            assert image.colorspace_settings.is_data == (role != "base_color")
    creates = meshy.recorded("POST", RETEXTURE + "$")
    assert len(creates) == 3
    for rec in creates:
        body = rec.body
        assert body["model_url"].startswith("data:model/gltf-binary;base64,")
        assert body["texture_prompt"] == "weathered bronze with green patina"
        assert body["texture_model"] == "meshy-7" and body["enable_pbr"] is True
        assert "uv_mode" not in body and body["target_formats"] == ["glb"]
    assert recs[0].info.startswith("Meshy balance ")  # what Meshy reported, after charging
    assert 970 <= float(recs[0].info.split()[-1]) < 1000


def test_online_access_off_blocks_meshy_but_not_the_offline_provider(blender, meshy) -> None:
    bpy = blender
    bpy.context.preferences.system.use_online_access = False
    crate = add_mesh("cube", "Crate")
    select(crate)
    set_prompt("oak", provider="MESHY")
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.text_to_texture.generate()
    assert meshy.count() == 0
    set_prompt("oak", provider="PROCEDURAL")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}


@pytest.mark.parametrize(
    ("fault", "state", "message"),
    [
        ("wrong_key", "failed", "Meshy rejected the API key"),
        ("no_credits", "failed", "credits"),
        ("task_failed", "failed", "The server is busy. Please try again later."),
        ("429x2", "applied", ""),
        ("500x2_on_poll", "applied", ""),
        ("truncated_download", "applied", ""),
        ("non_image", "failed", "not an image"),
    ],
)
def test_each_fault_ends_in_the_right_state(
    blender, meshy, monkeypatch: pytest.MonkeyPatch, fault: str, state: str, message: str
) -> None:
    bpy = blender
    if fault == "wrong_key":
        monkeypatch.setenv("MESHY_API_KEY", "msy_wrong_key_000")
    elif fault == "no_credits":
        meshy.balance = 0
    elif fault == "task_failed":
        meshy.fail_tasks("The server is busy. Please try again later.")
    elif fault == "429x2":
        meshy.fail_next(429, 2, method="POST", retry_after=0)
    elif fault == "500x2_on_poll":
        meshy.fail_next(500, 2, method="GET", path=TASKS + "/")
    elif fault == "truncated_download":
        meshy.truncate_downloads(1)
    elif fault == "non_image":
        meshy.non_image_downloads(5)
    crate = add_mesh("cube", "Crate")
    select(crate)
    set_prompt("oak", provider="MESHY")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [crate])
    run.run_to_end()
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == state, rec.message
    assert message in rec.message
    if state == "failed":
        assert "\n" not in rec.message and "Traceback" not in rec.message
        assert KEY not in rec.message
        level, last = run.report_lines()[-1]
        assert level == "ERROR" and last.startswith("Textured 0 of 1")


def test_cancel_reaches_meshy_as_delete(blender, meshy) -> None:
    bpy = blender
    meshy.job_seconds, meshy.pending_seconds = 30.0, 30.0  # still waiting: Meshy deletes it
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [crate])
    end = time.monotonic() + 10
    while not bpy.context.scene.text_to_texture.jobs[0].remote_id and time.monotonic() < end:
        run.tick()
        time.sleep(0.02)
    remote = bpy.context.scene.text_to_texture.jobs[0].remote_id
    assert remote
    run.cancel()
    run.run_to_end()
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "canceled"
    deletes = meshy.recorded("DELETE")
    assert len(deletes) == 1 and deletes[0].path.endswith(remote.split(":")[-1])
    assert crate.active_material is None


def test_maps_on_meshys_own_uvs_are_baked_onto_the_objects_uvs(blender, meshy) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    n = len(crate.data.loops)
    before = np.empty(n * 2, dtype=np.float32)
    crate.data.uv_layers["UVMap"].data.foreach_get("uv", before)
    old_mesh = crate.data
    select(crate)
    set_prompt("rusty metal", provider="MESHY", meshy_original_uv=False)
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "applied", rec.message
    assert meshy.recorded("POST", RETEXTURE + "$")[0].body["uv_mode"] == "generate"
    assert crate.data is old_mesh and [u.name for u in crate.data.uv_layers] == ["UVMap"]
    after = np.empty(n * 2, dtype=np.float32)
    crate.data.uv_layers["UVMap"].data.foreach_get("uv", after)
    assert np.array_equal(before, after)  # the artist's UVs are untouched
    mat = crate.active_material
    uvnode = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeUVMap")
    assert uvnode.uv_map == "UVMap"
    # Meshy's maps, on its own (planar) UVs, come out on the cube's UVs as the same values:
    # its fill colour, and where the planar layout reaches the corner of the map its marker.
    texels = covered_texels(crate, "UVMap", 1024)
    for socket, role in (("Base Color", "base_color"), ("Roughness", "roughness"),
                         ("Metallic", "metallic"), ("Normal", "normal")):
        image = linked_image(mat, socket).image
        assert image.filepath.endswith(f"_{role}_baked.png")
        got = np.round(pixels(image)[texels.index, :3] * 255)
        fill = np.array(expected_pixels(role), float)
        assert (np.abs(got - fill).max(axis=1) <= 3).mean() >= 0.95, role
        if role != "normal":  # values carry over as they are: fill, marker or a blend of both
            mark = np.array(marker_pixels(role), float)
            t = np.clip((got - fill) @ (mark - fill) / ((mark - fill) @ (mark - fill)), 0, 1)
            off = np.abs(got - (fill + t[:, None] * (mark - fill))).max(axis=1)
            assert off.max() <= 3, role
    assert not [o for o in bpy.data.objects if o.name not in ("Crate",)]  # nothing left over


def test_use_meshys_mesh_gives_the_object_meshys_mesh_and_uvs(blender, meshy) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    old_mesh = crate.data
    select(crate)
    set_prompt("rusty metal", provider="MESHY", meshy_original_uv=False,
               meshy_use_provider_mesh=True)
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "applied", rec.message
    assert crate.data is not old_mesh and old_mesh.use_fake_user  # its own mesh is kept
    assert [u.name for u in crate.data.uv_layers] == ["Meshy_UV"]
    got = np.empty(len(crate.data.loops) * 2, dtype=np.float32)
    crate.data.uv_layers["Meshy_UV"].data.foreach_get("uv", got)
    got = got.reshape(-1, 2)
    # The emulator's layout: planar projection of glTF X and Y (Blender X and Z) into [0.1, 0.9];
    # glTF's V runs down the image, Blender's up, so V comes back as 1 - v.
    co = np.array([crate.data.vertices[lp.vertex_index].co for lp in crate.data.loops])
    want = 0.1 + 0.8 * (co[:, [0, 2]] + 1.0) / 2.0
    want[:, 1] = 1.0 - want[:, 1]
    assert np.allclose(got, want, atol=2e-3)
    uvnode = next(n for n in crate.active_material.node_tree.nodes
                  if n.bl_idname == "ShaderNodeUVMap")
    assert uvnode.uv_map == "Meshy_UV"
    base = linked_image(crate.active_material, "Base Color").image
    assert center_and_corner(base) == (expected_pixels("base_color"),
                                       marker_pixels("base_color"))  # Meshy's own map


def test_no_meshy_key_in_the_blend_journal_or_reports(blender, meshy, t2t, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bpy = blender
    monkeypatch.delenv("MESHY_API_KEY")
    prefs = bpy.context.preferences.addons[t2t.__name__].preferences
    prefs.meshy_api_key = KEY
    try:
        crate = add_mesh("cube", "Crate")
        set_prompt("oak", provider="MESHY")
        run = installed("blender.batch").BatchRun(bpy.context.scene, [crate])
        run.run_to_end()
        assert bpy.context.scene.text_to_texture.jobs[0].state == "applied"
        blend = tmp_path / "shared.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
        assert b"SECRET" not in blend.read_bytes()
        for entry in Path(engine().journal.root).glob("*.json"):
            assert "SECRET" not in entry.read_text()
        assert all("SECRET" not in line for _lvl, line in run.report_lines())
        job_id = bpy.context.scene.text_to_texture.jobs[0].job_id
        report = installed("blender.report").report_for(job_id)
        assert "SECRET" not in report and "data:" not in report and "Signature" not in report
        assert "POST /openapi/v2/retexture → HTTP 202" in report
    finally:
        prefs.meshy_api_key = ""


def test_a_canceled_job_meshy_runs_on_is_kept_and_applied_on_demand(blender, meshy) -> None:
    """Meshy will not delete a running task: the job is watched to its end, its maps are kept
    in the job list (not applied, the batch ends), and Apply puts them on the object."""
    bpy = blender
    meshy.job_seconds = 1.5
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [crate])
    end = time.monotonic() + 10
    while meshy.count("GET", TASKS + "/") == 0 and time.monotonic() < end:
        run.tick()
        time.sleep(0.02)
    run.cancel()
    run.run_to_end(timeout=20)
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "ready" and crate.active_material is None, rec.message
    assert rec.message == ("Meshy finished the job you canceled; its maps are kept — press "
                           "Apply to use them")
    assert rec.info.startswith("Meshy could not stop the running task")
    level, line = run.report_lines()[-1]
    assert (level, line) == ("INFO", "Canceled 0 job(s); 1 kept to apply by hand (Meshy would "
                                     "not stop them)")
    assert bpy.ops.text_to_texture.reapply(job_id=rec.job_id) == {"FINISHED"}
    assert rec.state == "applied" and crate.active_material.name == "T2T Crate"
    assert rec.job_id not in engine().parked


def test_the_error_summary_names_the_failed_objects(blender, meshy,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripts and `blender -b` see only the ERROR line: it says which objects failed and why,
    the first three, then how many more."""
    bpy = blender
    monkeypatch.setenv("MESHY_API_KEY", "msy_wrong_key_000")
    objs = [add_mesh("cube", f"Box{i}", (3 * i, 0, 0)) for i in range(5)]
    select(*objs)
    set_prompt("oak", provider="MESHY")
    with pytest.raises(RuntimeError) as err:
        bpy.ops.text_to_texture.generate()
    text = str(err.value)
    assert "Textured 0 of 5 object(s) with Meshy — 'Box0': Meshy rejected the API key" in text
    assert text.count("Meshy rejected the API key") == 3 and text.rstrip().endswith(
        "and 2 more")
    assert all(f"'Box{i}'" in text for i in range(3)) and "'Box4'" not in text


def test_test_connection_says_what_works_and_never_creates_a_task(
    blender, meshy, monkeypatch: pytest.MonkeyPatch
) -> None:
    bpy = blender
    connection = installed("blender.connection")
    connection.forget()
    assert connection.needs_check("MESHY") and not connection.needs_check("PROCEDURAL")
    assert bpy.ops.text_to_texture.test_connection(provider="MESHY") == {"FINISHED"}
    check = connection.result("MESHY")
    assert check.ok and check.line == ("Meshy works: the key is accepted (API v2), 1,000 "
                                       "credits left")
    assert not connection.needs_check("MESHY")  # verified for this session
    monkeypatch.setenv("MESHY_API_KEY", "msy_wrong_key_000")
    assert connection.needs_check("MESHY")  # other settings: not verified
    with pytest.raises(RuntimeError, match="Meshy rejected the API key — check Preferences"):
        bpy.ops.text_to_texture.test_connection(provider="MESHY")
    assert meshy.count("POST") == 0 and meshy.count("DELETE") == 0 and meshy.balance == 1000
    connection.forget()


def test_jobs_at_once_is_a_preference_and_a_variable(blender, meshy, t2t,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bpy = blender
    monkeypatch.delenv("MESHY_JOBS_AT_ONCE", raising=False)
    prefs = bpy.context.preferences.addons[t2t.__name__].preferences
    preflight = installed("blender.preflight")
    cls = installed("providers.registry").PROVIDERS["MESHY"]
    assert prefs.meshy_jobs_at_once == 10 and prefs.triverse_jobs_at_once == 10
    assert prefs.scenario_jobs_at_once == 4 and prefs.dressx_jobs_at_once == 2
    prefs.meshy_jobs_at_once = 30  # a Premium plan
    try:
        assert cls(preflight.provider_config("MESHY")).max_concurrency == 30
        monkeypatch.setenv("MESHY_JOBS_AT_ONCE", "60")
        assert cls(preflight.provider_config("MESHY")).max_concurrency == 60
    finally:
        prefs.meshy_jobs_at_once = 10
