"""The main-thread side of the job system: create jobs, pump events, apply results.

Only this module's `Engine.tick()` (called by the modal operator's timer, by a `bpy.app.timers`
pump for resumed jobs, or in a loop by the blocking path) reads or writes Blender data for jobs.
Workers in `jobs.runner` never do; they post snapshots that `tick()` drains.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..jobs.job import Job, State, new_job_id
from ..jobs.journal import Journal
from ..jobs.runner import Runner
from ..providers import meshfile
from ..providers.base import (
    BASE_COLOR,
    RESULT_MESH,
    UV_MESH,
    VARIANT_SEP,
    Provider,
    TextureRequest,
)
from ..providers.registry import LABELS, provider_class, resolve_config, unavailable_reason
from . import addon
from .images import load_map, warm_up
from .material import (
    MATERIAL_ROLES,
    Wiring,
    assign_material,
    finish,
    new_material_steps,
    set_map,
    tiling_scale,
    uses,
)
from .mesh_arrays import ExportError, MeshArrays, evaluated_arrays
from .options import OptionsError, provider_options
from .result_mesh import PROVIDER_UV_NAMES, ResultMeshError, swap_mesh, transfer_uvs
from .uvs import UVError, ensure_uvs, pick_uv_map

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


@dataclass
class Batch:
    job_ids: list[str]
    skipped: list[str]  # one line per object that was not started


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE).strip("._") or "object"
    return stem[:48]


def online_blocker(provider_id: str) -> str:
    """One line saying why this provider cannot be used right now, or ""."""
    reason = unavailable_reason(provider_id)
    if reason:
        return reason
    cls = provider_class(provider_id)
    if cls is not None and not cls.offline and not bpy.app.online_access:
        return (
            f"{LABELS[provider_id]} needs online access: turn on Preferences > System > "
            "Network > Allow Online Access (the offline provider works without it)"
        )
    return ""


def valid_target(obj: bpy.types.Object) -> str:
    """"" when the object can be textured, else the one-line reason it is skipped."""
    if obj.type != "MESH":
        return f"Skipped '{obj.name}': not a mesh ({obj.type.lower()})"
    if len(obj.data.polygons) == 0:
        return f"Skipped '{obj.name}': the mesh has no faces"
    return ""


def variant_maps(maps: dict[str, str]) -> dict[int, dict[str, str]]:
    """Split "role@n" keys into variants: {0: {role: path}, 1: {...}, …}."""
    groups: dict[int, dict[str, str]] = {}
    for key, path in maps.items():
        role, _, number = key.partition(VARIANT_SEP)
        groups.setdefault(int(number) if number.isdigit() else 0, {})[role] = path
    return groups


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
    return f"{LABELS.get(job.provider, job.provider)} " + ", ".join(facts) if facts else ""


def triangle_count(obj: bpy.types.Object) -> int:
    """Triangles of the evaluated mesh (modifiers applied), without building a new mesh."""
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    totals = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    return int((totals - 2).sum())


def writable_dir(path: Path) -> str:
    """"" when maps can be written into `path` (created if missing), else one line why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".t2t-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return (f"Cannot save textures in {path}: {reason} — choose another texture folder in "
                "Preferences > Add-ons > Text to Texture, or save the .blend elsewhere")
    return ""


def provider_config(provider_id: str) -> Any:
    p = addon.prefs()
    saved = p.saved_config(provider_id) if p is not None else {}
    return resolve_config(provider_id, saved)


class Engine:
    def __init__(self, journal_root: str | None = None) -> None:
        root = journal_root or str(addon.user_dir("journal"))
        self.journal = Journal(root)
        self.runner = Runner(self.journal)
        self.jobs: dict[str, Job] = {}  # live jobs of this session, by id
        self.providers: dict[str, Provider] = {}  # job id -> its provider instance
        self.waiting: list[str] = []  # QUEUED job ids, oldest first, not yet handed to a worker
        self.to_apply: list[str] = []  # READY job ids, applied a few per tick
        self.parked: set[str] = set()  # READY jobs waiting for the artist to pick an object
        self.modal_running = 0
        self._record_at: dict[str, tuple[str, int]] = {}
        self._cost: dict[str, float] = {}  # "export GLB" / "start" / "apply step" -> seconds
        self._ran_any = False  # this tick has started a job (or applied a result) already
        self._applying: dict[str, Iterator[None]] = {}  # job id -> its apply, part done

    # ---- creating jobs -----------------------------------------------------------------------

    def create_jobs(
        self, scene: bpy.types.Scene, objects: Iterable[bpy.types.Object]
    ) -> Batch:
        """One QUEUED, journaled job per valid object; one line per object left out."""
        settings = scene.text_to_texture
        targets = list(objects)
        ready = self._batch_setup(settings, targets)
        if isinstance(ready, str):
            return Batch([], [ready])
        provider, options, out_dir = ready
        warm_up(addon.user_dir("cache"))
        cls = type(provider)
        batch_id = new_job_id()
        job_ids: list[str] = []
        skipped: list[str] = []
        taken = {j.object_name for j in self.jobs.values() if not j.state.terminal}
        for obj in targets:
            reason = self._skip_reason(obj, cls, taken)
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
            job = self._new_job(obj, settings, cls, out_dir)
            job.request.options = dict(options)
            self._add(scene, job, cls(provider.config), obj, uv_name, batch_id)
            job_ids.append(job.id)
        settings.active_job = len(settings.jobs) - 1
        return Batch(job_ids, skipped)

    def _batch_setup(
        self, settings: Any, targets: list[bpy.types.Object]
    ) -> tuple[Provider, dict[str, Any], str] | str:
        """(provider, options, texture folder) for a batch, or the one line why none can start."""
        pid = settings.provider
        cls = provider_class(pid)
        blocker = online_blocker(pid)
        if cls is None or blocker:
            return blocker or f"Unknown provider {pid}"
        provider = cls(provider_config(pid))
        missing = provider.check_ready()
        if missing:
            return missing
        try:
            options = provider_options(settings, pid)
        except OptionsError as exc:
            return str(exc)
        by_url = options.get("model_url") or options.get("mesh_url")
        if by_url and sum(1 for o in targets if not valid_target(o)) > 1:
            return ("A mesh URL stands for one object: select just one, or clear the Mesh URL "
                    "to upload each object")
        out_path = addon.texture_dir()
        problem = writable_dir(out_path) or provider.check_request(
            TextureRequest(job_id="check", prompt=settings.prompt.strip(),
                           negative_prompt=settings.negative_prompt.strip(), options=options)
        )
        return problem or (provider, options, str(out_path))

    @staticmethod
    def _skip_reason(obj: bpy.types.Object, cls: type[Provider], taken: set[str]) -> str:
        """"" when `obj` can get a job, else the one line saying why it is left out."""
        reason = valid_target(obj)
        if reason:
            return reason
        if obj.name in taken:
            return f"Skipped '{obj.name}': it is already being textured"
        if cls.max_triangles and cls.mesh_format:
            tris = triangle_count(obj)
            if tris > cls.max_triangles:
                return (f"Skipped '{obj.name}': {tris:,} triangles is more than {cls.label} "
                        f"takes ({cls.max_triangles:,}); decimate it first")
        return ""

    def _add(
        self,
        scene: bpy.types.Scene,
        job: Job,
        provider: Provider,
        obj: bpy.types.Object,
        uv_name: str,
        batch_id: str,
    ) -> None:
        """Journal a new job (before anything is sent), record it on the scene, queue it."""
        self.journal.write(job, durable=False)
        self.jobs[job.id] = job
        self.providers[job.id] = provider
        self.waiting.append(job.id)
        settings = scene.text_to_texture
        rec = settings.jobs.add()
        rec.job_id = job.id
        rec.provider = job.provider
        rec.object = obj
        rec.object_name = job.object_name
        rec.prompt = job.request.prompt
        rec.state = job.state.value
        rec.message = job.message
        rec.uv_map = uv_name
        rec.batch = batch_id
        rec.created = int(job.created)
        settings.active_job = len(settings.jobs) - 1
        self._record_at[job.id] = (scene.name, len(settings.jobs) - 1)

    def _new_job(
        self, obj: bpy.types.Object, settings: Any, cls: type[Provider], out_dir: str
    ) -> Job:
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

    # ---- the pump ----------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """One main-thread step: start what may start, take in worker news, apply results."""
        result = TickResult()
        deadline = time.perf_counter() + TICK_BUDGET_S
        self._ran_any = False
        self._start_waiting(deadline, result)
        for snap in self.runner.drain():
            self._take(snap, result)
        self._ran_any = False
        self._apply_ready(deadline, result)
        result.active = len(self.active_ids())
        if result.changed:
            _redraw()
        return result

    def next_tick_in(self) -> float:
        """Seconds until the next tick is due (the modal operator's and the pump's timers)."""
        if self.to_apply:
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
        if time.perf_counter() + self._cost.get(kind, 0.0) > deadline:
            return False
        return True

    def _gather(self, job: Job, provider: Provider) -> MeshArrays | None:
        """The object's evaluated mesh as arrays (its worker writes the file); None if failed."""
        rec = self.record(job.id)
        obj = rec.object if rec is not None else None
        if obj is None:
            self._fail(job, f"'{job.object_name}' was deleted before it could be sent")
            return None
        ext = "glb" if provider.mesh_format == "GLB" else "obj"
        # The worker creates the folder: a mkdir here would hand the GIL to busy workers.
        job.request.mesh_path = str(addon.user_dir("cache", create=False) / f"{job.id}.{ext}")
        try:
            return evaluated_arrays(obj, rec.uv_map)
        except (ExportError, RuntimeError) as exc:
            self._fail(job, f"Could not export '{obj.name}': {exc}")
            return None

    def _take(self, snap: Job, result: TickResult) -> None:
        if snap.id not in self.jobs:
            return
        self.jobs[snap.id] = snap
        result.changed = True
        if snap.state is State.READY and self._orphaned(snap):
            # Nothing to apply it to and no Blender work to spread over ticks: parked in the
            # tick its maps arrive, so a READY orphan never reads as still to be applied.
            snap.message = PARKED_MESSAGE
            self.parked.add(snap.id)
            self._sync_record(snap)
            self._finished(snap, result)
            return
        self._sync_record(snap)
        if snap.state is State.READY:
            self.to_apply.append(snap.id)
        elif snap.state.terminal:
            self._finished(snap, result)

    def _orphaned(self, job: Job) -> bool:
        """Was this job's object in a file that was never saved (adopted by this session)?"""
        if not job.extra.get("orphan"):
            return False
        rec = self.record(job.id)
        return rec is None or rec.object is None

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
                steps = self._applying[job_id] = self._apply_steps(job)
            kind = "apply step"
            if not self._fits(kind, deadline):
                break
            began = time.perf_counter()
            try:
                next(steps)
                done = False
            except StopIteration:
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

    def _apply_steps(self, job: Job) -> Iterator[None]:
        """Apply a READY job, a small step per tick; it ends APPLIED or FAILED."""
        problem = yield from self._apply_maps_steps(job)
        if problem:
            self._fail(job, problem)
            return
        job.move(State.APPLIED, f"Applied to '{job.object_name}'", 1.0)
        self.runner.write_later(job)
        self._sync_record(job)

    def _target(self, job: Job, uv_name: str | None = None) -> tuple[Any, Any, str]:
        """(record, object, "") of a job, or (…, the one line why its maps cannot go there).
        Looked up afresh after every step: an undo between ticks invalidates references."""
        rec = self.record(job.id)
        obj = rec.object if rec is not None else None
        where = job.request.out_dir
        if rec is None or obj is None or obj.name not in bpy.data.objects:
            return rec, None, f"'{job.object_name}' was deleted; its maps are kept in {where}"
        uv_name = rec.uv_map if uv_name is None else uv_name
        if obj.type != "MESH" or (uv_name and uv_name not in obj.data.uv_layers):
            return rec, None, f"'{obj.name}' lost UV map '{uv_name}'; its maps are kept in {where}"
        return rec, obj, ""

    def _apply_maps_steps(self, job: Job) -> Generator[None, None, str]:
        """Build and assign the material in steps; "" on success, else the one line why not."""
        rec, obj, problem = self._target(job)
        if problem:
            return problem
        label = LABELS.get(job.provider, job.provider)
        uv_name = rec.uv_map
        try:
            if UV_MESH in job.maps:
                uv_name = transfer_uvs(obj, self._result_mesh(job, UV_MESH),
                                       PROVIDER_UV_NAMES.get(job.provider, "T2T_UV"))
            elif RESULT_MESH in job.maps and rec.state != "applied":  # not again on re-apply
                uv_name = swap_mesh(obj, self._result_mesh(job, RESULT_MESH), job.provider, label)
        except (ResultMeshError, meshfile.MeshFileError, OSError, RuntimeError) as exc:
            return f"Could not bring {label}'s mesh or UVs onto '{obj.name}': {exc}"
        rec.uv_map = uv_name
        if UV_MESH in job.maps or RESULT_MESH in job.maps:
            yield
        p = addon.prefs()
        pack = bool(p.pack_images) if p is not None else False
        groups = variant_maps(job.maps)
        cls = provider_class(job.provider)
        seamless = bool(cls and cls.seamless_2d)
        tile = float(job.request.options.get("tile_size", 1.0))
        materials: list[str] = []
        for n, maps in sorted(groups.items()):
            roles = {r: path for r, path in maps.items() if r in MATERIAL_ROLES}
            if BASE_COLOR not in roles:
                return f"Could not apply the maps to '{job.object_name}': no base color map"
            rec, obj, problem = self._target(job, uv_name)
            if problem:
                return problem
            wiring = Wiring(uv_name=uv_name,
                            tiling=tiling_scale(obj, uv_name, tile) if seamless else None,
                            bump_height=seamless)
            name = f"T2T {obj.name}" if len(groups) == 1 else f"T2T {obj.name} v{n + 1}"
            try:
                mat_name = yield from new_material_steps(name, list(roles), wiring)
            except RuntimeError as exc:
                return f"Could not apply the maps to '{job.object_name}': {exc}"
            materials.append(mat_name)
            for role, path in roles.items():  # one image a step: each costs ~1 ms in all
                mat = bpy.data.materials.get(mat_name)
                if mat is None:
                    return f"The new material of '{job.object_name}' was removed while it was built"
                if not uses(mat, role):
                    continue
                try:
                    set_map(mat, role, load_map(path, role, pack))
                except (RuntimeError, OSError) as exc:
                    return f"Could not apply the maps to '{job.object_name}': {exc}"
                yield
        rec, obj, problem = self._target(job, uv_name)
        if problem:
            return problem
        found = [bpy.data.materials.get(m) for m in materials]
        if any(m is None for m in found):
            return f"The new material of '{obj.name}' was removed while it was applied"
        for n, mat in enumerate(found):
            mat.use_fake_user = n > 0  # type: ignore[union-attr]  # variants not shown stay saved
        assign_material(obj, found[0])  # type: ignore[arg-type]
        rec.material = found[0]
        rec.variants.clear()
        if len(found) > 1:
            for mat in found:
                rec.variants.add().material = mat
        job.object_name = obj.name
        return ""

    def _result_mesh(self, job: Job, role: str) -> MeshArrays:
        return self.runner.take_mesh(job.id, role) or meshfile.load_prepared(job.maps[role])

    def _apply_maps(self, job: Job) -> str:
        """The whole apply at once (re-apply, Apply to Active: the artist pressed a button)."""
        return finish(self._apply_maps_steps(job))

    def use_variant(self, job_id: str, index: int) -> str:
        """Show variant `index` of a job on its object; "" or why not."""
        rec = self.record(job_id)
        if rec is None or rec.object is None:
            return "The object of that job no longer exists"
        if not 0 <= index < len(rec.variants) or rec.variants[index].material is None:
            return "That variant no longer exists"
        mat = rec.variants[index].material
        for variant in rec.variants:
            if variant.material is not None:
                variant.material.use_fake_user = True  # whichever is not shown stays saved
        assign_material(rec.object, mat)
        rec.material = mat
        return ""

    def reapply(self, job_id: str) -> str:
        """Build a fresh material from a finished job's maps; "" or the reason it cannot."""
        job = self.jobs.get(job_id) or self.journal.load(job_id)
        if job is None or job.state not in (State.READY, State.APPLIED):
            return "Only a job whose maps are ready can be re-applied"
        missing = [p for p in job.maps.values() if not Path(p).is_file()]
        if missing:
            return f"The maps of this job are gone from {job.request.out_dir}"
        problem = self._apply_maps(job)
        if problem:
            return problem
        if job.state is State.READY:
            job.move(State.APPLIED, f"Applied to '{job.object_name}'", 1.0)
        self.jobs[job.id] = job
        self.journal.write(job, durable=False)
        self._sync_record(job)
        return ""

    def retry(self, scene: bpy.types.Scene, job_id: str) -> str:
        """Start a new job like a failed or canceled one, for the same object; "" or why not."""
        old = self.jobs.get(job_id) or self.journal.load(job_id)
        rec = self.record(job_id)
        if old is None or rec is None or rec.object is None:
            return "The object of that job no longer exists"
        if not old.state.terminal:
            return "That job is still running"
        cls = provider_class(old.provider)
        blocker = online_blocker(old.provider)
        if cls is None or blocker:
            return blocker or f"{old.provider} is not available in this version"
        job = self._new_job(rec.object, scene.text_to_texture, cls, old.request.out_dir)
        for key in ("prompt", "negative_prompt", "seed", "resolution", "enable_pbr", "options"):
            setattr(job.request, key, getattr(old.request, key))
        self._add(scene, job, cls(provider_config(old.provider)), rec.object, rec.uv_map, rec.batch)
        return ""

    def _fail(self, job: Job, message: str) -> None:
        if not job.state.terminal:
            job.move(State.FAILED, message)
            self.runner.write_later(job)  # no worker writes this job now: order is kept
        self._sync_record(job)

    # ---- records -----------------------------------------------------------------------------

    def record(self, job_id: str) -> Any:
        """The scene's record of a job (cached by position; records can be removed or reordered)."""
        hit = self._record_at.get(job_id)
        if hit is not None:
            scene = bpy.data.scenes.get(hit[0])
            if scene is not None:
                jobs = scene.text_to_texture.jobs
                if hit[1] < len(jobs) and jobs[hit[1]].job_id == job_id:
                    return jobs[hit[1]]
        self._record_at.clear()
        found = None
        for scene in bpy.data.scenes:
            for i, rec in enumerate(scene.text_to_texture.jobs):
                self._record_at[rec.job_id] = (scene.name, i)
                if rec.job_id == job_id:
                    found = rec
        return found

    def _sync_record(self, job: Job) -> None:
        rec = self.record(job.id)
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

    # ---- control -----------------------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.state.terminal:
            return False
        if job_id in self.waiting:
            self.waiting.remove(job_id)
            job.move(State.CANCELED, "Canceled")
            self.journal.write(job, durable=False)
            self._sync_record(job)
            return True
        return self.runner.cancel(job_id)

    def active_ids(self) -> list[str]:
        """Jobs still moving (parked ones wait for the artist, not for us)."""
        return [j.id for j in self.jobs.values()
                if not j.state.terminal and j.id not in self.parked]

    def note_saved(self) -> None:
        """The file was saved: its jobs now belong to it (a restart resumes them from it)."""
        for job in self.jobs.values():
            if not job.state.terminal and job.blend_file != bpy.data.filepath:
                job.blend_file = bpy.data.filepath
                self.runner.set_blend_file(job.id, job.blend_file)  # its worker's copy too
                self.journal.write(job, durable=False)

    def apply_to(self, job_id: str, obj: bpy.types.Object, uv_policy: str) -> str:
        """Apply a parked (recovered) job's maps to `obj`; "" or why not."""
        rec = self.record(job_id)
        job = self.jobs.get(job_id)
        if rec is None or job is None or job.state is not State.READY:
            return "Only a job whose maps are ready can be applied"
        reason = valid_target(obj)
        if reason:
            return reason
        try:
            rec.uv_map = ensure_uvs(obj, uv_policy)
        except UVError as exc:
            return str(exc)
        rec.object = obj
        job.object_name = obj.name
        rec.object_name = obj.name
        self.parked.discard(job_id)
        return self.reapply(job_id)

    def run_blocking(self, job_ids: Iterable[str], timeout: float | None = None) -> None:
        """The background-mode path: tick until these jobs end (or `timeout` passes)."""
        ids = list(job_ids)
        end = None if timeout is None else time.monotonic() + timeout
        while any(not self.jobs[i].state.terminal for i in ids if i in self.jobs):
            self.tick()
            if end is not None and time.monotonic() > end:
                break
            time.sleep(min(0.02, self.next_tick_in()))
        self.tick()
        self.runner.flush()

    def resume(self) -> list[str]:
        """After a file is opened: pick up its unfinished jobs from the journal."""
        resumed = []
        for scene in bpy.data.scenes:
            for rec in scene.text_to_texture.jobs:
                if rec.state in ("applied", "failed", "canceled") or rec.job_id in self.jobs:
                    continue
                job = self.journal.load(rec.job_id)
                if job is None:
                    rec.state = "failed"
                    rec.message = "This job's journal entry is missing; it cannot be resumed"
                    continue
                cls = provider_class(job.provider)
                self.jobs[job.id] = job
                if cls is None:
                    self._fail(job, f"{job.provider} is not available in this version")
                    continue
                provider = cls(provider_config(job.provider))
                self.providers[job.id] = provider
                resumed.append(job.id)
                if job.state in (State.QUEUED, State.EXPORTING):
                    job.state = State.QUEUED  # never sent: start over from the export
                    self.waiting.append(job.id)
                elif job.state.terminal:
                    self._sync_record(job)
                else:
                    self.runner.resume(job, provider)
        if bpy.context.scene is not None:
            resumed += self._adopt_orphans(bpy.context.scene)
        return resumed

    def _adopt_orphans(self, scene: bpy.types.Scene) -> list[str]:
        """Jobs of an unsaved file whose Blender died: finish them here and keep their maps;
        the artist applies them to an object of their choice (Apply to Active)."""
        adopted = []
        for job in self.journal.orphans(os.getpid()):
            cls = provider_class(job.provider)
            if job.id in self.jobs or cls is None:
                continue
            job.owner_pid = os.getpid()
            if job.state in (State.QUEUED, State.EXPORTING):  # never sent: nothing to recover
                job.move(State.CANCELED, "Blender stopped before this job was sent")
                self.journal.write(job, durable=False)
                continue
            job.extra["orphan"] = True
            self.journal.write(job, durable=False)
            rec = scene.text_to_texture.jobs.add()
            rec.job_id, rec.provider, rec.prompt = job.id, job.provider, job.request.prompt
            rec.object_name = job.object_name
            rec.created = int(job.created)
            rec.batch = "recovered"
            self.jobs[job.id] = job
            provider = cls(provider_config(job.provider))
            self.providers[job.id] = provider
            self._sync_record(job)
            rec.info = "Recovered from an unsaved Blender session"
            self.runner.resume(job, provider)
            adopted.append(job.id)
        return adopted

    def detach(self) -> None:
        """Stop local workers without touching remote jobs; the journal keeps them for later."""
        self.runner.flush(2.0)  # what the main thread had to say reaches the journal first
        self.runner.kill()
        self.runner = Runner(self.journal)
        self.jobs.clear()
        self.providers.clear()
        self.waiting.clear()
        self.to_apply.clear()
        self._applying.clear()
        self.parked.clear()

    def summary(self, job_ids: Iterable[str]) -> tuple[str, list[str]]:
        """One line for the whole batch, plus one line per job that did not end applied."""
        ids = [i for i in job_ids if i in self.jobs]
        done = [i for i in ids if self.jobs[i].state is State.APPLIED]
        problems = [
            f"'{self.jobs[i].object_name}': {self.jobs[i].message}"
            for i in ids
            if self.jobs[i].state is not State.APPLIED
        ]
        label = LABELS.get(self.jobs[ids[0]].provider, "") if ids else ""
        return f"Textured {len(done)} of {len(ids)} object(s) with {label}", problems


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


def _redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
