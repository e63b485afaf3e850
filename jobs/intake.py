"""What a job accepts back from a service, checked on its worker before anything else sees
it: the limits its readers and downloads enforce, the maps' sizes from their headers, and the
facts (`RemoteStatus.extra`) it keeps and journals."""

from __future__ import annotations

import math
from typing import Any

from ..formats import imagefile, limits, meshfile
from ..formats.roles import RESULT_MESH, UV_MESH
from ..net.redact import clean_text
from ..providers.base import ProviderError
from .job import Job

# Facts: strings cleaned and capped, lists and dicts bounded, so a hostile answer cannot grow
# every journal write.
MAX_FACT_TEXT = 1000
MAX_FACT_ITEMS = 64


def limits_of(job: Job, mesh: meshfile.MeshArrays | None) -> limits.Limits:
    """What this job accepts back: maps near its resolution, a mesh near the size it sent."""
    sent = job.extra.get("sent_triangles")
    if mesh is not None:
        sent = len(mesh.corner_verts) // 3
    return limits.Limits.for_job(job.request.resolution, sent if isinstance(sent, int) else 0)


def check_map_sizes(maps: dict[str, str], label: str) -> None:
    """Every image a provider wrote, checked from its header against the job's limits before
    anything (a worker's re-encode, Blender's first draw) decodes it."""
    for role, path in maps.items():
        if role in (RESULT_MESH, UV_MESH):
            continue
        info = imagefile.image_info(path)
        problem = limits.current().map_problem(info[1], info[2]) if info else ""
        if problem:
            what = role.split("@")[0].replace("_", " ")
            raise ProviderError(f"{label}'s {what} map {problem}")


def facts(extra: dict[str, Any]) -> dict[str, Any]:
    """A service's facts as a job keeps them (journaled at every change): text cleaned and
    capped, lists and dicts bounded, anything else that is not plain data dropped."""
    return {str(k)[:64]: v for k, v in ((k, _fact(v, 0)) for k, v in
                                         list(extra.items())[:MAX_FACT_ITEMS])
            if v is not _DROP}


_DROP = object()


def _fact(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return clean_text(value, MAX_FACT_TEXT)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    if depth >= 3:
        return _DROP
    if isinstance(value, (list, tuple)):
        return [v for v in (_fact(v, depth + 1) for v in value[:MAX_FACT_ITEMS])
                if v is not _DROP]
    if isinstance(value, dict):
        return {str(k)[:64]: v for k, v in ((k, _fact(v, depth + 1))
                                             for k, v in list(value.items())[:MAX_FACT_ITEMS])
                if v is not _DROP}
    return _DROP
