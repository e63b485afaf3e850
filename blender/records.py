"""The scene's job records: what a .blend remembers of each job (the journal holds the rest).

Records are found by job id through a cache of their positions, refreshed whenever a record
moved (removed, reordered, another scene); every lookup is fresh, so an undo between two ticks
never leaves a stale reference behind.
"""

from __future__ import annotations

import time
from typing import Any

import bpy

from ..jobs.job import Job
from ..providers.registry import label


class RecordIndex:
    """Job id -> the scene record of that job."""

    def __init__(self) -> None:
        self._at: dict[str, tuple[str, int]] = {}  # job id -> (scene name, index)

    def get(self, job_id: str) -> Any:
        hit = self._at.get(job_id)
        if hit is not None:
            scene = bpy.data.scenes.get(hit[0])
            if scene is not None:
                jobs = scene.text_to_texture.jobs
                if hit[1] < len(jobs) and jobs[hit[1]].job_id == job_id:
                    return jobs[hit[1]]
        self._at.clear()
        found = None
        for scene in bpy.data.scenes:
            for i, rec in enumerate(scene.text_to_texture.jobs):
                self._at[rec.job_id] = (scene.name, i)
                if rec.job_id == job_id:
                    found = rec
        return found

    def add(self, scene: bpy.types.Scene, job: Job, obj: bpy.types.Object | None,
            uv_name: str, batch_id: str) -> Any:
        """A new record for `job` (the object it textures, the UV map it uses), made active."""
        settings = scene.text_to_texture
        rec = settings.jobs.add()
        rec.job_id = job.id
        rec.provider = job.provider
        rec.object = obj
        rec.object_name = job.object_name
        rec.prompt = job.request.prompt
        rec.uv_map = uv_name
        rec.batch = batch_id
        rec.created = int(job.created)
        settings.active_job = len(settings.jobs) - 1
        self._at[job.id] = (scene.name, len(settings.jobs) - 1)
        self.sync(job)
        return rec

    def sync(self, job: Job) -> None:
        """Copy what the artist sees (state, progress, message, facts) onto the record."""
        rec = self.get(job.id)
        if rec is None:
            return
        rec.state = job.state.value
        rec.progress = job.progress
        rec.message = job.message
        rec.remote_id = job.remote_id
        info = facts_line(job)
        if info:
            rec.info = info
        if job.state.terminal and not rec.finished:
            rec.finished = int(time.time())


def facts_line(job: Job) -> str:
    """What the provider told us worth showing: a warning or note first, else order/balance."""
    for key in ("warning", "note"):  # e.g. "No PBR maps (…); the base color was kept"
        if job.extra.get(key):
            return str(job.extra[key])
    facts = []
    if "order" in job.extra:
        facts.append(f"order {job.extra['order']}")
    balance = job.extra.get("balance")
    if balance is not None:
        facts.append(f"balance {balance:g}" if isinstance(balance, int | float)
                     else f"balance {balance}")
    return f"{label(job.provider)} " + ", ".join(facts) if facts else ""
