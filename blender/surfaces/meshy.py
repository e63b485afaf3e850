"""Meshy's surface: texture model, keep original UVs, reference image, mesh URL, and the
"Jobs at once" preference."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty

from ...jobs.bake_step import USE_PROVIDER_MESH
from .common import (
    common_options,
    draw_mesh_url,
    draw_reference_image,
    jobs_at_once_pref,
    recall_common,
    set_choice,
)

# The stubs declare bpy.props' functions as returning None; they return a deferred property.
SCENE: dict[str, Any] = {
    "meshy_original_uv": BoolProperty(  # type: ignore[func-returns-value]
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
    "meshy_texture_model": EnumProperty(  # type: ignore[func-returns-value]
        name="Model",
        items=[("meshy-7", "Meshy 7", "Meshy's texture model: base colour and PBR maps"),
               ("meshy-n1", "Meshy N1 (base colour only)",
                "2K base colour only: no roughness, metallic or normal maps"),
               ("meshy-6-lite", "Meshy 6 Lite", "The lighter Meshy 6 texture model")],
        default="meshy-7",
    ),
}
PREFS: dict[str, Any] = {
    "meshy_jobs_at_once": jobs_at_once_pref(
        "Meshy", "MESHY", 10, "your Meshy plan's unfinished tasks: Pro 10, Premium 30, "
        "Studio 60, Ultra 100"),
}


def draw(box: bpy.types.UILayout, col: bpy.types.UILayout, settings: Any) -> None:
    col.prop(settings, "meshy_texture_model")
    if settings.meshy_texture_model == "meshy-n1":
        col.label(text="Base colour only: no PBR maps", icon="INFO")
    col.prop(settings, "meshy_original_uv")
    sub = col.row()
    sub.use_property_split = False  # a checkbox whose words need the box's whole width
    sub.active = not settings.meshy_original_uv  # only then does Meshy send a mesh of its own
    sub.prop(settings, "meshy_use_provider_mesh")
    draw_reference_image(box, settings)
    draw_mesh_url(col, settings)


def options(settings: Any) -> dict[str, Any]:
    opts = common_options(settings, mesh_url_key="model_url", reference=True)
    opts["enable_original_uv"] = bool(settings.meshy_original_uv)
    opts["texture_model"] = str(settings.meshy_texture_model)
    if settings.meshy_use_provider_mesh:
        opts[USE_PROVIDER_MESH] = True
    return opts


def recall(settings: Any, options: dict[str, Any]) -> None:
    """The inverse of `options`: a journaled request's options back into the panel."""
    recall_common(settings, options, mesh_url_key="model_url", reference=True)
    settings.meshy_original_uv = bool(options.get("enable_original_uv", True))
    set_choice(settings, "meshy_texture_model",
               options.get("texture_model") or options.get("ai_model"), "meshy-7")
    settings.meshy_use_provider_mesh = bool(options.get(USE_PROVIDER_MESH, False))
