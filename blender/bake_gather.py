"""The main thread's share of a bake: the artist's object as arrays (`formats.bake.BakeTarget`).

One tick reads the evaluated mesh (modifiers applied) with `foreach_get`, like an export, plus
the tangent frame Blender's Normal Map node will use for the job's UV map: `calc_tangents` on
the evaluated mesh (MikkTSpace, the tangents a render reads), freed again at once. Blender
computes tangents for triangles and quads only; a mesh with n-gons gets them worked out like
MikkTSpace by the worker. Everything else of the bake runs on the job's worker.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..formats.bake import BakeTarget
from ..jobs.job import Job
from .mesh_arrays import ExportError, evaluated_mesh, loop_arrays


def gather_target(obj: bpy.types.Object, uv_name: str) -> BakeTarget:
    """The object's evaluated triangles in its own space, UV map `uv_name` and tangents."""
    mesh = evaluated_mesh(obj)
    if uv_name not in mesh.uv_layers:
        raise ExportError(f"'{obj.name}' has no UV map '{uv_name}'")
    corners, loop_vert, co, normals, uv = loop_arrays(mesh, uv_name)
    assert uv is not None
    tangents = signs = None
    try:
        mesh.calc_tangents(uvmap=uv_name)
    except RuntimeError:  # n-gons: Blender computes tangents for triangles and quads only
        pass
    else:
        try:
            tan = np.empty(len(mesh.loops) * 3, dtype=np.float32)
            mesh.loops.foreach_get("tangent", tan)
            sign = np.empty(len(mesh.loops), dtype=np.float32)
            mesh.loops.foreach_get("bitangent_sign", sign)
            tangents, signs = tan.reshape(-1, 3)[corners], sign[corners]
        finally:
            mesh.free_tangents()
    return BakeTarget(positions=co, corner_verts=loop_vert[corners], normals=normals[corners],
                      uvs=uv[corners], matrix=np.array(obj.matrix_world, dtype=np.float64),
                      tangents=tangents, signs=signs, uv_name=uv_name)


def target_for(rec: Any, job: Job) -> tuple[BakeTarget | None, str]:
    """The arrays a BAKING job's worker waits for, or None and the one line why not."""
    obj = rec.object if rec is not None else None
    if obj is None or obj.name not in bpy.data.objects:
        if job.extra.get("orphan"):
            return None, "the object it was made for is not in this file"
        return None, "the object was deleted"
    if obj.type != "MESH" or not rec.uv_map or rec.uv_map not in obj.data.uv_layers:
        return None, f"'{obj.name}' has no UV map '{rec.uv_map}' any more"
    try:
        return gather_target(obj, rec.uv_map), ""
    except (ExportError, RuntimeError) as exc:
        return None, str(exc)
