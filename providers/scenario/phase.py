"""The map-making step of a Scenario job (`MapStep`, mixed into the provider), and what survives
a restart of it.

A job is up to two paid steps: the image job (its id is the remote id) and, with PBR on, one
map job per sample, started from `poll` once the images exist. The remote id cannot change after
`submit`, so the map jobs' ids are kept where a resumed `poll` finds them: in memory, and in a
small sidecar file ``.{file_stem}.scenario.json`` in `request.out_dir`, written (fsync'ed) as
soon as each map job is accepted. A resumed poll reads it and never starts a map job twice. The
file stays after the job: deleting it in `fetch` would reopen, for the moment between `fetch`
and the runner's READY write, the very window it closes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...formats import imagefile
from ...formats.atomic import write_atomic
from ...net.http import Downloaded, HttpClient, HttpError
from ..base import (
    BASE_COLOR,
    ROUGHNESS,
    CancelToken,
    ProviderError,
    QueueFull,
    RemoteState,
    RemoteStatus,
    TextureRequest,
)
from . import contract as c
from .contract import SMOOTHNESS

log = logging.getLogger(__name__)


@dataclass
class Phase:
    """The map-making step of one job: which map job belongs to which image, and what failed."""

    texture_jobs: dict[str, str] = field(default_factory=dict)  # image asset id -> job id
    degraded: dict[str, str] = field(default_factory=dict)  # image asset id -> why no maps
    attempts: dict[str, int] = field(default_factory=dict)  # image asset id -> tries so far
    finished: dict[str, dict[str, str]] = field(default_factory=dict)  # image -> role -> map


def sidecar(request: TextureRequest) -> str:
    if not request.out_dir:
        return ""
    stem = request.file_stem or request.job_id
    return os.path.join(request.out_dir, f".{stem}.scenario.json")


def load_phase(path: str, remote_id: str) -> Phase:
    if not path:
        return Phase()
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return Phase()
    except (OSError, ValueError) as exc:
        log.warning("Scenario: the map-job record %s is unreadable: %s", path, exc)
        return Phase()
    entry = data.get(remote_id) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        return Phase()
    return Phase(texture_jobs=_str_dict(entry.get("texture_jobs")),
                 degraded=_str_dict(entry.get("degraded")))


def _str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def write_phase(path: str, remote_id: str, phase: Phase) -> None:
    """Atomic and durable: this record is what stops a resumed job from paying twice."""
    data = {remote_id: {"texture_jobs": phase.texture_jobs, "degraded": phase.degraded}}
    write_atomic(path, json.dumps(data, sort_keys=True), durable=True, mode=None)


def degraded_warning(images: list[str], phase: Phase) -> str:
    which = [n for n, asset in enumerate(images) if asset in phase.degraded]
    reason = phase.degraded[images[which[0]]]
    if len(images) == 1:
        return f"No PBR maps ({reason}); the base color was kept"
    samples = ", ".join(str(n + 1) for n in which)
    return f"No PBR maps for sample {samples} ({reason}); the base color was kept"


def to_roughness(got: Downloaded, dest: str) -> tuple[str, str]:
    """(role, path): roughness = 1 - smoothness, decoded and inverted here for PNGs. A JPEG or
    WEBP cannot be decoded without PIL: it stays "smoothness" for Blender to invert."""
    if got.kind != "PNG":
        return SMOOTHNESS, got.path
    try:
        pixels = imagefile.read_png(got.path)
    except (OSError, ValueError) as exc:
        log.info("Scenario smoothness map left for Blender to invert: %s", exc)
        return SMOOTHNESS, got.path
    top = np.iinfo(pixels.dtype).max
    inverted = pixels.copy()
    color = inverted if inverted.ndim == 2 else inverted[..., : 3 if pixels.shape[2] >= 3 else 1]
    color[...] = top - color  # alpha (if any) is kept as it is
    try:
        imagefile.write_png(dest, inverted)
    except OSError as exc:
        raise ProviderError(f"Could not save {os.path.basename(dest)}: "
                            f"{exc.strerror or exc}") from None
    try:
        os.unlink(got.path)
    except OSError:
        pass
    return ROUGHNESS, dest


_working_route: dict[str, str] = {}  # base URL -> the map maker that answered
_route_lock = threading.Lock()


class MapStep:
    """Starting and watching the (paid) map jobs of a job's images, for `ScenarioProvider`."""

    _lock: threading.Lock
    _phases: dict[str, Phase]
    base_url: str

    if TYPE_CHECKING:  # given by the provider this is mixed into
        def client(self) -> HttpClient: ...
        def _params(self, **more: str) -> dict[str, str]: ...
        def _job(self, job_id: str, cancel: CancelToken | None) -> dict[str, Any]: ...
        def _asset(self, asset_id: str, cancel: CancelToken | None,
                   fresh: bool) -> dict[str, Any]: ...

    # ---- the map-making step -------------------------------------------------------------------

    def _pbr_status(self, remote_id: str, images: list[str], request: TextureRequest,
                    cancel: CancelToken) -> RemoteStatus:
        phase = self._phase(remote_id, request)
        for asset in images:
            if asset not in phase.texture_jobs and asset not in phase.degraded:
                self._start_maps(remote_id, asset, phase, request, cancel)
        maps: dict[str, str] = {}
        fractions: list[float] = []
        for n, asset in enumerate(images):
            fraction = self._sample_maps(remote_id, n, asset, phase, request, cancel, maps)
            fractions.append(fraction)
        extra: dict[str, Any] = {"scenario_texture_jobs": dict(phase.texture_jobs)}
        if phase.degraded:
            extra["warning"] = degraded_warning(images, phase)
        if all(f >= 1.0 for f in fractions):
            return RemoteStatus(RemoteState.SUCCEEDED, 1.0, maps=maps, extra=extra)
        done = sum(1 for f in fractions if f >= 1.0)
        progress = c.IMAGE_SHARE + (1.0 - c.IMAGE_SHARE) * sum(fractions) / len(fractions)
        message = "Scenario is making the PBR maps"
        if len(images) > 1:
            message += f" ({done} of {len(images)} done)"
        if any(a not in phase.texture_jobs and a not in phase.degraded for a in images):
            message = "Scenario is busy: the PBR maps start as soon as it takes them"
        return RemoteStatus(RemoteState.RUNNING, min(progress, 0.99), message, extra=extra)

    def _sample_maps(self, remote_id: str, n: int, asset: str, phase: Phase,
                     request: TextureRequest, cancel: CancelToken,
                     maps: dict[str, str]) -> float:
        """Add sample n's maps to `maps` when its map job is done; return its progress 0..1."""
        if asset in phase.degraded:
            maps[c.variant(BASE_COLOR, n)] = asset
            return 1.0
        if asset in phase.finished:  # not asked again while the other samples finish
            maps.update({c.variant(r, n): m for r, m in phase.finished[asset].items()})
            return 1.0
        if asset not in phase.texture_jobs:  # not started yet (Scenario was busy)
            return 0.0
        try:
            job = self._job(phase.texture_jobs[asset], cancel)
        except HttpError as exc:
            if exc.status not in (404, 410):
                raise
            self._degrade(remote_id, asset, phase, request,
                          "Scenario no longer knows the map job")
            maps[c.variant(BASE_COLOR, n)] = asset
            return 1.0
        state = c.STATES.get(str(job.get("status") or "").strip().lower(), RemoteState.RUNNING)
        if state is RemoteState.SUCCEEDED:
            found = self._map_assets(job, cancel)
            found.setdefault(BASE_COLOR, asset)  # "the original as albedo" [C S10]
            phase.finished[asset] = found
            for role, map_asset in found.items():
                maps[c.variant(role, n)] = map_asset
            return 1.0
        if state in (RemoteState.FAILED, RemoteState.CANCELED):
            reason = (c.failure_message(job) if state is RemoteState.FAILED
                      else "the map job was canceled at Scenario")
            self._degrade(remote_id, asset, phase, request, reason)
            maps[c.variant(BASE_COLOR, n)] = asset
            return 1.0
        return c.progress_of(job.get("progress"))

    def _map_assets(self, job: dict[str, Any], cancel: CancelToken) -> dict[str, str]:
        """Role -> asset id of a finished map job, by each asset's `metadata.type`."""
        found: dict[str, str] = {}
        for asset_id in c.asset_ids(job):
            kind = c.asset_type(self._asset(asset_id, cancel, fresh=False))
            role = c.MAP_TYPES.get(kind)
            if role is None:
                if kind not in c.IGNORED_MAP_TYPES:
                    log.debug("Scenario map job output of type %r ignored", kind)
                continue
            found.setdefault(role, asset_id)
        return found

    def _start_maps(self, remote_id: str, asset: str, phase: Phase, request: TextureRequest,
                    cancel: CancelToken) -> None:
        """Start the (paid) map job for one image, remembering it before anything else."""
        body = {"texture": asset, **c.texture_settings(request.options or {})}
        last: HttpError | None = None
        for key in self._route_order():
            try:
                answer = self.client().post_json(c.TEXTURE_ROUTES[key], body, cancel,
                                                 safe=False, params=self._params(),
                                                 context="create")
            except QueueFull:
                return  # Scenario is busy: this image's maps start on a later poll
            except HttpError as exc:
                if exc.status == 404:
                    last = exc
                    continue
                self._map_start_failed(remote_id, asset, phase, request, exc)
                return
            with _route_lock:
                _working_route[self.base_url] = key
            try:
                job_id = c.job_id_of(answer)
            except ProviderError as exc:
                self._degrade(remote_id, asset, phase, request, exc.message)
                return
            phase.texture_jobs[asset] = job_id
            self._save_phase(remote_id, request, phase)
            return
        reason = "Scenario offers no PBR map maker at this address"
        if last is not None and last.provider_message:
            reason += f" ({last.provider_message})"
        self._degrade(remote_id, asset, phase, request, reason)

    def _map_start_failed(self, remote_id: str, asset: str, phase: Phase,
                          request: TextureRequest, exc: HttpError) -> None:
        """A transient refusal is tried again on the next polls; anything else keeps the image
        without maps, because the image is paid for and must not be thrown away."""
        if exc.retryable:
            tries = phase.attempts.get(asset, 0) + 1
            phase.attempts[asset] = tries
            if tries < c.MAX_TEXTURE_ATTEMPTS:
                raise ProviderError(exc.message, retryable=True, status=exc.status)
        self._degrade(remote_id, asset, phase, request, exc.message)

    def _degrade(self, remote_id: str, asset: str, phase: Phase, request: TextureRequest,
                 reason: str) -> None:
        log.warning("Scenario: no PBR maps for image %s: %s", asset, reason)
        phase.degraded[asset] = " ".join(reason.split())
        self._save_phase(remote_id, request, phase)

    def _route_order(self) -> list[str]:
        with _route_lock:
            known = _working_route.get(self.base_url)
        order = list(c.ROUTE_ORDER)
        if known:
            order.remove(known)
            order.insert(0, known)
        return order

    def _phase(self, remote_id: str, request: TextureRequest) -> Phase:
        with self._lock:
            phase = self._phases.get(remote_id)
            if phase is None:
                phase = load_phase(sidecar(request), remote_id)
                self._phases[remote_id] = phase
            return phase

    def _save_phase(self, remote_id: str, request: TextureRequest, phase: Phase) -> None:
        path = sidecar(request)
        if not path:
            return
        try:
            write_phase(path, remote_id, phase)
        except OSError as exc:  # the job goes on; only a crash right now could cost twice
            log.warning("Scenario: could not record the map jobs in %s: %s", path, exc)

