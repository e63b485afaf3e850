"""Texture the selected meshes: modal from the interface, blocking from scripts and `blender -b`.

Both paths start the same `BatchRun`. The modal operator only watches it (the engine is moved
by the pump in `blender/drive.py`); `execute()` runs the same ticks in a loop, since timers
never fire in background mode.
"""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty

from ..blender.batch import BatchRun, count_busy, count_valid, unwrap_pause
from ..blender.drive import ensure_pump
from ..blender.engine import IDLE_TICK_S
from ..blender.preflight import online_blocker
from ..blender.prompts import count_own
from ..blender.uvs import ASK_ABOVE_S
from . import Result


class T2T_OT_generate(bpy.types.Operator):
    """Texture every selected mesh from the prompt with the chosen provider"""

    bl_idname = "text_to_texture.generate"
    bl_label = "Texture Selected"
    bl_options = {"REGISTER"}

    # Set once the artist agreed, in the dialog, to the pause an unwrap takes.
    unwrap_agreed: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    _timer: Any = None
    _run: BatchRun | None = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        settings = getattr(context.scene, "text_to_texture", None) if context.scene else None
        if settings is None:
            return False
        blocker = online_blocker(settings.provider)
        if blocker:
            cls.poll_message_set(blocker)
            return False
        if not settings.prompt.strip() and not count_own(context.selected_objects or []):
            cls.poll_message_set("Type a prompt describing the surface first")
            return False
        if context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode to texture objects")
            return False
        valid = count_valid(context)
        if valid == 0:
            cls.poll_message_set("Select at least one mesh object that has faces")
            return False
        if count_busy(context) >= valid:
            cls.poll_message_set("The selected objects are being textured; Esc or Cancel stops")
            return False
        return True

    def _start(self, context: bpy.types.Context) -> bool:
        assert context.scene is not None  # poll()
        self._run = BatchRun(context.scene, context.selected_objects)
        if not self._run.job_ids:
            self._report_all()
            return False
        for line in self._run.batch.skipped:
            self.report({"WARNING"}, line)
        return True

    def _report_all(self, skip_skipped: bool = False) -> None:
        assert self._run is not None
        skipped = set(self._run.batch.skipped) if skip_skipped else set()
        for level, line in self._run.report_lines():
            if line not in skipped:
                self.report({level}, line)

    def execute(self, context: bpy.types.Context) -> Result:
        if self.unwrap_agreed and context.window is not None and not bpy.app.background:
            # Confirmed in the dialog: run watched, like a press of the button.
            bpy.ops.text_to_texture.generate(  # type: ignore[attr-defined]
                "INVOKE_DEFAULT", unwrap_agreed=True)
            return {"FINISHED"}
        if not self._start(context):
            return {"CANCELLED"}
        assert self._run is not None
        self._run.run_to_end()
        self._report_all(skip_skipped=True)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        if context.window is None:  # no window to put a timer on: behave like a script
            return self.execute(context)
        if not self.unwrap_agreed:
            seconds, what = unwrap_pause(context)
            if seconds >= ASK_ABOVE_S:  # Smart UV Project cannot be split: ask first
                self.unwrap_agreed = True
                return context.window_manager.invoke_confirm(
                    self, event, title="Unwrap before texturing?",
                    message=(f"{what} has no UV map. Unwrapping it pauses Blender for about "
                             f"{seconds:.0f} s. Cancel to unwrap it yourself, or choose UVs: "
                             "'Existing only' to skip it."),
                    confirm_text="Unwrap and Texture", icon="WARNING")
        if not self._start(context):
            return {"CANCELLED"}
        assert self._run is not None
        ensure_pump()
        wm = context.window_manager
        self._timer = wm.event_timer_add(IDLE_TICK_S, window=context.window)
        wm.modal_handler_add(self)
        self.report({"INFO"}, f"Texturing {len(self._run.job_ids)} object(s)… Esc cancels")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        assert self._run is not None
        if event.type == "ESC" and event.value == "PRESS":
            self._run.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER" or self._run.unfinished():
            return {"PASS_THROUGH"}
        self._end_modal(context)
        self._report_all(skip_skipped=True)
        return {"FINISHED"}

    def cancel(self, context: bpy.types.Context) -> None:
        # Blender ends the operator (file load, quit): drop the timer; the jobs carry on.
        self._end_modal(context)

    def _end_modal(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
