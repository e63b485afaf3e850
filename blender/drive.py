"""Who moves the jobs: one loop, whatever runs Blender.

`tick()` is the only caller of `Engine.tick()`. In the interface a `bpy.app.timers` pump calls
it (every 0.1 s while waiting for services, every 10 ms while results are being applied); the
modal operator only watches its batch. In background mode (`blender -b`, bpy as a module,
scripts) there are no timers, so `run_until` calls it in a loop until the work is done. A tick
that raises is logged and the pump goes on: one bad job never stops the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import bpy

from .engine import IDLE_TICK_S, TickResult, engine

log = logging.getLogger(__name__)

# The longest a blocking loop sleeps between ticks (the engine asks for less while busy).
LOOP_SLEEP_S = 0.02


def tick() -> TickResult | None:
    """One main-thread step of the engine; never raises."""
    try:
        return engine().tick()
    except Exception:  # a timer that raises is dropped silently by Blender; say why, go on
        log.exception("Text to Texture: a tick of the job engine failed")
        return None


def _pump() -> float | None:
    tick()
    try:
        eng = engine()
        if not eng.active_ids():
            return None  # nothing moves: the pump stops until the next job
        return eng.next_tick_in()
    except Exception:
        log.exception("Text to Texture: pacing the job engine failed")
        return IDLE_TICK_S


def ensure_pump() -> None:
    """Keep jobs moving in the interface (a no-op where timers never fire)."""
    if not bpy.app.timers.is_registered(_pump):
        bpy.app.timers.register(_pump, first_interval=0.0, persistent=True)


def stop_pump() -> None:
    if bpy.app.timers.is_registered(_pump):
        bpy.app.timers.unregister(_pump)


def run_until(done: Callable[[], bool], *, timeout: float | None = None,
              each: Callable[[], None] | None = None) -> bool:
    """Background mode: tick until `done()` (True) or `timeout` seconds pass (False); `each`
    runs after every tick (the command line prints state changes there)."""
    end = None if timeout is None else time.monotonic() + timeout
    finished = done()
    while not finished:
        tick()
        if each is not None:
            each()
        finished = done()
        if finished or (end is not None and time.monotonic() > end):
            break
        time.sleep(min(LOOP_SLEEP_S, engine().next_tick_in()))
    engine().runner.flush()  # what the main thread journaled is on disk when we return
    return finished


def run_jobs(job_ids: list[str], timeout: float | None = None) -> bool:
    """Background mode: tick until these jobs have ended."""
    eng = engine()
    return run_until(lambda: not any(i in eng.jobs and not eng.jobs[i].state.terminal
                                     for i in job_ids), timeout=timeout)
