"""Soak: 200 jobs across the four provider emulators with random faults, through the installed
extension in Blender (`make soak`; `make test` leaves it out).

Several rounds; in each, one batch per provider (a press of the button: `BatchRun` on new
objects in the scene) runs alongside the others while a seeded plan injects faults through the
emulators' knobs: 429 bursts, 500s and dropped connections on creates and status reads,
truncated downloads, windows in which new tasks end FAILED, and one round whose DRESSX webhooks
never come (with a short timeout). Transient faults come in bursts smaller than the retry budget
and must be absorbed; fatal ones (a 500 or a dropped connection answering a create, a FAILED
task, a missing webhook) must fail exactly the job they hit, with one clear line. Which job a
fault hit is read back from the emulators' own records (request bodies, task ids in paths).

The seed is printed; `SOAK_SEED=<seed> make soak` replays the same plan (thread timing still
decides which job a burst hits, and the expected outcome follows from what really happened).
`SOAK_JOBS` changes the number of jobs (default 200).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from emulators.base import guard_loopback
from emulators.dressx import CREATE as DRESSX_CREATE
from emulators.dressx import DressxEmulator
from emulators.glb import read_glb
from emulators.meshy import RETEXTURE, TASKS, MeshyEmulator
from emulators.scenario import TXT2IMG, ScenarioEmulator
from emulators.triverse import TriverseEmulator
from t2t_testing import installed

JOBS = int(os.environ.get("SOAK_JOBS") or 200)
SEED = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(1, 2**31))
ROUNDS = 4
PROVIDERS = ("MESHY", "TRIVERSE", "DRESSX", "SCENARIO")
JOB_SECONDS = 1.0  # every emulator's task time (Scenario: half for the image, half for maps)
SILENT_TIMEOUT_S = 3  # DRESSX "give up after" for the round whose webhooks never come
ROUND_LIMIT_S = 150.0  # a round that takes longer has a stuck job: fail, do not hang
# A run with CPU hogs beside it (`make soak-series`) gets this limit once more per hog: its
# bakes run at a lower priority than the hogs, so a round of 25 Triverse results, each baked
# onto its object, takes about 200 s there instead of about 30 s (seed 536662957).
CPU_HOGS = int(os.environ.get("SOAK_CPU_HOGS") or 0)
# Per-job ceilings on what a job may cost at a service (bounded retries).
MAX_CREATES = 4  # the first try and 3 retries of a 429 (a 500/drop on a create: exactly 1)
MAX_STATUS_READS = 80  # polls every 0.05 s of a ~1 s job, with bursts of retried errors
MAX_FILE_GETS = 3  # each file: the first try and 2 retries of a cut-off transfer
LOG_PREFIX = "bl_ext.user_default.text_to_texture"

MESHY_CREATE = rf"^{re.escape(RETEXTURE)}$"
MESHY_STATUS = rf"^{re.escape(TASKS)}/[^/]+$"
TRIVERSE_CREATE = r"^/tasks/text-to-texture$"
TRIVERSE_STATUS = r"^/tasks/[0-9a-f-]{36}$"
DRESSX_CREATE_PATH = rf"^{re.escape(DRESSX_CREATE)}$"
SCENARIO_CREATE = rf"{re.escape(TXT2IMG)}$"
SCENARIO_JOBS = r"/jobs/[^/]+$"


# --------------------------------------------------------------------------- emulators


@dataclass
class Hit:
    """One request a fault knob answered, with its body (to tell whose it was)."""

    method: str
    path: str
    kind: str  # status | drop | truncate
    status: int
    body: bytes


class Tracing:
    """Mixin: remember every request a fault hit (the base emulator records only the kind)."""

    lock: threading.RLock

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.hits: list[Hit] = []
        self._tl = threading.local()
        super().__init__(*args, **kwargs)

    def _take_fault(self, method: str, path: str, is_file: bool) -> Any:
        fault = super()._take_fault(method, path, is_file)  # type: ignore[misc]
        if fault is not None:
            self._tl.hit = (fault.kind, fault.status)
        return fault

    def dispatch(self, method: str, target: str, raw_headers: dict[str, str],
                 raw: bytes) -> Any:
        self._tl.hit = None
        resp = super().dispatch(method, target, raw_headers, raw)  # type: ignore[misc]
        if self._tl.hit is not None:
            kind, status = self._tl.hit
            with self.lock:
                self.hits.append(Hit(method, urlsplit(target).path, kind, status, raw))
        return resp


class SoakMeshy(Tracing, MeshyEmulator):
    pass


class SoakTriverse(Tracing, TriverseEmulator):
    pass


class SoakDressx(Tracing, DressxEmulator):
    pass


class SoakScenario(Tracing, ScenarioEmulator):
    pass


def fatal_create(hit: Hit, create: str) -> bool:
    """A create answered by a 5xx or a dropped connection: the client cannot know whether the
    task exists, so it must fail the job without sending it again."""
    return (hit.method == "POST" and re.search(create, hit.path) is not None
            and (hit.kind == "drop" or (hit.kind == "status" and hit.status >= 500)))


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Burst:
    name: str
    target: str  # bursts of one target are never outstanding together
    fire: Callable[[Any, int], None]
    counts: tuple[int, int]  # how many requests it hits (at most the retry budget)
    cooldown: float  # after it is used up, before the next burst of its target


MENUS: dict[str, list[Burst]] = {
    "MESHY": [
        Burst("429 burst on create", "create",
              lambda e, n: e.fail_next(429, n, method="POST", path=MESHY_CREATE), (1, 3), 5.0),
        Burst("500 on create", "create",
              lambda e, n: e.fail_next(500, n, method="POST", path=MESHY_CREATE), (1, 1), 1.0),
        Burst("dropped create", "create",
              lambda e, n: e.drop_next(n, method="POST", path=MESHY_CREATE), (1, 1), 1.0),
        Burst("500s on status", "status",
              lambda e, n: e.fail_next(500, n, method="GET", path=MESHY_STATUS), (1, 3), 1.0),
        Burst("429 burst on status", "status",
              lambda e, n: e.fail_next(429, n, method="GET", path=MESHY_STATUS), (1, 3), 5.0),
        Burst("dropped status reads", "status",
              lambda e, n: e.drop_next(n, method="GET", path=MESHY_STATUS), (1, 3), 1.0),
        Burst("truncated downloads", "download",
              lambda e, n: e.truncate_downloads(n, path=r"^/assets/"), (1, 2), 1.0),
    ],
    "TRIVERSE": [
        Burst("upload rate limit (2000)", "upload",
              lambda e, n: e.fail_code(2000, n, method="POST", path=r"^/upload/model$"),
              (1, 3), 1.0),
        Burst("500s on create", "create",
              lambda e, n: e.fail_next(500, n, method="POST", path=TRIVERSE_CREATE), (1, 3), 1.0),
        Burst("lost create answers", "create", lambda e, n: e.lose_create_answers(n), (1, 2), 1.0),
        Burst("500s on status", "status",
              lambda e, n: e.fail_next(500, n, method="GET", path=TRIVERSE_STATUS), (1, 3), 1.0),
        Burst("dropped status reads", "status",
              lambda e, n: e.drop_next(n, method="GET", path=TRIVERSE_STATUS), (1, 3), 1.0),
        Burst("truncated result downloads", "download",
              lambda e, n: e.truncate_downloads(n, path=r"^/storage/results/"), (1, 2), 1.0),
    ],
    "DRESSX": [
        Burst("429 burst on create", "create",
              lambda e, n: e.fail_next(429, n, method="POST", path=DRESSX_CREATE_PATH),
              (1, 3), 5.0),
        Burst("500 on create", "create",
              lambda e, n: e.fail_next(500, n, method="POST", path=DRESSX_CREATE_PATH),
              (1, 1), 1.0),
        Burst("dropped create", "create",
              lambda e, n: e.drop_next(n, method="POST", path=DRESSX_CREATE_PATH), (1, 1), 1.0),
        Burst("truncated downloads", "download",
              lambda e, n: e.truncate_downloads(n, path=r"^/v1/files/files/texture/"),
              (1, 2), 1.0),
    ],
    "SCENARIO": [
        Burst("429 burst on create", "create",
              lambda e, n: e.rate_limit_next(n, 0.2, method="POST", path=SCENARIO_CREATE),
              (1, 3), 2.0),
        Burst("429 burst on job reads", "status",
              lambda e, n: e.rate_limit_next(n, 0.2, method="GET", path=SCENARIO_JOBS),
              (1, 3), 2.0),
        Burst("500s on job reads", "status",
              lambda e, n: e.fail_next(500, n, method="GET", path=SCENARIO_JOBS), (1, 3), 1.0),
        Burst("dropped job reads", "status",
              lambda e, n: e.drop_next(n, method="GET", path=SCENARIO_JOBS), (1, 3), 1.0),
        Burst("truncated downloads", "download",
              lambda e, n: e.truncate_downloads(n, path=r"^/files/"), (1, 2), 1.0),
    ],
}


@dataclass
class Event:
    at: float  # seconds into the round
    provider: str
    burst: Burst
    count: int


@dataclass
class Window:
    """New tasks end FAILED with `message` between `start` and `end` (seconds into the round)."""

    provider: str
    start: float
    end: float
    message: str
    on: bool = False


@dataclass
class Round:
    index: int
    sizes: dict[str, int]
    events: list[Event]
    windows: list[Window]
    silent: bool  # this round's DRESSX webhooks never come


def make_plan(rng: random.Random, jobs: int) -> list[Round]:
    batches = ROUNDS * len(PROVIDERS)
    sizes = [jobs // batches] * batches
    for i in rng.sample(range(batches), jobs % batches):
        sizes[i] += 1
    for _ in range(batches):  # unequal batches, same total
        a, b = rng.randrange(batches), rng.randrange(batches)
        move = rng.randint(0, max(0, sizes[a] - 4))
        sizes[a] -= move
        sizes[b] += move
    silent_round = rng.randrange(ROUNDS)
    rounds = []
    for r in range(ROUNDS):
        by = dict(zip(PROVIDERS, sizes[r * len(PROVIDERS):(r + 1) * len(PROVIDERS)]))
        if r == silent_round:  # small: each of its jobs waits out the timeout
            spare = max(0, by["DRESSX"] - rng.randint(3, 5))
            by["DRESSX"] -= spare
            by["MESHY"] += spare
        events = []
        windows = []
        for pid in PROVIDERS:
            for _ in range(rng.randint(4, 8)):
                burst = rng.choice(MENUS[pid])
                events.append(Event(round(rng.uniform(0.0, 7.0), 2), pid, burst,
                                    rng.randint(*burst.counts)))
            if rng.random() < 0.75:
                start = round(rng.uniform(0.0, 4.0), 2)
                windows.append(Window(pid, start, round(start + rng.uniform(0.3, 2.0), 2),
                                      f"Soak failure {r}.{pid.lower()}: the model crashed"))
        events.sort(key=lambda e: e.at)
        rounds.append(Round(r, by, events, windows, r == silent_round))
    return rounds


def describe(plan: list[Round]) -> str:
    lines = []
    for rnd in plan:
        lines.append(f"round {rnd.index}: " + ", ".join(f"{p} {n}" for p, n in rnd.sizes.items())
                     + (" (DRESSX webhooks never come)" if rnd.silent else ""))
        for e in rnd.events:
            lines.append(f"  {e.at:5.2f} s {e.provider}: {e.burst.name} x{e.count}")
        for w in rnd.windows:
            lines.append(f"  {w.start:5.2f}-{w.end:.2f} s {w.provider}: new tasks FAILED")
    return "\n".join(lines)


# --------------------------------------------------------------------------- driving a round


@dataclass
class Injector:
    """Fires a round's events when their time comes and their target is free."""

    emus: dict[str, Any]
    pending: list[Event] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    live: dict[tuple[str, str], Any] = field(default_factory=dict)  # (pid, target) -> fault
    free_at: dict[tuple[str, str], float] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)

    def start_round(self, rnd: Round) -> None:
        self.pending = list(rnd.events)
        self.windows = list(rnd.windows)

    def step(self, elapsed: float) -> None:
        now = time.monotonic()
        for key, fault in list(self.live.items()):
            if _used_up(self.emus[key[0]], fault):
                del self.live[key]
                self.free_at[key] = now + fault.cooldown
        for event in list(self.pending):
            key = (event.provider, event.burst.target)
            if event.at > elapsed or key in self.live or self.free_at.get(key, 0) > now:
                continue
            emu = self.emus[event.provider]
            with emu.lock:
                before = len(emu.faults)
                event.burst.fire(emu, event.count)
                added = emu.faults[before:]
            self.live[key] = _Live(added, event.burst.cooldown)
            self.pending.remove(event)
            self.fired.append(f"{elapsed:5.2f} s {event.provider}: {event.burst.name} "
                              f"x{event.count}")
        for w in list(self.windows):
            emu = self.emus[w.provider]
            if w.start <= elapsed and not w.on:
                emu.fail_tasks(w.message)
                w.on = True
                self.fired.append(f"{elapsed:5.2f} s {w.provider}: FAILED tasks on")
            if w.end <= elapsed and w.on:
                emu.fail_tasks("")
                self.windows.remove(w)
                self.fired.append(f"{elapsed:5.2f} s {w.provider}: FAILED tasks off")

    def finish_round(self) -> None:
        for w in self.windows:
            if w.on:
                self.emus[w.provider].fail_tasks("")
        self.windows = []
        self.pending = []  # events a short round had no time for


@dataclass
class _Live:
    faults: list[Any]  # the Fault objects a burst added ([] for Triverse's lost answers)
    cooldown: float


def _used_up(emu: Any, live: _Live) -> bool:
    with emu.lock:
        if not live.faults:  # lose_create_answers: a counter
            return getattr(emu, "lose_creates", 0) == 0
        return all(f.count == 0 for f in live.faults)


# --------------------------------------------------------------------------- fixtures


def _fast(monkeypatch: pytest.MonkeyPatch, pid: str, module: str, name: str,
          **attrs: Any) -> None:
    """The shipped provider with test-sized waits (polls every 0.05 s, quick retries);
    everything else, retry counts included, is as shipped."""
    http = installed("net.http")
    base = getattr(installed(f"providers.{module}"), name)
    init_kw = attrs.pop("init", {})

    class Fast(base):  # type: ignore[misc, valid-type]
        poll_interval = 0.05

        def __init__(self, config: Any, **kw: Any) -> None:
            kw.setdefault("retry", http.RetryPolicy(retries=3, base=0.01, cap=0.05))
            for key, value in init_kw.items():
                kw.setdefault(key, value)
            super().__init__(config, **kw)

    for key, value in attrs.items():
        setattr(Fast, key, value)
    monkeypatch.setitem(installed("providers.registry").PROVIDERS, pid, Fast)


@pytest.fixture()
def services(blender, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    guard_loopback(monkeypatch)
    emus: dict[str, Any] = {
        "MESHY": SoakMeshy(job_seconds=JOB_SECONDS, balance=10**6),
        # The upload limit (10 a minute) is lifted on both sides: 50 uploads would take five
        # minutes; code-2000 refusals are injected instead.
        "TRIVERSE": SoakTriverse(job_seconds=JOB_SECONDS, credits=10**7, upload_limit=10**4,
                                 queue_limit=64),
        "DRESSX": SoakDressx(job_seconds=JOB_SECONDS, balance=10**6),
        "SCENARIO": SoakScenario(job_seconds=JOB_SECONDS / 2, texture_seconds=JOB_SECONDS / 2,
                                 creative_units=10**9),
    }
    for emu in emus.values():
        emu.start()
        for var, value in emu.env().items():
            monkeypatch.setenv(var, value)
    monkeypatch.setenv("DRESSX_PUBLIC_URL", "http://127.0.0.1:{port}")  # stands in for a tunnel
    monkeypatch.setenv("DRESSX_LOCAL_PORT", "0")
    monkeypatch.setattr(installed("providers.meshy.provider"), "_facts", {})
    _fast(monkeypatch, "MESHY", "meshy", "MeshyProvider")
    _fast(monkeypatch, "TRIVERSE", "triverse", "TriverseProvider", upload_limit=10**4,
          init={"rate_limit_wait": 0.05})
    _fast(monkeypatch, "DRESSX", "dressx", "DressxProvider")
    _fast(monkeypatch, "SCENARIO", "scenario", "ScenarioProvider")
    blender.context.preferences.system.use_online_access = True
    try:
        yield emus
    finally:
        blender.context.preferences.system.use_online_access = False
        for emu in emus.values():
            emu.stop()


class Spies:
    """Whatever would reach Blender: uncaught exceptions (main or worker threads) and the
    extension's own ERROR log records (a worker's "unexpected error" is logged so)."""

    def __init__(self) -> None:
        self.uncaught: list[str] = []
        self.errors: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def excepthook(kind, value, tb):  # type: ignore[no-untyped-def]
            self.uncaught.append(f"{kind.__name__}: {value}")

        def thread_hook(args):  # type: ignore[no-untyped-def]
            name = args.thread.name if args.thread else "?"
            self.uncaught.append(f"{name}: {args.exc_type.__name__}: {args.exc_value}")

        monkeypatch.setattr(sys, "excepthook", excepthook)
        monkeypatch.setattr(threading, "excepthook", thread_hook)
        spies = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                spies.errors.append(f"{record.name}: {record.getMessage()}")

        self.handler = Handler(logging.ERROR)
        logging.getLogger(LOG_PREFIX).addHandler(self.handler)


# --------------------------------------------------------------------------- the test


def test_soak(blender, services, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    bpy = blender
    emus = services
    rng = random.Random(SEED)
    plan = make_plan(rng, JOBS)
    print(f"\nsoak seed {SEED} (replay: SOAK_SEED={SEED} make soak)\n{describe(plan)}",
          flush=True)
    ctx = f"[soak seed {SEED}]"
    spies = Spies()
    spies.install(monkeypatch)
    try:
        problems, outcome = _run_soak(bpy, emus, plan, spies, ctx, monkeypatch)
    finally:
        logging.getLogger(LOG_PREFIX).removeHandler(spies.handler)
    assert not problems, f"{ctx} {len(problems)} problem(s):\n" + "\n".join(problems[:40])
    assert sum(outcome.values()) == JOBS, (ctx, outcome)
    print(f"soak {ctx}: {dict(outcome)}; every job as its faults imply", flush=True)


def _stuck_report(eng: Any, stuck: list[str]) -> str:
    """What a failing run's log needs to find why jobs did not end: each provider's gate (limit,
    jobs at the service, refusals, places taken) and the stuck jobs' own exchange logs."""
    runner = eng.runner
    lines = [f"stuck: {len(stuck)} jobs"]
    for pid in PROVIDERS:
        limit, inside, refusals = runner.gate_facts(pid)
        lines.append(f"gate {pid}: limit {limit}, inside {inside}, refusals {refusals}, "
                     f"taken {runner._taken.get(pid, 0)}")
    for job_id in stuck[:8]:
        job = eng.jobs[job_id]
        lines.append(f"-- {job.provider} {job.object_name} {job.state.value} {job.message}")
        path = runner.journal.exchanges_path(job_id)
        if path.exists():
            lines.extend("   " + ln for ln in path.read_text(errors="replace").splitlines()[-15:])
    return "\n".join(lines)


def _run_soak(bpy: Any, emus: dict[str, Any], plan: list[Round], spies: Spies, ctx: str,
              monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Counter[str]]:
    """Runs every round; returns what the checks after the run found wrong, and how each job
    ended (the test asserts both)."""
    gen = installed("blender.batch")
    eng = installed("blender.engine").engine()
    settings = bpy.context.scene.text_to_texture
    settings.prompt = "weathered bronze with green patina"
    settings.resolution = "1024"
    injector = Injector(emus)
    batches: list[tuple[int, str, Any]] = []  # (round, provider, BatchRun)
    silent_jobs: set[str] = set()
    t_start = time.monotonic()
    for rnd in plan:
        emus["DRESSX"].webhook = "never" if rnd.silent else "normal"
        injector.start_round(rnd)
        runs = []
        order = list(PROVIDERS)
        random.Random(SEED + rnd.index).shuffle(order)
        for pid in order:
            objs = []
            for i in range(rnd.sizes[pid]):
                bpy.ops.mesh.primitive_cube_add(location=(3 * i, 4 * PROVIDERS.index(pid),
                                                          4 * rnd.index))
                obj = bpy.context.active_object
                obj.name = f"R{rnd.index}_{pid.title()}_{i:02d}"
                objs.append(obj)
            if not objs:
                continue
            settings.provider = pid
            if pid == "DRESSX":  # read when the jobs are made: only this round's give up soon
                monkeypatch.setenv("DRESSX_TIMEOUT_S",
                                   str(SILENT_TIMEOUT_S) if rnd.silent else "300")
            run = gen.BatchRun(bpy.context.scene, objs)
            assert len(run.job_ids) == len(objs), (ctx, pid, run.batch.skipped)
            if pid == "DRESSX" and rnd.silent:
                silent_jobs.update(run.job_ids)
            runs.append(run)
            batches.append((rnd.index, pid, run))
        ids = [j for run in runs for j in run.job_ids]
        t0 = time.monotonic()
        while True:
            injector.step(time.monotonic() - t0)
            runs[0].tick()  # the engine's tick, as the modal operator's timer calls it
            if all(eng.jobs[j].state.terminal for j in ids):
                break
            if time.monotonic() - t0 > ROUND_LIMIT_S * (1 + CPU_HOGS):
                stuck = [f"{eng.jobs[j].provider} {eng.jobs[j].object_name}: "
                         f"{eng.jobs[j].state.value} {eng.jobs[j].message}"
                         for j in ids if not eng.jobs[j].state.terminal]
                print(_stuck_report(eng, [j for j in ids if not eng.jobs[j].state.terminal]),
                      flush=True)
                pytest.fail(f"{ctx} round {rnd.index} did not end ({len(stuck)} jobs): "
                            f"{stuck[:5]}")
            time.sleep(0.02)
        injector.finish_round()
        print(f"round {rnd.index}: {len(ids)} jobs in {time.monotonic() - t0:.1f} s; "
              f"{Counter(eng.jobs[j].state.value for j in ids)}", flush=True)
    print("fired:\n  " + "\n  ".join(injector.fired), flush=True)
    print(f"soak: {len(eng.jobs)} jobs in {time.monotonic() - t_start:.0f} s", flush=True)

    # The engine keeps ticking after all that, with nothing left to do.
    for _ in range(3):
        assert eng.tick().active == 0, ctx
    _check_threads_and_server(ctx)
    assert not spies.uncaught, (ctx, spies.uncaught)
    assert not spies.errors, (ctx, spies.errors)

    records = list(settings.jobs)
    assert len(records) == JOBS, (ctx, len(records))
    keys = _secrets(emus)
    fatal = Fatal(emus)
    problems = []
    for rec in records:
        job = eng.jobs[rec.job_id]
        want, why = expected(job, emus, fatal)
        line = f"{job.provider} '{job.object_name}' ({job.remote_id[:12] or 'no task'})"
        if job.state.value != want or why not in job.message:
            problems.append(f"{line}: {job.state.value} '{job.message}', expected {want} "
                            f"with '{why}'")
        for text in (job.message, rec.message, rec.info):
            problem = _unclear(text, keys)
            if problem:
                problems.append(f"{line}: {problem}: {text!r}")
        if want == "applied":
            mat = rec.object.active_material if rec.object else None
            if mat is None or not mat.name.startswith("T2T "):
                problems.append(f"{line}: applied but its object has no T2T material")
        # The journal agrees with the scene.
        entry = eng.journal.load(rec.job_id)
        if entry is None or entry.state.value != rec.state:
            problems.append(f"{line}: scene says {rec.state}, journal "
                            f"{entry.state.value if entry else 'nothing'}")
    problems += _retry_bounds(eng, records, emus, fatal)
    timed_out = [j for j in silent_jobs if "did not report back" in eng.jobs[j].message]
    if silent_jobs and not timed_out and not all(
            installed("providers.dressx").order_for(j) in fatal.dressx for j in silent_jobs):
        problems.append("no DRESSX job of the silent round timed out")
    for _round, pid, run in batches:
        for _level, text in run.report_lines():
            problem = _unclear(text, keys)
            if problem:
                problems.append(f"{pid} report: {problem}: {text!r}")
    problems += _journal_leaks(eng, keys)
    return problems, Counter(eng.jobs[r.job_id].state.value for r in records)


# --------------------------------------------------------------------------- expectations


class Fatal:
    """Who got a create answered by a 5xx or a dropped connection: Meshy objects (named in the
    GLB they sent) and DRESSX orders (in the body)."""

    def __init__(self, emus: dict[str, Any]) -> None:
        self.meshy = {_glb_object(json.loads(hit.body)["model_url"])
                      for hit in emus["MESHY"].hits if fatal_create(hit, MESHY_CREATE)}
        self.dressx = {json.loads(hit.body)["order"]
                       for hit in emus["DRESSX"].hits if fatal_create(hit, DRESSX_CREATE_PATH)}


def expected(job: Any, emus: dict[str, Any], fatal: Fatal) -> tuple[str, str]:
    """(state, text its message must contain), from what the emulator did to this job."""
    pid = job.provider
    emu = emus[pid]
    if pid == "MESHY":
        if job.object_name in fatal.meshy:
            return "failed", "did not confirm the new job"
        task = emu.tasks.get(job.remote_id)
    elif pid == "TRIVERSE":
        task = emu.tasks.get(job.remote_id)
    elif pid == "DRESSX":
        order = installed("providers.dressx").order_for(job.id)
        if order in fatal.dressx:
            return "failed", "did not confirm the new job"
        task = emu.task_for(order)
        if task is not None and not emu.webhooks(order):
            return "failed", f"did not report back within {SILENT_TIMEOUT_S} s"
    else:
        task = emu.tasks.get(job.remote_id)
    if task is None:
        return "applied", "(a task at the service)"  # no task and no fatal fault: a bug
    if task.fail_message:
        if pid == "TRIVERSE":  # a failed task carries an error code (5005 unless one is set);
            return "failed", "(code 5005)"  # documented codes get their own line
        return "failed", task.fail_message
    return "applied", "Applied to"


def _glb_object(data_uri: str) -> str:
    gltf, _ = read_glb(base64.b64decode(data_uri.split(",", 1)[1]))
    (node,) = [n for n in gltf["nodes"] if "mesh" in n]
    return str(node["name"])


def _retry_bounds(eng: Any, records: list[Any], emus: dict[str, Any],
                  fatal: Fatal) -> list[str]:
    """Every job's requests at its service stay within a ceiling; a create that may have
    reached the service is never sent twice."""
    problems = []
    meshy, triverse, dressx, scenario = (emus[p] for p in PROVIDERS)
    meshy_creates = Counter(_glb_object(r.body["model_url"])
                            for r in meshy.recorded("POST", MESHY_CREATE))
    triverse_creates = Counter(r.body.get("client_order_id")
                               for r in triverse.recorded("POST", TRIVERSE_CREATE))
    triverse_tasks = Counter(t.data.get("client_order_id") for t in triverse.tasks.values())
    dressx_creates = Counter(r.body.get("order") for r in dressx.recorded("POST",
                                                                           DRESSX_CREATE_PATH))
    order_for = installed("providers.dressx").order_for
    client_order_id = installed("providers.triverse").client_order_id
    for rec in records:
        job = eng.jobs[rec.job_id]
        rid = job.remote_id
        line = f"{job.provider} '{job.object_name}'"
        counts: dict[str, tuple[int, int]] = {}  # what -> (count, ceiling)
        if job.provider == "MESHY":
            once = job.object_name in fatal.meshy
            counts["creates"] = (meshy_creates[job.object_name], 1 if once else MAX_CREATES)
            if rid:
                counts["status reads"] = (meshy.count("GET", rf"^{TASKS}/{rid}$"),
                                          MAX_STATUS_READS)
                counts["file downloads"] = (meshy.count("GET", rf"^/assets/tasks/{rid}/"),
                                            4 * MAX_FILE_GETS)
        elif job.provider == "TRIVERSE":
            cid = client_order_id(job.id)
            counts["creates"] = (triverse_creates[cid], MAX_CREATES)
            counts["tasks made (charged)"] = (triverse_tasks[cid], 1)
            if rid:
                counts["status reads"] = (triverse.count("GET", rf"^/tasks/{rid}$"),
                                          MAX_STATUS_READS)
                counts["result downloads"] = (triverse.count("GET", rf"/results/{rid}\."),
                                              2 * MAX_FILE_GETS)
        elif job.provider == "DRESSX":
            order = order_for(job.id)
            once = order in fatal.dressx
            counts["creates"] = (dressx_creates[order], 1 if once else MAX_CREATES)
            task = dressx.task_for(order)
            if task is not None:
                counts["file downloads"] = (
                    dressx.count("GET", rf"/texture/{task.id}/"), 4 * MAX_FILE_GETS)
        elif rid:
            counts["status reads"] = (scenario.count("GET", rf"/jobs/{rid}$"), MAX_STATUS_READS)
            for map_job in (job.extra.get("scenario_texture_jobs") or {}).values():
                counts["map job reads"] = (scenario.count("GET", rf"/jobs/{map_job}$"),
                                           MAX_STATUS_READS)
        for what, (count, ceiling) in counts.items():
            if count > ceiling:
                problems.append(f"{line}: {count} {what}, more than {ceiling}")
    jobs = Counter(eng.jobs[r.job_id].provider for r in records)
    creates = scenario.count("POST", SCENARIO_CREATE)
    if creates > MAX_CREATES * jobs["SCENARIO"]:
        problems.append(f"Scenario: {creates} creates for {jobs['SCENARIO']} jobs")
    for pid, emu in emus.items():
        if emu.count() > 60 * max(1, jobs[pid]):
            problems.append(f"{pid}: {emu.count()} requests for {jobs[pid]} jobs")
    return problems


# --------------------------------------------------------------------------- clarity, leaks


def _secrets(emus: dict[str, Any]) -> list[str]:
    keys = [emu.api_key for emu in emus.values()]
    keys.append(emus["SCENARIO"].api_secret)
    return [k for k in keys if k]


def _unclear(text: str, keys: list[str]) -> str:
    """"" when `text` is one clear line an artist can read, else what is wrong with it."""
    if "\n" in text or "\r" in text:
        return "more than one line"
    if "Traceback" in text or 'File "' in text or re.search(r"\b[A-Z]\w*(Error|Exception):",
                                                            text):
        return "traceback text"
    if any(k in text for k in keys):
        return "a key"
    if len(text) > 400:
        return "too long"
    return ""


def _journal_leaks(eng: Any, keys: list[str]) -> list[str]:
    root = Path(eng.journal.root)
    found = []
    for path in root.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        if any(k in text for k in keys):
            found.append(f"journal {path.name} holds a key")
    return found


def _check_threads_and_server(ctx: str) -> None:
    """No worker or local-server thread outlives its jobs; the DRESSX server has stopped."""
    end = time.monotonic() + 5.0
    while True:
        left = [t.name for t in threading.enumerate() if t.name.startswith("t2t-")]
        if not left or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert not left, (ctx, "threads left running", left)
    server = installed("net.local_server").current()
    assert server is None or not server.running, (ctx, "the DRESSX local server still runs")
