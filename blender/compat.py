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


def _path_option_blend_relative() -> set[str]:
    """{'PATH_SUPPORTS_BLEND_RELATIVE'} where Blender knows it (newer than 4.3), else empty.

    Without it a preference holding '//' warns on every change; older versions don't warn."""
    option = "PATH_SUPPORTS_BLEND_RELATIVE"
    # Built with type() because annotations here are strings (PEP 563) and see no locals.
    probe = type("T2T_PathProbe", (bpy.types.PropertyGroup,), {
        "__annotations__": {"path": bpy.props.StringProperty(subtype="DIR_PATH",
                                                             options={option})},
    })

    try:
        bpy.utils.register_class(probe)
    except (ValueError, TypeError):
        return set()
    bpy.utils.unregister_class(probe)
    return {option}


BLEND_RELATIVE_PATH = _path_option_blend_relative()
