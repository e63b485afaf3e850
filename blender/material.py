"""Build the Principled BSDF material for a result and put it on the object.

One small function per node recipe. The previous material is never deleted: the new one goes
into object-linked slots, so the mesh data (possibly shared with other objects) keeps its own.
"""

from __future__ import annotations

import bpy

from ..providers.base import BASE_COLOR, HEIGHT, METALLIC, NORMAL, ROUGHNESS
from .compat import node_tree_of

COL_UV, COL_IMAGE, COL_CONVERT, COL_BSDF, COL_OUT = -1100, -750, -300, 0, 350
ROW = 300

# role -> (BSDF input, row); normal and height go through their own converter node
_ROWS = {BASE_COLOR: 1, METALLIC: 0, ROUGHNESS: -1, NORMAL: -2, HEIGHT: -3}
_SOCKETS = {BASE_COLOR: "Base Color", METALLIC: "Metallic", ROUGHNESS: "Roughness"}
_LABELS = {
    BASE_COLOR: "Base Color", METALLIC: "Metallic", ROUGHNESS: "Roughness",
    NORMAL: "Normal", HEIGHT: "Height",
}


def uv_map_node(tree: bpy.types.NodeTree, uv_name: str) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeUVMap")
    node.uv_map = uv_name
    node.location = (COL_UV, 0)
    node.label = f"UV: {uv_name}"
    return node


def image_node(
    tree: bpy.types.NodeTree, image: bpy.types.Image, role: str, uv: bpy.types.Node
) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    node.label = _LABELS[role]
    node.name = f"T2T {_LABELS[role]}"
    node.location = (COL_IMAGE, _ROWS[role] * ROW)
    node.interpolation = "Linear"
    tree.links.new(uv.outputs["UV"], node.inputs["Vector"])
    return node


def normal_map_node(tree: bpy.types.NodeTree, uv_name: str) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeNormalMap")
    node.space = "TANGENT"
    node.uv_map = uv_name
    node.location = (COL_CONVERT, _ROWS[NORMAL] * ROW)
    return node


def bump_node(tree: bpy.types.NodeTree) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeBump")
    node.inputs["Strength"].default_value = 0.5
    node.location = (COL_CONVERT, _ROWS[HEIGHT] * ROW)
    return node


def build_material(
    name: str, images: dict[str, bpy.types.Image], uv_name: str
) -> bpy.types.Material:
    """A new material wiring each map to its Principled BSDF input through `uv_name`."""
    mat = bpy.data.materials.new(name)
    tree = node_tree_of(mat)
    tree.nodes.clear()
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    out.location = (COL_OUT, 0)
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.location = (COL_BSDF, 0)
    tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    uv = uv_map_node(tree, uv_name)

    for role, socket in _SOCKETS.items():
        if role in images:
            tex = image_node(tree, images[role], role, uv)
            tree.links.new(tex.outputs["Color"], bsdf.inputs[socket])
    if NORMAL in images:
        tex = image_node(tree, images[NORMAL], NORMAL, uv)
        nmap = normal_map_node(tree, uv_name)
        tree.links.new(tex.outputs["Color"], nmap.inputs["Color"])
        tree.links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
    elif HEIGHT in images:
        tex = image_node(tree, images[HEIGHT], HEIGHT, uv)
        bump = bump_node(tree)
        tree.links.new(tex.outputs["Color"], bump.inputs["Height"])
        tree.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    if METALLIC not in images:
        bsdf.inputs["Metallic"].default_value = 0.0
    return mat


def assign_material(obj: bpy.types.Object, mat: bpy.types.Material) -> None:
    """Make `mat` the object's active material without removing or changing any other.

    Every slot is switched to an object-linked override showing `mat`, so all faces show the
    texture, while the mesh data keeps its own materials (and other objects sharing the mesh
    keep theirs). Setting a slot's link back to 'DATA' restores the previous look.
    """
    if not obj.material_slots:
        obj.data.materials.append(None)  # an empty data slot to hang the override on
    for slot in obj.material_slots:
        slot.link = "OBJECT"
        slot.material = mat
    obj.active_material_index = 0
