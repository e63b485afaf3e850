"""Seamless (tileable) noise building blocks in float32 numpy.

Every field here is periodic in the texture size, so a map tiles without a seam. Value noise is
separable, ``Wy @ L @ Wx.T``: ``L`` is a random periodic lattice and ``Wx``/``Wy`` hold periodic
cubic B-spline weights, so a whole fBm (all octaves stacked) is one BLAS product. Fields are kept
in that factored form so any band of rows can be produced on its own: the texture is built in
row strips that stay in cache and avoid page-faulting fresh 64 MB temporaries at 4096.

Lattices depend on the seed and a salt, never on the resolution, so the same material at 1024
and at 4096 is the same continuous function sampled more finely.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

F32 = np.float32


def rng_for(seed: int, *salt: str | int) -> np.random.Generator:
    """A generator fixed by the seed and a salt, independent of call order and process.

    Salting by name (not drawing from one shared stream) keeps a recipe's fields stable when
    another field is added or skipped.
    """
    words = [int(seed) & 0xFFFFFFFFFFFFFFFF]
    for item in salt:
        words.append(zlib.crc32(item.encode()) if isinstance(item, str) else int(item) & 0xFFFFFFFF)
    return np.random.default_rng(np.random.SeedSequence(words))


@lru_cache(maxsize=32)  # a 4096 x 256 matrix is 4 MB: keep few
def interp_matrix(res: int, g: int) -> np.ndarray:
    """(res x g) periodic cubic B-spline weights: row x samples the lattice at x*g/res.

    B-splines rather than smoothstep because they are C2: normal maps taken from the noise
    show no grid-aligned creases.
    """
    x = np.arange(res, dtype=np.float64) * (g / res)
    base = np.floor(x)
    f = x - base
    weights = (
        (1.0 - f) ** 3,
        3.0 * f**3 - 6.0 * f**2 + 4.0,
        -3.0 * f**3 + 3.0 * f**2 + 3.0 * f + 1.0,
        f**3,
    )
    out = np.zeros((res, g), dtype=np.float64)
    rows = np.arange(res)
    for k, w in enumerate(weights):
        np.add.at(out, (rows, (base.astype(np.int64) + k - 1) % g), w / 6.0)
    out = out.astype(F32)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Fbm:
    """A periodic fBm field in factored form: rows r0..r1 are ``left[r0:r1] @ right.T``."""

    left: np.ndarray  # (height, K): row weights times the octave lattices
    right: np.ndarray  # (width, K): column weights of every octave, side by side
    mean: float
    scale: float  # 1/std of the whole field, so rows() is zero-mean unit-variance

    def rows(self, r0: int, r1: int) -> np.ndarray:
        out = self.left[r0:r1] @ self.right.T
        out -= F32(self.mean)
        out *= F32(self.scale)
        return out


def _as_pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def fbm_factors(
    shape: tuple[int, int],
    freq: int | tuple[int, int],
    rng: np.random.Generator,
    octaves: int = 5,
    gain: float = 0.5,
) -> Fbm:
    """Build a periodic fractal value noise, normalised exactly over the whole tile.

    `freq` is the lattice size of the first octave, per axis as (rows, cols) for stretched
    patterns (grain, brushed streaks); integers, so the field tiles. Each octave doubles it.
    Frequencies are capped at two pixels: a small texture keeps its finest detail, unaliased.
    Mean and variance come from the factors' Gram matrices: normalising costs nothing per pixel.
    """
    h, w = shape
    fy, fx = _as_pair(freq)
    lefts, rights, last = [], [], (0, 0)
    amp = 1.0
    for _ in range(max(1, octaves)):
        size = (max(1, min(fy, h // 2)), max(1, min(fx, w // 2)))  # no finer than 2 pixels
        if size != last:
            lattice = rng.standard_normal(size)
            lattice -= lattice.mean()
            lattice *= amp / (lattice.std() or 1.0)
            lefts.append(interp_matrix(h, size[0]) @ lattice.astype(F32))
            rights.append(interp_matrix(w, size[1]))
            last = size
        amp *= gain
        fy, fx = fy * 2, fx * 2
    left, right = np.concatenate(lefts, axis=1), np.concatenate(rights, axis=1)
    l64, r64 = left.astype(np.float64), right.astype(np.float64)
    n = float(h) * float(w)
    mean = float(l64.sum(axis=0) @ r64.sum(axis=0)) / n
    power = float(np.sum((l64.T @ l64) * (r64.T @ r64))) / n
    std = float(np.sqrt(max(power - mean * mean, 0.0)))
    return Fbm(left, right, mean, 1.0 / std if std > 0 else 0.0)


def line_noise(length: int, freq: int, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Periodic 1-D fBm of `length` samples, zero mean and unit std.

    Read at (a*x + b*y) mod length it gives streaks in any integer direction that still tile.
    """
    out = np.zeros(length, dtype=np.float64)
    amp, g, last = 1.0, freq, 0
    for _ in range(octaves):
        size = max(1, min(g, length // 2))
        if size != last:
            out += interp_matrix(length, size) @ rng.standard_normal(size) * amp
            last = size
        amp, g = amp * 0.5, g * 2
    out -= out.mean()
    std = out.std()
    return (out / std if std > 0 else out).astype(F32)


def ridged(noise: np.ndarray, sharpness: float = 1.0) -> np.ndarray:
    """1 on the zero crossings of `noise`, falling off away from them: veins, cracks, creases."""
    out = np.abs(noise)
    out *= F32(-sharpness)
    np.exp(out, out=out)
    return out


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite ramp from 0 at edge0 to 1 at edge1, as a new float32 array."""
    t = np.subtract(x, F32(edge0), dtype=F32)
    t *= F32(1.0 / (edge1 - edge0))
    np.clip(t, 0.0, 1.0, out=t)
    out = t * F32(-2.0)
    out += F32(3.0)
    out *= t
    out *= t
    return out


# --------------------------------------------------------------------------- cellular


def _axis_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodic linear-interpolation taps from `src` samples to `dst`, pixel centres aligned."""
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    i0 = np.floor(pos)
    frac = (pos - i0).astype(F32)
    i0 = i0.astype(np.int64)
    return i0 % src, (i0 + 1) % src, frac


class Cellular:
    """Periodic Worley noise over `cells` x `cells` jittered points, readable by row bands.

    F1/F2 (distances to the nearest and second-nearest point, in cell units) are computed on
    a working grid of whole cells, at most ~`max_work` pixels a side, then upsampled
    bilinearly: they are continuous, so thresholds on them keep smooth contours. When the
    resolution allows, the working grid divides it exactly (power-of-two cell counts on
    power-of-two maps), so every output pixel pair sees the same interpolation phase pattern.
    """

    def __init__(
        self,
        res: int,
        cells: int,
        rng: np.random.Generator,
        jitter: float = 0.9,
        max_work: int = 1024,
    ) -> None:
        self.res, self.cells = res, cells
        self.work = _work_size(res, cells, max_work)
        cs = self.work // cells
        px = (0.5 + jitter * (rng.random((cells, cells)) - 0.5)).astype(F32)
        py = (0.5 + jitter * (rng.random((cells, cells)) - 0.5)).astype(F32)
        local = (np.arange(cs, dtype=F32) + F32(0.5)) / F32(cs)
        f1 = np.full((cells, cs, cells, cs), np.inf, dtype=F32)
        f2 = np.full_like(f1, np.inf)
        ident = np.zeros(f1.shape, dtype=np.int32)
        index = np.arange(cells * cells, dtype=np.int32).reshape(cells, cells)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                pxn = np.roll(px, (-dy, -dx), axis=(0, 1))[:, None, :, None]
                pyn = np.roll(py, (-dy, -dx), axis=(0, 1))[:, None, :, None]
                ddx = local[None, None, None, :] - F32(dx) - pxn
                ddy = local[None, :, None, None] - F32(dy) - pyn
                dist = ddx * ddx + ddy * ddy
                closer = dist < f1
                np.minimum(f2, np.maximum(f1, dist), out=f2)
                np.minimum(f1, dist, out=f1)
                cand = np.roll(index, (-dy, -dx), axis=(0, 1))[:, None, :, None]
                np.copyto(ident, np.broadcast_to(cand, ident.shape), where=closer)
        size = self.work
        self._f1 = np.sqrt(f1).reshape(size, size)
        self._f2 = np.sqrt(f2).reshape(size, size)
        self._ident = ident.reshape(size, size)
        if size != res:  # resample columns once; rows are resampled per band
            c0, c1, cf = _axis_taps(size, res)
            self._f1 = self._f1[:, c0] * (1 - cf) + self._f1[:, c1] * cf
            self._f2 = self._f2[:, c0] * (1 - cf) + self._f2[:, c1] * cf
            near = ((np.arange(res) + 0.5) * (size / res)).astype(np.int64) % size
            self._ident = self._ident[:, near]

    def rows(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(F1, F2, cell index) for texture rows r0..r1."""
        if self.work == self.res:
            return self._f1[r0:r1].copy(), self._f2[r0:r1].copy(), self._ident[r0:r1]
        size = self.work
        pos = (np.arange(r0, r1, dtype=np.float64) + 0.5) * (size / self.res) - 0.5
        i0 = np.floor(pos)
        frac = (pos - i0).astype(F32)[:, None]
        i0 = i0.astype(np.int64) % size
        i1 = (i0 + 1) % size
        out = []
        for field in (self._f1, self._f2):
            band = field[i0]
            band *= 1 - frac
            band += field[i1] * frac
            out.append(band)
        near = ((np.arange(r0, r1) + 0.5) * (size / self.res)).astype(np.int64) % size
        return out[0], out[1], self._ident[near]


def _work_size(res: int, cells: int, max_work: int) -> int:
    """A grid of whole cells, preferably res / 2^k so upsampling is by an integer factor."""
    work = res
    while work > max_work and work % 2 == 0:
        work //= 2
    if work <= max_work and work % cells == 0 and work // cells >= 2:
        return work
    return cells * max(2, round(min(res, max_work) / cells))


# --------------------------------------------------------------------------- normals


def normal_rows(height: np.ndarray, r0: int, r1: int, strength: float) -> np.ndarray:
    """Tangent-space normal map rows r0..r1 (OpenGL/Blender: +X right, +Y up) of a whole
    height field, as uint8.

    `strength` is the relief depth, in texture widths, of a height change of 1.0, so one
    material gives the same normals at any resolution. Row 0 is the top of the image, so green
    grows where the height grows downwards (that slope faces up). Flat is (128, 128, 255).
    """
    h, w = height.shape
    band = height[r0:r1]
    gx = np.empty(band.shape, dtype=F32)
    np.subtract(band[:, 2:], band[:, :-2], out=gx[:, 1:-1])
    gx[:, 0] = band[:, 1] - band[:, -1]
    gx[:, -1] = band[:, 0] - band[:, -2]
    rows = np.arange(r0, r1)
    gy = height[(rows + 1) % h] - height[(rows - 1) % h]
    scale = F32(0.5 * strength * w)
    gx *= -scale  # nx = -dh/dx
    gy *= scale  # ny = -dh/dY, and Y up is -row, so +dh/drow
    inv = gx * gx
    inv += gy * gy
    inv += F32(1.0)
    np.sqrt(inv, out=inv)
    np.divide(F32(1.0), inv, out=inv)
    out = np.empty((*band.shape, 3), dtype=np.uint8)
    for channel, comp in enumerate((gx, gy, inv)):
        if channel < 2:
            comp *= inv
        comp *= F32(127.5)
        comp += F32(128.0)
        np.clip(comp, 0.0, 255.0, out=comp)
        out[:, :, channel] = comp  # truncates: 128 + 127.5 -> 255, flat x/y -> 128
    return out
