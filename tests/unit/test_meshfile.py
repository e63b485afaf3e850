"""Writing GLB/OBJ from mesh arrays and reading a GLB back, checked against an independent
glTF reader (the emulators') and against hand-computed geometry."""

from __future__ import annotations

import base64
import copy
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emulators.base import guard_loopback, map_png
from emulators.glb import cube_glb, make_glb, read_accessor, read_glb, write_glb
from emulators.triverse import mr_png, textured_glb
from text_to_texture.formats import meshfile
from text_to_texture.formats.mesh import group
from text_to_texture.formats.meshfile import MeshArrays, MeshFileError

FLOAT, UBYTE, USHORT, UINT = 5126, 5121, 5123, 5125
RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


# --------------------------------------------------------------------------- test meshes


def atlas_cube(size: float = 1.0) -> MeshArrays:
    """A Blender cube: 8 vertices, 12 triangles, each face in its own cell of a 3x2 UV atlas
    and flat normals, so 24 distinct (vertex, normal, uv) corners."""
    faces = [((0, 0, 1), (1, 0, 0)), ((0, 0, -1), (-1, 0, 0)), ((1, 0, 0), (0, 1, 0)),
             ((-1, 0, 0), (0, -1, 0)), ((0, 1, 0), (-1, 0, 0)), ((0, -1, 0), (1, 0, 0))]
    verts: dict[tuple[float, ...], int] = {}
    corners: list[int] = []
    uvs: list[tuple[float, float]] = []
    normals: list[tuple[int, ...]] = []
    for f, (n, u) in enumerate(faces):
        nv, uv = np.array(n, float), np.array(u, float)
        v = np.cross(nv, uv)  # (u, v, n) right-handed: the quad below is CCW seen from outside
        quad = []
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            p = tuple(float(x) for x in (nv + su * uv + sv * v) * size / 2)
            quad.append((verts.setdefault(p, len(verts)), ((su + 1) / 2 + f % 3) / 3,
                         ((sv + 1) / 2 + f // 3) / 2))
        for k in (0, 1, 2, 0, 2, 3):
            corners.append(quad[k][0])
            uvs.append((quad[k][1], quad[k][2]))
            normals.append(n)
    positions = np.array(sorted(verts, key=verts.__getitem__), dtype=np.float32)
    return MeshArrays(positions, np.array(corners, np.int32), np.array(normals, np.float32),
                      np.array(uvs, np.float32), "AtlasCube")


def grid(n: int, seams: bool = False) -> MeshArrays:
    """An n x n quad grid (2n² triangles) with a wavy height, smooth normals and UVs; with
    `seams`, every row of quads gets its own UV island (corner UVs differ across rows)."""
    ys, xs = np.mgrid[0:n + 1, 0:n + 1]
    x, y = xs.ravel() / n, ys.ravel() / n
    pos = np.column_stack([x, y, 0.1 * np.sin(7 * x) * np.cos(5 * y)]).astype(np.float32)
    v = (ys[:-1, :-1] * (n + 1) + xs[:-1, :-1]).ravel()
    tri = np.stack([v, v + 1, v + n + 2, v, v + n + 2, v + n + 1], axis=1).reshape(-1)
    uv = pos[tri, :2].copy()
    if seams:
        row = np.repeat(np.arange(n * n) // n, 6)
        uv[:, 1] = uv[:, 1] * 0.5 + 0.001 * row
    normals = np.column_stack([-0.7 * np.cos(7 * x) * np.cos(5 * y),
                               0.5 * np.sin(7 * x) * np.sin(5 * y), np.ones_like(x)])[tri]
    normals /= np.linalg.norm(normals, axis=1)[:, None]
    return MeshArrays(pos, tri.astype(np.int32), normals.astype(np.float32),
                      uv.astype(np.float32), "Grid")


def corner_positions(mesh: MeshArrays) -> np.ndarray:
    return mesh.positions[mesh.corner_verts]


def triangle_set(mesh: MeshArrays) -> set[tuple[float, ...]]:
    """Triangles as rotation-normalised tuples of corner positions (winding kept)."""
    tris = corner_positions(mesh).reshape(-1, 3, 3).round(5) + 0.0
    out = set()
    for t in tris.tolist():
        k = min(range(3), key=lambda i: t[i])
        out.add(tuple(x for p in t[k:] + t[:k] for x in p))
    return out


def outward(mesh: MeshArrays, center: np.ndarray) -> np.ndarray:
    """Per triangle: does its winding's normal point away from `center`?"""
    t = corner_positions(mesh).reshape(-1, 3, 3).astype(np.float64)
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    return np.einsum("ij,ij->i", n, t.mean(axis=1) - center) > 0


def to_blender(p: Any) -> np.ndarray:
    """glTF (x, y, z) -> Blender (x, -z, y), computed here independently of the module."""
    p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
    return np.column_stack([p[:, 0], -p[:, 2], p[:, 1]])


class Gltf:
    """A glTF under construction (JSON + BIN), independent of the module under test."""

    def __init__(self) -> None:
        self.json: dict[str, Any] = {
            "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": []}], "nodes": [],
            "meshes": [], "accessors": [], "bufferViews": [], "buffers": [{"byteLength": 0}],
        }
        self.bin = bytearray()

    def view(self, data: bytes, stride: int | None = None) -> int:
        self.bin.extend(b"\x00" * (-len(self.bin) % 4))
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if stride:
            view["byteStride"] = stride
        self.json["bufferViews"].append(view)
        self.bin.extend(data)
        return len(self.json["bufferViews"]) - 1

    def accessor(self, view: int, ctype: int, kind: str, count: int, offset: int = 0,
                 **extra: Any) -> int:
        acc = {"bufferView": view, "componentType": ctype, "type": kind, "count": count,
               "byteOffset": offset, **extra}
        self.json["accessors"].append(acc)
        return len(self.json["accessors"]) - 1

    def array(self, values: Any, dtype: str, kind: str, **extra: Any) -> int:
        arr = np.ascontiguousarray(values, dtype=dtype)
        ctype = {"<f4": FLOAT, "<u1": UBYTE, "<u2": USHORT, "<u4": UINT}[dtype]
        return self.accessor(self.view(arr.tobytes()), ctype, kind, len(arr), **extra)

    def mesh(self, *primitives: dict[str, Any], name: str | None = None) -> int:
        mesh: dict[str, Any] = {"primitives": list(primitives)}
        if name:
            mesh["name"] = name
        self.json["meshes"].append(mesh)
        return len(self.json["meshes"]) - 1

    def node(self, root: bool = True, **fields: Any) -> int:
        self.json["nodes"].append(fields)
        if root:
            self.json["scenes"][0]["nodes"].append(len(self.json["nodes"]) - 1)
        return len(self.json["nodes"]) - 1

    def glb(self) -> bytes:
        self.json["buffers"][0]["byteLength"] = len(self.bin)
        return write_glb(self.json, bytes(self.bin))


TRIANGLE = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)  # glTF axes, CCW toward +Z


def triangle_gltf(**node: Any) -> Gltf:
    g = Gltf()
    pos = g.array(TRIANGLE, "<f4", "VEC3")
    g.node(mesh=g.mesh({"attributes": {"POSITION": pos}}), **node)
    return g


def save(tmp_path: Path, data: bytes, name: str = "model.glb") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def edited(glb: bytes, edit: Any) -> bytes:
    gltf, binary = read_glb(glb)
    gltf = copy.deepcopy(gltf)
    edit(gltf)
    return write_glb(gltf, binary)


def parse_obj(text: str) -> dict[str, Any]:
    """An OBJ's elements, with faces as per-corner (v, vt, vn) 1-based index triples."""
    out: dict[str, Any] = {"o": [], "v": [], "vt": [], "vn": [], "f": [], "other": []}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        if key in ("v", "vt", "vn"):
            out[key].append([float(x) for x in rest.split()])
        elif key == "f":
            out["f"].append([[int(i) if i else 0 for i in c.split("/")] + [0] * (2 - c.count("/"))
                             for c in rest.split()])
        elif key == "o":
            out["o"].append(rest)
        else:
            out["other"].append(line)
    return out


# --------------------------------------------------------------------------- write_glb


def test_glb_round_trip_keeps_vertices_triangles_uvs_and_normals(tmp_path: Path) -> None:
    mesh = atlas_cube()
    path = meshfile.write_glb(mesh, tmp_path / "sub" / "cube.glb")  # parent dirs are made
    assert path == tmp_path / "sub" / "cube.glb"
    back = meshfile.read_glb(path)
    assert back.name == "AtlasCube" and back.triangles == 12
    # Corners are merged back into Blender's 8 vertices, in Blender's vertex order.
    np.testing.assert_array_equal(back.positions, mesh.positions)
    np.testing.assert_array_equal(back.corner_verts, mesh.corner_verts)
    assert back.uvs is not None and back.normals is not None
    np.testing.assert_allclose(back.uvs, mesh.uvs, atol=1e-6)
    np.testing.assert_allclose(back.normals, mesh.normals, atol=1e-6)
    assert outward(back, np.zeros(3)).all()


def test_glb_json_is_y_up_with_bounds_flipped_v_and_one_named_node(tmp_path: Path) -> None:
    mesh = atlas_cube()
    mesh.positions = mesh.positions + np.float32([1, 2, 3])  # Blender point (1, 2, 3) is the centre
    gltf, binary = read_glb(meshfile.write_glb(mesh, tmp_path / "c.glb").read_bytes())
    assert gltf["asset"] == {"version": "2.0", "generator": "Text to Texture"}
    assert gltf["nodes"] == [{"name": "AtlasCube", "mesh": 0}]
    assert gltf["scenes"][gltf["scene"]]["nodes"] == [0]
    assert "materials" not in gltf and "textures" not in gltf and "images" not in gltf
    prim = gltf["meshes"][0]["primitives"][0]
    assert prim["mode"] == 4 and set(prim["attributes"]) == {"POSITION", "NORMAL", "TEXCOORD_0"}
    acc = gltf["accessors"]
    pos = read_accessor(gltf, binary, prim["attributes"]["POSITION"])
    idx = read_accessor(gltf, binary, prim["indices"]).ravel()
    uv = read_accessor(gltf, binary, prim["attributes"]["TEXCOORD_0"])
    nrm = read_accessor(gltf, binary, prim["attributes"]["NORMAL"])
    assert len(pos) == 24  # one glTF vertex per distinct (vertex, normal, uv), not 36
    assert acc[prim["indices"]]["componentType"] == USHORT
    # Y up: the centre (1, 2, 3) is at (1, 3, -2), and the bounds are the real ones.
    np.testing.assert_allclose(pos.mean(axis=0), [1, 3, -2], atol=1e-6)
    assert acc[prim["attributes"]["POSITION"]]["min"] == pytest.approx([0.5, 2.5, -2.5])
    assert acc[prim["attributes"]["POSITION"]]["max"] == pytest.approx([1.5, 3.5, -1.5])
    assert acc[prim["attributes"]["POSITION"]]["min"] == pos.min(axis=0).tolist()
    # Per corner, the glTF data is the Blender data converted: v flipped, normals Y up.
    blender = mesh.positions[mesh.corner_verts]
    np.testing.assert_allclose(pos[idx], np.column_stack(
        [blender[:, 0], blender[:, 2], -blender[:, 1]]), atol=1e-6)
    np.testing.assert_allclose(uv[idx, 0], mesh.uvs[:, 0], atol=1e-7)  # type: ignore[index]
    np.testing.assert_allclose(uv[idx, 1], 1 - mesh.uvs[:, 1], atol=1e-7)  # type: ignore[index]
    n = mesh.normals
    np.testing.assert_allclose(nrm[idx], np.column_stack([n[:, 0], n[:, 2], -n[:, 1]]),  # type: ignore[index]
                               atol=1e-7)


def test_glb_layout_is_aligned_and_padded(tmp_path: Path) -> None:
    data = meshfile.write_glb(atlas_cube(), tmp_path / "c.glb").read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, kind = struct.unpack_from("<II", data, 12)
    assert kind == 0x4E4F534A and json_len % 4 == 0
    assert data[20 + json_len - 1:20 + json_len] in (b"}", b" ")
    bin_len, kind = struct.unpack_from("<II", data, 20 + json_len)
    assert kind == 0x004E4942 and bin_len % 4 == 0 and 28 + json_len + bin_len == len(data)
    gltf = json.loads(data[20:20 + json_len])
    assert gltf["buffers"] == [{"byteLength": bin_len}]
    for view in gltf["bufferViews"]:
        assert view["byteOffset"] % 4 == 0 and view["target"] in (34962, 34963)
        assert view["byteOffset"] + view["byteLength"] <= bin_len
    targets = [v["target"] for v in gltf["bufferViews"]]
    assert targets.count(34963) == 1


def test_glb_without_normals_or_uvs_keeps_every_vertex(tmp_path: Path) -> None:
    mesh = atlas_cube()
    plain = MeshArrays(mesh.positions, mesh.corner_verts, name="Plain")
    gltf, _ = read_glb(meshfile.write_glb(plain, tmp_path / "p.glb").read_bytes())
    prim = gltf["meshes"][0]["primitives"][0]
    assert set(prim["attributes"]) == {"POSITION"}
    assert gltf["accessors"][prim["attributes"]["POSITION"]]["count"] == 8
    back = meshfile.read_glb(tmp_path / "p.glb")
    assert back.uvs is None and back.normals is None
    np.testing.assert_array_equal(back.corner_verts, mesh.corner_verts)


def test_glb_indices_are_uint32_only_past_65535_vertices(tmp_path: Path) -> None:
    small, big = grid(8), grid(300, seams=True)  # big: > 65536 (vertex, uv) pairs
    for mesh, ctype in ((small, USHORT), (big, UINT)):
        gltf, binary = read_glb(meshfile.write_glb(mesh, tmp_path / "g.glb").read_bytes())
        prim = gltf["meshes"][0]["primitives"][0]
        assert gltf["accessors"][prim["indices"]]["componentType"] == ctype
        count = gltf["accessors"][prim["attributes"]["POSITION"]]["count"]
        assert (count >= 65536) == (ctype == UINT)
        idx = read_accessor(gltf, binary, prim["indices"]).ravel()
        assert idx.max() == count - 1
        pos = read_accessor(gltf, binary, prim["attributes"]["POSITION"])
        blender = corner_positions(mesh)
        np.testing.assert_allclose(to_blender(pos[idx]), blender, atol=1e-6)


def test_glb_zero_and_unnormalised_normals_are_made_unit(tmp_path: Path) -> None:
    mesh = atlas_cube()
    normals = mesh.normals.copy() * 3  # type: ignore[union-attr]
    normals[:3] = 0.0
    mesh.normals = normals
    gltf, binary = read_glb(meshfile.write_glb(mesh, tmp_path / "n.glb").read_bytes())
    prim = gltf["meshes"][0]["primitives"][0]
    nrm = read_accessor(gltf, binary, prim["attributes"]["NORMAL"])
    idx = read_accessor(gltf, binary, prim["indices"]).ravel()
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(nrm[idx[:3]], [[0, 1, 0]] * 3)  # Blender's up, in glTF axes


@pytest.mark.parametrize("bad", [
    {"corner_verts": np.array([0, 1], np.int32)},
    {"corner_verts": np.array([0, 1, 8], np.int32)},
    {"corner_verts": np.array([0, 1, -1], np.int32)},
    {"corner_verts": np.zeros(0, np.int32)},
    {"uvs": np.zeros((5, 2), np.float32)},
    {"normals": np.zeros((36, 2), np.float32)},
    {"positions": np.full((8, 3), np.nan, np.float32)},
])
def test_writing_a_malformed_mesh_is_a_mesh_file_error(tmp_path: Path, bad: dict[str, Any]
                                                       ) -> None:
    mesh = atlas_cube()
    for key, value in bad.items():
        setattr(mesh, key, value)
    for write, name in ((meshfile.write_glb, "bad.glb"), (meshfile.write_obj, "bad.obj")):
        with pytest.raises(MeshFileError, match=rf"^{name}: "):
            write(mesh, tmp_path / name)
        assert not (tmp_path / name).exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind


# --------------------------------------------------------------------------- write_obj


def test_obj_is_blenders_layout_with_deduplicated_uvs_and_normals(tmp_path: Path) -> None:
    mesh = atlas_cube()
    mesh.positions = mesh.positions + np.float32([1, 2, 3])
    text = meshfile.write_obj(mesh, tmp_path / "o" / "cube.obj").read_text()
    assert text.startswith("#")
    obj = parse_obj(text)
    assert obj["o"] == ["AtlasCube"] and obj["other"] == []  # no mtllib / usemtl
    assert "mtllib" not in text and "usemtl" not in text
    assert len(obj["f"]) == mesh.triangles
    v, vt, vn = (np.array(obj[k]) for k in ("v", "vt", "vn"))
    assert len(v) == 8 and len(vt) == 12 and len(vn) == 6  # a 3x2 atlas has 4x3 corners
    np.testing.assert_allclose(v, np.column_stack(
        [mesh.positions[:, 0], mesh.positions[:, 2], -mesh.positions[:, 1]]), atol=1e-6)
    np.testing.assert_allclose(v.mean(axis=0), [1, 3, -2], atol=1e-6)
    f = np.array(obj["f"])  # (T, 3, 3) 1-based (v, vt, vn)
    assert f.min() >= 1
    assert f[..., 0].max() <= len(v) and f[..., 1].max() <= len(vt)
    assert f[..., 2].max() <= len(vn)
    corners = f.reshape(-1, 3) - 1
    np.testing.assert_array_equal(corners[:, 0], mesh.corner_verts)
    np.testing.assert_allclose(vt[corners[:, 1]], mesh.uvs, atol=1e-6)  # OBJ keeps v up
    n = mesh.normals
    np.testing.assert_allclose(vn[corners[:, 2]], np.column_stack(  # type: ignore[index]
        [n[:, 0], n[:, 2], -n[:, 1]]), atol=1e-6)  # type: ignore[index]


@pytest.mark.parametrize("uvs,normals,pattern", [
    (True, False, r"^f \d+/\d+ \d+/\d+ \d+/\d+$"),
    (False, True, r"^f \d+//\d+ \d+//\d+ \d+//\d+$"),
    (False, False, r"^f \d+ \d+ \d+$"),
])
def test_obj_face_forms_without_uvs_or_normals(tmp_path: Path, uvs: bool, normals: bool,
                                               pattern: str) -> None:
    full = atlas_cube()
    mesh = MeshArrays(full.positions, full.corner_verts, full.normals if normals else None,
                      full.uvs if uvs else None, "part")
    text = meshfile.write_obj(mesh, tmp_path / "p.obj").read_text()
    faces = [line for line in text.splitlines() if line.startswith("f ")]
    assert len(faces) == 12
    import re

    assert all(re.match(pattern, f) for f in faces), faces[0]
    assert ("\nvt " in text) == uvs and ("\nvn " in text) == normals


def test_obj_numbers_match_printf(tmp_path: Path) -> None:
    """The numpy formatter must print what "%.6f" prints, signs, carries and big values too."""
    values = np.array([0.0, -0.0, 1e-9, -1e-9, 0.5, -0.5, 0.9999999, -0.9999996, 123456.789,
                       -98765.4321, 1.25e-6, 7.0, 3.4e9, -2.5e-7, 10.0, 99.9999995], np.float64)
    values = np.concatenate([values, RNG.normal(0, 50, 200)]).astype(np.float32)
    pos = values[: len(values) // 3 * 3].reshape(-1, 3)
    mesh = MeshArrays(pos, np.arange(len(pos) - len(pos) % 3, dtype=np.int32), name="n")
    text = meshfile.write_obj(mesh, tmp_path / "n.obj").read_text()
    v_lines = [line for line in text.splitlines() if line.startswith("v ")]
    yup = np.column_stack([pos[:, 0], pos[:, 2], -pos[:, 1]]).astype(np.float64)
    for line, row in zip(v_lines, yup):
        want = [f"{x:.6f}" for x in row]
        want = [w[1:] if w.startswith("-") and float(w) == 0 else w for w in want]
        assert line.split()[1:] == want
    assert len(v_lines) == len(pos)


def test_obj_name_is_one_token(tmp_path: Path) -> None:
    mesh = atlas_cube()
    mesh.name = "My Object\nwith newline"
    text = meshfile.write_obj(mesh, tmp_path / "x.obj").read_text()
    assert "\no My_Object_with_newline\n" in text


# --------------------------------------------------------------------------- read_glb


def test_read_emulator_cube_in_blender_axes(tmp_path: Path) -> None:
    glb = cube_glb(2.0)
    mesh = meshfile.read_glb(save(tmp_path, glb, "box.glb"))
    assert mesh.name == "box"  # no node or mesh names: the file stem
    assert len(mesh.positions) == 8 and mesh.triangles == 12  # 24 split vertices merged
    assert mesh.corner_verts.dtype == np.int32 and mesh.positions.dtype == np.float32
    assert mesh.normals is None and mesh.uvs is not None
    gltf, binary = read_glb(glb)
    prim = gltf["meshes"][0]["primitives"][0]
    gpos = read_accessor(gltf, binary, prim["attributes"]["POSITION"])
    gidx = read_accessor(gltf, binary, prim["indices"]).ravel()
    guv = read_accessor(gltf, binary, prim["attributes"]["TEXCOORD_0"])
    np.testing.assert_allclose(corner_positions(mesh), to_blender(gpos[gidx]), atol=1e-6)
    np.testing.assert_allclose(mesh.uvs, np.column_stack([guv[gidx, 0], 1 - guv[gidx, 1]]),
                               atol=1e-6)
    assert outward(mesh, np.zeros(3)).all()


def test_read_textured_glb_ignores_its_images(tmp_path: Path) -> None:
    images = {"base_color": map_png("base_color"), "metallic_roughness": mr_png(),
              "normal": map_png("normal")}
    for data_uris in (False, True):
        mesh = meshfile.read_glb(save(tmp_path, textured_glb(cube_glb(), images,
                                                             data_uris=data_uris)))
        assert mesh.triangles == 12 and len(mesh.positions) == 8 and mesh.uvs is not None
    different = meshfile.read_glb(save(tmp_path, textured_glb(cube_glb(), images, True)))
    assert different.name == "triverse_mesh" and different.triangles > 12


def test_read_node_translation_rotation_scale(tmp_path: Path) -> None:
    s = np.sqrt(0.5)  # 90° about +Y: (x, y, z) -> (z, y, -x)
    g = triangle_gltf(name="Moved", translation=[1, 2, 3], rotation=[0, s, 0, s],
                      scale=[2, 3, 4])
    mesh = meshfile.read_glb(save(tmp_path, g.glb()))
    scaled = TRIANGLE * [2, 3, 4]
    want = np.column_stack([scaled[:, 2], scaled[:, 1], -scaled[:, 0]]) + np.array([1, 2, 3])
    np.testing.assert_allclose(corner_positions(mesh), to_blender(want), atol=1e-6)
    assert mesh.name == "Moved"


def test_read_node_matrix_is_column_major(tmp_path: Path) -> None:
    matrix = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 5, 6, 7, 1]  # a translation by (5, 6, 7)
    mesh = meshfile.read_glb(save(tmp_path, triangle_gltf(matrix=matrix).glb()))
    np.testing.assert_allclose(corner_positions(mesh), to_blender(TRIANGLE + np.array([5, 6, 7])))


def test_read_walks_the_hierarchy_parent_then_child(tmp_path: Path) -> None:
    g = Gltf()
    pos = g.array(TRIANGLE, "<f4", "VEC3")
    child = g.node(root=False, name="Child", mesh=g.mesh({"attributes": {"POSITION": pos}}),
                   translation=[1, 0, 0])
    g.node(name="Parent", children=[child], translation=[0, 0, 10], scale=[2, 2, 2])
    mesh = meshfile.read_glb(save(tmp_path, g.glb()))
    want = (TRIANGLE + np.array([1, 0, 0])) * 2 + np.array([0, 0, 10])  # child, then parent
    np.testing.assert_allclose(corner_positions(mesh), to_blender(want))
    assert mesh.name == "Child"


def test_read_mirrored_node_flips_winding(tmp_path: Path) -> None:
    def mirror(gltf: dict[str, Any]) -> None:
        gltf["nodes"][0]["scale"] = [-1, 1, 1]
        gltf["nodes"][0]["translation"] = [3, 0, 0]

    mesh = meshfile.read_glb(save(tmp_path, edited(cube_glb(), mirror)))
    assert mesh.triangles == 12
    assert outward(mesh, np.array([3.0, 0, 0])).all()  # not inside out
    np.testing.assert_allclose(mesh.positions.mean(axis=0), [3, 0, 0], atol=1e-6)


def test_read_normals_use_the_inverse_transpose(tmp_path: Path) -> None:
    for scale, want in (([2, 1, 1], [0.5, 1, 0]), ([-1, 1, 1], [-1, 1, 0])):
        g = Gltf()
        pos = g.array(TRIANGLE, "<f4", "VEC3")
        nrm = g.array(np.tile(np.float32([s := np.sqrt(0.5), s, 0]), (3, 1)), "<f4", "VEC3")
        g.node(mesh=g.mesh({"attributes": {"POSITION": pos, "NORMAL": nrm}}), scale=scale)
        mesh = meshfile.read_glb(save(tmp_path, g.glb()))
        unit = np.array(want) / np.linalg.norm(want)
        assert mesh.normals is not None
        np.testing.assert_allclose(mesh.normals, to_blender(np.tile(unit, (3, 1))), atol=1e-6)


def test_read_normalised_integer_texcoords_and_byte_indices(tmp_path: Path) -> None:
    g = Gltf()
    pos = g.array(TRIANGLE, "<f4", "VEC3")
    raw = np.array([[0, 0, 0, 0], [255, 0, 0, 0], [51, 255, 0, 0]], np.uint8)  # stride 4
    uv8 = g.accessor(g.view(raw.tobytes(), stride=4), UBYTE, "VEC2", 3, normalized=True)
    uv16 = g.array([[0, 65535], [65535, 0], [13107, 65535]], "<u2", "VEC2", normalized=True)
    idx = g.array([0, 1, 2], "<u1", "SCALAR")
    g.node(mesh=g.mesh({"attributes": {"POSITION": pos, "TEXCOORD_0": uv8}, "indices": idx}))
    g.node(mesh=g.mesh({"attributes": {"POSITION": pos, "TEXCOORD_0": uv16}}),
           translation=[0, 0, 1])
    mesh = meshfile.read_glb(save(tmp_path, g.glb()))
    assert mesh.uvs is not None
    np.testing.assert_allclose(mesh.uvs[:3], [[0, 1], [1, 1], [0.2, 0]], atol=1e-6)
    np.testing.assert_allclose(mesh.uvs[3:], [[0, 0], [1, 1], [0.2, 0]], atol=1e-6)


def test_read_interleaved_data_with_byte_stride(tmp_path: Path) -> None:
    g = Gltf()
    uv = np.float32([[0.25, 0.5], [0.75, 0.5], [0.5, 1.0]])
    rows = np.concatenate([TRIANGLE, uv, np.zeros((3, 1), np.float32)], axis=1)  # 24 bytes
    view = g.view(rows.tobytes(), stride=24)
    pos = g.accessor(view, FLOAT, "VEC3", 3)
    tex = g.accessor(view, FLOAT, "VEC2", 3, offset=12)
    g.node(mesh=g.mesh({"attributes": {"POSITION": pos, "TEXCOORD_0": tex}, "mode": 4}))
    mesh = meshfile.read_glb(save(tmp_path, g.glb()))
    np.testing.assert_allclose(corner_positions(mesh), to_blender(TRIANGLE))
    np.testing.assert_allclose(mesh.uvs, np.column_stack([uv[:, 0], 1 - uv[:, 1]]))  # type: ignore[arg-type]


def test_read_data_uri_buffer(tmp_path: Path) -> None:
    g = triangle_gltf()
    g.json["buffers"][0]["uri"] = ("data:application/octet-stream;base64,"
                                   + base64.b64encode(bytes(g.bin)).decode())
    g.json["buffers"][0]["byteLength"] = len(g.bin)
    glb = write_glb(g.json, b"")  # no BIN chunk at all
    mesh = meshfile.read_glb(save(tmp_path, glb))
    np.testing.assert_allclose(corner_positions(mesh), to_blender(TRIANGLE))


def test_read_merges_primitives_by_position_and_fills_missing_attributes(tmp_path: Path
                                                                          ) -> None:
    g = Gltf()
    quad = np.float32([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    pos = g.array(quad, "<f4", "VEC3")
    uv = g.array(quad[:, :2] * 0.5, "<f4", "VEC2")
    nrm = g.array(np.tile(np.float32([0, 0, 1]), (4, 1)), "<f4", "VEC3")
    first = g.array([0, 1, 2], "<u2", "SCALAR")
    second = g.array([0, 2, 3], "<u2", "SCALAR")
    points = g.array([0, 1, 2, 3], "<u2", "SCALAR")
    g.node(mesh=g.mesh(
        {"attributes": {"POSITION": pos, "TEXCOORD_0": uv}, "indices": first},
        {"attributes": {"POSITION": pos, "NORMAL": nrm}, "indices": second},
        {"attributes": {"POSITION": pos}, "indices": points, "mode": 0},  # points: skipped
        name="QuadMesh"))
    mesh = meshfile.read_glb(save(tmp_path, g.glb()))
    assert mesh.name == "QuadMesh"  # an unnamed node: the mesh's name
    assert len(mesh.positions) == 4 and mesh.triangles == 2  # one connected quad
    assert mesh.uvs is not None and mesh.normals is not None
    np.testing.assert_allclose(mesh.uvs[:3], [[0, 1], [0.5, 1], [0.5, 0.5]])
    np.testing.assert_array_equal(mesh.uvs[3:], 0)
    np.testing.assert_array_equal(mesh.normals[:3], 0)
    np.testing.assert_allclose(mesh.normals[3:], [[0, -1, 0]] * 3, atol=1e-7)


def test_read_default_scene_choice(tmp_path: Path) -> None:
    g = Gltf()
    pos = g.array(TRIANGLE, "<f4", "VEC3")
    m = g.mesh({"attributes": {"POSITION": pos}})
    g.node(mesh=m, name="InScene0")
    g.node(root=False, mesh=m, name="InScene1", translation=[0, 0, 5])
    g.json["scenes"].append({"nodes": [1]})
    g.json["scene"] = 1
    assert meshfile.read_glb(save(tmp_path, g.glb())).name == "InScene1"
    del g.json["scene"]
    assert meshfile.read_glb(save(tmp_path, g.glb())).name == "InScene0"
    del g.json["scenes"]  # no scenes: every root node
    both = meshfile.read_glb(save(tmp_path, g.glb()))
    assert both.triangles == 2 and both.name == "InScene0"


def test_read_leaves_out_vertices_no_triangle_uses(tmp_path: Path) -> None:
    g = Gltf()
    pos = g.array([[9, 9, 9], *TRIANGLE, [np.nan, 0, 0]], "<f4", "VEC3")
    idx = g.array([1, 2, 3], "<u2", "SCALAR")
    g.node(mesh=g.mesh({"attributes": {"POSITION": pos}, "indices": idx}))
    mesh = meshfile.read_glb(save(tmp_path, g.glb()))
    assert len(mesh.positions) == 3 and mesh.corner_verts.tolist() == [0, 1, 2]
    np.testing.assert_allclose(mesh.positions, to_blender(TRIANGLE))


def test_read_non_indexed_primitive(tmp_path: Path) -> None:
    mesh = meshfile.read_glb(save(tmp_path, triangle_gltf().glb()))
    assert mesh.triangles == 1 and mesh.corner_verts.tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- read errors


def cube_edit(edit: Any) -> bytes:
    return edited(cube_glb(), edit)


def _sparse(g: dict[str, Any]) -> None:
    g["accessors"][0]["sparse"] = {"count": 1, "indices": {}, "values": {}}


def _points(g: dict[str, Any]) -> None:
    g["meshes"][0]["primitives"][0]["mode"] = 0


def _draco(g: dict[str, Any]) -> None:
    g["meshes"][0]["primitives"][0]["extensions"] = {"KHR_draco_mesh_compression": {}}


def _view_past_end(g: dict[str, Any]) -> None:
    g["bufferViews"][0]["byteLength"] += 10_000


def _count_past_end(g: dict[str, Any]) -> None:
    g["accessors"][0]["count"] += 1  # one vertex more than its bufferView holds


def _cycle(g: dict[str, Any]) -> None:
    g["nodes"][0]["children"] = [0]


def _float_indices(g: dict[str, Any]) -> None:
    g["accessors"][g["meshes"][0]["primitives"][0]["indices"]]["componentType"] = FLOAT


def _short_stride(g: dict[str, Any]) -> None:
    g["bufferViews"][0]["byteStride"] = 4  # under a VEC3 float's 12 bytes


ERRORS: list[tuple[str, Any, str]] = [
    ("not-a-glb", b"solid cube\nendsolid\n", "not a GLB"),
    ("empty", b"", "not a GLB"),
    ("truncated", cube_glb()[:-40], "truncated"),
    ("truncated-json", cube_glb()[:28], "truncated"),
    ("version-1", cube_glb()[:4] + struct.pack("<I", 1) + cube_glb()[8:], "version 1"),
    ("corrupt-json", cube_glb().replace(b'"scene":0', b'"scene":@'), "JSON"),
    ("huge-json", b"glTF" + struct.pack("<III", 2, 20, 65 << 20) + b"JSON", "16 MB limit"),
    ("bad-index", make_glb(np.eye(3), np.array([0, 1, 7])), "index"),
    ("sparse", cube_edit(_sparse), "sparse"),
    ("points-only", cube_edit(_points), "no triangle mesh"),
    ("no-meshes", write_glb({"asset": {"version": "2.0"}}, b""), "no triangle mesh"),
    ("draco", cube_edit(_draco), "KHR_draco_mesh_compression"),
    ("view-past-end", cube_edit(_view_past_end), "past the end"),
    ("count-past-end", cube_edit(_count_past_end), "past the end"),
    ("cycle", cube_edit(_cycle), "twice"),
    ("float-indices", cube_edit(_float_indices), "componentType 5126"),
    ("short-stride", cube_edit(_short_stride), "byteStride"),
    ("nan-position", make_glb(np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]),
                              np.array([0, 1, 2])), "finite"),
    ("wrong-types", cube_edit(lambda g: g["accessors"][0].update(count="36")), "count"),
]


@pytest.mark.parametrize("name,data,words", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_glbs_are_one_line_mesh_file_errors(tmp_path: Path, name: str, data: bytes,
                                                words: str) -> None:
    path = save(tmp_path, data, f"{name}.glb")
    with pytest.raises(MeshFileError) as info:
        meshfile.read_glb(path)
    message = str(info.value)
    assert message.startswith(f"{name}.glb: ") and "\n" not in message
    assert words in message


def test_outside_buffers_are_never_read(tmp_path: Path, loopback_only: list[str]) -> None:
    gltf, binary = read_glb(cube_glb())
    (tmp_path / "cube.bin").write_bytes(binary)  # a readable file, which must stay unread
    for uri in ("cube.bin", "http://example.com/cube.bin", "file:///etc/passwd"):
        g = copy.deepcopy(gltf)
        g["buffers"][0]["uri"] = uri
        path = save(tmp_path, write_glb(g, b""), "outside.glb")
        with pytest.raises(MeshFileError, match=r"^outside\.glb: .*outside file or URL"):
            meshfile.read_glb(path)
    assert loopback_only == []


def test_missing_file_is_a_mesh_file_error(tmp_path: Path) -> None:
    with pytest.raises(MeshFileError, match=r"^gone\.glb: "):
        meshfile.read_glb(tmp_path / "gone.glb")


def test_damaged_glbs_never_raise_anything_else(tmp_path: Path) -> None:
    good = textured_glb(cube_glb(), {"base_color": map_png("base_color"),
                                     "metallic_roughness": mr_png(),
                                     "normal": map_png("normal")})
    path = tmp_path / "damaged.glb"
    json_len = struct.unpack_from("<I", good, 12)[0]
    for cut in range(0, len(good), max(1, len(good) // 97)):
        path.write_bytes(good[:cut])
        with pytest.raises(MeshFileError, match=r"^damaged\.glb: "):
            meshfile.read_glb(path)
    for _ in range(150):
        data = bytearray(good)
        for at in RNG.integers(20, 20 + json_len, 3):
            data[at] = int(RNG.choice(list(b'0123456789-"{}[],:e.')))
        path.write_bytes(bytes(data))
        try:
            meshfile.read_glb(path)
        except MeshFileError as exc:
            assert str(exc).startswith("damaged.glb: ") and "\n" not in str(exc)


# --------------------------------------------------------------------------- npz / prepared


def test_prepared_path_naming() -> None:
    assert meshfile.prepared_path("/x/a_result.glb") == Path("/x/a_result.mesh.npz")
    assert meshfile.prepared_path(Path("b.c.glb")) == Path("b.c.mesh.npz")


def test_npz_round_trip_with_and_without_attributes(tmp_path: Path) -> None:
    mesh = atlas_cube()
    for m in (mesh, MeshArrays(mesh.positions, mesh.corner_verts, name="bare")):
        back = meshfile.load_npz(meshfile.save_npz(m, tmp_path / "m.npz"))
        assert back.name == m.name
        np.testing.assert_array_equal(back.positions, m.positions)
        np.testing.assert_array_equal(back.corner_verts, m.corner_verts)
        for attr in ("normals", "uvs"):
            got, want = getattr(back, attr), getattr(m, attr)
            assert (got is None) == (want is None)
            if want is not None:
                np.testing.assert_array_equal(got, want)


def test_npz_needing_pickle_or_inconsistent_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "pickled.npz", positions=np.array([object()]),
             corner_verts=np.zeros(3, np.int32))
    with pytest.raises(MeshFileError, match=r"^pickled\.npz: "):
        meshfile.load_npz(tmp_path / "pickled.npz")
    np.savez(tmp_path / "bad.npz", positions=np.zeros((2, 3), np.float32),
             corner_verts=np.array([0, 1, 2], np.int32))
    with pytest.raises(MeshFileError, match=r"^bad\.npz: "):
        meshfile.load_npz(tmp_path / "bad.npz")


def test_prepare_then_load_prepared_and_fallbacks(tmp_path: Path) -> None:
    glb = meshfile.write_glb(atlas_cube(), tmp_path / "a_result.glb")
    npz = meshfile.prepare(glb)
    assert npz == tmp_path / "a_result.mesh.npz" and npz.is_file()
    direct = meshfile.read_glb(glb)
    loaded = meshfile.load_prepared(glb)
    np.testing.assert_array_equal(loaded.positions, direct.positions)
    np.testing.assert_array_equal(loaded.corner_verts, direct.corner_verts)
    np.testing.assert_array_equal(loaded.uvs, direct.uvs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(loaded.normals, direct.normals)  # type: ignore[arg-type]
    # Tell the two apart: the arrays say "cached", the GLB says "AtlasCube".
    meshfile.save_npz(MeshArrays(direct.positions, direct.corner_verts, name="cached"), npz)
    stamp = glb.stat().st_mtime_ns
    os.utime(npz, ns=(stamp, stamp))
    assert meshfile.load_prepared(glb).name == "cached"  # same time: the arrays
    os.utime(glb, ns=(stamp + 10**9, stamp + 10**9))
    assert meshfile.load_prepared(glb).name == "AtlasCube"  # the GLB is newer
    os.utime(npz, ns=(stamp + 2 * 10**9,) * 2)
    assert meshfile.load_prepared(glb).name == "cached"
    npz.write_bytes(b"not an npz")
    os.utime(npz, ns=(stamp + 3 * 10**9,) * 2)
    assert meshfile.load_prepared(glb).name == "AtlasCube"  # damaged arrays: the GLB
    npz.unlink()
    assert meshfile.load_prepared(glb).name == "AtlasCube"  # missing arrays: the GLB
    with pytest.raises(MeshFileError, match=r"^none\.glb: "):
        meshfile.load_prepared(tmp_path / "none.glb")


# --------------------------------------------------------------------------- large meshes


def test_100k_triangles_round_trip_through_glb_and_obj(tmp_path: Path) -> None:
    mesh = grid(224, seams=True)  # 100,352 triangles
    assert mesh.triangles > 100_000
    back = meshfile.read_glb(meshfile.write_glb(mesh, tmp_path / "big.glb"))
    np.testing.assert_array_equal(back.positions, mesh.positions)
    np.testing.assert_array_equal(back.corner_verts, mesh.corner_verts)
    np.testing.assert_allclose(back.uvs, mesh.uvs, atol=1e-6)  # type: ignore[arg-type]
    np.testing.assert_allclose(back.normals, mesh.normals, atol=1e-6)  # type: ignore[arg-type]
    obj = parse_obj(meshfile.write_obj(mesh, tmp_path / "big.obj").read_text())
    assert len(obj["f"]) == mesh.triangles and len(obj["v"]) == len(mesh.positions)
    corners = np.array(obj["f"]).reshape(-1, 3) - 1
    np.testing.assert_array_equal(corners[:, 0], mesh.corner_verts)
    np.testing.assert_allclose(np.array(obj["vt"])[corners[:, 1]], mesh.uvs, atol=6e-7)
    v = np.array(obj["v"])
    np.testing.assert_allclose(to_blender(v[corners[:, 0]]), corner_positions(mesh),
                               atol=6e-7)


def test_grouping_matches_numpy_unique() -> None:
    for k in (1, 2, 3, 6):
        keys = RNG.integers(0, 4, (5000, k)).astype(np.uint32)
        for hashed in (True, False):
            first, inverse = group(keys, hashed=hashed)
            np.testing.assert_array_equal(keys[first][inverse], keys)
            assert len(first) == len(np.unique(keys, axis=0))
            assert (np.diff(first) > 0).all()  # groups in order of first occurrence
            assert inverse[first].tolist() == list(range(len(first)))
