"""The README's "What happens when…" table, one test per row: one clear line, nothing lost."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from t2t_testing import add_mesh, engine, installed, select, set_prompt


def batch(bpy, objs):  # type: ignore[no-untyped-def]
    return installed("blender.batch").BatchRun(bpy.context.scene, objs)


def test_only_non_meshes_selected(blender) -> None:
    bpy = blender
    bpy.ops.object.camera_add()
    bpy.ops.object.light_add()
    set_prompt("oak")
    with pytest.raises(RuntimeError, match="Select at least one mesh object that has faces"):
        bpy.ops.text_to_texture.generate()


def test_two_million_triangles_for_a_cloud_provider(blender, meshy) -> None:
    bpy = blender
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=1000, y_subdivisions=1000)
    big = bpy.context.active_object
    big.name = "Terrain"
    small = add_mesh("cube", "Crate", (5, 0, 0))
    set_prompt("mossy stone", provider="MESHY")
    run = batch(bpy, [big, small])
    assert run.batch.skipped == [
        "Skipped 'Terrain': 2,000,000 triangles is more than Meshy takes (1,500,000); "
        "decimate it first"
    ]
    run.run_to_end()
    assert [r.object_name for r in bpy.context.scene.text_to_texture.jobs] == ["Crate"]
    assert len(meshy.recorded("POST")) == 1


def test_a_10_kb_prompt(blender, meshy) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    long_prompt = ("weathered bronze with green patina " * 300)[:10_000]
    set_prompt(long_prompt, provider="MESHY")
    run = batch(bpy, [crate])
    assert run.batch.skipped == [
        "Meshy takes a prompt of at most 600 characters (this one has 10000) — shorten it"
    ]
    assert meshy.count() == 0
    set_prompt(long_prompt, provider="PROCEDURAL")  # the offline provider reads what it knows
    run = batch(bpy, [crate])
    run.run_to_end()
    assert bpy.context.scene.text_to_texture.jobs[-1].state == "applied"


def test_a_texture_folder_that_cannot_be_written(blender, t2t, tmp_path: Path) -> None:
    bpy = blender
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the folder should be")
    prefs = bpy.context.preferences.addons[t2t.__name__].preferences
    prefs.texture_folder = str(blocker / "textures")
    try:
        crate = add_mesh("cube", "Crate")
        set_prompt("oak")
        run = batch(bpy, [crate])
        (line,) = run.batch.skipped
        assert line.startswith(f"Cannot save textures in {blocker / 'textures'}: ")
        assert line.endswith("choose another texture folder in Preferences > Add-ons > Text to "
                             "Texture, or save the .blend elsewhere")
        assert not bpy.context.scene.text_to_texture.jobs
    finally:
        prefs.texture_folder = "//textures/"


def test_the_provider_is_down(blender, meshy, monkeypatch: pytest.MonkeyPatch) -> None:
    bpy = blender
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MESHY_API_BASE", dead)
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    run = batch(bpy, [crate])
    run.run_to_end()
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "failed"
    assert rec.message.startswith("Meshy")
    assert "\n" not in rec.message
    assert crate.active_material is None


def test_the_blend_is_closed_mid_job_and_reopened(blender, meshy, tmp_path: Path) -> None:
    bpy = blender
    meshy.job_seconds = 1.0
    crate = add_mesh("cube", "Crate")
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    set_prompt("oak", provider="MESHY")
    run = batch(bpy, [crate])
    while not bpy.context.scene.text_to_texture.jobs[0].remote_id:
        run.tick()
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.read_homefile(use_empty=True)  # the artist opens another file
    assert not engine().jobs
    bpy.ops.wm.open_mainfile(filepath=str(blend))  # …and comes back
    job_id = bpy.context.scene.text_to_texture.jobs[0].job_id
    installed("blender.drive").run_jobs([job_id], timeout=30)
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == "applied", rec.message
    assert bpy.data.objects["Crate"].active_material.name.startswith("T2T Crate")
    assert len(meshy.recorded("POST")) == 1  # resumed, never submitted twice


def test_the_same_object_submitted_twice(blender, meshy) -> None:
    bpy = blender
    meshy.job_seconds = 1.0
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    first = batch(bpy, [crate])
    second = batch(bpy, [crate])  # pressed again while the first job runs
    assert second.batch.skipped == ["Skipped 'Crate': it is already being textured"]
    assert not second.job_ids
    select(crate)
    with pytest.raises(RuntimeError, match="being textured"):
        bpy.ops.text_to_texture.generate()  # the button says so too
    first.run_to_end()
    assert [r.state for r in bpy.context.scene.text_to_texture.jobs] == ["applied"]
    assert len(meshy.recorded("POST")) == 1
