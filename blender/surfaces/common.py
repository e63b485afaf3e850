"""What several providers' surfaces share: the reference image, and the mesh URL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bpy

from .. import addon

_IMAGE_EXTS = {".png", ".jpg", ".jpeg"}


class OptionsError(Exception):
    """One line saying what is wrong with the panel's options."""


def reference_image_file(image: bpy.types.Image) -> str:
    """A PNG/JPEG file holding `image`: its own file when it has one on disk, else a copy.
    Workers must not touch Blender data, so the image is handed to them as a file."""
    src = Path(bpy.path.abspath(image.filepath)) if image.filepath else None
    if image.packed_file is None and src and src.suffix.lower() in _IMAGE_EXTS and src.is_file():
        return str(src)
    if image.size[0] == 0 or image.size[1] == 0:
        raise OptionsError(f"The reference image '{image.name}' has no pixels")
    stem = re.sub(r"[^\w.-]+", "_", image.name)[:40] or "reference"
    dest = addon.user_dir("cache") / f"ref_{stem}.png"
    copy = image.copy()
    try:
        copy.filepath_raw = str(dest)
        copy.file_format = "PNG"
        copy.save()
    finally:
        bpy.data.images.remove(copy)
    return str(dest)


def common_options(settings: Any, *, mesh_url_key: str = "", reference: bool = False
                   ) -> dict[str, Any]:
    """The shared options a provider takes: the mesh URL (under its own key) and the
    reference image (as a file)."""
    opts: dict[str, Any] = {}
    mesh_url = settings.mesh_url.strip()
    if mesh_url_key and mesh_url:
        opts[mesh_url_key] = mesh_url
    if reference and settings.reference_image is not None:
        opts["reference_image_path"] = reference_image_file(settings.reference_image)
    return opts


def draw_reference_image(box: bpy.types.UILayout, settings: Any) -> None:
    box.label(text="Reference image (style to follow):", icon="IMAGE_DATA")
    box.template_ID(settings, "reference_image", open="image.open")


def draw_mesh_url(col: bpy.types.UILayout, settings: Any) -> None:
    col.prop(settings, "mesh_url", text="Mesh URL")

