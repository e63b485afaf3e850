"""How large what a server sends may be once it is here: map sides, glTF descriptions, meshes.

A header or a count is checked against these before anything is decoded or allocated, so a file
that declares 16000² pixels or two million instanced triangles costs a few bytes to refuse, not
gigabytes to find out. The limits follow the job (`Limits.for_job`: the resolution asked for,
the triangles sent); a worker runs its job inside `use(...)`, and the readers and the download
check consult `current()`, so every provider is covered without passing limits around.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

MB = 1 << 20

# Maps: a service may answer up to twice the side asked (Meshy rounds 1024 up to its 2k tier),
# never more than 8192 (the largest tier any provider offers).
MAX_MAP_SIDE = 8192
MAP_MARGIN = 2
MIN_MAP_SIDE = 4096  # small jobs still accept a 4k answer

# glTF: the JSON description of a textured model is kilobytes; 16 MB is far beyond any mesh.
MAX_GLTF_JSON = 16 * MB
# Result meshes: services remesh to their own density, so a small object may come back denser,
# but not this much: a floor for small objects, a growth factor for large ones, a ceiling.
MAX_RESULT_TRIANGLES = 4_000_000
MIN_RESULT_TRIANGLES = 200_000
RESULT_GROWTH = 4
# Vertex data a mesh's accessors may declare in all (each one counted once), and the zeros an
# accessor without data may ask for (glTF fills it with zeros: useless in a mesh, a cheap bomb).
MAX_ACCESSOR_BYTES = 512 * MB
MAX_UNBACKED = 1 << 16


@dataclass(frozen=True)
class Limits:
    map_side: int = MAX_MAP_SIDE
    triangles: int = MAX_RESULT_TRIANGLES
    sent_triangles: int = 0  # what was sent (0: unknown), for the wording

    @classmethod
    def for_job(cls, resolution: int, sent_triangles: int = 0) -> Limits:
        side = max(MIN_MAP_SIDE, min(MAX_MAP_SIDE, MAP_MARGIN * int(resolution or 0)))
        tris = MAX_RESULT_TRIANGLES
        if sent_triangles > 0:
            tris = min(MAX_RESULT_TRIANGLES,
                       max(MIN_RESULT_TRIANGLES, RESULT_GROWTH * sent_triangles))
        return cls(side, tris, max(0, sent_triangles))

    def map_problem(self, width: int, height: int) -> str:
        """"" if a map of this size may be loaded, else the end of a sentence saying why not."""
        if 0 < width <= self.map_side and 0 < height <= self.map_side:
            return ""
        return (f"is {width}×{height} pixels, larger than the {self.map_side}×{self.map_side} "
                f"this job accepts; it was not loaded")

    def triangle_problem(self, triangles: int) -> str:
        if triangles <= self.triangles:
            return ""
        sent = (f", far more than the {self.sent_triangles:,} sent"
                if self.sent_triangles else "")
        return (f"has {triangles:,} triangles{sent} (at most {self.triangles:,} are accepted); "
                f"it was not loaded")


_current: contextvars.ContextVar[Limits] = contextvars.ContextVar("t2t_limits",
                                                                   default=Limits())  # noqa: B039  (frozen)


def current() -> Limits:
    return _current.get()


@contextlib.contextmanager
def use(limits: Limits) -> Iterator[Limits]:
    """Readers and downloads on this thread check against `limits` inside the block."""
    reset = _current.set(limits)
    try:
        yield limits
    finally:
        _current.reset(reset)
