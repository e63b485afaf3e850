"""Triverse through the real runner against the Triverse emulator (pure Python, no Blender).

Figures: requests per job by kind (uploads, presign, create, status, result link, download,
balance), wall time for 8 objects vs 1, and seconds the extension adds beyond the service's own
job time, in text mode (upload → presigned URL → text-to-texture) and image-guided mode (two
uploads → texture-model). The emulator runs every job for a fixed `JOB_SECONDS`; the provider
runs with its shipped settings (poll every 3 s, "Jobs at once" 10, at most 10 uploads a
minute), so the figures are what an artist would see. Every object has its own mesh; an
image-guided batch shares one reference image, uploaded once.

    .venv/bin/python bench/bench_triverse.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import ext_dev  # noqa: E402

ext_dev.use_source_package()
sys.path.insert(0, str(ROOT / "tests"))

from emulators.glb import cube_glb  # noqa: E402
from emulators.triverse import TriverseEmulator  # noqa: E402
from text_to_texture.formats.imagefile import encode_png  # noqa: E402
from text_to_texture.jobs.job import Job, State, new_job_id  # noqa: E402
from text_to_texture.jobs.journal import Journal  # noqa: E402
from text_to_texture.jobs.runner import Runner  # noqa: E402
from text_to_texture.providers.base import ProviderConfig, TextureRequest  # noqa: E402
from text_to_texture.providers.triverse import TriverseProvider, uploads  # noqa: E402

JOB_SECONDS = 3.0
MAP_SIZE = 512
KINDS = {
    "upload": r"^/upload/(model|image)$",
    "presign": r"^/upload/presigned-get-url$",
    "create": r"^/tasks/(text-to-texture|texture-model)$",
    "status": r"^/tasks/[0-9a-f-]{36}$",
    "result link": r"^/tasks/url/",
    "download": r"^/storage/results/|^/tasks/download/",
    "balance": r"^/users/balance$",
}


def _batch(emu: TriverseEmulator, mode: str, count: int, work: Path) -> dict[str, Any]:
    """Texture `count` objects at once; per-job timings from the runner's own snapshots."""
    emu.reset()
    uploads.UPLOAD_GATE = uploads.UploadGate()  # each case starts with a fresh minute
    uploads.UPLOADED = uploads.UploadedFiles()  # and uploads everything anew
    runner = Runner(Journal(work / f"journal-{mode}-{count}"))
    ref = work / "ref.png"
    ref.write_bytes(encode_png(np.full((256, 256, 3), 120, np.uint8)))
    options = {"reference_image_path": str(ref)} if mode == "image" else {}
    config = ProviderConfig(api_key=emu.api_key, api_base=emu.url)
    jobs: list[Job] = []
    start = time.monotonic()
    for i in range(count):
        jid = new_job_id()
        mesh = work / f"obj{i}.glb"  # every object its own mesh: each is uploaded
        mesh.write_bytes(cube_glb(1.0 + i / 10))
        req = TextureRequest(job_id=jid, prompt="worn leather", mesh_path=str(mesh),
                             mesh_format="GLB", out_dir=str(work / f"maps-{mode}-{count}"),
                             file_stem=f"obj{i}", options=dict(options))
        jobs.append(Job(id=jid, provider="TRIVERSE", object_name=f"obj{i}", request=req))
        runner.start(jobs[-1], TriverseProvider(config))
    sent: dict[str, float] = {}
    ready: dict[str, float] = {}
    while len(ready) < count:
        now = time.monotonic()
        for snap in runner.drain():
            if snap.state is State.BAKING:  # no Blender here: the result keeps its own mesh
                runner.provide_target(snap.id, None, "no object in this benchmark")
            elif snap.state is State.SUBMITTING:
                sent.setdefault(snap.id, now)
            elif snap.state is State.READY:
                ready.setdefault(snap.id, now)
            elif snap.state.terminal:
                raise RuntimeError(f"job {snap.id} ended {snap.state.value}: {snap.message}")
        if now - start > 300:
            raise RuntimeError("benchmark jobs did not finish")
        time.sleep(0.002)
    wall = max(ready.values()) - start
    added = [ready[j.id] - sent[j.id] - JOB_SECONDS for j in jobs]
    per_job = {kind: emu.count(path=pattern) / count for kind, pattern in KINDS.items()}
    api = sum(per_job.values())
    return {
        "mode": mode,
        "objects": count,
        "wall_s": wall,
        "per_job": per_job,
        "requests_per_job": api,
        "added_s_mean": statistics.mean(added),
        "added_s_max": max(added),
        "rate_limited": emu.count(path=KINDS["upload"]) - len(emu.files),
    }


CASES: tuple[tuple[str, int], ...] = (("text", 1), ("text", 8), ("image", 1), ("image", 8))


def run(cases: tuple[tuple[str, int], ...] = CASES) -> dict[str, Any]:
    """Run each case against one emulator; returns the figures (also printed by `main`)."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="t2t-bench-triverse-") as tmp, TriverseEmulator(
        job_seconds=JOB_SECONDS, map_size=MAP_SIZE, credits=10**6
    ) as emu:
        for mode, count in cases:
            rows.append(_batch(emu, mode, count, Path(tmp)))
    return {"rows": rows}


def table(result: dict[str, Any]) -> str:
    kinds = list(KINDS)
    lines = [
        f"Triverse via the runner against the emulator (job time {JOB_SECONDS:.0f} s, poll every "
        f"{TriverseProvider.poll_interval:.0f} s, at most {TriverseProvider.max_concurrency} jobs "
        f"in flight, at most {TriverseProvider.upload_limit} uploads per "
        f"{TriverseProvider.upload_window:.0f} s; added = time from sending to maps on disk, "
        "minus the job time)",
        "",
        "| mode | objects | wall time | added per job (mean / max) | requests / job | "
        + " | ".join(kinds) + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(kinds),
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['mode']} | {r['objects']} | {r['wall_s']:.2f} s "
            f"| {r['added_s_mean']:.2f} s / {r['added_s_max']:.2f} s "
            f"| {r['requests_per_job']:.1f} | "
            + " | ".join(f"{r['per_job'][k]:.1f}" for k in kinds) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    print(table(run()))


if __name__ == "__main__":
    main()
