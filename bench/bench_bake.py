"""Baking a provider's result onto the object's own UVs: seconds, memory, main-thread ticks, and
how the numpy reprojection compares with Blender's own baker (Cycles, selected to active).

    python bench/bench_bake.py [bake] [ticks] [cycles]      (all three without arguments)

* bake: one bake per process (so its peak memory is its own) for 10k and 100k triangles at
  1024² and 2048², with the provider's mesh the object's surface triangle for triangle (Meshy
  keeps the topology) or decimated to 30 % (a remeshed result). Wall and CPU seconds on this
  machine's cores, peak resident memory, and how well the baked map gives back positions.
* ticks: the installed extension in bpy, one 100k-triangle object, a provider returning such a
  result at 2048²: every main-thread tick timed while the job bakes, and how late the main
  thread woke for its tick (the GIL the baking worker held).
* cycles: the same scene baked by Cycles (EMIT, selected to active, cage from the object's
  size) and by the numpy bake: time and accuracy of each.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_SCRATCH = Path(tempfile.mkdtemp(prefix="t2t-bench-bake-"))
os.environ.setdefault("BLENDER_USER_RESOURCES", str(_SCRATCH / "blender-user"))
os.environ.setdefault("TEXT_TO_TEXTURE_DATA_DIR", str(_SCRATCH / "data"))
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))

import ext_dev  # noqa: E402

SEGMENTS = {10_000: 100, 100_000: 316}  # UV sphere segments for about that many triangles
SOURCE_TEXTURE = 2048


def _package() -> Any:
    ext_dev.use_source_package()
    import text_to_texture

    return text_to_texture


def sphere(segments: int) -> Any:
    """A UV sphere as Blender makes it (lat-long UVs with a seam), with MikkTSpace-like
    tangents (Blender hands the worker its own; they cost the bake nothing)."""
    from text_to_texture.formats.bake import BakeTarget
    from text_to_texture.formats.bake.tangents import corner_tangents

    rings = segments // 2
    th = np.linspace(0, np.pi, rings + 1)
    ph = np.linspace(0, 2 * np.pi, segments + 1)
    t, p = np.meshgrid(th, ph, indexing="ij")
    pos = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    uv = np.stack([p / (2 * np.pi), 1 - t / np.pi], -1).reshape(-1, 2)
    r, s = np.meshgrid(np.arange(rings), np.arange(segments), indexing="ij")
    a, b = r * (segments + 1) + s, (r + 1) * (segments + 1) + s
    upper = np.stack([a, b, a + 1], -1)[1:].reshape(-1, 3)
    lower = np.stack([b, b + 1, a + 1], -1)[:-1].reshape(-1, 3)
    cv = np.concatenate([upper, lower]).reshape(-1).astype(np.int32)
    target = BakeTarget(pos.astype(np.float32), cv, pos[cv].astype(np.float32),
                        uv[cv].astype(np.float32), np.eye(4), uv_name="UVMap")
    target.tangents, target.signs = corner_tangents(target.positions[cv], cv, target.normals,
                                                    target.uvs)
    return target


def prepare(tris: int, kind: str) -> Path:
    """Inputs of one case on disk: the target, the provider's GLB and base colour map."""
    folder = _SCRATCH / f"in-{tris}-{kind}"
    if (folder / "target.npz").is_file():
        return folder
    _package()
    from emulators import surface
    from text_to_texture.formats import meshfile
    from text_to_texture.formats.bake import save_target

    folder.mkdir(parents=True)
    target = sphere(SEGMENTS[tris])
    save_target(target, folder / "target.npz")
    upload = folder / "upload.glb"
    meshfile.write_glb(meshfile.MeshArrays(target.positions, target.corner_verts,
                                           target.normals, target.uvs), upload)
    res = surface.result(upload.read_bytes(), SOURCE_TEXTURE,
                         0.3 if kind == "decimated" else None)
    (folder / "result.glb").write_bytes(surface.result_glb(res))
    for role in ("base_color", "normal", "metallic_roughness"):
        (folder / f"{role}.png").write_bytes(res.maps[role])
    np.savez(folder / "box.npz", lo=res.lo, hi=res.hi)
    return folder


def case(folder: Path, size: int) -> dict[str, Any]:
    """One bake in this process: its times, peak memory and accuracy."""
    _package()
    from text_to_texture.formats import imagefile, meshfile
    from text_to_texture.formats.bake import bake, load_target
    from text_to_texture.formats.bake.raster import rasterize

    target = load_target(folder / "target.npz")
    source = meshfile.read_glb(folder / "result.glb")
    maps = {r: str(folder / f"{r}.png") for r in ("base_color", "normal", "metallic_roughness")}
    out = _SCRATCH / f"out-{os.getpid()}"
    before = _peak_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    result = bake(target, source, maps, size, out, "bench")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _peak_mb()
    box = np.load(folder / "box.npz")
    image = imagefile.read_png(result.maps["base_color"])[::-1].reshape(-1, 3) / 255.0
    cov = rasterize(target.uvs.reshape(-1, 3, 2), size)
    want = np.einsum("kj,kjc->kc", cov.bary,
                     target.positions[target.corner_verts.reshape(-1, 3)[cov.triangle]])
    span = box["hi"] - box["lo"]
    got = (image[cov.texel] - 0.1) / 0.8 * span + box["lo"]  # glTF axes
    got = np.stack([got[:, 0], -got[:, 2], got[:, 1]], 1)
    err = np.abs(got - want).max(axis=1) / span.max()
    return {"wall": wall, "cpu": cpu, "peak_mb": peak, "before_mb": before,
            "err_p50": float(np.median(err)), "err_p99": float(np.percentile(err, 99))}


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    process that started it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bake_table() -> None:
    print("| triangles | provider's mesh | size | wall s | CPU s | peak MB | MB before | "
          "position error p50 / p99 |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for tris in (10_000, 100_000):
        for kind in ("same", "decimated"):
            folder = prepare(tris, kind)
            for size in (1024, 2048):
                done = subprocess.run([sys.executable, __file__, "_case", str(folder),
                                       str(size)], capture_output=True, text=True, check=True)
                r = json.loads(done.stdout.strip().splitlines()[-1])
                mesh = "same triangles" if kind == "same" else "decimated to 30 %"
                print(f"| {tris:,} | {mesh} | {size}² | {r['wall']:.1f} | {r['cpu']:.1f} | "
                      f"{r['peak_mb']:.0f} | {r['before_mb']:.0f} | {r['err_p50'] * 100:.2f} % / "
                      f"{r['err_p99'] * 100:.2f} % |")
    print(f"> One bake per process on {os.cpu_count()} cores (numpy runs the bake on one of "
          "them); peak MB is the process's peak resident memory, MB before what it held "
          "before the bake (Python, numpy, the loaded inputs). Position error: "
          "how far the baked base colour's encoded position is from the texel's own, in units "
          f"of the object's size, with the provider's position map at {SOURCE_TEXTURE}².")


# --------------------------------------------------------------------------- main-thread ticks


def ticks_table() -> None:
    import bpy

    ext_dev.install(ext_dev.build_zip(_SCRATCH / "dist"))
    registry = ext_dev.installed("providers.registry")
    base = ext_dev.installed("providers.base")
    folder = prepare(100_000, "same")

    class Prebaked(registry.PROVIDERS["PROCEDURAL"]):  # type: ignore[misc, valid-type]
        """Answers at once with a prepared surface result, as a provider's fetch would."""

        mesh_format = "GLB"

        def submit(self, request, cancel):  # type: ignore[no-untyped-def]
            return "r"

        def poll(self, remote_id, request, cancel):  # type: ignore[no-untyped-def]
            return base.RemoteStatus(base.RemoteState.SUCCEEDED, 1.0)

        def fetch(self, remote_id, status, request, cancel, progress):  # type: ignore[no-untyped-def]
            out = {r: str(folder / f"{r}.png") for r in
                   ("base_color", "normal", "metallic_roughness")}
            return {**out, base.RESULT_MESH: str(folder / "result.glb")}

    registry.PROVIDERS["PROCEDURAL"] = Prebaked
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=SEGMENTS[100_000],
                                         ring_count=SEGMENTS[100_000] // 2)
    obj = bpy.context.active_object
    settings = bpy.context.scene.text_to_texture
    settings.prompt, settings.resolution = "bronze", "2048"
    eng_mod = ext_dev.installed("blender.engine")
    eng = eng_mod.engine()
    drive = ext_dev.installed("blender.drive")
    run = ext_dev.installed("blender.batch").BatchRun(bpy.context.scene, [obj])
    baking: list[float] = []
    late: list[float] = []
    gather: list[float] = []
    idle_late: list[float] = []
    for _ in range(50):  # the main thread's wake-up lateness with no worker busy
        t = time.perf_counter()
        time.sleep(0.01)
        idle_late.append(time.perf_counter() - t - 0.01)
    began = time.perf_counter()
    bake_s = 0.0
    while run.unfinished():
        pause = eng.next_tick_in()
        t = time.perf_counter()
        time.sleep(pause)
        woke = time.perf_counter()
        job = eng.jobs[run.job_ids[0]]
        was_baking = job.state.value == "baking"
        handed = len(eng._gathered)  # the ticks that gather the object for the worker
        busy = eng._gathering is not None
        drive.tick()
        dt = time.perf_counter() - woke
        if busy or eng._gathering is not None or len(eng._gathered) > handed:
            gather.append(dt)
        elif was_baking:
            baking.append(dt)
            late.append(woke - t - pause)
            bake_s = time.perf_counter() - began
    rec = settings.jobs[0]
    assert rec.state == "applied", rec.message
    ms = 1000.0

    def row(what: str, values: list[float]) -> str:
        return (f"| {what} | {len(values)} | {statistics.median(values) * ms:.2f} | "
                f"{_pct(values, 0.99) * ms:.2f} | {max(values) * ms:.2f} |")

    print("| main thread, while one 100k-triangle object bakes at 2048² | ticks | median ms | "
          "p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    print(row("the ticks that gather the object (its arrays, then its tangents)", gather))
    print(row("every other tick while baking", baking))
    print(row("waking late for a tick while baking (the worker holds the GIL)", late))
    print(row("waking late with no worker busy", idle_late))
    print(f"> The bake took {bake_s:.1f} s from the job's start; its worker runs numpy at a lower "
          "CPU priority and releases the GIL in every bulk operation.")


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


# --------------------------------------------------------------------------- against Cycles


def cycles_table() -> None:
    import bpy

    _package()
    from text_to_texture.formats import imagefile, meshfile
    from text_to_texture.formats.bake import bake, load_target
    from text_to_texture.formats.bake.raster import rasterize

    print("| triangles | provider's mesh | size | baker | seconds | position error p50 / p99 |"
          " numpy − Cycles: mean / max per texel | texels differing > 2 % |")
    print("|---:|---|---:|---|---:|---|---|---:|")
    for tris, kind in ((10_000, "same"), (10_000, "decimated"), (100_000, "same")):
        folder = prepare(tris, kind)
        target = load_target(folder / "target.npz")
        source = meshfile.read_glb(folder / "result.glb")
        box = np.load(folder / "box.npz")
        for size in (1024, 2048):
            t = time.perf_counter()
            ours = bake(target, source, {"base_color": str(folder / "base_color.png")}, size,
                        _SCRATCH / "cmp", "ours")
            ours_s = time.perf_counter() - t
            mine = imagefile.read_png(ours.maps["base_color"])[::-1].reshape(-1, 3) / 255.0
            theirs, cycles_s = _cycles_bake(bpy, target, source, folder, size)
            cov = rasterize(target.uvs.reshape(-1, 3, 2), size)
            want = np.einsum("kj,kjc->kc", cov.bary, target.positions[
                target.corner_verts.reshape(-1, 3)[cov.triangle]])
            errs = {}
            for name, img in (("numpy", mine), ("Cycles", theirs)):
                span = box["hi"] - box["lo"]
                got = (img[cov.texel] - 0.1) / 0.8 * span + box["lo"]
                got = np.stack([got[:, 0], -got[:, 2], got[:, 1]], 1)
                errs[name] = np.abs(got - want).max(axis=1) / span.max()
            gap = np.abs(mine[cov.texel] - theirs[cov.texel]).max(axis=1)
            differ = (gap > 0.02).mean()
            mesh = "same triangles" if kind == "same" else "decimated to 30 %"
            for name, secs in (("numpy (this add-on)", ours_s), ("Cycles EMIT", cycles_s)):
                e = errs["numpy" if name.startswith("numpy") else "Cycles"]
                print(f"| {tris:,} | {mesh} | {size}² | {name} | {secs:.1f} | "
                      f"{np.median(e) * 100:.2f} % / {np.percentile(e, 99) * 100:.2f} % | "
                      f"{gap.mean() * 255:.2f} / {gap.max() * 255:.0f} levels | "
                      f"{differ * 100:.2f} % |")
    folder = prepare(100_000, "same")
    numpy_all = json.loads(subprocess.run([sys.executable, __file__, "_case", str(folder),
                                           "2048"], capture_output=True, text=True,
                                          check=True).stdout.strip().splitlines()[-1])
    cyc = json.loads(subprocess.run([sys.executable, __file__, "_cycles3", str(folder), "2048"],
                                    capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    print()
    print("| 100,000 triangles, 2048², base colour + packed map + normal map | wall s | "
          "peak MB |")
    print("|---|---:|---:|")
    print(f"| numpy reprojection (one pass for all maps, on a worker thread) | "
          f"{numpy_all['wall']:.1f} | {numpy_all['peak_mb']:.0f} |")
    print(f"| Cycles in a background Blender: start-up {cyc['start']:.1f} s, three bakes, "
          f"saving | {cyc['wall']:.1f} | {cyc['peak_mb']:.0f} |")
    print("> Cycles: one EMIT pass in this process (a background Blender would add its start-up "
          "and one pass per map: base colour, roughness/metallic, normal), 1 sample, cage "
          "extrusion 1 % of the object's diagonal, 16 px margin. Both bakes read the same "
          "provider map; the last column compares them texel by texel.")


def _cycles_bake(bpy: Any, target: Any, source: Any, folder: Path, size: int,
                 role: str = "base_color", fresh: bool = True) -> tuple[np.ndarray, float]:
    """Bake one map with Cycles, selected to active; (its pixels, seconds of the bake)."""
    if fresh or "low" not in bpy.data.objects:
        bpy.ops.wm.read_homefile(use_empty=True)
        low = bpy.data.objects.new("low", _build(bpy, "low", target.positions,
                                                 target.corner_verts, target.uvs, "UVMap"))
        high = bpy.data.objects.new("high", _build(bpy, "high", source.positions,
                                                   source.corner_verts, source.uvs, "Provider"))
        for o in (low, high):
            bpy.context.scene.collection.objects.link(o)
        high.data.materials.append(bpy.data.materials.new("src"))
        low.data.materials.append(bpy.data.materials.new("dst"))
    low, high = bpy.data.objects["low"], bpy.data.objects["high"]
    src = bpy.data.images.load(str(folder / f"{role}.png"))
    src.colorspace_settings.is_data = True
    mat = high.data.materials[0]
    mat.use_nodes = True
    nt = mat.node_tree
    nt.nodes.clear()
    out_node = nt.nodes.new("ShaderNodeOutputMaterial")
    tex = nt.nodes.new("ShaderNodeTexImage")
    tex.image = src
    uvn = nt.nodes.new("ShaderNodeUVMap")
    uvn.uv_map = "Provider"
    nt.links.new(uvn.outputs[0], tex.inputs[0])
    if role == "normal":
        bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
        nmap = nt.nodes.new("ShaderNodeNormalMap")
        nmap.uv_map = "Provider"
        nt.links.new(tex.outputs[0], nmap.inputs["Color"])
        nt.links.new(nmap.outputs[0], bsdf.inputs["Normal"])
        nt.links.new(bsdf.outputs[0], out_node.inputs[0])
    else:
        em = nt.nodes.new("ShaderNodeEmission")
        nt.links.new(tex.outputs[0], em.inputs[0])
        nt.links.new(em.outputs[0], out_node.inputs[0])
    out = bpy.data.images.new(f"out_{role}", size, size)
    out.colorspace_settings.is_data = True
    m2 = low.data.materials[0]
    m2.use_nodes = True
    node = m2.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = out
    m2.node_tree.nodes.active = node
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    bake = scene.render.bake
    bake.use_selected_to_active = True
    diag = float(np.linalg.norm(target.positions.max(0) - target.positions.min(0)))
    bake.cage_extrusion = 0.01 * diag
    bake.margin = 16 * size // 2048
    t = time.perf_counter()
    with bpy.context.temp_override(active_object=low, object=low,
                                   selected_objects=[low, high],
                                   selected_editable_objects=[low, high]):
        bpy.ops.object.bake(type="NORMAL" if role == "normal" else "EMIT",
                            normal_space="TANGENT")
    secs = time.perf_counter() - t
    out.filepath_raw = str(_SCRATCH / f"cycles_{role}.png")
    out.file_format = "PNG"
    out.save()
    px = np.empty(size * size * 4, np.float32)
    out.pixels.foreach_get(px)
    return px.reshape(-1, 4)[:, :3].astype(np.float64), secs


def cycles_all(folder: Path, size: int) -> dict[str, Any]:
    """What option (a) costs end to end, in a process of its own like a background Blender:
    start (import Blender), build both meshes from the files, bake base colour and the packed
    map (EMIT) and the normal map (NORMAL, tangent space), save the three PNGs."""
    began = time.perf_counter()
    import bpy

    _package()
    from text_to_texture.formats import meshfile
    from text_to_texture.formats.bake import load_target

    started = time.perf_counter() - began
    target = load_target(folder / "target.npz")
    source = meshfile.read_glb(folder / "result.glb")
    image, _secs = _cycles_bake(bpy, target, source, folder, size, "base_color")
    del image
    _cycles_bake(bpy, target, source, folder, size, "metallic_roughness", fresh=False)
    _cycles_bake(bpy, target, source, folder, size, "normal", fresh=False)
    return {"wall": time.perf_counter() - began, "start": started, "peak_mb": _peak_mb()}


def _build(bpy: Any, name: str, positions: np.ndarray, corner_verts: np.ndarray,
           uvs: np.ndarray, uv_name: str) -> Any:
    tri = corner_verts.reshape(-1, 3)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(positions))
    mesh.vertices.foreach_set("co", positions.astype(np.float32).ravel())
    mesh.loops.add(len(corner_verts))
    mesh.loops.foreach_set("vertex_index", corner_verts.astype(np.int32))
    mesh.polygons.add(len(tri))
    mesh.polygons.foreach_set("loop_start", np.arange(0, len(corner_verts), 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(tri), 3, np.int32))
    layer = mesh.uv_layers.new(name=uv_name)
    layer.uv.foreach_set("vector", uvs.astype(np.float32).ravel())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(tri), bool))
    mesh.update(calc_edges=True)
    return mesh


def main() -> None:
    if sys.argv[1:2] == ["_case"]:
        print(json.dumps(case(Path(sys.argv[2]), int(sys.argv[3]))))
        return
    if sys.argv[1:2] == ["_cycles3"]:
        print(json.dumps(cycles_all(Path(sys.argv[2]), int(sys.argv[3]))))
        return
    wanted = set(sys.argv[1:]) or {"bake", "ticks", "cycles"}
    if "bake" in wanted:
        bake_table()
    if "cycles" in wanted:
        cycles_table()
    if "ticks" in wanted:
        ticks_table()


if __name__ == "__main__":
    main()
