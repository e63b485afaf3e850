"""Results are applied a small step per timer tick, so Blender never stutters while a batch
lands; these tests hold that to what the artist sees: right materials, nothing half-made left
behind, nothing private saved into their file."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from t2t_testing import add_mesh, engine, image_array, installed, linked_image, select, set_prompt


def _batch(bpy, names: list[str]):  # type: ignore[no-untyped-def]
    objs = [add_mesh("cube", n, (3 * i, 0, 0)) for i, n in enumerate(names)]
    select(*objs)
    set_prompt("weathered red brick wall", seed=3, resolution="1024")
    run = installed("blender.batch").BatchRun(bpy.context.scene, objs)
    assert run.job_ids, run.batch.skipped
    return objs, run


def _tick_until(pred, limit: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + limit
    eng = engine()
    while not pred():
        assert time.monotonic() < end, "timed out"
        eng.tick()
        time.sleep(0.01)


def test_a_batch_lands_over_several_ticks_each_object_with_its_own_maps(blender) -> None:
    bpy = blender
    objs, run = _batch(bpy, ["A", "B", "C"])
    eng = engine()
    _tick_until(lambda: all(eng.jobs[j].state.value in ("ready", "applied") for j in run.job_ids)
                and eng.jobs[run.job_ids[-1]].state.value != "downloading")
    applied_per_tick = []
    while any(eng.jobs[j].state.value != "applied" for j in run.job_ids):
        before = sum(eng.jobs[j].state.value == "applied" for j in run.job_ids)
        eng.tick()
        applied_per_tick.append(sum(eng.jobs[j].state.value == "applied"
                                    for j in run.job_ids) - before)
    assert max(applied_per_tick) <= 1  # never a whole batch in one tick
    for obj, job_id in zip(objs, run.job_ids):
        maps = eng.jobs[job_id].maps
        mat = obj.active_material
        assert mat.name == f"T2T {obj.name}"
        for socket, role in (("Base Color", "base_color"), ("Roughness", "roughness"),
                             ("Metallic", "metallic"), ("Normal", "normal")):
            image = linked_image(mat, socket).image
            assert Path(bpy.path.abspath(image.filepath)).resolve() == Path(maps[role]).resolve()
        # the pixels are that object's own file (copies of one material must not share images)
        base = linked_image(mat, "Base Color").image
        assert image_array(base).shape[:2] == (1024, 1024)
    bases = {linked_image(o.active_material, "Base Color").image.name for o in objs}
    assert len(bases) == 3


def test_private_templates_never_reach_the_artists_file(blender, tmp_path: Path) -> None:
    bpy = blender
    objs, run = _batch(bpy, ["Left", "Right"])
    run.run_to_end()
    assert [o.active_material.name for o in objs] == ["T2T Left", "T2T Right"]
    path = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    names = [m.name for m in bpy.data.materials]
    assert not [n for n in names if n.startswith(".T2T")], names
    for name in ("Left", "Right"):
        mat = bpy.data.objects[name].active_material
        assert mat.name == f"T2T {name}"
        assert linked_image(mat, "Base Color").image is not None


def test_an_object_deleted_while_its_maps_go_on_fails_with_one_line(blender) -> None:
    bpy = blender
    (obj,), run = _batch(bpy, ["Doomed"])
    eng = engine()
    job_id = run.job_ids[0]
    _tick_until(lambda: job_id in eng._applying)  # its apply has begun (a step is done)
    bpy.data.objects.remove(obj)
    _tick_until(lambda: eng.jobs[job_id].state.value == "failed")
    message = eng.jobs[job_id].message
    assert "'Doomed' was deleted; its maps are kept in" in message
    assert Path(eng.jobs[job_id].maps["base_color"]).is_file()  # nothing the artist paid lost
    rec = eng.record(job_id)
    assert rec.state == "failed" and rec.message == message


def test_the_mesh_is_written_by_the_worker_as_the_object_is_in_the_world(
    blender, meshy, monkeypatch, tmp_path: Path
) -> None:
    """A cloud provider's mesh file is written by the job's worker, from arrays the main thread
    copied out of Blender; it holds the object as the artist sees it (modifiers, transform,
    mirrored objects still facing outwards)."""
    import base64
    import threading

    from emulators.meshy import RETEXTURE

    bpy = blender
    meshfile = installed("formats.meshfile")
    writers: list[str] = []
    real = meshfile.write_glb

    def spy(mesh, path):  # type: ignore[no-untyped-def]
        writers.append(threading.current_thread().name)
        return real(mesh, path)

    monkeypatch.setattr(meshfile, "write_glb", spy)
    obj = add_mesh("cube", "Mirrored", (10, 0, 0))
    obj.scale = (-2.0, 1.0, 1.0)  # mirrored and stretched, never applied
    select(obj)
    set_prompt("rusty iron", provider="MESHY")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    assert obj.active_material.name == "T2T Mirrored"
    assert writers and "MainThread" not in writers

    (create,) = meshy.recorded("POST", RETEXTURE + "$")
    glb = tmp_path / "sent.glb"
    glb.write_bytes(base64.b64decode(create.body["model_url"].split(",", 1)[1]))
    sent = meshfile.read_glb(glb)
    assert np.allclose(sent.positions.min(axis=0), (8, -1, -1), atol=1e-5)
    assert np.allclose(sent.positions.max(axis=0), (12, 1, 1), atol=1e-5)
    tri = sent.positions[sent.corner_verts.reshape(-1, 3)]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    outwards = np.einsum("ij,ij->i", normals, tri.mean(axis=1) - (10, 0, 0))
    assert (outwards > 0).all()  # every triangle still faces out of the box
