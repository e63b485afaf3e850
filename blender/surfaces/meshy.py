"""Meshy's surface: model, keep original UVs, art style (older endpoint only), reference image
and mesh URL."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty

from .common import (
    common_options,
    draw_mesh_url,
    draw_reference_image,
    recall_common,
    set_choice,
)

SCENE: dict[str, Any] = {
    "meshy_original_uv": BoolProperty(
        name="Keep original UVs", default=True,
        description="Paint onto the object's own UVs. Off: Meshy makes its own UVs, which "
        "are brought onto the object as a new UV map 'Meshy_UV' (yours are kept)",
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
    legacy = col.column(align=True)
    legacy.active = False  # only Meshy's older endpoint reads it
    legacy.prop(settings, "meshy_art_style")
    draw_reference_image(box, settings)
    draw_mesh_url(col, settings)


def options(settings: Any) -> dict[str, Any]:
    opts = common_options(settings, mesh_url_key="model_url", reference=True)
    opts["enable_original_uv"] = bool(settings.meshy_original_uv)
    if settings.meshy_ai_model != "latest":
        opts["ai_model"] = settings.meshy_ai_model
    opts["art_style"] = settings.meshy_art_style
    return opts


def recall(settings: Any, options: dict[str, Any]) -> None:
    """The inverse of `options`: a journaled request's options back into the panel."""
    recall_common(settings, options, mesh_url_key="model_url", reference=True)
    settings.meshy_original_uv = bool(options.get("enable_original_uv", True))
    set_choice(settings, "meshy_ai_model",
               options.get("texture_model") or options.get("ai_model"), "latest")
    set_choice(settings, "meshy_art_style", options.get("art_style"), "realistic")
