"""Brick, tile and plank layouts: the cells of a band, and the joints drawn between them.

Any material can be laid out ("oak planks", "marble tiles"), so the layout is computed apart
from the recipe and applied on top of it.
"""

from __future__ import annotations

import numpy as np

from .fields import Cells, Layers, Strip, lerp, lerp3, rgb
from .noise import F32, smoothstep
from .vocabulary import Params


def layout_cells(s: Strip, p: Params) -> Cells | None:
    """Brick (running bond), tile (grid) or plank (random joints) cells for this band."""
    if not p.layout:
        return None
    if p.layout == "brick":
        rows, cols, gap, bevel, jiggle = 2 * s.freq(5), s.freq(4), 0.0055, 0.003, 0.0012
    elif p.layout == "tile":
        rows = cols = s.freq(6)
        gap, bevel, jiggle = 0.0022, 0.0025, 0.0
    else:
        rows, cols, gap, bevel, jiggle = s.freq(7), s.freq(2), 0.0007, 0.0012, 0.0
    u, v = s.u, s.v
    if jiggle:
        u = u + s.noise("layout.jx", 24, 2) * F32(jiggle)
        v = v + s.noise("layout.jy", 24, 2) * F32(jiggle)
    sv = v * F32(rows)
    r = np.floor(sv)
    fv = sv - r
    row = r.astype(np.int32)
    row %= rows
    if p.layout == "brick":
        shift = (row & 1).astype(F32) * F32(0.5)
    elif p.layout == "plank":
        shift = np.take(s.table("layout.shift", rows), row)
    else:
        shift = F32(0.0)
    su = u * F32(cols) + shift
    c = np.floor(su)
    fu = su - c
    col = c.astype(np.int32)
    col %= cols
    cell = row * cols + col
    np.minimum(fu, F32(1) - fu, out=fu)
    fu *= F32(1.0 / cols)
    np.minimum(fv, F32(1) - fv, out=fv)
    fv *= F32(1.0 / rows)
    parity = (row + col) & 1
    pixel = 1.0 / s.res  # joints at least a pixel wide, or they alias into broken lines
    return Cells(rand=np.take(s.table("layout.rand", rows * cols), cell),
                 rand2=np.take(s.table("layout.rand2", rows * cols), cell),
                 parity=np.broadcast_to(parity, s.shape),
                 dist=np.broadcast_to(np.minimum(fu, fv), s.shape),
                 gap=max(gap, 0.6 * pixel), bevel=max(bevel, 1.5 * pixel))


def apply_layout(s: Strip, p: Params, cells: Cells, layers: Layers) -> None:
    """Per-cell variation on the surface, joints (mortar, grout, seams) between cells."""
    joint = F32(1) - smoothstep(cells.gap, cells.gap + cells.bevel * 0.35, cells.dist)
    face = smoothstep(cells.gap, cells.gap + cells.bevel, cells.dist)
    vary = {"brick": 0.22, "tile": 0.05, "plank": 0.12}[p.layout]
    shade = F32(1) + (cells.rand - F32(0.5)) * F32(vary)
    if p.layout == "brick":
        burnt = smoothstep(0.82, 0.95, cells.rand2)
        shade -= burnt * F32(0.3)
    layers.albedo *= shade
    grit = s.noise("layout.grit", s.freq(140), 2)
    default = {"brick": (0.62, 0.60, 0.56), "tile": (0.58, 0.57, 0.55), "plank": (0.10, 0.07, 0.05)}
    joint_col = rgb(p.attached.get("joint", default[p.layout])) * (F32(1) + grit * F32(0.06))
    layers.albedo = lerp3(layers.albedo, joint_col, joint)
    layers.height = lerp(layers.height * F32(0.3) + face * F32(0.6) + F32(0.1),
                         F32(0.05) + grit * F32(0.03), joint)
    layers.rough = lerp(layers.rough + (cells.rand2 - F32(0.5)) * F32(0.06), F32(0.92), joint)
    layers.metal *= F32(1) - joint
    layers.cavity = np.maximum(layers.cavity, joint)
    layers.edge = np.maximum(layers.edge * F32(0.5), (F32(1) - face) * (F32(1) - joint))
    layers.bump = max(layers.bump, {"brick": 0.007, "tile": 0.003, "plank": 0.002}[p.layout])
