"""What a bake must give, checked from Blender's side, independently of the add-on's baker.

The object's evaluated triangles are rasterised here in its UV space, one triangle at a time (a
plain loop: slow, obvious), giving each covered texel and the surface point it shows. The
emulator's maps encode positions (`emulators.surface`), so the baked image must give those
points back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emulators import surface


@dataclass
class Texels:
    size: int
    index: np.ndarray  # (K,) row * size + column, row 0 at the bottom (Blender's pixel order)
    world: np.ndarray  # (K, 3) the surface point each one shows, world space


def covered_texels(obj: Any, uv_name: str, size: int) -> Texels:
    """The texels whose centres fall inside the object's evaluated triangles in UV map
    `uv_name`, and the world-space point each one shows."""
    import bpy

    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    matrix = np.array(obj.matrix_world)
    co = np.array([matrix @ np.array([*v.co, 1.0]) for v in mesh.vertices])[:, :3]
    uv_layer = mesh.uv_layers[uv_name].uv
    found: dict[int, np.ndarray] = {}
    for tri in mesh.loop_triangles:
        uv = np.array([uv_layer[i].vector for i in tri.loops]) * size - 0.5
        pos = co[[mesh.loops[i].vertex_index for i in tri.loops]]
        x0, y0 = np.ceil(uv.min(axis=0)).astype(int)
        x1, y1 = np.floor(uv.max(axis=0)).astype(int)
        (ax, ay), (bx, by), (cx, cy) = uv
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) < 1e-12:
            continue
        y, x = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        w1 = ((x - ax) * (cy - ay) - (y - ay) * (cx - ax)) / area
        w2 = ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) / area
        w0 = 1.0 - w1 - w2
        inside = (np.minimum(np.minimum(w0, w1), w2) >= 0) & (x >= 0) & (x < size) & (y >= 0) \
            & (y < size)
        points = w0[inside, None] * pos[0] + w1[inside, None] * pos[1] + w2[inside, None] * pos[2]
        for key, point in zip(y[inside] * size + x[inside], points):
            found[int(key)] = point
    index = np.array(sorted(found), dtype=np.int64)
    return Texels(size, index, np.array([found[i] for i in index]))


def pixels(image: Any) -> np.ndarray:
    """(size², C) float values as stored (0–1), Blender's order (row 0 at the bottom)."""
    w, h = image.size
    px = np.empty(w * h * image.channels, dtype=np.float32)
    image.pixels.foreach_get(px)
    return px.reshape(w * h, image.channels)


def expected_colour(world: np.ndarray, result: surface.Result) -> np.ndarray:
    """The colour the emulator's map holds for these world points (it encodes glTF axes)."""
    gltf = np.stack([world[:, 0], world[:, 2], -world[:, 1]], axis=1)
    return surface.encode(gltf, result.lo.astype(np.float64), result.hi.astype(np.float64))


def position_errors(image: Any, texels: Texels, result: surface.Result) -> np.ndarray:
    """Per covered texel, how far the baked colour is from the point's own, in units of the
    object's size (largest channel)."""
    got = pixels(image)[texels.index, :3]
    return np.abs(got - expected_colour(texels.world, result)).max(axis=1) / surface.SPAN


def mip3_errors(image: Any, texels: Texels, result: surface.Result) -> np.ndarray:
    """Per 8×8 block holding covered texels: the block's average (what mip level 3 shows)
    against the average of the points its covered texels show, in units of the object's size.
    Empty texels in a block pull its average away unless they were filled from the island."""
    size = texels.size
    values = pixels(image)[:, :3].reshape(size // 8, 8, size // 8, 8, 3).mean(axis=(1, 3))
    want = expected_colour(texels.world, result)
    block = (texels.index // size // 8) * (size // 8) + (texels.index % size) // 8
    sums = np.zeros(((size // 8) ** 2, 3))
    np.add.at(sums, block, want)
    counts = np.bincount(block, minlength=(size // 8) ** 2)
    has = counts > 0
    mean = sums[has] / counts[has, None]
    return np.abs(values.reshape(-1, 3)[has] - mean).max(axis=1) / surface.SPAN


def normal_errors(image: Any, texels: Texels) -> np.ndarray:
    """Per covered texel, the largest channel's distance from flat (0.5, 0.5, 1)."""
    got = pixels(image)[texels.index, :3]
    flat = np.array(surface.FLAT_NORMAL) / 255.0
    return np.abs(got - flat).max(axis=1)
