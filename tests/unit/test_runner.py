"""The job engine without Blender: states, concurrency, cancel, failures, journal and resume."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from text_to_texture.jobs.job import Job, State, TransitionError, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.runner import MAX_POLL_FAILURES, WORKER_NICENESS, Runner
from text_to_texture.providers.base import (
    CancelToken,
    Provider,
    ProviderError,
    RemoteState,
    RemoteStatus,
    TextureRequest,
    ramped_delay,
)
from text_to_texture.providers.meshy import MeshyProvider
from text_to_texture.providers.scenario import ScenarioProvider
from text_to_texture.providers.triverse import TriverseProvider


class FakeService:
    """A remote service the fake provider talks to: counts calls, holds tasks."""

    def __init__(self, polls_to_finish: int = 3, poll_delay: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.submitted: list[str] = []
        self.canceled: list[str] = []
        self.polls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.polls_to_finish = polls_to_finish
        self.poll_delay = poll_delay
        self.fail_with = ""
        self.poll_errors = 0  # retryable errors before answering
        self.journal_seen: list[str] = []
        self.journal: Journal | None = None


class FakeProvider(Provider):
    id = "FAKE"
    label = "Fake"
    max_concurrency = 2
    poll_interval = 0.01
    service: FakeService

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        svc = self.service
        if svc.journal is not None:  # the journal must know the job before the request leaves
            job = svc.journal.load(request.job_id)
            svc.journal_seen.append(job.state.value if job else "missing")
        with svc.lock:
            rid = f"r{len(svc.submitted)}"
            svc.submitted.append(request.job_id)
            svc.polls[rid] = 0
            svc.in_flight += 1
            svc.max_in_flight = max(svc.max_in_flight, svc.in_flight)
        return rid

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        svc = self.service
        time.sleep(svc.poll_delay)
        with svc.lock:
            if svc.poll_errors > 0:
                svc.poll_errors -= 1
                raise ProviderError("service hiccup", retryable=True)
            svc.polls[remote_id] += 1
            n = svc.polls[remote_id]
        if svc.fail_with:
            return RemoteStatus(RemoteState.FAILED, message=svc.fail_with)
        if n >= svc.polls_to_finish:
            with svc.lock:
                svc.in_flight -= 1
            return RemoteStatus(RemoteState.SUCCEEDED, 1.0, maps={"base_color": "u"})
        return RemoteStatus(RemoteState.RUNNING, n / svc.polls_to_finish)

    def fetch(self, remote_id, status, request, cancel, progress):  # type: ignore[no-untyped-def]
        path = Path(request.out_dir) / f"{request.file_stem}_base_color.png"
        path.write_bytes(b"png")
        progress(1.0, "downloaded")
        return {"base_color": str(path)}

    def cancel(self, remote_id: str) -> None:
        with self.service.lock:
            self.service.canceled.append(remote_id)
            self.service.in_flight -= 1


def make_provider(svc: FakeService) -> FakeProvider:
    p = FakeProvider()
    p.service = svc
    return p


def make_job(tmp_path: Path, name: str = "Cube") -> Job:
    jid = new_job_id()
    req = TextureRequest(job_id=jid, prompt="oak", out_dir=str(tmp_path), file_stem=name)
    return Job(id=jid, provider="FAKE", object_name=name, request=req)


def run_until(runner: Runner, ids: list[str], timeout: float = 10.0) -> dict[str, Job]:
    """What the main thread does: drain events until every job is terminal or READY."""
    seen: dict[str, Job] = {}
    history: dict[str, list[str]] = {i: [] for i in ids}
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for snap in runner.drain():
            seen[snap.id] = snap
            if not history[snap.id] or history[snap.id][-1] != snap.state.value:
                history[snap.id].append(snap.state.value)
        if all(i in seen and (seen[i].state.terminal or seen[i].state is State.READY)
               for i in ids) and not runner.busy():
            break
        time.sleep(0.005)
    for i in ids:
        seen[i].extra["history"] = history[i]
    return seen


@pytest.fixture()
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def test_a_job_walks_every_state_and_is_journaled(tmp_path: Path, journal: Journal) -> None:
    svc = FakeService()
    svc.journal = journal
    runner = Runner(journal)
    job = make_job(tmp_path)
    runner.start(job, make_provider(svc))
    done = run_until(runner, [job.id])[job.id]
    assert done.extra["history"] == ["submitting", "running", "downloading", "ready"]
    assert svc.journal_seen == ["submitting"]  # journaled before the request left
    on_disk = journal.load(job.id)
    assert on_disk is not None and on_disk.state is State.READY
    assert on_disk.remote_id == "r0"
    assert Path(on_disk.maps["base_color"]).read_bytes() == b"png"


def test_concurrency_is_bounded_per_provider(tmp_path: Path, journal: Journal) -> None:
    svc = FakeService(polls_to_finish=4, poll_delay=0.01)
    runner = Runner(journal)
    jobs = [make_job(tmp_path, f"o{i}") for i in range(6)]
    provider = make_provider(svc)
    assert runner.free_slots(provider) == 2
    for job in jobs:
        runner.start(job, make_provider(svc))
    assert runner.free_slots(provider) == 0
    done = run_until(runner, [j.id for j in jobs])
    assert all(j.state is State.READY for j in done.values())
    assert svc.max_in_flight == 2
    assert len(svc.submitted) == 6


def test_a_limit_override_raises_concurrency(tmp_path: Path, journal: Journal) -> None:
    svc = FakeService(polls_to_finish=5, poll_delay=0.01)
    runner = Runner(journal, limits={"FAKE": 4})
    jobs = [make_job(tmp_path, f"o{i}") for i in range(8)]
    for job in jobs:
        runner.start(job, make_provider(svc))
    run_until(runner, [j.id for j in jobs])
    assert svc.max_in_flight == 4


class RampedProvider(FakeProvider):
    """Polls on its own schedule; a fixed `poll_interval` of a minute would time the test out."""

    poll_interval = 60.0
    asked: list[float]

    def poll_delay(self, elapsed: float) -> float:
        self.asked.append(elapsed)
        return 0.01


def test_the_runner_waits_what_poll_delay_says_between_polls(
        tmp_path: Path, journal: Journal) -> None:
    svc = FakeService(polls_to_finish=4)
    provider = RampedProvider()
    provider.service, provider.asked = svc, []
    runner = Runner(journal)
    job = make_job(tmp_path)
    t0 = time.monotonic()
    runner.start(job, provider)
    assert run_until(runner, [job.id], timeout=5.0)[job.id].state is State.READY
    assert time.monotonic() - t0 < 5.0
    assert len(provider.asked) == 3  # after each of the three unfinished polls
    assert provider.asked == sorted(provider.asked) and 0 <= provider.asked[0] < 1.0


def test_poll_schedules_start_fast_back_off_and_never_exceed_the_interval() -> None:
    assert FakeProvider().poll_delay(0.0) == FakeProvider().poll_delay(99.0) == 0.01
    assert [ramped_delay(t, 3.0) for t in (0, 9.9, 10, 29.9, 30, 600)] == [1, 1, 2, 2, 3, 3]
    assert ramped_delay(0.0, 0.05) == 0.05  # a provider set to poll faster stays faster
    for cls in (MeshyProvider, TriverseProvider, ScenarioProvider):
        p = cls()
        assert (p.poll_delay(0.0), p.poll_delay(15.0), p.poll_delay(120.0)) == (1.0, 2.0, 3.0)
        assert cls(poll_interval=0.05).poll_delay(0.0) == 0.05


def test_cancel_reaches_the_service_and_ends_canceled(tmp_path: Path, journal: Journal) -> None:
    svc = FakeService(polls_to_finish=10_000)
    runner = Runner(journal)
    job = make_job(tmp_path)
    runner.start(job, make_provider(svc))
    end = time.monotonic() + 5
    while not svc.submitted and time.monotonic() < end:
        time.sleep(0.005)
    time.sleep(0.05)
    assert runner.cancel(job.id)
    done = run_until(runner, [job.id])[job.id]
    assert done.state is State.CANCELED
    assert svc.canceled == ["r0"]
    assert journal.load(job.id).state is State.CANCELED  # type: ignore[union-attr]


def test_a_failed_task_carries_the_providers_message(tmp_path: Path, journal: Journal) -> None:
    svc = FakeService()
    svc.fail_with = "Content safety check failed"
    runner = Runner(journal)
    job = make_job(tmp_path)
    runner.start(job, make_provider(svc))
    done = run_until(runner, [job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message == "Content safety check failed"


def test_transient_poll_errors_are_tolerated_then_bounded(tmp_path: Path, journal: Journal) -> None:
    svc = FakeService()
    svc.poll_errors = 2
    runner = Runner(journal)
    runner.poll_retry_base = 0.001
    ok = make_job(tmp_path, "ok")
    runner.start(ok, make_provider(svc))
    assert run_until(runner, [ok.id])[ok.id].state is State.READY

    svc2 = FakeService()
    svc2.poll_errors = 100
    bad = make_job(tmp_path, "bad")
    FakeProvider.poll_interval = 0.001
    try:
        runner.start(bad, make_provider(svc2))
        done = run_until(runner, [bad.id], timeout=60)[bad.id]
    finally:
        FakeProvider.poll_interval = 0.01
    assert done.state is State.FAILED
    assert f"did not answer after {MAX_POLL_FAILURES} tries" in done.message
    assert svc2.poll_errors == 100 - MAX_POLL_FAILURES


def test_a_bug_in_a_provider_fails_the_job_not_the_runner(tmp_path: Path, journal: Journal) -> None:
    class Broken(FakeProvider):
        def poll(self, remote_id, request, cancel):  # type: ignore[no-untyped-def]
            raise KeyError("texture_urls")

    svc = FakeService()
    runner = Runner(journal)
    job = make_job(tmp_path)
    p = Broken()
    p.service = svc
    runner.start(job, p)
    done = run_until(runner, [job.id])[job.id]
    assert done.state is State.FAILED
    assert "unexpected error" in done.message
    assert not runner.busy()
    assert not [t for t in threading.enumerate() if t.name.startswith("t2t-")]


def test_a_killed_runner_resumes_from_the_journal_without_resubmitting(
    tmp_path: Path, journal: Journal
) -> None:
    svc = FakeService(polls_to_finish=40, poll_delay=0.005)
    first = Runner(journal)
    job = make_job(tmp_path)
    first.start(job, make_provider(svc))  # returns at once; the worker journals before sending
    end = time.monotonic() + 5
    while time.monotonic() < end:
        entry = journal.load(job.id)
        if entry is not None and entry.state is State.RUNNING:
            break
        time.sleep(0.005)
    first.kill()  # Blender died: nothing more is written by the old workers
    time.sleep(0.05)
    state_at_crash = journal.load(job.id)
    assert state_at_crash is not None and state_at_crash.state is State.RUNNING
    assert state_at_crash.remote_id == "r0"

    second = Runner(journal)  # a new Blender session
    (pending,) = journal.unfinished()
    second.resume(pending, make_provider(svc))
    done = run_until(second, [job.id])[job.id]
    assert done.state is State.READY
    assert svc.submitted == [job.id]  # paid for once
    assert journal.load(job.id).state is State.READY  # type: ignore[union-attr]


@pytest.mark.parametrize("safe", [False, True])
def test_a_job_cut_off_while_submitting(tmp_path: Path, journal: Journal, safe: bool) -> None:
    svc = FakeService()
    job = make_job(tmp_path)
    job.move(State.SUBMITTING, "Sending")
    journal.write(job)
    provider = make_provider(svc)
    FakeProvider.resubmit_safe = safe
    try:
        runner = Runner(journal)
        runner.resume(journal.load(job.id), provider)  # type: ignore[arg-type]
        done = run_until(runner, [job.id])[job.id]
    finally:
        FakeProvider.resubmit_safe = False
    if safe:
        assert done.state is State.READY and svc.submitted == [job.id]
    else:
        assert done.state is State.FAILED and svc.submitted == []
        assert "Check your Fake account before retrying" in done.message


def test_states_only_move_forward() -> None:
    job = Job(id="abc", provider="FAKE", object_name="x", request=TextureRequest("abc", "p"))
    job.move(State.SUBMITTING)
    job.move(State.QUEUED)  # a "queue full" answer: nothing was created, the job waits again
    job.move(State.SUBMITTING)
    job.move(State.RUNNING)
    with pytest.raises(TransitionError):
        job.move(State.QUEUED)
    with pytest.raises(TransitionError):
        job.move(State.SUBMITTING)
    job.move(State.FAILED, "boom")
    with pytest.raises(TransitionError):
        job.move(State.RUNNING)
    assert job.message == "boom"


def test_journal_round_trip_and_atomic_files(journal: Journal, tmp_path: Path) -> None:
    job = make_job(tmp_path)
    job.maps = {"base_color": "/x.png"}
    journal.write(job)
    again = journal.load(job.id)
    assert again is not None and again.to_dict() == job.to_dict()
    assert [p.name for p in journal.root.iterdir()] == [f"{job.id}.json"]  # no temp files left
    (journal.root / "zzz.json").write_text("{not json")
    assert [j.id for j in journal.all()] == [job.id]  # a damaged entry is skipped, not fatal
    with pytest.raises(ValueError):
        journal.load("../etc/passwd")


def test_a_disk_error_while_saving_is_one_clear_line(tmp_path: Path, journal: Journal) -> None:
    class DiskFull(FakeProvider):
        def fetch(self, remote_id, status, request, cancel, progress):  # type: ignore[no-untyped-def]
            raise OSError(28, "No space left on device", request.out_dir)

    p = DiskFull()
    p.service = FakeService(polls_to_finish=1)
    runner = Runner(journal)
    job = make_job(tmp_path)
    runner.start(job, p)
    done = run_until(runner, [job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message == f"Could not save the maps (No space left on device): {tmp_path}"


def test_a_key_echoed_by_the_service_never_reaches_the_job(
    tmp_path: Path, journal: Journal
) -> None:
    from text_to_texture.providers.base import ProviderConfig

    svc = FakeService()
    svc.fail_with = "busy (request signed with sk_live_0123456789)"
    p = make_provider(svc)
    p.config = ProviderConfig(api_key="sk_live_0123456789")
    runner = Runner(journal)
    job = make_job(tmp_path)
    runner.start(job, p)
    done = run_until(runner, [job.id])[job.id]
    assert done.message == "busy (request signed with ***)"
    assert "sk_live" not in (journal.root / f"{job.id}.json").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_workers_run_below_blenders_own_thread_and_leave_it_alone(
    tmp_path: Path, journal: Journal
) -> None:
    seen: list[int] = []

    class Watching(FakeProvider):
        def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().submit(request, cancel)

    p = Watching()
    p.service = FakeService()
    runner = Runner(journal)
    job = make_job(tmp_path)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    runner.start(job, p)
    assert run_until(runner, [job.id])[job.id].state is State.READY
    assert seen == [max(mine, WORKER_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_start_returns_at_once_and_main_thread_writes_wait_for_nobody(
    tmp_path: Path, journal: Journal
) -> None:
    """`start` only hands the job over; `write_later` journals in order on the helper thread,
    and `flush` waits for it (what a file load or the end of a script does)."""
    svc = FakeService(polls_to_finish=2)
    runner = Runner(journal)
    job = make_job(tmp_path)
    runner.start(job, make_provider(svc))
    done = run_until(runner, [job.id])[job.id]
    done.move(State.APPLIED, "Applied to 'Cube'", 1.0)
    runner.write_later(done)
    assert runner.flush(5.0)
    on_disk = journal.load(job.id)
    assert on_disk is not None and on_disk.state is State.APPLIED
    end = time.monotonic() + 5
    while [t for t in threading.enumerate() if t.name.startswith("t2t-")]:
        assert time.monotonic() < end, "a runner thread outlived its work"
        time.sleep(0.01)
