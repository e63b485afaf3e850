"""Blender killed mid-job (SIGKILL), a new Blender opens the .blend: every job resumes, is applied,
and the provider proves nothing was submitted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulators.meshy import RETEXTURE, MeshyEmulator
from t2t_testing import installed

CHILD = Path(__file__).with_name("restart_child.py")


def child_env(emu: MeshyEmulator, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(emu.env())
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "profile")
    env["TEXT_TO_TEXTURE_DATA_DIR"] = str(tmp_path / "t2t-data")
    return env


def test_jobs_survive_a_killed_blender(extension_zip: Path, tmp_path: Path) -> None:
    blend = tmp_path / "scene.blend"
    with MeshyEmulator(job_seconds=3.0) as emu:
        env = child_env(emu, tmp_path)
        first = subprocess.Popen(
            [sys.executable, str(CHILD), "start", str(extension_zip), str(blend)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            deadline = time.monotonic() + 120
            assert first.stdout is not None
            for line in first.stdout:
                if line.startswith("SUBMITTED") or time.monotonic() > deadline:
                    break
            assert first.poll() is None, "the first Blender ended before it was killed"
            first.send_signal(signal.SIGKILL)  # no handlers, no cleanup: a crash
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
        assert len(emu.recorded("POST", RETEXTURE + "$")) == 3

        second = subprocess.run(
            [sys.executable, str(CHILD), "resume", str(extension_zip), str(blend)],
            env=env, capture_output=True, text=True, timeout=300,
        )
        result = next((ln for ln in second.stdout.splitlines() if ln.startswith("RESULT ")), "")
        assert result, second.stderr[-3000:]
        jobs = json.loads(result[len("RESULT "):])
        assert set(jobs) == {"Crate0", "Crate1", "Crate2"}
        for name, job in jobs.items():
            assert job["state"] == "applied", job["message"]
            assert job["material"].startswith(f"T2T {name}")
        assert len(emu.recorded("POST", RETEXTURE + "$")) == 3  # nothing was submitted twice


def test_jobs_of_an_unsaved_file_are_recovered_by_the_next_blender(
    extension_zip: Path, tmp_path: Path
) -> None:
    with MeshyEmulator(job_seconds=3.0) as emu:
        env = child_env(emu, tmp_path)
        first = subprocess.Popen(
            [sys.executable, str(CHILD), "start", str(extension_zip), "-"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert first.stdout is not None
            for line in first.stdout:
                if line.startswith("SUBMITTED"):
                    break
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()

        second = subprocess.run(
            [sys.executable, str(CHILD), "recover", str(extension_zip), "-"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        result = next((ln for ln in second.stdout.splitlines() if ln.startswith("RESULT ")), "")
        assert result, second.stderr[-3000:]
        got = json.loads(result[len("RESULT "):])
        assert got["parked"] == ["Maps ready: select an object and press Apply to Active"] * 3
        assert got["active"] == []  # parked jobs keep nothing running
        assert got["apply"] == ["FINISHED"]
        assert got["states"] == ["applied", "ready", "ready"]
        assert got["material"].startswith("T2T Suzanne")
        assert len(emu.recorded("POST", RETEXTURE + "$")) == 3  # paid once, recovered


def test_recovered_jobs_read_as_parked_in_the_tick_their_maps_arrive(
    blender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parking a recovered job needs no Blender work, so it never waits for a tick's time
    budget: the tick that takes in ready maps leaves each job saying what the artist does."""
    engine_mod = installed("blender.engine")
    job_mod, base = installed("jobs.job"), installed("providers.base")
    monkeypatch.setattr(engine_mod, "TICK_BUDGET_S", 0.0)  # no time for anything optional
    eng = engine_mod.Engine(journal_root=str(tmp_path / "journal"))
    dead_pid = 2**22 + 1  # above any pid Linux hands out: that Blender is gone
    for n in range(3):
        eng.journal.write(job_mod.Job(
            id=f"orphan{n}", provider="PROCEDURAL", object_name=f"Crate{n}",
            request=base.TextureRequest(job_id=f"orphan{n}", prompt="rusty iron"),
            state=job_mod.State.READY, progress=1.0, message="Maps ready", owner_pid=dead_pid,
        ))
    try:
        resumed = installed("blender.recovery").resume(eng)
        assert sorted(resumed) == ["orphan0", "orphan1", "orphan2"]
        eng.tick()  # the three READY snapshots arrive in this one tick
        recs = blender.context.scene.text_to_texture.jobs
        assert [r.message for r in recs] == [
            "Maps ready: select an object and press Apply to Active"] * 3
        assert [r.state for r in recs] == ["ready"] * 3
        assert eng.active_ids() == []  # parked jobs keep nothing running
    finally:
        eng.detach()
