"""Modifiers (colour words, paint, rust, patina, cracks, scratches, moss, dirt, wear, surface
finish) and `build_band`, which makes one band's whole material.

Modifiers run in a fixed order after the recipe, its colours and its layout (paint, rust,
patina, cracks, scratches, moss, dirt, wear), each reading the cavity and edge masks the earlier
steps left; the finish words (wet, polished, matte, rough, smooth) go last, so they win.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import noise
from .fields import Cells, Layers, Strip, coverage, lerp, lerp3, ramp, recolor, rgb, zeros
from .layouts import apply_layout, layout_cells
from .natural import moss_layer
from .noise import F32, smoothstep
from .recipes import RECIPES
from .vocabulary import Params


def _hammered(s: Strip, layers: Layers, amount: float) -> None:
    f1, _f2, ident = s.cells("hammer", 16, 0.8)
    dent = F32(1) - np.minimum(f1 * f1 * F32(1.6), F32(1))
    layers.height -= dent * F32(0.25 * min(amount, 1.5))
    layers.rough += (s.table("hammer.r", s.cell_count(16) ** 2)[ident] - F32(0.5)) * F32(0.08)
    layers.bump = max(layers.bump, 0.02)


def _apply_colors(s: Strip, p: Params, cells: Cells | None, layers: Layers) -> None:
    """Colour words recolour the surface; two colours alternate over tiles or cells."""
    if "light" in p.mods or "dark" in p.mods:
        _brightness(layers, p)
    if layers.tinted or not p.colors or "painted" in p.mods:
        return
    strength = {"clay": 0.45, "wood": 0.65, "metal": 0.9}.get(p.material, 0.88)
    if len(p.colors) > 1 and cells is not None:
        table = np.asarray(p.colors, F32)
        if p.layout == "tile":
            pick = cells.parity % len(table)
        else:
            pick = np.minimum((cells.rand2 * len(table)).astype(np.int64), len(table) - 1)
        layers.albedo = recolor(layers.albedo, table.T[:, pick], layers.ref, strength)
    else:
        layers.albedo = recolor(layers.albedo, rgb(p.colors[0]), layers.ref, strength)


def _brightness(layers: Layers, p: Params) -> None:
    if "dark" in p.mods:
        layers.albedo *= F32(0.55 ** p.mods["dark"])
    if "light" in p.mods:
        keep = F32(0.55 ** p.mods["light"])
        layers.albedo = F32(1) - (F32(1) - layers.albedo) * keep


def _paint(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    color = p.attached.get("paint") or (p.colors[0] if p.colors else (0.22, 0.36, 0.50))
    wear = p.amount("worn") + 0.5 * p.amount("scratched")
    chips_field = s.noise("paint.chips", 10, 3, 0.5) * F32(0.6)
    chips_field += s.noise("paint.flakes", 40, 3, 0.6) * F32(0.6) + layers.edge * F32(0.8)
    chips = coverage(chips_field, 0.02 + 0.1 * wear, 0.08) if wear else zeros(s)
    cover = F32(1) - chips
    tone = s.noise("paint.tone", 6, 3)
    paint = rgb(color) * (F32(1) + tone * F32(0.03))
    layers.albedo = lerp3(layers.albedo, paint, cover)
    layers.rough = lerp(layers.rough, F32(0.42) + tone * F32(0.04), cover)
    layers.metal *= chips
    layers.height += cover * F32(0.3)  # chipped edges show as a step in the normal map
    layers.edge = np.maximum(layers.edge, chips)
    layers.bump = max(layers.bump, 0.004)


def _rust(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    field_ = (s.noise("rust.blotch", 5, 5, 0.6) + layers.cavity * F32(1.0)
              + layers.edge * F32(0.5) + s.noise("rust.streak", (3, 40), 2) * F32(0.3))
    mask = coverage(field_, 0.35 * amount, 0.35)
    tone = s.noise("rust.tone", 20, 3)
    flake = s.noise("rust.flake", s.freq(72), 2)
    t = np.clip(F32(0.5) + tone * F32(0.3) + flake * F32(0.1), 0, 1)
    color = ramp(t, [(0, (0.22, 0.10, 0.05)), (0.45, (0.45, 0.20, 0.08)), (1, (0.68, 0.36, 0.14))])
    if "rust" in p.attached:
        color = recolor(color, rgb(p.attached["rust"]), 0.3, 0.8)
    layers.albedo = lerp3(layers.albedo, color, mask)
    layers.rough = lerp(layers.rough, F32(0.86) + flake * F32(0.05), mask)
    layers.metal *= F32(1) - mask
    layers.height += mask * (F32(0.06) + flake * F32(0.04))
    layers.cavity = np.maximum(layers.cavity, mask * F32(0.5))
    layers.bump = max(layers.bump, 0.006)


def _patina(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    drips = np.maximum(s.noise("patina.drip", (3, 30), 3), 0) * F32(0.35)
    field_ = (s.noise("patina.blotch", 5, 5, 0.6) + layers.cavity * F32(1.2) + drips
              - layers.edge * F32(0.4))
    mask = coverage(field_, 0.4 * amount, 0.3)
    tone = s.noise("patina.tone", 24, 3)
    t = np.clip(F32(0.5) + tone * F32(0.3), 0, 1)
    color = ramp(t, [(0, (0.22, 0.46, 0.38)), (0.5, (0.36, 0.62, 0.52)), (1, (0.58, 0.78, 0.70))])
    if "patina" in p.attached:
        color = recolor(color, rgb(p.attached["patina"]), 0.55, 0.35)
    layers.albedo = lerp3(layers.albedo, color, mask)
    layers.rough = lerp(layers.rough, F32(0.8) + tone * F32(0.05), mask)
    layers.metal *= F32(1) - mask
    layers.height += mask * (F32(0.04) + tone * F32(0.015))
    layers.bump = max(layers.bump, 0.004)


def _mossy(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    clump = s.noise("mossy.clump", 6, 5, 0.55)
    fuzz = s.noise("moss.fuzz", s.freq(180), 2)
    mask = coverage(clump + layers.cavity * F32(1.3) + fuzz * F32(0.15), 0.35 * amount, 0.3)
    layers.albedo = lerp3(layers.albedo, moss_layer(s, clump, fuzz, p.attached.get("moss")), mask)
    layers.rough = lerp(layers.rough, F32(0.92), mask)
    layers.metal *= F32(1) - mask
    layers.height += mask * (F32(0.08) + fuzz * F32(0.04))


def _dirt(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    blotch = s.noise("dirt.blotch", 4, 5, 0.6)
    grime = np.clip(layers.cavity * F32(0.9) + np.maximum(blotch, 0) * F32(0.35), 0, 1)
    grime *= F32(min(amount, 2.0) * 0.6)
    layers.albedo = lerp3(layers.albedo, rgb((0.20, 0.17, 0.13)), grime)
    layers.rough = lerp(layers.rough, F32(0.92), grime)
    layers.metal *= F32(1) - grime * F32(0.7)


def _worn(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    blotch = s.noise("worn.blotch", 7, 5, 0.6)
    layers.albedo *= (F32(1) + blotch * F32(0.07 * amount))
    rubbed = coverage(s.noise("worn.rub", 12, 4) + layers.edge * F32(1.5), 0.15 * amount, 0.3)
    # rubbed edges go smooth on metal, pale and rough on everything else
    layers.rough = lerp(layers.rough + np.abs(blotch) * F32(0.1 * amount),
                        np.where(layers.metal > 0.5, F32(0.2), F32(0.9)), rubbed * F32(0.7))
    layers.albedo = lerp3(layers.albedo, layers.albedo * F32(1.15) + F32(0.03), rubbed * F32(0.5))
    _dirt(s, p, layers, 0.5 * amount)


def _cracked(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    f1, f2, _ = s.cells("crack", 8, 0.9)
    width = F32(0.05) * (F32(0.6) + F32(0.4) * np.clip(s.noise("crack.width", 14, 2), -1, 1))
    crack = F32(1) - smoothstep(0.0, 1.0, (f2 - f1) / width)
    crack *= smoothstep(-0.6, 0.2, s.noise("crack.fade", 4, 3)) * F32(min(amount, 1.5))
    color = rgb(p.attached["crack"]) if "crack" in p.attached else layers.albedo * F32(0.35)
    layers.albedo = lerp3(layers.albedo, color, crack)
    layers.height -= crack * F32(0.35)
    layers.rough = np.maximum(layers.rough, crack * F32(0.95))
    layers.cavity = np.maximum(layers.cavity, crack)
    layers.bump = max(layers.bump, 0.004)


def _scratched(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    scratches = zeros(s)
    for k, (a, b) in enumerate(((1, 3), (3, -1), (1, -2), (2, 1))):
        line = noise.ridged(s.lines(f"scratch.{k}", s.freq(400), a, b), 40.0)
        segment = smoothstep(0.6, 1.4, s.noise(f"scratch.seg{k}", 10, 2))
        np.maximum(scratches, line * segment, out=scratches)
    scratches *= F32(min(amount, 1.5))
    metal = layers.metal > 0.5
    scuffed = np.where(metal, layers.rough + F32(0.25), F32(0.9))
    layers.rough = lerp(layers.rough, scuffed, scratches)
    layers.albedo = lerp3(layers.albedo, layers.albedo * F32(1.2) + F32(0.05), scratches * F32(0.6))
    layers.height -= scratches * F32(0.05)


def _surface_finish(p: Params, layers: Layers) -> None:
    """Finish words adjust roughness and relief last, so they win over everything above."""
    if "wet" in p.mods:
        dry = layers.metal
        keep = F32(0.65) + F32(0.35) * dry
        layers.albedo *= keep
        layers.rough = lerp(layers.rough * F32(0.35), layers.rough, dry)
    if "polished" in p.mods:
        layers.rough *= F32(0.38 ** p.mods["polished"])
        layers.bump *= 0.7
    if "matte" in p.mods:
        layers.rough = np.maximum(layers.rough, F32(0.6)) + F32(0.1)
    if "rough" in p.mods:
        layers.rough += (F32(1) - layers.rough) * F32(0.5)
        layers.bump *= 1.5
    if "smooth" in p.mods:
        layers.rough *= F32(0.8)
        layers.bump *= 0.5


_MODIFIER_ORDER: list[tuple[str, Callable[[Strip, Params, Layers, float], None]]] = [
    ("painted", _paint), ("rusty", _rust), ("patina", _patina), ("cracked", _cracked),
    ("scratched", _scratched), ("mossy", _mossy), ("dirty", _dirt), ("worn", _worn),
]


def build_band(s: Strip, p: Params) -> Layers:
    """The whole material for one band of rows: recipe, layout, colours, then modifiers."""
    cells = layout_cells(s, p)
    layers = RECIPES.get(p.material, RECIPES["plaster"])(s, p, cells)
    if "hammered" in p.mods:
        _hammered(s, layers, p.mods["hammered"])
    _apply_colors(s, p, cells, layers)
    if cells is not None:
        apply_layout(s, p, cells, layers)
    for mod, apply in _MODIFIER_ORDER:
        if mod in p.mods:
            apply(s, p, layers, p.mods[mod])
    _surface_finish(p, layers)
    return layers
