"""Meshy's surface: model, keep original UVs, art style (older endpoint only), reference image
and mesh URL."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty

from ...jobs.bake_step import USE_PROVIDER_MESH
from .common import common_options, draw_mesh_url, draw_reference_image

SCENE: dict[str, Any] = {
    "meshy_original_uv": BoolProperty(
        name="Keep original UVs", default=True,
        description="Paint onto the object's own UVs. Off: Meshy makes its own UVs, and its "
        "maps are baked onto the object's UV map (your mesh and UVs are kept)",
    ),
    "meshy_use_provider_mesh": BoolProperty(  # type: ignore[func-returns-value]
        name="Use Meshy's mesh", default=False,
        description="When Meshy makes its own UVs, give the object Meshy's mesh and UVs instead "
        "of baking its maps onto yours. Your mesh is kept in the file; modifiers already in "
        "Meshy's mesh are turned off",
    ),
    "meshy_ai_model": EnumProperty(
        name="Model",
        items=[("latest", "Latest", "Meshy's newest texturing model"),
               ("meshy-6", "Meshy 6", ""), ("meshy-5", "Meshy 5", "")],
        default="latest",
    ),
    "meshy_art_style": EnumProperty(
        name="Art style",
        description="Only Meshy's older Text to Texture endpoint takes an art style",
        items=[(v, v.replace("-", " ").title(), "") for v in (
            "realistic", "fake-3d-cartoon", "japanese-anime", "cartoon-line-art",
            "realistic-hand-drawn", "fake-3d-hand-drawn", "oriental-comic-ink")],
        default="realistic",
    ),
}
PREFS: dict[str, Any] = {}


def draw(box: bpy.types.UILayout, col: bpy.types.UILayout, settings: Any) -> None:
    col.prop(settings, "meshy_ai_model")
    col.prop(settings, "meshy_original_uv")
    sub = col.row()
    sub.use_property_split = False  # a checkbox whose words need the box's whole width
    sub.active = not settings.meshy_original_uv  # only then does Meshy send a mesh of its own
    sub.prop(settings, "meshy_use_provider_mesh")
    legacy = col.column(align=True)
    legacy.active = False  # only Meshy's older endpoint reads it
    legacy.prop(settings, "meshy_art_style")
    draw_reference_image(box, settings)
    draw_mesh_url(col, settings)


def options(settings: Any) -> dict[str, Any]:
    opts = common_options(settings, mesh_url_key="model_url", reference=True)
    opts["enable_original_uv"] = bool(settings.meshy_original_uv)
    if settings.meshy_use_provider_mesh:
        opts[USE_PROVIDER_MESH] = True
    if settings.meshy_ai_model != "latest":
        opts["ai_model"] = settings.meshy_ai_model
    opts["art_style"] = settings.meshy_art_style
    return opts
