"""Exporting one object's evaluated mesh with Blender's own exporters."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from t2t_testing import add_mesh, installed, select


def glb_json(path: Path) -> dict:
    data = path.read_bytes()
    assert data[:4] == b"glTF"
    (length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20:20 + length])


def blob(bpy):  # type: ignore[no-untyped-def]
    obj = add_mesh("monkey", "Blob")
    obj.scale = (2.0, 0.5, 1.0)
    obj.modifiers.new("Subdiv", "SUBSURF").levels = 1
    return obj


def evaluated_triangles(bpy, obj) -> int:  # type: ignore[no-untyped-def]
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).to_mesh()
    mesh.calc_loop_triangles()
    count = len(mesh.loop_triangles)
    obj.evaluated_get(depsgraph).to_mesh_clear()
    return count


def test_glb_holds_the_evaluated_mesh_of_that_object_only(blender, tmp_path: Path) -> None:
    bpy = blender
    obj = blob(bpy)
    other = add_mesh("cube", "Other", (5, 0, 0))
    select(other)  # the artist's selection
    path = installed("blender.export").export_mesh(obj, tmp_path / "blob.glb", "GLB")
    gltf = glb_json(path)
    assert [n["name"] for n in gltf["nodes"]] == ["Blob"] and len(gltf["meshes"]) == 1
    prim = gltf["meshes"][0]["primitives"][0]
    assert "TEXCOORD_0" in prim["attributes"]
    tris = gltf["accessors"][prim["indices"]]["count"] // 3
    assert tris == evaluated_triangles(bpy, obj) > 3 * 968  # subdivided: Suzanne alone has 968
    assert list(bpy.context.selected_objects) == [other]  # selection given back
    assert bpy.context.view_layer.objects.active == other
    assert tuple(obj.scale) == (2.0, 0.5, 1.0) and len(obj.modifiers) == 1


def test_obj_has_uvs_and_triangles(blender, tmp_path: Path) -> None:
    bpy = blender
    obj = blob(bpy)
    path = installed("blender.export").export_mesh(obj, tmp_path / "blob.obj", "OBJ")
    text = path.read_text()
    faces = [ln for ln in text.splitlines() if ln.startswith("f ")]
    assert len(faces) == evaluated_triangles(bpy, obj)
    assert all(len(f.split()) == 4 for f in faces)  # triangulated
    assert any(ln.startswith("vt ") for ln in text.splitlines())
    assert "usemtl" not in text  # no materials leave the machine


def test_unknown_format_is_one_clear_error(blender, tmp_path: Path) -> None:
    mod = installed("blender.export")
    with pytest.raises(mod.ExportError, match="unknown mesh format"):
        mod.export_mesh(add_mesh("cube", "C"), tmp_path / "x.fbx", "FBX")


def test_the_mesh_read_is_the_one_that_renders(blender) -> None:
    """A plain object's own mesh is read as it is (no scene re-evaluation), and it is exactly
    what the evaluated mesh holds; with a modifier, the evaluated one is read."""
    import numpy as np

    bpy = blender
    arrays = installed("blender.mesh_arrays")
    plain = add_mesh("monkey", "Plain")
    assert arrays.evaluated_mesh(plain) == plain.data
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = plain.evaluated_get(depsgraph).data
    own = arrays.loop_arrays(plain.data)
    other = arrays.loop_arrays(evaluated)
    for mine, theirs in zip(own, other):
        if mine is None:
            assert theirs is None
        else:
            np.testing.assert_array_equal(mine, theirs)
    modified = blob(bpy)
    assert arrays.evaluated_mesh(modified) != modified.data
