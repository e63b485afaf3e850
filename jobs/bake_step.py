"""A job's bake, worker side: when a result's maps belong to the provider's own UVs, carry them
onto the UV map of the artist's object (formats/bake), so the object keeps its mesh.

The worker cannot read Blender, so it asks the main thread for the object's arrays (`Desk`):
the job moves to BAKING (journaled first: a Blender that stops now bakes again when it comes
back, from the maps already on disk, and never buys the job again), the main thread's next tick
gathers the object and hands it over, and the worker bakes. When a bake is impossible (the
object is gone, the provider's mesh is not its surface, a map is not a PNG) the result keeps
its mesh and the job says why: the object is then given the provider's mesh, as with the
"Use the provider's mesh" option, and the artist's own mesh is kept in the file.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ..formats import meshfile
from ..formats.bake import BakeError, BakeTarget, bake
from ..providers.base import RESULT_MESH, UV_MESH, Canceled, CancelToken
from .job import Job

# `TextureRequest.options` key: give the object the provider's mesh instead of baking.
USE_PROVIDER_MESH = "use_provider_mesh"
MESH_ROLES = (RESULT_MESH, UV_MESH)


def mesh_role(job: Job) -> str:
    """The role of the provider's own mesh in a result ("" if the maps use the object's UVs)."""
    return next((role for role in MESH_ROLES if role in job.maps), "")


def wants_bake(job: Job) -> bool:
    return bool(mesh_role(job)) and not job.request.options.get(USE_PROVIDER_MESH)


@dataclass
class _Answer:
    target: BakeTarget | None
    reason: str


class Desk:
    """Where a worker waits for the object's arrays and the main thread leaves them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, _Answer] = {}
        self._events: dict[str, threading.Event] = {}

    def _event(self, job_id: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(job_id, threading.Event())

    def provide(self, job_id: str, target: BakeTarget | None, reason: str = "") -> None:
        """Main thread: the object's arrays, or None and the one line why there are none."""
        with self._lock:
            self._answers[job_id] = _Answer(target, reason)
        self._event(job_id).set()

    def wait(self, job_id: str, token: CancelToken, dead: Callable[[], bool]
             ) -> tuple[BakeTarget | None, str]:
        """Worker: block until the main thread answered (cancel and a killed runner are felt
        within a quarter second)."""
        event = self._event(job_id)
        while not event.wait(0.25):
            token.check()
            if dead():
                raise Canceled()
        with self._lock:
            answer = self._answers.pop(job_id)
            self._events.pop(job_id, None)
        return answer.target, answer.reason

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._answers.pop(job_id, None)
            self._events.pop(job_id, None)


@contextlib.contextmanager
def waiting_for(lock: threading.Semaphore, token: CancelToken,
                dead: Callable[[], bool]) -> Iterator[None]:
    """Hold `lock`, waited for the way a cancel is still felt."""
    while not lock.acquire(timeout=0.25):
        token.check()
        if dead():
            raise Canceled()
    try:
        yield
    finally:
        lock.release()


def run(job: Job, target: BakeTarget | None, reason: str, label: str, token: CancelToken,
        progress: Callable[[float, str], None],
        heavy: AbstractContextManager[object]) -> None:
    """Bake `job`'s maps onto `target`, replacing them in `job.maps` (the provider's files stay
    on disk, named in `job.extra["provider_maps"]`); or, when that cannot be done, leave the
    result as it is and say why in `job.extra["warning"]`."""
    role = mesh_role(job)
    if target is None:
        _keep_mesh(job, label, reason)
        return
    try:
        source = meshfile.load_prepared(job.maps[role])
        maps = {r: p for r, p in job.maps.items() if r not in MESH_ROLES}
        with heavy:
            result = bake(target, source, maps, int(job.request.resolution),
                          job.request.out_dir or ".", job.request.file_stem or job.id,
                          check=token.check, progress=progress,
                          label=f"Baking onto UV map '{target.uv_name}'")
    except (BakeError, meshfile.MeshFileError) as exc:
        _keep_mesh(job, label, str(exc))
        return
    except OSError as exc:
        _keep_mesh(job, label, f"the baked maps could not be saved ({exc.strerror or exc})")
        return
    job.extra["provider_maps"] = dict(job.maps)
    job.extra["baked"] = {"uv_map": target.uv_name, "matched": round(result.matched, 4)}
    if result.notes:
        job.extra["note"] = f"Baked onto UV map '{target.uv_name}': " + "; ".join(result.notes)
    job.maps = dict(result.maps)


def _keep_mesh(job: Job, label: str, reason: str) -> None:
    job.warn(f"Could not bake {label}'s maps onto '{job.object_name}' ({reason}): it gets "
             f"{label}'s mesh instead; yours is kept in the file")
