"""Load map files as Blender images with the colour space their role needs."""

from __future__ import annotations

import os
from pathlib import Path

import bpy

from ..providers.base import BASE_COLOR
from .compat import mark_non_color


def load_map(path: str | os.PathLike[str], role: str, pack: bool) -> bpy.types.Image:
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = Path(path).stem
    if role == BASE_COLOR:
        image.colorspace_settings.name = "sRGB"
    else:
        mark_non_color(image)
    if bpy.data.filepath:
        try:
            image.filepath = bpy.path.relpath(str(path))
        except ValueError:  # another drive on Windows: keep the absolute path
            pass
    if pack:
        image.pack()
    return image
