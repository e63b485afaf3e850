"""What several providers' surfaces share: the reference image, and the mesh URL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bpy
from bpy.props import IntProperty

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


def recall_common(settings: Any, options: dict[str, Any], *, mesh_url_key: str = "",
                  reference: bool = False) -> None:
    """Put the shared options of a journaled request back (the inverse of `common_options`)."""
    if mesh_url_key:
        settings.mesh_url = str(options.get(mesh_url_key) or "")
    if reference:
        path = str(options.get("reference_image_path") or "")
        image = None
        if path and Path(path).is_file():
            image = bpy.data.images.load(path, check_existing=True)
        settings.reference_image = image


def set_choice(settings: Any, prop: str, value: Any, default: str) -> None:
    """Set an enum to `value` when it is one of its items, else to `default`."""
    items = {i.identifier for i in settings.bl_rna.properties[prop].enum_items}
    setattr(settings, prop, str(value) if str(value) in items else default)


def draw_reference_image(box: bpy.types.UILayout, settings: Any) -> None:
    box.label(text="Reference image (style to follow):", icon="IMAGE_DATA")
    box.template_ID(settings, "reference_image", open="image.open")


def draw_mesh_url(col: bpy.types.UILayout, settings: Any) -> None:
    col.prop(settings, "mesh_url", text="Mesh URL")



def jobs_at_once_pref(label: str, pid: str, default: int, why: str) -> Any:
    """The "Jobs at once" preference of a provider (`<prefix>_jobs_at_once`): how many of its
    jobs are at the service at once. A full queue answer makes jobs wait and lowers it for a
    while, so a value above the plan costs time, never a failed job."""
    return IntProperty(
        name="Jobs at once", default=default, min=1, max=200, soft_max=100,
        description=f"How many {label} jobs run at once: {why} ({pid}_JOBS_AT_ONCE wins). "
        "More than your plan allows only makes jobs wait",
    )
