"""Per-corner tangents in the manner of MikkTSpace, in numpy.

glTF says a mesh without TANGENT uses MikkTSpace tangents, and Blender's Normal Map node
reads MikkTSpace tangents too. This follows that scheme: a triangle's tangent is the direction
in which u grows on it, projected into each corner's normal plane; corners that share a
vertex, normal, UV and UV orientation share the angle-weighted average of their triangles'
tangents; the bitangent is sign × (normal × tangent), the sign being the orientation of the
triangle's UVs (mirrored islands get -1). It differs from the reference only in details of
grouping across degenerate triangles.
"""

from __future__ import annotations

import numpy as np

from ..mesh import bits, group


def corner_tangents(corner_positions: np.ndarray, corner_verts: np.ndarray,
                    normals: np.ndarray, uvs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tangents (C, 3) float32 unit, signs (C,) float32 ±1) for triangle corners."""
    p = np.asarray(corner_positions, dtype=np.float64).reshape(-1, 3, 3)
    uv = np.asarray(uvs, dtype=np.float64).reshape(-1, 3, 2)
    n = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    d1, d2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    t1, t2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    area = t1[:, 0] * t2[:, 1] - t1[:, 1] * t2[:, 0]
    orient = area > 0
    along_u: np.ndarray = t2[:, 1, None] * d1 - t1[:, 1, None] * d2
    along_u *= np.where(orient, 1.0, -1.0)[:, None]  # the direction in which u grows
    along_u = _unit(along_u)
    along_u[np.abs(area) < 1e-20] = 0.0  # no UV area: no say in the average
    # Each corner: the triangle's tangent in the corner's normal plane, weighted by its angle.
    t = np.repeat(along_u, 3, axis=0)
    t = _unit(t - n * np.einsum("ij,ij->i", t, n)[:, None])
    weight = _corner_angles(p).reshape(-1)
    orient_c = np.repeat(orient, 3)
    keys = np.concatenate([np.asarray(corner_verts, dtype=np.uint32)[:, None], bits(n),
                           bits(uv.reshape(-1, 2)), orient_c.astype(np.uint32)[:, None]],
                          axis=1)
    _first, inverse = group(keys)
    groups = int(inverse.max()) + 1 if len(inverse) else 0
    summed = np.stack([np.bincount(inverse, weights=t[:, k] * weight, minlength=groups)
                       for k in range(3)], axis=1)
    out = summed[inverse]
    out = out - n * np.einsum("ij,ij->i", out, n)[:, None]
    length = np.linalg.norm(out, axis=1)
    lost = length < 1e-12
    if lost.any():  # only degenerate triangles around: any direction in the normal plane
        out[lost] = _any_perpendicular(n[lost])
        length[lost] = np.linalg.norm(out[lost], axis=1)
    out /= np.where(length > 0, length, 1.0)[:, None]
    return out.astype(np.float32), np.where(orient_c, 1.0, -1.0).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(length > 1e-30, length, 1.0)


def _corner_angles(p: np.ndarray) -> np.ndarray:
    """(T, 3) angle of each triangle at each of its corners."""
    angles = np.empty(p.shape[:2])
    for k in range(3):
        a = _unit(p[:, (k + 1) % 3] - p[:, k])
        b = _unit(p[:, (k + 2) % 3] - p[:, k])
        angles[:, k] = np.arccos(np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0))
    return angles


def _any_perpendicular(n: np.ndarray) -> np.ndarray:
    axis = np.where(np.abs(n[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]),
                    np.array([[0.0, 1.0, 0.0]]))
    return np.cross(np.cross(n, axis), n)
