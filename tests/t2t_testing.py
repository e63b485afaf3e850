"""Helpers for Blender tests: the installed extension's modules and scenes an artist would make."""

from __future__ import annotations

from typing import Any

import numpy as np

from ext_dev import installed


def engine() -> Any:
    return installed("blender.engine").engine()


def add_mesh(kind: str, name: str, location: tuple[float, float, float] = (0, 0, 0)) -> Any:
    import bpy

    ops = {
        "cube": bpy.ops.mesh.primitive_cube_add,
        "sphere": bpy.ops.mesh.primitive_uv_sphere_add,
        "cylinder": bpy.ops.mesh.primitive_cylinder_add,
        "plane": bpy.ops.mesh.primitive_plane_add,
        "torus": bpy.ops.mesh.primitive_torus_add,
        "monkey": bpy.ops.mesh.primitive_monkey_add,
    }
    ops[kind](location=location)
    obj = bpy.context.active_object
    obj.name = name
    obj.data.name = f"{name}_mesh"
    return obj


def select(*objects: Any) -> None:
    import bpy

    for o in bpy.context.view_layer.objects:
        o.select_set(False)
    for o in objects:
        o.select_set(True)
    if objects:
        bpy.context.view_layer.objects.active = objects[0]


def set_prompt(prompt: str, **options: Any) -> Any:
    import bpy

    settings = bpy.context.scene.text_to_texture
    settings.prompt = prompt
    for key, value in options.items():
        setattr(settings, key, value)
    return settings


def linked_image(material: Any, socket: str) -> Any:
    """The image whose node feeds the Principled BSDF input `socket` (through a Normal Map)."""
    tree = material.node_tree
    bsdf = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    links = bsdf.inputs[socket].links
    assert links, f"nothing is linked to {socket}"
    node = links[0].from_node
    if node.bl_idname in ("ShaderNodeNormalMap", "ShaderNodeBump"):
        inp = node.inputs["Color" if node.bl_idname == "ShaderNodeNormalMap" else "Height"]
        node = inp.links[0].from_node
    assert node.bl_idname == "ShaderNodeTexImage", node.bl_idname
    return node


def image_array(image: Any) -> np.ndarray:
    """An 8-bit image's stored pixels as uint8, top row first, like the map files."""
    w, h = image.size
    px = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(px)
    arr = px.reshape(h, w, 4)[::-1]
    return np.round(arr * 255).astype(np.uint8)
