"""Overhead: the seconds the extension adds beyond the provider's own time, for one 100k-triangle
mesh, through the real Blender path against the Meshy emulator.

The installed extension zip in `bpy`; one UV sphere of 99,840 triangles; one press of the button
(`BatchRun`), ticked like the modal operator (every 0.1 s, the first tick 0.1 s after the press);
the Meshy emulator finishing every job at once (job time 0) and serving four 2048² PNG maps. So
everything from the press to the material being on the object is overhead:

* create: the button's own work (checks, UVs, triangle count, journal, scene records);
* gather: the evaluated mesh copied out of Blender as arrays (main thread);
* write: the GLB written from those arrays (the job's worker);
* submit: reading the GLB, base64 data URI (*encode* of it), the POST and its answer;
* poll: the status request(s) until Meshy says SUCCEEDED (and the one balance request);
* download: the four maps streamed to disk and checked;
* apply: material, four images loaded, slots (main thread, a small step per tick: the sum);
* ticks: waiting for the modal timer's next ticks (the export, each apply step).

Two kinds of maps: the emulator's own (solid fills with a marker, compressing to a few kB) and
maps of realistic size (noise, ~6 MB each, as real 2048² PBR maps are).

    .venv/bin/python bench/bench_overhead.py [REPEATS]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_SCRATCH = Path(tempfile.mkdtemp(prefix="t2t-bench-overhead-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_SCRATCH / "blender-user")
os.environ["TEXT_TO_TEXTURE_DATA_DIR"] = str(_SCRATCH / "data")
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from apply_timing import timed_applies  # noqa: E402

import ext_dev  # noqa: E402
from emulators.base import ROLE_PIXELS, png_bytes  # noqa: E402
from emulators.meshy import MeshyEmulator  # noqa: E402

MAP_SIZE = 2048
TICK_S = 0.1  # the modal operator's timer interval
PHASES = ("create", "ticks", "gather", "write", "submit", "poll", "download", "apply")


class RealisticMaps(MeshyEmulator):
    """Serves 2048² maps of a realistic file size (noisy, ~6 MB each) instead of solid fills."""

    def image(self, role: str) -> bytes:
        with self._image_lock:
            if role not in self._images:
                rng = np.random.default_rng(len(role))
                fill = np.array(ROLE_PIXELS[role][0], np.int16)
                px = (fill + rng.integers(-4, 4, (self.map_size, self.map_size, 3))).clip(0, 255)
                rows = px.astype(np.uint8)
                self._images[role] = png_bytes(self.map_size, self.map_size,
                                               lambda y: rows[y].tobytes())
            return self._images[role]


def _timed(store: dict[str, float], key: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            store[key] = store.get(key, 0.0) + time.perf_counter() - t
    return wrapper


def _sphere() -> Any:
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=256, ring_count=196)
    obj = bpy.context.active_object
    obj.name = "Bust"
    settings = bpy.context.scene.text_to_texture
    settings.provider = "MESHY"
    settings.prompt = "weathered bronze with green patina"
    settings.resolution = "2048"
    return obj


def one_job(emu: MeshyEmulator) -> dict[str, float]:
    import bpy

    eng_mod = ext_dev.installed("blender.engine")
    meshy = ext_dev.installed("providers.meshy")
    contract = ext_dev.installed("providers.meshy.contract")
    registry = ext_dev.installed("providers.registry")
    gen = ext_dev.installed("blender.batch")
    eng_mod.reset_engine()
    emu.reset()
    obj = _sphere()
    tris = ext_dev.installed("blender.preflight").triangle_count(obj)
    t: dict[str, float] = {}

    class Timed(meshy.MeshyProvider):  # type: ignore[misc, valid-type]
        submit = _timed(t, "submit", meshy.MeshyProvider.submit)
        poll = _timed(t, "poll", meshy.MeshyProvider.poll)
        fetch = _timed(t, "download", meshy.MeshyProvider.fetch)

    registry.PROVIDERS["MESHY"] = Timed
    data_uri = contract.glb_base64
    contract.glb_base64 = _timed(t, "encode", data_uri)
    meshfile = ext_dev.installed("formats.meshfile")
    write_glb = meshfile.write_glb
    meshfile.write_glb = _timed(t, "write", write_glb)
    eng = eng_mod.engine()
    eng._gather = _timed(t, "gather", eng._gather)
    applies: list[tuple[str, float]] = []
    apply_mod = ext_dev.installed("blender.apply")
    original_apply = apply_mod.steps
    apply_mod.steps = timed_applies(original_apply, applies)
    try:
        t0 = time.perf_counter()
        batch = _timed(t, "create", gen.BatchRun)(bpy.context.scene, [obj])
        assert batch.job_ids, batch.batch.skipped
        busy = 0.0
        delay = TICK_S
        while True:
            time.sleep(delay)  # the timer fires, then the operator ticks
            a = time.perf_counter()
            more = batch.tick()
            busy += time.perf_counter() - a
            delay = eng.next_tick_in()  # the operator's fast timer while results are applied
            if not more:
                break
        total = time.perf_counter() - t0
    finally:
        contract.glb_base64 = data_uri
        meshfile.write_glb = write_glb
        apply_mod.steps = original_apply
    t["apply"] = sum(d for _, d in applies)
    job = eng.jobs[batch.job_ids[0]]
    if job.state.value != "applied":
        raise RuntimeError(f"the job ended {job.state.value}: {job.message}")
    # Blender loads image files lazily: the apply only names them. Decoding the four PNGs is
    # Blender's work the first time they are drawn or rendered, timed here apart from the total.
    images = [n.image for n in obj.active_material.node_tree.nodes
              if n.bl_idname == "ShaderNodeTexImage" and n.image is not None]
    a = time.perf_counter()
    for image in images:
        image.update()
    t["decode"] = time.perf_counter() - a
    sent = [r for r in emu.recorded("POST") if r.body]
    t["total"] = total
    t["upload_mb"] = sent[0].body_size / 1e6
    t["maps_mb"] = sum(len(emu.image(r)) for r in ("base_color", "metallic", "roughness",
                                                    "normal")) / 1e6
    t["triangles"] = tris
    t["status_requests"] = emu.count("GET", r"/retexture/[^/]+$")
    # What the worker did not account for: the wait for ticks (the timer), and the main thread's
    # tick work other than gathering the mesh and applying.
    worker = t["write"] + t["submit"] + t["poll"] + t["download"]
    t["ticks"] = total - t["create"] - t["gather"] - worker - t["apply"]
    eng_mod.reset_engine()
    return t


def run(repeats: int = 3) -> list[tuple[str, dict[str, float]]]:
    import bpy

    ext_dev.install(ext_dev.build_zip(_SCRATCH / "dist"))
    bpy.context.preferences.system.use_online_access = True
    rows = []
    for label, cls in (("emulator's maps", MeshyEmulator), ("realistic-size maps", RealisticMaps)):
        with cls(job_seconds=0.0, map_size=MAP_SIZE, balance=10**6) as emu:
            os.environ["MESHY_API_BASE"] = emu.url
            os.environ["MESHY_API_KEY"] = emu.api_key
            emu.image("base_color")  # made once, before timing (the service's own work)
            for role in ("metallic", "roughness", "normal"):
                emu.image(role)
            runs = [one_job(emu) for _ in range(repeats)]
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rows.append((label, median))
        print(f"# {label}: {median['total']:.3f} s", file=sys.stderr, flush=True)
    return rows


def table(rows: list[tuple[str, dict[str, float]]], repeats: int) -> str:
    first = rows[0][1]
    out = [
        f"> One UV sphere of {int(first['triangles']):,} triangles, Meshy emulator with job time "
        f"0 and four {MAP_SIZE}² PNG maps, modal-timer ticks every {TICK_S:g} s (0.01 s while "
        "the result is applied); median of "
        f"{repeats} runs, seconds. *encode* (reading the GLB into a base64 data URI) is part of "
        "*submit*; *ticks* is waiting for the timer. Target: total under 1 s. *decode* is "
        "Blender reading the four PNGs when they are first drawn or rendered (images load "
        "lazily): not in the total.",
        "",
        "| maps | upload | maps size | create | ticks | gather (main) | write (worker) "
        "| submit (encode) | poll | download | apply (main) | **total added** | decode |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in rows:
        out.append(
            f"| {label} | {r['upload_mb']:.1f} MB | {r['maps_mb']:.1f} MB | {r['create']:.3f} "
            f"| {r['ticks']:.3f} | {r['gather']:.3f} | {r['write']:.3f} "
            f"| {r['submit']:.3f} ({r['encode']:.3f}) "
            f"| {r['poll']:.3f} | {r['download']:.3f} | {r['apply']:.3f} "
            f"| **{r['total']:.3f}** | {r['decode']:.3f} |")
    return "\n".join(out)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(table(run(repeats), repeats))


if __name__ == "__main__":
    try:
        main()
    finally:  # the throwaway profile, maps and journal (bpy's own exit skips atexit handlers)
        shutil.rmtree(_SCRATCH, ignore_errors=True)
