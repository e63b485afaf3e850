"""Jobs are never lost: after a file is opened its unfinished jobs resume from the journal, and
jobs of an unsaved file whose Blender died are adopted by the next one."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import bpy

from ..jobs.job import State
from ..providers.registry import provider_class
from .preflight import provider_config

if TYPE_CHECKING:
    from .engine import Engine


def resume(eng: Engine) -> list[str]:
    """After a file is opened: pick up its unfinished jobs from the journal."""
    resumed = []
    for scene in bpy.data.scenes:
        for rec in scene.text_to_texture.jobs:
            if State(rec.state).terminal or rec.job_id in eng.jobs:
                continue
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
        resumed += adopt_orphans(eng, bpy.context.scene)
    return resumed


def adopt_orphans(eng: Engine, scene: bpy.types.Scene) -> list[str]:
    """Jobs of an unsaved file whose Blender died: finish them here and keep their maps; the
    artist applies them to an object of their choice (Apply to Active)."""
    adopted = []
    for job in eng.journal.orphans(os.getpid()):
        cls = provider_class(job.provider)
        if job.id in eng.jobs or cls is None:
            continue
        job.owner_pid = os.getpid()
        if job.state in (State.QUEUED, State.EXPORTING):  # never sent: nothing to recover
            job.move(State.CANCELED, "Blender stopped before this job was sent")
            eng.journal.write(job, durable=False)
            continue
        job.extra["orphan"] = True
        eng.journal.write(job, durable=False)
        eng.jobs[job.id] = job
        provider = cls(provider_config(job.provider))
        eng.providers[job.id] = provider
        rec = eng.records.add(scene, job, None, "", "recovered")
        rec.info = "Recovered from an unsaved Blender session"
        eng.runner.resume(job, provider)
        adopted.append(job.id)
    return adopted
