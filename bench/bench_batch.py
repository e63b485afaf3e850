"""Batch scaling: 1, 8 and 32 objects through the real Blender path against the Meshy emulator.

The installed extension zip in `bpy`, one press of the button (`BatchRun`, ticked as the modal
operator's 0.1 s timer ticks it, the first tick 0.1 s after the press: exports on the main
thread, workers submit/poll/download, the main thread applies), the Meshy emulator running
every job for a fixed `JOB_SECONDS`, and Meshy's concurrency limit raised to 8
(`engine().runner.limits["MESHY"] = 8`). Wall time is from the press to the last material
applied; the ideal is `ceil(N / 8) × JOB_SECONDS`.

Two poll schedules are measured: Meshy's shipped one (`Provider.poll_delay`) and the fixed
3 s interval it replaced ("fixed 3 s", the "before"), at the benchmark's 3 s job time and at an
off-grid 4.5 s (real jobs do not end on a multiple of the poll interval).

    .venv/bin/python bench/bench_batch.py [COUNTS…]      e.g. bench_batch.py 1 8 32
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_SCRATCH = Path(tempfile.mkdtemp(prefix="t2t-bench-batch-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_SCRATCH / "blender-user")
os.environ["TEXT_TO_TEXTURE_DATA_DIR"] = str(_SCRATCH / "data")
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))

import ext_dev  # noqa: E402
from emulators.meshy import BALANCE, RETEXTURE, TASKS, MeshyEmulator  # noqa: E402

JOB_SECONDS = 3.0
LIMIT = 8
MAP_SIZE = 1024
TICK_S = 0.1  # the modal operator's timer interval (0.01 s while it applies results)
KINDS = {  # request kind -> path pattern at the Meshy emulator
    "create": rf"^{RETEXTURE}$",
    "status": rf"^{TASKS}/[^/]+$",
    "balance": rf"^{BALANCE}$",
    "download": r"^/assets/",
}


def _kind(path: str) -> str:
    return next((k for k, pat in KINDS.items() if re.search(pat, path)), "other")


def _fixed_interval_provider() -> type:
    """Meshy as it polled before `poll_delay`: every `poll_interval` (3 s), whatever the age."""
    base = ext_dev.installed("providers.meshy").MeshyProvider

    class FixedPoll(base):  # type: ignore[misc, valid-type]
        def poll_delay(self, elapsed: float) -> float:
            return self.poll_interval

    return FixedPoll


def _scene(count: int) -> list[Any]:
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    objs = []
    for i in range(count):
        bpy.ops.mesh.primitive_cube_add(location=(3 * (i % 8), 3 * (i // 8), 0))
        objs.append(bpy.context.active_object)
        objs[-1].name = f"Crate{i:02d}"
    settings = bpy.context.scene.text_to_texture
    settings.provider = "MESHY"
    settings.prompt = "weathered bronze with green patina"
    settings.resolution = "1024"
    return objs


def one_batch(emu: MeshyEmulator, count: int, job_seconds: float, schedule: str) -> dict:
    import bpy

    registry = ext_dev.installed("providers.registry")
    meshy = ext_dev.installed("providers.meshy")
    eng_mod = ext_dev.installed("blender.engine")
    gen = ext_dev.installed("blender.batch")
    registry.PROVIDERS["MESHY"] = (meshy.MeshyProvider if schedule == "shipped"
                                   else _fixed_interval_provider())
    eng_mod.reset_engine()
    emu.reset()
    emu.job_seconds = job_seconds
    objs = _scene(count)
    eng = eng_mod.engine()
    eng.runner.limits["MESHY"] = LIMIT

    seen: dict[str, dict[str, float]] = {}  # job id -> state -> when the worker entered it
    take = eng._take

    def timed_take(snap: Any, result: Any) -> None:
        seen.setdefault(snap.id, {}).setdefault(snap.state.value, snap.updated)
        take(snap, result)

    eng._take = timed_take
    t0 = time.perf_counter()
    batch = gen.BatchRun(bpy.context.scene, objs)
    assert batch.job_ids, batch.batch.skipped
    delay = TICK_S  # the timer fires (the first time 0.1 s after the press), then a tick
    while True:
        time.sleep(delay)
        more = batch.tick()
        delay = eng.next_tick_in()  # the operator's fast timer while results are applied
        if not more:
            break
        if time.perf_counter() - t0 > 60 + 3 * job_seconds * math.ceil(count / LIMIT):
            raise RuntimeError("the batch did not finish")
    wall = time.perf_counter() - t0
    states = Counter(eng.jobs[j].state.value for j in batch.job_ids)
    if states != Counter({"applied": count}):
        raise RuntimeError(f"not all applied: {dict(states)} "
                           f"{[eng.jobs[j].message for j in batch.job_ids][:3]}")
    kinds = Counter(_kind(r.path) for r in emu.recorded())
    ideal = math.ceil(count / LIMIT) * job_seconds
    # Per job: from being sent (submitting) to its maps being on disk (ready), minus the job;
    # then from ready to applied (the main thread's next tick, and the apply itself).
    added = [s["ready"] - s["submitting"] - job_seconds for s in seen.values()]
    to_apply = [eng.jobs[j].updated - seen[j]["ready"] for j in batch.job_ids]
    with emu.lock:
        peak = _peak_concurrency(list(emu.tasks.values()))
    eng_mod.reset_engine()
    return {
        "objects": count, "job_s": job_seconds, "schedule": schedule, "wall_s": wall,
        "ideal_s": ideal, "ratio": wall / ideal,
        "per_job": {k: kinds.get(k, 0) / count for k in (*KINDS, "other")},
        "added_mean_s": statistics.mean(added),
        "apply_wait_s": statistics.mean(to_apply),
        "peak_tasks": peak,
    }


def _peak_concurrency(tasks: list[Any]) -> int:
    events = sorted([(t.created, 1) for t in tasks] + [(t.finished_at(), -1) for t in tasks])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


CASES = [  # (job seconds, schedule)
    (JOB_SECONDS, "shipped"),
    (JOB_SECONDS, "fixed 3 s"),
    (1.5 * JOB_SECONDS, "shipped"),
    (1.5 * JOB_SECONDS, "fixed 3 s"),
]


def run(counts: list[int]) -> list[dict]:
    import bpy

    ext_dev.install(ext_dev.build_zip(_SCRATCH / "dist"))
    bpy.context.preferences.system.use_online_access = True
    rows = []
    with MeshyEmulator(job_seconds=JOB_SECONDS, map_size=MAP_SIZE, balance=10**6,
                       queue_limit=2 * LIMIT) as emu:
        os.environ["MESHY_API_BASE"] = emu.url
        os.environ["MESHY_API_KEY"] = emu.api_key
        for job_seconds, schedule in CASES:
            for count in counts:
                if job_seconds != JOB_SECONDS and count == 8:
                    continue  # the off-grid rows only need 1 and 32
                rows.append(one_batch(emu, count, job_seconds, schedule))
                print(f"# {rows[-1]['objects']} objects, {job_seconds} s jobs, {schedule}: "
                      f"{rows[-1]['wall_s']:.2f} s", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    out = [
        f"> Meshy emulator, jobs of a fixed time, concurrency limit {LIMIT}, {MAP_SIZE}² maps, "
        f"ticked like the modal operator (every {TICK_S:g} s, 0.01 s while results are "
        "applied); requests per job by kind from the "
        "emulator's log; *added* = mean time from sending a job to its maps on disk, minus the "
        "job time (the worker's own timestamps); *ready → applied* = mean wait for the main "
        "thread's tick plus the apply. Target: ratio ≤ 1.15 for 32 objects.",
        "",
        "| objects | job time | poll schedule | wall | ideal | ratio | create | status "
        "| balance | download | added / job | ready → applied | peak tasks |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        p = r["per_job"]
        out.append(
            f"| {r['objects']} | {r['job_s']:.1f} s | {r['schedule']} | {r['wall_s']:.2f} s "
            f"| {r['ideal_s']:.1f} s | {r['ratio']:.3f} | {p['create']:.1f} | {p['status']:.1f} "
            f"| {p['balance']:.1f} | {p['download']:.1f} | {r['added_mean_s']:.2f} s "
            f"| {r['apply_wait_s']:.2f} s | {r['peak_tasks']} |")
    return "\n".join(out)


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [1, 8, 32]
    print(table(run(counts)))


if __name__ == "__main__":
    try:
        main()
    finally:  # the throwaway profile, maps and journal (bpy's own exit skips atexit handlers)
        shutil.rmtree(_SCRATCH, ignore_errors=True)
