"""Offline provider cost: time to generate the five maps and to write them, and peak memory.

Run as `python bench/bench_procedural.py`. Pure Python + numpy, no Blender. Targets (2 cores):
all maps at 1024 under 0.5 s, at 2048 under 2 s; 4096 must work with reasonable memory.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import ext_dev  # noqa: E402

ext_dev.use_source_package()

from text_to_texture.formats.imagefile import write_png  # noqa: E402
from text_to_texture.providers.procedural import generate_maps  # noqa: E402

PROMPTS = ("weathered red brick wall", "worn red painted metal with scratches")
SIZES = (1024, 2048, 4096)


def _time_generate(prompt: str, res: int, runs: int) -> tuple[float, dict]:
    times, maps = [], {}
    for i in range(runs):
        start = time.perf_counter()
        maps = generate_maps(prompt, i, res)
        times.append(time.perf_counter() - start)
    return statistics.median(times), maps


def _time_write(maps: dict) -> float:
    with tempfile.TemporaryDirectory(prefix="t2t-bench-") as folder:
        start = time.perf_counter()
        for role, pixels in maps.items():
            write_png(os.path.join(folder, f"bench_{role}.png"), pixels)
        return time.perf_counter() - start


def _peak_mb(prompt: str, res: int) -> float:
    """Peak memory allocated by one generation (numpy buffers included), in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--peak", prompt, str(res)],
        check=True, capture_output=True, text=True,
    )
    return float(json.loads(out.stdout)["peak_mb"])


def run() -> dict:
    """Measure and print a markdown table; return the numbers (seconds and MB)."""
    results: dict = {"cpus": os.cpu_count(), "rows": []}
    for prompt in PROMPTS:
        for res in SIZES:
            runs = 1 if res >= 4096 else 3
            gen, maps = _time_generate(prompt, res, runs)
            write = _time_write(maps)
            row = {"prompt": prompt, "resolution": res, "runs": runs,
                   "generate_s": round(gen, 3), "write_s": round(write, 3)}
            if res == 4096:
                row["peak_mb"] = round(_peak_mb(prompt, res), 1)
            results["rows"].append(row)
    print(f"Offline provider, {results['cpus']} CPU(s); generate = median of 3 (4096: once)\n")
    print("| prompt | res | generate 5 maps | write 5 PNGs | peak memory |")
    print("|---|---:|---:|---:|---:|")
    for row in results["rows"]:
        peak = f"{row['peak_mb']:.0f} MB" if "peak_mb" in row else ""
        print(f"| {row['prompt']} | {row['resolution']} | {row['generate_s'] * 1000:.0f} ms "
              f"| {row['write_s'] * 1000:.0f} ms | {peak} |")
    return results


def _peak_child(prompt: str, res: int) -> None:
    # tracemalloc sees numpy's buffers; ru_maxrss would inherit the parent's peak across exec
    tracemalloc.start()
    generate_maps(prompt, 0, res)
    _current, peak = tracemalloc.get_traced_memory()
    print(json.dumps({"peak_mb": peak / 2**20}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        _peak_child(sys.argv[2], int(sys.argv[3]))
    else:
        run()
