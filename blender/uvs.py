"""UV maps the textures belong to. The artist's UV maps are never modified."""

from __future__ import annotations

import bpy

from .selection import only_selected

NEW_UV_NAME = "T2T_UV"


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


def ensure_uvs(obj: bpy.types.Object, policy: str) -> str:
    """Return the name of the UV map the maps will use, unwrapping into a new map if allowed."""
    mesh = obj.data
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
    mesh = obj.data
    if len(mesh.uv_layers) >= 8:
        raise UVError(f"Skipped '{obj.name}': it already has 8 UV maps, the most Blender allows")
    previous_active = mesh.uv_layers.active_index if mesh.uv_layers else -1
    layer = mesh.uv_layers.new(name=name, do_init=False)
    name = layer.name  # Blender may have suffixed it
    mesh.uv_layers.active = layer
    _smart_project(obj)
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
            flags = _save_flags(obj.data)
            bpy.ops.object.mode_set(mode="EDIT")
            try:
                bpy.ops.mesh.reveal()
                bpy.ops.mesh.select_all(action="SELECT")
                bpy.ops.uv.smart_project(
                    angle_limit=1.15192, island_margin=0.02, scale_to_bounds=False
                )
            finally:
                bpy.ops.object.mode_set(mode="OBJECT")
            _restore_flags(obj.data, flags)
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
