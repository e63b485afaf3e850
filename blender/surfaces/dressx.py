"""DRESSX's surface: steps, refine, mesh URL, and the local server its results reach."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ...net import local_server
from .common import common_options, draw_mesh_url, jobs_at_once_pref, recall_common

# The stubs declare bpy.props' functions as returning None; they return a deferred property.
SCENE: dict[str, Any] = {
    "dressx_steps": IntProperty(  # type: ignore[func-returns-value]
        name="Steps", default=20, min=0, max=150,
        description="Inference steps (0 leaves it to DRESSX)",
    ),
    "dressx_refine": BoolProperty(  # type: ignore[func-returns-value]
        name="Refine", default=False, description="Ask DRESSX for an extra refinement pass",
    ),
}
PREFS: dict[str, Any] = {
    "dressx_public_url": StringProperty(  # type: ignore[func-returns-value]
        name="Public URL", default="",
        description="Public address (e.g. a tunnel) at which DRESSX reaches this computer "
        "(DRESSX_PUBLIC_URL wins)",
    ),
    "dressx_local_port": IntProperty(  # type: ignore[func-returns-value]
        name="Local port", default=8765, min=0, max=65535,
        description="Port of the small local server DRESSX's results reach through your "
        "tunnel (0 = any free port, but then a job cannot resume after a restart)",
    ),
    "dressx_coordinator_key": StringProperty(  # type: ignore[func-returns-value]
        name="Coordinator key", subtype="PASSWORD", default="",
        description="Optional DRESSX coordinator key sent with each job "
        "(DRESSX_COORDINATOR_KEY wins)",
    ),
    "dressx_jobs_at_once": jobs_at_once_pref(
        "DRESSX", "DRESSX", 2, "DRESSX publishes no limit"),
}


def draw(box: bpy.types.UILayout, col: bpy.types.UILayout, settings: Any) -> None:
    draw_mesh_url(col, settings)
    col.prop(settings, "dressx_steps")
    col.prop(settings, "dressx_refine")
    server = local_server.current()
    if server is not None:
        box.label(text=f"Local server: {server.url}", icon="LINKED")


def options(settings: Any) -> dict[str, Any]:
    opts = common_options(settings, mesh_url_key="mesh_url")
    opts["refine"] = bool(settings.dressx_refine)
    opts["num_inference_steps"] = int(settings.dressx_steps)
    return opts


def recall(settings: Any, options: dict[str, Any]) -> None:
    recall_common(settings, options, mesh_url_key="mesh_url")
    settings.dressx_refine = bool(options.get("refine", False))
    settings.dressx_steps = int(options.get("num_inference_steps", 20))
