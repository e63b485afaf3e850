"""Temporarily change what is selected, and always give the artist their selection back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy


@contextmanager
def kept_selection() -> Iterator[None]:
    """Whatever the body selects or activates, the artist's selection and active object return."""
    view_layer = bpy.context.view_layer
    prev_active = view_layer.objects.active
    prev_selected = list(bpy.context.selected_objects)
    try:
        yield
    finally:
        for o in list(bpy.context.selected_objects):
            o.select_set(False)
        for o in prev_selected:
            try:
                o.select_set(True)
            except (ReferenceError, RuntimeError):  # deleted or no longer in this view layer
                pass
        try:
            view_layer.objects.active = prev_active
        except ReferenceError:
            view_layer.objects.active = None


@contextmanager
def only_selected(obj: bpy.types.Object) -> Iterator[None]:
    with kept_selection():
        for o in list(bpy.context.selected_objects):
            o.select_set(False)
        obj.select_set(True)
        bpy.context.view_layer.objects.active = obj
        yield
