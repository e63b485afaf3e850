"""A provider's result on UVs of its own is baked onto the object's own UV map, in real Blender
through the installed zip, against the Triverse emulator returning the same surface with an
atlas of its own whose every texel encodes where on the surface it is (emulators/surface.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bake_checks import covered_texels, mip3_errors, normal_errors, pixels, position_errors
from emulators import surface
from t2t_testing import add_mesh, engine, installed, linked_image, select, set_prompt

# Of the object's size: 8-bit maps and bilinear filtering, twice, and for a decimated result
# its own coarseness (p99 is about 0.4 %, decimated 0.6 %).
TOLERANCE = 0.01


def snapshot(obj: Any) -> dict[str, Any]:
    """What the artist owns on an object: its mesh data, UV maps, modifiers, materials."""
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    uvs = {}
    for layer in mesh.uv_layers:
        data = np.empty(len(mesh.loops) * 2, np.float32)
        layer.uv.foreach_get("vector", data)
        uvs[layer.name] = (data.tobytes(), layer.active_render)
    return {
        "mesh": mesh.name, "co": co.tobytes(), "polygons": len(mesh.polygons),
        "uvs": uvs, "active_uv": mesh.uv_layers.active.name,
        "modifiers": [(m.name, m.type, m.show_viewport, m.show_render) for m in obj.modifiers],
        # (a mesh without materials gets an empty slot for the object's own material to use)
        "materials": [m.name for m in mesh.materials if m],
        "attributes": sorted(a.name for a in mesh.attributes),
    }


def texture(bpy: Any, obj: Any, resolution: str = "1024", **options: Any) -> Any:
    select(obj)
    set_prompt("painted steel", provider="TRIVERSE", resolution=resolution, **options)
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    rec = bpy.context.scene.text_to_texture.jobs[-1]
    assert rec.state == "applied", rec.message
    return rec


def result_of(triverse: Any) -> surface.Result:
    (result,) = triverse.surface_results.values()
    return result


def check_bake(obj: Any, rec: Any, triverse: Any, size: int) -> None:
    """The object's material shows the baked maps on its own UV map, and they hold the
    positions they show, flat normals, and no empty texel at the seams or anywhere."""
    mat = obj.active_material
    assert mat.name.startswith(f"T2T {obj.name}")
    uv_node = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeUVMap")
    assert uv_node.uv_map == rec.uv_map == "UVMap"
    base = linked_image(mat, "Base Color").image
    normal = linked_image(mat, "Normal").image
    assert tuple(base.size) == tuple(normal.size) == (size, size)
    assert Path(base.filepath_from_user()).name.endswith("_base_color_baked.png")
    texels = covered_texels(obj, "UVMap", size)
    assert len(texels.index) > 0.2 * size * size
    result = result_of(triverse)
    err = position_errors(base, texels, result)
    assert (err < TOLERANCE).mean() >= 0.99, np.percentile(err, [50, 99, 100])
    assert (normal_errors(normal, texels) < 3 / 255).mean() >= 0.99  # a flat map stays flat
    seams = mip3_errors(base, texels, result)
    assert (seams < 2 * TOLERANCE).mean() >= 0.99, np.percentile(seams, [50, 99, 100])
    # Texels outside every island come from the nearest island: never the background.
    everything = pixels(base)[:, :3]
    assert everything.min() >= surface.LOW - 0.02 and everything.max() <= 1 - surface.LOW + 0.02
    # Roughness and metallic carry over as values (the packed glTF map stays packed).
    packed = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeSeparateColor")
    mr = pixels(packed.inputs["Color"].links[0].from_node.image)[texels.index]
    assert np.allclose(mr[:, 1], surface.ROUGHNESS_LEVEL / 255, atol=1 / 255)
    assert np.allclose(mr[:, 2], surface.METALLIC_LEVEL / 255, atol=1 / 255)


@pytest.fixture()
def surface_triverse(triverse):  # type: ignore[no-untyped-def]
    triverse.result_topology = "surface"
    triverse.map_size = 1024
    return triverse


def test_a_result_is_baked_onto_the_objects_own_uvs_and_nothing_of_it_changes(
        blender, surface_triverse) -> None:
    bpy = blender
    ball = add_mesh("sphere", "Ball")
    extra = ball.data.uv_layers.new(name="Lightmap")  # a second UV map of the artist's
    extra.uv.foreach_set("vector", np.full(len(ball.data.loops) * 2, 0.25, np.float32))
    ball.data.uv_layers.active = ball.data.uv_layers["UVMap"]
    for name in ("Paint", "Trim"):
        ball.data.materials.append(bpy.data.materials.new(name))
    ball.modifiers.new("Weld", "WELD")
    before = snapshot(ball)
    rec = texture(bpy, ball)
    assert snapshot(ball) == before  # mesh, UV maps, modifiers and materials as they were
    assert engine().jobs[rec.job_id].extra["baked"]["uv_map"] == "UVMap"
    check_bake(ball, rec, surface_triverse, 1024)


def test_the_evaluated_surface_of_a_subdivided_mesh_is_baked_onto_its_base_uvs(
        blender, surface_triverse) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    crate.modifiers.new("Subdivision", "SUBSURF").levels = 2
    before = snapshot(crate)
    rec = texture(bpy, crate)
    assert snapshot(crate) == before
    check_bake(crate, rec, surface_triverse, 1024)


def test_a_result_decimated_to_30_percent_is_baked_onto_the_full_mesh(
        blender, surface_triverse) -> None:
    bpy = blender
    surface_triverse.result_topology = "surface-decimated"
    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32)  # 3,968 triangles
    ball = bpy.context.active_object  # no modifiers: Blender evaluates it as it is
    before = snapshot(ball)
    rec = texture(bpy, ball)
    assert snapshot(ball) == before  # (its tangents were read from the evaluated copy)
    result = result_of(surface_triverse)
    assert 0.25 <= len(result.indices) / 3 / len(ball.data.loop_triangles) <= 0.35
    check_bake(ball, rec, surface_triverse, 1024)


def test_a_base_colour_alone_is_baked_too(blender, surface_triverse) -> None:
    bpy = blender
    ball = add_mesh("sphere", "Ball")
    rec = texture(bpy, ball, enable_pbr=False)  # no normal map: no tangents needed
    base = linked_image(ball.active_material, "Base Color").image
    texels = covered_texels(ball, "UVMap", 1024)
    err = position_errors(base, texels, result_of(surface_triverse))
    assert (err < TOLERANCE).mean() >= 0.99
    assert set(engine().jobs[rec.job_id].maps) == {"base_color"}


def test_an_object_with_n_gons_is_baked_too(blender, surface_triverse) -> None:
    """Blender computes tangents for triangles and quads only: the worker works them out."""
    bpy = blender
    can = add_mesh("cylinder", "Can")  # its caps are 32-gons
    assert max(len(p.vertices) for p in can.data.polygons) == 32
    rec = texture(bpy, can)
    check_bake(can, rec, surface_triverse, 1024)


def test_use_triverse_mesh_gives_the_object_its_mesh_without_applying_modifiers_twice(
        blender, triverse) -> None:
    bpy = blender
    triverse.result_topology = "same"  # the uploaded (already subdivided) mesh comes back
    crate = add_mesh("cube", "Crate")
    crate.modifiers.new("Subdivision", "SUBSURF").levels = 1
    old = crate.data

    def rendered_shape() -> np.ndarray:
        mesh = crate.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        return np.unique(np.round(co.reshape(-1, 3), 4), axis=0)

    shape = rendered_shape()
    rec = texture(bpy, crate, triverse_use_provider_mesh=True)
    assert crate.data is not old and old.use_fake_user  # its own mesh is kept in the file
    assert [u.name for u in crate.data.uv_layers] == ["Triverse_UV"]
    np.testing.assert_allclose(rendered_shape(), shape, atol=1e-4)  # not subdivided again
    mod = crate.modifiers["Subdivision"]
    assert not mod.show_viewport and not mod.show_render  # kept, turned off
    assert "Subdivision" in rec.info
    assert linked_image(crate.active_material, "Base Color").image.filepath.endswith(
        "_base_color.png")  # the provider's own map, not baked


def _tick_until(predicate: Any, timeout: float = 120.0) -> None:
    drive = installed("blender.drive")
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        drive.tick()
        time.sleep(0.01)


def _dense_ball(bpy: Any) -> Any:
    bpy.ops.mesh.primitive_uv_sphere_add(segments=96, ring_count=48)
    ball = bpy.context.active_object
    ball.name = "Ball"
    return ball


def test_esc_while_baking_cancels_and_leaves_the_object_alone(blender, surface_triverse) -> None:
    bpy = blender
    ball = _dense_ball(bpy)
    before = snapshot(ball)
    set_prompt("painted steel", provider="TRIVERSE", resolution="4096")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [ball])
    rec = bpy.context.scene.text_to_texture.jobs[0]
    _tick_until(lambda: rec.state == "baking" and rec.progress > 0)
    assert rec.message.startswith("Baking")
    run.cancel()  # what Esc does in the modal operator
    run.run_to_end(timeout=30)
    assert rec.state == "canceled", rec.message
    assert rec.message.startswith("Canceled while baking; Triverse's maps are kept in ")
    assert ball.active_material is None and snapshot(ball) == before
    job = engine().jobs[rec.job_id]
    assert all(Path(p).is_file() for p in job.maps.values())  # what was bought stays on disk
    assert len(surface_triverse.recorded("POST", "/tasks/text-to-texture")) == 1


def test_a_blender_that_stops_while_baking_bakes_again_when_the_file_opens(
        blender, surface_triverse, tmp_path: Path) -> None:
    bpy = blender
    ball = add_mesh("sphere", "Ball")
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    set_prompt("painted steel", provider="TRIVERSE", resolution="2048")
    installed("blender.batch").BatchRun(bpy.context.scene, [ball])
    rec = bpy.context.scene.text_to_texture.jobs[0]
    _tick_until(lambda: rec.state == "baking")
    job_id = rec.job_id
    bpy.ops.wm.save_mainfile()
    downloads = len(surface_triverse.recorded("GET"))
    installed("blender.engine").reset_engine()  # Blender stops: its workers die mid-bake
    journal = installed("jobs.journal").Journal(str(Path(
        installed("blender.addon").user_dir("journal"))))
    assert journal.load(job_id).state.value == "baking"

    bpy.ops.wm.open_mainfile(filepath=str(blend))  # the next session opens the file
    rec = bpy.context.scene.text_to_texture.jobs[0]
    installed("blender.drive").run_jobs([job_id], timeout=120)
    assert rec.state == "applied", rec.message
    assert len(surface_triverse.recorded("POST", "/tasks/text-to-texture")) == 1  # bought once
    assert len(surface_triverse.recorded("GET")) == downloads  # nothing fetched again
    ball = bpy.data.objects["Ball"]
    check_bake(ball, rec, surface_triverse, 2048)
