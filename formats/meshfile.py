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

import os
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .glb_mesh_read import read_glb
from .glb_mesh_write import write_glb
from .mesh import MeshArrays, MeshFileError, one_line
from .obj_mesh import write_obj

__all__ = ["MeshArrays", "MeshFileError", "load_npz", "load_prepared", "prepare",
           "prepared_path", "read_glb", "save_npz", "write_glb", "write_obj"]


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
        raise MeshFileError(one_line(f"{path.name}: cannot load mesh arrays ({exc})")
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
