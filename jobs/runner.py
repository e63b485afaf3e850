"""The runner: one worker thread per started job, bounded per provider, reporting by events.

Workers talk to providers and the journal; they never touch Blender. Every change a worker makes
to a job is journaled first and then posted as a snapshot on a queue that the main thread drains
(`drain`) from its timer. A worker never re-submits a job that already has a remote id, and a job
interrupted while being sent is never re-sent automatically unless the provider says that is free.

This module holds the threads and the queues: starting workers, the helper thread's chores, the
main thread's side. What a worker does for its job, step by step, is in `steps.py`.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable

from ..formats import limits, meshfile
from ..formats.bake import BakeTarget
from ..net import inflight
from ..providers.base import Canceled, Provider, ProviderError, TimedOut
from . import bake_step
from .gate import QUEUE_HINT_MIN_S, QUEUE_WAIT_S, RECOVER_S, Gate  # (issue 12)
from .intake import limits_of
from .job import Job, State
from .journal import Journal
from .steps import (
    HEAVY_WORK,
    MAX_POLL_FAILURES,
    MAX_UNKNOWN_POLLS,
    JobSteps,
    Killed,
    Slot,
    copy_job,
)

__all__ = ["MAX_POLL_FAILURES", "MAX_UNKNOWN_POLLS", "WORKER_NICENESS", "Runner"]

log = logging.getLogger(__name__)


class Runner(JobSteps):
    """Starts, watches and stops the workers of every job of the session."""

    def __init__(
        self,
        journal: Journal,
        limits: dict[str, int] | None = None,
    ) -> None:
        self.journal = journal
        self.limits = dict(limits or {})
        self._events: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
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
        self.queue_hint_min_s = QUEUE_HINT_MIN_S

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
            self._events.put(copy_job(job))
            return
        if job.state is State.READY:
            self._events.put(copy_job(job))  # the main thread applies it
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

    def take_mesh(self, job_id: str, role: str) -> meshfile.MeshArrays | None:
        """The arrays a worker read from a job's returned mesh, once (None after a restart:
        then the prepared file beside the mesh is read)."""
        return self._meshes.pop((job_id, role), None)  # atomic under the GIL

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

    # ---- threads: the helper's chores, each job's worker -------------------------------------

    def _launch(
        self, job: Job, provider: Provider, mesh: meshfile.MeshArrays | None = None
    ) -> None:
        """Register the job's slot now (so `free_slots` counts it) and let the helper thread
        start its worker: `Thread.start()` waits for the new thread to get the GIL, which with
        dozens of busy workers can cost the main thread milliseconds."""
        slot = Slot(job=job, provider=provider, mesh=mesh)
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
        snapshot = copy_job(job)

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

    def _work(self, slot: Slot) -> None:
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
        except Killed:
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
