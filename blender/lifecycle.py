"""The file's lifecycle: what jobs do when a file is closed, opened or saved, and the journal's
housekeeping when one is opened."""

from __future__ import annotations

import logging
import time

import bpy
from bpy.app.handlers import persistent

from ..net import local_server
from . import addon, assets, quotes, recovery
from .drive import ensure_pump, stop_pump
from .engine import engine, reset_engine

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0


@persistent
def _on_load_pre(*_args: object) -> None:
    # The jobs belong to the file being closed: stop watching them here (they keep running at
    # the provider and in the journal) and pick them up when that file is opened again.
    reset_engine()
    quotes.forget()


@persistent
def _on_save_post(*args: object) -> None:
    engine().note_saved()
    # The path just written (a copy's own, with `copy=True`); older Blenders pass none.
    path = args[0] if args and isinstance(args[0], str) and args[0] else bpy.data.filepath
    assets.sync_catalogs(path)  # our assets' catalogs, where Blender reads them for that file


@persistent
def _on_load_post(*_args: object) -> None:
    start_default_provider()
    prune_journal()
    if recovery.resume(engine()):
        ensure_pump()


def start_default_provider() -> None:
    """A scene whose provider was never chosen starts with the preferences' default."""
    p = addon.prefs()
    if p is None:
        return
    for scene in bpy.data.scenes:
        settings = getattr(scene, "text_to_texture", None)
        if settings is not None and not settings.is_property_set("provider"):
            settings.provider = p.default_provider


def prune_journal() -> int:
    """Drop finished jobs older than the preferences' "Keep finished jobs" from the journal."""
    p = addon.prefs()
    days = int(p.keep_days) if p is not None else 14
    try:
        return engine().journal.prune(days * DAY_S, time.time())
    except OSError as exc:  # housekeeping: never in the artist's way
        log.warning("Text to Texture: journal not pruned: %s", exc)
        return 0


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
    stop_pump()
    reset_engine()
    local_server.shutdown()  # the DRESSX local server, if it still runs
