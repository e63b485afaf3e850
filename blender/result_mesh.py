"""Bring a provider's UV layout onto the artist's object when the maps belong to it.

Meshy with "original UVs" off paints onto UVs of its own: its GLB carries them. They are copied
into a new UV map on the artist's mesh (nearest face, interpolated), so the artist's UV maps and
topology stay exactly as they were and the material simply names the new map.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .selection import kept_selection

PROVIDER_UV_NAMES = {"MESHY": "Meshy_UV", "TRIVERSE": "Triverse_UV"}


class ResultMeshError(Exception):
    pass


def import_glb(path: Path) -> list[bpy.types.Object]:
    """Import a GLB; return its new objects (the artist's selection comes back afterwards)."""
    before = set(bpy.data.objects)
    with kept_selection():
        result = bpy.ops.import_scene.gltf(filepath=str(path))
    if "FINISHED" not in result:
        raise ResultMeshError(f"Blender could not read {path.name}")
    return [o for o in bpy.data.objects if o not in before]


def discard(objects: list[bpy.types.Object]) -> None:
    """Remove imported helper objects with the data they brought."""
    meshes = {o.data for o in objects if o.type == "MESH"}
    materials = {m for me in meshes for m in me.materials if m is not None}
    images = {
        n.image for m in materials if m.node_tree for n in m.node_tree.nodes
        if n.bl_idname == "ShaderNodeTexImage" and n.image is not None
    }
    for o in objects:
        bpy.data.objects.remove(o)
    for me in meshes:
        if me.users == 0:
            bpy.data.meshes.remove(me)
    for m in materials:
        if m.users == 0:
            bpy.data.materials.remove(m)
    for img in images:
        if img.users == 0:
            bpy.data.images.remove(img)


def transfer_uvs(obj: bpy.types.Object, glb_path: Path, uv_name: str) -> str:
    """Copy the GLB's UVs into a new (or refreshed) UV map `uv_name` on `obj`; return its name."""
    imported = import_glb(glb_path)
    try:
        sources = [o for o in imported if o.type == "MESH" and o.data.uv_layers]
        if not sources:
            raise ResultMeshError(f"{glb_path.name} has no mesh with UVs")
        src = max(sources, key=lambda o: len(o.data.polygons))
        src.data.uv_layers.active.name = uv_name
        mesh = obj.data
        if uv_name not in mesh.uv_layers and len(mesh.uv_layers) >= 8:
            raise ResultMeshError(f"'{obj.name}' already has 8 UV maps, the most Blender allows")
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
        discard(imported)


def swap_mesh(obj: bpy.types.Object, glb_path: Path, provider_id: str, label: str) -> str:
    """Give `obj` the provider's own mesh (its topology and UVs are what the maps belong to).

    Chosen over copying UVs across a different topology, which smears the texture at every UV
    seam. The object keeps its name, transform and modifiers; its previous mesh stays in the
    file (fake user, "<name>" untouched) and can be picked again in Object Data properties.
    Returns the name of the UV map the maps use.
    """
    imported = import_glb(glb_path)
    try:
        sources = [o for o in imported if o.type == "MESH" and o.data.uv_layers]
        if not sources:
            raise ResultMeshError(f"{glb_path.name} has no mesh with UVs")
        src = max(sources, key=lambda o: len(o.data.polygons))
        new_mesh = src.data
        # Same place in the world: the GLB's node transform was the object's when exported.
        new_mesh.transform(obj.matrix_world.inverted() @ src.matrix_world)
        new_mesh.materials.clear()
        uv_name = PROVIDER_UV_NAMES.get(provider_id, "T2T_UV")
        new_mesh.uv_layers.active.name = uv_name
        old = obj.data
        old.use_fake_user = True
        new_mesh.name = f"{old.name} ({label})"
        obj.data = new_mesh
        return uv_name
    finally:
        discard([o for o in imported])
