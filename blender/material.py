"""Build the Principled BSDF material for a result and put it on the object.

One small function per node recipe. The previous material is never deleted: the new one goes
into object-linked slots, so the mesh data (possibly shared with other objects) keeps its own.
"""

from __future__ import annotations

from collections.abc import Collection, Generator
from dataclasses import dataclass
from typing import cast

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


# Node names: a material is found again by name between ticks (see `build_material_steps`),
# and a copy of a template is filled in through them (`new_material_steps`, `set_map`).
OUT_NODE, BSDF_NODE, UV_NODE, COORDS_NODE = "T2T Output", "T2T BSDF", "T2T UV", "T2T Coords"
SPLIT_NODE, INVERT_NODE, NORMAL_NODE, BUMP_NODE = (
    "T2T Separate", "T2T Invert", "T2T Normal Map", "T2T Bump",
)


def image_node_name(role: str) -> str:
    return f"T2T {_LABELS[role]}"


def uv_map_node(tree: bpy.types.NodeTree, uv_name: str) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeUVMap")
    node.name = UV_NODE
    cast(bpy.types.ShaderNodeUVMap, node).uv_map = uv_name
    node.location = (COL_UV, 0)
    node.label = f"UV: {uv_name}"
    return node


def image_node(
    tree: bpy.types.NodeTree,
    image: bpy.types.Image | None,
    role: str,
    vector: bpy.types.NodeSocket,
    box: bool = False,
) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeTexImage")
    tex = cast(bpy.types.ShaderNodeTexImage, node)  # its settings (`node`: its sockets)
    tex.image = image
    node.label = _LABELS[role]
    node.name = image_node_name(role)
    node.location = (COL_IMAGE, _ROWS[role] * ROW)
    tex.interpolation = "Linear"
    if box:  # no UVs: project from the three axes, blending the seams
        tex.projection = "BOX"
        tex.projection_blend = 0.25
    tree.links.new(vector, node.inputs["Vector"])
    return node


def normal_map_node(tree: bpy.types.NodeTree, uv_name: str) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeNormalMap")
    node.name = NORMAL_NODE
    nmap = cast(bpy.types.ShaderNodeNormalMap, node)
    nmap.space = "TANGENT"
    nmap.uv_map = uv_name
    node.location = (COL_CONVERT, _ROWS[NORMAL] * ROW)
    return node


def bump_node(tree: bpy.types.NodeTree) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeBump")
    node.name = BUMP_NODE
    cast(bpy.types.NodeSocketFloatFactor, node.inputs["Strength"]).default_value = 0.5
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
        coords.name = COORDS_NODE
        coords.location = (COL_UV, 0)
        src = coords.outputs["Object"]
    if wiring.tiling is None:
        return src
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.name = MAPPING_NODE
    mapping.label = "Tiling (scale = repeats)"
    mapping.location = (COL_UV + 200, 0)
    _set_tiling(mapping, wiring.tiling)
    tree.links.new(src, mapping.inputs["Vector"])
    return mapping.outputs["Vector"]


def _set_tiling(mapping: bpy.types.Node, tiling: tuple[float, float, float]) -> None:
    scale = cast(bpy.types.NodeSocketVectorXYZ, mapping.inputs["Scale"])
    scale.default_value = tiling


def _vector_output(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
    nodes = tree.nodes
    if MAPPING_NODE in nodes:
        return nodes[MAPPING_NODE].outputs["Vector"]
    if UV_NODE in nodes:
        return nodes[UV_NODE].outputs["UV"]
    return nodes[COORDS_NODE].outputs["Object"]


def tiling_scale(
    obj: bpy.types.Object, uv_name: str, tile_size: float
) -> tuple[float, float, float]:
    """Mapping scale so one tile covers about `tile_size` metres on every object alike.

    With UVs the whole 0–1 square is stretched over the object, so repeats follow its largest
    dimension; box projection works in object space, so the object's own scale is undone."""
    tile = max(tile_size, 1e-3)
    if uv_name:
        repeats = max(max(obj.dimensions[:]), 1e-3) / tile
        return (repeats, repeats, repeats)
    sx, sy, sz = (max(abs(v), 1e-6) for v in obj.scale[:])
    return (sx / tile, sy / tile, sz / tile)


def separate_node(tree: bpy.types.NodeTree) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeSeparateColor")
    node.name = SPLIT_NODE
    cast(bpy.types.ShaderNodeSeparateColor, node).mode = "RGB"
    node.label = "glTF: G roughness, B metallic"
    node.location = (COL_CONVERT, _ROWS[METALLIC] * ROW)
    return node


def invert_node(tree: bpy.types.NodeTree) -> bpy.types.Node:
    node = tree.nodes.new("ShaderNodeInvert")
    node.name = INVERT_NODE
    node.label = "Smoothness to roughness"
    node.location = (COL_CONVERT, _ROWS[ROUGHNESS] * ROW)
    return node


def build_material_steps(
    name: str, roles: Collection[str], wiring: Wiring
) -> Generator[None, None, str]:
    """Build a new material with an (empty) image node per map role wired to its Principled
    BSDF input, in steps a tick each (a whole build costs ~2 ms of the main thread). Returns
    the material's name.

    Between steps the artist may undo, which invalidates every Python reference to Blender
    data, so each step finds the material again by name."""
    mat = bpy.data.materials.new(name)
    mat_name = mat.name
    tree = node_tree_of(mat)
    tree.nodes.clear()
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    out.name = OUT_NODE
    out.location = (COL_OUT, 0)
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.name = BSDF_NODE
    bsdf.location = (COL_BSDF, 0)
    tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    vector_source(tree, wiring)
    if METALLIC not in roles and METALLIC_ROUGHNESS not in roles:
        cast(bpy.types.NodeSocketFloatFactor, bsdf.inputs["Metallic"]).default_value = 0.0
    yield

    def again() -> bpy.types.ShaderNodeTree:
        found: bpy.types.Material | None = bpy.data.materials.get(mat_name)
        if found is None or found.node_tree is None:
            raise RuntimeError("the new material was removed while it was built")
        return found.node_tree

    def texture(tree: bpy.types.NodeTree, role: str) -> bpy.types.Node:
        return image_node(tree, None, role, _vector_output(tree), box=not wiring.uv_name)

    for role, socket in _SOCKETS.items():
        if role in roles:
            tree = again()
            tree.links.new(texture(tree, role).outputs["Color"],
                           tree.nodes[BSDF_NODE].inputs[socket])
            yield
    tree = again()
    bsdf = tree.nodes[BSDF_NODE]
    if METALLIC_ROUGHNESS in roles:
        split = separate_node(tree)
        tree.links.new(texture(tree, METALLIC_ROUGHNESS).outputs["Color"], split.inputs["Color"])
        tree.links.new(split.outputs["Green"], bsdf.inputs["Roughness"])
        tree.links.new(split.outputs["Blue"], bsdf.inputs["Metallic"])
    if SMOOTHNESS in roles and ROUGHNESS not in roles:
        inv = invert_node(tree)
        tree.links.new(texture(tree, SMOOTHNESS).outputs["Color"], inv.inputs["Color"])
        tree.links.new(inv.outputs["Color"], bsdf.inputs["Roughness"])
    yield
    tree = again()
    bsdf = tree.nodes[BSDF_NODE]
    normal_out = None
    if NORMAL in roles and wiring.uv_name:  # tangent space needs the UVs
        nmap = normal_map_node(tree, wiring.uv_name)
        tree.links.new(texture(tree, NORMAL).outputs["Color"], nmap.inputs["Color"])
        normal_out = nmap.outputs["Normal"]
    if HEIGHT in roles and (normal_out is None or wiring.bump_height):
        bump = bump_node(tree)
        tree.links.new(texture(tree, HEIGHT).outputs["Color"], bump.inputs["Height"])
        if normal_out is not None:
            tree.links.new(normal_out, bump.inputs["Normal"])
        normal_out = bump.outputs["Normal"]
    if normal_out is not None:
        tree.links.new(normal_out, bsdf.inputs["Normal"])
    return mat_name


def finish(steps: Generator[None, None, str]) -> str:
    """Run stepwise work to its end and return its result (re-apply, Apply to Active: the
    artist pressed a button, there is no tick to spread it over)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return str(done.value)


# ---- templates: the first material of a kind is built node by node, the next ones copied ----

# A template is a private material without images that nobody uses: hidden from material
# lists (the leading dot) and never saved with the file. Copying it costs ~0.05 ms where
# building costs ~2 ms.
_templates: dict[tuple[object, ...], str] = {}
TEMPLATE_PREFIX = ".T2T template"


def new_material_steps(
    name: str, roles: Collection[str], wiring: Wiring
) -> Generator[None, None, str]:
    """A new material for maps of these roles, image nodes still empty (`set_map` fills
    them): a copy of the template of its kind, built first in steps if there is none yet.
    Returns its name."""
    kind = (tuple(sorted(roles)), bool(wiring.uv_name), wiring.tiling is not None,
            wiring.bump_height)
    template = bpy.data.materials.get(_templates.get(kind, ""))
    if template is None:
        built = yield from build_material_steps(f"{TEMPLATE_PREFIX} {len(_templates) + 1}",
                                                roles, wiring)
        template = bpy.data.materials[built]
        _templates[kind] = template.name
    mat = template.copy()
    mat.name = name
    nodes = node_tree_of(mat).nodes
    if wiring.uv_name:
        cast(bpy.types.ShaderNodeUVMap, nodes[UV_NODE]).uv_map = wiring.uv_name
        nodes[UV_NODE].label = f"UV: {wiring.uv_name}"
        if NORMAL_NODE in nodes:
            cast(bpy.types.ShaderNodeNormalMap, nodes[NORMAL_NODE]).uv_map = wiring.uv_name
    if wiring.tiling is not None:
        _set_tiling(nodes[MAPPING_NODE], wiring.tiling)
    return mat.name


def uses(mat: bpy.types.Material, role: str) -> bool:
    """Does this material show a map of `role` (a height map beside a normal map may not)?"""
    return mat.node_tree is not None and image_node_name(role) in mat.node_tree.nodes


def set_map(mat: bpy.types.Material, role: str, image: bpy.types.Image) -> None:
    """Put an image into its node (each costs the main thread ~0.5 ms of node-tree update)."""
    tree = mat.node_tree
    assert tree is not None
    cast(bpy.types.ShaderNodeTexImage, tree.nodes[image_node_name(role)]).image = image


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
