"""One press of the button: a journaled job per valid object, and what to tell the artist.

The same `BatchRun` serves the operator (modal or blocking) and the command line; `retry`
starts a new job like an ended one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import bpy

from ..jobs.job import Job, State, new_job_id
from ..jobs.prompts import ObjectPrompt
from ..providers.base import Provider, TextureRequest
from ..providers.registry import label, provider_class
from . import addon
from .drive import run_until, tick
from .engine import engine
from .images import warm_up
from .preflight import (
    Ready,
    online_blocker,
    preflight,
    provider_config,
    too_large,
    valid_target,
)
from .prompts import ObjectPrompts, PromptError, resolve
from .props import settings_of
from .records import live_object
from .uvs import UVError, ensure_uvs, pick_uv_map, unwrap_estimate, uv_problem


@dataclass
class Batch:
    job_ids: list[str]
    skipped: list[str]  # one line per object that was not started


@dataclass
class Planned:
    """An object that would get a job, with the request it would be sent (no mesh yet)."""

    obj: bpy.types.Object
    prompts: ObjectPrompts
    request: TextureRequest


@dataclass
class Plan:
    ready: Ready | None  # None: nothing can start (`skipped` holds the one line why)
    jobs: list[Planned] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def count_valid(context: bpy.types.Context) -> int:
    return sum(1 for o in (context.selected_objects or []) if not valid_target(o))


def count_busy(context: bpy.types.Context) -> int:
    """Selected objects that already have a job under way (by identity, not by name)."""
    busy = engine().busy_uids()
    return sum(1 for o in (context.selected_objects or []) if o.session_uid in busy)


def unwrap_pause(context: bpy.types.Context) -> tuple[float, str]:
    """(seconds, what) Blender would pause to unwrap the selected objects the button would
    texture; "" when nothing needs unwrapping."""
    settings = context.scene.text_to_texture
    cls = provider_class(settings.provider)
    if cls is not None and cls.seamless_2d and settings.uv_policy != "ALWAYS_NEW":
        return 0.0, ""  # box-projected where there are no UVs: nothing is unwrapped
    busy = engine().busy_uids()
    targets = [o for o in (context.selected_objects or [])
               if not valid_target(o) and o.session_uid not in busy]
    seconds, work = unwrap_estimate(targets, settings.uv_policy)
    if not work:
        return 0.0, ""
    tris = sum(t for _, t in work)
    what = (f"'{work[0][0]}' ({tris:,} triangles)" if len(work) == 1
            else f"{len(work)} objects ({tris:,} triangles)")
    return seconds, what


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE).strip("._") or "object"
    return stem[:48]


def _request(job_id: str, obj: bpy.types.Object, settings: Any, cls: type[Provider],
             out_dir: str, prompts: ObjectPrompts | None = None) -> TextureRequest:
    """The request of one object's job: the panel's settings with the object's own prompts."""
    return TextureRequest(
        job_id=job_id,
        prompt=prompts.prompt if prompts else settings.prompt.strip(),
        negative_prompt=(prompts.negative_prompt if prompts
                         else settings.negative_prompt.strip()),
        seed=int(settings.seed),
        resolution=int(settings.resolution),
        enable_pbr=bool(settings.enable_pbr),
        mesh_format=cls.mesh_format,
        out_dir=out_dir,
        file_stem=f"{_safe_stem(obj.name)}_{job_id[:6]}",
    )


def _new_job(obj: bpy.types.Object, settings: Any, cls: type[Provider], out_dir: str,
             prompts: ObjectPrompts | None = None) -> Job:
    job_id = new_job_id()
    request = _request(job_id, obj, settings, cls, out_dir, prompts)
    return Job(
        id=job_id,
        provider=cls.id,
        object_name=obj.name,
        request=request,
        message="Waiting to start",
        blend_file=bpy.data.filepath,
        owner_pid=os.getpid(),
    )


def plan(scene: bpy.types.Scene, objects: Iterable[bpy.types.Object],
         prompts: Mapping[str, ObjectPrompt] | None = None, *, folder: bool = True) -> Plan:
    """Which objects would get a job, the request each would send and why the others would
    not: every check made before anything is sent, changing nothing (no UVs are made; with
    `folder` False not even the texture folder is made, for a price)."""
    settings = settings_of(scene)
    targets = list(objects)
    ready = preflight(settings, targets, folder=folder)
    if isinstance(ready, str):
        return Plan(None, [], [ready])
    cls = type(ready.provider)
    out = Plan(ready)
    taken = engine().busy_uids()
    for obj in targets:
        reason = valid_target(obj)
        if not reason and obj.session_uid in taken:
            reason = f"Skipped '{obj.name}': it is already being textured"
        reason = reason or too_large(obj, cls)
        if not reason and not (cls.seamless_2d and settings.uv_policy != "ALWAYS_NEW"):
            reason = uv_problem(obj, settings.uv_policy)
        if not reason:
            try:
                own = resolve(obj, settings, scene, prompts)
            except PromptError as exc:
                reason = str(exc)
        if not reason:
            request = _request("plan", obj, settings, cls, ready.out_dir, own)
            request.options = dict(ready.options)
            refused = ready.provider.check_request(request)
            if refused:  # e.g. a prompt too long once {name} is filled in
                reason = f"Skipped '{obj.name}': {refused}"
        if reason:
            out.skipped.append(reason)
            continue
        taken.add(obj.session_uid)
        out.jobs.append(Planned(obj, own, request))
    return out


def create_jobs(scene: bpy.types.Scene, objects: Iterable[bpy.types.Object],
                prompts: Mapping[str, ObjectPrompt] | None = None) -> Batch:
    """One QUEUED, journaled job per valid object; one line per object left out.

    `prompts` (object name -> its prompts, from a prompts file) win over the objects' own
    `t2t_prompt` properties, which win over the panel's prompts."""
    eng = engine()
    settings = settings_of(scene)
    planned = plan(scene, objects, prompts)
    if planned.ready is None:
        return Batch([], planned.skipped)
    ready = planned.ready
    warm_up(addon.user_dir("cache"))
    cls = type(ready.provider)
    batch_id = new_job_id()
    job_ids: list[str] = []
    skipped = list(planned.skipped)
    for item in planned.jobs:
        obj = item.obj
        try:
            if cls.seamless_2d and settings.uv_policy != "ALWAYS_NEW":
                # `plan` keeps mesh objects only; none: box projection, no unwrap
                uv_name = pick_uv_map(cast(bpy.types.Mesh, obj.data))
            else:
                uv_name = ensure_uvs(obj, settings.uv_policy)
        except UVError as exc:
            skipped.append(str(exc))
            continue
        job = _new_job(obj, settings, cls, ready.out_dir, item.prompts)
        job.request.options = dict(ready.options)
        eng.add(scene, job, cls(ready.provider.config), obj, uv_name, batch_id)
        rec = eng.record(job.id)
        if rec is not None and item.prompts.source == "panel":
            rec.prompt_template = item.prompts.template  # what Recall puts back in the panel
        job_ids.append(job.id)
    settings.active_job = len(settings.jobs) - 1
    return Batch(job_ids, skipped)


def retry(scene: bpy.types.Scene, job_id: str) -> str:
    """Start a new job like a failed or canceled one, for the same object; "" or why not."""
    eng = engine()
    old = eng.jobs.get(job_id) or eng.journal.load(job_id)
    rec = eng.record(job_id)
    if old is None or rec is None or live_object(rec) is None:
        return "The object of that job no longer exists"
    if not old.state.terminal:
        return "That job is still running"
    cls = provider_class(old.provider)
    blocker = online_blocker(old.provider)
    if cls is None or blocker:
        return blocker
    job = _new_job(rec.object, settings_of(scene), cls, old.request.out_dir)
    for key in ("prompt", "negative_prompt", "seed", "resolution", "enable_pbr", "options"):
        setattr(job.request, key, getattr(old.request, key))
    eng.add(scene, job, cls(provider_config(old.provider)), rec.object, rec.uv_map, rec.batch)
    return ""


# The levels of the lines a batch reports (a subset of Blender's report types).
ReportLevel = Literal["INFO", "WARNING", "ERROR"]


class BatchRun:
    """One press of the button: the jobs it made, its progress and what to tell the artist."""

    def __init__(self, scene: bpy.types.Scene, objects: Iterable[bpy.types.Object],
                 prompts: Mapping[str, ObjectPrompt] | None = None) -> None:
        self.batch = create_jobs(scene, list(objects), prompts)
        self.canceled_by_artist = False

    @property
    def job_ids(self) -> list[str]:
        return self.batch.job_ids

    def unfinished(self) -> bool:
        """True while any job of this batch is unfinished (a result kept for the artist to
        apply is finished for the batch)."""
        eng = engine()
        jobs = eng.jobs
        return any(i in jobs and not jobs[i].state.terminal and i not in eng.parked
                   for i in self.job_ids)

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

    def report_lines(self) -> list[tuple[ReportLevel, str]]:
        """(level, line) pairs: skipped objects, jobs that did not apply, then one summary line
        that names the failed objects and why (the first three, then "and N more"): in scripts
        and `blender -b` the summary is what an ERROR report raises."""
        skipped = self.batch.skipped
        if not self.job_ids:  # the summary says the reasons; each is said once
            each = 300 if len(skipped) == 1 else 100
            whole = {s for s in skipped[:3] if len(s) <= each}
            return [*(("WARNING", s) for s in skipped if s not in whole),
                    ("ERROR", "Nothing was textured" + _why(skipped, each=each))]
        lines: list[tuple[ReportLevel, str]] = [("WARNING", s) for s in skipped]
        jobs = engine().jobs
        ended = [jobs[i] for i in self.job_ids if i in jobs]
        states = [j.state for j in ended]
        canceled = states.count(State.CANCELED)
        done = states.count(State.APPLIED)
        failed = [f"'{j.object_name}': {j.message}" for j in ended if j.state is State.FAILED]
        kept = [f"'{j.object_name}': {j.message}" for j in ended if j.state is State.READY]
        if self.canceled_by_artist and (canceled or kept):
            # What the artist asked for is no error: one line, plus any real failures.
            lines += [("WARNING", line) for line in failed + kept]
            tail = f"; {done} textured" if done else ""
            if kept:
                tail += (f"; {len(kept)} kept to apply by hand ({label(ended[0].provider)} "
                         "would not stop them)")
            lines.append(("INFO", f"Canceled {canceled} job(s){tail}" + _why(failed)))
            return lines
        lines += [("WARNING", f"'{j.object_name}': {j.message}") for j in ended
                  if j.state is not State.APPLIED]
        lines += [("WARNING", str(j.extra["warning"])) for j in ended
                  if j.state is State.APPLIED and j.extra.get("warning")]
        who = label(ended[0].provider) if ended else ""
        summary = f"Textured {done} of {len(ended)} object(s) with {who}"
        if done == len(ended):
            lines.append(("INFO", summary))
        else:
            others = [f"'{j.object_name}': {j.message}" for j in ended
                      if j.state not in (State.APPLIED, State.FAILED)]
            lines.append(("ERROR" if not done else "WARNING", summary + _why(failed + others)))
        return lines


def _why(reasons: list[str], shown: int = 3, each: int = 100) -> str:
    """" — 'A': why; 'B': why; 'C': why; and 2 more" ("" when there is nothing to say). Each
    reason is cut to `each` characters so the line stays one readable line; the per-object
    lines before it say the whole of it."""
    if not reasons:
        return ""
    text = "; ".join(_short(r, each) for r in reasons[:shown])
    if len(reasons) > shown:
        text += f"; and {len(reasons) - shown} more"
    return f" — {text}"


def _short(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit - 1].rsplit(" ", 1)[0].rstrip(" ;,—-")
    return f"{cut}…"
