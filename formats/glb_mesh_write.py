"""GLB mesh files written with numpy alone, off Blender's main thread: one node, one mesh, one
triangle primitive, Y up, vertices in Blender's vertex order.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import IO, Any

import numpy as np

from .atomic import write_atomic
from .gltf import (
    ARRAY_BUFFER,
    BIN_CHUNK,
    DTYPES,
    ELEMENT_ARRAY_BUFFER,
    FLOAT,
    GLB_MAGIC,
    JSON_CHUNK,
    TRIANGLES,
    UINT,
    USHORT,
)
from .mesh import DEFAULT_NORMAL, MeshArrays, bits, checked, group, to_yup, unit


def write_glb(mesh: MeshArrays, path: str | os.PathLike[str]) -> Path:
    """Write `mesh` as a glTF 2.0 binary: one node, one mesh, one triangle primitive.

    glTF attributes are per vertex, so corners sharing a vertex, normal and UV become one
    glTF vertex; vertices come in Blender's vertex order.
    """
    path = Path(path)
    m = checked(mesh, path)
    cv = m.corner_verts
    normals = None if m.normals is None else unit(to_yup(m.normals), DEFAULT_NORMAL)
    uvs = None
    if m.uvs is not None:
        uvs = np.empty_like(m.uvs)
        uvs[:, 0] = m.uvs[:, 0]
        uvs[:, 1] = 1.0 - m.uvs[:, 1].astype(np.float64)  # glTF's v runs down
    if normals is None and uvs is None:
        positions, indices = to_yup(m.positions), cv
    else:
        columns = [cv.astype(np.uint32)[:, None]]
        columns += [bits(a) for a in (normals, uvs) if a is not None]
        first, inverse = group(np.concatenate(columns, axis=1))
        by_vertex = np.argsort(cv[first], kind="stable")  # (vertex, first use) order
        new_id = np.empty(len(first), dtype=np.intp)
        new_id[by_vertex] = np.arange(len(first))
        first, indices = first[by_vertex], new_id[inverse]
        positions = to_yup(m.positions[cv[first]])
        normals = None if normals is None else normals[first]
        uvs = None if uvs is None else uvs[first]
    index_type = USHORT if len(positions) < 65536 else UINT
    index_array = indices.astype("<u2" if index_type == USHORT else "<u4")

    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "Text to Texture"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": m.name, "mesh": 0}],
        "meshes": [{"name": m.name, "primitives": [{"attributes": {}, "mode": TRIANGLES}]}],
        "accessors": [],
        "bufferViews": [],
        "buffers": [{"byteLength": 0}],
    }
    blobs: list[np.ndarray] = []
    offset = 0

    def add(values: np.ndarray, kind: str, ctype: int, target: int) -> int:
        nonlocal offset
        data = np.ascontiguousarray(values, dtype=DTYPES[ctype])
        offset += -offset % 4
        gltf["bufferViews"].append({"buffer": 0, "byteOffset": offset,
                                    "byteLength": data.nbytes, "target": target})
        blobs.append(data)
        offset += data.nbytes
        gltf["accessors"].append({"bufferView": len(gltf["bufferViews"]) - 1,
                                  "componentType": ctype, "count": len(data), "type": kind})
        return len(gltf["accessors"]) - 1

    prim = gltf["meshes"][0]["primitives"][0]
    prim["attributes"]["POSITION"] = add(positions, "VEC3", FLOAT, ARRAY_BUFFER)
    gltf["accessors"][-1]["min"] = [float(x) for x in positions.min(axis=0)]
    gltf["accessors"][-1]["max"] = [float(x) for x in positions.max(axis=0)]
    if normals is not None:
        prim["attributes"]["NORMAL"] = add(normals, "VEC3", FLOAT, ARRAY_BUFFER)
    if uvs is not None:
        prim["attributes"]["TEXCOORD_0"] = add(uvs, "VEC2", FLOAT, ARRAY_BUFFER)
    prim["indices"] = add(index_array, "SCALAR", index_type, ELEMENT_ARRAY_BUFFER)
    bin_length = offset + (-offset % 4)
    gltf["buffers"][0]["byteLength"] = bin_length
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + bin_length

    def write(fh: IO[bytes]) -> None:
        fh.write(struct.pack("<4sII", GLB_MAGIC, 2, total))
        fh.write(struct.pack("<II", len(text), JSON_CHUNK) + text)
        fh.write(struct.pack("<II", bin_length, BIN_CHUNK))
        written = 0
        for blob in blobs:
            fh.write(b"\x00" * (-written % 4))
            written += -written % 4
            fh.write(blob.data.cast("B"))  # straight from the array, no copy
            written += blob.nbytes
        fh.write(b"\x00" * (bin_length - written))

    return write_atomic(path, write)
