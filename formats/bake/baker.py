"""Bake a provider's maps onto the artist's own UV map: a reprojection in numpy.

For every texel of the object's UV map that a triangle covers: the surface point it shows and
its tangent frame; the closest point of the provider's mesh to it (within a distance derived
from the object's size, the same side of a thin shell first); the provider's UV there; a
bilinear sample of each provider map. Values (base colour, roughness, metallic, packed
metallic-roughness) carry over as they are. A normal map is decoded in the provider mesh's
tangent frame, turned by the rotation between the two surfaces' normals (its detail stays
relative to the surface), and encoded in the object's tangent frame exactly as Blender's
Normal Map node reads it. Texels outside every island then take the nearest island's value.

Everything works in bounded chunks that call `check()` (cancel) and report progress, and the
bulk of the work is numpy, which releases the GIL: it runs on a job's worker thread while
Blender stays interactive.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import imagefile
from ..mesh import MeshArrays
from ..roles import NORMAL, VARIANT_SEP
from .closest import Hits, Surface
from .fill import nearest_covered
from .raster import rasterize
from .sample import (
    Bilinear,
    as_channels,
    carry_detail,
    decode_normal,
    encode_normal,
    to_tangent,
    to_world,
)
from .tangents import corner_tangents
from .target import BakeTarget

TEXELS_PER_CHUNK = 1 << 17
# How far the provider's surface may lie from the object's and still count as the same place,
# as a share of the object's bounding-box diagonal (Blender's baker calls this the cage or ray
# distance). A remeshed or decimated result stays well inside it.
MAX_DISTANCE = 0.05
# Below this share of texels matched, the provider's mesh is not the object's surface (moved,
# another object): the bake is refused rather than smeared.
MIN_MATCHED = 0.9
# Points near the corners of each of the object's triangles (barycentric) whose closest
# provider triangles are looked up first: when all land on one provider triangle, every texel
# of the triangle is projected onto that one (the common case: Meshy keeps the topology, and
# a remeshed result has triangles larger than the object's), else each texel searches.
PROBES = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], np.float32)
# A provider that moved or rescaled the mesh (centre or size off by more than this share of
# the diagonal) has it fitted back onto the object's bounding box.
REFIT = 0.1

Check = Callable[[], None]
Progress = Callable[[float, str], None]


class BakeError(Exception):
    """The maps cannot be baked onto the object; the message is one line."""


@dataclass
class BakeResult:
    maps: dict[str, str]  # role -> baked file
    matched: float  # share of covered texels that found the provider's surface
    refitted: bool = False  # the provider's mesh had moved and was fitted back
    notes: list[str] = field(default_factory=list)


def bake(target: BakeTarget, source: MeshArrays, maps: dict[str, str], size: int,
         out_dir: str | os.PathLike[str], stem: str, *, check: Check | None = None,
         progress: Progress | None = None, label: str = "Baking") -> BakeResult:
    """Bake `maps` (role -> PNG file, belonging to `source`'s UVs) onto `target`'s UV map at
    `size`², written as "<stem>_<role>_baked.png" in `out_dir`; BakeError if it cannot be.
    `progress(fraction, "<label>: what it does now")` is called as it goes."""
    check = check or (lambda: None)

    def report(fraction: float, doing: str) -> None:
        if progress is not None:
            progress(fraction, f"{label}: {doing}")

    if source.uvs is None:
        raise BakeError("the provider's mesh has no UVs")
    if size < 8 or size > 16384:
        raise BakeError(f"a bake of {size} px is not possible")
    images = {role: _read_map(role, path) for role, path in maps.items()}
    report(0.0, "reading the meshes")
    src, refitted = _source_in_object_space(target, source)
    normal_maps = any(_role(r) == NORMAL for r in maps)
    tgt_t, tgt_s = _target_frame(target) if normal_maps else (None, None)
    check()
    tri_t = target.corner_verts.reshape(-1, 3)
    coverage = rasterize(target.uvs.reshape(-1, 3, 2), size, check)
    if len(coverage.texel) == 0:
        raise BakeError(f"UV map '{target.uv_name}' covers no texel")
    report(0.05, "laying out the texels")
    s_tri = src.corner_verts.reshape(-1, 3)
    s_pos = src.positions
    assert src.normals is not None and src.uvs is not None
    s_facing = src.normals.reshape(-1, 3, 3).mean(axis=1)
    surface = Surface(s_pos[s_tri[:, 0]], s_pos[s_tri[:, 1]], s_pos[s_tri[:, 2]], s_facing)
    diag = _diagonal(target.positions)
    base_radius = max(0.125 * surface.edge, 1e-4 * diag)
    max_radius = max(MAX_DISTANCE * diag, base_radius)
    src_t = src_s = None
    if normal_maps:
        src_t, src_s = corner_tangents(s_pos[src.corner_verts], src.corner_verts, src.normals,
                                       src.uvs)
    report(0.1, "matching the surfaces")
    single, probed = _single_source(target, tri_t, surface, base_radius, max_radius, check)
    if probed < MIN_MATCHED / 2:  # far from matching: say so now, not after every texel
        raise _mismatch(probed)
    out = {role: np.zeros((size * size, img.shape[2]), img.dtype)
           for role, img in images.items()}
    matched: list[np.ndarray] = []
    total = len(coverage.texel)
    for lo in range(0, total, TEXELS_PER_CHUNK):
        check()
        hi = min(total, lo + TEXELS_PER_CHUNK)
        tri, b = coverage.triangle[lo:hi], coverage.bary[lo:hi]
        corners = tri[:, None] * 3 + np.arange(3)  # (K, 3) corner indices of the target

        def at(values: np.ndarray, corners: np.ndarray = corners, b: np.ndarray = b
               ) -> np.ndarray:
            """A per-corner value of the target, interpolated at each texel."""
            return np.einsum("kj,kj...->k...", b, values[corners])

        points = np.einsum("kj,kjc->kc", b, target.positions[tri_t[tri]])
        normal = at(target.normals)
        unit_n = _unit(normal)
        hits = _closest(surface, points, unit_n, single[tri], base_radius, max_radius, check)
        hit_any = hits.triangle >= 0
        found: np.ndarray | slice = slice(None) if hit_any.all() else hit_any  # no copies
        texel = coverage.texel[lo:hi][found].astype(np.int32)
        matched.append(texel)
        s_corners = hits.triangle[found][:, None] * 3 + np.arange(3)
        sb = hits.bary[found]
        uv = np.einsum("kj,kjc->kc", sb, src.uvs[s_corners])
        samplers: dict[tuple[int, ...], Bilinear] = {}
        for role, img in images.items():
            shape = img.shape[:2]
            if shape not in samplers:
                samplers[shape] = Bilinear(shape[0], shape[1], uv)
            values = samplers[shape](img)
            if _role(role) == NORMAL and img.shape[2] >= 3 and src_t is not None:
                assert src_s is not None and tgt_t is not None and tgt_s is not None
                full = float(np.iinfo(img.dtype).max)
                source_frame = (np.einsum("kj,kjc->kc", sb, src_t[s_corners]),
                                np.einsum("kj,kj->k", sb, src_s[s_corners]),
                                np.einsum("kj,kjc->kc", sb, src.normals[s_corners]))
                target_frame = (at(tgt_t)[found], at(tgt_s)[found], normal[found])
                values[:, :3] = encode_normal(
                    _carry_normals(decode_normal(values, full), source_frame, target_frame),
                    full)
            out[role][texel] = _store(values, img.dtype)
        report(0.15 + 0.7 * hi / total, "sampling the maps")
    del coverage, images, surface  # what the padding and the files need is in `out` now
    hit = np.concatenate(matched)
    share = len(hit) / total
    if share < MIN_MATCHED:
        raise _mismatch(share)
    report(0.85, "padding the islands")
    source_texel = nearest_covered(size, hit, check)
    report(0.92, "saving the maps")
    paths: dict[str, str] = {}
    folder = Path(out_dir)
    for role, values in out.items():
        check()
        filled = values[source_texel].reshape(size, size, -1)[::-1]  # PNG: top row first
        path = folder / f"{stem}_{role.replace(VARIANT_SEP, '_v')}_baked.png"
        imagefile.write_png(str(path), filled[:, :, 0] if filled.shape[2] == 1 else filled)
        paths[role] = str(path)
    report(1.0, "done")
    notes = ["the provider's mesh had moved; it was fitted back onto the object"] if refitted \
        else []
    return BakeResult(paths, share, refitted, notes)


# --------------------------------------------------------------------------- helpers


def _carry_normals(ts: np.ndarray, source: tuple[np.ndarray, ...],
                   target: tuple[np.ndarray, ...]) -> np.ndarray:
    """Tangent-space normals read in the provider's frame (tangent, sign, normal at each
    point) re-expressed in the object's, their detail kept relative to each surface."""
    world = to_world(ts, *source)
    world = carry_detail(world, _unit(source[2]), _unit(target[2]))
    return to_tangent(world, *target)


def _role(key: str) -> str:
    return key.partition(VARIANT_SEP)[0]


def _mismatch(share: float) -> BakeError:
    return BakeError(f"the provider's mesh does not match the object's surface ({share:.0%} "
                     f"of it found within {MAX_DISTANCE:.0%} of its size)")


def _single_source(target: BakeTarget, tri_t: np.ndarray, surface: Surface,
                   base_radius: float, max_radius: float, check: Check
                   ) -> tuple[np.ndarray, float]:
    """((T,) the one provider triangle all of `PROBES` of each object triangle land on, or -1;
    the share of probes that found the provider's surface at all)."""
    count = len(tri_t)
    corners = target.positions[tri_t]  # (T, 3, 3)
    normals = target.normals.reshape(-1, 3, 3)
    points = np.einsum("pj,tjc->tpc", PROBES, corners).reshape(-1, 3)
    unit_n = _unit(np.einsum("pj,tjc->tpc", PROBES, normals).reshape(-1, 3))
    hits = surface.closest(points, unit_n, base_radius, max_radius, check)
    found = hits.triangle.reshape(count, len(PROBES))
    same = (found == found[:, :1]).all(axis=1) & (found[:, 0] >= 0)
    return np.where(same, found[:, 0], -1).astype(np.int32), float((found >= 0).mean())


def _closest(surface: Surface, points: np.ndarray, normals: np.ndarray, single: np.ndarray,
             base_radius: float, max_radius: float, check: Check) -> Hits:
    """Closest provider points: projected onto a triangle's one provider triangle where it
    has one (and it is within reach), searched for otherwise."""
    hits = Hits(np.full(len(points), -1, np.int32), np.zeros((len(points), 3), np.float32),
                np.full(len(points), np.inf, np.float32))
    known = np.flatnonzero(single >= 0)
    if len(known):
        projected = surface.project(points[known], single[known])
        near = projected.distance <= max_radius
        at = known[near]
        hits.triangle[at] = projected.triangle[near]
        hits.bary[at] = projected.bary[near]
        hits.distance[at] = projected.distance[near]
    rest = np.flatnonzero(hits.triangle < 0)
    if len(rest):
        searched = surface.closest(points[rest], normals[rest], base_radius, max_radius, check)
        hits.triangle[rest] = searched.triangle
        hits.bary[rest] = searched.bary
        hits.distance[rest] = searched.distance
    return hits


def _read_map(role: str, path: str) -> np.ndarray:
    what = role.replace("_", " ")
    info = imagefile.image_info(path)
    if info is None or info[0] != "PNG":
        kind = info[0] if info else "not an image"
        raise BakeError(f"the provider's {what} map is {kind}; only PNG maps can be baked")
    try:
        return as_channels(imagefile.read_png(path))
    except (OSError, ValueError) as exc:
        raise BakeError(f"the provider's {what} map cannot be read ({exc})") from None


def _store(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    full = np.iinfo(dtype).max
    return np.clip(np.rint(values), 0, full).astype(dtype)


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(length > 1e-20, length, 1.0)).astype(np.float32)


def _diagonal(points: np.ndarray) -> float:
    if len(points) == 0:
        return 1.0
    d = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    return d if d > 0 else 1.0


def _target_frame(target: BakeTarget) -> tuple[np.ndarray, np.ndarray]:
    if target.tangents is not None and target.signs is not None:
        return target.tangents, target.signs
    return corner_tangents(target.positions[target.corner_verts], target.corner_verts,
                           target.normals, target.uvs)


def _source_in_object_space(target: BakeTarget, source: MeshArrays) -> tuple[MeshArrays, bool]:
    """The provider's mesh (world space, as it was sent) in the object's space, with normals
    (its own, else its faces'), refitted onto the object's box if the provider moved it."""
    matrix = np.asarray(target.matrix, np.float64)
    lin = matrix[:3, :3]
    det = float(np.linalg.det(lin))
    if abs(det) < 1e-18:
        raise BakeError("the object is scaled to nothing")
    inv = np.linalg.inv(matrix)
    pos = np.asarray(source.positions, np.float64) @ inv[:3, :3].T + inv[:3, 3]
    corners = np.asarray(source.corner_verts, np.int64)
    uvs = np.asarray(source.uvs, np.float32)
    normals = None if source.normals is None else np.asarray(source.normals, np.float64) @ lin
    if det < 0:  # the export turned the triangles round for the mirrored world; undo it
        order = np.arange(len(corners)).reshape(-1, 3)[:, [0, 2, 1]].ravel()
        corners, uvs = corners[order], uvs[order]
        normals = None if normals is None else normals[order]
    refitted = False
    t_lo, t_hi = target.positions.min(axis=0), target.positions.max(axis=0)
    s_lo, s_hi = pos.min(axis=0), pos.max(axis=0)
    t_diag, s_diag = np.linalg.norm(t_hi - t_lo), np.linalg.norm(s_hi - s_lo)
    off = np.linalg.norm((t_lo + t_hi) / 2 - (s_lo + s_hi) / 2)
    if t_diag > 0 and s_diag > 0 and (off > REFIT * t_diag
                                      or abs(s_diag / t_diag - 1.0) > REFIT):
        pos = (pos - (s_lo + s_hi) / 2) * (t_diag / s_diag) + (t_lo + t_hi) / 2
        refitted = True
    if normals is None:
        tri = pos[corners].reshape(-1, 3, 3)
        face = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals = np.repeat(face, 3, axis=0)
    return MeshArrays(pos.astype(np.float32), corners.astype(np.int32),
                      _unit(normals.astype(np.float32)), uvs, source.name), refitted
