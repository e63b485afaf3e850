"""Iterate and keep: Recall a job's settings into the panel, add its material to the assets."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..blender import recall
from . import Result


class T2T_OT_recall(bpy.types.Operator):
    """Put this job's settings back into the panel (provider, prompts, seed, resolution, PBR,
    the provider's options) to iterate from it"""

    bl_idname = "text_to_texture.recall"
    bl_label = "Recall Settings"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    job_id: StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        problem = recall.recall(context.scene, self.job_id)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        self.report({"INFO"}, "The job's settings are back in the panel")
        if context.area is not None:
            context.area.tag_redraw()
        return {"FINISHED"}


class T2T_OT_add_to_assets(bpy.types.Operator):
    """Make this job's material an asset in the Asset Browser (catalog 'Text to Texture/
    <provider>', tags from the prompt, a preview) to drag onto other objects later"""

    bl_idname = "text_to_texture.add_to_assets"
    bl_label = "Add to Assets"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    job_id: StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        line = recall.add_to_assets(self.job_id)
        if line.startswith("!"):
            self.report({"ERROR"}, line[1:])
            return {"CANCELLED"}
        self.report({"INFO"}, line)
        if context.area is not None:
            context.area.tag_redraw()  # the button shows the material is in the assets now
        return {"FINISHED"}


classes = (T2T_OT_recall, T2T_OT_add_to_assets)
