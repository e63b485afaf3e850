"""The scene's job records: what a .blend remembers of each job (the journal holds the rest).

Records are found by job id through a cache of their positions, refreshed whenever a record
moved (removed, reordered, another scene); every lookup is fresh, so an undo between two ticks
never leaves a stale reference behind.

Undo restores the scene as it was, records included: undoing to before the button press removes
the records of jobs that are running (and paid for). So the index also remembers, per job of
this session, what its record said (`_Meta`), and `restore` puts back every record an undo or a
redo took away, its object found again by identity (`session_uid`: stable across renames and
undo, unlike the name). Records the artist cleared are forgotten, so a redo does not bring them
back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import bpy

from ..jobs.job import Job
from ..providers.registry import label, provider_class
from .props import settings_of


def live_object(rec: Any) -> bpy.types.Object | None:
    """The record's object if it still exists for the artist. Delete (X) only unlinks an object
    from its scenes; our record's pointer keeps it alive, invisible. An object in no scene counts
    as deleted: its pointer is released, so it is not saved with the file."""
    obj = rec.object if rec is not None else None
    if obj is None:
        return None
    if not obj.users_scene:
        rec.object = None
        return None
    return obj


def object_by_uid(uid: int) -> bpy.types.Object | None:
    """The object with this session identity that is still in a scene."""
    if not uid:
        return None
    for obj in bpy.data.objects:
        if obj.session_uid == uid:
            return obj if obj.users_scene else None
    return None


@dataclass
class _Meta:
    """What a job's record holds, to make it again after an undo took it away."""

    scene: str
    object_uid: int
    object_name: str
    uv_map: str
    batch: str
    created: int
    material: str = ""


class RecordIndex:
    """Job id -> the scene record of that job."""

    def __init__(self) -> None:
        self._at: dict[str, tuple[str, int]] = {}  # job id -> (scene name, index)
        self._meta: dict[str, _Meta] = {}  # job id -> its record's contents (this session)

    def get(self, job_id: str) -> Any:
        hit = self._at.get(job_id)
        if hit is not None:
            scene: bpy.types.Scene | None = bpy.data.scenes.get(hit[0])
            if scene is not None:
                jobs = settings_of(scene).jobs
                if hit[1] < len(jobs) and jobs[hit[1]].job_id == job_id:
                    return jobs[hit[1]]
        self._at.clear()
        found = None
        for scene in bpy.data.scenes:
            for i, rec in enumerate(settings_of(scene).jobs):
                self._at[rec.job_id] = (scene.name, i)
                if rec.job_id == job_id:
                    found = rec
        return found

    def add(self, scene: bpy.types.Scene, job: Job, obj: bpy.types.Object | None,
            uv_name: str, batch_id: str) -> Any:
        """A new record for `job` (the object it textures, the UV map it uses), made active."""
        settings = settings_of(scene)
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
        self.remember(scene, rec)
        self.sync(job)
        return rec

    def remember(self, scene: bpy.types.Scene, rec: Any) -> None:
        """Keep what `rec` says (a new record, or one of a file just opened)."""
        obj = rec.object
        self._meta[rec.job_id] = _Meta(
            scene.name, obj.session_uid if obj is not None else 0, rec.object_name, rec.uv_map,
            rec.batch, rec.created, rec.material.name if rec.material is not None else "")

    def forget(self, job_id: str) -> None:
        """The artist removed the record (Clear Finished): an undo step must not bring it back."""
        self._meta.pop(job_id, None)

    def object_uid(self, job_id: str) -> int:
        meta = self._meta.get(job_id)
        return meta.object_uid if meta is not None else 0

    def sync(self, job: Job) -> None:
        """Copy what the artist sees (state, progress, message, facts) onto the record."""
        rec = self.get(job.id)
        if rec is None:
            return
        rec.state = job.state.value
        rec.progress = job.progress
        rec.message = job.message
        rec.remote_id = shown_id(job.provider, job.remote_id)
        info = facts_line(job)
        if info:
            rec.info = info
        if job.state.terminal and not rec.finished:
            rec.finished = int(time.time())
        meta = self._meta.get(job.id)
        if meta is not None:
            obj = rec.object
            if obj is not None:
                meta.object_uid, meta.object_name = obj.session_uid, obj.name
            meta.uv_map = rec.uv_map
            meta.material = rec.material.name if rec.material is not None else meta.material

    def restore(self, jobs: dict[str, Job]) -> list[str]:
        """After an undo or redo: make again the record of every job of this session that lost
        its record, and bring every other one up to date (the step may hold an older state);
        returns the ids of the records made again."""
        made = []
        for job_id, job in jobs.items():
            meta = self._meta.get(job_id)
            if meta is None:
                continue
            if self.get(job_id) is not None:
                self.sync(job)
                continue
            scene = bpy.data.scenes.get(meta.scene) or bpy.context.scene
            if scene is None:
                continue
            obj = object_by_uid(meta.object_uid)
            settings = settings_of(scene)
            rec = settings.jobs.add()
            rec.job_id, rec.provider, rec.object = job.id, job.provider, obj
            rec.object_name = obj.name if obj is not None else meta.object_name
            rec.prompt, rec.uv_map, rec.batch = job.request.prompt, meta.uv_map, meta.batch
            rec.created = meta.created
            rec.material = bpy.data.materials.get(meta.material) if meta.material else None
            self._at.clear()
            self.sync(job)
            made.append(job_id)
        return made


def shown_id(provider_id: str, remote_id: str) -> str:
    """What of a remote id the artist may see and a .blend may keep."""
    cls = provider_class(provider_id)
    return cls.shown_id(remote_id) if cls is not None and remote_id else remote_id


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
