"""How long Smart UV Project pauses Blender per triangle: the rate behind the unwrap warning
(`blender/uvs.py`, `UNWRAP_S_PER_TRIANGLE`), measured on meshes without UVs through the
extension's own `unwrap_new` (the installed zip in `bpy`, on the main thread as the button runs it).

    .venv/bin/python bench/bench_unwrap.py [TRIANGLES…]      e.g. bench_unwrap.py 200000 2000000
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SCRATCH = Path(tempfile.mkdtemp(prefix="t2t-bench-unwrap-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_SCRATCH / "blender-user")
os.environ["TEXT_TO_TEXTURE_DATA_DIR"] = str(_SCRATCH / "data")
sys.path.insert(0, str(ROOT / "tools"))

import ext_dev  # noqa: E402


def _mesh(bpy, triangles: int):  # type: ignore[no-untyped-def]
    """A bumpy grid of about `triangles` triangles (quads), without UVs."""
    side = max(2, int(math.sqrt(triangles / 2)))
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=side, y_subdivisions=side, size=10)
    obj = bpy.context.active_object
    mod = obj.modifiers.new("bumps", "DISPLACE")
    mod.texture = bpy.data.textures.new("bumps", "CLOUDS")
    bpy.ops.object.modifier_apply(modifier=mod.name)
    while obj.data.uv_layers:
        obj.data.uv_layers.remove(obj.data.uv_layers[0])
    return obj


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [200_000, 500_000, 2_000_000]
    import bpy

    ext_dev.install(ext_dev.build_zip(_SCRATCH / "dist"))
    uvs = ext_dev.installed("blender.uvs")
    print("| triangles | unwrap pause | µs per triangle | estimate before it |")
    print("|---:|---:|---:|---:|")
    for count in counts:
        bpy.ops.wm.read_homefile(use_empty=True)
        obj = _mesh(bpy, count)
        tris = uvs.triangles(obj.data)
        estimate = tris * uvs._rate[0]
        began = time.perf_counter()
        uvs.unwrap_new(obj, "T2T_UV")
        took = time.perf_counter() - began
        print(f"| {tris:,} | {took:.2f} s | {took / tris * 1e6:.2f} | {estimate:.2f} s |")


if __name__ == "__main__":
    main()
