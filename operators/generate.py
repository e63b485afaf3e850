"""Texture the selected meshes: modal from the UI, blocking from scripts and `blender -b`.

Both paths drive the same `BatchRun`; the modal operator's timer is a thin wrapper over
`BatchRun.tick()`, which is also what tests call (timers never fire in background mode).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import bpy

from ..blender.engine import BUSY_TICK_S, IDLE_TICK_S, engine, online_blocker, valid_target
from ..jobs.job import State


def count_valid(context: bpy.types.Context) -> int:
    return sum(1 for o in (context.selected_objects or []) if not valid_target(o))


def count_busy(context: bpy.types.Context) -> int:
    """Selected objects that already have a job under way."""
    busy = {engine().jobs[i].object_name for i in engine().active_ids()}
    return sum(1 for o in (context.selected_objects or []) if o.name in busy)


class BatchRun:
    """One press of the button: the jobs it made, its progress and what to tell the artist."""

    def __init__(self, scene: bpy.types.Scene, objects: Iterable[bpy.types.Object]) -> None:
        self.batch = engine().create_jobs(scene, list(objects))
        self.canceled_by_artist = False

    @property
    def job_ids(self) -> list[str]:
        return self.batch.job_ids

    def tick(self) -> bool:
        """One main-thread step; True while any job of this batch is unfinished."""
        eng = engine()
        eng.tick()
        return any(i in eng.jobs and not eng.jobs[i].state.terminal for i in self.job_ids)

    def run_to_end(self, poll: float = 0.02) -> None:
        while self.tick():
            time.sleep(min(poll, engine().next_tick_in()))

    def cancel(self) -> None:
        self.canceled_by_artist = True
        for job_id in self.job_ids:
            engine().cancel(job_id)

    def report_lines(self) -> list[tuple[str, str]]:
        """(level, line) pairs: skipped objects, failed jobs, then one summary line."""
        lines = [("WARNING", s) for s in self.batch.skipped]
        if not self.job_ids:
            lines.append(("ERROR", "Nothing was textured"))
            return lines
        eng = engine()
        states = [eng.jobs[i].state for i in self.job_ids if i in eng.jobs]
        canceled = states.count(State.CANCELED)
        if self.canceled_by_artist and canceled:
            # What the artist asked for is no error: one line, plus any real failures.
            failed = [f"'{eng.jobs[i].object_name}': {eng.jobs[i].message}" for i in self.job_ids
                      if i in eng.jobs and eng.jobs[i].state is State.FAILED]
            lines += [("WARNING", p) for p in failed]
            done = states.count(State.APPLIED)
            tail = f"; {done} textured" if done else ""
            lines.append(("INFO", f"Canceled {canceled} job(s){tail}"))
            return lines
        summary, problems = eng.summary(self.job_ids)
        lines += [("WARNING", p) for p in problems]
        applied = State.APPLIED in states
        lines.append(("INFO" if applied else "ERROR", summary))
        return lines


class T2T_OT_generate(bpy.types.Operator):
    """Texture every selected mesh from the prompt with the chosen provider"""

    bl_idname = "text_to_texture.generate"
    bl_label = "Texture Selected"
    bl_options = {"REGISTER"}

    _timer: Any = None
    _fast_timer: Any = None  # while results are being applied, a step per tick
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
        if not settings.prompt.strip():
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
        wm = context.window_manager
        self._timer = wm.event_timer_add(IDLE_TICK_S, window=context.window)
        wm.modal_handler_add(self)
        engine().modal_running += 1
        self.report({"INFO"}, f"Texturing {len(self._run.job_ids)} object(s)… Esc cancels")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        assert self._run is not None
        if event.type == "ESC" and event.value == "PRESS":
            self._run.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if self._run.tick():
            self._pace(context)
            return {"PASS_THROUGH"}
        self._end_modal(context)
        self._report_all(skip_skipped=True)
        return {"FINISHED"}

    def cancel(self, context: bpy.types.Context) -> None:
        # Blender ends the operator (file load, quit): drop the timer; the jobs carry on.
        self._end_modal(context)

    def _pace(self, context: bpy.types.Context) -> None:
        """A second, fast timer while the engine has main-thread work queued."""
        wm = context.window_manager
        hurry = engine().next_tick_in() < IDLE_TICK_S
        if hurry and self._fast_timer is None:
            self._fast_timer = wm.event_timer_add(BUSY_TICK_S, window=context.window)
        elif not hurry and self._fast_timer is not None:
            wm.event_timer_remove(self._fast_timer)
            self._fast_timer = None

    def _end_modal(self, context: bpy.types.Context) -> None:
        if self._fast_timer is not None:
            context.window_manager.event_timer_remove(self._fast_timer)
            self._fast_timer = None
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
            engine().modal_running = max(0, engine().modal_running - 1)
