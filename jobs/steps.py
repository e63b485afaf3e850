"""The steps a worker takes for one job: send it (through its provider's gate), watch it, fetch
its maps, bake them, and end it (canceled, timed out, failed).

`JobSteps` is a mixin of `runner.Runner`, which provides the threads, the event queue, the gates
and the journal these steps use. Every change a step makes to a job is journaled first and then
posted as a snapshot (`_post`); a step never touches Blender.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..formats import meshfile
from ..net import inflight
from ..net.redact import clean_text
from ..providers.base import (
    RESULT_MESH,
    UV_MESH,
    CancelRefused,
    CancelToken,
    Provider,
    ProviderError,
    QueueFull,
    RemoteState,
    RemoteStatus,
)
from . import bake_step
from .gate import QUEUE_WAIT_MAX_S, Gate  # (issue 12)
from .intake import check_map_sizes, facts
from .job import Job, State
from .journal import Journal

log = logging.getLogger(__name__)

# Heavy local work of workers (decoding and re-encoding a map, writing or reading a mesh) is
# done one job at a time: on a two-core machine several at once would leave Blender's own
# thread waiting for a core and for the GIL, and they would not finish sooner in all anyway.
HEAVY_WORK = threading.BoundedSemaphore(1)

# A poll that fails with a retryable error is tried again this many times in a row before the
# job fails; the HTTP layer below has already retried each request with backoff.
MAX_POLL_FAILURES = 5
# Progress changes smaller than this are not journaled (they are still shown).
JOURNAL_PROGRESS_STEP = 0.1
# A service whose status makes no sense (a word this version does not know, a number, null, a
# list) this many polls in a row has lost us: the job fails, its remote id kept.
MAX_UNKNOWN_POLLS = 20
# How long the service gets to answer a cancel before the job ends here anyway (Esc is felt
# at once; a refusal that comes in time keeps the job's result, see `_cancel_remote`).
CANCEL_ANSWER_S = 0.5


class Killed(BaseException):
    """Unwinds a worker of a runner that was killed (tests simulate a crash with it)."""


@dataclass
class Slot:
    """One running job as its worker holds it."""

    job: Job
    provider: Provider
    mesh: meshfile.MeshArrays | None = None  # the arrays the worker writes as the mesh file
    token: CancelToken = field(default_factory=CancelToken)
    thread: threading.Thread | None = None
    inside: bool = False  # (issue 12) holds a place in its provider's gate


def copy_job(job: Job) -> Job:
    """A snapshot to post or journal: the worker goes on changing its own job."""
    return Job.from_dict(job.to_dict())


class JobSteps:
    """A worker's steps for one job (the runner's half that runs on worker threads)."""

    # Provided by `Runner`:
    journal: Journal
    poll_retry_base: float
    queue_wait_s: float
    queue_hint_min_s: float
    _events: queue.SimpleQueue[Job]
    _gates: dict[str, Gate]
    _desk: bake_step.Desk
    _meshes: dict[tuple[str, str], meshfile.MeshArrays]
    _dead: bool
    _detached: bool

    def _post(self, job: Job, journal: bool = True) -> None:
        if self._dead:
            raise Killed()
        if journal:
            self.journal.write(job)
        if self._detached:
            raise Killed()
        self._events.put(copy_job(job))

    def _move(self, job: Job, state: State, message: str, progress: float | None = None) -> None:
        if self._dead:
            raise Killed()
        job.move(state, message, progress)
        self._post(job)

    def _alive(self) -> None:
        if self._dead:
            raise Killed()

    def _enter(self, slot: Slot, not_before: float = 0.0, after: int = -1) -> None:
        """Wait for a place at the service (the gate), then hold it."""
        self._gates[slot.provider.id].enter(slot.token, self._alive, not_before, after)
        slot.inside = True

    def _leave(self, slot: Slot) -> None:
        if slot.inside:
            slot.inside = False
            self._gates[slot.provider.id].leave()

    def _finish(self, job: Job, state: State, message: str) -> None:
        if self._dead or job.state.terminal:
            return
        job.move(state, message)
        try:
            self._post(job)
        except Killed:
            pass

    def _cancel_remote(self, job: Job, provider: Provider, slot: Slot) -> bool:
        """The artist canceled: ask the service to stop the task and end the job here.

        The service gets `CANCEL_ANSWER_S` to answer, so Esc is felt at once. If it refuses
        (`CancelRefused`: Meshy does not delete a running task, Scenario stops only image jobs),
        the task runs on there and may be charged: the job goes on being watched and its result
        is kept, not applied (True is returned; canceling it again only stops watching). If it
        does not answer in time, the job ends here saying it may still finish there (the request
        was sent: a service acts on it whether or not we wait for its answer)."""
        self._desk.forget(job.id)
        if self._dead or self._detached:  # a detached runner's jobs were not canceled
            return False
        if job.state is State.BAKING:  # done and paid for at the provider: keep what came
            self._finish(job, State.CANCELED, f"Canceled while baking; {provider.label}'s maps "
                                              f"are kept in {job.request.out_dir}")
            return False
        kept = bool(job.extra.get("kept_unapplied"))
        message = "Canceled"
        if kept:
            message = f"Canceled here; {provider.label} may still finish this job and charge it"
        elif job.remote_id:
            began = time.monotonic()
            try:  # the whole answer, retries and their waits included, within the window
                with inflight.job_scope(CancelToken(deadline=began + CANCEL_ANSWER_S)):
                    provider.cancel(job.remote_id)
            except CancelRefused as exc:
                if job.state is State.RUNNING:
                    if provider.exchanges is not None:
                        provider.exchanges.note(f"cancel refused: {exc.message}")
                    slot.token = CancelToken()  # a second cancel reaches this one
                    job.extra["kept_unapplied"] = True
                    job.warn(provider.redact(exc.message))  # the details keep it
                    self._move(job, State.RUNNING, provider.redact(exc.message))
                    return True
                log.warning("cancel of %s at %s refused: %s", job.id, provider.id, exc.message)
            except Exception as exc:  # the job is canceled here either way
                if time.monotonic() - began < CANCEL_ANSWER_S * 0.9:
                    log.warning("cancel of %s at %s failed: %s", job.id, provider.id,
                                provider.redact(str(exc)))
                else:  # sent, but not answered in time: the job ends here all the same
                    message = (f"Canceled here; {provider.label} did not confirm the stop in "
                               "time, so it may still finish this job and charge it")
        self._finish(job, State.CANCELED, message)
        return False

    def _finish_timed_out(self, job: Job, provider: Provider) -> None:
        """The job's overall deadline passed: it fails as timed out, its remote id kept so the
        artist can look it up (the task may still finish and be paid for there)."""
        if self._dead:
            return
        job.extra["timed_out"] = True
        seconds = provider.timeout_s(job.request.options)
        if job.remote_id:
            message = provider.timed_out_message(job.remote_id, seconds)
        else:
            message = f"{provider.label} did not take the job in time"
        self._finish(job, State.FAILED, message)
        try:
            provider.abandon(job.remote_id)
        except Exception as exc:  # housekeeping only
            log.warning("cleaning up after %s timed out failed: %s", job.id, exc)

    def _arm_deadline(self, job: Job, provider: Provider, token: CancelToken) -> None:
        """The job's overall deadline counts from when it was sent, across restarts."""
        seconds = provider.timeout_s(job.request.options)
        if seconds <= 0:
            return
        sent = job.extra.get("submitted_at")
        if not isinstance(sent, (int, float)) or isinstance(sent, bool):
            sent = job.created
        token.set_deadline(time.monotonic() + (float(sent) + seconds - time.time()))

    def _run(self, job: Job, provider: Provider, slot: Slot) -> None:
        mesh, slot.mesh = slot.mesh, None
        if job.state is State.BAKING:  # resumed mid-bake: everything it needs is on disk
            self._bake(job, provider, slot.token)
            self._move(job, State.READY, "Maps ready", 1.0)
            return
        if not job.remote_id and job.state in (State.QUEUED, State.EXPORTING,
                                               State.SUBMITTING):
            self._enter(slot)  # a place at the service first: nothing is exported in vain
            if mesh is not None and job.state in (State.QUEUED, State.EXPORTING):
                self._write_mesh(job, mesh)
            provider.timeout_s(job.request.options)  # a bad setting is refused before paying
            job.remote_id = self._submit(job, provider, slot)
            job.extra["submitted_at"] = round(time.time(), 3)
            self._move(job, State.RUNNING, f"Submitted to {provider.label}", 0.0)
        elif job.state in (State.SUBMITTING, State.RUNNING) and not slot.inside:
            self._gates[provider.id].take()  # resumed: its task is at the service already
            slot.inside = True

        token = slot.token
        self._arm_deadline(job, provider, token)
        provider.restore(job.remote_id, dict(job.extra))
        status = self._watch(job, provider, token)
        self._leave(slot)  # the task has ended at the service: its place is free again
        self._move(job, State.DOWNLOADING, "Downloading maps", 0.0)
        maps = provider.fetch(job.remote_id, status, job.request, token,
                              self._progress(job, provider, token))
        if not maps:
            raise ProviderError(f"{provider.label} finished but returned no maps")
        job.maps = dict(maps)
        job.extra.update(facts(status.extra))
        check_map_sizes(job.maps, provider.label)
        bake = bake_step.wants_bake(job)
        self._prepare_meshes(job, provider, keep=not bake)
        if bake:
            self._bake(job, provider, token)
        self._move(job, State.READY, "Maps ready", 1.0)

    def _progress(self, job: Job, provider: Provider, token: CancelToken
                  ) -> Callable[[float, str], None]:
        """Progress a step reports: shown at once, journaled with the next state change."""

        def progress(fraction: float, message: str) -> None:
            if self._dead:
                raise Killed()
            token.check()
            if math.isfinite(fraction):
                job.progress = max(0.0, min(1.0, fraction))
            job.message = clean_text(provider.redact(message)) or job.message
            self._post(job, journal=False)

        return progress

    def _bake(self, job: Job, provider: Provider, token: CancelToken) -> None:
        """Carry the maps onto the object's own UV map (see jobs/bake_step.py). Local work: the
        job's overall deadline (for the service) no longer runs."""
        token.set_deadline(None)
        self._move(job, State.BAKING, "Baking: reading the object", 0.0)
        target, reason = self._desk.wait(job.id, token, lambda: self._dead)
        bake_step.run(job, target, reason, provider.label, token,
                      self._progress(job, provider, token),
                      bake_step.waiting_for(HEAVY_WORK, token, lambda: self._dead))

    def _submit(self, job: Job, provider: Provider, slot: Slot) -> str:
        """Send the job (holding a place in the gate). A queue-full answer (issue 12) created
        nothing and charged nothing: the job goes back to QUEUED, the limit adapts, and it is
        sent again when a place frees; it never fails for that."""
        gate = self._gates[provider.id]
        refusals = 0
        while True:
            if job.state is not State.SUBMITTING:
                self._move(job, State.SUBMITTING, f"Sending to {provider.label}", 0.0)
            try:
                return provider.submit(job.request, slot.token)
            except QueueFull as exc:
                refusals += 1
                slot.inside = False
                seen = gate.refused()
                # The service's own wait when it names one (a rate limit's "0.2 s" must not
                # become our minutes of backoff); else ours, doubling per refusal.
                if exc.retry_after is not None:
                    wait = max(exc.retry_after, self.queue_hint_min_s)
                else:
                    wait = min(QUEUE_WAIT_MAX_S, self.queue_wait_s * 2 ** (refusals - 1))
                if provider.exchanges is not None:
                    provider.exchanges.note(
                        f"queue full (refusal {refusals}); {gate.inside} of our jobs at "
                        f"{provider.label}, limit now {gate.limit()}; waiting for a place")
                self._move(job, State.QUEUED, provider.redact(exc.message))
                self._enter(slot, time.monotonic() + wait, seen)

    def _write_mesh(self, job: Job, mesh: meshfile.MeshArrays) -> None:
        """Write the arrays the main thread gathered as the file the provider sends."""
        fmt = job.request.mesh_format.upper()
        self._move(job, State.EXPORTING, f"Exporting {fmt}", 0.0)
        job.extra["sent_triangles"] = len(mesh.corner_verts) // 3
        try:
            with HEAVY_WORK:
                if fmt == "GLB":
                    meshfile.write_glb(mesh, job.request.mesh_path)
                else:
                    meshfile.write_obj(mesh, job.request.mesh_path)
        except (OSError, meshfile.MeshFileError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ProviderError(f"Could not export '{job.object_name}' as {fmt}: {reason}") from exc

    def _prepare_meshes(self, job: Job, provider: Provider, keep: bool = True) -> None:
        """Read a returned mesh into arrays here, so the main thread (or the bake) only loads
        them; an unreadable mesh fails the job now, with the maps still on disk. `keep`: hand
        the arrays to the main thread in memory too (it gives the object this mesh)."""
        for role in (RESULT_MESH, UV_MESH):
            if role in job.maps:
                try:
                    with HEAVY_WORK:
                        arrays = meshfile.read_glb(job.maps[role])
                        meshfile.save_npz(arrays, meshfile.prepared_path(job.maps[role]))
                except (OSError, meshfile.MeshFileError) as exc:
                    raise ProviderError(
                        f"{provider.label}'s mesh could not be read: {exc}"
                    ) from exc
                if keep:
                    self._meshes[(job.id, role)] = arrays

    def _watch(self, job: Job, provider: Provider, token: CancelToken) -> RemoteStatus:
        failures = unknown = 0
        journaled = job.progress
        started = time.monotonic()
        while True:
            token.check()
            try:
                status = provider.poll(job.remote_id, job.request, token)
                failures = 0
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise ProviderError(
                        f"{provider.label} did not answer after {failures} tries: {exc.message}"
                    ) from exc
                token.sleep(min(30.0, provider.poll_interval + self.poll_retry_base * 2**failures))
                continue
            kept = facts(status.extra)
            new_facts = any(job.extra.get(k) != v for k, v in kept.items())
            if new_facts:
                job.extra.update(kept)
            unknown = unknown + 1 if status.state is RemoteState.UNKNOWN else 0
            if unknown >= MAX_UNKNOWN_POLLS:
                raise ProviderError(
                    f"{provider.label} keeps sending a job status this add-on cannot read "
                    f"({unknown} times in a row), so it stopped watching; the job may still "
                    f"finish there — look it up in your {provider.label} account "
                    f"({provider.shown_id(job.remote_id)})")
            if status.state is RemoteState.SUCCEEDED:
                return status
            if status.state is RemoteState.FAILED:
                raise ProviderError(status.message or f"{provider.label} reported the job failed")
            if status.state is RemoteState.CANCELED:
                raise ProviderError(status.message or f"The job was canceled at {provider.label}")
            message = provider.redact(status.message) or (
                "Waiting in the provider's queue"
                if status.state is RemoteState.QUEUED
                else f"{provider.label} is texturing"
            )
            if job.extra.get("kept_unapplied"):  # (issue 12) canceled, but the service goes on
                message += " (canceled here; the result will be kept, not applied)"
            if new_facts and status.progress == job.progress and message == job.message:
                self._post(job)  # a fact a resumed job needs (e.g. a second paid step's id)
            elif status.progress != job.progress or message != job.message:
                job.move(State.RUNNING, message, status.progress)
                big_step = abs(job.progress - journaled) >= JOURNAL_PROGRESS_STEP
                self._post(job, journal=big_step or new_facts)
                if big_step:
                    journaled = job.progress
            token.sleep(provider.poll_delay(time.monotonic() - started))
