"""Per-band fields and the small colour/array helpers every recipe and modifier uses.

`Bank` holds what all bands of one texture share (noise factors, cell fields, random tables),
built once under a lock; `Strip` is one band of rows reading those fields; `Layers` is the
band's material (colour, height, roughness, metal, masks) and `Cells` a brick/tile/plank layout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import NormalDist
from typing import Any, TypeVar

import numpy as np

from . import noise
from .noise import F32, smoothstep
from .vocabulary import Color

Num = np.ndarray | float | np.floating[Any]
T = TypeVar("T")


class Bank:
    """State shared by all bands of one texture: noise factors and cell fields, built once."""

    def __init__(self, res: int, seed: int, scale: float) -> None:
        self.res, self.seed, self.scale = res, seed, scale
        self._lock = threading.Lock()
        self._cache: dict[tuple[object, ...], object] = {}

    def get(self, key: tuple[object, ...], build: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]  # type: ignore[return-value]


class Strip:
    """Rows r0..r1 of the texture: coordinates plus access to the shared periodic fields."""

    def __init__(self, bank: Bank, r0: int, r1: int) -> None:
        self.bank, self.r0, self.r1, self.res = bank, r0, r1, bank.res
        self.shape = (r1 - r0, bank.res)
        # pixel centres: the tile's edge falls between the last and the first pixel
        self.u = ((np.arange(bank.res, dtype=F32) + F32(0.5)) / F32(bank.res))[None, :]
        self.v = ((np.arange(r0, r1, dtype=F32) + F32(0.5)) / F32(bank.res))[:, None]

    def freq(self, base: float) -> int:
        """A pattern count scaled by the prompt's size words, whole so the pattern tiles."""
        return max(1, round(base * self.bank.scale))

    def noise(self, name: str, freq: int | tuple[int, int], octaves: int = 4,
              gain: float = 0.5) -> np.ndarray:
        """Unit-variance periodic fBm for these rows; `name` keeps fields independent."""
        bank = self.bank
        factors = bank.get(("fbm", name, freq, octaves, gain), lambda: noise.fbm_factors(
            (bank.res, bank.res), freq, noise.rng_for(bank.seed, name), octaves, gain))
        return factors.rows(self.r0, self.r1)

    def cells(self, name: str, base: float, jitter: float = 0.9) -> tuple[np.ndarray, ...]:
        """Worley (F1, F2, cell index) over about `base` cells per side, scaled by size words.

        The count is snapped to a power of two so power-of-two maps need no fractional resampling.
        """
        bank = self.bank
        count = self.cell_count(base)
        cell = bank.get(("cells", name, count, jitter), lambda: noise.Cellular(
            bank.res, count, noise.rng_for(bank.seed, name), jitter))
        return cell.rows(self.r0, self.r1)

    def cell_count(self, base: float) -> int:
        return int(2 ** max(1, round(np.log2(max(base * self.bank.scale, 2.0)))))

    def table(self, name: str, size: int) -> np.ndarray:
        """`size` uniform random values, the same for every band."""
        bank = self.bank
        return bank.get(("table", name, size),
                        lambda: noise.rng_for(bank.seed, name).random(size).astype(F32))

    def lines(self, name: str, freq: int, a: int, b: int) -> np.ndarray:
        """1-D noise read at (a*x + b*y) mod res: straight streaks that tile (a > 0).

        The periodic table is repeated end to end and read through a strided view, so the
        band costs one copy instead of index arithmetic over every pixel.
        """
        bank, res, rows = self.bank, self.res, self.r1 - self.r0
        table = bank.get(("line", name, freq), lambda: noise.line_noise(
            res, freq, noise.rng_for(bank.seed, name)))
        lead = -(-abs(b) * rows // res) * res  # whole periods of room for rows stepping back
        repeats = (lead + (a + 1) * res + abs(b) * rows) // res + 1
        longer = np.tile(table, repeats)
        start = lead + (b * self.r0) % res
        step = longer.strides[0]
        view = np.lib.stride_tricks.as_strided(
            longer[start:], shape=(rows, res), strides=(b * step, a * step), writeable=False)
        return view.copy()

    def layers(self, albedo: np.ndarray, height: np.ndarray, rough: np.ndarray | float,
               metal: float = 0.0, *, ref: Color | np.ndarray, bump: float,
               cavity: np.ndarray | None = None, edge: np.ndarray | None = None) -> Layers:
        """A recipe's result for these rows; cavity and edge default to the low and high relief."""
        rough_a = np.broadcast_to(np.asarray(rough, F32), self.shape).astype(F32)
        return Layers(
            albedo=albedo.astype(F32, copy=False), height=height.astype(F32, copy=False),
            rough=rough_a, metal=np.full(self.shape, metal, F32),
            cavity=cavity if cavity is not None else np.clip(F32(0.5) - height, 0, 1) * F32(2),
            edge=edge if edge is not None else np.clip(height - F32(0.5), 0, 1) * F32(2),
            ref=luminance(rgb(ref)).item(), bump=bump)


@dataclass
class Layers:
    """One band of the material; height is 0..1 around 0.5, cavity/edge are 0..1 masks."""

    albedo: np.ndarray  # (3, rows, res) sRGB 0..1, channel-first
    height: np.ndarray
    rough: np.ndarray
    metal: np.ndarray
    cavity: np.ndarray  # crevices: where dirt, moss and patina gather
    edge: np.ndarray  # exposed places: where wear shows first
    ref: float = 0.5  # nominal luminance, the pivot for colour words
    bump: float = 0.002  # relief depth in texture widths for a height change of 1
    tinted: bool = False  # the recipe already used the colour words itself


@dataclass
class Cells:
    """A brick/tile/plank layout for one band."""

    rand: np.ndarray  # per-cell uniform random value
    rand2: np.ndarray
    parity: np.ndarray  # checkerboard 0/1 (int)
    dist: np.ndarray  # distance to the nearest joint, in texture units
    gap: float  # half joint width, texture units
    bevel: float


def rgb(color: Color | Iterable[float] | np.ndarray) -> np.ndarray:
    """A colour as a (3, 1, 1) array: colour bands are channel-first, (3, rows, res).

    Channel-first keeps numpy's inner loops long; a trailing axis of 3 is ~10x slower.
    """
    return np.asarray(color, dtype=F32).reshape(3, 1, 1)


def lerp(a: Num, b: Num, t: np.ndarray) -> np.ndarray:
    return a + (np.asarray(b, F32) - a) * t


def lerp3(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Mix two colours (RGB triples or colour bands) by a (rows, res) weight."""
    return a + (b - a) * t


def ramp(t: np.ndarray, stops: Sequence[tuple[float, Color]]) -> np.ndarray:
    """Piecewise-linear colour ramp over 0..1."""
    out = np.broadcast_to(rgb(stops[0][1]), (3, *t.shape)).copy()
    for (p0, c0), (p1, c1) in pairwise(stops):
        w = np.clip((t - F32(p0)) * F32(1.0 / (p1 - p0)), 0.0, 1.0)
        out += (rgb(c1) - rgb(c0)) * w
    return out


def luminance(albedo: np.ndarray) -> np.ndarray:
    out = albedo[0] * F32(0.2126)
    out += albedo[1] * F32(0.7152)
    out += albedo[2] * F32(0.0722)
    return out


def coverage(field_: np.ndarray, amount: float, soft: float = 0.3) -> np.ndarray:
    """Mask covering about `amount` of a roughly unit-normal field, with soft borders."""
    amount = min(max(amount, 0.01), 0.99)
    threshold = NormalDist().inv_cdf(1.0 - amount)
    return smoothstep(threshold - soft, threshold + soft, field_)


def recolor(albedo: np.ndarray, color: np.ndarray, ref: float, strength: float) -> np.ndarray:
    """Recolour keeping the pattern's light and dark: colour x (luminance / nominal)."""
    scale = np.clip(luminance(albedo) * F32(1.0 / max(ref, 1e-3)), 0.0, 2.5)
    tinted: np.ndarray = color * scale
    if strength >= 1:
        return tinted
    tinted -= albedo
    tinted *= F32(strength)
    tinted += albedo
    return tinted


def zeros(s: Strip) -> np.ndarray:
    return np.zeros(s.shape, F32)
