"""Scenario through the real runner against the Scenario emulator (pure Python, no Blender).

Figures: requests per job (by kind), wall time for 8 objects vs 1 (the provider's concurrency
limit in effect), seconds the extension adds beyond the service's own job times. The emulator
runs every image job and every map job for a fixed time; the provider runs with its shipped
settings (poll every 3 s, at most 4 jobs in flight), so the figures are what an artist would see.

    .venv/bin/python bench/bench_scenario.py
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

from emulators.scenario import TEXTURE, TXT2IMG, ScenarioEmulator  # noqa: E402
from text_to_texture.jobs.job import Job, State, new_job_id  # noqa: E402
from text_to_texture.jobs.journal import Journal  # noqa: E402
from text_to_texture.jobs.runner import Runner  # noqa: E402
from text_to_texture.providers.base import ProviderConfig, TextureRequest  # noqa: E402
from text_to_texture.providers.scenario import ScenarioProvider  # noqa: E402

IMAGE_SECONDS = 3.0  # the txt2img job
MAPS_SECONDS = 3.0  # each map job
MAP_SIZE = 512
KINDS = {  # label -> (method, path regex)
    "create": ("POST", f"({TXT2IMG}|{TEXTURE})$"),
    "job status": ("GET", "/jobs/"),
    "asset reads": ("GET", "/assets/"),
    "model": ("GET", "/models/"),
    "downloads": ("GET", "^/files/"),
}


def _batch(emu: ScenarioEmulator, count: int, work: Path, pbr: bool,
           samples: int = 1) -> dict[str, Any]:
    """Texture `count` objects at once; per-job timings from the runner's own snapshots."""
    emu.reset()
    tag = f"{count}-{pbr}-{samples}"
    runner = Runner(Journal(work / f"journal-{tag}"))
    config = ProviderConfig(api_key=emu.api_key, api_base=f"{emu.url}/v1", extras={
        "api_secret": emu.api_secret, "model_id": emu.default_model})
    jobs: list[Job] = []
    start = time.monotonic()
    for i in range(count):
        jid = new_job_id()
        req = TextureRequest(job_id=jid, prompt="worn leather", enable_pbr=pbr, seed=i,
                             out_dir=str(work / f"maps-{tag}"), file_stem=f"obj{i}",
                             options={"samples": samples})
        jobs.append(Job(id=jid, provider="SCENARIO", object_name=f"obj{i}", request=req))
        runner.start(jobs[-1], ScenarioProvider(config))
    sent: dict[str, float] = {}
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
        if now - start > 180:
            raise RuntimeError("benchmark jobs did not finish")
        time.sleep(0.002)
    service = IMAGE_SECONDS + (MAPS_SECONDS if pbr else 0.0)
    added = [ready[j.id] - sent[j.id] - service for j in jobs]
    by_kind = {label: emu.count(method, path) / count for label, (method, path) in KINDS.items()}
    return {
        "objects": count,
        "pbr": pbr,
        "samples": samples,
        "wall_s": max(ready.values()) - start,
        "requests_per_job": emu.count() / count,
        "by_kind": by_kind,
        "added_s_mean": statistics.mean(added),
        "added_s_max": max(added),
    }


CASES: tuple[tuple[int, bool, int], ...] = (
    (1, True, 1), (8, True, 1), (1, False, 1), (8, False, 1), (1, True, 3),
)


def run(cases: tuple[tuple[int, bool, int], ...] = CASES) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="t2t-bench-scenario-") as tmp, ScenarioEmulator(
        job_seconds=IMAGE_SECONDS, texture_seconds=MAPS_SECONDS, pending_seconds=0.0,
        map_size=MAP_SIZE, creative_units=10**7,
    ) as emu:
        for count, pbr, samples in cases:
            rows.append(_batch(emu, count, Path(tmp), pbr, samples))
    return {"rows": rows}


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Scenario via the runner against the emulator (image job {IMAGE_SECONDS:.0f} s, map "
        f"job {MAPS_SECONDS:.0f} s, poll every {ScenarioProvider.poll_interval:.0f} s, at most "
        f"{ScenarioProvider.max_concurrency} jobs in flight; added = sending to maps on disk, "
        "minus the service's job times)",
        "",
        "| objects | PBR | samples | wall time | requests / job | create | job status | asset "
        "reads | model | downloads | added per job (mean / max) |",
        "|---:|:--:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        k = r["by_kind"]
        lines.append(
            f"| {r['objects']} | {'on' if r['pbr'] else 'off'} | {r['samples']} "
            f"| {r['wall_s']:.2f} s | {r['requests_per_job']:.1f} | {k['create']:.1f} "
            f"| {k['job status']:.1f} | {k['asset reads']:.1f} | {k['model']:.2f} "
            f"| {k['downloads']:.1f} | {r['added_s_mean']:.2f} s / {r['added_s_max']:.2f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    print(table(run()))


if __name__ == "__main__":
    main()
