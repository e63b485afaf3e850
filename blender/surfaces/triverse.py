"""Triverse's surface: polygon limit, reference image and mesh URL."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, IntProperty

from ...jobs.bake_step import USE_PROVIDER_MESH
from .common import (
    OptionsError,
    common_options,
    draw_mesh_url,
    draw_reference_image,
    jobs_at_once_pref,
    recall_common,
)

# The stubs declare bpy.props' functions as returning None; they return a deferred property.
SCENE: dict[str, Any] = {
    "triverse_polygon_limit": IntProperty(  # type: ignore[func-returns-value]
        name="Polygon limit", default=0, min=0, max=1_500_000, soft_min=0,
        description="Most polygons Triverse may return (1,000 to 1,500,000); 0 leaves it to "
        "Triverse. Its maps are baked onto your object's UVs unless 'Use Triverse's mesh' is on",
    ),
    "triverse_use_provider_mesh": BoolProperty(  # type: ignore[func-returns-value]
        name="Use Triverse's mesh", default=False,
        description="Give the object Triverse's own mesh and UVs instead of baking its maps onto "
        "yours. Your mesh is kept in the file; modifiers already in Triverse's mesh are turned "
        "off",
    ),
}
PREFS: dict[str, Any] = {
    "triverse_jobs_at_once": jobs_at_once_pref(
        "Triverse", "TRIVERSE", 10, "Triverse takes 10 uploads a minute; its queue size is "
        "not published"),
}


def draw(box: bpy.types.UILayout, col: bpy.types.UILayout, settings: Any) -> None:
    col.prop(settings, "triverse_polygon_limit")
    row = col.row()
    row.use_property_split = False  # a checkbox whose words need the box's whole width
    row.prop(settings, "triverse_use_provider_mesh")
    draw_reference_image(box, settings)
    draw_mesh_url(col, settings)
    box.label(text="Canceling stops the job here, not at Triverse", icon="INFO")


def options(settings: Any) -> dict[str, Any]:
    opts = common_options(settings, mesh_url_key="model_url", reference=True)
    limit = int(settings.triverse_polygon_limit)
    if limit > 0:
        if limit < 1000:
            raise OptionsError("Triverse's polygon limit is 1,000 to 1,500,000 (0 = no limit)")
        opts["polygon_limit"] = limit
    if settings.triverse_use_provider_mesh:
        opts[USE_PROVIDER_MESH] = True
    return opts


def recall(settings: Any, options: dict[str, Any]) -> None:
    recall_common(settings, options, mesh_url_key="model_url", reference=True)
    settings.triverse_polygon_limit = int(options.get("polygon_limit") or 0)
    settings.triverse_use_provider_mesh = bool(options.get(USE_PROVIDER_MESH, False))
