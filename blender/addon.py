"""Where the extension keeps its things: its package name, preferences and user folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bpy

# "bl_ext.<repo>.text_to_texture" once installed; the preferences' bl_idname.
PACKAGE = __package__.rpartition(".")[0] if __package__ else "text_to_texture"

# Tests and pipelines may point the journal and caches elsewhere.
DATA_DIR_ENV = "TEXT_TO_TEXTURE_DATA_DIR"


def prefs() -> Any:
    """The add-on preferences, or None while the extension is not enabled (e.g. mid-unregister)."""
    addon = bpy.context.preferences.addons.get(PACKAGE)
    return addon.preferences if addon else None


def user_dir(name: str, create: bool = True) -> Path:
    """A folder of the extension's own, created on demand, outside the add-on's install folder."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        path = Path(override) / name
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(bpy.utils.extension_path_user(PACKAGE, path=name, create=create))


def texture_dir() -> Path:
    """`//textures/` beside a saved .blend (or the preferences' folder); else our user folder."""
    p = prefs()
    custom = getattr(p, "texture_folder", "") if p else ""
    if bpy.data.filepath:
        base = Path(bpy.path.abspath(custom or "//textures/"))
    elif custom and not custom.startswith("//"):
        base = Path(custom)
    else:
        base = user_dir("textures")
    return base
