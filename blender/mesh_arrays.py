"""Meshes to and from flat arrays: the main thread's whole share of exporting and importing.

Blender's glTF exporter and importer run in Python on the main thread and cost 5–150 ms per
object, which stalls the interface while results stream in. Here the main thread only copies
arrays out of (or into) Blender with `foreach_get`/`foreach_set`, which is C-speed; writing and
parsing the files is done by the job's worker (`providers.meshfile`).
"""

from __future__ import annotations

import bpy
import numpy as np

from ..formats.meshfile import MeshArrays

__all__ = ["ExportError", "MeshArrays", "build_mesh", "evaluated_arrays", "evaluated_mesh",
           "loop_arrays"]


class ExportError(Exception):
    """A mesh that cannot be turned into arrays or back; the message is one line."""


def evaluated_mesh(obj: bpy.types.Object) -> bpy.types.Mesh:
    """The object's mesh as it renders in the viewport (modifiers applied); Blender owns it.

    An object with no modifiers and no shape keys, outside Edit Mode, renders its own mesh:
    that is read as it is, since asking for the evaluated one re-evaluates the whole scene
    after any change (a few milliseconds per tick once materials are being applied)."""
    data = obj.data
    if (isinstance(data, bpy.types.Mesh) and not obj.modifiers and data.shape_keys is None
            and not data.is_editmode):
        evaluated: object = data
    else:
        depsgraph = bpy.context.evaluated_depsgraph_get()
        evaluated = obj.evaluated_get(depsgraph).data
    if not isinstance(evaluated, bpy.types.Mesh):
        raise ExportError(f"'{obj.name}' is not a mesh")
    mesh = evaluated
    if len(mesh.loop_triangles) == 0:
        raise ExportError(f"'{obj.name}' has no faces to export")
    return mesh


def loop_arrays(mesh: bpy.types.Mesh, uv_name: str = ""
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(the loop of each triangle corner, each loop's vertex, vertex positions (V, 3), each
    loop's normal (L, 3), each loop's UV from map `uv_name` (else the active one) or None),
    in the mesh's own space, read with `foreach_get`."""
    tris = len(mesh.loop_triangles)
    corners = np.empty(tris * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("loops", corners)
    loop_vert = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", loop_vert)
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    normals = np.empty(len(mesh.loops) * 3, dtype=np.float32)
    mesh.corner_normals.foreach_get("vector", normals)
    layer = mesh.uv_layers.get(uv_name) if uv_name else None
    layer = layer or mesh.uv_layers.active
    uv = None
    if layer is not None:
        uv = np.empty(len(mesh.loops) * 2, dtype=np.float32)
        layer.uv.foreach_get("vector", uv)
        uv = uv.reshape(-1, 2)
    return corners, loop_vert, co.reshape(-1, 3), normals.reshape(-1, 3), uv


def evaluated_arrays(obj: bpy.types.Object, uv_name: str = "") -> MeshArrays:
    """The object's evaluated mesh (modifiers applied) as triangles in world space, with the
    normals the artist sees and UV map `uv_name` (else the active one) per corner."""
    corners, loop_vert, co, normals, uv = loop_arrays(evaluated_mesh(obj), uv_name)
    tris = len(corners) // 3
    uvs = uv[corners] if uv is not None else None
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    lin, shift = matrix[:3, :3], matrix[:3, 3]
    positions = (co @ lin.T + shift).astype(np.float32)
    det = np.linalg.det(lin)
    n = normals[corners]
    if det:
        n = n @ np.linalg.inv(lin).T  # normals follow the inverse transpose
    length = np.linalg.norm(n, axis=1, keepdims=True)
    n = (n / np.where(length > 0, length, 1.0)).astype(np.float32)
    corner_verts = loop_vert[corners]
    if det < 0:  # mirrored: keep the triangles facing outwards
        order = np.arange(tris * 3).reshape(-1, 3)[:, [0, 2, 1]].ravel()
        corner_verts, n = corner_verts[order], n[order]
        uvs = uvs[order] if uvs is not None else None
    return MeshArrays(positions=positions, corner_verts=corner_verts, normals=n, uvs=uvs,
                      name=obj.name)


def build_mesh(name: str, arrays: MeshArrays, uv_name: str) -> bpy.types.Mesh:
    """A new mesh from arrays: its corners' UVs in UV map `uv_name`, its normals as custom
    normals, degenerate triangles dropped."""
    tri = arrays.corner_verts.reshape(-1, 3)
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri = np.ascontiguousarray(tri[keep], dtype=np.int32)
    count = len(tri)
    if count == 0:
        raise ExportError(f"the mesh for '{name}' has no faces")
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(arrays.positions))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(arrays.positions, np.float32).ravel())
    mesh.loops.add(count * 3)
    mesh.loops.foreach_set("vertex_index", tri.ravel())
    mesh.polygons.add(count)
    mesh.polygons.foreach_set("loop_start", np.arange(0, count * 3, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(count, 3, dtype=np.int32))
    if arrays.uvs is not None:
        layer = mesh.uv_layers.new(name=uv_name)
        if layer is None:
            raise ExportError(f"could not add UV map '{uv_name}'")
        uvs = np.ascontiguousarray(arrays.uvs[np.repeat(keep, 3)], np.float32)
        layer.uv.foreach_set("vector", uvs.ravel())
    mesh.update(calc_edges=True)
    if arrays.normals is not None:
        mesh.polygons.foreach_set("use_smooth", np.ones(count, dtype=bool))
        normals = np.ascontiguousarray(arrays.normals[np.repeat(keep, 3)], np.float32)
        mesh.normals_split_custom_set(normals.reshape(-1, 3))  # type: ignore[arg-type]
    return mesh
