"""Texture the selected meshes: modal from the interface, blocking from scripts and `blender -b`.

Both paths start the same `BatchRun`. The modal operator only watches it (the engine is moved
by the pump in `blender/drive.py`); `execute()` runs the same ticks in a loop, since timers
never fire in background mode.
"""

from __future__ import annotations

from typing import Any

import bpy

from ..blender.batch import BatchRun, count_busy, count_valid
from ..blender.drive import ensure_pump
from ..blender.engine import IDLE_TICK_S
from ..blender.preflight import online_blocker
from ..blender.prompts import count_own


class T2T_OT_generate(bpy.types.Operator):
    """Texture every selected mesh from the prompt with the chosen provider"""

    bl_idname = "text_to_texture.generate"
    bl_label = "Texture Selected"
    bl_options = {"REGISTER"}

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

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self._start(context):
            return {"CANCELLED"}
        assert self._run is not None
        self._run.run_to_end()
        self._report_all(skip_skipped=True)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if context.window is None:  # no window to put a timer on: behave like a script
            return self.execute(context)
        if not self._start(context):
            return {"CANCELLED"}
        assert self._run is not None
        ensure_pump()
        wm = context.window_manager
        self._timer = wm.event_timer_add(IDLE_TICK_S, window=context.window)
        wm.modal_handler_add(self)
        self.report({"INFO"}, f"Texturing {len(self._run.job_ids)} object(s)… Esc cancels")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
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
