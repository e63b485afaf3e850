"""GLB mesh files read with numpy alone, off Blender's main thread, trusting nothing in them.

Every index, offset and count is checked before it is used, only the GLB's own BIN chunk and
data: URIs are read (never another file or the network), and every failure is a
`MeshFileError` whose message is one line naming the file. Writing: `glb_mesh_write.py`.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import limits
from .gltf import (
    BIN_CHUNK,
    COMPONENTS,
    DTYPES,
    GLB_MAGIC,
    JSON_CHUNK,
    TRIANGLES,
    UBYTE,
    UINT,
    USHORT,
)
from .mesh import (
    MeshArrays,
    MeshFileError,
    bits,
    group,
    one_line,
    unit,
)

MB = 1 << 20
MAX_JSON_BYTES = limits.MAX_GLTF_JSON  # a glTF description larger than this is not a mesh
_INDEX_TYPES = (UBYTE, USHORT, UINT)
_UNSUPPORTED_EXTENSIONS = ("KHR_draco_mesh_compression", "EXT_meshopt_compression")
_MAX_UNBACKED = limits.MAX_UNBACKED  # an accessor without a bufferView is zeros: cap it


class _Bad(Exception):
    """A reason the GLB cannot be read; `read_glb` prefixes the file name."""


def _index(value: Any, limit: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
        raise _Bad(f"{what} {value!r} does not exist")
    return value


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Bad(f"{what} {value!r} is not a count")
    return value


def _list(gltf: dict[str, Any], key: str) -> list[Any]:
    value = gltf.get(key, [])
    if not isinstance(value, list):
        raise _Bad(f'"{key}" is not a list')
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{what} is not an object")
    return value


class _Glb:
    """The glTF description of an open GLB, and its bufferViews' bytes read on demand.

    Only the bufferViews the mesh uses are read, so embedded images are never loaded.
    """

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.fh = fh
        head = fh.read(12)
        if len(head) < 12 or head[:4] != GLB_MAGIC:
            raise _Bad("not a GLB file (no glTF magic)")
        _magic, version, length = struct.unpack("<4sII", head)
        if version != 2:
            raise _Bad(f"GLB version {version}; only version 2 is supported")
        if length > size:
            raise _Bad(f"truncated ({size} bytes of {length})")
        chunk = fh.read(8)
        if len(chunk) < 8:
            raise _Bad("truncated (no JSON chunk)")
        json_length, kind = struct.unpack("<II", chunk)
        if kind != JSON_CHUNK:
            raise _Bad("the first chunk is not JSON")
        if json_length > MAX_JSON_BYTES:
            raise _Bad(f"JSON chunk of {json_length // MB} MB is over the "
                       f"{MAX_JSON_BYTES // MB} MB limit")
        if 20 + json_length > length:
            raise _Bad("truncated JSON chunk")
        try:
            gltf = json.loads(fh.read(json_length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _Bad(f"corrupt JSON chunk ({exc})") from None
        self.gltf = _dict(gltf, "the glTF description")
        self.bin_offset, self.bin_length = -1, 0
        pos = 20 + json_length + (-json_length % 4)
        if pos + 8 <= length:
            fh.seek(pos)
            bin_length, kind = struct.unpack("<II", fh.read(8))
            if kind == BIN_CHUNK:
                if pos + 8 + bin_length > length:
                    raise _Bad("truncated BIN chunk")
                self.bin_offset, self.bin_length = pos + 8, bin_length
        self._buffers: dict[int, bytes] = {}
        self._views: dict[int, bytes] = {}

    def _buffer(self, index: Any) -> bytes | None:
        """A data: URI buffer's bytes; None for the BIN chunk (read piecewise from the file)."""
        buffers = _list(self.gltf, "buffers")
        buf = _dict(buffers[_index(index, len(buffers), "buffer")], f"buffer {index}")
        uri = buf.get("uri")
        if uri is None:
            if index != 0 or self.bin_offset < 0:
                raise _Bad(f"buffer {index} has no data (no BIN chunk)")
            return None
        if index not in self._buffers:
            if not isinstance(uri, str) or not uri.startswith("data:"):
                raise _Bad(f"buffer {index} refers to an outside file or URL; only data "
                           "inside the GLB is read")
            head, sep, payload = uri.partition(",")
            if not sep or not head.endswith(";base64"):
                raise _Bad(f"buffer {index} is a data: URI that is not base64")
            try:
                self._buffers[index] = base64.b64decode(payload)
            except ValueError:
                raise _Bad(f"buffer {index} has corrupt base64 data") from None
        return self._buffers[index]

    def view(self, index: int) -> tuple[bytes, int]:
        """(bytes, byteStride or 0) of bufferView `index`."""
        views = _list(self.gltf, "bufferViews")
        view = _dict(views[_index(index, len(views), "bufferView")], f"bufferView {index}")
        stride = view.get("byteStride", 0)
        if stride is None:
            stride = 0
        _count(stride, f"bufferView {index} byteStride")
        if index not in self._views:
            offset = _count(view.get("byteOffset", 0), f"bufferView {index} byteOffset")
            length = _count(view.get("byteLength"), f"bufferView {index} byteLength")
            data = self._buffer(view.get("buffer"))
            available = self.bin_length if data is None else len(data)
            if offset + length > available:
                raise _Bad(f"bufferView {index} runs past the end of its buffer")
            if data is None:
                self.fh.seek(self.bin_offset + offset)
                data = self.fh.read(length)
                if len(data) != length:
                    raise _Bad("truncated BIN chunk")
            else:
                data = data[offset:offset + length]
            self._views[index] = data
        return self._views[index], stride

    def accessor(self, index: Any, floats: bool, types: Sequence[int] = ()) -> np.ndarray:
        """An accessor's values, (count, components): float64 (normalised integers scaled to
        0..1 or -1..1) if `floats`, else int64. `types`: the componentTypes allowed (any)."""
        accessors = _list(self.gltf, "accessors")
        acc = _dict(accessors[_index(index, len(accessors), "accessor")], f"accessor {index}")
        if "sparse" in acc:
            raise _Bad(f"accessor {index} is sparse, which is not supported")
        ctype = acc.get("componentType", -1)
        if ctype not in DTYPES or (types and ctype not in types):
            raise _Bad(f"accessor {index} has componentType {ctype!r}, not allowed there")
        if acc.get("type") not in COMPONENTS:
            raise _Bad(f"accessor {index} has unknown type {acc.get('type')!r}")
        dtype = np.dtype(DTYPES[ctype])
        comps = COMPONENTS[acc["type"]]
        count = _count(acc.get("count"), f"accessor {index} count")
        if "bufferView" not in acc:  # glTF: an accessor without data is all zeros
            if count > _MAX_UNBACKED:
                raise _Bad(f"accessor {index} asks for {count} zeros")
            raw = np.zeros((count, comps), dtype=dtype)
        else:
            data, stride = self.view(acc["bufferView"])
            start = _count(acc.get("byteOffset", 0), f"accessor {index} byteOffset")
            item = dtype.itemsize * comps
            stride = stride or item
            if stride < item:
                raise _Bad(f"bufferView of accessor {index} has a byteStride under its size")
            span = stride * (count - 1) + item if count else 0
            if start + span > len(data):
                raise _Bad(f"accessor {index} runs past the end of its bufferView")
            if count == 0:
                raw = np.zeros((0, comps), dtype=dtype)
            elif stride == item:
                raw = np.frombuffer(data, dtype=dtype, count=count * comps, offset=start)
            else:  # interleaved: gather each element's bytes, then reinterpret them
                flat = np.frombuffer(data, dtype=np.uint8, count=span, offset=start)
                rows = np.lib.stride_tricks.as_strided(flat, shape=(count, item),
                                                       strides=(stride, 1))
                raw = np.ascontiguousarray(rows).view(dtype)
            raw = raw.reshape(count, comps)
        if not floats:
            return raw.astype(np.int64)
        values = raw.astype(np.float64)
        if acc.get("normalized") and dtype.kind in "iu":
            values /= float(np.iinfo(dtype).max)
            if dtype.kind == "i":
                np.maximum(values, -1.0, out=values)
        return values


def _local_matrix(node: dict[str, Any], index: int) -> np.ndarray:
    """A node's 4x4 local transform: its `matrix`, else translation * rotation * scale."""
    try:
        if "matrix" in node:
            m = np.array(node["matrix"], dtype=np.float64)
            if m.shape != (16,):
                raise ValueError
            return m.reshape(4, 4).T  # glTF matrices are column-major
        t = np.array(node.get("translation", [0, 0, 0]), dtype=np.float64)
        q = np.array(node.get("rotation", [0, 0, 0, 1]), dtype=np.float64)
        s = np.array(node.get("scale", [1, 1, 1]), dtype=np.float64)
        if t.shape != (3,) or q.shape != (4,) or s.shape != (3,):
            raise ValueError
    except (TypeError, ValueError):
        raise _Bad(f"node {index} has a malformed transform") from None
    norm = np.sqrt(q @ q)
    x, y, z, w = q / norm if norm > 0 else (0.0, 0.0, 0.0, 1.0)
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    m = np.eye(4)
    m[:3, :3] = rotation * s  # R @ diag(s)
    m[:3, 3] = t
    return m


def _mesh_nodes(gltf: dict[str, Any]) -> list[tuple[int, np.ndarray]]:
    """(node index, world matrix) of every node with a mesh in the default scene, in order."""
    nodes = _list(gltf, "nodes")
    scenes = _list(gltf, "scenes")
    if "scene" in gltf:
        roots = _dict(scenes[_index(gltf["scene"], len(scenes), "scene")], "the scene")
        root_list = roots.get("nodes", [])
    elif scenes:
        root_list = _dict(scenes[0], "scene 0").get("nodes", [])
    else:
        children = {c for n in nodes if isinstance(n, dict) for c in n.get("children", [])
                    if isinstance(c, int)}
        root_list = [i for i in range(len(nodes)) if i not in children]
    if not isinstance(root_list, list):
        raise _Bad("the scene's node list is not a list")
    found: list[tuple[int, np.ndarray]] = []
    seen: set[int] = set()
    stack = [(root, np.eye(4)) for root in reversed(root_list)]
    while stack:
        index, parent = stack.pop()
        index = _index(index, len(nodes), "node")
        if index in seen:
            raise _Bad(f"node {index} is reached twice (a cycle in the hierarchy)")
        seen.add(index)
        node = _dict(nodes[index], f"node {index}")
        world = parent @ _local_matrix(node, index)
        if "mesh" in node:
            found.append((index, world))
        children = node.get("children", [])
        if not isinstance(children, list):
            raise _Bad(f"node {index}'s children are not a list")
        stack.extend((child, world) for child in reversed(children))
    return found


@dataclass
class _Part:
    positions: np.ndarray  # (V, 3) float32, Blender axes, world space
    corners: np.ndarray  # (C,) indices into positions
    normals: np.ndarray | None  # (C, 3) float32
    uvs: np.ndarray | None  # (C, 2) float32


def _primitive_part(glb: _Glb, prim: dict[str, Any], world: np.ndarray) -> _Part | None:
    attrs = _dict(prim.get("attributes", {}), "a primitive's attributes")
    if "POSITION" not in attrs:
        return None
    extensions = prim.get("extensions")
    for ext in _UNSUPPORTED_EXTENSIONS:
        if isinstance(extensions, dict) and ext in extensions:
            raise _Bad(f"the mesh is compressed with {ext}, which is not supported")
    local = glb.accessor(attrs["POSITION"], floats=True)
    if local.shape[1] != 3:
        raise _Bad("POSITION is not VEC3")
    if "indices" in prim and prim["indices"] is not None:
        idx = glb.accessor(prim["indices"], floats=False, types=_INDEX_TYPES)
        if idx.shape[1] != 1:
            raise _Bad("a primitive's indices are not SCALAR")
        idx = idx.reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(local)):
            raise _Bad(f"a triangle index is outside the {len(local)} vertices")
    else:
        idx = np.arange(len(local), dtype=np.int64)
    idx = idx[:len(idx) - len(idx) % 3]  # a trailing partial triangle is not a triangle
    if len(idx) == 0:
        return None
    m3 = world[:3, :3]
    det = float(np.linalg.det(m3))
    if det < 0:  # a mirroring transform turns the triangles inside out: swap two corners
        tri = idx.reshape(-1, 3)
        idx = tri[:, [0, 2, 1]].reshape(-1)
    points = local @ m3.T + world[:3, 3]
    positions = np.empty(points.shape, dtype=np.float32)
    positions[:, 0] = points[:, 0]
    np.negative(points[:, 2], out=positions[:, 1])
    positions[:, 2] = points[:, 1]

    normals = uvs = None
    if "NORMAL" in attrs:
        n = glb.accessor(attrs["NORMAL"], floats=True)
        if n.shape != (len(local), 3):
            raise _Bad("NORMAL does not match POSITION")
        # Normals transform by the inverse transpose; the cofactor matrix is that times det.
        cof = np.array([np.cross(m3[1], m3[2]), np.cross(m3[2], m3[0]), np.cross(m3[0], m3[1])])
        n = (n @ (cof.T if det >= 0 else -cof.T))[idx]
        normals = unit(np.column_stack([n[:, 0], -n[:, 2], n[:, 1]]), None)
    if "TEXCOORD_0" in attrs:
        t = glb.accessor(attrs["TEXCOORD_0"], floats=True)
        if t.shape != (len(local), 2):
            raise _Bad("TEXCOORD_0 does not match POSITION")
        t = t[idx]
        t[:, 1] = 1.0 - t[:, 1]
        uvs = t.astype(np.float32)
    used = np.zeros(len(positions), dtype=bool)
    used[idx] = True
    if not used.all():  # vertices no triangle uses would come in as loose vertices
        idx = (np.cumsum(used) - 1)[idx]
        positions = positions[used]
    if not np.isfinite(positions).all():
        raise _Bad("a vertex position is not a finite number")
    return _Part(positions, idx, normals, uvs)


def _declared(glb: _Glb, index: Any) -> tuple[int, int]:
    """(count, bytes) an accessor declares, from its description alone."""
    accessors = _list(glb.gltf, "accessors")
    acc = _dict(accessors[_index(index, len(accessors), "accessor")], f"accessor {index}")
    count = _count(acc.get("count"), f"accessor {index} count")
    ctype, kind = acc.get("componentType"), acc.get("type")
    if ctype not in DTYPES or kind not in COMPONENTS:
        raise _Bad(f"accessor {index} has an unknown componentType or type")
    return count, count * COMPONENTS[kind] * np.dtype(DTYPES[ctype]).itemsize


def _check_budget(glb: _Glb, mesh_nodes: list[tuple[int, np.ndarray]]) -> None:
    """Refuse, from the description alone, a mesh larger than the job accepts: triangles
    counted once per instance (nodes sharing a mesh), vertices likewise, and the bytes of every
    accessor used (each once), before a single array is made."""
    meshes, nodes = _list(glb.gltf, "meshes"), _list(glb.gltf, "nodes")
    lim = limits.current()
    triangles = vertices = 0
    used: dict[Any, int] = {}
    for node_index, _world in mesh_nodes:
        mesh = _dict(meshes[_index(nodes[node_index]["mesh"], len(meshes), "mesh")], "a mesh")
        prims = mesh.get("primitives", [])
        for prim in prims if isinstance(prims, list) else []:
            if not isinstance(prim, dict) or prim.get("mode", TRIANGLES) != TRIANGLES:
                continue
            attrs = prim.get("attributes")
            if not isinstance(attrs, dict) or "POSITION" not in attrs:
                continue
            count, size = _declared(glb, attrs["POSITION"])
            used[attrs["POSITION"]] = size
            vertices += count
            if prim.get("indices") is not None:
                count, used[prim["indices"]] = _declared(glb, prim["indices"])
            triangles += count // 3
            for name in ("NORMAL", "TEXCOORD_0"):
                if name in attrs:
                    used[attrs[name]] = _declared(glb, attrs[name])[1]
    problem = lim.triangle_problem(triangles)
    if problem:
        raise _Bad(f"the mesh {problem}")
    if vertices > 3 * lim.triangles:
        raise _Bad(f"the mesh declares {vertices:,} vertices, more than its triangles could use "
                   f"(at most {3 * lim.triangles:,}); it was not loaded")
    total = sum(used.values())
    if total > limits.MAX_ACCESSOR_BYTES:
        raise _Bad(f"the mesh declares {total // MB:,} MB of vertex data, more than the "
                   f"{limits.MAX_ACCESSOR_BYTES // MB} MB accepted; it was not loaded")


def _read_glb(glb: _Glb, stem: str) -> MeshArrays:
    gltf = glb.gltf
    required = gltf.get("extensionsRequired", [])
    for ext in _UNSUPPORTED_EXTENSIONS:
        if isinstance(required, list) and ext in required:
            raise _Bad(f"the mesh is compressed with {ext}, which is not supported")
    meshes = _list(gltf, "meshes")
    nodes = _list(gltf, "nodes")
    parts: list[_Part] = []
    name = None
    mesh_nodes = _mesh_nodes(gltf)
    _check_budget(glb, mesh_nodes)
    for node_index, world in mesh_nodes:
        node = nodes[node_index]
        mesh = _dict(meshes[_index(node["mesh"], len(meshes), "mesh")], "a mesh")
        if name is None:
            name = node.get("name") or mesh.get("name") or stem
        prims = mesh.get("primitives", [])
        if not isinstance(prims, list):
            raise _Bad("a mesh's primitives are not a list")
        for prim in prims:
            prim = _dict(prim, "a primitive")
            if prim.get("mode", TRIANGLES) != TRIANGLES:
                continue
            part = _primitive_part(glb, prim, world)
            if part is not None:
                parts.append(part)
    if not parts:
        raise _Bad("no triangle mesh in it")
    # One vertex per distinct position, so primitives and UV seams come out connected.
    positions = np.concatenate([p.positions for p in parts])
    first, inverse = group(bits(positions))
    offsets = np.cumsum([0] + [len(p.positions) for p in parts[:-1]])
    corners = np.concatenate([p.corners + off for p, off in zip(parts, offsets)])
    corner_verts = inverse[corners].astype(np.int32)

    def per_corner(attr: str, width: int) -> np.ndarray | None:
        arrays = [getattr(p, attr) for p in parts]
        if all(a is None for a in arrays):
            return None
        return np.concatenate([np.zeros((len(p.corners), width), np.float32) if a is None
                               else a for p, a in zip(parts, arrays)])

    return MeshArrays(positions[first], corner_verts, per_corner("normals", 3),
                      per_corner("uvs", 2), str(name))


def read_glb(path: str | os.PathLike[str]) -> MeshArrays:
    """The triangles of a GLB's default scene, merged into one mesh in Blender's axes.

    Only the GLB's own data is read: a buffer that refers to another file or a URL is refused.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _read_glb(_Glb(fh, os.fstat(fh.fileno()).st_size), path.stem)
    except _Bad as exc:
        raise MeshFileError(one_line(f"{path.name}: {exc}")) from None
    except OSError as exc:
        raise MeshFileError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None
    except Exception as exc:  # a malformed file must not surface as any other type
        raise MeshFileError(one_line(f"{path.name}: malformed glTF ({type(exc).__name__}: "
                                      f"{exc})")) from None
