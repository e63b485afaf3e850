"""Each provider's Blender-side surface, one module per provider named after its id: the scene
settings it adds, its preferences, how the panel draws its options, how they are gathered
into a request and how a journaled request's options are put back (Recall).

A surface module defines `SCENE` and `PREFS` (property name -> bpy property, added to the scene
settings and to the add-on preferences), `draw(box, col, settings)`, `options(settings)` and
`recall(settings, options)` (the inverse of `options`).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ...providers.registry import PROVIDERS
from .common import OptionsError, common_options

__all__ = ["OptionsError", "all_surfaces", "common_options", "provider_options", "surface"]


def surface(provider_id: str) -> ModuleType:
    return importlib.import_module(f".{provider_id.lower()}", __name__)


def all_surfaces() -> dict[str, ModuleType]:
    """Every provider's surface, in the registry's order."""
    return {pid: surface(pid) for pid in PROVIDERS}


def provider_options(settings: Any, provider_id: str) -> dict[str, Any]:
    """The options dict a provider finds in `TextureRequest.options` (never a key)."""
    return surface(provider_id).options(settings)

