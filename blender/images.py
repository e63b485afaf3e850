"""Load map files as Blender images with the colour space their role needs."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

from ..formats import imagefile
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


_warm = False


def warm_up(folder: Path) -> None:
    """Load one tiny image once per session: Blender's first image load initialises its image
    and colour-management machinery (~13 ms), which belongs to the press of the button, not to
    a timer tick that applies a result while the artist works."""
    global _warm
    if _warm:
        return
    _warm = True
    path = folder / ".t2t-warm-up.png"
    try:
        if not path.is_file():
            imagefile.write_png(str(path), np.zeros((1, 1, 3), dtype=np.uint8))
        image = bpy.data.images.load(str(path), check_existing=False)
    except (OSError, RuntimeError):
        return  # only a few milliseconds are at stake
    image.colorspace_settings.name = "sRGB"
    mark_non_color(image)
    bpy.data.images.remove(image)
