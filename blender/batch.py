"""One press of the button: a journaled job per valid object, and what to tell the artist.

The same `BatchRun` serves the operator (modal or blocking) and the command line; `retry`
starts a new job like an ended one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import bpy

from ..jobs.job import Job, State, new_job_id
from ..providers.base import Provider, TextureRequest
from ..providers.registry import label, provider_class
from . import addon
from .drive import run_until, tick
from .engine import engine
from .images import warm_up
from .preflight import online_blocker, preflight, provider_config, too_large, valid_target
from .uvs import UVError, ensure_uvs, pick_uv_map


@dataclass
class Batch:
    job_ids: list[str]
    skipped: list[str]  # one line per object that was not started


def count_valid(context: bpy.types.Context) -> int:
    return sum(1 for o in (context.selected_objects or []) if not valid_target(o))


def count_busy(context: bpy.types.Context) -> int:
    """Selected objects that already have a job under way."""
    busy = engine().busy_objects()
    return sum(1 for o in (context.selected_objects or []) if o.name in busy)


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE).strip("._") or "object"
    return stem[:48]


def _new_job(obj: bpy.types.Object, settings: Any, cls: type[Provider], out_dir: str) -> Job:
    job_id = new_job_id()
    request = TextureRequest(
        job_id=job_id,
        prompt=settings.prompt.strip(),
        negative_prompt=settings.negative_prompt.strip(),
        seed=int(settings.seed),
        resolution=int(settings.resolution),
        enable_pbr=bool(settings.enable_pbr),
        mesh_format=cls.mesh_format,
        out_dir=out_dir,
        file_stem=f"{_safe_stem(obj.name)}_{job_id[:6]}",
    )
    return Job(
        id=job_id,
        provider=cls.id,
        object_name=obj.name,
        request=request,
        message="Waiting to start",
        blend_file=bpy.data.filepath,
        owner_pid=os.getpid(),
    )


def create_jobs(scene: bpy.types.Scene, objects: Iterable[bpy.types.Object]) -> Batch:
    """One QUEUED, journaled job per valid object; one line per object left out."""
    eng = engine()
    settings = scene.text_to_texture
    targets = list(objects)
    ready = preflight(settings, targets)
    if isinstance(ready, str):
        return Batch([], [ready])
    warm_up(addon.user_dir("cache"))
    cls = type(ready.provider)
    batch_id = new_job_id()
    job_ids: list[str] = []
    skipped: list[str] = []
    taken = eng.busy_objects()
    for obj in targets:
        reason = valid_target(obj)
        if not reason and obj.name in taken:
            reason = f"Skipped '{obj.name}': it is already being textured"
        reason = reason or too_large(obj, cls)
        uv_name = ""
        if not reason:
            try:
                if cls.seamless_2d and settings.uv_policy != "ALWAYS_NEW":
                    uv_name = pick_uv_map(obj.data)  # none: box projection, no unwrap
                else:
                    uv_name = ensure_uvs(obj, settings.uv_policy)
            except UVError as exc:
                reason = str(exc)
        if reason:
            skipped.append(reason)
            continue
        taken.add(obj.name)
        job = _new_job(obj, settings, cls, ready.out_dir)
        job.request.options = dict(ready.options)
        eng.add(scene, job, cls(ready.provider.config), obj, uv_name, batch_id)
        job_ids.append(job.id)
    settings.active_job = len(settings.jobs) - 1
    return Batch(job_ids, skipped)


def retry(scene: bpy.types.Scene, job_id: str) -> str:
    """Start a new job like a failed or canceled one, for the same object; "" or why not."""
    eng = engine()
    old = eng.jobs.get(job_id) or eng.journal.load(job_id)
    rec = eng.record(job_id)
    if old is None or rec is None or rec.object is None:
        return "The object of that job no longer exists"
    if not old.state.terminal:
        return "That job is still running"
    cls = provider_class(old.provider)
    blocker = online_blocker(old.provider)
    if cls is None or blocker:
        return blocker
    job = _new_job(rec.object, scene.text_to_texture, cls, old.request.out_dir)
    for key in ("prompt", "negative_prompt", "seed", "resolution", "enable_pbr", "options"):
        setattr(job.request, key, getattr(old.request, key))
    eng.add(scene, job, cls(provider_config(old.provider)), rec.object, rec.uv_map, rec.batch)
    return ""


class BatchRun:
    """One press of the button: the jobs it made, its progress and what to tell the artist."""

    def __init__(self, scene: bpy.types.Scene, objects: Iterable[bpy.types.Object]) -> None:
        self.batch = create_jobs(scene, list(objects))
        self.canceled_by_artist = False

    @property
    def job_ids(self) -> list[str]:
        return self.batch.job_ids

    def unfinished(self) -> bool:
        """True while any job of this batch is unfinished."""
        jobs = engine().jobs
        return any(i in jobs and not jobs[i].state.terminal for i in self.job_ids)

    def tick(self) -> bool:
        """One main-thread step (tests, which have no timers); True while unfinished."""
        tick()
        return self.unfinished()

    def run_to_end(self, timeout: float | None = None) -> None:
        run_until(lambda: not self.unfinished(), timeout=timeout)

    def cancel(self) -> None:
        self.canceled_by_artist = True
        for job_id in self.job_ids:
            engine().cancel(job_id)

    def report_lines(self) -> list[tuple[str, str]]:
        """(level, line) pairs: skipped objects, failed jobs, then one summary line."""
        lines = [("WARNING", s) for s in self.batch.skipped]
        if not self.job_ids:
            lines.append(("ERROR", "Nothing was textured"))
            return lines
        jobs = engine().jobs
        ended = [jobs[i] for i in self.job_ids if i in jobs]
        states = [j.state for j in ended]
        canceled = states.count(State.CANCELED)
        done = states.count(State.APPLIED)
        if self.canceled_by_artist and canceled:
            # What the artist asked for is no error: one line, plus any real failures.
            lines += [("WARNING", f"'{j.object_name}': {j.message}") for j in ended
                      if j.state is State.FAILED]
            tail = f"; {done} textured" if done else ""
            lines.append(("INFO", f"Canceled {canceled} job(s){tail}"))
            return lines
        lines += [("WARNING", f"'{j.object_name}': {j.message}") for j in ended
                  if j.state is not State.APPLIED]
        lines += [("WARNING", str(j.extra["warning"])) for j in ended
                  if j.state is State.APPLIED and j.extra.get("warning")]
        who = label(ended[0].provider) if ended else ""
        summary = f"Textured {done} of {len(ended)} object(s) with {who}"
        lines.append(("INFO" if done else "ERROR", summary))
        return lines
