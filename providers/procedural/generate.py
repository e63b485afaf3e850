"""Map generation: `generate_maps` runs `build_band` over bands of rows on worker threads and
turns the bands into 8/16-bit maps.

Bands keep each temporary small and in cache, which keeps 4096 maps fast and lean; the first
band runs alone and builds the fields every band shares, so the threads then only read them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..base import BASE_COLOR, HEIGHT, MAP_ROLES, METALLIC, NORMAL, ROUGHNESS
from . import noise
from .fields import Bank, Strip
from .modifiers import build_band
from .noise import F32
from .vocabulary import parse_prompt

StepFn = Callable[[float, str], None]

_WORKERS = max(1, min(2, os.cpu_count() or 1))
MAX_RESOLUTION = 8192
_BAND_PIXELS = 1 << 18


def _to_u8(values: np.ndarray, out: np.ndarray) -> None:
    scaled = values * F32(255.0)
    scaled += F32(0.5)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    out[...] = scaled


def generate_maps(
    prompt: str,
    seed: int,
    resolution: int,
    negative_prompt: str = "",
    *,
    roles: Iterable[str] | None = None,
    on_step: StepFn | None = None,
) -> dict[str, np.ndarray]:
    """All maps of the prompt's material as arrays (row 0 = top), without touching files.

    base_color HxWx3 uint8 sRGB, roughness/metallic HxW uint8, normal HxWx3 uint8 (OpenGL),
    height HxW uint16. `on_step(fraction, message)` is called between bands on the calling
    thread; raising from it (a cancel) stops the work.
    """
    res = int(resolution)
    if not 8 <= res <= MAX_RESOLUTION:  # 8192 already needs ~1.3 GB at its peak
        raise ValueError(f"resolution must be between 8 and {MAX_RESOLUTION}, not {resolution}")
    wanted = set(roles) if roles is not None else set(MAP_ROLES)
    params = parse_prompt(prompt, negative_prompt)
    step = on_step or (lambda _f, _m: None)
    bank = Bank(res, int(seed), params.scale)
    rows = max(8, min(res, _BAND_PIXELS // res))
    bands = [(r0, min(res, r0 + rows)) for r0 in range(0, res, rows)]
    base = np.empty((res, res, 3), np.uint8)
    rough = np.empty((res, res), np.uint8)
    metal = np.empty((res, res), np.uint8)
    height = np.empty((res, res), F32)
    bumps: list[float] = []

    def material_band(r0: int, r1: int) -> None:
        layers = build_band(Strip(bank, r0, r1), params)
        for channel in range(3):
            _to_u8(layers.albedo[channel], base[r0:r1, :, channel])
        _to_u8(layers.rough, rough[r0:r1])
        _to_u8(layers.metal, metal[r0:r1])
        height[r0:r1] = layers.height
        if r0 == 0:
            bumps.append(layers.bump)

    label = params.variant if params.material in ("metal", "wood") else params.material
    _run_bands(material_band, bands, step, 0.0, 0.8, f"generating {label}")
    maps: dict[str, np.ndarray] = {BASE_COLOR: base, ROUGHNESS: rough, METALLIC: metal}
    if wanted & {NORMAL, HEIGHT}:
        lo, hi = float(height.min()), float(height.max())
        height16 = np.empty((res, res), np.uint16)
        normal = np.empty((res, res, 3), np.uint8)
        span = F32(65535.0 / (hi - lo)) if hi > lo else F32(0.0)

        def relief_band(r0: int, r1: int) -> None:
            normal[r0:r1] = noise.normal_rows(height, r0, r1, bumps[0])
            scaled = (height[r0:r1] - F32(lo)) * span
            scaled += F32(0.5 if hi > lo else 32768.0)
            height16[r0:r1] = scaled

        _run_bands(relief_band, bands, step, 0.8, 1.0, "computing normal and height")
        maps[NORMAL], maps[HEIGHT] = normal, height16
    return {role: arr for role, arr in maps.items() if role in wanted}


def _run_bands(work: Callable[[int, int], None], bands: list[tuple[int, int]], step: StepFn,
               start: float, end: float, message: str) -> None:
    """Run the first band alone (it builds the shared fields), the rest on worker threads."""
    step(start, message)
    work(*bands[0])
    if len(bands) == 1 or _WORKERS == 1:
        for i, band in enumerate(bands[1:], 2):
            step(start + (end - start) * i / len(bands), message)
            work(*band)
        return
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        futures: list[Future[None]] = [pool.submit(work, *band) for band in bands[1:]]
        try:
            for i, fut in enumerate(futures, 2):
                fut.result()
                step(start + (end - start) * i / len(bands), message)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
