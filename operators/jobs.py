"""Per-job actions from the panel's job list: cancel, retry, re-apply, clear."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

from ..blender import apply, batch, quotes
from ..blender.drive import ensure_pump, run_jobs
from ..blender.engine import engine
from ..jobs.job import State
from . import Result


class T2T_OT_cancel_job(bpy.types.Operator):
    """Cancel this job (a remote job is canceled at the provider where it allows)"""

    bl_idname = "text_to_texture.cancel_job"
    bl_label = "Cancel Job"
    bl_options = {"INTERNAL"}

    job_id: StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        if not engine().cancel(self.job_id):
            self.report({"WARNING"}, "That job has already finished")
            return {"CANCELLED"}
        return {"FINISHED"}


class T2T_OT_cancel_all(bpy.types.Operator):
    """Cancel every unfinished job"""

    bl_idname = "text_to_texture.cancel_all"
    bl_label = "Cancel All"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(engine().active_ids())

    def execute(self, context: bpy.types.Context) -> Result:
        ids = engine().active_ids()
        for job_id in ids:
            engine().cancel(job_id)
        self.report({"INFO"}, f"Canceling {len(ids)} job(s)")
        return {"FINISHED"}


class T2T_OT_reapply(bpy.types.Operator):
    """Build the material again from this job's maps (e.g. after changing the material by hand)"""

    bl_idname = "text_to_texture.reapply"
    bl_label = "Re-apply"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    job_id: StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        message = apply.reapply(engine(), self.job_id)
        if message:
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        return {"FINISHED"}


class T2T_OT_clear_finished(bpy.types.Operator):
    """Remove finished jobs from the list (materials and maps stay)"""

    bl_idname = "text_to_texture.clear_finished"
    bl_label = "Clear Finished"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> Result:
        jobs = context.scene.text_to_texture.jobs
        records = engine().records
        for i in reversed(range(len(jobs))):
            if State(jobs[i].state).terminal:
                records.forget(jobs[i].job_id)  # cleared on purpose: no undo brings it back
                jobs.remove(i)
        return {"FINISHED"}


class T2T_OT_retry(bpy.types.Operator):
    """Start this failed or canceled job again, as a new job for the same object"""

    bl_idname = "text_to_texture.retry"
    bl_label = "Retry"
    bl_options = {"INTERNAL"}

    job_id: StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        assert context.scene is not None  # Blender runs operators in a scene
        message = batch.retry(context.scene, self.job_id)
        if message:
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        if bpy.app.background:  # no timers: finish it here
            run_jobs(engine().active_ids())
        else:
            ensure_pump()
        return {"FINISHED"}


class T2T_OT_quote(bpy.types.Operator):
    """Ask the provider what texturing the selected objects would cost (nothing is charged)"""

    bl_idname = "text_to_texture.quote"
    bl_label = "Price"
    bl_options = {"INTERNAL"}

    def execute(self, context: bpy.types.Context) -> Result:
        scene = context.scene
        assert scene is not None  # Blender runs operators in a scene
        objects = [o for o in context.selected_objects or [] if o.type == "MESH"]
        problem = quotes.request_quote(scene, objects)
        if problem:
            self.report({"WARNING"}, problem)
            return {"CANCELLED"}
        if bpy.app.background:  # no timers to collect the answer: wait for it here
            self.report({"INFO"}, quotes.wait(scene))
        return {"FINISHED"}


class T2T_OT_use_variant(bpy.types.Operator):
    """Show this variant on the object (the others stay in the file)"""

    bl_idname = "text_to_texture.use_variant"
    bl_label = "Use Variant"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    job_id: StringProperty()  # type: ignore[valid-type]
    index: IntProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        message = apply.use_variant(engine(), self.job_id, self.index)
        if message:
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        return {"FINISHED"}


class T2T_OT_apply_to_active(bpy.types.Operator):
    """Put this job's maps on the active object (a job recovered from an unsaved session)"""

    bl_idname = "text_to_texture.apply_to_active"
    bl_label = "Apply to Active"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    job_id: StringProperty()  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.active_object is None:
            cls.poll_message_set("Select the object the maps should go on")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> Result:
        obj = context.active_object
        assert obj is not None  # poll()
        message = apply.apply_to(engine(), self.job_id, obj,
                                 context.scene.text_to_texture.uv_policy)
        if message:
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        self.report({"INFO"}, f"Applied to '{obj.name}'")
        return {"FINISHED"}
