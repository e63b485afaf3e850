"""What happens when a file is opened: the journal's housekeeping and the default provider."""

from __future__ import annotations

import time
from pathlib import Path

from t2t_testing import installed

DAY = 24 * 3600.0


def _journal_entry(state: str, age_days: float, job_id: str):  # type: ignore[no-untyped-def]
    job_mod = installed("jobs.job")
    base = installed("providers.base")
    job = job_mod.Job(id=job_id, provider="PROCEDURAL", object_name="Cube",
                      request=base.TextureRequest(job_id=job_id, prompt="oak"))
    job.state = job_mod.State(state)
    job.updated = time.time() - age_days * DAY
    return job


def test_opening_a_file_drops_finished_jobs_older_than_keep_days(blender, data_dir: Path) -> None:
    bpy = blender
    prefs = installed("blender.addon").prefs()
    prefs.keep_days = 14
    journal = installed("jobs.journal").Journal(data_dir / "journal")
    entries = {
        "old0applied": ("applied", 20), "old0failed": ("failed", 15),
        "new0applied": ("applied", 2), "old0running": ("running", 40),
    }
    for job_id, (state, age) in entries.items():
        journal.write(_journal_entry(state, age, job_id))
    bpy.ops.wm.read_homefile(use_empty=True)  # the artist opens a file
    kept = {p.stem for p in (data_dir / "journal").glob("*.json")}
    assert {"new0applied", "old0running"} <= kept  # recent, and unfinished at any age
    assert not {"old0applied", "old0failed"} & kept
    prefs.keep_days = 1
    bpy.ops.wm.read_homefile(use_empty=True)
    assert not (data_dir / "journal" / "new0applied.json").exists()
    journal.remove("old0running")


def test_new_files_start_with_the_default_provider(blender, tmp_path: Path) -> None:
    bpy = blender
    prefs = installed("blender.addon").prefs()
    prefs.default_provider = "SCENARIO"
    try:
        bpy.ops.wm.read_homefile(use_empty=True)
        settings = bpy.context.scene.text_to_texture
        assert settings.provider == "SCENARIO"
        settings.provider = "PROCEDURAL"  # the artist chose: a saved choice is theirs
        blend = tmp_path / "chosen.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        bpy.ops.wm.open_mainfile(filepath=str(blend))
        assert bpy.context.scene.text_to_texture.provider == "PROCEDURAL"
    finally:
        prefs.default_provider = "PROCEDURAL"
