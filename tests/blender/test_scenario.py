"""Scenario end to end in real Blender: seamless 2D textures tiled on the objects, PBR maps,
several samples kept as variants."""

from __future__ import annotations

import numpy as np
import pytest

from emulators.scenario import map_fill, smoothness_value
from t2t_testing import add_mesh, image_array, installed, linked_image, select, set_prompt


def fill(image) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    arr = image_array(image)
    return tuple(int(v) for v in arr[arr.shape[0] // 2, arr.shape[1] // 2, :3])


def tiling(mat):  # type: ignore[no-untyped-def]
    return mat.node_tree.nodes["T2T Tiling"]


def test_scenario_tiles_seamless_pbr_maps_on_every_object(blender, scenario) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    plank = add_mesh("cube", "Plank", (4, 0, 0))
    plank.scale = (4.0, 0.5, 0.1)
    bare = add_mesh("sphere", "Bare", (8, 0, 0))
    bare.data.uv_layers.remove(bare.data.uv_layers[0])
    select(crate, plank, bare)
    set_prompt("mossy cobblestone", provider="SCENARIO", resolution="1024",
               scenario_tile_size=0.5)
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    recs = bpy.context.scene.text_to_texture.jobs
    assert [r.state for r in recs] == ["applied"] * 3, [r.message for r in recs]

    mat = crate.active_material
    rough = linked_image(mat, "Roughness").image
    assert fill(rough)[0] == 255 - smoothness_value(0)  # smoothness inverted to roughness
    assert fill(linked_image(mat, "Metallic").image) == map_fill("texture-metallic", 0)
    assert rough.colorspace_settings.is_data
    # Normal map and height both reach the surface: Normal Map -> Bump -> BSDF.
    bsdf = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    bump = bsdf.inputs["Normal"].links[0].from_node
    assert bump.bl_idname == "ShaderNodeBump"
    assert bump.inputs["Normal"].links[0].from_node.bl_idname == "ShaderNodeNormalMap"
    base = linked_image(mat, "Base Color").image
    arr = image_array(base)[..., :3].astype(int)
    assert np.abs(arr[:, 0] - arr[:, -1]).mean() < 2 * np.abs(arr[:, 0] - arr[:, 1]).mean() + 1
    # Tiled by size: one repeat per 0.5 m, the 4 m plank repeats 4x more than the 2 m crate.
    assert tiling(mat).inputs["Scale"].default_value[0] == pytest.approx(2.0 / 0.5)
    assert tiling(plank.active_material).inputs["Scale"].default_value[0] == pytest.approx(
        8.0 / 0.5)
    # No UVs: box projection from object coordinates, nothing unwrapped.
    assert len(bare.data.uv_layers) == 0
    bare_base = linked_image(bare.active_material, "Base Color")
    assert bare_base.projection == "BOX"
    src = tiling(bare.active_material).inputs["Vector"].links[0].from_node
    assert src.bl_idname == "ShaderNodeTexCoord"
    assert not scenario.recorded("POST", "/uploads")  # no mesh ever leaves the machine


def test_several_samples_are_kept_as_variants(blender, scenario) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    select(crate)
    set_prompt("red brick", provider="SCENARIO", scenario_samples=3, enable_pbr=False)
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "applied", rec.message
    mats = [v.material for v in rec.variants]
    assert [m.name for m in mats] == ["T2T Crate v1", "T2T Crate v2", "T2T Crate v3"]
    assert crate.active_material == mats[0]
    colours = {fill(linked_image(m, "Base Color").image) for m in mats}
    assert len(colours) == 3  # three different textures
    assert all(m.use_fake_user for m in mats[1:])  # unused variants survive a save
    assert bpy.ops.text_to_texture.use_variant(job_id=rec.job_id, index=2) == {"FINISHED"}
    assert crate.active_material == mats[2]
    assert mats[0].use_fake_user  # the one no longer shown is kept too
    eng = installed("blender.engine").engine()
    assert installed("blender.apply").use_variant(eng, rec.job_id, 7)


def test_a_custom_texture_model_with_its_own_maps_reaches_the_material(
    blender, scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PATINA-like custom model (read once: type custom) goes through
    /generate/custom/{id}; the maps it makes itself land on their sockets, with no map job."""
    bpy = blender
    monkeypatch.setenv("SCENARIO_MODEL_ID", "model_emulator_patina")
    crate = add_mesh("cube", "Crate")
    select(crate)
    set_prompt("mossy cobblestone", provider="SCENARIO")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "applied", rec.message
    mat = crate.active_material
    assert fill(linked_image(mat, "Roughness").image)[0] == 255 - smoothness_value(0)
    assert fill(linked_image(mat, "Metallic").image) == map_fill("texture-metallic", 0)
    assert scenario.count("POST", "/generate/custom/model_emulator_patina$") == 1
    assert scenario.count("POST", "/generate/texture") == 0
    assert scenario.count("POST", "txt2img") == 0
