"""Each object's own prompts: a prompts file's line, else the object's `t2t_prompt` /
`t2t_negative_prompt` custom properties, else the panel's prompts; placeholders filled from the
object (see `jobs/prompts.py` for what each placeholder means)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import bpy

from ..jobs.prompts import (
    NEGATIVE_PROP,
    PROMPT_PROP,
    ObjectPrompt,
    PromptError,
    fill,
    joined,
    readable_name,
)
from .material import BSDF_NODE

__all__ = ["ObjectPrompts", "PromptError", "count_own", "own_prompt", "resolve", "values_of"]


@dataclass(frozen=True)
class ObjectPrompts:
    prompt: str  # placeholders filled
    negative_prompt: str
    source: str  # "file", "object" or "panel": where the prompt came from
    template: str  # the prompt as written there, placeholders and all


def _prop(obj: bpy.types.Object, key: str) -> str:
    value = obj.get(key)
    return value.strip() if isinstance(value, str) else ""


def own_prompt(obj: bpy.types.Object) -> bool:
    """True when the object carries its own prompt (custom property `t2t_prompt`)."""
    return bool(_prop(obj, PROMPT_PROP))


def count_own(objects: Iterable[bpy.types.Object]) -> int:
    return sum(1 for o in objects if own_prompt(o))


def _ours(mat: bpy.types.Material) -> bool:
    """A material this extension built (found by its node name)."""
    return bool(mat.node_tree is not None and mat.node_tree.nodes.get(BSDF_NODE))


def values_of(obj: bpy.types.Object, scene: bpy.types.Scene | None = None) -> dict[str, str]:
    """What `{name}`, `{collection}` and `{material}` stand for on this object."""
    top = scene.collection if scene is not None else None
    collections = sorted(c.name for c in obj.users_collection if c != top
                         and not (top is None and c.name == "Scene Collection"))
    materials = [s.material.name for s in obj.material_slots
                 if s.material is not None and not _ours(s.material)]
    return {
        "name": readable_name(obj.name),
        "collection": joined(collections),
        "material": joined(materials),
    }


def resolve(obj: bpy.types.Object, settings: Any, scene: bpy.types.Scene | None = None,
            overrides: Mapping[str, ObjectPrompt] | None = None) -> ObjectPrompts:
    """The prompts this object is textured with; raises PromptError (one line, naming it)."""
    line = (overrides or {}).get(obj.name)
    prompt, source = "", "panel"
    for text, where in ((line.prompt if line else "", "file"),
                        (_prop(obj, PROMPT_PROP), "object"),
                        (str(settings.prompt).strip(), "panel")):
        if text:
            prompt, source = text, where
            break
    negative = next((t for t in (line.negative_prompt if line else "",
                                 _prop(obj, NEGATIVE_PROP),
                                 str(settings.negative_prompt).strip()) if t), "")
    values = values_of(obj, scene)
    try:
        filled = fill(prompt, values)
        filled_negative = fill(negative, values)
    except PromptError as exc:
        raise PromptError(f"Skipped '{obj.name}': {exc}") from None
    if not filled:
        raise PromptError(f"Skipped '{obj.name}': no prompt (type one in the panel, or give "
                          f"the object a '{PROMPT_PROP}' custom property)")
    return ObjectPrompts(filled, filled_negative, source, prompt)
