"""Temporarily change what is selected, and always give the artist their selection back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy


def selected(view_layer: bpy.types.ViewLayer) -> list[bpy.types.Object]:
    """The selected objects, read from the view layer: `context.selected_objects` does not
    exist without a window (`blender -b --command`)."""
    return [o for o in view_layer.objects if o.select_get(view_layer=view_layer)]


@contextmanager
def kept_selection() -> Iterator[None]:
    """Whatever the body selects or activates, the artist's selection and active object return."""
    view_layer = bpy.context.view_layer
    assert view_layer is not None  # a scene is open
    prev_active = view_layer.objects.active
    prev_selected = selected(view_layer)
    try:
        yield
    finally:
        for o in selected(view_layer):
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
    view_layer = bpy.context.view_layer
    assert view_layer is not None  # a scene is open
    with kept_selection():
        for o in selected(view_layer):
            o.select_set(False)
        obj.select_set(True)
        view_layer.objects.active = obj
        yield
