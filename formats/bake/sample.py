"""Reading a provider's maps at surface points: bilinear samples with the texture repeating,
and a tangent-space normal carried from one surface's tangent frame to another's."""

from __future__ import annotations

import numpy as np


def as_channels(pixels: np.ndarray) -> np.ndarray:
    """An image as (H, W, C), whatever PNG layout it came in."""
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


class Bilinear:
    """Bilinear samples at `uv` ((K, 2), v up) of images of one size (H, W), the texture
    repeating like the material's Linear image node; the weights are worked out once."""

    def __init__(self, height: int, width: int, uv: np.ndarray) -> None:
        x = uv[:, 0].astype(np.float64) * width - 0.5
        y = (1.0 - uv[:, 1].astype(np.float64)) * height - 0.5  # row 0 is the top
        x0, y0 = np.floor(x), np.floor(y)
        fx = (x - x0).astype(np.float32)
        fy = (y - y0).astype(np.float32)
        x0i, y0i = x0.astype(np.int64) % width, y0.astype(np.int64) % height
        x1i, y1i = (x0i + 1) % width, (y0i + 1) % height
        self.index = (y0i * width + x0i, y0i * width + x1i, y1i * width + x0i,
                      y1i * width + x1i)
        self.weight = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(K, C) float32 samples of `image` ((H, W, C), row 0 = top), in its own units."""
        flat = image.reshape(-1, image.shape[2])
        out = flat[self.index[0]] * self.weight[0][:, None]
        for index, weight in zip(self.index[1:], self.weight[1:]):
            out += flat[index] * weight[:, None]
        return out


def decode_normal(values: np.ndarray, full: float) -> np.ndarray:
    """Stored normal-map values (K, ≥3) -> tangent-space vectors in [-1, 1]."""
    return values[:, :3] * np.float32(2.0 / full) - np.float32(1.0)


def encode_normal(vectors: np.ndarray, full: float) -> np.ndarray:
    """Unit tangent-space vectors (K, 3) -> stored values."""
    return (vectors + np.float32(1.0)) * np.float32(full / 2.0)


def to_world(ts: np.ndarray, tangent: np.ndarray, sign: np.ndarray,
             normal: np.ndarray) -> np.ndarray:
    """A tangent-space vector to the surface's space as Blender's Normal Map node does:
    normalize(x·T + y·(sign · N × T) + z·N)."""
    bitangent = sign[:, None] * np.cross(normal, tangent)
    out = ts[:, :1] * tangent + ts[:, 1:2] * bitangent + ts[:, 2:3] * normal
    return _unit(out)


def to_tangent(world: np.ndarray, tangent: np.ndarray, sign: np.ndarray,
               normal: np.ndarray) -> np.ndarray:
    """The inverse of `to_world` for the node's frame (T, B, N need not be orthonormal):
    the unit c with normalize(c·[T B N]) = world, by Cramer's rule."""
    bitangent = sign[:, None] * np.cross(normal, tangent)
    bn, nt, tb = np.cross(bitangent, normal), np.cross(normal, tangent), np.cross(tangent,
                                                                                   bitangent)
    det = np.einsum("ij,ij->i", tangent, bn)
    ok = np.abs(det) > 1e-12
    c = np.stack([np.einsum("ij,ij->i", m, world) for m in (bn, nt, tb)], axis=1)
    c /= np.where(ok, det, 1.0)[:, None]
    c[~ok] = (0.0, 0.0, 1.0)
    c[c[:, 2] < 0, 2] = 0.0  # a normal facing into the surface: the node could not show it
    return _unit(c)


def carry_detail(world: np.ndarray, from_normal: np.ndarray,
                 to_normal: np.ndarray) -> np.ndarray:
    """Rotate the mapped normals `world` by the rotation taking one surface's normal to the
    other's, so a map's detail is carried relative to the surface (a flat map stays flat even
    where the provider's mesh is coarser than the artist's)."""
    axis = np.cross(from_normal, to_normal)
    cos = np.einsum("ij,ij->i", from_normal, to_normal)
    # Rodrigues for the minimal rotation: v' = v cos + (k × v) + k (k·v) / (1 + cos)
    k_dot = np.einsum("ij,ij->i", axis, world)
    scale = 1.0 / np.maximum(1.0 + cos, 1e-6)
    out = world * cos[:, None] + np.cross(axis, world) + axis * (k_dot * scale)[:, None]
    flipped = cos < -0.999  # opposite normals: nothing sensible to rotate by
    out[flipped] = to_normal[flipped]
    return _unit(out)


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(length > 1e-20, length, 1.0)).astype(np.float32)
