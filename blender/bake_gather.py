"""The main thread's share of a bake: the artist's object as arrays (`formats.bake.BakeTarget`).

One tick reads the evaluated mesh (modifiers applied) with `foreach_get`, like an export; when
a normal map is to be baked, a second one reads the tangent frame Blender's Normal Map node will
use for the job's UV map: `calc_tangents` on the evaluated mesh (MikkTSpace, the tangents a
render reads), freed again at once. Blender
computes tangents for triangles and quads only; a mesh with n-gons gets them worked out like
MikkTSpace by the worker. Everything else of the bake runs on the job's worker.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np

from ..formats.bake import BakeTarget
from ..formats.roles import NORMAL, VARIANT_SEP
from ..jobs.job import Job
from .mesh_arrays import ExportError, evaluated_mesh, loop_arrays

if TYPE_CHECKING:
    from .engine import Engine


def gather_steps(eng: Engine, job: Job) -> Generator[None, None, tuple[BakeTarget | None, str]]:
    """The arrays a BAKING job's worker waits for (or None and the one line why not): a tick for
    the mesh's arrays and, with a normal map, one for its tangents (each about what exporting
    the mesh costs). Between the two the artist may undo or delete: everything is looked up
    again."""
    obj, problem = _object(eng, job)
    if obj is None:
        return None, problem
    uv_name = eng.record(job.id).uv_map
    try:
        corners, loop_vert, co, normals, uv = loop_arrays(evaluated_mesh(obj), uv_name)
    except (ExportError, RuntimeError) as exc:
        return None, str(exc)
    tangents = signs = None
    if any(role.partition(VARIANT_SEP)[0] == NORMAL for role in job.maps):
        yield  # only a normal map needs the tangent frame: a tick of its own
        obj, problem = _object(eng, job)
        if obj is None:
            return None, problem
        try:
            mesh = evaluated_mesh(obj)
            if len(mesh.loops) != len(loop_vert):  # edited since the last tick: read again
                corners, loop_vert, co, normals, uv = loop_arrays(mesh, uv_name)
            tangents, signs = _tangents(mesh, uv_name, corners)
        except (ExportError, RuntimeError) as exc:
            return None, str(exc)
    if uv is None:
        return None, f"'{obj.name}' has no UV map '{uv_name}' after its modifiers"
    return BakeTarget(positions=co, corner_verts=loop_vert[corners], normals=normals[corners],
                      uvs=uv[corners], matrix=np.array(obj.matrix_world, dtype=np.float64),
                      tangents=tangents, signs=signs, uv_name=uv_name), ""


def _tangents(mesh: bpy.types.Mesh, uv_name: str, corners: np.ndarray
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Blender's tangents and bitangent signs per triangle corner (None: n-gons)."""
    try:
        mesh.calc_tangents(uvmap=uv_name)
    except RuntimeError:  # n-gons: Blender computes tangents for triangles and quads only
        return None, None
    try:
        tan = np.empty(len(mesh.loops) * 3, dtype=np.float32)
        mesh.loops.foreach_get("tangent", tan)
        sign = np.empty(len(mesh.loops), dtype=np.float32)
        mesh.loops.foreach_get("bitangent_sign", sign)
        return tan.reshape(-1, 3)[corners], sign[corners]
    finally:
        mesh.free_tangents()


def _object(eng: Engine, job: Job) -> tuple[Any, str]:
    """The job's object with its UV map, or None and the one line why there is none."""
    rec = eng.record(job.id)
    obj = rec.object if rec is not None else None
    if obj is None or obj.name not in bpy.data.objects:
        if job.extra.get("orphan"):
            return None, "the object it was made for is not in this file"
        return None, "the object was deleted"
    if obj.type != "MESH" or not rec.uv_map or rec.uv_map not in obj.data.uv_layers:
        return None, f"'{obj.name}' has no UV map '{rec.uv_map}' any more"
    return obj, ""
