"""The closest point of a triangle mesh to many query points, in numpy.

Triangles go into a sparse uniform grid: each is listed in every cell within `radius` of it
(its box grown by the radius, pruned by the distance of the cell to the triangle's plane), so a
query looks at the triangles of its own cell only and is exact for every triangle within the
radius. Queries that find nothing that close try a coarser grid with a four times larger
radius, up to the largest distance asked for. All work is in bounded chunks of
(query, triangle) pairs, so memory stays flat and a caller can cancel between chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PAIRS_PER_CHUNK = 1 << 19
MAX_ENTRIES = 24_000_000  # (triangle, cell) entries of one grid; the cell grows past this
_KEY_BITS = 21  # cell coordinates per axis, packed into one int64 key


@dataclass
class Hits:
    triangle: np.ndarray  # (Q,) int32, -1 where nothing was found within the largest radius
    bary: np.ndarray  # (Q, 3) float32 weights of the triangle's corners at the closest point
    distance: np.ndarray  # (Q,) float32 (inf where nothing was found)


class _Grid:
    def __init__(self, a: np.ndarray, ab: np.ndarray, ac: np.ndarray, face_n: np.ndarray,
                 cell: float, radius: float, check: Callable[[], None] | None = None) -> None:
        lo_all = np.minimum(a, np.minimum(a + ab, a + ac)) - radius
        hi_all = np.maximum(a, np.maximum(a + ab, a + ac)) + radius
        origin = lo_all.min(axis=0) if len(a) else np.zeros(3, np.float32)
        while True:
            lo = np.floor((lo_all - origin) / cell).astype(np.int64)
            hi = np.floor((hi_all - origin) / cell).astype(np.int64)
            span = hi - lo + 1
            count = span.prod(axis=1)
            if int(count.sum()) <= MAX_ENTRIES and int(hi.max()) < (1 << _KEY_BITS):
                break
            cell *= 1.5  # too fine for this many (or this large) triangles
        self.cell, self.radius, self.origin = cell, radius, origin
        reach = radius + cell * 0.8661  # a cell matters if its centre is this close
        a_t, ab_t, ac_t = (np.ascontiguousarray(x.T) for x in (a, ab, ac))
        keys_parts: list[np.ndarray] = []
        tris_parts: list[np.ndarray] = []
        ends = np.cumsum(count)
        first = 0
        while first < len(a):  # in bounded slices: a big mesh has millions of entries
            if check is not None:
                check()
            done = ends[first - 1] if first else 0
            last = max(first + 1, int(np.searchsorted(ends, done + (1 << 19), side="right")))
            n = count[first:last]
            tri = np.repeat(np.arange(first, last, dtype=np.int64), n)
            local = np.arange(len(tri), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
            sx = span[tri, 0]
            ijk = lo[tri] + np.stack([local % sx, (local // sx) % span[tri, 1],
                                      local // (sx * span[tri, 1])], 1)
            centre = (origin + (ijk + 0.5) * cell).astype(np.float32)
            # A slanted triangle's box holds many cells far from the triangle itself.
            near = np.abs(np.einsum("ij,ij->i", centre - a[tri], face_n[tri])) <= reach
            tri, ijk, centre = tri[near], ijk[near], centre[near]
            d2, _v, _w = _closest_on_triangles(np.ascontiguousarray(centre.T), a_t[:, tri],
                                               ab_t[:, tri], ac_t[:, tri])
            near = d2 <= reach * reach
            keys_parts.append(_keys(ijk[near]))
            tris_parts.append(tri[near].astype(np.int32))
            first = last
        keys = np.concatenate(keys_parts) if keys_parts else np.zeros(0, np.int64)
        tris = np.concatenate(tris_parts) if tris_parts else np.zeros(0, np.int32)
        order = np.argsort(keys, kind="stable")
        keys, self.tris = keys[order], tris[order]
        self.keys, starts = np.unique(keys, return_index=True)
        self.starts = starts.astype(np.int64)
        self.counts = np.diff(np.append(self.starts, len(keys)))

    def candidates(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first entry, count) of each point's cell in `tris`."""
        if len(self.keys) == 0:
            zero = np.zeros(len(points), np.int64)
            return zero, zero
        ijk = np.floor((points - self.origin) / self.cell).astype(np.int64)
        inside = ((ijk >= 0) & (ijk < (1 << _KEY_BITS))).all(axis=1)
        keys = _keys(np.where(inside[:, None], ijk, 0))
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = inside & (self.keys[at] == keys)
        return self.starts[at], np.where(found, self.counts[at], 0)


def _keys(ijk: np.ndarray) -> np.ndarray:
    return (ijk[:, 0] << (2 * _KEY_BITS)) | (ijk[:, 1] << _KEY_BITS) | ijk[:, 2]


class Surface:
    """A triangle mesh to find closest points on: corners a, b, c ((S, 3) each)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                 facing: np.ndarray | None = None) -> None:
        self.a: np.ndarray = np.ascontiguousarray(a, dtype=np.float32)
        self.ab: np.ndarray = np.ascontiguousarray(b - a, dtype=np.float32)
        self.ac: np.ndarray = np.ascontiguousarray(c - a, dtype=np.float32)
        n: np.ndarray = np.cross(self.ab.astype(np.float64), self.ac.astype(np.float64))
        length = np.linalg.norm(n, axis=1, keepdims=True)
        self.face_n: np.ndarray = (n / np.where(length > 0, length, 1.0)).astype(np.float32)
        # Which way each triangle faces, for telling the two sides of a thin shell apart.
        self.facing: np.ndarray = (self.face_n if facing is None
                                   else np.asarray(facing, np.float32))
        edges = np.concatenate([np.linalg.norm(self.ab, axis=1), np.linalg.norm(self.ac, axis=1)])
        self.edge: float = float(np.median(edges)) if len(edges) else 1.0
        # Component-major copies for the pair arithmetic (contiguous rows: faster products).
        self._a_t: np.ndarray = np.ascontiguousarray(self.a.T)
        self._ab_t: np.ndarray = np.ascontiguousarray(self.ab.T)
        self._ac_t: np.ndarray = np.ascontiguousarray(self.ac.T)
        self._facing_t: np.ndarray = np.ascontiguousarray(self.facing.T)
        self._grids: dict[int, _Grid] = {}

    def grid(self, level: int, base_radius: float,
             check: Callable[[], None] | None = None) -> _Grid:
        if level not in self._grids:
            radius = base_radius * 4.0**level
            cell = max(self.edge / 2, 2 * radius)
            self._grids[level] = _Grid(self.a, self.ab, self.ac, self.face_n, cell, radius,
                                       check)
        return self._grids[level]

    def closest(self, points: np.ndarray, normals: np.ndarray, base_radius: float,
                max_radius: float, check: Callable[[], None] | None = None) -> Hits:
        """For each point, the closest point on the surface within `max_radius`; among
        triangles about as close, one facing the same way as the point's normal wins."""
        q = len(points)
        hits = Hits(np.full(q, -1, np.int32), np.zeros((q, 3), np.float32),
                    np.full(q, np.inf, np.float32))
        todo = np.arange(q)
        level = 0
        while len(todo):
            grid = self.grid(level, base_radius, check)
            self._search(grid, points, normals, todo, hits, check)
            todo = todo[hits.triangle[todo] < 0]
            if grid.radius >= max_radius:
                break
            level += 1
        return hits

    def project(self, points: np.ndarray, triangle: np.ndarray) -> Hits:
        """The closest point of one given triangle to each point (no search)."""
        p = np.ascontiguousarray(points.T)
        dist2, v, w = _closest_on_triangles(p, self._a_t[:, triangle], self._ab_t[:, triangle],
                                            self._ac_t[:, triangle])
        return Hits(np.asarray(triangle, np.int32), np.stack([1.0 - v - w, v, w], 1),
                    np.sqrt(dist2))

    def _search(self, grid: _Grid, points: np.ndarray, normals: np.ndarray, todo: np.ndarray,
                hits: Hits, check: Callable[[], None] | None) -> None:
        start, count = grid.candidates(points[todo])
        has = count > 0
        todo, start, count = todo[has], start[has], count[has]
        ends = np.cumsum(count)
        lo = 0
        while lo < len(todo):
            hi = int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + PAIRS_PER_CHUNK,
                                     side="right"))
            hi = max(hi, lo + 1)
            if check is not None:
                check()
            self._pairs(grid, points, normals, todo[lo:hi], start[lo:hi], count[lo:hi], hits)
            lo = hi

    def _pairs(self, grid: _Grid, points: np.ndarray, normals: np.ndarray, query: np.ndarray,
               start: np.ndarray, count: np.ndarray, hits: Hits) -> None:
        seg = np.cumsum(count) - count
        pair_q = np.repeat(np.arange(len(query)), count)
        entry = np.repeat(start - seg, count) + np.arange(len(pair_q))
        tri = grid.tris[entry]
        p = np.ascontiguousarray(points[query].T)[:, pair_q]
        dist2, v, w = _closest_on_triangles(p, self._a_t[:, tri], self._ab_t[:, tri],
                                            self._ac_t[:, tri])
        # The other side of a thin shell is only taken when nothing facing our way is close.
        n = np.ascontiguousarray(normals[query].T)[:, pair_q]
        f = self._facing_t[:, tri]
        opposite = (f[0] * n[0] + f[1] * n[1] + f[2] * n[2]) < 0
        r2 = np.float32(grid.radius * grid.radius)
        score = dist2 + opposite * (r2 * np.float32(3.0))
        best = np.minimum.reduceat(score, seg)
        winner = np.flatnonzero(score == np.repeat(best, count))
        first = np.ones(len(winner), dtype=bool)
        first[1:] = pair_q[winner[1:]] != pair_q[winner[:-1]]
        winner = winner[first]
        ok = dist2[winner] <= r2
        winner, found = winner[ok], query[pair_q[winner[ok]]]
        hits.triangle[found] = tri[winner]
        hits.bary[found] = np.stack([1.0 - v[winner] - w[winner], v[winner], w[winner]], 1)
        hits.distance[found] = np.sqrt(dist2[winner])


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, ab: np.ndarray, ac: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared distance and barycentric (v, w) of b and c of the closest point on each
    triangle (a, a + ab, a + ac) to each p, by the regions of Ericson's method, branch-free.
    Vectors are component-major: (3, N)."""

    def dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = x[0] * y[0]
        out += x[1] * y[1]
        out += x[2] * y[2]
        return out

    ap = p - a
    d1, d2 = dot(ab, ap), dot(ac, ap)
    bp = ap - ab
    d3, d4 = dot(ab, bp), dot(ac, bp)
    cp = ap - ac
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    tiny = np.float32(1e-30)

    def ratio(n: np.ndarray, d: np.ndarray) -> np.ndarray:
        return n / np.where(np.abs(d) > tiny, d, tiny)

    denom = va + vb + vc
    v = ratio(vb, denom)  # inside the face
    w = ratio(vc, denom)
    zero, one = np.float32(0.0), np.float32(1.0)
    bc_n, cb_n = d4 - d3, d5 - d6
    # Regions from the lowest priority up, so the first matching one of Ericson's order wins.
    on_bc = (va <= 0) & (bc_n >= 0) & (cb_n >= 0)
    e_bc = ratio(bc_n, bc_n + cb_n)
    v = np.where(on_bc, one - e_bc, v)
    w = np.where(on_bc, e_bc, w)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    v = np.where(on_ac, zero, v)
    w = np.where(on_ac, ratio(d2, d2 - d6), w)
    in_c = (d6 >= 0) & (d5 <= d6)
    v = np.where(in_c, zero, v)
    w = np.where(in_c, one, w)
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    v = np.where(on_ab, ratio(d1, d1 - d3), v)
    w = np.where(on_ab, zero, w)
    in_b = (d3 >= 0) & (d4 <= d3)
    v = np.where(in_b, one, v)
    w = np.where(in_b, zero, w)
    in_a = (d1 <= 0) & (d2 <= 0)
    v = np.where(in_a, zero, v).astype(np.float32)
    w = np.where(in_a, zero, w).astype(np.float32)
    off = ap - v * ab - w * ac
    return dot(off, off), v, w
