"""Ask the chosen provider what a job would cost, without freezing Blender.

The request runs on a short-lived thread; the answer is written to the scene settings by a
`bpy.app.timers` callback on the main thread (or at once by `wait()` in background mode).
"""

from __future__ import annotations

import threading
from typing import Any

import bpy

from .preflight import preflight, request_of

_results: dict[str, Any] = {}  # scene name -> answer (dict, None, or an error line)
_threads: dict[str, threading.Thread] = {}


def describe(answer: Any) -> str:
    if isinstance(answer, str):
        return answer
    if not answer or answer.get("cost_credits") is None:
        return "No price from this provider"
    unit = answer.get("unit") or "credits"
    text = f"≈ {answer['cost_credits']:g} {unit} per object"
    if answer.get("available_credits") is not None:
        text += f" ({answer['available_credits']:g} available)"
    if answer.get("note"):
        text += f"; {answer['note']}"
    return text


def request_quote(scene: bpy.types.Scene) -> str:
    """Start asking; "" or one line why it cannot be asked."""
    settings = scene.text_to_texture
    ready = preflight(settings, folder=False)
    if isinstance(ready, str):
        return ready
    provider = ready.provider
    request = request_of(settings, ready.options, job_id="quote")
    name = scene.name

    def ask() -> None:
        try:
            _results[name] = provider.quote(request)
        except Exception as exc:  # the quote is a courtesy: never an error dialog
            _results[name] = f"No price: {provider.redact(str(exc))}"

    settings.quote = "Asking for a price…"
    thread = threading.Thread(target=ask, name="t2t-quote", daemon=True)
    _threads[name] = thread
    thread.start()
    if not bpy.app.timers.is_registered(_collect):
        bpy.app.timers.register(_collect, first_interval=0.2)
    return ""


def _collect() -> float | None:
    for name in [n for n, t in _threads.items() if not t.is_alive()]:
        _threads.pop(name)
        scene = bpy.data.scenes.get(name)
        if scene is not None and name in _results:
            scene.text_to_texture.quote = describe(_results.pop(name))
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()
    return 0.2 if _threads else None


def wait(scene: bpy.types.Scene, timeout: float = 30.0) -> str:
    """Background mode (no timers): block for the answer and store it."""
    thread = _threads.get(scene.name)
    if thread is not None:
        thread.join(timeout)
    _collect()
    return str(scene.text_to_texture.quote)
