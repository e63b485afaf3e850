"""Export one object's evaluated mesh (modifiers, scale) with Blender's own exporters."""

from __future__ import annotations

from pathlib import Path

import bpy

from .selection import only_selected


class ExportError(Exception):
    pass


def export_mesh(obj: bpy.types.Object, path: Path, fmt: str) -> Path:
    """Write `obj` alone to `path` as GLB or OBJ (with UVs, modifiers applied, no materials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt.upper()
    with only_selected(obj):
        if fmt == "GLB":
            result = bpy.ops.export_scene.gltf(
                filepath=str(path),
                export_format="GLB",
                use_selection=True,
                export_apply=True,
                export_materials="NONE",
                export_texcoords=True,
                export_normals=True,
                export_animations=False,
                export_yup=True,
            )
        elif fmt == "OBJ":
            result = bpy.ops.wm.obj_export(
                filepath=str(path),
                export_selected_objects=True,
                apply_modifiers=True,
                export_eval_mode="DAG_EVAL_VIEWPORT",
                export_uv=True,
                export_normals=True,
                export_materials=False,
                export_triangulated_mesh=True,
            )
        else:
            raise ExportError(f"unknown mesh format {fmt!r}")
    if "FINISHED" not in result or not path.is_file() or path.stat().st_size == 0:
        raise ExportError(f"Blender could not export '{obj.name}' as {fmt}")
    return path
