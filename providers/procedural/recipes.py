"""Material recipes: `RECIPES` by material name, and the made materials' recipes (wood, metal,
clay, ceramic, fabric, leather, concrete, plaster, plastic, rubber, paper).

A recipe turns one `Strip` into `Layers` from periodic noise and coordinates only, so every
map tiles and looks the same at any resolution; natural materials are in `natural`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import noise
from .fields import Cells, Layers, Strip, lerp3, ramp, rgb, zeros
from .natural import NATURAL
from .noise import F32, smoothstep
from .vocabulary import METALS, Color, Params

_WOODS: dict[str, tuple[Color, Color]] = {  # earlywood, latewood
    "wood": ((0.74, 0.54, 0.33), (0.50, 0.32, 0.17)),
    "oak": ((0.78, 0.60, 0.38), (0.56, 0.38, 0.20)),
    "walnut": ((0.46, 0.31, 0.20), (0.28, 0.17, 0.10)),
    "pine": ((0.90, 0.76, 0.52), (0.76, 0.50, 0.26)),
    "maple": ((0.92, 0.81, 0.63), (0.80, 0.65, 0.45)),
    "cherry": ((0.74, 0.44, 0.27), (0.54, 0.27, 0.15)),
    "mahogany": ((0.56, 0.26, 0.15), (0.38, 0.15, 0.08)),
    "birch": ((0.93, 0.85, 0.70), (0.83, 0.71, 0.53)),
    "ebony": ((0.20, 0.15, 0.12), (0.09, 0.07, 0.06)),
    "teak": ((0.70, 0.50, 0.30), (0.50, 0.33, 0.18)),
    "cedar": ((0.80, 0.50, 0.32), (0.62, 0.33, 0.18)),
    "ash": ((0.86, 0.76, 0.60), (0.66, 0.54, 0.38)),
    "beech": ((0.86, 0.68, 0.50), (0.72, 0.52, 0.36)),
    "bamboo": ((0.88, 0.76, 0.52), (0.74, 0.60, 0.36)),
}
_PORES = ("oak", "walnut", "ash", "wood", "teak", "mahogany")


def _wood(s: Strip, p: Params, cells: Cells | None) -> Layers:
    early, late = (rgb(c) for c in _WOODS.get(p.variant, _WOODS["wood"]))
    phase = s.noise("wood.arch", (3, 2), 3) * F32(0.55)
    phase += s.noise("wood.wave", (8, 3), 2) * F32(0.12)
    phase += s.v * F32(s.freq(13))
    if cells is not None:
        phase += cells.rand * F32(7.0)  # each plank its own figure
    ring = phase - np.floor(phase)
    late_t = smoothstep(0.55, 0.9, ring) * (F32(1) - smoothstep(0.94, 1.0, ring))
    grain = s.noise("wood.grain", (s.freq(150), 4), 2)
    fibre = s.noise("wood.fibre", (s.freq(360), 6), 1)
    tone = s.noise("wood.tone", (6, 2), 3)
    t = np.clip(late_t * F32(0.8) + grain * F32(0.1) + tone * F32(0.1), 0, 1)
    albedo = lerp3(early, late, t)
    shade = F32(1) + tone * F32(0.05) + fibre * F32(0.035)
    height = F32(0.5) - late_t * F32(0.1) + grain * F32(0.03) + fibre * F32(0.02)
    pores = zeros(s)
    if p.variant in _PORES:
        pores = smoothstep(2.0, 2.7, s.noise("wood.pores", (s.freq(260), 18), 1))
        shade -= pores * F32(0.2)
        height -= pores * F32(0.15)
    albedo *= shade
    rough = F32(0.62) + late_t * F32(0.06) + pores * F32(0.15)
    ref = early * F32(0.6) + late * F32(0.4)
    return s.layers(albedo, height, rough, ref=ref, bump=0.0035, cavity=pores,
                    edge=np.clip(grain * F32(0.3), 0, 1))


def _metal(s: Strip, p: Params, cells: Cells | None) -> Layers:
    color, rough0 = METALS.get(p.variant, METALS["steel"])
    brushed = 0.35 if p.variant in ("steel", "aluminium", "titanium") else 0.1
    brushed = p.mods.get("brushed", brushed)
    smudge = s.noise("metal.smudge", 5, 4)
    streak = s.noise("metal.brush", (192, 3), 2)
    shade = F32(1) + smudge * F32(0.03) + streak * F32(0.04 * brushed)
    rough = F32(rough0) + smudge * F32(0.04 + 0.1 * rough0) + streak * F32(0.06 * brushed)
    height = F32(0.5) + streak * F32(0.02 * brushed)
    if p.variant == "iron":
        cast = s.noise("metal.cast", 24, 3)
        shade += cast * F32(0.05)
        rough += cast * F32(0.08)
        height += cast * F32(0.03)
    wear = s.noise("metal.wear", 9, 4)
    albedo = rgb(color) * shade
    return s.layers(albedo, height, rough, 1.0, ref=color, bump=0.002,
                    cavity=np.clip(-wear * F32(0.5), 0, 1), edge=np.clip(wear * F32(0.5), 0, 1))


def _clay(s: Strip, p: Params, cells: Cells | None) -> Layers:
    """Fired clay: the face of a brick."""
    tone = s.noise("clay.tone", 10, 4)
    speck = s.noise("clay.speck", s.freq(120), 2)
    t = np.clip(F32(0.5) + tone * F32(0.18) + speck * F32(0.1), 0, 1)
    albedo = ramp(t, [(0, (0.38, 0.15, 0.09)), (0.5, (0.58, 0.26, 0.17)), (1, (0.72, 0.40, 0.28))])
    pits = smoothstep(1.8, 2.5, s.noise("clay.pits", s.freq(160), 1))
    albedo *= (F32(1) - pits * F32(0.4))
    height = F32(0.5) + tone * F32(0.05) + speck * F32(0.03) - pits * F32(0.3)
    return s.layers(albedo, height, F32(0.84) + speck * F32(0.04), ref=(0.58, 0.26, 0.17),
                    bump=0.003, cavity=pits)


def _ceramic(s: Strip, p: Params, cells: Cells | None) -> Layers:
    wave = s.noise("ceramic.wave", 6, 3)
    albedo = rgb((0.90, 0.89, 0.86)) * (F32(1) + wave * F32(0.015))
    return s.layers(albedo, F32(0.5) + wave * F32(0.03), F32(0.1) + wave * F32(0.015),
                    ref=(0.90, 0.89, 0.86), bump=0.001)


def _scaled(color: Color, k: float) -> Color:
    return (color[0] * k, color[1] * k, color[2] * k)


def _mix(a: Color, b: Color, t: float) -> Color:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


_FABRICS = {  # threads per tile, warp colour, weft colour, roughness, twill, fuzz
    "cloth": (56, (0.70, 0.66, 0.60), (0.66, 0.62, 0.56), 0.9, False, 0.08),
    "denim": (72, (0.15, 0.24, 0.44), (0.80, 0.80, 0.77), 0.88, True, 0.1),
    "wool": (28, (0.72, 0.68, 0.62), (0.68, 0.64, 0.58), 0.95, False, 0.25),
    "canvas": (40, (0.76, 0.70, 0.58), (0.72, 0.66, 0.54), 0.9, False, 0.08),
    "silk": (110, (0.86, 0.83, 0.79), (0.82, 0.79, 0.75), 0.35, True, 0.02),
}


def _fabric(s: Strip, p: Params, cells: Cells | None) -> Layers:
    threads, warp_c, weft_c, rough0, twill, fuzz_amt = _FABRICS.get(p.variant, _FABRICS["cloth"])
    repeat = 4 if twill else 2
    n = max(repeat, round(threads * s.bank.scale / repeat) * repeat)
    if p.colors:  # denim keeps some indigo depth whatever its colour
        warp_c = _mix(warp_c, p.colors[0], 0.55) if p.variant == "denim" else p.colors[0]
        weft_c = p.colors[1] if len(p.colors) > 1 else (
            (0.80, 0.80, 0.77) if p.variant == "denim" else _scaled(p.colors[0], 0.92))
    su, sv = s.u * F32(n), s.v * F32(n)
    iu, iv = np.floor(su), np.floor(sv)
    fu, fv = su - iu, sv - iv
    i, j = iu.astype(np.int64), iv.astype(np.int64)
    on_top = ((i + j) % repeat < repeat - 1) if twill else ((i + j) % 2 == 0)
    across_warp, across_weft = np.sin(fu * F32(np.pi)), np.sin(fv * F32(np.pi))
    h_warp = np.sqrt(across_warp) * (F32(0.75) + F32(0.25) * across_weft)
    h_weft = np.sqrt(across_weft) * (F32(0.75) + F32(0.25) * across_warp)
    height = np.where(on_top, h_warp, h_weft)
    slub_u = s.table("fabric.slub.u", n)[i % n]
    slub_v = s.table("fabric.slub.v", n)[j % n]
    fuzz = s.noise("fabric.fuzz", s.freq(200), 2)
    warp_shade = (F32(0.9) + F32(0.2) * slub_u) + fuzz * F32(fuzz_amt * 0.4)
    weft_shade = (F32(0.9) + F32(0.2) * slub_v) + fuzz * F32(fuzz_amt * 0.4)
    shade = np.where(on_top, warp_shade, weft_shade) * (F32(0.7) + F32(0.3) * height)
    albedo = np.where(on_top, rgb(warp_c), rgb(weft_c)) * shade
    height = height * F32(0.8) + fuzz * F32(fuzz_amt * 0.2) + F32(0.1)
    layers = s.layers(albedo, height, F32(rough0) + fuzz * F32(0.03), ref=warp_c,
                      bump=0.15 / n, cavity=np.clip(F32(0.6) - height, 0, 1),
                      edge=np.clip(height - F32(0.7), 0, 1) * F32(3))
    layers.tinted = bool(p.colors)
    return layers


def _leather(s: Strip, p: Params, cells: Cells | None) -> Layers:
    f1, f2, _ = s.cells("leather", 64, 0.95)
    crease = F32(1) - smoothstep(0.0, 0.22, f2 - f1)
    wrinkle = noise.ridged(s.noise("leather.wrinkle", 5, 4), 5.0)
    tone = s.noise("leather.tone", 6, 4)
    pebble = F32(1) - np.minimum(f1 * f1, F32(1))
    height = F32(0.45) + pebble * F32(0.25) - crease * F32(0.25) - wrinkle * F32(0.25)
    base = rgb((0.40, 0.24, 0.14))
    albedo = base * (F32(1) + tone * F32(0.07) - crease * F32(0.22) - wrinkle * F32(0.2)
                     + pebble * F32(0.05))
    rough = F32(0.58) + crease * F32(0.15) + tone * F32(0.04) - pebble * F32(0.06)
    return s.layers(albedo, height, rough, ref=(0.40, 0.24, 0.14), bump=0.004,
                    cavity=np.maximum(crease, wrinkle), edge=pebble * F32(0.6))


def _concrete(s: Strip, p: Params, cells: Cells | None) -> Layers:
    asphalt = p.variant == "asphalt"
    base = rgb((0.19, 0.19, 0.20) if asphalt else (0.58, 0.57, 0.54))
    stain = s.noise("concrete.stain", 4, 5, 0.6)
    grain = s.noise("concrete.grain", s.freq(128), 2)
    stones = smoothstep(0.9, 1.5, s.noise("concrete.aggregate", s.freq(56), 2))
    pores = smoothstep(1.9, 2.6, s.noise("concrete.pores", s.freq(200), 1))
    shade = F32(1) + stain * F32(0.08) + grain * F32(0.05) - pores * F32(0.45)
    albedo = base * shade
    albedo = lerp3(albedo, rgb((0.48, 0.47, 0.45) if asphalt else (0.66, 0.64, 0.60)),
                   stones * F32(0.6))
    height = F32(0.5) + grain * F32(0.04) + stones * F32(0.12) + stain * F32(0.03)
    height -= pores * F32(0.35)
    return s.layers(albedo, height, F32(0.9 if asphalt else 0.86) + grain * F32(0.03),
                    ref=base, bump=0.006, cavity=pores)


def _plaster(s: Strip, p: Params, cells: Cells | None) -> Layers:
    trowel = s.noise("plaster.trowel", 5, 4, 0.55)
    swirl = noise.ridged(s.noise("plaster.swirl", 3, 3), 3.0)
    grain = s.noise("plaster.grain", s.freq(180), 2)
    base = rgb((0.86, 0.84, 0.80))
    albedo = base * (F32(1) + trowel * F32(0.03) + grain * F32(0.02) - swirl * F32(0.03))
    height = F32(0.5) + trowel * F32(0.1) + swirl * F32(0.06) + grain * F32(0.02)
    return s.layers(albedo, height, F32(0.82) + trowel * F32(0.04), ref=(0.86, 0.84, 0.80),
                    bump=0.008)


def _plastic(s: Strip, p: Params, cells: Cells | None) -> Layers:
    peel = s.noise("plastic.peel", s.freq(64), 2)
    base = rgb((0.82, 0.82, 0.82))
    albedo = base * (F32(1) + peel * F32(0.005))
    return s.layers(albedo, F32(0.5) + peel * F32(0.04), F32(0.33) + peel * F32(0.02),
                    ref=(0.82, 0.82, 0.82), bump=0.0015)


def _rubber(s: Strip, p: Params, cells: Cells | None) -> Layers:
    grain = s.noise("rubber.grain", s.freq(150), 2)
    tone = s.noise("rubber.tone", 5, 3)
    base = rgb((0.12, 0.12, 0.12))
    albedo = base * (F32(1) + grain * F32(0.06) + tone * F32(0.05))
    return s.layers(albedo, F32(0.5) + grain * F32(0.1), F32(0.82) + tone * F32(0.04),
                    ref=(0.12, 0.12, 0.12), bump=0.0015)


def _paper(s: Strip, p: Params, cells: Cells | None) -> Layers:
    card = p.variant == "cardboard"
    fibres = s.noise("paper.fibre.x", (s.freq(300), s.freq(40)), 1)
    fibres += s.noise("paper.fibre.y", (s.freq(40), s.freq(300)), 1)
    blotch = s.noise("paper.blotch", 6, 4)
    base = rgb((0.70, 0.55, 0.37) if card else (0.93, 0.91, 0.86))
    albedo = base * (F32(1) + fibres * F32(0.012) + blotch * F32(0.015))
    return s.layers(albedo, F32(0.5) + fibres * F32(0.04) + blotch * F32(0.05),
                    F32(0.9) + fibres * F32(0.02), ref=base, bump=0.003)


RECIPES: dict[str, Callable[[Strip, Params, Cells | None], Layers]] = {
    "wood": _wood, "metal": _metal, "clay": _clay, "ceramic": _ceramic, "fabric": _fabric,
    "leather": _leather, "concrete": _concrete, "plaster": _plaster, "plastic": _plastic,
    "rubber": _rubber, "paper": _paper, **NATURAL,
}
