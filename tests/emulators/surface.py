"""A provider's result whose content can be checked: the uploaded surface with a UV layout of
the service's own, and maps whose every texel says where on the surface it is.

* UVs: every triangle gets its own square cell of an atlas (its corners at three corners of
  the cell), unrelated to the artist's UVs and cut at every edge: the hardest layout to carry
  back.
* Base colour: RGB = 0.1 + 0.8 × the surface point's position, normalised to the uploaded
  mesh's bounding box (`encode`/`decode`). Each cell is painted with its triangle's plane
  continued to the cell's edges, as a service pads its islands, so filtering never reads
  another triangle.
* Normal map: flat (0.5, 0.5, 1); the packed metallic-roughness and the separate roughness and
  metallic maps: constant known levels.
* Optionally the surface is decimated first (vertex clustering, to a share of its triangles), as
  a service that simplifies the mesh returns it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import png_bytes
from .glb import read_accessor, read_glb, write_glb

LOW, SPAN = 0.1, 0.8  # position p in [lo, hi] is stored as LOW + SPAN * (p - lo) / (hi - lo)
FLAT_NORMAL = (128, 128, 255)
ROUGHNESS_LEVEL, METALLIC_LEVEL = 153, 51


@dataclass
class Surface:
    positions: np.ndarray  # (V, 3) float32, glTF axes (as uploaded)
    triangles: np.ndarray  # (T, 3) int64
    normals: np.ndarray | None = None  # (V, 3) per vertex, if the upload had them


def encode(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return LOW + SPAN * (np.asarray(points, np.float64) - lo) / span


def decode(rgb: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Colour values in 0–1 back to positions (in the axes `lo`/`hi` are given in)."""
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return (np.asarray(rgb, np.float64) - LOW) / SPAN * span + lo


def read_surface(glb: bytes) -> Surface:
    """The first mesh primitive of an uploaded GLB (node transforms are not applied: the
    add-on uploads one untransformed node)."""
    gltf, binary = read_glb(glb)
    prim = gltf["meshes"][0]["primitives"][0]
    pos = read_accessor(gltf, binary, prim["attributes"]["POSITION"]).astype(np.float32)
    idx = read_accessor(gltf, binary, prim["indices"]).reshape(-1, 3).astype(np.int64)
    normals = None
    if "NORMAL" in prim["attributes"]:
        normals = read_accessor(gltf, binary, prim["attributes"]["NORMAL"]).astype(np.float32)
    return Surface(pos, idx, normals)


def decimate(surface: Surface, share: float) -> Surface:
    """About `share` of the triangles, by clustering vertices on a grid (bisected on the cell
    size); what stays is the same surface, coarser."""
    pos, tris = surface.positions.astype(np.float64), surface.triangles
    # Corners of a UV seam are separate vertices at one position: weld them first.
    _, weld = np.unique(np.round(pos, 6), axis=0, return_inverse=True)
    weld = weld.reshape(-1)
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    size = float(np.linalg.norm(hi - lo))
    small, large = size * 1e-4, size
    best = surface
    for _ in range(40):
        cell = math.sqrt(small * large)
        keys = np.floor((pos - lo) / cell).astype(np.int64)
        _, cluster = np.unique(keys[np.unique(weld, return_index=True)[1]][weld], axis=0,
                               return_inverse=True)
        cluster = cluster.reshape(-1)
        t = cluster[tris]
        keep = (t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])
        count = int(keep.sum())
        if abs(count / len(tris) - share) < 0.03:
            n = int(cluster.max()) + 1
            centre = np.zeros((n, 3))
            np.add.at(centre, cluster, pos)
            centre /= np.bincount(cluster, minlength=n)[:, None]
            normals = None
            if surface.normals is not None:
                acc = np.zeros((n, 3))
                np.add.at(acc, cluster, surface.normals)
                normals = (acc / np.linalg.norm(acc, axis=1, keepdims=True)).astype(np.float32)
            best = Surface(centre.astype(np.float32), t[keep], normals)
            break
        if count / len(tris) > share:
            small = cell
        else:
            large = cell
    return best


def atlas(count: int, margin: float = 0.08) -> tuple[np.ndarray, int]:
    """((count, 3, 2) UVs, v up; cells per row): triangle i in cell i, row-major from the
    top-left, its corners at the cell's lower-left, lower-right and upper-left corners
    (inset by `margin` of a cell)."""
    cols = max(1, math.ceil(math.sqrt(count)))
    i = np.arange(count)
    cx, cy = i % cols, i // cols
    x0 = (cx + margin) / cols
    x1 = (cx + 1 - margin) / cols
    y0 = 1.0 - (cy + 1 - margin) / cols
    y1 = 1.0 - (cy + margin) / cols
    uv = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x0, y1], 1)], 1)
    return uv, cols


def position_image(surface: Surface, uv: np.ndarray, cols: int, size: int,
                   lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(size, size, 3) uint8, row 0 = top: each cell painted with its triangle's positions."""
    ys, xs = np.mgrid[0:size, 0:size]
    u = (xs + 0.5) / size
    v = 1.0 - (ys + 0.5) / size
    row = np.minimum(((1.0 - v) * cols).astype(np.int64), cols - 1)
    cell = row * cols + np.minimum((u * cols).astype(np.int64), cols - 1)
    tri = np.minimum(cell, len(surface.triangles) - 1)
    a, b, c = uv[tri, 0], uv[tri, 1], uv[tri, 2]
    e1, e2 = b - a, c - a  # axis-aligned: e1 along u, e2 along v
    w1 = (u - a[..., 0]) / e1[..., 0]
    w2 = (v - a[..., 1]) / e2[..., 1]
    corners = surface.positions[surface.triangles[tri]].astype(np.float64)
    points = (corners[..., 0, :] * (1 - w1 - w2)[..., None] + corners[..., 1, :] * w1[..., None]
              + corners[..., 2, :] * w2[..., None])
    rgb = encode(points, lo, hi)
    rgb[cell >= len(surface.triangles)] = LOW  # cells no triangle uses
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def relaid(surface: Surface) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray,
                                      int]:
    """(positions, indices, normals, uvs (glTF: v down), cells per row) of the surface with
    the atlas layout: three vertices of its own per triangle."""
    tris = surface.triangles
    uv, cols = atlas(len(tris))
    pos = surface.positions[tris].reshape(-1, 3)
    normals = None if surface.normals is None else surface.normals[tris].reshape(-1, 3)
    gl_uv = uv.reshape(-1, 2).copy()
    gl_uv[:, 1] = 1.0 - gl_uv[:, 1]
    return pos, np.arange(len(pos)), normals, gl_uv.astype(np.float32), cols


def image_png(pixels: np.ndarray) -> bytes:
    h, w = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(h, -1)
    return png_bytes(w, h, lambda y: rows[y].tobytes())


def flat_png(rgb: tuple[int, ...], size: int = 16) -> bytes:
    return png_bytes(size, size, lambda y: bytes(rgb) * size)


@dataclass
class Result:
    """What a service hands back: its mesh (with its own UVs) and maps by role."""

    positions: np.ndarray
    indices: np.ndarray
    normals: np.ndarray | None
    uvs: np.ndarray  # glTF convention (v down)
    maps: dict[str, bytes]
    lo: np.ndarray  # the encoding's box (the uploaded mesh's, glTF axes)
    hi: np.ndarray


def result(upload: bytes, size: int = 1024, decimated: float | None = None) -> Result:
    """The result for an uploaded GLB: same surface (or decimated), atlas UVs, checkable maps."""
    surface = read_surface(upload)
    lo, hi = surface.positions.min(axis=0), surface.positions.max(axis=0)
    if decimated is not None:
        surface = decimate(surface, decimated)
    pos, idx, normals, gl_uv, cols = relaid(surface)
    uv, _ = atlas(len(surface.triangles))
    pixels = position_image(surface, uv, cols, size, lo.astype(np.float64), hi.astype(np.float64))
    maps = {
        "base_color": image_png(pixels),
        "normal": flat_png(FLAT_NORMAL),
        "metallic_roughness": flat_png((255, ROUGHNESS_LEVEL, METALLIC_LEVEL)),
        "roughness": flat_png((ROUGHNESS_LEVEL,) * 3),
        "metallic": flat_png((METALLIC_LEVEL,) * 3),
    }
    return Result(pos, idx, normals, gl_uv, maps, lo, hi)


def result_glb(res: Result, embed: tuple[str, ...] = ("base_color", "metallic_roughness",
                                                      "normal")) -> bytes:
    """The result as a textured GLB embedding `embed` maps in its material (Triverse)."""
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "t2t-emulator-surface"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {}, "mode": 4, "material": 0}]}],
        "buffers": [{"byteLength": 0}], "bufferViews": [], "accessors": [],
        "images": [], "textures": [], "samplers": [{"wrapS": 10497, "wrapT": 10497}],
    }
    binary = bytearray()

    def view(data: bytes, target: int | None = None) -> int:
        binary.extend(b"\x00" * (-len(binary) % 4))
        entry: dict[str, Any] = {"buffer": 0, "byteOffset": len(binary), "byteLength": len(data)}
        if target is not None:
            entry["target"] = target
        binary.extend(data)
        gltf["bufferViews"].append(entry)
        return len(gltf["bufferViews"]) - 1

    def accessor(values: np.ndarray, kind: str, ctype: int, target: int) -> int:
        acc: dict[str, Any] = {"bufferView": view(values.tobytes(), target), "type": kind,
                               "componentType": ctype, "count": int(values.shape[0])}
        if kind == "VEC3":
            acc["min"] = [float(x) for x in values.min(axis=0)]
            acc["max"] = [float(x) for x in values.max(axis=0)]
        gltf["accessors"].append(acc)
        return len(gltf["accessors"]) - 1

    prim = gltf["meshes"][0]["primitives"][0]
    prim["attributes"]["POSITION"] = accessor(res.positions.astype("<f4"), "VEC3", 5126, 34962)
    if res.normals is not None:
        prim["attributes"]["NORMAL"] = accessor(res.normals.astype("<f4"), "VEC3", 5126, 34962)
    prim["attributes"]["TEXCOORD_0"] = accessor(res.uvs.astype("<f4"), "VEC2", 5126, 34962)
    prim["indices"] = accessor(res.indices.astype("<u4"), "SCALAR", 5125, 34963)
    slot: dict[str, int] = {}
    for role in embed:
        gltf["images"].append({"bufferView": view(res.maps[role]), "mimeType": "image/png"})
        gltf["textures"].append({"source": len(gltf["images"]) - 1, "sampler": 0})
        slot[role] = len(gltf["textures"]) - 1
    material: dict[str, Any] = {"pbrMetallicRoughness": {}}
    if "base_color" in slot:
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": slot["base_color"]}
    if "metallic_roughness" in slot:
        material["pbrMetallicRoughness"]["metallicRoughnessTexture"] = {
            "index": slot["metallic_roughness"]}
    if "normal" in slot:
        material["normalTexture"] = {"index": slot["normal"]}
    gltf["materials"] = [material]
    gltf["buffers"][0]["byteLength"] = len(binary)
    return write_glb(gltf, bytes(binary))


# Emulator knob values (Triverse's `result_topology`) -> share of triangles kept (None: all).
KINDS: dict[str, float | None] = {"surface": None, "surface-decimated": 0.3}


def served_glb(emulator: Any, task_id: str, upload: bytes, kind: str) -> bytes:
    """A Triverse result GLB for `upload`; the `Result` is kept on the emulator
    (`surface_results[task_id]`) for the test to check the bake against."""
    res = result(upload, max(int(emulator.map_size), 256), KINDS[kind])
    emulator.__dict__.setdefault("surface_results", {})[task_id] = res
    return result_glb(res)
