"""Hostile answers through the real runner and a real provider (issue 13, cases 7, 8 and 9):
a status that makes no sense, progress "NaN", a megabyte failure message, a job that never
ends, and Esc while a status answer trickles.

The service is a raw loopback server speaking Meshy's routes (`emulators.hostile`): the
shapes are Meshy's, the misbehaviour is whatever the test sets. What is checked is what the
artist sees: the job's state and its one line, its progress, the journal, the time Esc takes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.base import guard_loopback
from emulators.glb import cube_glb
from emulators.hostile import Behaviour, HostileServer, json_answer, trickle
from runner_driving import fast_runner, settle
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.runner import MAX_UNKNOWN_POLLS
from text_to_texture.net.http import RetryPolicy
from text_to_texture.providers.base import ProviderConfig, TextureRequest
from text_to_texture.providers.meshy import MeshyProvider

KEY = "msy_hostile_SECRET_0123456789"
TASK = "0190-hostile-task"
STATUS = f"/openapi/v2/tasks/{TASK}$"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture()
def meshy() -> Iterator[HostileServer]:
    """Takes the create; answers the balance with a 404; the status is up to the test."""
    with HostileServer({
        "/openapi/v2/retexture$": json_answer({"id": TASK, "status": "PENDING", "progress": 0}),
        "/openapi/v2/balance": json_answer({"message": "no"}, 404),
    }) as srv:
        yield srv


def provider(srv: HostileServer) -> MeshyProvider:
    return MeshyProvider(ProviderConfig(api_key=KEY, api_base=srv.url), poll_interval=0.01,
                         retry=RetryPolicy(retries=1, base=0.01, cap=0.02, max_total=2.0))


def make_job(tmp_path: Path, **options: Any) -> Job:
    jid = new_job_id()
    mesh = tmp_path / f"{jid}.glb"
    mesh.write_bytes(cube_glb())
    req = TextureRequest(job_id=jid, prompt="oak", mesh_path=str(mesh), mesh_format="GLB",
                         out_dir=str(tmp_path / "maps"), file_stem="Cube", options=options)
    return Job(id=jid, provider="MESHY", object_name="Cube", request=req)


def status_polls(srv: HostileServer) -> int:
    return sum(1 for line in srv.requests if line.startswith(f"GET /openapi/v2/tasks/{TASK}"))


def raw_json(text: str) -> Behaviour:
    """An answer whose body is `text` exactly (JSON that json.dumps would not write)."""
    body = text.encode()

    def run(conn: Any) -> None:
        from emulators.hostile import head

        conn.sendall(head(200, {"Content-Type": "application/json",
                                "Content-Length": str(len(body)), "Connection": "close"}) + body)

    return run


# --------------------------------------------------------------------------- case 8


@pytest.mark.parametrize("status", ["5", "null", '["SUCCEEDED"]', '"WARP_SPEED"', "{}"],
                         ids=["number", "null", "list", "unknown word", "object"])
def test_a_status_that_makes_no_sense_fails_after_a_bounded_number_of_polls(
    meshy: HostileServer, tmp_path: Path, status: str
) -> None:
    meshy.routes[STATUS] = raw_json(f'{{"id": "{TASK}", "status": {status}, "progress": 30}}')
    runner = fast_runner(Journal(tmp_path / "journal"))
    job = make_job(tmp_path)
    runner.start(job, provider(meshy))
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message == (
        f"Meshy keeps sending a job status this add-on cannot read ({MAX_UNKNOWN_POLLS} times "
        f"in a row), so it stopped watching; the job may still finish there — look it up in "
        f"your Meshy account ({TASK})")
    assert done.remote_id == TASK  # kept: the artist can find the paid task
    assert status_polls(meshy) == MAX_UNKNOWN_POLLS


def test_nan_progress_is_shown_as_no_progress_not_as_done(
    meshy: HostileServer, tmp_path: Path
) -> None:
    polls = {"n": 0}
    answers = [raw_json(f'{{"status": "IN_PROGRESS", "progress": {p}}}')
               for p in ("NaN", "Infinity", '"lots"', "true", "40")]

    def status(conn: Any) -> None:
        n = polls["n"] = polls["n"] + 1
        if n <= len(answers):
            answers[n - 1](conn)
        else:
            raw_json('{"status": "FAILED", "task_error": {"message": "stop here"}}')(conn)

    meshy.routes[STATUS] = status
    runner = fast_runner(Journal(tmp_path / "journal"))
    job = make_job(tmp_path)
    runner.start(job, provider(meshy))
    seen: list[Job] = []
    end = time.monotonic() + 10
    while time.monotonic() < end and not (seen and seen[-1].state.terminal):
        seen += runner.drain()
        time.sleep(0.005)
    shown = [round(s.progress, 2) for s in seen if s.state is State.RUNNING]
    assert shown and all(math.isfinite(p) for p in shown)
    assert max(shown) == 0.4 and 1.0 not in shown, shown  # "NaN" never became 100 %
    assert seen[-1].message == "Meshy: stop here"


# --------------------------------------------------------------------------- case 7


def test_a_megabyte_failure_message_is_capped_and_cleaned(
    meshy: HostileServer, tmp_path: Path
) -> None:
    text = "\x1b[2J\x1b[31mGPU\nexploded\r\n\t\u202e" + "A" * (1 << 20) + "\x07"
    meshy.routes[STATUS] = json_answer({"status": "FAILED", "task_error": {"message": text}})
    journal = Journal(tmp_path / "journal")
    runner = fast_runner(journal)
    job = make_job(tmp_path)
    runner.start(job, provider(meshy))
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message.startswith("Meshy: [2J [31mGPU exploded AAAA") and done.message[-1] == "…"
    assert len(done.message) <= 400
    assert all(c.isprintable() for c in done.message)
    entry = journal.root / f"{job.id}.json"
    assert entry.stat().st_size < 8 * 1024  # a megabyte is never rewritten at every change
    assert json.loads(entry.read_text())["message"] == done.message


# --------------------------------------------------------------------------- overall deadline


def test_a_job_that_never_ends_times_out_and_keeps_its_remote_id(
    meshy: HostileServer, tmp_path: Path
) -> None:
    meshy.routes[STATUS] = json_answer({"status": "IN_PROGRESS", "progress": 10})
    runner = fast_runner(Journal(tmp_path / "journal"))
    job = make_job(tmp_path, timeout_s=0.8)
    runner.start(job, provider(meshy))
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.FAILED and done.extra["timed_out"] is True
    assert done.message == ("Meshy did not finish within 0.8 s; it may still finish there — look "
                            f"it up in your Meshy account ({TASK})")
    assert done.remote_id == TASK
    assert not any(line.startswith("DELETE") for line in meshy.requests)  # left to finish


# --------------------------------------------------------------------------- case 9


def test_esc_while_a_status_answer_trickles_cancels_within_a_second(
    meshy: HostileServer, tmp_path: Path
) -> None:
    meshy.routes[STATUS] = trickle(b'{"status": "IN_PROGRESS"}' + b" " * 200, 2.0)
    runner = fast_runner(Journal(tmp_path / "journal"))
    job = make_job(tmp_path)
    runner.start(job, provider(meshy))
    end = time.monotonic() + 5
    while status_polls(meshy) == 0 and time.monotonic() < end:
        runner.drain()
        time.sleep(0.01)
    time.sleep(0.3)  # the answer is trickling now
    pressed = time.monotonic()
    runner.cancel(job.id)
    state = None
    while time.monotonic() - pressed < 5 and state is not State.CANCELED:
        for snap in runner.drain():
            state = snap.state
        time.sleep(0.005)
    assert state is State.CANCELED
    assert time.monotonic() - pressed < 1.0


def test_esc_while_a_map_download_trickles_cancels_within_a_second(
    meshy: HostileServer, tmp_path: Path
) -> None:
    from emulators.base import map_png

    meshy.routes[STATUS] = lambda conn: json_answer({
        "status": "SUCCEEDED", "progress": 100,
        "texture_urls": [{"base_color": f"{meshy.url}/maps/base.png"}]})(conn)
    meshy.routes["/maps/base.png"] = trickle(map_png("base_color", 128), 2.0, "image/png")
    runner = fast_runner(Journal(tmp_path / "journal"))
    job = make_job(tmp_path)
    runner.start(job, provider(meshy))
    state = None
    end = time.monotonic() + 5
    while state is not State.DOWNLOADING and time.monotonic() < end:
        for snap in runner.drain():
            state = snap.state
        time.sleep(0.01)
    time.sleep(0.5)  # the map is trickling now
    pressed = time.monotonic()
    runner.cancel(job.id)
    while time.monotonic() - pressed < 5 and state is not State.CANCELED:
        for snap in runner.drain():
            state = snap.state
        time.sleep(0.005)
    assert state is State.CANCELED
    assert time.monotonic() - pressed < 1.0
    assert not list((tmp_path / "maps").glob("*.png"))  # no half map left behind
