"""A tiny GLB reader/writer for the emulators: make test meshes, and give a mesh "the service's
UVs" by copying its glTF JSON + binary and adding new TEXCOORD_0 values.

The vertex count and order stay those of the uploaded mesh, so a client can copy the service's
UVs onto the artist's object vertex for vertex.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

GLB_MAGIC = b"glTF"
_JSON, _BIN = 0x4E4F534A, 0x004E4942
_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
           5126: np.float32}


def read_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(glTF JSON, BIN chunk) of a GLB; ValueError if it is not one."""
    if len(data) < 20 or data[:4] != GLB_MAGIC:
        raise ValueError("not a GLB (no glTF magic)")
    _magic, version, length = struct.unpack_from("<4sII", data, 0)
    if version != 2 or length > len(data):
        raise ValueError("unsupported or truncated GLB")
    pos, gltf, binary = 12, None, b""
    while pos + 8 <= length:
        size, kind = struct.unpack_from("<II", data, pos)
        chunk = data[pos + 8: pos + 8 + size]
        if kind == _JSON:
            gltf = json.loads(chunk.decode("utf-8"))
        elif kind == _BIN and not binary:
            binary = bytes(chunk)
        pos += 8 + size
    if gltf is None:
        raise ValueError("GLB has no JSON chunk")
    return gltf, binary


def write_glb(gltf: dict[str, Any], binary: bytes) -> bytes:
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary = binary + b"\x00" * (-len(binary) % 4)
    chunks = struct.pack("<II", len(text), _JSON) + text
    if binary:
        chunks += struct.pack("<II", len(binary), _BIN) + binary
    return struct.pack("<4sII", GLB_MAGIC, 2, 12 + len(chunks)) + chunks


def read_accessor(gltf: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    """An accessor's values as an (count, components) array (no sparse accessors)."""
    acc = gltf["accessors"][index]
    if "sparse" in acc or "bufferView" not in acc:
        raise ValueError("sparse or empty accessors are not supported")
    view = gltf["bufferViews"][acc["bufferView"]]
    if view.get("buffer", 0) != 0:
        raise ValueError("only the GLB's own buffer is supported")
    dtype = np.dtype(_DTYPES[acc["componentType"]]).newbyteorder("<")
    comps, count = _COMPONENTS[acc["type"]], acc["count"]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    item = dtype.itemsize * comps
    stride = view.get("byteStride") or item
    raw = np.frombuffer(binary, dtype=np.uint8, count=stride * (count - 1) + item, offset=start)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(count, item), strides=(stride, 1))
    return np.ascontiguousarray(rows).view(dtype).reshape(count, comps)


def make_glb(positions: np.ndarray, indices: np.ndarray, uvs: np.ndarray | None = None) -> bytes:
    """A minimal valid GLB: one node, one mesh, one triangle primitive."""
    pos = np.asarray(positions, dtype="<f4").reshape(-1, 3)
    idx = np.asarray(indices, dtype="<u4").reshape(-1)
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "t2t-emulator"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {}, "indices": None, "mode": 4}]}],
        "buffers": [{"byteLength": 0}], "bufferViews": [], "accessors": [],
    }
    binary = bytearray()
    prim = gltf["meshes"][0]["primitives"][0]
    prim["attributes"]["POSITION"] = _append(gltf, binary, pos, "VEC3", _ARRAY_BUFFER, True)
    if uvs is not None:
        uv = np.asarray(uvs, dtype="<f4").reshape(-1, 2)
        prim["attributes"]["TEXCOORD_0"] = _append(gltf, binary, uv, "VEC2", _ARRAY_BUFFER)
    prim["indices"] = _append(gltf, binary, idx, "SCALAR", _ELEMENT_ARRAY_BUFFER)
    gltf["buffers"][0]["byteLength"] = len(binary)
    return write_glb(gltf, bytes(binary))


def quad_glb() -> bytes:
    """A unit quad with UVs, for tasks whose mesh the emulator could not read (a URL)."""
    pos = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=np.float32)
    return make_glb(pos, np.array([0, 1, 2, 0, 2, 3]), meshy_uvs(pos))


def cube_glb(size: float = 1.0) -> bytes:
    """A 24-vertex cube (split per face, as exporters write it), with simple UVs."""
    faces = [((0, 0, 1), (1, 0, 0)), ((0, 0, -1), (-1, 0, 0)), ((1, 0, 0), (0, 0, -1)),
             ((-1, 0, 0), (0, 0, 1)), ((0, 1, 0), (1, 0, 0)), ((0, -1, 0), (1, 0, 0))]
    pos: list[np.ndarray] = []
    idx: list[int] = []
    uvs: list[tuple[float, float]] = []
    for n, u in faces:
        nv, uv = np.array(n, float), np.array(u, float)
        v = np.cross(nv, uv)
        base = len(pos)
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            pos.append((nv + su * uv + sv * v) * size / 2)
            uvs.append(((su + 1) / 2, (sv + 1) / 2))
        idx += [base, base + 1, base + 2, base, base + 2, base + 3]
    return make_glb(np.array(pos), np.array(idx), np.array(uvs))


def meshy_uvs(positions: np.ndarray) -> np.ndarray:
    """The emulated service's own UV layout: a planar XY projection into [0.1, 0.9]².

    Deterministic, so a test can compute what the object's new UV map must hold.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    uv = (pos[:, :2] - lo[:2]) / span[:2]
    return (0.1 + 0.8 * uv).astype(np.float32)


def with_new_uvs(glb: bytes) -> bytes:
    """The uploaded GLB with every primitive's TEXCOORD_0 replaced by `meshy_uvs`."""
    gltf, binary = read_glb(glb)
    if not binary or not gltf.get("buffers") or "uri" in gltf["buffers"][0]:
        raise ValueError("GLB without its own binary buffer")
    out = bytearray(binary)
    for mesh in gltf.get("meshes", []):
        for prim in mesh.get("primitives", []):
            pos = read_accessor(gltf, binary, prim["attributes"]["POSITION"])
            prim["attributes"]["TEXCOORD_0"] = _append(
                gltf, out, meshy_uvs(pos), "VEC2", _ARRAY_BUFFER
            )
    gltf["buffers"][0]["byteLength"] = len(out)
    return write_glb(gltf, bytes(out))


def uvs_of(glb: bytes, mesh: int = 0, primitive: int = 0) -> np.ndarray:
    gltf, binary = read_glb(glb)
    prim = gltf["meshes"][mesh]["primitives"][primitive]
    return read_accessor(gltf, binary, prim["attributes"]["TEXCOORD_0"])


def positions_of(glb: bytes, mesh: int = 0, primitive: int = 0) -> np.ndarray:
    gltf, binary = read_glb(glb)
    prim = gltf["meshes"][mesh]["primitives"][primitive]
    return read_accessor(gltf, binary, prim["attributes"]["POSITION"])


def _append(gltf: dict[str, Any], binary: bytearray, values: np.ndarray, kind: str,
            target: int, bounds: bool = False) -> int:
    binary.extend(b"\x00" * (-len(binary) % 4))
    data = np.ascontiguousarray(values).tobytes()
    gltf["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(data),
                                "target": target})
    binary.extend(data)
    acc: dict[str, Any] = {
        "bufferView": len(gltf["bufferViews"]) - 1,
        "componentType": _UINT32 if values.dtype.kind == "u" else _FLOAT,
        "count": int(values.shape[0]), "type": kind,
    }
    if bounds:
        acc["min"] = [float(x) for x in values.min(axis=0)]
        acc["max"] = [float(x) for x in values.max(axis=0)]
    gltf["accessors"].append(acc)
    return len(gltf["accessors"]) - 1
