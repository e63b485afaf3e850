"""Ask Blender to draw again what shows the jobs, once data changed off the draw path (a tick,
an answer from a worker thread)."""

from __future__ import annotations

import bpy


def redraw(area_type: str | None = None) -> None:
    """Tag every area (or only those of `area_type`, e.g. "VIEW_3D") of every window."""
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area_type is None or area.type == area_type:
                area.tag_redraw()
