"""Give the artist's object the provider's own mesh ("Use the provider's mesh", or when its
maps could not be baked onto the object's UVs: see jobs/bake_step.py)."""

from __future__ import annotations

import bpy

from ..formats.meshfile import MeshArrays
from .mesh_arrays import ExportError, build_mesh

PROVIDER_UV_NAMES = {"MESHY": "Meshy_UV", "TRIVERSE": "Triverse_UV"}


class ResultMeshError(Exception):
    pass


def swap_mesh(obj: bpy.types.Object, arrays: MeshArrays, provider_id: str, label: str,
              exported_modifiers: list[str] | None = None) -> tuple[str, list[str]]:
    """Give `obj` the provider's own mesh (its topology and UVs are what the maps belong to).

    The object keeps its name, transform and modifiers; its previous mesh stays in the file
    (fake user, "<name>" untouched) and can be picked again in Object Data properties. The
    provider's mesh was made from the object's evaluated mesh, so the modifiers that export
    applied (`exported_modifiers`) are already in it: they are turned off in the viewport and
    the render rather than applied a second time (a subdivided cube would be subdivided twice).
    Returns the name of the UV map the maps use and the names of the modifiers turned off.
    """
    if arrays.uvs is None:
        raise ResultMeshError("the provider's mesh has no UVs")
    uv_name = PROVIDER_UV_NAMES.get(provider_id, "T2T_UV")
    old = obj.data
    try:
        new_mesh = build_mesh(f"{old.name} ({label})", arrays, uv_name)
    except ExportError as exc:
        raise ResultMeshError(str(exc)) from exc
    # The provider's mesh is in world space (as we sent it): bring it into the object's.
    new_mesh.transform(obj.matrix_world.inverted())
    old.use_fake_user = True
    obj.data = new_mesh
    off = []
    for mod in obj.modifiers:
        if mod.name in (exported_modifiers or ()) and (mod.show_viewport or mod.show_render):
            mod.show_viewport = False
            mod.show_render = False
            off.append(mod.name)
    return uv_name, off
