"""The file's lifecycle: what jobs do when a file is closed, opened or saved, or the artist
undoes; and the journal's housekeeping when one is opened.

* Closing a file (File > New, opening another) stops watching its jobs; they keep running at the
  provider and in the journal, and resume when that file is opened again. The jobs of an unsaved
  file would never be opened again: the file opened next adopts them at once, as after a crash
  (listed, their maps kept, "Apply to Active").
* Undo and redo restore the scene's job records as they were; every job of this session whose
  record an undo took away gets it back (`RecordIndex.restore`).
* Saving never keeps a deleted object alive in the file through a job record.
"""

from __future__ import annotations

import logging
import time

import bpy
from bpy.app.handlers import persistent

from ..net import local_server
from . import addon, assets, quotes, recovery
from .drive import ensure_pump, stop_pump
from .engine import engine, reset_engine
from .props import settings_of
from .records import live_object, shown_id

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0
# Jobs of the unsaved file being closed, for the file opened next to adopt.
_closed_unsaved: set[str] = set()


@persistent
def _on_load_pre(*_args: object) -> None:
    # The jobs belong to the file being closed: stop watching them here (they keep running at
    # the provider and in the journal) and pick them up when that file is opened again; those
    # of an unsaved file are adopted by the file opened next.
    _closed_unsaved.update(engine().unsaved_running())
    reset_engine()
    quotes.forget()


@persistent
def _on_save_pre(*_args: object) -> None:
    # A record's pointer must not save an object the artist deleted (in no scene) into the file.
    for scene in bpy.data.scenes:
        for rec in settings_of(scene).jobs:
            live_object(rec)


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
    scrub_remote_ids()
    closed = set(_closed_unsaved)
    _closed_unsaved.clear()
    if recovery.resume(engine(), closed):
        ensure_pump()


@persistent
def _on_undo_redo(*_args: object) -> None:
    eng = engine()
    if eng.records.restore(eng.jobs):
        log.info("Text to Texture: job records an undo took away were put back")


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


def scrub_remote_ids() -> None:
    """A file saved by an earlier version may hold a secret of a job in a record's remote id
    (DRESSX's webhook token): keep only what may be shown."""
    for scene in bpy.data.scenes:
        for rec in settings_of(scene).jobs:
            shown = shown_id(rec.provider, rec.remote_id)
            if shown != rec.remote_id:
                rec.remote_id = shown


_HANDLERS = (("load_pre", _on_load_pre), ("load_post", _on_load_post),
             ("save_pre", _on_save_pre), ("save_post", _on_save_post),
             ("undo_post", _on_undo_redo), ("redo_post", _on_undo_redo))


def register() -> None:
    for name, fn in _HANDLERS:
        getattr(bpy.app.handlers, name).append(fn)


def unregister() -> None:
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn in handlers:
            handlers.remove(fn)
    stop_pump()
    reset_engine()
    local_server.shutdown()  # the DRESSX local server, if it still runs
