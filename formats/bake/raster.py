"""Which texels of a UV layout each triangle covers, and where in the triangle each one lies.

A texel belongs to a triangle when its centre lies inside the triangle's UV footprint. UVs
outside 0–1 wrap (the texture repeats, as the material samples it). A texel several triangles
cover (overlapping or mirrored UV islands) keeps one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Candidate texels tested per step: bounds the temporary arrays (~40 bytes each).
CHUNK = 1 << 19
_EPS = 1e-7  # a texel centre exactly on an edge counts as inside (the other side may keep it)


@dataclass
class Coverage:
    """Covered texels of a `size`² image, row 0 at v = 0 (the bottom, as Blender stores it)."""

    size: int
    texel: np.ndarray  # (K,) int64: row * size + column, ascending
    triangle: np.ndarray  # (K,) int32
    bary: np.ndarray  # (K, 3) float32 weights of the triangle's three corners


def rasterize(uvs: np.ndarray, size: int,
              check: Callable[[], None] | None = None) -> Coverage:
    """The texels whose centres fall inside the triangles `uvs` ((T, 3, 2), v up)."""
    p = np.asarray(uvs, dtype=np.float64).reshape(-1, 3, 2) * size - 0.5  # centres at integers
    lo = np.ceil(p.min(axis=1) - 1e-9).astype(np.int64)
    hi = np.floor(p.max(axis=1) + 1e-9).astype(np.int64)
    hi = np.minimum(hi, lo + size - 1)  # a triangle spanning the texture repeatedly: one period
    span = np.maximum(hi - lo + 1, 0)
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    counts = span[:, 0] * span[:, 1]
    counts[np.abs(area) < 1e-12] = 0  # no UV area: no texel can be inside
    ends = np.cumsum(counts)
    # Written straight into per-texel arrays: a texel several triangles cover keeps one.
    owner = np.full(size * size, -1, dtype=np.int32)
    weights = np.zeros((size * size, 3), dtype=np.float32)
    start_tri = 0
    while start_tri < len(counts):
        base = ends[start_tri - 1] if start_tri else 0
        stop_tri = int(np.searchsorted(ends, base + CHUNK, side="right"))
        stop_tri = max(stop_tri, start_tri + 1)
        idx = np.arange(start_tri, stop_tri)
        n = counts[idx]
        start_tri = stop_tri
        total = int(n.sum())
        if total == 0:
            continue
        if check is not None:
            check()
        tri = np.repeat(idx, n)
        local = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
        width = span[tri, 0]
        x = lo[tri, 0] + local % width
        y = lo[tri, 1] + local // width
        dx, dy = x - p[tri, 0, 0], y - p[tri, 0, 1]
        inv = 1.0 / area[tri]
        b1 = (dx * e2[tri, 1] - dy * e2[tri, 0]) * inv
        b2 = (dy * e1[tri, 0] - dx * e1[tri, 1]) * inv
        b0 = 1.0 - b1 - b2
        inside = (b0 >= -_EPS) & (b1 >= -_EPS) & (b2 >= -_EPS)
        texel = (y[inside] % size) * size + x[inside] % size
        owner[texel] = tri[inside]
        weights[texel] = np.stack([b0[inside], b1[inside], b2[inside]], axis=1)
    texel = np.flatnonzero(owner >= 0)
    return Coverage(size, texel, owner[texel], weights[texel])
