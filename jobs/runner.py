"""The runner: one worker thread per started job, bounded per provider, reporting by events.

Workers talk to providers and the journal; they never touch Blender. Every change a worker makes
to a job is journaled first and then posted as a snapshot on a queue that the main thread drains
(`drain`) from its timer. A worker never re-submits a job that already has a remote id, and a job
interrupted while being sent is never re-sent automatically unless the provider says that is free.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..formats import limits, meshfile
from ..formats.bake import BakeTarget
from ..net import inflight
from ..net.redact import clean_text
from ..providers.base import (
    RESULT_MESH,
    UV_MESH,
    Canceled,
    CancelRefused,
    CancelToken,
    Provider,
    ProviderError,
    QueueFull,
    RemoteState,
    TimedOut,
)
from . import bake_step
from .gate import QUEUE_WAIT_MAX_S, QUEUE_WAIT_S, RECOVER_S, Gate  # (issue 12)
from .intake import check_map_sizes, facts, limits_of
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


class _Killed(BaseException):
    """Unwinds a worker of a runner that was killed (tests simulate a crash with it)."""


@dataclass
class _Slot:
    job: Job
    provider: Provider
    mesh: meshfile.MeshArrays | None = None  # the arrays the worker writes as the mesh file
    token: CancelToken = field(default_factory=CancelToken)
    thread: threading.Thread | None = None
    inside: bool = False  # (issue 12) holds a place in its provider's gate


class Runner:
    def __init__(
        self,
        journal: Journal,
        limits: dict[str, int] | None = None,
    ) -> None:
        self.journal = journal
        self.limits = dict(limits or {})
        self._events: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._taken: dict[str, int] = {}  # provider id -> jobs in `_slots` (for `free_slots`)
        self._gates: dict[str, Gate] = {}  # (issue 12) provider id -> its adaptive limit
        self._dead = False
        self._detached = False  # the file was closed: workers stop, but journal what they learn
        # Main-thread chores done by a short-lived helper thread, in order: starting worker
        # threads and journal writes (both wait on the OS or on the GIL; the main thread must not).
        self._chores: list[Callable[[], None]] = []
        self._helper = False  # a helper thread is running
        self._chore_running = False
        # Meshes a worker read from a result, handed to the main thread in memory (reading the
        # file there would hand the GIL to busy workers at every read).
        self._meshes: dict[tuple[str, str], meshfile.MeshArrays] = {}
        self._chores_done = threading.Condition(self._lock)
        self._desk = bake_step.Desk()  # the objects' arrays that baking workers wait for
        # Pause before polling again after a failed poll: base * 2**failures, at most 30 s.
        self.poll_retry_base = 1.0
        # (issue 12) Queue-full pacing; tests shorten these.
        self.recover_s = RECOVER_S
        self.queue_wait_s = QUEUE_WAIT_S

    # ---- main thread -------------------------------------------------------------------------

    def ceiling(self, provider: type[Provider] | Provider) -> int:
        """The artist's "Jobs at once" for this provider (or a test's override)."""
        return max(1, self.limits.get(provider.id, provider.max_concurrency))

    def limit(self, provider: type[Provider] | Provider) -> int:
        """Jobs of this provider that may run now: the ceiling, or less after the service said
        its queue was full (issue 12)."""
        gate = self._gates.get(provider.id)
        return gate.limit() if gate is not None else self.ceiling(provider)

    def gate_facts(self, provider_id: str) -> tuple[int, int, int]:
        """(limit now, jobs at the service, queue-full answers so far) for benchmarks/tests."""
        gate = self._gates.get(provider_id)
        if gate is None:
            return (0, 0, 0)
        return gate.limit(), gate.inside, gate.refusals

    def free_slots(self, provider: type[Provider] | Provider) -> int:
        """How many more jobs of this provider may start now (the main thread exports that many).

        Read without the lock (one dict read is atomic under the GIL): the main thread must
        never queue for a lock a worker holds while that worker waits for the GIL."""
        return max(0, self.limit(provider) - self._taken.get(provider.id, 0))

    def start(self, job: Job, provider: Provider, mesh: meshfile.MeshArrays | None = None) -> None:
        """Hand the job to a worker and return at once. The job object becomes the worker's;
        it writes `mesh` (if any) to `job.request.mesh_path` and journals before sending."""
        if job.id in self._slots:
            raise ValueError(f"job {job.id} is already running")
        self._launch(job, provider, mesh)

    def resume(self, job: Job, provider: Provider) -> None:
        """Pick up a journaled job after a restart, without paying for it twice."""
        if job.state is State.SUBMITTING and not job.remote_id and not provider.resubmit_safe:
            job.move(
                State.FAILED,
                f"Blender stopped while this job was being sent to {provider.label}; it may "
                f"exist there. Check your {provider.label} account before retrying.",
            )
            self.journal.write(job)
            self._events.put(_copy(job))
            return
        if job.state is State.READY:
            self._events.put(_copy(job))  # the main thread applies it
            return
        self._launch(job, provider)

    def cancel(self, job_id: str) -> bool:
        slot = self._slots.get(job_id)
        if slot is None:
            return False
        slot.token.cancel()
        return True

    def set_blend_file(self, job_id: str, path: str) -> None:
        """The artist saved the file: the worker's copy of the job journals the new path
        (a plain attribute write, atomic under the GIL)."""
        slot = self._slots.get(job_id)
        if slot is not None:
            slot.job.blend_file = path

    def provide_target(self, job_id: str, target: BakeTarget | None, reason: str = "") -> None:
        """The object a BAKING job's worker waits for, as arrays (or None: why there is none)."""
        self._desk.provide(job_id, target, reason)

    def drain(self, max_events: int = 10_000) -> list[Job]:
        """Snapshots posted since the last call, in order; progress-only updates are coalesced
        so a burst of them costs the main thread one update, while every state change is kept."""
        out: list[Job] = []
        last: dict[str, int] = {}  # job id -> index in `out` of its newest snapshot
        for _ in range(max_events):
            try:
                snap = self._events.get_nowait()
            except queue.Empty:
                break
            i = last.get(snap.id)
            if i is not None and out[i].state is snap.state:
                out[i] = snap
            else:
                last[snap.id] = len(out)
                out.append(snap)
        return out

    def busy(self) -> bool:
        return bool(self._slots)  # atomic under the GIL; no lock (see `free_slots`)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel nothing, stop nothing: wait for workers. Returns False if some are still alive."""
        deadline = time.monotonic() + timeout
        while self.busy() and time.monotonic() < deadline:
            for slot in list(self._slots.values()):
                if slot.thread is not None:
                    slot.thread.join(max(0.0, min(0.05, deadline - time.monotonic())))
            time.sleep(0.005)  # a slot whose thread the helper has not started yet
        return not self.busy()

    def cancel_all(self) -> None:
        for slot in list(self._slots.values()):
            slot.token.cancel()

    def kill(self) -> None:
        """Simulate a crash: workers stop at once and write nothing more, anywhere."""
        self._dead = True
        self.cancel_all()
        self._meshes.clear()

    def detach(self, timeout: float = 3.0) -> None:
        """Stop watching every job (its file is being closed) without ending any: workers stop
        at their next step and post nothing more, but what they learn on the way out (the id of
        a task whose create was in flight) still reaches the journal. Waits up to `timeout` for
        creates in flight, so the file opened next finds their remote ids."""
        self._detached = True
        self.cancel_all()
        deadline = time.monotonic() + timeout
        for slot in list(self._slots.values()):
            if slot.job.state is State.SUBMITTING and slot.thread is not None:
                slot.thread.join(max(0.0, deadline - time.monotonic()))
        self._dead = True
        self._meshes.clear()

    # ---- workers -----------------------------------------------------------------------------

    def _launch(
        self, job: Job, provider: Provider, mesh: meshfile.MeshArrays | None = None
    ) -> None:
        """Register the job's slot now (so `free_slots` counts it) and let the helper thread
        start its worker: `Thread.start()` waits for the new thread to get the GIL, which with
        dozens of busy workers can cost the main thread milliseconds."""
        slot = _Slot(job=job, provider=provider, mesh=mesh)
        provider.heavy = HEAVY_WORK
        with self._lock:
            self._slots[job.id] = slot
            self._taken[provider.id] = self._taken.get(provider.id, 0) + 1
            gate = self._gates.get(provider.id)
            if gate is None:
                self._gates[provider.id] = Gate(self.ceiling(provider), self.recover_s)
            else:  # the artist may have changed "Jobs at once" since the last batch
                gate.ceiling = self.ceiling(provider)

        def launch() -> None:
            if self._dead:
                with self._lock:
                    if self._slots.pop(job.id, None) is not None:
                        self._taken[provider.id] -= 1
                return
            thread = threading.Thread(
                target=self._work, args=(slot,),
                name=f"t2t-{provider.id.lower()}-{job.id}", daemon=True,
            )
            slot.thread = thread
            thread.start()

        self._chore(launch)

    def write_later(self, job: Job) -> None:
        """Journal a change the main thread made (an applied or failed job) without making it
        wait for the disk; writes keep their order with the launches."""
        snapshot = _copy(job)

        def write() -> None:
            if not self._dead:
                try:
                    self.journal.write(snapshot, durable=False)
                except OSError as exc:
                    log.warning("journal entry %s not written: %s", snapshot.id, exc)

        self._chore(write)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the helper thread has done every chore handed to it so far."""
        with self._chores_done:
            return self._chores_done.wait_for(
                lambda: not self._chores and not self._chore_running, timeout)

    def _chore(self, chore: Callable[[], None]) -> None:
        with self._lock:
            self._chores.append(chore)
            if self._helper:
                self._chores_done.notify_all()
                return
            self._helper = True
        threading.Thread(target=self._do_chores, name="t2t-helper", daemon=True).start()

    def _do_chores(self) -> None:
        """Do the queued chores; wait for more while jobs run (starting a thread costs the
        main thread a GIL hand-over, so one helper serves a whole batch); end when idle."""
        while True:
            with self._lock:
                while not self._chores and self._slots and not self._dead:
                    self._chores_done.wait(0.5)
                if not self._chores:
                    self._helper = False
                    self._chores_done.notify_all()
                    return
                chore = self._chores.pop(0)
                self._chore_running = True
            try:
                chore()
            except Exception:  # a chore must never stop the ones after it
                log.exception("runner chore failed")
            finally:
                with self._lock:
                    self._chore_running = False
                    self._chores_done.notify_all()

    def _post(self, job: Job, journal: bool = True) -> None:
        if self._dead:
            raise _Killed()
        if journal:
            self.journal.write(job)
        if self._detached:
            raise _Killed()
        self._events.put(_copy(job))

    def _move(self, job: Job, state: State, message: str, progress: float | None = None) -> None:
        if self._dead:
            raise _Killed()
        job.move(state, message, progress)
        self._post(job)

    def _alive(self) -> None:
        if self._dead:
            raise _Killed()

    def _enter(self, slot: _Slot, not_before: float = 0.0, after: int = -1) -> None:
        """Wait for a place at the service (the gate), then hold it."""
        self._gates[slot.provider.id].enter(slot.token, self._alive, not_before, after)
        slot.inside = True

    def _leave(self, slot: _Slot) -> None:
        if slot.inside:
            slot.inside = False
            self._gates[slot.provider.id].leave()

    def _work(self, slot: _Slot) -> None:
        job, provider = slot.job, slot.provider
        _yield_cpu()
        if provider.exchanges is not None:  # (issue 12) the job's report keeps its exchanges
            provider.exchanges.attach(str(self.journal.exchanges_path(job.id)))
        try:
            with limits.use(limits_of(job, slot.mesh)):
                while True:
                    try:
                        slot.token.check()
                        with inflight.job_scope(slot.token):
                            self._run(job, provider, slot)
                        break
                    except TimedOut:
                        self._finish_timed_out(job, provider)
                        break
                    except Canceled:
                        if not self._cancel_remote(job, provider, slot):
                            break
        except _Killed:
            pass
        except ProviderError as exc:
            self._finish(job, State.FAILED, provider.redact(exc.message))
        except OSError as exc:  # disk full, folder made read-only mid-job…
            where = exc.filename or job.request.out_dir
            self._finish(job, State.FAILED,
                         f"Could not save the maps ({exc.strerror or exc}): {where}")
        except Exception as exc:  # a bug must not kill the pump or leave the job "running"
            log.exception("job %s failed unexpectedly", job.id)
            self._finish(job, State.FAILED,
                         provider.redact(f"{provider.label}: unexpected error ({exc})"))
        finally:
            self._leave(slot)
            with self._lock:
                if self._slots.pop(job.id, None) is not None:
                    self._taken[provider.id] -= 1
                self._chores_done.notify_all()  # the helper ends once no job is left

    def _finish(self, job: Job, state: State, message: str) -> None:
        if self._dead or job.state.terminal:
            return
        job.move(state, message)
        try:
            self._post(job)
        except _Killed:
            pass

    def _cancel_remote(self, job: Job, provider: Provider, slot: _Slot) -> bool:
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

    def _run(self, job: Job, provider: Provider, slot: _Slot) -> None:
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
                raise _Killed()
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

    def _submit(self, job: Job, provider: Provider, slot: _Slot) -> str:
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
                # The service's own wait when it says one, never less than our backoff.
                wait = max(exc.retry_after or 0.0, min(
                    QUEUE_WAIT_MAX_S, self.queue_wait_s * 2 ** (refusals - 1)))
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

    def take_mesh(self, job_id: str, role: str) -> meshfile.MeshArrays | None:
        """The arrays a worker read from a job's returned mesh, once (None after a restart:
        then the prepared file beside the mesh is read)."""
        return self._meshes.pop((job_id, role), None)  # atomic under the GIL

    def _watch(self, job: Job, provider: Provider, token: CancelToken):  # -> RemoteStatus
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


# Workers (and the threads they start, which inherit it) run at this lower CPU priority, so a
# burst of decoding and compressing maps on a two-core machine never starves Blender's own
# thread, whose every millisecond the artist feels.
WORKER_NICENESS = 10


def _yield_cpu() -> None:
    """Lower this thread's CPU priority where the OS sets it per thread (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid),
                                                  WORKER_NICENESS))
    except (AttributeError, OSError):  # not permitted here: run at normal priority
        pass


def _copy(job: Job) -> Job:
    return Job.from_dict(job.to_dict())

