"""UV maps the textures belong to. The artist's UV maps are never modified.

Unwrapping (Smart UV Project) is one Blender operator on the main thread: it cannot be split
into ticks, and a mesh of two million triangles pauses Blender for seconds. So the button says
beforehand how long it will take and lets the artist choose (`unwrap_estimate`, asked by the
operator above `ASK_ABOVE_S`); the estimate's rate is refined by every unwrap this session.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import cast

import bpy

from .selection import only_selected

NEW_UV_NAME = "T2T_UV"
# Smart UV Project's cost per triangle on the main thread (bench/bench_unwrap.py), until this
# session has measured its own; above `ASK_ABOVE_S` in all, the artist is asked first.
UNWRAP_S_PER_TRIANGLE = 5e-6
ASK_ABOVE_S = 1.0
_rate = [UNWRAP_S_PER_TRIANGLE]


class UVError(Exception):
    pass


def pick_uv_map(mesh: bpy.types.Mesh) -> str:
    """The UV map a render would use: the active-render one, else the active one."""
    layers = mesh.uv_layers
    for layer in layers:
        if layer.active_render:
            return layer.name
    active = layers.active
    return active.name if active else ""


def uv_problem(obj: bpy.types.Object, policy: str) -> str:
    """"" when `ensure_uvs` would find or make a UV map, else why not; changes nothing."""
    mesh: bpy.types.Mesh = obj.data  # type: ignore[assignment]
    existing = pick_uv_map(mesh)
    if not existing and policy == "EXISTING_ONLY":
        return f"Skipped '{obj.name}': it has no UV map and the UV setting is 'Existing only'"
    needs_new = not existing or (policy == "ALWAYS_NEW" and NEW_UV_NAME not in mesh.uv_layers)
    if needs_new and len(mesh.uv_layers) >= 8:
        return f"Skipped '{obj.name}': it already has 8 UV maps, the most Blender allows"
    return ""
def needs_unwrap(obj: bpy.types.Object, policy: str) -> bool:
    """True when `ensure_uvs` would unwrap this object."""
    if obj.type != "MESH" or policy == "EXISTING_ONLY":
        return False
    mesh = cast(bpy.types.Mesh, obj.data)
    if policy == "ALWAYS_NEW":
        return NEW_UV_NAME not in mesh.uv_layers
    return not pick_uv_map(mesh)


def triangles(mesh: bpy.types.Mesh) -> int:
    """Triangles of a mesh from its counts alone (no triangulation)."""
    return max(0, len(mesh.loops) - 2 * len(mesh.polygons))


def unwrap_estimate(objects: Iterable[bpy.types.Object], policy: str
                    ) -> tuple[float, list[tuple[str, int]]]:
    """Seconds Blender would pause to unwrap these objects, and (name, triangles) of each."""
    work = [(obj.name, triangles(cast(bpy.types.Mesh, obj.data))) for obj in objects
            if needs_unwrap(obj, policy)]
    return sum(t for _, t in work) * _rate[0], work


def ensure_uvs(obj: bpy.types.Object, policy: str) -> str:
    """Return the name of the UV map the maps will use, unwrapping into a new map if allowed."""
    mesh = cast(bpy.types.Mesh, obj.data)  # callers pass mesh objects
    existing = pick_uv_map(mesh)
    if existing and policy != "ALWAYS_NEW":
        return existing
    problem = uv_problem(obj, policy)
    if problem:
        raise UVError(problem)
    if NEW_UV_NAME in mesh.uv_layers and policy == "ALWAYS_NEW":
        return NEW_UV_NAME  # a second job on the same mesh reuses the map the first one made
    return unwrap_new(obj, NEW_UV_NAME)


def unwrap_new(obj: bpy.types.Object, name: str) -> str:
    """Smart UV Project into a new UV map, leaving every other map exactly as it was."""
    mesh = cast(bpy.types.Mesh, obj.data)  # callers pass mesh objects
    if len(mesh.uv_layers) >= 8:
        raise UVError(f"Skipped '{obj.name}': it already has 8 UV maps, the most Blender allows")
    previous_active = -1
    if mesh.uv_layers:  # the stubs allow None for the index; Blender always gives an int
        previous_active = mesh.uv_layers.active_index  # type: ignore[assignment]
    layer = mesh.uv_layers.new(name=name, do_init=False)
    name = layer.name  # Blender may have suffixed it
    mesh.uv_layers.active = layer
    began = time.perf_counter()
    _smart_project(obj)
    tris = triangles(mesh)
    if tris >= 50_000:  # large enough to time: the next estimate uses this machine's rate
        _rate[0] = 0.5 * _rate[0] + 0.5 * (time.perf_counter() - began) / tris
    if previous_active >= 0:
        # The artist's active map stays active for editing; ours is the one rendered.
        mesh.uv_layers.active_index = previous_active
    layer = mesh.uv_layers[name]
    layer.active_render = True
    return name


def _smart_project(obj: bpy.types.Object) -> None:
    """Run Smart UV Project on this object alone; mode, selection and hide state come back."""
    prev = bpy.context.view_layer.objects.active
    prev_mode = prev.mode if prev is not None else "OBJECT"
    if prev_mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    try:
        with only_selected(obj):
            flags = _save_flags(cast(bpy.types.Mesh, obj.data))
            bpy.ops.object.mode_set(mode="EDIT")
            try:
                bpy.ops.mesh.reveal()
                bpy.ops.mesh.select_all(action="SELECT")
                bpy.ops.uv.smart_project(
                    angle_limit=1.15192, island_margin=0.02, scale_to_bounds=False
                )
            finally:
                bpy.ops.object.mode_set(mode="OBJECT")
            _restore_flags(cast(bpy.types.Mesh, obj.data), flags)
    finally:
        if prev_mode != "OBJECT" and prev is not None:
            bpy.ops.object.mode_set(mode=prev_mode)


_FLAG_ITEMS = ("vertices", "edges", "polygons")


def _save_flags(mesh: bpy.types.Mesh) -> dict[str, list[bool]]:
    """The artist's hide/select state, which unwrapping in edit mode would otherwise change."""
    saved: dict[str, list[bool]] = {}
    for items in _FLAG_ITEMS:
        seq = getattr(mesh, items)
        for attr in ("select", "hide"):
            values = [False] * len(seq)
            seq.foreach_get(attr, values)
            saved[f"{items}.{attr}"] = values
    return saved


def _restore_flags(mesh: bpy.types.Mesh, saved: dict[str, list[bool]]) -> None:
    for key, values in saved.items():
        items, attr = key.split(".")
        seq = getattr(mesh, items)
        if len(seq) == len(values):
            seq.foreach_set(attr, values)
    mesh.update()
