"""The provider-specific part of a request, read from the scene settings on the main thread.

Workers must not touch Blender data, so anything they need from it (a reference image) is
written to a file here first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bpy

from . import addon

_IMAGE_EXTS = {".png", ".jpg", ".jpeg"}


class OptionsError(Exception):
    """One line saying what is wrong with the panel's options."""


def reference_image_file(image: bpy.types.Image) -> str:
    """A PNG/JPEG file holding `image`: its own file when it has one on disk, else a copy."""
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


def provider_options(settings: Any, provider_id: str) -> dict[str, Any]:
    """The options dict a provider finds in `TextureRequest.options` (never a key)."""
    opts: dict[str, Any] = {}
    mesh_url = settings.mesh_url.strip()
    if mesh_url:
        opts["model_url" if provider_id != "DRESSX" else "mesh_url"] = mesh_url
    if settings.reference_image is not None and provider_id in ("MESHY", "TRIVERSE"):
        opts["reference_image_path"] = reference_image_file(settings.reference_image)
    if provider_id == "MESHY":
        opts["enable_original_uv"] = bool(settings.meshy_original_uv)
        if settings.meshy_ai_model != "latest":
            opts["ai_model"] = settings.meshy_ai_model
        opts["art_style"] = settings.meshy_art_style
    if provider_id == "SCENARIO":
        opts["samples"] = int(settings.scenario_samples)
        opts["tile_size"] = float(settings.scenario_tile_size)
        if settings.scenario_steps > 0:
            opts["steps"] = int(settings.scenario_steps)
        if settings.scenario_guidance > 0:
            opts["guidance"] = float(settings.scenario_guidance)
    if provider_id == "DRESSX":
        opts["refine"] = bool(settings.dressx_refine)
        opts["num_inference_steps"] = int(settings.dressx_steps)
    if provider_id == "TRIVERSE" and settings.triverse_polygon_limit > 0:
        if settings.triverse_polygon_limit < 1000:
            raise OptionsError("Triverse's polygon limit is 1,000 to 1,500,000 (0 = no limit)")
        opts["polygon_limit"] = int(settings.triverse_polygon_limit)
    return opts
