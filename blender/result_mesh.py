"""Bring a provider's UV layout onto the artist's object when the maps belong to it.

Meshy with "original UVs" off paints onto UVs of its own: its GLB carries them. They are copied
into a new UV map on the artist's mesh (nearest face, interpolated), so the artist's UV maps and
topology stay exactly as they were and the material simply names the new map.
"""

from __future__ import annotations

import bpy

from ..formats.meshfile import MeshArrays
from .mesh_arrays import ExportError, build_mesh

PROVIDER_UV_NAMES = {"MESHY": "Meshy_UV", "TRIVERSE": "Triverse_UV"}


class ResultMeshError(Exception):
    pass


def transfer_uvs(obj: bpy.types.Object, arrays: MeshArrays, uv_name: str) -> str:
    """Copy the provider mesh's UVs into a new (or refreshed) UV map `uv_name` on `obj`;
    return its name. Both meshes are matched in world space (the provider's mesh is the one
    we sent, in world space, given UVs of its own)."""
    if arrays.uvs is None:
        raise ResultMeshError("the provider's mesh has no UVs")
    mesh = obj.data
    if uv_name not in mesh.uv_layers and len(mesh.uv_layers) >= 8:
        raise ResultMeshError(f"'{obj.name}' already has 8 UV maps, the most Blender allows")
    try:
        src_mesh = build_mesh(f".T2T {uv_name} source", arrays, uv_name)
    except ExportError as exc:
        raise ResultMeshError(str(exc)) from exc
    src = bpy.data.objects.new(src_mesh.name, src_mesh)
    scene = bpy.context.scene
    scene.collection.objects.link(src)  # the operator reads evaluated objects of the scene
    try:
        active_index = mesh.uv_layers.active_index
        render = [layer.active_render for layer in mesh.uv_layers]
        with bpy.context.temp_override(
            active_object=src, object=src, selected_editable_objects=[obj],
            selected_objects=[src, obj],
        ):
            result = bpy.ops.object.data_transfer(
                use_reverse_transfer=False, data_type="UV", use_create=True,
                loop_mapping="POLYINTERP_NEAREST", layers_select_src="ACTIVE",
                layers_select_dst="NAME", mix_mode="REPLACE", use_object_transform=True,
            )
        if "FINISHED" not in result or uv_name not in mesh.uv_layers:
            raise ResultMeshError(f"could not copy the provider's UVs onto '{obj.name}'")
        # The artist's active and render UV maps stay what they were.
        mesh.uv_layers.active_index = active_index
        for layer, was_render in zip(mesh.uv_layers, render):
            if was_render:
                layer.active_render = True
        return uv_name
    finally:
        bpy.data.objects.remove(src)
        bpy.data.meshes.remove(src_mesh)


def swap_mesh(obj: bpy.types.Object, arrays: MeshArrays, provider_id: str, label: str) -> str:
    """Give `obj` the provider's own mesh (its topology and UVs are what the maps belong to).

    Chosen over copying UVs across a different topology, which smears the texture at every UV
    seam. The object keeps its name, transform and modifiers; its previous mesh stays in the
    file (fake user, "<name>" untouched) and can be picked again in Object Data properties.
    Returns the name of the UV map the maps use.
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
    return uv_name
