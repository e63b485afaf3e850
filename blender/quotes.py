"""The price of the whole selection, shown under the Texture button, without freezing Blender.

Each object's job is planned exactly as the button would plan it (its own prompt, options,
checks), then priced by `providers.pricing`: a provider's published price per task is summed on
the main thread at once; a provider that must be asked is asked on a short-lived thread, and the
answer is collected by a `bpy.app.timers` callback (or by `wait()` in background mode).

`draw()` never prices: it calls `shown()`, which only compares the settings and selection with
the ones the last answer was made for, and asks a timer to re-price when a provider publishes
its prices (no network). Providers that must be asked are asked only when the artist presses
the price button.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable
from typing import Any

import bpy

from ..jobs.prompts import NEGATIVE_PROP, PROMPT_PROP
from ..net.errors import CancelToken
from ..providers.base import Provider
from ..providers.pricing import BatchPrice, describe, price_batch
from ..providers.registry import provider_class
from .batch import Plan, plan
from .props import settings_of
from .redraw import redraw
from .surfaces import surface

log = logging.getLogger(__name__)

PRICING = "Pricing…"

Signature = tuple[Any, ...]

_answers: dict[str, tuple[Signature, str]] = {}  # scene name -> (what it priced, the line)
_asking: dict[str, tuple[Signature, threading.Thread, CancelToken]] = {}
_results: dict[str, tuple[Signature, str]] = {}  # written by the pricing threads
_auto_due: set[str] = set()  # scenes with a re-price scheduled


def signature(scene: bpy.types.Scene, objects: Iterable[bpy.types.Object]) -> Signature:
    """Everything a price depends on, read cheaply (fine in draw())."""
    s = settings_of(scene)
    extra = tuple(str(getattr(s, name)) for name in surface(s.provider).SCENE)
    objs = tuple(sorted((o.name, str(o.get(PROMPT_PROP, "")), str(o.get(NEGATIVE_PROP, "")))
                        for o in objects))
    return (s.provider, s.prompt, s.negative_prompt, s.seed, s.resolution, s.enable_pbr,
            s.uv_policy, str(s.reference_image.name if s.reference_image else ""), s.mesh_url,
            extra, objs)


def publishes_prices(provider_id: str) -> bool:
    """Offline, or a provider whose price per task is known without asking it."""
    cls = provider_class(provider_id)
    return cls is not None and (cls.offline or cls.price_per_task is not Provider.price_per_task)


def shown(scene: bpy.types.Scene, objects: list[bpy.types.Object]) -> str:
    """The line to show for this selection, or "" (none yet: the panel offers the button).
    Safe in draw(): it writes nothing, and only schedules a timer to re-price."""
    sig = signature(scene, objects)
    answer = _answers.get(scene.name)
    if answer is not None and answer[0] == sig:
        return answer[1]
    asking = _asking.get(scene.name)
    if asking is not None and asking[0] == sig:
        return PRICING
    if objects and publishes_prices(settings_of(scene).provider):
        if scene.name not in _auto_due:
            _auto_due.add(scene.name)
            names = [o.name for o in objects]
            bpy.app.timers.register(functools.partial(_auto, scene.name, names),
                                    first_interval=0.05)
        return PRICING
    return ""


def _auto(scene_name: str, names: list[str]) -> None:
    _auto_due.discard(scene_name)
    scene: bpy.types.Scene | None = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    found: list[bpy.types.Object | None] = [bpy.data.objects.get(n) for n in names]
    objects = [o for o in found if o is not None]
    try:
        request_quote(scene, objects)
    except Exception:  # the price is a courtesy: a bug here must not retry at every redraw
        log.exception("Text to Texture: pricing the selection failed")
        _answers[scene_name] = (signature(scene, objects), "No price (see the console)")
    redraw()


def price_plan(planned: Plan) -> BatchPrice | str:
    """Price a plan in this thread (quotes may block): the price, or the line why none."""
    if planned.ready is None:
        return planned.skipped[0] if planned.skipped else "Nothing to price"
    return price_batch(planned.ready.provider, [p.request for p in planned.jobs])


def line(planned: Plan, price: BatchPrice | str) -> str:
    if isinstance(price, str):
        return price
    text = describe(price)
    skipped = len(planned.skipped)
    return f"{text}; {skipped} skipped" if skipped and price.jobs else text


def _store(scene: bpy.types.Scene, sig: Signature, text: str) -> None:
    _answers[scene.name] = (sig, text)
    settings_of(scene).quote = text  # saved with the file: the last price seen


def request_quote(scene: bpy.types.Scene, objects: Iterable[bpy.types.Object]) -> str:
    """Price these objects' jobs: at once when the provider publishes its prices, else on a
    thread. "" or one line why nothing can be priced."""
    objects = list(objects)
    sig = signature(scene, objects)
    name = scene.name
    if not objects:
        _store(scene, sig, "Select objects to see the price")
        return "Select the objects to price first"
    planned = plan(scene, objects, folder=False)
    if planned.ready is None:
        _store(scene, sig, planned.skipped[0])
        return planned.skipped[0]
    if not planned.jobs:
        _store(scene, sig, "None of the selected objects can be textured")
        return ""
    provider = planned.ready.provider
    requests = [p.request for p in planned.jobs]
    local = type(provider).offline or all(provider.price_per_task(r) is not None
                                          for r in requests)
    if local:
        _store(scene, sig, line(planned, price_batch(provider, requests)))
        return ""
    old = _asking.pop(name, None)
    if old is not None:
        old[2].cancel()
    token = CancelToken()

    def ask() -> None:
        try:
            text = line(planned, price_batch(provider, requests, token))
        except Exception as exc:  # the price is a courtesy: never an error dialog
            text = f"No price: {provider.redact(str(exc))}"
        if not token.canceled:
            _results[name] = (sig, text)

    thread = threading.Thread(target=ask, name="t2t-price", daemon=True)
    _asking[name] = (sig, thread, token)
    thread.start()
    if not bpy.app.background and not bpy.app.timers.is_registered(_collect):
        bpy.app.timers.register(_collect, first_interval=0.2)
    return ""


def _collect() -> float | None:
    for name in [n for n, (_s, t, _c) in _asking.items() if not t.is_alive()]:
        sig = _asking.pop(name)[0]
        result = _results.pop(name, None)
        if result is not None and result[0] == sig:
            scene: bpy.types.Scene | None = bpy.data.scenes.get(name)
            if scene is not None:
                _store(scene, *result)
    redraw()
    return 0.2 if _asking else None


def wait(scene: bpy.types.Scene, timeout: float = 30.0) -> str:
    """Background mode (no timers): block for the answer; the line now shown."""
    asking = _asking.get(scene.name)
    if asking is not None:
        asking[1].join(timeout)
    _collect()
    answer = _answers.get(scene.name)
    return answer[1] if answer else ""


def forget() -> None:
    """Drop every answer (a file was opened: its selection and settings are new)."""
    for _sig, _thread, token in _asking.values():
        token.cancel()
    _asking.clear()
    _answers.clear()
    _results.clear()
