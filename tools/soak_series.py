"""Run the soak test once or as a series, keeping the seed and the whole log of every run that
fails (`make soak`, `make soak-series`).

Each run's seed is chosen here and printed before the run starts, the run's output goes to a log
file, and a failing run's log is kept under `build/soak/` with its path printed, so a failure seen
once can be replayed (`SOAK_SEED=<seed> make soak`) and read. Passing runs' logs are removed
unless `--keep-all`. With `--hog M`, M of the runs (spread over the series) have CPU hogs running
beside them (one busy process per core by default), stopped when the run ends.

    python tools/soak_series.py                     # one run (make soak)
    python tools/soak_series.py --runs 50 --hog 10  # a series (make soak-series)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / "build" / "soak"
_HOG = "while True:\n    pass\n"


def _hog_runs(runs: int, hogs: int) -> set[int]:
    """Which run indexes get a hog: spread evenly, so hogged runs are not all at the end."""
    hogs = max(0, min(hogs, runs))
    return {round((i + 0.5) * runs / hogs - 0.5) for i in range(hogs)} if hogs else set()


def _start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", _HOG], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(count)]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_once(seed: int, hogs: int, log_path: Path, extra: list[str]) -> tuple[bool, float]:
    """One soak run with `seed`; its whole output goes to `log_path`. (passed, seconds)."""
    # The test gives a hogged run's rounds more time: its bakes run at a lower priority than
    # the hogs (by design, to keep Blender smooth), so they finish, only later.
    env = dict(os.environ, SOAK_SEED=str(seed), SOAK_CPU_HOGS=str(hogs))
    cmd = [sys.executable, "-m", "pytest", "tests/soak", "-q", "-s", "-p", "no:cacheprovider",
           *extra]
    hog_procs = _start_hogs(hogs) if hogs else []
    began = time.monotonic()
    try:
        with open(log_path, "wb") as log:
            log.write(f"soak seed {seed}; CPU hogs: {hogs}; {' '.join(cmd)}\n".encode())
            log.flush()
            code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT).returncode
    finally:
        _stop(hog_procs)
    return code == 0, time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--hog", type=int, default=0, help="how many of the runs have CPU hogs")
    ap.add_argument("--hog-procs", type=int, default=os.cpu_count() or 2,
                    help="busy processes per hogged run (default: one per core)")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED") or 0),
                    help="the first run's seed (default: random; SOAK_SEED sets it too)")
    ap.add_argument("--keep-all", action="store_true", help="keep the logs of passing runs too")
    ap.add_argument("--stop-on-failure", action="store_true")
    args, extra = ap.parse_known_args(argv)
    # A series stopped with SIGTERM (kill, CI's timeout) still stops its hogs: `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    hogged = _hog_runs(args.runs, args.hog)
    rng = random.SystemRandom()
    failed: list[tuple[int, Path]] = []
    done = 0
    for i in range(args.runs):
        seed = args.seed if (i == 0 and args.seed) else rng.randrange(1, 2**31)
        hogs = args.hog_procs if i in hogged else 0
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_path = LOG_DIR / f"soak-{stamp}-seed{seed}.log"
        replay = f"SOAK_SEED={seed} make soak" + (" SOAK_HOG=1" if hogs else "")
        print(f"soak run {i + 1}/{args.runs}: seed {seed}"
              f"{f' with {hogs} CPU hog(s)' if hogs else ''} — replay: {replay}", flush=True)
        ok, took = run_once(seed, hogs, log_path, extra)
        done += 1
        if ok:
            print(f"  passed in {took:.0f} s", flush=True)
            if not args.keep_all:
                log_path.unlink(missing_ok=True)
        else:
            failed.append((seed, log_path))
            print(f"  FAILED in {took:.0f} s; seed {seed}; log kept: {log_path}", flush=True)
            if args.stop_on_failure:
                break
    hog_note = f", {len([i for i in hogged if i < done])} with CPU hogs" if hogged else ""
    summary = f"soak series: {done - len(failed)} of {done} passed{hog_note}"
    if failed:
        summary += "; failed seeds: " + ", ".join(f"{s} ({p})" for s, p in failed)
    print(summary, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
