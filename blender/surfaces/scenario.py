"""Scenario's surface: variants, tile size, steps, guidance, and the active object's tiling."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from ..material import MAPPING_NODE
from .common import jobs_at_once_pref

# The stubs declare bpy.props' functions as returning None; they return a deferred property.
SCENE: dict[str, Any] = {
    "scenario_samples": IntProperty(  # type: ignore[func-returns-value]
        name="Variants", default=1, min=1, max=4,
        description="Textures made per object; all are kept and you switch between them in "
        "the job list",
    ),
    "scenario_tile_size": FloatProperty(  # type: ignore[func-returns-value]
        name="Tile size", default=1.0, min=0.01, soft_max=10.0, unit="LENGTH",
        description="How big one repeat of the seamless texture is on the object",
    ),
    "scenario_steps": IntProperty(  # type: ignore[func-returns-value]
        name="Steps", default=0, min=0, max=150, description="0 leaves it to the model",
    ),
    "scenario_guidance": FloatProperty(  # type: ignore[func-returns-value]
        name="Guidance", default=0.0, min=0.0, max=20.0,
        description="How closely to follow the prompt; 0 leaves it to the model",
    ),
}
PREFS: dict[str, Any] = {
    "scenario_api_secret": StringProperty(  # type: ignore[func-returns-value]
        name="API secret", subtype="PASSWORD", default="",
        description="Your Scenario API secret (SCENARIO_API_SECRET wins)",
    ),
    "scenario_model_id": StringProperty(  # type: ignore[func-returns-value]
        name="Model id", default="", description="Scenario model id (SCENARIO_MODEL_ID wins)",
    ),
    "scenario_project_id": StringProperty(  # type: ignore[func-returns-value]
        name="Project id", default="",
        description="Optional Scenario project (SCENARIO_PROJECT_ID wins)",
    ),
    "scenario_jobs_at_once": jobs_at_once_pref(
        "Scenario", "SCENARIO", 4, "Scenario publishes no limit"),
}


def draw(box: bpy.types.UILayout, col: bpy.types.UILayout, settings: Any) -> None:
    col.prop(settings, "scenario_samples")
    col.prop(settings, "scenario_tile_size")
    col.prop(settings, "scenario_steps")
    col.prop(settings, "scenario_guidance")
    tiling = _tiling_node(bpy.context.active_object)
    if tiling is not None:
        col.prop(tiling.inputs["Scale"], "default_value", text="Active tiling")


def options(settings: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "samples": int(settings.scenario_samples),
        "tile_size": float(settings.scenario_tile_size),
    }
    if settings.scenario_steps > 0:
        opts["steps"] = int(settings.scenario_steps)
    if settings.scenario_guidance > 0:
        opts["guidance"] = float(settings.scenario_guidance)
    return opts


def _tiling_node(obj: bpy.types.Object | None) -> bpy.types.Node | None:
    """The tiling Mapping node of the active object's seamless texture, to edit in place."""
    mat = obj.active_material if obj is not None else None
    if mat is None or mat.node_tree is None:
        return None
    return mat.node_tree.nodes.get(MAPPING_NODE)


def recall(settings: Any, options: dict[str, Any]) -> None:
    settings.scenario_samples = int(options.get("samples", 1))
    settings.scenario_tile_size = float(options.get("tile_size", 1.0))
    settings.scenario_steps = int(options.get("steps", 0))
    settings.scenario_guidance = float(options.get("guidance", 0.0))
