"""OBJ mesh files written with numpy alone, like Blender's OBJ exporter with its defaults.

Numbers are formatted by digit arithmetic on whole arrays (no Python loop per vertex), which
releases the GIL, so Blender's interface keeps running while a worker writes a large mesh.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from .atomic import write_atomic
from .mesh import DEFAULT_NORMAL, MeshArrays, MeshFileError, bits, checked, group, to_yup, unit

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
    m = checked(mesh, path)
    tris = len(m.corner_verts) // 3
    name = "_".join((m.name or "mesh").split()) or "mesh"
    try:
        blocks = [f"# Text to Texture\no {name}\n".encode(),
                  _float_lines(b"v ", to_yup(m.positions))]
        uv_index = normal_index = None
        if m.uvs is not None:
            first, uv_index = group(bits(m.uvs))
            blocks.append(_float_lines(b"vt ", m.uvs[first]))
        if m.normals is not None:
            normals = unit(to_yup(m.normals), DEFAULT_NORMAL)
            first, normal_index = group(bits(normals))
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
