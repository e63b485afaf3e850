"""Studio batch figures, printed as markdown tables:

1. the extension zip's size (built by Blender's own builder, as shipped);
2. a 100-object .blend with per-object prompts (a `{name}, {material}…, {collection}` panel
   prompt, 30 objects with their own `t2t_prompt`, 20 more named in a CSV prompts file),
   textured through the command line (`--command text_to_texture`'s callback, in a separate
   Blender process that opens the saved file) against the Meshy emulator with short jobs:
   the `--dry-run` first (it must send nothing), then the real run: wall time and requests;
3. the Flamenco job type compiled for 3 files (node, against tests/farm's stand-in API).

    .venv/bin/python bench/bench_studio.py [OBJECTS]      (default 100)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))

import ext_dev  # noqa: E402
from emulators.meshy import RETEXTURE, TASKS, MeshyEmulator  # noqa: E402

PROMPT = "{name}, {material} weathered, {collection}"
JOB_SECONDS = 0.5
JOBS_AT_ONCE = 10  # Meshy Pro's plan limit
KEY = "msy_bench_0123456789"
KINDS = {"create": rf"^{RETEXTURE}$", "status": rf"^{TASKS}/[^/]+$",
         "balance": r"/balance$", "download": r"^/assets/"}

# Runs in a fresh Blender process: install the zip, open the file, run the command.
CHILD = r"""
import os, sys, time, json
sys.path.insert(0, {tools!r})
import ext_dev
import bpy
ext_dev.install(__import__("pathlib").Path({zip!r}))
bpy.context.preferences.system.use_online_access = True
bpy.ops.wm.open_mainfile(filepath={blend!r})
cli = ext_dev.installed("cli")
t0 = time.perf_counter()
code = cli.main({argv!r})
wall = time.perf_counter() - t0
print("BENCH", json.dumps({{"code": code, "wall": wall}}), flush=True)
"""

MAKE = r"""
import bpy, csv
bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
colls = [bpy.data.collections.new(n) for n in ("Props", "Furniture", "Debris")]
for c in colls:
    scene.collection.children.link(c)
mats = [bpy.data.materials.new(n) for n in ("Oak", "Iron", "Clay", "Glass")]
rows = []
for i in range({count}):
    bpy.ops.mesh.primitive_cube_add(location=(3 * (i % 10), 3 * (i // 10), 0))
    obj = bpy.context.active_object
    obj.name = f"Crate_{{i:03d}}"
    obj.data.materials.append(mats[i % 4])
    colls[i % 3].objects.link(obj)
    scene.collection.objects.unlink(obj)
    if i % 10 < 3:
        obj["t2t_prompt"] = "{{name}}, hand-painted " + ("oak", "steel", "stone")[i % 3]
    elif i % 10 < 5:
        rows.append((obj.name, f"{{{{name}}}} number {{i}}, mossy granite", "cracks"))
bpy.ops.wm.save_as_mainfile(filepath={blend!r})
with open({csv!r}, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["object", "prompt", "negative_prompt"])
    w.writerows(rows)
"""


def python() -> str:
    return sys.executable


def child(code: str, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run([python(), "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0 and "BENCH" not in done.stdout:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    return done.stdout


def zip_size(scratch: Path) -> Path:
    z = ext_dev.build_zip(scratch / "dist")
    print("> The extension zip, as built by Blender's builder\n")
    print("| file | size | entries |\n|---|---:|---:|")
    import zipfile
    n = len(zipfile.ZipFile(z).namelist())
    print(f"| {z.name} | {z.stat().st_size / 1000:.1f} kB | {n} |\n")
    return z


def batch(scratch: Path, zip_path: Path, count: int) -> None:
    env = dict(os.environ)
    for var in [v for v in env if v.endswith(("_API_KEY", "_API_BASE", "_JOBS_AT_ONCE"))]:
        del env[var]
    env["BLENDER_USER_RESOURCES"] = str(scratch / "blender-user")
    env["TEXT_TO_TEXTURE_DATA_DIR"] = str(scratch / "data")
    blend = scratch / "shots" / "studio.blend"
    blend.parent.mkdir(parents=True)
    prompts = scratch / "shots" / "prompts.csv"
    child(MAKE.format(count=count, blend=str(blend), csv=str(prompts)), env)

    emu = MeshyEmulator(job_seconds=JOB_SECONDS, api_key=KEY, queue_limit=JOBS_AT_ONCE)
    emu.start()
    try:
        env["MESHY_API_BASE"] = emu.url
        env["MESHY_API_KEY"] = KEY
        argv = ["--provider", "MESHY", "--prompt", PROMPT, "--resolution", "1024",
                "--prompts", str(prompts), "--collection",
                "Scene Collection", "--jobs-at-once", str(JOBS_AT_ONCE)]
        rows = []
        for label, extra in (("--dry-run", ["--dry-run"]),
                             ("texture", ["--output", str(scratch / "out.blend")])):
            emu.reset()
            t0 = time.perf_counter()
            out = child(CHILD.format(tools=str(ROOT / "tools"), zip=str(zip_path),
                                     blend=str(blend), argv=argv + extra), env)
            process = time.perf_counter() - t0
            result = json.loads(out.split("BENCH ", 1)[1].splitlines()[0])
            kinds = Counter(next((k for k, p in KINDS.items() if re.search(p, r.path)), "other")
                            for r in emu.recorded())
            summary = [ln for ln in out.splitlines() if "Textured" in ln or "Dry run" in ln]
            prompts_sent = {(r.body or {}).get("text_style_prompt") or
                            (r.body or {}).get("texture_prompt") for r in
                            emu.recorded("POST", rf"^{RETEXTURE}$")}
            rows.append((label, result["code"], result["wall"], process, kinds,
                         len(prompts_sent), summary[-1] if summary else ""))
    finally:
        emu.stop()

    print(f"> {count} objects, a prompt per object (panel template, 30 t2t_prompt, 20 from a "
          f"CSV), through the CLI in its own Blender process (Meshy emulator, "
          f"{JOB_SECONDS:g} s jobs, --jobs-at-once {JOBS_AT_ONCE})\n")
    print("| run | exit | command wall | process wall | creates | status | balance | "
          "downloads | other | distinct prompts sent |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, code, wall, process, kinds, distinct, _summary in rows:
        print(f"| {label} | {code} | {wall:.2f} s | {process:.1f} s | {kinds['create']} | "
              f"{kinds['status']} | {kinds['balance']} | {kinds['download']} | "
              f"{kinds['other']} | {distinct} |")
    print()
    for label, *_rest, summary in rows:
        print(f"> {label}: `{summary}`")
    print()


def flamenco(scratch: Path) -> None:
    settings = {"folder": "/farm/shots", "files": "hall.blend;kitchen.blend;yard.blend",
                "provider": "MESHY", "prompt": "{name}, weathered bronze",
                "output_dir": "/farm/textured", "resolution": "2048", "jobs_at_once": 3,
                "max_workers": 3, "plan_jobs_at_once": 10}
    path = scratch / "flamenco.json"
    path.write_text(json.dumps(settings))
    node = shutil.which("node")
    print("> The Flamenco job compiled for 3 files\n")
    if node is None:
        print("(node is not installed)\n")
        return
    done = subprocess.run([node, str(ROOT / "tests/farm/flamenco_standin.mjs"), str(path)],
                          capture_output=True, text=True, check=True)
    tasks = json.loads(done.stdout)
    print(f"> Settings: `{json.dumps(settings)}`\n")
    print("| task | type | after | command |\n|---|---|---|---|")
    for t in tasks:
        cmd = " ".join(f'"{a}"' if " " in a else a for a in t["command"][0])
        print(f"| {t['name']} | {t['type']} | {', '.join(t['after']) or '—'} | `{cmd}` |")
    print()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    scratch = Path(tempfile.mkdtemp(prefix="t2t-bench-studio-"))
    try:
        z = zip_size(scratch)
        batch(scratch, z, count)
        flamenco(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
