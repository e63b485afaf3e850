"""Requests per job for each provider: one object textured through the real runner and provider
(shipped settings: polls ramping from 1 s to 3 s) against each emulator, with 3 s jobs and PBR
on. Requests are counted at the service, grouped by route (ids folded into `{id}`).

    .venv/bin/python bench/bench_requests.py
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import ext_dev  # noqa: E402

ext_dev.use_source_package()
sys.path.insert(0, str(ROOT / "tests"))

from emulators.dressx import DressxEmulator  # noqa: E402
from emulators.glb import cube_glb  # noqa: E402
from emulators.meshy import MeshyEmulator  # noqa: E402
from emulators.scenario import ScenarioEmulator  # noqa: E402
from emulators.triverse import TriverseEmulator  # noqa: E402
from text_to_texture.jobs.job import Job, State, new_job_id  # noqa: E402
from text_to_texture.jobs.journal import Journal  # noqa: E402
from text_to_texture.jobs.runner import Runner  # noqa: E402
from text_to_texture.net import local_server  # noqa: E402
from text_to_texture.providers.base import ProviderConfig, TextureRequest  # noqa: E402
from text_to_texture.providers.dressx import DressxProvider  # noqa: E402
from text_to_texture.providers.meshy import MeshyProvider  # noqa: E402
from text_to_texture.providers.scenario import ScenarioProvider  # noqa: E402
from text_to_texture.providers.triverse import TriverseProvider  # noqa: E402

JOB_SECONDS = 3.0
OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\n"
_ID = re.compile(r"/(?:[0-9a-f]{8}-[0-9a-f-]{27}|(?:job|asset|model)_\w+|[\w-]{20,}"
                 r"|[\w-]+\.(?:png|glb|jpg))(?=/|$)")


def _kind(method: str, path: str) -> str:
    path = re.sub(r"^/v1(?=/)", "", path)
    if path.startswith(("/assets/tasks/", "/files/", "/storage/", "/texture/")):
        return "file download"
    return f"{method} {_ID.sub('/{id}', path)}"


def _one(work: Path, pid: str, make: Callable[[], Any], emu: Any, **request: Any) -> dict:
    runner = Runner(Journal(work / f"journal-{pid}"))
    mesh = work / ("m.obj" if pid == "DRESSX" else "m.glb")
    if pid == "DRESSX":
        mesh.write_text(OBJ)
    else:
        mesh.write_bytes(cube_glb())
    jid = new_job_id()
    req = TextureRequest(job_id=jid, prompt="worn leather", mesh_path=str(mesh),
                         mesh_format="OBJ" if pid == "DRESSX" else "GLB",
                         out_dir=str(work / f"maps-{pid}"), file_stem="o", **request)
    job = Job(id=jid, provider=pid, object_name="o", request=req)
    runner.start(job, make())
    end = time.monotonic() + 120
    state = None
    while state is None and time.monotonic() < end:
        for snap in runner.drain():
            if snap.state is State.BAKING:  # no Blender here: the result keeps its own mesh
                runner.provide_target(snap.id, None, "no object in this benchmark")
            elif snap.state is State.READY or snap.state.terminal:
                state = snap
        time.sleep(0.01)
    runner.shutdown()
    if state is None or state.state is not State.READY:
        raise RuntimeError(f"{pid} job did not succeed: {state and state.message}")
    kinds = Counter(_kind(r.method, r.path) for r in emu.recorded())
    return {"total": sum(kinds.values()), "kinds": kinds}


def run() -> list[tuple[str, dict]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="t2t-bench-req-") as tmp:
        work = Path(tmp)
        with MeshyEmulator(job_seconds=JOB_SECONDS) as emu:
            cfg = ProviderConfig(api_key=emu.api_key, api_base=emu.url)
            rows.append(("Meshy (v2)", _one(work, "MESHY", lambda: MeshyProvider(cfg), emu)))
        with TriverseEmulator(job_seconds=JOB_SECONDS) as emu:
            cfg = ProviderConfig(api_key=emu.api_key, api_base=emu.url)
            rows.append(("Triverse (text, presigned)",
                         _one(work, "TRIVERSE", lambda: TriverseProvider(cfg), emu)))
        for model, name in (("model_emulator_sdxl", "Scenario (txt2img-texture + map job)"),
                            ("model_emulator_patina", "Scenario (custom model, own maps)")):
            with ScenarioEmulator(job_seconds=JOB_SECONDS / 2,
                                  texture_seconds=JOB_SECONDS / 2) as emu:
                cfg = ProviderConfig(api_key=emu.api_key, api_base=f"{emu.url}/v1", extras={
                    "api_secret": emu.api_secret, "model_id": model})
                rows.append((name, _one(work, "SCENARIO",
                                        lambda c=cfg: ScenarioProvider(c), emu)))
        with DressxEmulator(job_seconds=JOB_SECONDS) as emu:
            cfg = ProviderConfig(api_key=emu.api_key, api_base=emu.url,
                                 extras={"public_url": "http://127.0.0.1:{port}"})
            rows.append(("DRESSX (webhook)",
                         _one(work, "DRESSX", lambda: DressxProvider(cfg), emu)))
            local_server.shutdown()
    return rows


def table(rows: list[tuple[str, dict]]) -> str:
    lines = [
        f"> One object per provider, {JOB_SECONDS:.0f} s of service time, PBR on, shipped "
        "settings; requests counted at the service (the model read of Scenario and the balance "
        "reads happen once per job or session).",
        "",
        "| provider | requests per job | by route |",
        "|---|---:|---|",
    ]
    for name, r in rows:
        kinds = ", ".join(f"{k} × {n}" for k, n in sorted(r["kinds"].items()))
        lines.append(f"| {name} | {r['total']} | {kinds} |")
    return "\n".join(lines)


def main() -> None:
    print(table(run()))


if __name__ == "__main__":
    main()
