"""Test a provider's connection, and copy a job's report for support."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

from ..blender import connection
from ..blender.preflight import online_blocker
from ..blender.report import report_for
from ..providers.registry import PROVIDERS
from . import Result

_ITEMS = [(pid, cls.label, f"Test the {cls.label} settings")
          for pid, cls in PROVIDERS.items() if not cls.offline]


class T2T_OT_test_connection(bpy.types.Operator):
    """Make one free request to check the key and settings (never creates a task or charges)"""

    bl_idname = "text_to_texture.test_connection"
    bl_label = "Test Connection"
    bl_options = {"REGISTER"}

    provider: EnumProperty(name="Provider", items=_ITEMS)  # type: ignore[valid-type]

    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not bpy.app.online_access:
            cls.poll_message_set("Turn on Preferences > System > Network > Allow Online Access")
            return False
        return True

    def _report(self, check: Any) -> None:
        self.report({"INFO" if check.ok else "ERROR"}, check.line)

    def execute(self, context: bpy.types.Context) -> Result:
        problem = online_blocker(self.provider) or connection.start(self.provider)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        if bpy.app.background:  # no timers: wait for the answer here
            self._report(connection.wait(self.provider))
            return {"FINISHED"}
        connection.watch(self.provider)  # the answer shows in the panel and the preferences
        self.report({"INFO"}, f"Testing the {PROVIDERS[self.provider].label} connection…")
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        if context.window is None or bpy.app.background:
            return self.execute(context)
        problem = online_blocker(self.provider) or connection.start(self.provider)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        if event.type != "TIMER" or connection.running(self.provider):
            return {"PASS_THROUGH"}
        self._end(context)
        check = connection.result(self.provider)
        if check is not None:
            self._report(check)
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                area.tag_redraw()
        return {"FINISHED"}

    def cancel(self, context: bpy.types.Context) -> None:
        self._end(context)

    def _end(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


class T2T_OT_copy_report(bpy.types.Operator):
    """Copy a short report of this job (settings, what the service answered, no keys) to the
    clipboard, to send to support"""

    bl_idname = "text_to_texture.copy_report"
    bl_label = "Copy Report"
    bl_options = {"INTERNAL"}

    job_id: StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        text = report_for(self.job_id)
        if text is None:
            self.report({"ERROR"}, "There is no record of that job any more")
            return {"CANCELLED"}
        context.window_manager.clipboard = text
        if bpy.app.background:
            print(text, end="")
        lines = text.count("\n")
        self.report({"INFO"}, f"Report copied to the clipboard ({lines} lines, no keys) — paste "
                              "it into your message to support")
        return {"FINISHED"}


classes = (T2T_OT_test_connection, T2T_OT_copy_report)
