"""A Blender session for test_restart.py, run as its own process (so it can be SIGKILLed).

    python restart_child.py start ZIP BLEND   # texture 3 cubes with Meshy, print SUBMITTED, hang
    python restart_child.py resume ZIP BLEND  # open BLEND, let the jobs resume, print the result
    python restart_child.py start ZIP -       # the same in a file that is never saved
    python restart_child.py recover ZIP -     # a fresh Blender: adopt, finish, apply to a cube
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import ext_dev


def fast_polls() -> None:
    meshy = ext_dev.installed("providers.meshy")
    meshy.MeshyProvider.poll_interval = 0.1


def start(bpy, blend: Path) -> None:  # type: ignore[no-untyped-def]
    bpy.ops.wm.read_homefile(use_empty=True)
    for i in range(3):
        bpy.ops.mesh.primitive_cube_add(location=(i * 3, 0, 0))
        bpy.context.active_object.name = f"Crate{i}"
    if str(blend) != "-":
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    settings = bpy.context.scene.text_to_texture
    settings.provider = "MESHY"
    settings.prompt = "rusty iron"
    gen = ext_dev.installed("blender.batch")
    run = gen.BatchRun(bpy.context.scene, list(bpy.data.objects))
    while not all(r.remote_id for r in settings.jobs):
        run.tick()
        time.sleep(0.02)
    if str(blend) != "-":
        bpy.ops.wm.save_mainfile()  # the artist (or autosave) saved; remote ids are in the file
    print("SUBMITTED", flush=True)
    while True:  # keep working until killed
        run.tick()
        time.sleep(0.05)


def resume(bpy, blend: Path) -> None:  # type: ignore[no-untyped-def]
    bpy.ops.wm.open_mainfile(filepath=str(blend))  # load_post resumes from the journal
    ids = [r.job_id for r in bpy.context.scene.text_to_texture.jobs]
    ext_dev.installed("blender.drive").run_jobs(ids, timeout=60)
    bpy.ops.wm.save_mainfile()
    out = {
        r.object_name: {
            "state": r.state,
            "message": r.message,
            "material": r.object.active_material.name if r.object.active_material else "",
        }
        for r in bpy.context.scene.text_to_texture.jobs
    }
    print("RESULT " + json.dumps(out), flush=True)


def recover(bpy) -> None:  # type: ignore[no-untyped-def]
    bpy.ops.wm.read_homefile(use_empty=True)  # a new session: load_post adopts the orphans
    engine = ext_dev.installed("blender.engine").engine()
    recs = bpy.context.scene.text_to_texture.jobs
    ids = [r.job_id for r in recs]
    # Until every adopted job is parked (ready, waiting for the artist): being READY is not
    # enough, the tick after it parks the job.
    ext_dev.installed("blender.drive").run_until(
        lambda: all(i in engine.parked for i in ids), timeout=60)
    bpy.ops.mesh.primitive_monkey_add()
    target = bpy.context.active_object
    results = {"parked": [r.message for r in recs], "active": engine.active_ids()}
    results["apply"] = list(bpy.ops.text_to_texture.apply_to_active(job_id=ids[0]))
    results["states"] = [r.state for r in recs]
    results["material"] = target.active_material.name if target.active_material else ""
    print("RESULT " + json.dumps(results), flush=True)


def main() -> None:
    mode, zip_path, blend = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    import bpy

    ext_dev.install(zip_path)
    bpy.context.preferences.system.use_online_access = True
    fast_polls()
    if mode == "recover":
        recover(bpy)
    else:
        (start if mode == "start" else resume)(bpy, blend)


if __name__ == "__main__":
    main()
