"""Build the Principled BSDF material for a result and put it on the object.

One small function per node recipe. The previous material is never deleted: the new one goes
into object-linked slots, so the mesh data (possibly shared with other objects) keeps its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from ..providers.base import BASE_COLOR, HEIGHT, METALLIC, METALLIC_ROUGHNESS, NORMAL, ROUGHNESS
from .compat import node_tree_of

COL_UV, COL_IMAGE, COL_CONVERT, COL_BSDF, COL_OUT = -1100, -750, -300, 0, 350
ROW = 300

MAPPING_NODE = "T2T Tiling"
SMOOTHNESS = "smoothness"  # a provider's smoothness map it could not invert itself

# role -> row; normal and height go through their own converter node
_ROWS = {
    BASE_COLOR: 1, METALLIC: 0, METALLIC_ROUGHNESS: 0, ROUGHNESS: -1, SMOOTHNESS: -1,
    NORMAL: -2, HEIGHT: -3,
}
_SOCKETS = {BASE_COLOR: "Base Color", METALLIC: "Metallic", ROUGHNESS: "Roughness"}
# Every map role a material can use; other files of a result (meshes) are not images.
MATERIAL_ROLES = frozenset(_ROWS)
_LABELS = {
    BASE_COLOR: "Base Color", METALLIC: "Metallic", ROUGHNESS: "Roughness",
    NORMAL: "Normal", HEIGHT: "Height", METALLIC_ROUGHNESS: "Metallic Roughness",
    SMOOTHNESS: "Smoothness",
}


def uv_map_node(tree: bpy.types.NodeTree, uv_name: str) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeUVMap")
    node.uv_map = uv_name
    node.location = (COL_UV, 0)
    node.label = f"UV: {uv_name}"
    return node


def image_node(
    tree: bpy.types.NodeTree,
    image: bpy.types.Image,
    role: str,
    vector: bpy.types.NodeSocket,
    box: bool = False,
) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    node.label = _LABELS[role]
    node.name = f"T2T {_LABELS[role]}"
    node.location = (COL_IMAGE, _ROWS[role] * ROW)
    node.interpolation = "Linear"
    if box:  # no UVs: project from the three axes, blending the seams
        node.projection = "BOX"
        node.projection_blend = 0.25
    tree.links.new(vector, node.inputs["Vector"])
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


@dataclass(frozen=True)
class Wiring:
    """How the maps reach the surface."""

    uv_name: str = ""  # the UV map the maps belong to; "" = box projection in object space
    tiling: tuple[float, float, float] | None = None  # a Mapping node's scale (seamless 2D)
    bump_height: bool = False  # height through a Bump node even when there is a normal map


def vector_source(tree: bpy.types.NodeTree, wiring: Wiring) -> bpy.types.NodeSocket:
    """UV Map (or object coordinates), through a tiling Mapping node when asked."""
    if wiring.uv_name:
        src = uv_map_node(tree, wiring.uv_name).outputs["UV"]
    else:
        coords = tree.nodes.new("ShaderNodeTexCoord")
        coords.location = (COL_UV, 0)
        src = coords.outputs["Object"]
    if wiring.tiling is None:
        return src
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.name = MAPPING_NODE
    mapping.label = "Tiling (scale = repeats)"
    mapping.location = (COL_UV + 200, 0)
    mapping.inputs["Scale"].default_value = wiring.tiling
    tree.links.new(src, mapping.inputs["Vector"])
    return mapping.outputs["Vector"]


def tiling_scale(
    obj: bpy.types.Object, uv_name: str, tile_size: float
) -> tuple[float, float, float]:
    """Mapping scale so one tile covers about `tile_size` metres on every object alike.

    With UVs the whole 0–1 square is stretched over the object, so repeats follow its largest
    dimension; box projection works in object space, so the object's own scale is undone."""
    tile = max(tile_size, 1e-3)
    if uv_name:
        repeats = max(max(obj.dimensions), 1e-3) / tile
        return (repeats, repeats, repeats)
    sx, sy, sz = (max(abs(v), 1e-6) for v in obj.scale)
    return (sx / tile, sy / tile, sz / tile)


def separate_node(tree: bpy.types.NodeTree) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeSeparateColor")
    node.mode = "RGB"
    node.label = "glTF: G roughness, B metallic"
    node.location = (COL_CONVERT, _ROWS[METALLIC] * ROW)
    return node


def invert_node(tree: bpy.types.NodeTree) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeInvert")
    node.label = "Smoothness to roughness"
    node.location = (COL_CONVERT, _ROWS[ROUGHNESS] * ROW)
    return node


def build_material(
    name: str, images: dict[str, bpy.types.Image], wiring: Wiring
) -> bpy.types.Material:
    """A new material wiring each map to its Principled BSDF input."""
    mat = bpy.data.materials.new(name)
    tree = node_tree_of(mat)
    tree.nodes.clear()
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    out.location = (COL_OUT, 0)
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.location = (COL_BSDF, 0)
    tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    vector = vector_source(tree, wiring)

    def texture(role: str) -> bpy.types.Node:
        return image_node(tree, images[role], role, vector, box=not wiring.uv_name)

    for role, socket in _SOCKETS.items():
        if role in images:
            tree.links.new(texture(role).outputs["Color"], bsdf.inputs[socket])
    if METALLIC_ROUGHNESS in images:
        split = separate_node(tree)
        tree.links.new(texture(METALLIC_ROUGHNESS).outputs["Color"], split.inputs["Color"])
        tree.links.new(split.outputs["Green"], bsdf.inputs["Roughness"])
        tree.links.new(split.outputs["Blue"], bsdf.inputs["Metallic"])
    if SMOOTHNESS in images and ROUGHNESS not in images:
        inv = invert_node(tree)
        tree.links.new(texture(SMOOTHNESS).outputs["Color"], inv.inputs["Color"])
        tree.links.new(inv.outputs["Color"], bsdf.inputs["Roughness"])
    normal_out = None
    if NORMAL in images and wiring.uv_name:  # tangent space needs the UVs
        nmap = normal_map_node(tree, wiring.uv_name)
        tree.links.new(texture(NORMAL).outputs["Color"], nmap.inputs["Color"])
        normal_out = nmap.outputs["Normal"]
    if HEIGHT in images and (normal_out is None or wiring.bump_height):
        bump = bump_node(tree)
        tree.links.new(texture(HEIGHT).outputs["Color"], bump.inputs["Height"])
        if normal_out is not None:
            tree.links.new(normal_out, bump.inputs["Normal"])
        normal_out = bump.outputs["Normal"]
    if normal_out is not None:
        tree.links.new(normal_out, bsdf.inputs["Normal"])
    if METALLIC not in images and METALLIC_ROUGHNESS not in images:
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
