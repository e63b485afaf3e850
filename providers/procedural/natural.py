"""Recipes for natural materials: stone, rock, marble, granite, sand, grass, moss, ground and
mud, cobbles and gravel, ice, lava and scales.

Kept apart from the made materials only to keep modules small; `recipes.RECIPES` lists both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import noise
from .fields import Cells, Layers, Strip, lerp, lerp3, luminance, ramp, recolor, rgb, zeros
from .noise import F32, smoothstep
from .vocabulary import Color, Params


def _stone(s: Strip, p: Params, cells: Cells | None) -> Layers:
    rock = p.variant == "rock"
    base = s.noise("stone.base", 4, 6, 0.55)
    ridge = noise.ridged(s.noise("stone.ridge", 3, 5, 0.5), 2.5)
    speck = s.noise("stone.speck", s.freq(96), 2)
    height = F32(0.5) + base * F32(0.14) + ridge * F32(0.18 if rock else 0.08) + speck * F32(0.02)
    t = np.clip(F32(0.5) + base * F32(0.2) + speck * F32(0.08), 0, 1)
    stops = ([(0, (0.30, 0.27, 0.24)), (0.5, (0.47, 0.43, 0.38)), (1, (0.62, 0.58, 0.52))] if rock
             else [(0, (0.36, 0.35, 0.33)), (0.5, (0.52, 0.51, 0.48)), (1, (0.68, 0.66, 0.62))])
    albedo = ramp(t, stops)
    albedo *= (F32(1) - ridge * F32(0.18))
    rough = F32(0.86 if rock else 0.8) + speck * F32(0.03)
    return s.layers(albedo, height, rough, ref=stops[1][1], bump=0.03 if rock else 0.02)


def _marble(s: Strip, p: Params, cells: Cells | None) -> Layers:
    base = rgb(p.colors[0]) if p.colors else rgb((0.92, 0.91, 0.88))
    dark_base = luminance(base).item() < 0.35
    vein_col = rgb(p.attached.get("vein", (0.85, 0.84, 0.80) if dark_base else (0.42, 0.42, 0.44)))
    warp = s.noise("marble.warp", 2, 3) * F32(1.1)
    warp += np.abs(s.noise("marble.turb", 5, 5, 0.55)) * F32(0.9)
    wave = np.abs(np.sin((s.u + s.v * F32(2)) * F32(2 * np.pi) + warp))
    veins = F32(1) - smoothstep(0.0, 0.4, wave)
    veins *= veins
    veins *= smoothstep(-1.2, 0.6, s.noise("marble.fade", 3, 3))
    fine = noise.ridged(s.noise("marble.fine", 5, 5, 0.55), 22.0) * F32(0.25)
    cloud = s.noise("marble.cloud", 4, 4)
    v = np.clip(veins * F32(0.85) + fine + cloud * F32(0.06), 0, 1)
    albedo = lerp3(base * (F32(1) + cloud * F32(0.025)), vein_col, v)
    layers = s.layers(albedo, F32(0.5) - v * F32(0.03), F32(0.12) + v * F32(0.06),
                      ref=base, bump=0.002)
    layers.tinted = True
    return layers


def _granite(s: Strip, p: Params, cells: Cells | None) -> Layers:
    base = s.noise("granite.base", 8, 3)
    albedo = rgb((0.56, 0.54, 0.53)) * (F32(1) + base * F32(0.06))
    minerals = ((0.10, 0.10, 0.11), (0.88, 0.86, 0.84), (0.70, 0.52, 0.46))
    height = F32(0.5) + base * F32(0.03)
    for i, (color, cut) in enumerate(zip(minerals, (0.7, 1.2, 1.4))):
        grain = s.noise(f"granite.m{i}", s.freq(90), 2)
        m = smoothstep(cut, cut + 0.35, grain)
        albedo = lerp3(albedo, rgb(color), m)
        height += m * F32(0.04 * (i - 0.5))
    return s.layers(albedo, height, F32(0.35) + base * F32(0.04), ref=(0.5, 0.48, 0.47),
                    bump=0.002)


def _sand(s: Strip, p: Params, cells: Cells | None) -> Layers:
    phase = s.v * F32(s.freq(14)) + s.noise("sand.bend", (3, 2), 3) * F32(0.8)
    phase += s.noise("sand.wiggle", (8, 4), 2) * F32(0.15)
    frac = phase - np.floor(phase)
    ripple = np.where(frac < 0.7, frac * F32(1 / 0.7), (F32(1) - frac) * F32(1 / 0.3))
    ripple = ripple * ripple * (F32(3) - F32(2) * ripple)
    grain = s.noise("sand.grain", s.freq(220), 2)
    tone = s.noise("sand.tone", 5, 3)
    base = rgb((0.82, 0.70, 0.50))
    albedo = base * (F32(1) + grain * F32(0.05) + tone * F32(0.05) - ripple * F32(0.04))
    height = F32(0.35) + ripple * F32(0.3) + grain * F32(0.03)
    return s.layers(albedo, height, F32(0.93) + grain * F32(0.03), ref=(0.82, 0.70, 0.50),
                    bump=0.006)


def _grass(s: Strip, p: Params, cells: Cells | None) -> Layers:
    blades = s.noise("grass.blades", (s.freq(48), s.freq(240)), 2)
    blades += s.noise("grass.blades2", (s.freq(240), s.freq(48)), 2) * F32(0.6)
    patches = s.noise("grass.patch", 4, 4)
    t = np.clip(F32(0.5) + blades * F32(0.22), 0, 1)
    albedo = ramp(t, [(0, (0.08, 0.16, 0.04)), (0.55, (0.22, 0.40, 0.09)), (1, (0.48, 0.60, 0.22))])
    dry = smoothstep(0.6, 1.6, patches)
    albedo = lerp3(albedo, albedo * rgb((1.5, 1.15, 0.7)), dry)
    return s.layers(albedo, F32(0.5) + blades * F32(0.15), F32(0.72) + blades * F32(0.05),
                    ref=(0.22, 0.40, 0.09), bump=0.004)


def _moss(s: Strip, p: Params, cells: Cells | None) -> Layers:
    clump = s.noise("moss.clump", 8, 5, 0.55)
    fuzz = s.noise("moss.fuzz", s.freq(180), 2)
    layers = moss_layer(s, clump, fuzz)
    height = F32(0.5) + clump * F32(0.15) + fuzz * F32(0.06)
    return s.layers(layers, height, F32(0.9) + fuzz * F32(0.04), ref=(0.27, 0.38, 0.11),
                    bump=0.008)


def moss_layer(s: Strip, clump: np.ndarray, fuzz: np.ndarray,
               tint: Color | None = None) -> np.ndarray:
    t = np.clip(F32(0.5) + clump * F32(0.15) + fuzz * F32(0.2), 0, 1)
    albedo = ramp(t, [(0, (0.10, 0.17, 0.05)), (0.5, (0.27, 0.38, 0.11)), (1, (0.50, 0.56, 0.20))])
    return recolor(albedo, rgb(tint), 0.3, 0.8) if tint else albedo


def _ground(s: Strip, p: Params, cells: Cells | None) -> Layers:
    mud = p.variant == "mud"
    base = s.noise("ground.base", 5, 5, 0.55)
    grain = s.noise("ground.grain", s.freq(160), 2)
    pebbles = smoothstep(1.2, 1.7, s.noise("ground.pebbles", s.freq(40), 2))
    t = np.clip(F32(0.5) + base * F32(0.2) + grain * F32(0.1), 0, 1)
    stops = ([(0, (0.16, 0.12, 0.08)), (1, (0.32, 0.24, 0.16))] if mud
             else [(0, (0.26, 0.19, 0.13)), (0.6, (0.40, 0.30, 0.21)), (1, (0.50, 0.40, 0.29))])
    albedo = lerp3(ramp(t, stops), rgb((0.52, 0.48, 0.42)), pebbles)
    height = F32(0.5) + base * F32(0.12) + grain * F32(0.04) + pebbles * F32(0.15)
    rough = F32(0.92) + grain * F32(0.03) - pebbles * F32(0.1)
    if mud:
        puddle = smoothstep(-0.4, -1.0, base)
        rough = lerp(F32(0.55) + grain * F32(0.06), F32(0.05), puddle)
        height = np.maximum(height, F32(0.5) - F32(0.12 * 0.4))
    return s.layers(albedo, height, rough, ref=stops[len(stops) // 2][1], bump=0.01)


def _cobble(s: Strip, p: Params, cells: Cells | None) -> Layers:
    pebble = p.variant == "pebble"
    f1, f2, ident = s.cells("cobble", 32 if pebble else 8, 0.85)
    gap = s.noise("cobble.gap", 12, 2) * F32(0.03)
    stone = smoothstep(0.06, 0.22, f2 - f1 + gap)
    dome = F32(1) - np.minimum(f1 * f1 * F32(0.9), F32(1))
    pick = s.table("cobble.pick", s.cell_count(32 if pebble else 8) ** 2)[ident]
    grain = s.noise("cobble.grain", s.freq(140), 2)
    t = np.clip(pick + grain * F32(0.06), 0, 1)
    stones = ramp(t, [(0, (0.36, 0.34, 0.32)), (0.5, (0.52, 0.49, 0.45)), (1, (0.62, 0.58, 0.52))])
    dirt = rgb((0.28, 0.23, 0.18)) * (F32(1) + grain * F32(0.1))
    albedo = lerp3(dirt, stones, stone)
    height = stone * (F32(0.45) + dome * F32(0.4)) + grain * F32(0.03) + F32(0.1)
    rough = lerp(F32(0.95), F32(0.72) + grain * F32(0.05), stone)
    return s.layers(albedo, height, rough, ref=(0.48, 0.45, 0.42), bump=0.012,
                    cavity=F32(1) - stone, edge=stone * (F32(1) - dome))


def _ice(s: Strip, p: Params, cells: Cells | None) -> Layers:
    depth = s.noise("ice.depth", 4, 5, 0.55)
    crack = noise.ridged(s.noise("ice.crack", 5, 4, 0.6), 14.0)
    crack2 = noise.ridged(s.noise("ice.crack2", 11, 3, 0.6), 18.0) * F32(0.6)
    cracks = np.maximum(crack, crack2)
    bubbles = smoothstep(2.0, 2.6, s.noise("ice.bubbles", s.freq(120), 1))
    t = np.clip(F32(0.5) + depth * F32(0.25), 0, 1)
    albedo = ramp(t, [(0, (0.50, 0.68, 0.82)), (1, (0.80, 0.89, 0.95))])
    albedo = lerp3(albedo, rgb((0.94, 0.97, 1.0)), np.maximum(cracks * F32(0.8), bubbles))
    height = F32(0.5) + depth * F32(0.05) - cracks * F32(0.2)
    rough = F32(0.05) + cracks * F32(0.3) + bubbles * F32(0.1)
    return s.layers(albedo, height, rough, ref=(0.66, 0.80, 0.90), bump=0.004, cavity=cracks)


def _lava(s: Strip, p: Params, cells: Cells | None) -> Layers:
    f1, f2, _ = s.cells("lava", 8, 0.9)
    wobble = s.noise("lava.wobble", 10, 3)
    crust_n = s.noise("lava.crust", 16, 4)
    flow = np.clip((f2 - f1) * F32(3.2) + wobble * F32(0.2) - F32(0.15), 0, 1)
    molten = F32(1) - smoothstep(0.0, 0.35, flow)
    heat = np.clip(molten + wobble * F32(0.1), 0, 1)
    hot = ramp(heat, [(0, (0.55, 0.08, 0.02)), (0.6, (0.95, 0.35, 0.04)), (1, (1.0, 0.82, 0.30))])
    crust = rgb((0.09, 0.07, 0.07)) * (F32(1) + crust_n * F32(0.25))
    albedo = lerp3(crust, hot, molten)
    height = F32(0.3) + (F32(1) - molten) * F32(0.5) + crust_n * F32(0.05)
    rough = lerp(F32(0.88) + crust_n * F32(0.05), F32(0.35), molten)
    return s.layers(albedo, height, rough, ref=(0.09, 0.07, 0.07), bump=0.008, cavity=molten)


def _scales(s: Strip, p: Params, cells: Cells | None) -> Layers:
    cols = s.freq(14)
    rows, radius = 2 * cols, F32(0.64)
    x, y = s.u * F32(cols), s.v * F32(cols)
    r0 = np.floor(y * F32(2)).astype(np.int64)
    best_d = np.full(s.shape, np.inf, F32)
    best_dy = zeros(s)
    best_id = np.zeros(s.shape, np.int64)
    for r in (r0 + 1, r0, r0 - 1):  # the upper row overlaps, so it is applied last
        shift = F32(0.5) * (r % 2).astype(F32)
        cx = np.floor(x - shift + F32(0.5)) + shift
        dx, dy = x - cx, y - r.astype(F32) * F32(0.5)
        dist = np.sqrt(dx * dx + dy * dy)
        inside = dist < radius
        best_d = np.where(inside, dist, best_d)
        best_dy = np.where(inside, dy, best_dy)
        ident = (r % rows) * cols + (np.floor(cx).astype(np.int64) % cols)
        best_id = np.where(inside, ident, best_id)
    d = np.minimum(best_d / radius, F32(1))
    dome = np.sqrt(F32(1) - d * d)
    lift = np.clip(best_dy / radius, 0, 1)  # the free edge stands proud of the one below
    pick = s.table("scales.pick", rows * cols)[best_id]
    height = F32(0.2) + dome * F32(0.35) + lift * F32(0.35)
    base = rgb((0.35, 0.42, 0.22))
    shade = F32(0.75) + pick * F32(0.3) + dome * F32(0.15) - smoothstep(0.8, 1.0, d) * F32(0.35)
    albedo = base * shade
    rough = F32(0.42) + (F32(1) - dome) * F32(0.15)
    return s.layers(albedo, height, rough, ref=(0.35, 0.42, 0.22), bump=0.012,
                    cavity=smoothstep(0.8, 1.0, d), edge=lift)


NATURAL: dict[str, Callable[[Strip, Params, Cells | None], Layers]] = {
    "stone": _stone, "marble": _marble, "granite": _granite, "sand": _sand, "grass": _grass,
    "moss": _moss, "ground": _ground, "cobble": _cobble, "ice": _ice, "lava": _lava,
    "scales": _scales,
}
