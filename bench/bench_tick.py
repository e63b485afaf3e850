"""Main-thread cost: time per timer tick with N jobs in flight, and apply time per object.

Runs the installed extension in `bpy`, every tick timed as the modal operator's timer runs it,
with N jobs in flight at once (see `_cloudlike_provider`).

    python bench/bench_tick.py [N] [RESOLUTION]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SCRATCH = Path(tempfile.mkdtemp(prefix="t2t-bench-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_SCRATCH / "blender-user")
os.environ["TEXT_TO_TEXTURE_DATA_DIR"] = str(_SCRATCH / "data")
sys.path.insert(0, str(ROOT / "tools"))

import ext_dev  # noqa: E402


def _cloudlike_provider(job_seconds: float):  # type: ignore[no-untyped-def]
    """The offline provider made to behave like a cloud one: each job "runs" remotely for
    `job_seconds` (its worker sleeps between polls) and its maps then arrive as files (copies of
    one pre-made set), so what is timed is the extension's own main-thread work."""
    base = ext_dev.installed("providers.procedural").ProceduralProvider
    rs = ext_dev.installed("providers.base")
    made: dict[int, dict[str, str]] = {}
    lock = threading.Lock()

    class CloudLike(base):  # type: ignore[misc, valid-type]
        max_concurrency = 64
        poll_interval = 0.1
        _start: dict[str, float] = {}

        def submit(self, request, cancel):  # type: ignore[no-untyped-def]
            rid = super().submit(request, cancel) + request.job_id
            self._start[rid] = time.monotonic()
            return rid

        def poll(self, remote_id, request, cancel):  # type: ignore[no-untyped-def]
            age = time.monotonic() - self._start[remote_id]
            if age < job_seconds:
                return rs.RemoteStatus(rs.RemoteState.RUNNING, age / job_seconds)
            return super().poll(remote_id, request, cancel)

        def fetch(self, remote_id, status, request, cancel, progress):  # type: ignore[no-untyped-def]
            with lock:
                if request.resolution not in made:
                    proto = rs.TextureRequest(**{**request.to_dict(),
                                                 "file_stem": f"proto{request.resolution}"})
                    made[request.resolution] = super().fetch(remote_id, status, proto, cancel,
                                                             progress)
            out = {}
            for role, path in made[request.resolution].items():
                dest = Path(request.out_dir) / f"{request.file_stem}_{role}.png"
                shutil.copyfile(path, dest)
                out[role] = str(dest)
            return out

    return CloudLike


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def run(n_jobs: int = 20, job_seconds: float = 3.0, resolution: str = "2048") -> dict:
    import bpy

    ext_dev.install(ext_dev.build_zip(_SCRATCH / "dist"))
    registry = ext_dev.installed("providers.registry")
    registry.PROVIDERS["PROCEDURAL"] = _cloudlike_provider(job_seconds)
    bpy.ops.wm.read_homefile(use_empty=True)
    objs = []
    for i in range(n_jobs):
        bpy.ops.mesh.primitive_cube_add(location=(i * 3, 0, 0))
        objs.append(bpy.context.active_object)
    settings = bpy.context.scene.text_to_texture
    settings.prompt = "weathered bronze with green patina"
    settings.resolution = resolution
    gen = ext_dev.installed("operators.generate")
    eng_mod = ext_dev.installed("blender.engine")

    applies: list[float] = []
    original_apply = eng_mod.Engine._apply

    def timed_apply(self, job):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        original_apply(self, job)
        applies.append(time.perf_counter() - t)

    eng_mod.Engine._apply = timed_apply
    t0 = time.perf_counter()
    batch = gen.BatchRun(bpy.context.scene, objs)
    create_s = time.perf_counter() - t0
    ticks: list[float] = []
    in_flight_ticks: list[float] = []
    eng = eng_mod.engine()
    while True:
        t = time.perf_counter()
        more = batch.tick()
        dt = time.perf_counter() - t
        ticks.append(dt)
        if sum(1 for j in eng.jobs.values() if j.state.in_flight) >= n_jobs * 0.9:
            in_flight_ticks.append(dt)
        if not more:
            break
        time.sleep(0.1)  # the modal operator's timer interval
    eng_mod.Engine._apply = original_apply
    states = [r.state for r in settings.jobs]
    ms = 1000.0
    return {
        "jobs": n_jobs,
        "all_applied": all(s == "applied" for s in states),
        "ticks": len(ticks),
        "tick_median_ms": statistics.median(ticks) * ms,
        "tick_p99_ms": percentile(ticks, 0.99) * ms,
        "tick_max_ms": max(ticks) * ms,
        "inflight_ticks": len(in_flight_ticks),
        "inflight_median_ms": statistics.median(in_flight_ticks) * ms if in_flight_ticks else 0,
        "inflight_p99_ms": percentile(in_flight_ticks, 0.99) * ms if in_flight_ticks else 0,
        "inflight_max_ms": max(in_flight_ticks) * ms if in_flight_ticks else 0,
        "apply_median_ms": statistics.median(applies) * ms,
        "apply_max_ms": max(applies) * ms,
        "create_jobs_ms": create_s * ms,
        "resolution": int(resolution),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    res = sys.argv[2] if len(sys.argv) > 2 else "2048"
    r = run(n, resolution=res)
    print("| figure | value |\n|---|---|")
    for key, value in r.items():
        print(f"| {key} | {value:.2f} |" if isinstance(value, float) else f"| {key} | {value} |")


if __name__ == "__main__":
    main()
