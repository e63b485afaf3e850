"""`make bench`: run every benchmark in its own process and write bench/RESULTS.md.

Each benchmark is a script under bench/ that prints markdown tables (and `> ` notes); a Blender
benchmark needs its own process (Blender reads its profile location when bpy is first imported).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES = [
    ("Offline provider: seconds per map set, peak memory", ["bench_procedural.py"]),
    ("Main thread: tick time with 50 jobs in flight across the four providers, apply time "
     "(2048² maps)", ["bench_tick.py", "providers", "50", "2048"]),
    ("Main thread: tick time with 20 jobs in flight (offline provider made cloud-like), apply "
     "time (2048² maps)", ["bench_tick.py", "20", "2048"]),
    ("Batch scaling: 1, 8 and 32 objects, Meshy emulator with 3 s jobs, concurrency 8",
     ["bench_batch.py", "1", "8", "32"]),
    ("Overhead: one 100k-triangle mesh, Meshy emulator, four 2048² maps",
     ["bench_overhead.py", "3"]),
    ("Meshy (emulator): requests per job, wall time 8 vs 1, added seconds", ["bench_meshy.py"]),
    ("Triverse (emulator)", ["bench_triverse.py"]),
    ("DRESSX (emulator)", ["bench_dressx.py"]),
    ("Scenario (emulator)", ["bench_scenario.py"]),
    ("Studio batch: zip size, 100 objects with per-object prompts through the CLI, the "
     "Flamenco job for 3 files", ["bench_studio.py", "100"]),
    ("Requests per job, each provider (emulators, 3 s jobs)", ["bench_requests.py"]),
    ("Batches sized to the plan: 16 objects, 3 s Meshy jobs, a 10-task plan",
     ["bench_plan.py"]),
    ("Test connection against each emulator, good key and wrong key", ["bench_connection.py"]),
    ("Hostile servers and clients: peak memory and outcome per case (before/after: "
     "`bench_hostile.py --before <older checkout>`)", ["bench_hostile.py"]),
    ("Unwrap pause per triangle (the rate behind the unwrap warning)", ["bench_unwrap.py"]),
    ("Baking a result onto the object's own UVs: seconds, memory, main-thread ticks, against "
     "Cycles", ["bench_bake.py"]),
]


def _markdown(stdout: str) -> list[str]:
    """What a benchmark printed for the page: its tables (`|` lines) and notes (`> ` lines),
    a blank line between one table or note and the next; everything else (Blender's log) is
    left out."""
    out: list[str] = []
    for ln in stdout.splitlines():
        if ln.startswith(("|", "> ")):
            if out and out[-1] and out[-1][0] != ln[0]:
                out.append("")
            out.append(ln)
        elif not ln.strip() and out and out[-1]:
            out.append("")
    while out and not out[-1]:
        out.pop()
    return out


def main() -> None:
    only = set(sys.argv[1:])
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` on {datetime.date.today().isoformat()}, "
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}.",
        "",
    ]
    for title, args in BENCHES:
        script = HERE / args[0]
        if not script.is_file() or (only and args[0] not in only):
            continue
        print(f"== {title}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), *args[1:]], capture_output=True,
                              text=True, timeout=1800)
        table = _markdown(proc.stdout)
        lines += [f"## {title}", "", f"`python bench/{' '.join(args)}` "
                  f"({time.perf_counter() - t0:.0f} s)", ""]
        lines += table if proc.returncode == 0 else ["failed:", "```", proc.stderr[-2000:], "```"]
        lines.append("")
        print("\n".join(table) if proc.returncode == 0 else proc.stderr[-2000:], flush=True)
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
