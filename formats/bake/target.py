"""The artist's object as a bake needs it: its evaluated triangles in object space, with the
UV map the maps go onto and, per corner, the normal and tangent frame Blender's Normal Map
node will read. Gathered on the main thread when the bake starts (blender/bake_gather.py) and
handed to the job's worker in memory; `save_target`/`load_target` keep one in a file (tools,
benchmarks)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..mesh import MeshFileError, one_line


@dataclass
class BakeTarget:
    positions: np.ndarray  # (V, 3) float32, object space
    corner_verts: np.ndarray  # (C,) int32, 3 per triangle
    normals: np.ndarray  # (C, 3) float32, object space
    uvs: np.ndarray  # (C, 2) float32, v up
    matrix: np.ndarray  # (4, 4) float64 object -> world
    tangents: np.ndarray | None = None  # (C, 3) float32; None: worked out like MikkTSpace
    signs: np.ndarray | None = None  # (C,) float32 bitangent signs (±1)
    uv_name: str = ""

    @property
    def triangles(self) -> int:
        return len(self.corner_verts) // 3


def save_target(target: BakeTarget, path: str | os.PathLike[str]) -> Path:
    arrays: dict[str, np.ndarray] = {
        "positions": np.asarray(target.positions, np.float32),
        "corner_verts": np.asarray(target.corner_verts, np.int32),
        "normals": np.asarray(target.normals, np.float32),
        "uvs": np.asarray(target.uvs, np.float32),
        "matrix": np.asarray(target.matrix, np.float64),
        "uv_name": np.array(target.uv_name),
    }
    if target.tangents is not None and target.signs is not None:
        arrays["tangents"] = np.asarray(target.tangents, np.float32)
        arrays["signs"] = np.asarray(target.signs, np.float32)
    return write_atomic(Path(path), lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]


def load_target(path: str | os.PathLike[str]) -> BakeTarget:
    """A saved target, checked for shape (never unpickled); MeshFileError if unusable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            t = BakeTarget(
                positions=np.asarray(z["positions"], np.float32),
                corner_verts=np.asarray(z["corner_verts"], np.int32),
                normals=np.asarray(z["normals"], np.float32),
                uvs=np.asarray(z["uvs"], np.float32),
                matrix=np.asarray(z["matrix"], np.float64),
                tangents=np.asarray(z["tangents"], np.float32) if "tangents" in z else None,
                signs=np.asarray(z["signs"], np.float32) if "signs" in z else None,
                uv_name=str(z["uv_name"]) if "uv_name" in z else "",
            )
    except Exception as exc:
        raise MeshFileError(one_line(f"{path.name}: cannot load the bake target ({exc})")
                            ) from None
    c = len(t.corner_verts)
    ok = (t.positions.ndim == 2 and t.positions.shape[1] == 3 and c % 3 == 0 and c > 0
          and t.normals.shape == (c, 3) and t.uvs.shape == (c, 2) and t.matrix.shape == (4, 4)
          and t.corner_verts.min() >= 0 and t.corner_verts.max() < len(t.positions)
          and (t.tangents is None or t.tangents.shape == (c, 3))
          and (t.signs is None or t.signs.shape == (c,)))
    if not ok:
        raise MeshFileError(f"{path.name}: the bake target's arrays do not fit together")
    return t
