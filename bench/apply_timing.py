"""Timing an apply that the engine spreads over ticks (shared by the benchmarks)."""

from __future__ import annotations

import time
from typing import Any


def timed_applies(original: Any, sink: list, steps: list | None = None) -> Any:
    """Wrap `blender.apply.steps`: each job's apply runs a step per tick; record per job the
    main-thread seconds of all its steps (`sink`) and every step's own (`steps`), as
    (provider id, seconds)."""
    def wrapper(eng, job):  # type: ignore[no-untyped-def]
        inner = original(eng, job)
        total = 0.0
        while True:
            t = time.perf_counter()
            try:
                next(inner)
                done = False
            except StopIteration:
                done = True
            dt = time.perf_counter() - t
            total += dt
            if steps is not None:
                steps.append((job.provider, dt))
            if done:
                sink.append((job.provider, total))
                return
            yield
    return wrapper
