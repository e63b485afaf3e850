"""Driving the real job runner from a test, as the main thread does: start, drain, settle."""

from __future__ import annotations

import time
from typing import Any

from text_to_texture.jobs.job import Job, State
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.runner import Runner


def fast_runner(journal: Journal) -> Runner:
    """A runner whose pauses (after a failed poll, after a queue-full answer) are test-sized."""
    runner = Runner(journal)
    runner.poll_retry_base = 0.01
    runner.queue_wait_s = 0.02
    runner.queue_hint_min_s = 0.01
    return runner


def run(runner: Runner, jobs: list[Job], provider_for: Any, timeout: float = 15.0,
        seen_messages: list[str] | None = None) -> dict[str, Job]:
    """Start each job with a fresh provider, then settle them."""
    for job in jobs:
        runner.start(job, provider_for())
    return settle(runner, [j.id for j in jobs], timeout, seen_messages)


def settle(runner: Runner, ids: list[str], timeout: float = 15.0,
           seen_messages: list[str] | None = None, bake_target: Any = None) -> dict[str, Job]:
    """Drain events until every job is READY or terminal and no worker is left. A job that
    bakes gets `bake_target` as its object, as the main thread would hand it over (None:
    there is no object here, so the result keeps the provider's mesh)."""
    seen: dict[str, Job] = {}
    asked: set[str] = set()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for snap in runner.drain():
            seen[snap.id] = snap
            if snap.state is State.BAKING and snap.id not in asked:
                asked.add(snap.id)
                runner.provide_target(snap.id, bake_target, "no object in this test")
            if seen_messages is not None:
                seen_messages.append(snap.message)
        if all(i in seen and (seen[i].state.terminal or seen[i].state is State.READY)
               for i in ids) and not runner.busy():
            return seen
        time.sleep(0.005)
    raise AssertionError(f"jobs did not settle: {[(j.id, j.state) for j in seen.values()]}")
