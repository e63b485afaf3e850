"""Put a finished job's maps on its object: a small step per tick, or at once when the artist
asks (re-apply, a variant, Apply to Active).

Between two steps the artist may undo or delete things, which invalidates every Python
reference to Blender data, so every step looks its record, object and material up again by
name and ends with one clear line when they are gone.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy

from ..formats import meshfile
from ..formats.meshfile import MeshArrays
from ..formats.roles import BASE_COLOR, VARIANT_SEP
from ..jobs.bake_step import mesh_role
from ..jobs.job import Job, State
from ..providers.registry import label, provider_class
from . import addon, assets
from .images import load_map
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
from .preflight import valid_target
from .records import live_object
from .result_mesh import ResultMeshError, swap_mesh
from .uvs import UVError, ensure_uvs

if TYPE_CHECKING:
    from .engine import Engine


def variant_maps(maps: dict[str, str]) -> dict[int, dict[str, str]]:
    """Split "role@n" keys into variants: {0: {role: path}, 1: {...}, …}."""
    groups: dict[int, dict[str, str]] = {}
    for key, path in maps.items():
        role, _, number = key.partition(VARIANT_SEP)
        groups.setdefault(int(number) if number.isdigit() else 0, {})[role] = path
    return groups


def steps(eng: Engine, job: Job) -> Iterator[None]:
    """Apply a READY job, a small step per tick; it ends APPLIED or FAILED."""
    problem = yield from _maps_steps(eng, job)
    if problem:
        eng.fail(job, problem)
        return
    if assets.auto_enabled():
        yield  # the preview render is a step of its own
        _to_library(eng, job)
    job.move(State.APPLIED, f"Applied to '{job.object_name}'", 1.0)
    eng.runner.write_later(job)
    eng.sync(job)


def _to_library(eng: Engine, job: Job) -> None:
    """The preference "Add results to the Asset Browser": every material of the job."""
    rec = eng.record(job.id)
    if rec is None or rec.material is None:
        return
    mats = [v.material for v in rec.variants if v.material is not None] or [rec.material]
    for mat in mats:
        problem = assets.mark(mat, rec.prompt, rec.provider)
        if problem:
            job.extra["note"] = problem
            eng.sync(job)


def _target(eng: Engine, job: Job, uv_name: str | None = None) -> tuple[Any, Any, str]:
    """(record, object, "") of a job, or (…, the one line why its maps cannot go there)."""
    rec = eng.record(job.id)
    obj = live_object(rec)  # in no scene (deleted with X) counts as deleted
    where = job.request.out_dir
    if rec is None or obj is None:
        return rec, None, f"'{job.object_name}' was deleted; its maps are kept in {where}"
    uv_name = rec.uv_map if uv_name is None else uv_name
    if obj.type != "MESH" or (uv_name and uv_name not in obj.data.uv_layers):
        return rec, None, f"'{obj.name}' lost UV map '{uv_name}'; its maps are kept in {where}"
    return rec, obj, ""


def _result_mesh(eng: Engine, job: Job, role: str) -> MeshArrays:
    return eng.runner.take_mesh(job.id, role) or meshfile.load_prepared(job.maps[role])


def _maps_steps(eng: Engine, job: Job) -> Generator[None, None, str]:
    """Build and assign the material in steps; "" on success, else the one line why not."""
    rec, obj, problem = _target(eng, job)
    if problem:
        return problem
    name_of = label(job.provider)
    uv_name = rec.uv_map
    role = mesh_role(job)  # the maps belong to the provider's mesh (not baked onto ours)
    if role and rec.state != "applied":  # not again on re-apply
        try:
            uv_name, off = swap_mesh(obj, _result_mesh(eng, job, role), job.provider, name_of,
                                     job.extra.get("exported_modifiers"))
        except (ResultMeshError, meshfile.MeshFileError, OSError, RuntimeError) as exc:
            return f"Could not bring {name_of}'s mesh onto '{obj.name}': {exc}"
        if off:
            job.extra["note"] = (f"'{obj.name}' now has {name_of}'s mesh, which already has "
                                 f"these modifiers in it; they are off: {', '.join(off)}")
        rec.uv_map = uv_name
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
        rec, obj, problem = _target(eng, job, uv_name)
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
            mat: bpy.types.Material | None = bpy.data.materials.get(mat_name)
            if mat is None:
                return f"The new material of '{job.object_name}' was removed while it was built"
            if not uses(mat, role):
                continue
            try:
                set_map(mat, role, load_map(path, role, pack))
            except (RuntimeError, OSError) as exc:
                return f"Could not apply the maps to '{job.object_name}': {exc}"
            yield
    rec, obj, problem = _target(eng, job, uv_name)
    if problem:
        return problem
    # (the stubs' `get` returns only its default's type)
    looked_up: list[bpy.types.Material | None] = [bpy.data.materials.get(m) for m in materials]
    found = [m for m in looked_up if m is not None]
    if len(found) < len(materials):
        return f"The new material of '{obj.name}' was removed while it was applied"
    for n, mat in enumerate(found):
        mat.use_fake_user = n > 0  # variants not shown stay saved
    assign_material(obj, found[0])
    rec.material = found[0]
    rec.variants.clear()
    if len(found) > 1:
        for mat in found:
            rec.variants.add().material = mat
    job.object_name = obj.name
    return ""


def reapply(eng: Engine, job_id: str) -> str:
    """Build a fresh material from a finished job's maps; "" or the reason it cannot."""
    job = eng.jobs.get(job_id) or eng.journal.load(job_id)
    if job is None or job.state not in (State.READY, State.APPLIED):
        return "Only a job whose maps are ready can be re-applied"
    missing = [p for p in job.maps.values() if not Path(p).is_file()]
    if missing:
        return f"The maps of this job are gone from {job.request.out_dir}"
    problem = finish(_maps_steps(eng, job))  # the artist pressed a button: all at once
    if problem:
        return problem
    eng.parked.discard(job_id)  # a kept result the artist chose to apply
    if job.state is State.READY:
        job.move(State.APPLIED, f"Applied to '{job.object_name}'", 1.0)
    eng.jobs[job.id] = job
    eng.journal.write(job, durable=False)
    eng.sync(job)
    return ""


def use_variant(eng: Engine, job_id: str, index: int) -> str:
    """Show variant `index` of a job on its object; "" or why not."""
    rec = eng.record(job_id)
    if rec is None or live_object(rec) is None:
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


def apply_to(eng: Engine, job_id: str, obj: bpy.types.Object, uv_policy: str) -> str:
    """Apply a parked (recovered) job's maps to `obj`; "" or why not."""
    rec = eng.record(job_id)
    job = eng.jobs.get(job_id)
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
    eng.parked.discard(job_id)
    return reapply(eng, job_id)
