"""Fill the texels outside every UV island from the nearest island, so no mip level and no
filtered sample near a seam ever reads an empty texel.

The covered texels grow outwards one ring at a time (8 neighbours), each new texel taking
the covered texel closest to it among its neighbours' sources: an approximately Euclidean
nearest-island map built in passes proportional to the widest gap, each pass touching only
the newly reached ring.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_STEPS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def nearest_covered(size: int, covered: np.ndarray,
                    check: Callable[[], None] | None = None) -> np.ndarray:
    """(size², ) int64: for each texel, the covered texel whose value it takes (itself
    when covered). `covered` holds texel indices (row * size + column); none: all -1."""
    source = np.full(size * size, -1, dtype=np.int64)
    if len(covered) == 0:
        return source
    source[covered] = covered
    reached = source >= 0
    front = _border(reached.reshape(size, size))
    passes = 0
    while len(front):
        passes += 1
        if check is not None and passes % 16 == 0:
            check()
        fy, fx = np.divmod(front, size)
        targets: list[np.ndarray] = []
        seeds: list[np.ndarray] = []
        for dy, dx in _STEPS:
            ny, nx = fy + dy, fx + dx
            ok = (ny >= 0) & (ny < size) & (nx >= 0) & (nx < size)
            nb = ny[ok] * size + nx[ok]
            new = ~reached[nb]
            targets.append(nb[new])
            seeds.append(source[front[ok][new]])
        target = np.concatenate(targets)
        if len(target) == 0:
            break
        seed = np.concatenate(seeds)
        ty, tx = np.divmod(target, size)
        sy, sx = np.divmod(seed, size)
        dist = (ty - sy) ** 2 + (tx - sx) ** 2
        order = np.argsort((target << 27) | dist)  # by texel, the closest source first
        target, seed = target[order], seed[order]
        first = np.ones(len(target), dtype=bool)
        first[1:] = target[1:] != target[:-1]
        front = target[first]
        source[front] = seed[first]
        reached[front] = True
    return source


def _border(mask: np.ndarray) -> np.ndarray:
    """Indices of set texels with an unset 8-neighbour: the only ones that can grow."""
    padded = np.pad(mask, 1, constant_values=True)
    inner = np.ones_like(mask)
    h, w = mask.shape
    for dy, dx in _STEPS:
        inner &= padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    return np.flatnonzero(mask & ~inner)
