"""The offline provider's surface: it has no options of its own."""

from __future__ import annotations

from typing import Any

import bpy

SCENE: dict[str, Any] = {}
PREFS: dict[str, Any] = {}


def draw(box: bpy.types.UILayout, col: bpy.types.UILayout, settings: Any) -> None:
    """Nothing to draw: the panel's common options are all it reads."""


def options(settings: Any) -> dict[str, Any]:
    return {}


def recall(settings: Any, options: dict[str, Any]) -> None:
    """Nothing to put back: the offline provider has no options."""
