"""Keep jobs moving when no modal operator is: resumed jobs, retries, and file load/save hooks."""

from __future__ import annotations

import logging

import bpy
from bpy.app.handlers import persistent

from ..providers import webhook_server
from .engine import engine, reset_engine

log = logging.getLogger(__name__)

PUMP_INTERVAL_S = 0.2


def _pump() -> float | None:
    try:
        eng = engine()
        if eng.modal_running == 0:
            eng.tick()
        if not eng.active_ids():
            return None
        if eng.modal_running:  # the operator's timers tick; this only watches
            return PUMP_INTERVAL_S
        return min(PUMP_INTERVAL_S, eng.next_tick_in())
    except Exception:  # a timer that raises is dropped silently by Blender; say why, keep going
        log.exception("Text to Texture: job pump failed")
        return PUMP_INTERVAL_S


def ensure_pump() -> None:
    if not bpy.app.timers.is_registered(_pump):
        bpy.app.timers.register(_pump, first_interval=PUMP_INTERVAL_S, persistent=True)


@persistent
def _on_load_pre(*_args: object) -> None:
    # The jobs belong to the file being closed: stop watching them here (they keep running at
    # the provider and in the journal) and pick them up when that file is opened again.
    reset_engine()


@persistent
def _on_save_post(*_args: object) -> None:
    engine().note_saved()


@persistent
def _on_load_post(*_args: object) -> None:
    if engine().resume():
        ensure_pump()


def register() -> None:
    bpy.app.handlers.load_pre.append(_on_load_pre)
    bpy.app.handlers.load_post.append(_on_load_post)
    bpy.app.handlers.save_post.append(_on_save_post)


def unregister() -> None:
    for handlers, fn in ((bpy.app.handlers.load_pre, _on_load_pre),
                         (bpy.app.handlers.load_post, _on_load_post),
                         (bpy.app.handlers.save_post, _on_save_post)):
        if fn in handlers:
            handlers.remove(fn)
    if bpy.app.timers.is_registered(_pump):
        bpy.app.timers.unregister(_pump)
    reset_engine()
    webhook_server.shutdown()  # the DRESSX local server, if it still runs
