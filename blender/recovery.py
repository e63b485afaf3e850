"""Jobs are never lost: after a file is opened its unfinished jobs resume from the journal, and
jobs of an unsaved file are adopted when nobody else will ever resume them: when its Blender
died (by the next Blender), or when the artist closed it (File > New, opening another file) while
they ran (by this Blender, at once)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import bpy

from ..jobs.job import State
from ..providers.registry import provider_class
from .preflight import provider_config
from .props import settings_of

if TYPE_CHECKING:
    from .engine import Engine


def resume(eng: Engine, closed: set[str] | None = None) -> list[str]:
    """After a file is opened: pick up its unfinished jobs from the journal, then adopt the
    orphans (`closed`: jobs of the unsaved file just closed in this Blender)."""
    resumed = []
    for scene in bpy.data.scenes:
        for rec in settings_of(scene).jobs:
            if State(rec.state).terminal or rec.job_id in eng.jobs:
                continue
            eng.records.remember(scene, rec)
            job = eng.journal.load(rec.job_id)
            if job is None:
                rec.state = "failed"
                rec.message = "This job's journal entry is missing; it cannot be resumed"
                continue
            cls = provider_class(job.provider)
            eng.jobs[job.id] = job
            if cls is None:
                eng.fail(job, f"{job.provider} is not available in this version")
                continue
            provider = cls(provider_config(job.provider))
            eng.providers[job.id] = provider
            resumed.append(job.id)
            if job.state in (State.QUEUED, State.EXPORTING):
                job.state = State.QUEUED  # never sent: start over from the export
                eng.waiting.append(job.id)
            elif job.state.terminal:
                eng.sync(job)
            else:
                eng.runner.resume(job, provider)
    if bpy.context.scene is not None:
        resumed += adopt_orphans(eng, bpy.context.scene, closed)
    return resumed


def adopt_orphans(eng: Engine, scene: bpy.types.Scene,
                  closed: set[str] | None = None) -> list[str]:
    """Jobs of an unsaved file nobody will resume (its Blender died, or it was closed here):
    finish them here and keep their maps; the artist applies them to an object of their choice
    (Apply to Active)."""
    adopted = []
    orphans = eng.journal.orphans(os.getpid())
    if closed:
        known = {j.id for j in orphans}
        orphans += [j for j in eng.journal.unfinished() if j.id in closed and j.id not in known]
    for job in orphans:
        cls = provider_class(job.provider)
        if job.id in eng.jobs or cls is None:
            continue
        job.owner_pid = os.getpid()
        if job.state in (State.QUEUED, State.EXPORTING):  # never sent: nothing to recover
            job.move(State.CANCELED, "The file was closed before this job was sent"
                     if closed and job.id in closed else "Blender stopped before this job was sent")
            eng.journal.write(job, durable=False)
            continue
        job.extra["orphan"] = True
        eng.journal.write(job, durable=False)
        eng.jobs[job.id] = job
        provider = cls(provider_config(job.provider))
        eng.providers[job.id] = provider
        rec = eng.records.add(scene, job, None, "", "recovered")
        rec.info = ("Recovered from a file closed without saving" if closed and job.id in closed
                    else "Recovered from an unsaved Blender session")
        eng.runner.resume(job, provider)
        adopted.append(job.id)
    return adopted
