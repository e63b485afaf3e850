"""The few places where Blender 4.2 … 5.x differ, each behind one named helper."""

from __future__ import annotations

import bpy

BLENDER_5 = bpy.app.version >= (5, 0, 0)


def node_tree_of(material: bpy.types.Material) -> bpy.types.ShaderNodeTree:
    """Materials always have nodes from 5.0 on (`use_nodes` is deprecated there)."""
    if not BLENDER_5 and not material.use_nodes:
        material.use_nodes = True
    tree = material.node_tree
    assert tree is not None
    return tree


def mark_non_color(image: bpy.types.Image) -> None:
    """Data maps must not be colour-managed; `is_data` holds across OCIO configs."""
    image.colorspace_settings.is_data = True
    try:
        image.colorspace_settings.name = "Non-Color"
    except TypeError:  # a custom OCIO config without that name: is_data already does the job
        pass


# Lets a path preference hold '//' (blend-relative) without a warning on every change. Known
# in 5.0, unknown in 4.3 (registering it there fails loudly); older versions don't warn anyway.
BLEND_RELATIVE_PATH: set[str] = {"PATH_SUPPORTS_BLEND_RELATIVE"} if BLENDER_5 else set()
