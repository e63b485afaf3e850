"""Mesh files (GLB, OBJ) written and read with numpy alone, off Blender's main thread.

Blender's own glTF/OBJ exporters and importers run on the main thread and cost from
milliseconds to hundreds of milliseconds per object, which freezes the UI while a provider
uploads a mesh or hands one back. Instead, the main thread only gathers a mesh's flat arrays
(`MeshArrays`), and a worker thread writes or reads the files here. The work is bulk numpy
(sorting, gathering, digit arithmetic), which releases the GIL, so the UI keeps running.

Axes: `MeshArrays` is in Blender's axes (Z up); GLB is Y up, and OBJ is written like Blender's
OBJ exporter with its defaults (forward -Z, up Y). Blender (x, y, z) is glTF/OBJ (x, z, -y).

Reading trusts nothing in the file: every index, offset and count is checked before it is used,
only the GLB's own BIN chunk and data: URIs are read (never another file or the network), and
every failure is a `MeshFileError` whose message is one line naming the file.
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

from .atomic import write_atomic

MB = 1 << 20
MAX_JSON_BYTES = 64 * MB  # a glTF description larger than this is not a mesh we want to parse
_GLB_MAGIC = b"glTF"
_JSON, _BIN = 0x4E4F534A, 0x004E4942
_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_DTYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_INDEX_TYPES = (_UBYTE, _USHORT, _UINT)
_TRIANGLES = 4
_UNSUPPORTED_EXTENSIONS = ("KHR_draco_mesh_compression", "EXT_meshopt_compression")
_MAX_UNBACKED = 1 << 26  # an accessor without a bufferView is zeros; cap what a file can ask
# glTF's default for a normal that is zero or not finite: Blender's up (+Z) in glTF axes.
_DEFAULT_NORMAL = np.array([0.0, 1.0, 0.0])


class MeshFileError(Exception):
    """A mesh file cannot be written or read; the message is one line naming the file."""


@dataclass
class MeshArrays:
    """A triangulated mesh as flat arrays in Blender's axes (Z up), world space."""

    positions: np.ndarray  # (V, 3) float32
    corner_verts: np.ndarray  # (C,) int32; every 3 consecutive corners are one triangle (CCW)
    normals: np.ndarray | None = None  # (C, 3) float32 per corner
    uvs: np.ndarray | None = None  # (C, 2) float32 per corner; v up, origin bottom-left
    name: str = "mesh"

    @property
    def triangles(self) -> int:
        return len(self.corner_verts) // 3


# --------------------------------------------------------------------------- shared helpers


def _group(keys: np.ndarray, hashed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Identical rows of `keys` ((N, k) uint32) as (first index of each group, inverse).

    Groups come in order of first occurrence, so a file keeps the order of what it was made of.
    Rows are packed (k <= 2) or hashed into one uint64 and sorted once, several times faster
    than a lexsort over k columns; hashed groups are checked row by row, and a collision falls
    back to the exact lexsort (`hashed=False` forces it).
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    start = np.empty(n, dtype=bool)
    start[0] = True
    if hashed:
        exact = keys.shape[1] <= 2
        if exact:
            h = keys[:, 0].astype(np.uint64)
            if keys.shape[1] == 2:
                h <<= np.uint64(32)
                h |= keys[:, 1]
        else:
            h = np.full(n, 0xCBF29CE484222325, dtype=np.uint64)
            prime = np.uint64(0x100000001B3)
            for column in keys.T:
                h ^= column
                h *= prime
                h ^= h >> np.uint64(29)
        order = np.argsort(h)
        hs = h[order]
        np.not_equal(hs[1:], hs[:-1], out=start[1:])
        gid = np.cumsum(start) - 1
        starts = np.flatnonzero(start)
        if not exact:
            ordered = keys[order]
            hashed = np.array_equal(ordered, ordered[starts][gid])  # False: a collision
    if not hashed:
        order = np.lexsort(keys.T[::-1])
        ordered = keys[order]
        start[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
        gid = np.cumsum(start) - 1
        starts = np.flatnonzero(start)
    first = np.minimum.reduceat(order, starts)
    rank = np.argsort(first)
    new_id = np.empty(len(rank), dtype=np.intp)
    new_id[rank] = np.arange(len(rank))
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = new_id[gid]
    return first[rank], inverse


def _bits(values: np.ndarray) -> np.ndarray:
    """float32 values as uint32 bit patterns with -0.0 made 0.0, so equal values group."""
    v = np.array(values, dtype=np.float32)  # a copy: the caller's array stays as it was
    v += np.float32(0.0)
    return v.view(np.uint32)


def _unit(vectors: np.ndarray, default: np.ndarray | None) -> np.ndarray:
    """Unit vectors (float32); zero or non-finite ones become `default` (None: zeros)."""
    v = np.asarray(vectors, dtype=np.float64)
    length = np.sqrt(np.einsum("ij,ij->i", v, v))
    ok = np.isfinite(length) & (length > 1e-30)
    out = v / np.where(ok, length, 1.0)[:, None]
    out[~ok] = 0.0 if default is None else default
    return out.astype(np.float32)


def _to_yup(v: np.ndarray) -> np.ndarray:
    """Blender (x, y, z) -> glTF/OBJ (x, z, -y)."""
    out = np.empty(v.shape, dtype=np.float32)
    out[:, 0] = v[:, 0]
    out[:, 1] = v[:, 2]
    np.negative(v[:, 1], out=out[:, 2])
    return out


def _checked(mesh: MeshArrays, path: Path) -> MeshArrays:
    """The mesh with canonical dtypes, or MeshFileError before anything is written."""
    name = path.name
    pos = np.asarray(mesh.positions, dtype=np.float32)
    cv = np.asarray(mesh.corner_verts)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise MeshFileError(f"{name}: positions must be (V, 3), not {pos.shape}")
    if cv.ndim != 1 or cv.dtype.kind not in "iu":
        raise MeshFileError(f"{name}: corner_verts must be a 1-D integer array")
    if len(cv) == 0 or len(cv) % 3:
        raise MeshFileError(f"{name}: {len(cv)} corners is not a whole number of triangles")
    if cv.min() < 0 or cv.max() >= len(pos):
        raise MeshFileError(f"{name}: corner_verts index outside the {len(pos)} positions")
    if not np.isfinite(pos).all():
        raise MeshFileError(f"{name}: positions are not all finite")
    normals = uvs = None
    if mesh.normals is not None:
        normals = np.asarray(mesh.normals, dtype=np.float32)
        if normals.shape != (len(cv), 3):
            raise MeshFileError(f"{name}: normals must be ({len(cv)}, 3), not {normals.shape}")
    if mesh.uvs is not None:
        uvs = np.asarray(mesh.uvs, dtype=np.float32)
        if uvs.shape != (len(cv), 2):
            raise MeshFileError(f"{name}: uvs must be ({len(cv)}, 2), not {uvs.shape}")
        if not np.isfinite(uvs).all():
            raise MeshFileError(f"{name}: uvs are not all finite")
    return MeshArrays(pos, cv.astype(np.int64), normals, uvs, mesh.name)


# --------------------------------------------------------------------------- GLB writing


def write_glb(mesh: MeshArrays, path: str | os.PathLike[str]) -> Path:
    """Write `mesh` as a glTF 2.0 binary: one node, one mesh, one triangle primitive.

    glTF attributes are per vertex, so corners sharing a vertex, normal and UV become one
    glTF vertex; vertices come in Blender's vertex order.
    """
    path = Path(path)
    m = _checked(mesh, path)
    cv = m.corner_verts
    normals = None if m.normals is None else _unit(_to_yup(m.normals), _DEFAULT_NORMAL)
    uvs = None
    if m.uvs is not None:
        uvs = np.empty_like(m.uvs)
        uvs[:, 0] = m.uvs[:, 0]
        uvs[:, 1] = 1.0 - m.uvs[:, 1].astype(np.float64)  # glTF's v runs down
    if normals is None and uvs is None:
        positions, indices = _to_yup(m.positions), cv
    else:
        columns = [cv.astype(np.uint32)[:, None]]
        columns += [_bits(a) for a in (normals, uvs) if a is not None]
        first, inverse = _group(np.concatenate(columns, axis=1))
        by_vertex = np.argsort(cv[first], kind="stable")  # (vertex, first use) order
        new_id = np.empty(len(first), dtype=np.intp)
        new_id[by_vertex] = np.arange(len(first))
        first, indices = first[by_vertex], new_id[inverse]
        positions = _to_yup(m.positions[cv[first]])
        normals = None if normals is None else normals[first]
        uvs = None if uvs is None else uvs[first]
    index_type = _USHORT if len(positions) < 65536 else _UINT
    index_array = indices.astype("<u2" if index_type == _USHORT else "<u4")

    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "Text to Texture"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": m.name, "mesh": 0}],
        "meshes": [{"name": m.name, "primitives": [{"attributes": {}, "mode": _TRIANGLES}]}],
        "accessors": [],
        "bufferViews": [],
        "buffers": [{"byteLength": 0}],
    }
    blobs: list[np.ndarray] = []
    offset = 0

    def add(values: np.ndarray, kind: str, ctype: int, target: int) -> int:
        nonlocal offset
        data = np.ascontiguousarray(values, dtype=_DTYPES[ctype])
        offset += -offset % 4
        gltf["bufferViews"].append({"buffer": 0, "byteOffset": offset,
                                    "byteLength": data.nbytes, "target": target})
        blobs.append(data)
        offset += data.nbytes
        gltf["accessors"].append({"bufferView": len(gltf["bufferViews"]) - 1,
                                  "componentType": ctype, "count": len(data), "type": kind})
        return len(gltf["accessors"]) - 1

    prim = gltf["meshes"][0]["primitives"][0]
    prim["attributes"]["POSITION"] = add(positions, "VEC3", _FLOAT, _ARRAY_BUFFER)
    gltf["accessors"][-1]["min"] = [float(x) for x in positions.min(axis=0)]
    gltf["accessors"][-1]["max"] = [float(x) for x in positions.max(axis=0)]
    if normals is not None:
        prim["attributes"]["NORMAL"] = add(normals, "VEC3", _FLOAT, _ARRAY_BUFFER)
    if uvs is not None:
        prim["attributes"]["TEXCOORD_0"] = add(uvs, "VEC2", _FLOAT, _ARRAY_BUFFER)
    prim["indices"] = add(index_array, "SCALAR", index_type, _ELEMENT_ARRAY_BUFFER)
    bin_length = offset + (-offset % 4)
    gltf["buffers"][0]["byteLength"] = bin_length
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + bin_length

    def write(fh: IO[bytes]) -> None:
        fh.write(struct.pack("<4sII", _GLB_MAGIC, 2, total))
        fh.write(struct.pack("<II", len(text), _JSON) + text)
        fh.write(struct.pack("<II", bin_length, _BIN))
        written = 0
        for blob in blobs:
            fh.write(b"\x00" * (-written % 4))
            written += -written % 4
            fh.write(blob.data.cast("B"))  # straight from the array, no copy
            written += blob.nbytes
        fh.write(b"\x00" * (bin_length - written))

    return write_atomic(path, write)


# --------------------------------------------------------------------------- OBJ writing

_Field = tuple[np.ndarray, np.ndarray]  # (W, N) uint8 characters, (W, N) which are kept
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)
_MAX_FIXED = 1e15  # below this a float64's integer part is exact in int64 arithmetic


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """The `width` low decimal digits of non-negative integers as ASCII, (width, N).

    Digit-major, so each digit is one contiguous, vectorised pass; int32 when the values
    allow it, since its division is the faster one.
    """
    q: np.ndarray = values.astype(np.int32 if width <= 9 else np.int64)
    chars = np.empty((width, len(q)), dtype=np.uint8)
    for row in range(width - 1, -1, -1):
        tens = q // 10
        np.subtract(q, tens * 10, out=chars[row], casting="unsafe")
        q = tens
    chars += ord("0")
    return chars


def _leading(ndigits: np.ndarray, width: int) -> np.ndarray:
    """(width, N): which of `width` right-aligned digit places a number actually uses."""
    return np.arange(width)[:, None] >= (width - ndigits)[None, :]


def _int_field(values: np.ndarray) -> _Field:
    """Non-negative integers as decimal text, one per line, without Python's formatting."""
    v = np.asarray(values, dtype=np.int64)
    ndigits = np.searchsorted(_POW10, v, side="right") + 1
    width = int(ndigits.max()) if len(v) else 1
    return _digits(v, width), _leading(ndigits, width)


def _float_field(values: np.ndarray, decimals: int = 6) -> _Field:
    """Floats as "%.{decimals}f" text (ties aside), one per line, as digit arithmetic."""
    x = np.asarray(values, dtype=np.float64)
    a = np.abs(x)
    ip = np.floor(a)
    fp = np.rint((a - ip) * 10**decimals).astype(np.int64)  # a - ip is exact
    carry = fp == 10**decimals
    ip = ip.astype(np.int64) + carry
    fp[carry] = 0
    ndigits = np.searchsorted(_POW10, ip, side="right") + 1
    width = int(ndigits.max()) if len(x) else 1
    sign = np.full((1, len(x)), ord("-"), dtype=np.uint8)
    negative = (x < 0) & ((ip > 0) | (fp > 0))  # no "-0.000000"
    point = np.full((1, len(x)), ord("."), dtype=np.uint8)
    chars = np.concatenate([sign, _digits(ip, width), point, _digits(fp, decimals)])
    mask = np.ones(chars.shape, dtype=bool)
    mask[0] = negative
    mask[1:1 + width] = _leading(ndigits, width)
    return chars, mask


def _lines(count: int, parts: Sequence[bytes | _Field]) -> bytes:
    """`count` lines, each the concatenation of `parts` (constant text or one field per line).

    Every line is laid out in a fixed-width character matrix; the kept characters, read row
    by row, are the text. No Python code runs per line or per number.
    """
    if count == 0:
        return b""
    widths = [len(p) if isinstance(p, bytes) else len(p[0]) for p in parts]
    chars = np.empty((count, sum(widths)), dtype=np.uint8)
    mask = np.empty(chars.shape, dtype=bool)
    column = 0
    for part, width in zip(parts, widths):
        if isinstance(part, bytes):
            chars[:, column:column + width] = np.frombuffer(part, dtype=np.uint8)
            mask[:, column:column + width] = True
        else:
            chars[:, column:column + width] = part[0].T
            mask[:, column:column + width] = part[1].T
        column += width
    return chars[mask].tobytes()


def _float_lines(prefix: bytes, values: np.ndarray) -> bytes:
    """One line per row of `values` ((N, k) floats): prefix, then the k numbers."""
    if len(values) and np.abs(values).max() >= _MAX_FIXED:
        raise ValueError("a coordinate is too large to write")
    parts: list[bytes | _Field] = [prefix]
    for k in range(values.shape[1]):
        parts += [b" " if k else b"", _float_field(values[:, k])]
    return _lines(len(values), [*parts, b"\n"])


def write_obj(mesh: MeshArrays, path: str | os.PathLike[str]) -> Path:
    """Write `mesh` as Wavefront OBJ, as Blender's OBJ exporter does with its defaults.

    UVs and normals are written once per distinct value (vt/vn) and referenced per corner;
    there is no material library.
    """
    path = Path(path)
    m = _checked(mesh, path)
    tris = len(m.corner_verts) // 3
    name = "_".join((m.name or "mesh").split()) or "mesh"
    try:
        blocks = [f"# Text to Texture\no {name}\n".encode(),
                  _float_lines(b"v ", _to_yup(m.positions))]
        uv_index = normal_index = None
        if m.uvs is not None:
            first, uv_index = _group(_bits(m.uvs))
            blocks.append(_float_lines(b"vt ", m.uvs[first]))
        if m.normals is not None:
            normals = _unit(_to_yup(m.normals), _DEFAULT_NORMAL)
            first, normal_index = _group(_bits(normals))
            blocks.append(_float_lines(b"vn ", normals[first]))
        parts: list[bytes | _Field] = [b"f "]
        for i in range(3):
            parts += [b" " if i else b"", _int_field(m.corner_verts[i::3] + 1)]
            if uv_index is not None:
                parts += [b"/", _int_field(uv_index[i::3] + 1)]
            if normal_index is not None:
                parts += [b"/" if uv_index is not None else b"//",
                          _int_field(normal_index[i::3] + 1)]
        blocks.append(_lines(tris, [*parts, b"\n"]))
    except ValueError as exc:
        raise MeshFileError(f"{path.name}: {exc}") from None

    def write(fh: IO[bytes]) -> None:
        for block in blocks:
            fh.write(block)

    return write_atomic(path, write)


# --------------------------------------------------------------------------- GLB reading


def _one_line(message: str) -> str:
    return " ".join(message.split())


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
        if len(head) < 12 or head[:4] != _GLB_MAGIC:
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
        if kind != _JSON:
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
            if kind == _BIN:
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
        if ctype not in _DTYPES or (types and ctype not in types):
            raise _Bad(f"accessor {index} has componentType {ctype!r}, not allowed there")
        if acc.get("type") not in _COMPONENTS:
            raise _Bad(f"accessor {index} has unknown type {acc.get('type')!r}")
        dtype = np.dtype(_DTYPES[ctype])
        comps = _COMPONENTS[acc["type"]]
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
        normals = _unit(np.column_stack([n[:, 0], -n[:, 2], n[:, 1]]), None)
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
    for node_index, world in _mesh_nodes(gltf):
        node = nodes[node_index]
        mesh = _dict(meshes[_index(node["mesh"], len(meshes), "mesh")], "a mesh")
        if name is None:
            name = node.get("name") or mesh.get("name") or stem
        prims = mesh.get("primitives", [])
        if not isinstance(prims, list):
            raise _Bad("a mesh's primitives are not a list")
        for prim in prims:
            prim = _dict(prim, "a primitive")
            if prim.get("mode", _TRIANGLES) != _TRIANGLES:
                continue
            part = _primitive_part(glb, prim, world)
            if part is not None:
                parts.append(part)
    if not parts:
        raise _Bad("no triangle mesh in it")
    # One vertex per distinct position, so primitives and UV seams come out connected.
    positions = np.concatenate([p.positions for p in parts])
    first, inverse = _group(_bits(positions))
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
        raise MeshFileError(_one_line(f"{path.name}: {exc}")) from None
    except OSError as exc:
        raise MeshFileError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None
    except Exception as exc:  # a malformed file must not surface as any other type
        raise MeshFileError(_one_line(f"{path.name}: malformed glTF ({type(exc).__name__}: "
                                      f"{exc})")) from None


# --------------------------------------------------------------------------- prepared arrays


def save_npz(mesh: MeshArrays, path: str | os.PathLike[str]) -> Path:
    """Save the arrays uncompressed: loading them back is then little more than a read."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "positions": np.asarray(mesh.positions, dtype=np.float32),
        "corner_verts": np.asarray(mesh.corner_verts, dtype=np.int32),
        "name": np.array(str(mesh.name)),
    }
    if mesh.normals is not None:
        arrays["normals"] = np.asarray(mesh.normals, dtype=np.float32)
    if mesh.uvs is not None:
        arrays["uvs"] = np.asarray(mesh.uvs, dtype=np.float32)
    return write_atomic(path, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]


def load_npz(path: str | os.PathLike[str]) -> MeshArrays:
    """Arrays saved by `save_npz`, checked for shape (never unpickled)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            pos = np.asarray(z["positions"], dtype=np.float32)
            cv = np.asarray(z["corner_verts"], dtype=np.int32)
            normals = np.asarray(z["normals"], np.float32) if "normals" in z.files else None
            uvs = np.asarray(z["uvs"], np.float32) if "uvs" in z.files else None
            name = str(z["name"]) if "name" in z.files else path.name.split(".")[0]
    except Exception as exc:
        raise MeshFileError(_one_line(f"{path.name}: cannot load mesh arrays ({exc})")
                            ) from None
    ok = (pos.ndim == 2 and pos.shape[1] == 3 and cv.ndim == 1 and len(cv) % 3 == 0
          and (normals is None or normals.shape == (len(cv), 3))
          and (uvs is None or uvs.shape == (len(cv), 2))
          and (len(cv) == 0 or (cv.min() >= 0 and cv.max() < len(pos))))
    if not ok:
        raise MeshFileError(f"{path.name}: mesh arrays have inconsistent shapes or indices")
    return MeshArrays(pos, cv, normals, uvs, name)


def prepared_path(glb_path: str | os.PathLike[str]) -> Path:
    """Where `prepare` keeps a GLB's arrays: beside it, a_result.glb -> a_result.mesh.npz."""
    return Path(glb_path).with_suffix(".mesh.npz")


def prepare(glb_path: str | os.PathLike[str]) -> Path:
    """Parse a GLB once on a worker, so the main thread later only loads arrays."""
    return save_npz(read_glb(glb_path), prepared_path(glb_path))


def load_prepared(glb_path: str | os.PathLike[str]) -> MeshArrays:
    """The prepared arrays if they are at least as new as the GLB, else the GLB itself."""
    npz = prepared_path(glb_path)
    try:
        npz_time = npz.stat().st_mtime_ns
    except OSError:
        return read_glb(glb_path)
    try:
        fresh = npz_time >= Path(glb_path).stat().st_mtime_ns
    except OSError:
        fresh = True  # the GLB is gone; its arrays are all there is
    if fresh:
        try:
            return load_npz(npz)
        except MeshFileError:
            pass  # a damaged cache is not an error while the GLB is there
    return read_glb(glb_path)
