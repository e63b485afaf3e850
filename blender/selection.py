"""Temporarily change what is selected, and always give the artist their selection back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy


@contextmanager
def only_selected(obj: bpy.types.Object) -> Iterator[None]:
    ctx = bpy.context
    view_layer = ctx.view_layer
    prev_active = view_layer.objects.active
    prev_selected = list(ctx.selected_objects)
    try:
        for o in prev_selected:
            o.select_set(False)
        obj.select_set(True)
        view_layer.objects.active = obj
        yield
    finally:
        obj.select_set(False)
        for o in prev_selected:
            try:
                o.select_set(True)
            except (ReferenceError, RuntimeError):
                pass
        view_layer.objects.active = prev_active
