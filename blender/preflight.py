"""Can a job start? Everything checked before anything is sent, written once for the button,
the price quote and the command line: online access, the provider's settings, its options,
the request itself, a folder the maps can be written to, and the objects."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..jobs.prompts import check_template
from ..providers.base import Provider, ProviderConfig, TextureRequest
from ..providers.registry import label, provider_class, resolve_config
from . import addon
from .surfaces import OptionsError, provider_options


@dataclass
class Ready:
    """What a batch needs once every check passed."""

    provider: Provider  # configured from the preferences/environment (never journaled)
    options: dict[str, Any]  # the provider's part of each request
    out_dir: str  # where the maps go


def provider_config(provider_id: str) -> ProviderConfig:
    p = addon.prefs()
    saved = p.saved_config(provider_id) if p is not None else {}
    return resolve_config(provider_id, saved)


def online_blocker(provider_id: str) -> str:
    """One line saying why this provider cannot be used right now, or ""."""
    cls = provider_class(provider_id)
    if cls is None:
        return f"{label(provider_id)} is not available in this version"
    if not cls.offline and not bpy.app.online_access:
        return (
            f"{cls.label} needs online access: turn on Preferences > System > "
            "Network > Allow Online Access (the offline provider works without it)"
        )
    return ""


def valid_target(obj: bpy.types.Object) -> str:
    """"" when the object can be textured, else the one-line reason it is skipped."""
    if obj.type != "MESH":
        return f"Skipped '{obj.name}': not a mesh ({obj.type.lower()})"
    if len(obj.data.polygons) == 0:
        return f"Skipped '{obj.name}': the mesh has no faces"
    return ""


def triangle_count(obj: bpy.types.Object) -> int:
    """Triangles of the evaluated mesh (modifiers applied), without building a new mesh."""
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    totals = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    return int((totals - 2).sum())


def too_large(obj: bpy.types.Object, cls: type[Provider]) -> str:
    """"" or why the service would refuse this object's mesh (checked before any export)."""
    if cls.max_triangles and cls.mesh_format:
        tris = triangle_count(obj)
        if tris > cls.max_triangles:
            return (f"Skipped '{obj.name}': {tris:,} triangles is more than {cls.label} "
                    f"takes ({cls.max_triangles:,}); decimate it first")
    return ""


def writable_dir(path: Path) -> str:
    """"" when maps can be written into `path` (created if missing), else one line why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".t2t-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return (f"Cannot save textures in {path}: {reason} — choose another texture folder in "
                "Preferences > Add-ons > Text to Texture, or save the .blend elsewhere")
    return ""


def request_of(settings: Any, options: dict[str, Any], job_id: str = "check") -> TextureRequest:
    """The request the panel's settings describe (before an object gives it a mesh)."""
    return TextureRequest(
        job_id=job_id, prompt=settings.prompt.strip(),
        negative_prompt=settings.negative_prompt.strip(), seed=int(settings.seed),
        resolution=int(settings.resolution), enable_pbr=bool(settings.enable_pbr),
        options=dict(options),
    )


def preflight(settings: Any, targets: list[bpy.types.Object] | None = None, *,
              provider_id: str | None = None, folder: bool = True) -> Ready | str:
    """`Ready` when a job of these settings can start, else the one line why none can.

    `targets` (the objects of a batch) are checked against what the options allow; `folder`
    also checks that the maps can be written (a price quote writes none)."""
    pid = provider_id or settings.provider
    cls = provider_class(pid)
    blocker = online_blocker(pid)
    if cls is None or blocker:
        return blocker
    provider = cls(provider_config(pid))
    missing = provider.check_ready()
    if missing:
        return missing
    try:
        options = provider_options(settings, pid)
    except OptionsError as exc:
        return str(exc)
    by_url = options.get("model_url") or options.get("mesh_url")
    if by_url and targets is not None and sum(1 for o in targets if not valid_target(o)) > 1:
        return ("A mesh URL stands for one object: select just one, or clear the Mesh URL "
                "to upload each object")
    out_path = addon.texture_dir()
    panel = request_of(settings, options)
    problem = (check_template(settings.prompt) or check_template(settings.negative_prompt)
               or (writable_dir(out_path) if folder else ""))
    if not problem and panel.prompt and "{" not in panel.prompt:
        # Each object's own prompt is checked again when its job is planned (`batch.plan`).
        problem = provider.check_request(panel)
    return problem or Ready(provider, options, str(out_path))
