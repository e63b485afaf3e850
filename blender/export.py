"""Export one object's evaluated mesh (modifiers, transform) as GLB or OBJ, at once.

The job system splits this in two (arrays on the main thread, the file in the job's worker);
this is the same thing in one call, for scripts and tests.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ..formats import meshfile
from .mesh_arrays import ExportError, evaluated_arrays

__all__ = ["ExportError", "export_mesh"]


def export_mesh(obj: bpy.types.Object, path: Path, fmt: str) -> Path:
    """Write `obj` alone to `path` as GLB or OBJ (with UVs and normals, no materials)."""
    fmt = fmt.upper()
    if fmt not in ("GLB", "OBJ"):
        raise ExportError(f"unknown mesh format {fmt!r}")
    arrays = evaluated_arrays(obj)
    try:
        if fmt == "GLB":
            return meshfile.write_glb(arrays, path)
        return meshfile.write_obj(arrays, path)
    except (OSError, meshfile.MeshFileError) as exc:
        raise ExportError(f"Could not write '{obj.name}' as {fmt}: {exc}") from exc
