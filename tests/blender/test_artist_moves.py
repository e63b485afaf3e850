"""What an impatient artist does while a paid job runs (issue 13, cases 10 to 15): deletes the
object with X, undoes to before the press and redoes, starts a new file, renames the object and
presses again, presses on a mesh too big to unwrap in a blink, saves. Through the installed zip
in real Blender, against the emulators; checked as the artist would see it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from emulators.meshy import RETEXTURE
from t2t_testing import add_mesh, engine, installed, select, set_prompt


def _batch(bpy: Any, *objects: Any) -> Any:
    return installed("blender.batch").BatchRun(bpy.context.scene, list(objects))


def _tick_until(check: Any, timeout: float = 10.0) -> None:
    drive = installed("blender.drive")
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        drive.tick()
        time.sleep(0.01)


def _state(job_id: str) -> str:
    return engine().jobs[job_id].state.value


def _sent(job_id: str) -> bool:
    return _state(job_id) in ("running", "downloading", "ready", "applied")


def _record(bpy: Any, job_id: str) -> Any:
    recs = [r for r in bpy.context.scene.text_to_texture.jobs if r.job_id == job_id]
    assert len(recs) == 1, [r.job_id for r in bpy.context.scene.text_to_texture.jobs]
    return recs[0]


# --------------------------------------------------------------------------- case 10


def test_an_object_deleted_with_x_mid_job_keeps_its_maps_and_is_not_saved(
    blender, meshy, tmp_path: Path
) -> None:
    bpy = blender
    meshy.job_seconds = 0.6
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    run = _batch(bpy, crate)
    (job_id,) = run.job_ids
    _tick_until(lambda: _sent(job_id))
    select(crate)
    assert bpy.ops.object.delete() == {"FINISHED"}  # X: unlinked, kept alive by the record
    run.run_to_end(timeout=20)
    rec = _record(bpy, job_id)
    job = engine().jobs[job_id]
    assert rec.state == "failed"
    assert rec.message == f"'Crate' was deleted; its maps are kept in {job.request.out_dir}"
    assert job.maps and all(Path(p).is_file() for p in job.maps.values())
    assert rec.object is None and not [m for m in bpy.data.materials if "Crate" in m.name]
    blend = tmp_path / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert "Crate" not in bpy.data.objects  # not saved with the file


def test_an_object_deleted_before_it_was_sent_is_said_so(blender, meshy) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    run = _batch(bpy, crate)
    select(crate)
    bpy.ops.object.delete()
    run.run_to_end(timeout=10)
    rec = _record(bpy, run.job_ids[0])
    assert (rec.state, rec.message) == ("failed", "'Crate' was deleted before it could be sent")
    assert meshy.count("POST", RETEXTURE + "$") == 0


# --------------------------------------------------------------------------- case 11


def test_jobs_survive_undo_to_before_the_press_and_redo(blender, meshy) -> None:
    bpy = blender
    meshy.job_seconds = 0.5
    vase = add_mesh("cylinder", "Vase")
    set_prompt("glazed ceramic", provider="MESHY")
    bpy.ops.ed.undo_push(message="before the press")
    run = _batch(bpy, vase)
    (job_id,) = run.job_ids
    _tick_until(lambda: _sent(job_id))
    bpy.ops.ed.undo_push(message="the artist's next step")
    bpy.ops.ed.undo()  # back to before the press: the record is gone from the scene...
    rec = _record(bpy, job_id)  # ...and put back
    assert rec.object is not None and rec.object.name == "Vase"
    run.run_to_end(timeout=20)
    rec = _record(bpy, job_id)
    assert rec.state == "applied", rec.message
    assert bpy.data.objects["Vase"].active_material.name == "T2T Vase"
    bpy.ops.ed.redo()
    rec = _record(bpy, job_id)  # exactly one, never two
    assert rec.state == "applied" and rec.object.name == "Vase"
    bpy.ops.ed.undo()  # a step in which the record said "running"
    assert _record(bpy, job_id).state == "applied"  # synced from the job, not the old step
    assert meshy.count("POST", RETEXTURE + "$") == 1


def test_cleared_jobs_stay_cleared_after_undo_and_redo(blender, meshy) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    run = _batch(bpy, crate)
    run.run_to_end(timeout=20)
    bpy.ops.ed.undo_push(message="textured")
    assert bpy.ops.text_to_texture.clear_finished() == {"FINISHED"}
    bpy.ops.ed.undo_push(message="cleared")
    bpy.ops.ed.undo()
    assert len(bpy.context.scene.text_to_texture.jobs) == 1  # the undo brought it back
    bpy.ops.ed.redo()
    assert len(bpy.context.scene.text_to_texture.jobs) == 0  # and the redo cleared it again


# --------------------------------------------------------------------------- case 12


def test_file_new_adopts_the_running_jobs_of_an_unsaved_file_at_once(blender, meshy) -> None:
    bpy = blender
    meshy.job_seconds = 1.0
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    run = _batch(bpy, crate)
    (job_id,) = run.job_ids
    _tick_until(lambda: _sent(job_id))
    bpy.ops.wm.read_homefile(use_empty=True)  # File > New, the old file never saved
    rec = _record(bpy, job_id)
    assert rec.info == "Recovered from a file closed without saving"
    _tick_until(lambda: engine().jobs[job_id].state.value == "ready", timeout=20)
    drive = installed("blender.drive")
    for _ in range(5):
        drive.tick()
    rec = _record(bpy, job_id)
    assert rec.message == "Maps ready: select an object and press Apply to Active"
    ball = add_mesh("sphere", "Ball")
    select(ball)
    assert bpy.ops.text_to_texture.apply_to_active(job_id=job_id) == {"FINISHED"}
    assert ball.active_material.name == "T2T Ball"
    assert meshy.count("POST", RETEXTURE + "$") == 1  # the same paid task, not a new one


# --------------------------------------------------------------------------- case 13


def test_a_renamed_object_is_still_the_object_being_textured(blender, meshy) -> None:
    bpy = blender
    meshy.job_seconds = 1.0
    crate = add_mesh("cube", "Crate")
    set_prompt("oak", provider="MESHY")
    first = _batch(bpy, crate)
    crate.name = "Crate renamed"
    select(crate)
    batch = installed("blender.batch")
    assert batch.count_busy(bpy.context) == 1
    second = _batch(bpy, crate)
    assert second.job_ids == []
    assert second.batch.skipped == ["Skipped 'Crate renamed': it is already being textured"]
    other = add_mesh("cube", "Crate")  # another object under the old name is not busy
    third = _batch(bpy, other)
    assert len(third.job_ids) == 1
    first.run_to_end(timeout=20)
    third.run_to_end(timeout=20)
    assert meshy.count("POST", RETEXTURE + "$") == 2
    assert bpy.data.objects["Crate renamed"].active_material.name == "T2T Crate renamed"


# --------------------------------------------------------------------------- case 14


def test_the_unwrap_pause_is_told_before_the_press(blender) -> None:
    bpy = blender
    uvs = installed("blender.uvs")
    batch = installed("blender.batch")
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=400, y_subdivisions=400)
    grid = bpy.context.active_object
    grid.name = "Terrain"
    while grid.data.uv_layers:
        grid.data.uv_layers.remove(grid.data.uv_layers[0])
    select(grid)
    settings = set_prompt("moss", provider="MESHY")
    tris = uvs.triangles(grid.data)
    assert tris == 2 * 400 * 400
    seconds, what = batch.unwrap_pause(bpy.context)
    assert what == f"'Terrain' ({tris:,} triangles)"
    assert seconds == tris * uvs._rate[0]
    settings.uv_policy = "EXISTING_ONLY"
    assert batch.unwrap_pause(bpy.context) == (0.0, "")  # skipped, never unwrapped
    settings.uv_policy = "EXISTING_OR_UNWRAP"
    settings.provider = "SCENARIO"
    assert batch.unwrap_pause(bpy.context) == (0.0, "")  # box-projected, never unwrapped
    settings.provider = "MESHY"
    grid.data.uv_layers.new(name="UVMap")
    assert batch.unwrap_pause(bpy.context) == (0.0, "")


# --------------------------------------------------------------------------- case 15


def test_the_dressx_webhook_token_never_reaches_the_blend(
    blender, dressx, tmp_path: Path
) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    set_prompt("wool", provider="DRESSX")
    run = _batch(bpy, crate)
    run.run_to_end(timeout=20)
    (job_id,) = run.job_ids
    job = engine().jobs[job_id]
    ref = installed("providers.dressx").DressxRef.parse(job.remote_id)
    rec = _record(bpy, job_id)
    assert rec.state == "applied", rec.message
    assert rec.remote_id == f"order {ref.order}"
    blend = tmp_path / "shared.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert ref.webhook_token.encode() not in blend.read_bytes()
    rec = _record(bpy, job_id)
    rec.remote_id = job.remote_id  # as a file saved by an earlier version holds it
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert _record(bpy, job_id).remote_id == f"order {ref.order}"  # scrubbed on opening
    bpy.ops.wm.save_mainfile()
    assert ref.webhook_token.encode() not in blend.read_bytes()
