"""The main-thread side of the job system: its queues, the tick and its budget, and cancel.

`Engine.tick()` (driven by `blender/drive.py`: a timer in the interface, a loop in background
mode) is the only code that reads or writes Blender data for jobs. Workers in `jobs.runner`
never do; they post snapshots that `tick()` drains. Creating jobs lives in `batch.py`, applying
results in `apply.py`, the scene's records in `records.py`, picking jobs up after a restart in
`recovery.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import bpy

from ..formats.meshfile import MeshArrays
from ..jobs.job import Job, State
from ..jobs.journal import Journal
from ..jobs.runner import Runner
from ..providers.base import Provider
from ..providers.registry import label
from . import addon, apply
from .bake_gather import gather_steps
from .mesh_arrays import ExportError, evaluated_arrays
from .records import RecordIndex, live_object
from .redraw import redraw

log = logging.getLogger(__name__)

# Main-thread budget per tick for gathering meshes and apply steps. One of each always goes
# through; a further one only if its expected cost (what the last one of its kind took) still
# fits, so a tick never runs far past the budget.
TICK_BUDGET_S = 0.001
# How soon the next tick should come: slow while only waiting for the services, fast while there
# is main-thread work queued (results applied a step per tick land in tens of milliseconds
# instead of steps × the slow interval).
IDLE_TICK_S = 0.1
BUSY_TICK_S = 0.01

# A recovered job of a never-saved file: its maps are kept, the artist chooses where they go.
PARKED_MESSAGE = "Maps ready: select an object and press Apply to Active"


@dataclass
class TickResult:
    changed: bool = False
    active: int = 0  # jobs not yet terminal
    finished: list[str] = field(default_factory=list)  # job ids that ended this tick


class Engine:
    def __init__(self, journal_root: str | None = None) -> None:
        root = journal_root or str(addon.user_dir("journal"))
        self.journal = Journal(root)
        self.runner = Runner(self.journal)
        self.records = RecordIndex()
        self.jobs: dict[str, Job] = {}  # live jobs of this session, by id
        self.providers: dict[str, Provider] = {}  # job id -> its provider instance
        self.waiting: list[str] = []  # QUEUED job ids, oldest first, not yet handed to a worker
        self.to_apply: list[str] = []  # READY job ids, applied a few per tick
        self.parked: set[str] = set()  # READY jobs waiting for the artist to pick an object
        self.to_gather: list[str] = []  # BAKING job ids whose worker waits for their object
        self._gathered: set[str] = set()  # ... and those it was handed to (or told why not)
        self._gathering: tuple[str, Generator[None, None, Any]] | None = None
        self._cost: dict[str, float] = {}  # "export GLB" / "start" / "apply step" -> seconds
        self._ran_any = False  # this tick has started a job (or applied a result) already
        self._applying: dict[str, Iterator[None]] = {}  # job id -> its apply, part done

    # ---- jobs in, jobs out -------------------------------------------------------------------

    def add(self, scene: bpy.types.Scene, job: Job, provider: Provider,
            obj: bpy.types.Object | None, uv_name: str, batch_id: str) -> None:
        """Journal a new job (before anything is sent), record it on the scene, queue it."""
        self.journal.write(job, durable=False)
        self.jobs[job.id] = job
        self.providers[job.id] = provider
        self.waiting.append(job.id)
        self.records.add(scene, job, obj, uv_name, batch_id)

    def record(self, job_id: str):  # type: ignore[no-untyped-def]
        """The scene's record of a job, or None."""
        return self.records.get(job_id)

    def sync(self, job: Job) -> None:
        self.records.sync(job)

    def fail(self, job: Job, message: str) -> None:
        """End a job here on the main thread (its worker, if any, is done with it)."""
        if not job.state.terminal:
            job.move(State.FAILED, message)
            self.runner.write_later(job)  # no worker writes this job now: order is kept
        self.sync(job)

    # ---- the tick ----------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """One main-thread step: start what may start, take in worker news, apply results."""
        result = TickResult()
        deadline = time.perf_counter() + TICK_BUDGET_S
        self._ran_any = False
        self._start_waiting(deadline, result)
        for snap in self.runner.drain():
            self._take(snap, result)
        self._gather_targets(deadline)
        self._ran_any = False
        self._apply_ready(deadline, result)
        result.active = len(self.active_ids())
        if result.changed:
            redraw("VIEW_3D")
        return result

    def next_tick_in(self) -> float:
        """Seconds until the next tick is due."""
        if self.to_apply or self.to_gather or self._gathering:
            return BUSY_TICK_S
        for job_id in self.waiting:
            provider = self.providers.get(job_id)
            if provider is not None and self.runner.free_slots(provider) > 0:
                return BUSY_TICK_S
        return IDLE_TICK_S

    def _start_waiting(self, deadline: float, result: TickResult) -> None:
        for job_id in list(self.waiting):
            job = self.jobs[job_id]
            provider = self.providers[job_id]
            if job.state.terminal:
                self.waiting.remove(job_id)
                continue
            if self.runner.free_slots(provider) <= 0:
                continue
            kind = f"export {provider.mesh_format}" if provider.mesh_format else "start"
            if not self._fits(kind, deadline):
                break  # gathering meshes is main-thread work: spread it over ticks
            self.waiting.remove(job_id)
            result.changed = True
            began = time.perf_counter()
            mesh = None
            if provider.mesh_format:
                mesh = self._gather(job, provider)
                if mesh is None:
                    result.finished.append(job.id)
                    continue
            self.runner.start(job, provider, mesh)
            self._cost[kind] = time.perf_counter() - began

    def _fits(self, kind: str, deadline: float) -> bool:
        """May one more `kind` of work run in this tick? The first (start, apply) always may."""
        if not self._ran_any:
            self._ran_any = True
            return True
        return time.perf_counter() + self._cost.get(kind, 0.0) <= deadline

    def _gather(self, job: Job, provider: Provider) -> MeshArrays | None:
        """The object's evaluated mesh as arrays (its worker writes the file); None if failed."""
        rec = self.record(job.id)
        obj = live_object(rec)
        if obj is None:
            self.fail(job, f"'{job.object_name}' was deleted before it could be sent")
            return None
        ext = "glb" if provider.mesh_format == "GLB" else "obj"
        # The worker creates the folder: a mkdir here would hand the GIL to busy workers.
        job.request.mesh_path = str(addon.user_dir("cache", create=False) / f"{job.id}.{ext}")
        # What the export applies is in a mesh the provider hands back: never applied twice.
        exported = [m.name for m in obj.modifiers if m.show_viewport]
        if exported:
            job.extra["exported_modifiers"] = exported
        try:
            return evaluated_arrays(obj, rec.uv_map)
        except (ExportError, RuntimeError) as exc:
            self.fail(job, f"Could not export '{obj.name}': {exc}")
            return None

    def _take(self, snap: Job, result: TickResult) -> None:
        if snap.id not in self.jobs:
            return
        self.jobs[snap.id] = snap
        result.changed = True
        kept = snap.state is State.READY and bool(snap.extra.get("kept_unapplied"))
        if snap.state is State.READY and (kept or self._orphaned(snap)):
            # Nothing to apply it to and no Blender work to spread over ticks: parked in the
            # tick its maps arrive, so a READY orphan never reads as still to be applied.
            # (issue 12) Also a job the artist canceled that the service ran on (and charged):
            # its maps are kept in the job list, applied only when the artist presses Apply.
            snap.message = (f"{label(snap.provider)} finished the job you canceled; its maps "
                            "are kept — press Apply to use them") if kept else PARKED_MESSAGE
            self.parked.add(snap.id)
            self.sync(snap)
            self._finished(snap, result)
            return
        self.sync(snap)
        if snap.state is State.READY:
            self.to_apply.append(snap.id)
        elif snap.state is State.BAKING and snap.id not in self._gathered:
            self._gathered.add(snap.id)  # its worker waits for the object's arrays
            self.to_gather.append(snap.id)
        elif snap.state.terminal:
            self._finished(snap, result)

    def _orphaned(self, job: Job) -> bool:
        """Was this job's object in a file that was never saved (adopted by this session)?"""
        if not job.extra.get("orphan"):
            return False
        rec = self.record(job.id)
        return rec is None or live_object(rec) is None

    def _gather_targets(self, deadline: float) -> None:
        """Hand baking workers their objects as arrays: main-thread work, a step per tick."""
        while self.to_gather or self._gathering:
            if not self._fits("bake gather", deadline):
                break
            if self._gathering is None:
                job_id = self.to_gather.pop(0)
                job = self.jobs.get(job_id)
                if job is None or job.state.terminal:
                    continue
                self._gathering = (job_id, gather_steps(self, job))
            job_id, steps = self._gathering
            began = time.perf_counter()
            try:
                next(steps)
            except StopIteration as done:
                self._gathering = None
                target, reason = done.value
                self.runner.provide_target(job_id, target, reason)
            except Exception as exc:  # a bug here must not leave the worker waiting forever
                log.exception("gathering the object of job %s failed", job_id)
                self._gathering = None
                self.runner.provide_target(job_id, None, f"internal error: {exc}")
            self._cost["bake gather"] = time.perf_counter() - began

    def _apply_ready(self, deadline: float, result: TickResult) -> None:
        """Advance the applies a step at a time (each step well under a millisecond or two),
        as many as the budget allows; the first step of a tick always runs."""
        while self.to_apply:
            job_id = self.to_apply[0]
            job = self.jobs[job_id]
            steps = self._applying.get(job_id)
            if steps is None:
                if job.state is not State.READY:
                    self.to_apply.pop(0)
                    continue
                steps = self._applying[job_id] = apply.steps(self, job)
            kind = "apply step"
            if not self._fits(kind, deadline):
                break
            began = time.perf_counter()
            try:
                next(steps)
                done = False
            except StopIteration:
                done = True
            except Exception as exc:  # one broken result must not stop every later tick
                log.exception("applying job %s failed", job_id)
                self.fail(job, f"Could not apply the maps to '{job.object_name}' "
                               f"(internal error: {exc}); its maps are kept in "
                               f"{job.request.out_dir}")
                done = True
            self._cost[kind] = time.perf_counter() - began
            if done:
                self.to_apply.pop(0)
                del self._applying[job_id]
                result.changed = True
                self._finished(job, result)

    def _finished(self, job: Job, result: TickResult) -> None:
        self.providers.pop(job.id, None)
        result.finished.append(job.id)

    # ---- control -----------------------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.state.terminal:
            return False
        if job_id in self.waiting:
            self.waiting.remove(job_id)
            job.move(State.CANCELED, "Canceled")
            self.journal.write(job, durable=False)
            self.sync(job)
            return True
        return self.runner.cancel(job_id)

    def active_ids(self) -> list[str]:
        """Jobs still moving (parked ones wait for the artist, not for us)."""
        return [j.id for j in self.jobs.values()
                if not j.state.terminal and j.id not in self.parked]

    def busy_uids(self) -> set[int]:
        """The objects with a job under way, by identity (`session_uid`: a renamed object is
        still the same object)."""
        uids = {self.records.object_uid(i) for i in self.active_ids()}
        uids.discard(0)
        return uids

    def note_saved(self) -> None:
        """The file was saved: its jobs now belong to it (a restart resumes them from it)."""
        for job in self.jobs.values():
            if not job.state.terminal and job.blend_file != bpy.data.filepath:
                job.blend_file = bpy.data.filepath
                self.runner.set_blend_file(job.id, job.blend_file)  # its worker's copy too
                self.journal.write(job, durable=False)

    def unsaved_running(self) -> set[str]:
        """Jobs of an unsaved file still under way: if the file is closed, nobody else will
        ever resume them."""
        return {j.id for j in self.jobs.values()
                if not j.state.terminal and not j.blend_file}

    def detach(self) -> None:
        """Stop local workers without touching remote jobs; the journal keeps them for later."""
        self.runner.flush(2.0)  # what the main thread had to say reaches the journal first
        self.runner.detach()
        self.runner = Runner(self.journal)
        self.jobs.clear()
        self.providers.clear()
        self.waiting.clear()
        self.to_apply.clear()
        self.to_gather.clear()
        self._gathered.clear()
        self._gathering = None
        self._applying.clear()
        self.parked.clear()


_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine()
    return _engine


def reset_engine() -> None:
    """Detach workers and forget the engine (unregister, tests)."""
    global _engine
    if _engine is not None:
        _engine.detach()
    _engine = None
