"""Baking a provider's maps onto the artist's own UV map, in numpy (no Blender needed)."""

from .baker import BakeError, BakeResult, bake
from .target import BakeTarget, load_target, save_target

__all__ = ["BakeError", "BakeResult", "BakeTarget", "bake", "load_target", "save_target"]
