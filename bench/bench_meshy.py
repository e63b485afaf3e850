"""Meshy through the real runner against the Meshy emulator (pure Python, no Blender).

Figures: status requests per job; wall time for 8 objects vs 1 (the provider's concurrency
limit in effect); seconds the extension adds beyond the service's own job time. The emulator
runs every job for a fixed `JOB_SECONDS`; the provider runs with its shipped settings (API v2,
polls ramping from 1 s to 3 s, "Jobs at once" 10 on a 10-task plan), so the figures are what an
artist would see.

    .venv/bin/python bench/bench_meshy.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import ext_dev  # noqa: E402

ext_dev.use_source_package()
sys.path.insert(0, str(ROOT / "tests"))

from emulators.glb import cube_glb  # noqa: E402
from emulators.meshy import MeshyEmulator  # noqa: E402
from text_to_texture.jobs.job import Job, State, new_job_id  # noqa: E402
from text_to_texture.jobs.journal import Journal  # noqa: E402
from text_to_texture.jobs.runner import Runner  # noqa: E402
from text_to_texture.providers.base import ProviderConfig, TextureRequest  # noqa: E402
from text_to_texture.providers.meshy import MeshyProvider  # noqa: E402

JOB_SECONDS = 3.0
MAP_SIZE = 512


def _batch(emu: MeshyEmulator, count: int, work: Path, poll_interval: float,
           job_seconds: float) -> dict[str, Any]:
    """Texture `count` objects at once; per-job timings from the runner's own snapshots."""
    emu.reset()
    emu.job_seconds = job_seconds
    runner = Runner(Journal(work / f"journal-{count}-{poll_interval}-{job_seconds}"))
    mesh = work / "cube.glb"
    mesh.write_bytes(cube_glb())
    config = ProviderConfig(api_key=emu.api_key, api_base=emu.url)
    jobs: list[Job] = []
    start = time.monotonic()
    for i in range(count):
        jid = new_job_id()
        req = TextureRequest(job_id=jid, prompt="worn leather", mesh_path=str(mesh),
                             mesh_format="GLB", out_dir=str(work / f"maps-{count}"),
                             file_stem=f"obj{i}")
        jobs.append(Job(id=jid, provider="MESHY", object_name=f"obj{i}", request=req))
        runner.start(jobs[-1], MeshyProvider(config, poll_interval=poll_interval))
    sent: dict[str, float] = {}  # job id -> when it got a slot and was sent
    ready: dict[str, float] = {}
    while len(ready) < count:
        now = time.monotonic()
        for snap in runner.drain():
            if snap.state is State.SUBMITTING:
                sent.setdefault(snap.id, now)
            elif snap.state is State.READY:
                ready.setdefault(snap.id, now)
            elif snap.state.terminal:
                raise RuntimeError(f"job {snap.id} ended {snap.state.value}: {snap.message}")
        if now - start > 120:
            raise RuntimeError("benchmark jobs did not finish")
        time.sleep(0.002)
    wall = max(ready.values()) - start
    added = [ready[j.id] - sent[j.id] - job_seconds for j in jobs]
    with emu.lock:
        task_ids = list(emu.tasks)
    polls = [emu.status_requests(t) for t in task_ids]
    return {
        "job_seconds": job_seconds,
        "objects": count,
        "poll_interval": poll_interval,
        "wall_s": wall,
        "status_requests_per_job": statistics.mean(polls),
        "added_s_mean": statistics.mean(added),
        "added_s_max": max(added),
        "max_in_flight": MeshyProvider.max_concurrency,
        "requests_total": emu.count(),
    }


# (job seconds, objects, poll interval). 3 s jobs end exactly on a 3 s poll: the best case.
# 4.5 s jobs end half an interval before a poll: the average case of real, uneven job times.
CASES: tuple[tuple[float, int, float], ...] = (
    (JOB_SECONDS, 1, MeshyProvider.poll_interval),
    (JOB_SECONDS, 8, MeshyProvider.poll_interval),
    (1.5 * JOB_SECONDS, 1, MeshyProvider.poll_interval),
    (1.5 * JOB_SECONDS, 8, MeshyProvider.poll_interval),
    (1.5 * JOB_SECONDS, 1, 1.0),
)


def run(cases: tuple[tuple[float, int, float], ...] = CASES) -> dict[str, Any]:
    """Run each case against one emulator; returns the figures (also printed by `main`)."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="t2t-bench-meshy-") as tmp, MeshyEmulator(
        job_seconds=JOB_SECONDS, map_size=MAP_SIZE, balance=10**6
    ) as emu:
        for job_seconds, count, interval in cases:
            rows.append(_batch(emu, count, Path(tmp), interval, job_seconds))
    by = {(r["job_seconds"], r["objects"], r["poll_interval"]): r for r in rows}
    one = by.get((JOB_SECONDS, 1, MeshyProvider.poll_interval), rows[0])
    eight = by.get((JOB_SECONDS, 8, MeshyProvider.poll_interval), rows[-1])
    return {
        "rows": rows,
        "status_requests_per_job": one["status_requests_per_job"],
        "wall_1_s": one["wall_s"],
        "wall_8_s": eight["wall_s"],
        "added_s": one["added_s_mean"],
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Meshy via the runner against the emulator (at most {MeshyProvider.max_concurrency} "
        "jobs in flight; added = time from sending to maps on disk, minus the job time)",
        "",
        "| job time | objects | poll every | wall time | status requests / job "
        "| added per job (mean / max) | requests total |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['job_seconds']:.1f} s | {r['objects']} | {r['poll_interval']:.1f} s "
            f"| {r['wall_s']:.2f} s | {r['status_requests_per_job']:.1f} "
            f"| {r['added_s_mean']:.2f} s / {r['added_s_max']:.2f} s | {r['requests_total']} |"
        )
    return "\n".join(lines)


def main() -> None:
    print(table(run()))


if __name__ == "__main__":
    main()
