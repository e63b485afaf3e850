"""A triangulated mesh as flat arrays, and what the mesh file writers and readers share.

`MeshArrays` is in Blender's axes (Z up); GLB is Y up, and OBJ is written like Blender's OBJ
exporter with its defaults (forward -Z, up Y). Blender (x, y, z) is glTF/OBJ (x, z, -y).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# glTF's default for a normal that is zero or not finite: Blender's up (+Z) in glTF axes.
DEFAULT_NORMAL = np.array([0.0, 1.0, 0.0])


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


def group(keys: np.ndarray, hashed: bool = True) -> tuple[np.ndarray, np.ndarray]:
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


def bits(values: np.ndarray) -> np.ndarray:
    """float32 values as uint32 bit patterns with -0.0 made 0.0, so equal values group."""
    v = np.array(values, dtype=np.float32)  # a copy: the caller's array stays as it was
    v += np.float32(0.0)
    return v.view(np.uint32)


def unit(vectors: np.ndarray, default: np.ndarray | None) -> np.ndarray:
    """Unit vectors (float32); zero or non-finite ones become `default` (None: zeros)."""
    v = np.asarray(vectors, dtype=np.float64)
    length = np.sqrt(np.einsum("ij,ij->i", v, v))
    ok = np.isfinite(length) & (length > 1e-30)
    out = v / np.where(ok, length, 1.0)[:, None]
    out[~ok] = 0.0 if default is None else default
    return out.astype(np.float32)


def to_yup(v: np.ndarray) -> np.ndarray:
    """Blender (x, y, z) -> glTF/OBJ (x, z, -y)."""
    out = np.empty(v.shape, dtype=np.float32)
    out[:, 0] = v[:, 0]
    out[:, 1] = v[:, 2]
    np.negative(v[:, 1], out=out[:, 2])
    return out


def checked(mesh: MeshArrays, path: Path) -> MeshArrays:
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


def one_line(message: str) -> str:
    return " ".join(message.split())
