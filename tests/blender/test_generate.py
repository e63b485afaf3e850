"""The main job, as an artist runs it: select meshes, type a prompt, press the button."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from t2t_testing import add_mesh, engine, image_array, installed, linked_image, select, set_prompt

PROMPT = "polished gold"


def uv_coords(mesh) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = {}
    for layer in mesh.uv_layers:
        arr = np.empty(len(layer.data) * 2, dtype=np.float32)
        layer.data.foreach_get("uv", arr)
        out[layer.name] = arr
    return out  # type: ignore[return-value]


def test_the_extension_is_the_installed_zip(blender, t2t, extension_zip: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "providers/procedural/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "demo/", ".venv/"))]
    assert "extensions/user_default/text_to_texture" in t2t.__file__.replace("\\", "/")
    assert blender.context.scene.text_to_texture.provider == "PROCEDURAL"


def test_material_is_wired_per_socket_with_the_right_pixels(blender) -> None:
    bpy = blender
    cube = add_mesh("cube", "Crate")
    old = bpy.data.materials.new("Artist paint")
    cube.data.materials.append(old)
    uv_before = uv_coords(cube.data)
    select(cube)
    set_prompt(PROMPT, seed=7, resolution="1024")

    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}

    mat = cube.active_material
    assert mat is not old and mat.name.startswith("T2T Crate")
    assert list(cube.data.materials) == [old]  # the artist's material is still on the mesh
    assert uv_coords(cube.data).keys() == uv_before.keys()
    for name, arr in uv_before.items():
        assert np.array_equal(uv_coords(cube.data)[name], arr)  # UVs untouched

    maps = installed("providers.procedural").generate_maps(PROMPT, 7, 1024)
    base = linked_image(mat, "Base Color")
    rough = linked_image(mat, "Roughness")
    metal = linked_image(mat, "Metallic")
    normal = linked_image(mat, "Normal")
    assert base.image.colorspace_settings.name == "sRGB"
    assert not base.image.colorspace_settings.is_data
    for node in (rough, metal, normal):
        assert node.image.colorspace_settings.is_data
    assert np.array_equal(image_array(base.image)[..., :3], maps["base_color"])
    assert np.array_equal(image_array(rough.image)[..., 0], maps["roughness"])
    assert np.array_equal(image_array(metal.image)[..., 0], maps["metallic"])
    assert np.array_equal(image_array(normal.image)[..., :3], maps["normal"])

    tree = mat.node_tree
    bsdf = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    nmap = bsdf.inputs["Normal"].links[0].from_node
    assert nmap.bl_idname == "ShaderNodeNormalMap" and nmap.space == "TANGENT"
    assert nmap.uv_map == "UVMap"
    uvnode = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeUVMap")
    assert uvnode.uv_map == "UVMap"
    for node in (base, rough, metal, normal):
        assert node.inputs["Vector"].links[0].from_node == uvnode
    xs = {n.bl_idname: n.location.x for n in tree.nodes}
    assert (xs["ShaderNodeUVMap"] < xs["ShaderNodeTexImage"] < xs["ShaderNodeNormalMap"]
            < xs["ShaderNodeBsdfPrincipled"] < xs["ShaderNodeOutputMaterial"])  # reads left→right

    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert (rec.state, rec.object, rec.material) == ("applied", cube, mat)
    assert Path(bpy.path.abspath(base.image.filepath)).is_file()


def test_a_mixed_selection(blender) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    ball = add_mesh("sphere", "Ball", (3, 0, 0))
    bpy.ops.object.camera_add()
    cam = bpy.context.active_object
    empty_mesh = bpy.data.meshes.new("nothing")
    hollow = bpy.data.objects.new("Hollow", empty_mesh)
    bpy.context.scene.collection.objects.link(hollow)
    twin_a = add_mesh("cylinder", "TwinA", (6, 0, 0))
    shared_old = bpy.data.materials.new("Shared paint")
    twin_a.data.materials.append(shared_old)
    twin_b = bpy.data.objects.new("TwinB", twin_a.data)
    bpy.context.scene.collection.objects.link(twin_b)
    blob = add_mesh("monkey", "Blob", (9, 0, 0))
    blob.scale = (2.0, 0.5, 1.0)
    blob.modifiers.new("Subdiv", "SUBSURF").levels = 1
    chair = add_mesh("torus", "Стул椅子", (12, 0, 0))
    select(crate, ball, cam, hollow, twin_a, twin_b, blob, chair)
    set_prompt("red brick wall")

    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}

    recs = {r.object_name: r for r in bpy.context.scene.text_to_texture.jobs}
    assert set(recs) == {"Crate", "Ball", "TwinA", "TwinB", "Blob", "Стул椅子"}
    assert all(r.state == "applied" for r in recs.values()), [r.message for r in recs.values()]
    assert cam.active_material is None and hollow.active_material is None
    assert twin_a.active_material is not twin_b.active_material  # each object its own result
    assert twin_a.active_material.name.startswith("T2T TwinA")
    assert list(twin_a.data.materials) == [shared_old]  # the shared mesh keeps its material
    assert blob.scale[0] == 2.0 and blob.modifiers["Subdiv"].levels == 1  # nothing applied
    assert "T2T_UV" in chair.data.uv_layers or chair.data.uv_layers  # torus has UVs
    chair_img = linked_image(chair.active_material, "Base Color").image
    assert Path(bpy.path.abspath(chair_img.filepath)).is_file()


def test_skipped_objects_get_one_line_each(blender, capsys) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    bpy.ops.object.camera_add()
    cam = bpy.context.active_object
    hollow = bpy.data.objects.new("Hollow", bpy.data.meshes.new("nothing"))
    bpy.context.scene.collection.objects.link(hollow)
    select(crate, cam, hollow)
    set_prompt("oak")
    batch = installed("blender.batch").BatchRun(bpy.context.scene, [crate, cam, hollow])
    assert batch.batch.skipped == [
        "Skipped 'Camera': not a mesh (camera)",
        "Skipped 'Hollow': the mesh has no faces",
    ]
    batch.run_to_end()
    lines = batch.report_lines()
    assert lines[-1] == ("INFO", "Textured 1 of 1 object(s) with Offline (procedural)")


def test_nothing_valid_selected_disables_the_button_with_a_reason(blender) -> None:
    bpy = blender
    bpy.ops.object.camera_add()
    set_prompt("oak")
    assert not bpy.ops.text_to_texture.generate.poll()
    with pytest.raises(RuntimeError, match="Select at least one mesh object that has faces"):
        bpy.ops.text_to_texture.generate()
    add_mesh("cube", "Crate")
    set_prompt("   ")
    with pytest.raises(RuntimeError, match="Type a prompt"):
        bpy.ops.text_to_texture.generate()


@pytest.mark.parametrize("provider", ["MESHY", "TRIVERSE", "DRESSX", "SCENARIO"])
def test_cloud_providers_explain_why_they_cannot_run(blender, provider: str) -> None:
    bpy = blender
    add_mesh("cube", "Crate")
    set_prompt("oak", provider=provider)
    with pytest.raises(RuntimeError, match=r"not available yet|needs online access"):
        bpy.ops.text_to_texture.generate()


def test_uvs_are_made_only_where_missing_and_never_overwrite(blender) -> None:
    bpy = blender
    bare = add_mesh("cube", "Bare")
    bare.data.uv_layers.remove(bare.data.uv_layers[0])
    kept = add_mesh("cube", "Kept", (3, 0, 0))
    before = uv_coords(kept.data)
    select(bare, kept)
    set_prompt("grey concrete")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    assert [u.name for u in bare.data.uv_layers] == ["T2T_UV"]
    uv = next(n for n in bare.active_material.node_tree.nodes if n.bl_idname == "ShaderNodeUVMap")
    assert uv.uv_map == "T2T_UV"
    coords = uv_coords(bare.data)["T2T_UV"]
    assert coords.min() >= 0.0 and coords.max() <= 1.0 and np.ptp(coords) > 0.5  # real unwrap
    assert [u.name for u in kept.data.uv_layers] == ["UVMap"]
    assert np.array_equal(uv_coords(kept.data)["UVMap"], before["UVMap"])

    bare2 = add_mesh("cube", "Bare2", (6, 0, 0))
    bare2.data.uv_layers.remove(bare2.data.uv_layers[0])
    select(bare2)
    set_prompt("grey concrete", uv_policy="EXISTING_ONLY")
    batch = installed("blender.batch").BatchRun(bpy.context.scene, [bare2])
    assert batch.batch.skipped == [
        "Skipped 'Bare2': it has no UV map and the UV setting is 'Existing only'"
    ]
    assert len(bare2.data.uv_layers) == 0


def test_the_modal_path_ticks_and_binds_results_to_the_started_objects(blender) -> None:
    bpy = blender
    first = add_mesh("cube", "First")
    second = add_mesh("sphere", "Second", (3, 0, 0))
    other = add_mesh("cylinder", "Other", (6, 0, 0))
    select(first, second)
    set_prompt("blue fabric", resolution="1024")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [first, second])
    select(other)  # the artist moves on while the jobs run
    ticks = 0
    import time

    while run.tick():
        ticks += 1
        time.sleep(0.01)
        assert ticks < 3000
    assert ticks >= 1
    assert first.active_material.name.startswith("T2T First")
    assert second.active_material.name.startswith("T2T Second")
    assert other.active_material is None
    assert [r.state for r in bpy.context.scene.text_to_texture.jobs] == ["applied", "applied"]


def test_cancel_before_start(blender) -> None:
    bpy = blender
    cube = add_mesh("cube", "Crate")
    set_prompt("oak")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [cube])
    run.cancel()
    assert not run.tick()
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert (rec.state, rec.message) == ("canceled", "Canceled")
    assert cube.active_material is None
    assert run.report_lines() == [("INFO", "Canceled 1 job(s)")]  # asked for: no error


def test_a_deleted_object_fails_its_job_and_keeps_the_maps(blender) -> None:
    bpy = blender
    cube = add_mesh("cube", "Doomed")
    set_prompt("oak")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [cube])
    bpy.data.objects.remove(cube)
    run.run_to_end()
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "failed"
    assert rec.message.startswith("'Doomed' was deleted; its maps are kept in")
    job = engine().jobs[rec.job_id]
    assert Path(job.maps["base_color"]).is_file()


def test_an_unfinished_job_resumes_after_blender_restarts(blender, tmp_path: Path) -> None:
    bpy = blender
    cube = add_mesh("cube", "Crate")
    set_prompt("dark walnut wood", resolution="2048")
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    run = installed("blender.batch").BatchRun(bpy.context.scene, [cube])
    run.tick()  # handed to a worker
    eng = engine()
    eng.runner.kill()  # Blender dies mid-job
    job_id = run.job_ids[0]
    bpy.ops.wm.save_mainfile()
    assert eng.journal.load(job_id).state.value not in ("applied", "failed", "canceled")

    installed("blender.engine").reset_engine()
    bpy.ops.wm.open_mainfile(filepath=str(blend))  # load_post resumes from the journal
    eng2 = engine()
    assert job_id in eng2.jobs
    installed("blender.drive").run_jobs([job_id], timeout=60)
    cube = bpy.data.objects["Crate"]
    assert cube.active_material is not None and cube.active_material.name.startswith("T2T Crate")
    assert eng2.journal.load(job_id).state.value == "applied"
    img = linked_image(cube.active_material, "Base Color").image
    assert img.filepath.startswith("//textures/")  # saved next to the .blend, relative


def test_no_key_reaches_the_blend(blender, t2t, tmp_path: Path) -> None:
    bpy = blender
    prefs = bpy.context.preferences.addons[t2t.__name__].preferences
    prefs.meshy_api_key = "msy_SECRET_key_0123456789"
    prefs.scenario_api_secret = "scn_SECRET_987654"
    try:
        cube = add_mesh("cube", "Crate")
        set_prompt("oak")
        select(cube)
        bpy.ops.text_to_texture.generate()
        blend = tmp_path / "shared.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
        data = blend.read_bytes()
        assert b"SECRET" not in data
        for entry in Path(engine().journal.root).glob("*.json"):
            assert "SECRET" not in entry.read_text()
    finally:
        prefs.meshy_api_key = ""
        prefs.scenario_api_secret = ""


def test_maps_can_be_packed_into_the_blend(blender, t2t, tmp_path: Path) -> None:
    bpy = blender
    prefs = bpy.context.preferences.addons[t2t.__name__].preferences
    prefs.pack_images = True
    try:
        cube = add_mesh("cube", "Crate")
        select(cube)
        set_prompt("oak", resolution="1024")
        assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
        images = [linked_image(cube.active_material, s).image
                  for s in ("Base Color", "Roughness", "Metallic", "Normal")]
        assert all(img.packed_file is not None for img in images)
        blend = tmp_path / "packed.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        for img in images:  # the file stands alone: the maps on disk are no longer needed
            Path(bpy.path.abspath(img.filepath)).unlink(missing_ok=True)
        bpy.ops.wm.open_mainfile(filepath=str(blend))
        base = linked_image(bpy.data.objects["Crate"].active_material, "Base Color").image
        assert base.packed_file is not None and base.size[0] == 1024
        assert image_array(base).any()
    finally:
        prefs.pack_images = False
