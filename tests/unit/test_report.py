"""The report an artist sends us: what happened, and nothing secret.

Real jobs run against the emulators; the report is then searched for every form of the keys,
for inline data and for tokens (signed links, the DRESSX webhook token, a Basic auth token).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from emulators.base import guard_loopback
from emulators.dressx import DressxEmulator
from emulators.glb import cube_glb
from emulators.meshy import MeshyEmulator
from emulators.scenario import ScenarioEmulator
from emulators.triverse import TriverseEmulator
from runner_driving import fast_runner, run
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.jobs.report import job_report, report_text
from text_to_texture.net import local_server
from text_to_texture.net.exchanges import ExchangeLog, excerpt, read_lines, scrub
from text_to_texture.net.http import RetryPolicy
from text_to_texture.providers.base import ProviderConfig, TextureRequest
from text_to_texture.providers.dressx import DressxProvider
from text_to_texture.providers.meshy import MeshyProvider
from text_to_texture.providers.scenario import ScenarioProvider
from text_to_texture.providers.triverse import TriverseProvider

FAST = RetryPolicy(retries=2, base=0.01, cap=0.05, max_total=5.0)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


def make_job(tmp_path: Path, provider: str, name: str = "Cube", **request: Any) -> Job:
    jid = new_job_id()
    mesh = tmp_path / f"{name}.glb"
    mesh.write_bytes(cube_glb())
    req = TextureRequest(job_id=jid, prompt="weathered oak", mesh_path=str(mesh),
                         mesh_format="GLB", out_dir=str(tmp_path / "maps"), file_stem=name,
                         **request)
    return Job(id=jid, provider=provider, object_name=name, request=req)


def assert_clean(report: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in report
    assert "data:" not in report
    for token in ("Signature=", "Expires=", "sig=", "Key-Pair-Id", "Basic ", "Bearer "):
        assert token not in report, token


def test_a_meshy_report_says_what_happened_and_nothing_secret(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    with MeshyEmulator(job_seconds=0.2) as emu:
        emu.refuse_fields = {"uv_mode"}
        emu.fail_next(503, 1, method="GET", path="^/openapi/v2/tasks/")
        job = make_job(tmp_path, "MESHY", options={"enable_original_uv": False,
                                                   "reference_image_url": "https://x.y/r.png"})
        cfg = ProviderConfig(api_key=emu.api_key, api_base=emu.url)
        done = run(fast_runner(journal), [job],
                   lambda: MeshyProvider(cfg, poll_interval=0.05, retry=FAST))[job.id]
        assert done.state is State.READY, done.message
        report = job_report(journal, done, base_url=emu.url, about="Text to Texture 9.9",
                            secrets=[emu.api_key])
    lines = report.splitlines()
    assert lines[0] == f"Text to Texture report — job {job.id}"
    assert "Text to Texture 9.9" in lines and "Provider: Meshy (127.0.0.1)" in lines
    assert f"Remote id: {done.remote_id}" in lines
    assert "Note: Meshy refused `uv_mode`; sent without it" in lines
    assert "reference_image_url=(a link, not shown)" in report
    assert any("POST /openapi/v2/retexture → HTTP 400" in ln for ln in lines)
    assert any("note: Meshy refused `uv_mode`; sent without it" in ln for ln in lines)
    assert any("GET /openapi/v2/tasks/" in ln and "HTTP 503" in ln for ln in lines)
    assert any(ln.strip().startswith('{"type":"invalid_input"') for ln in lines)  # 2 kB body
    assert any("GET /assets/tasks/" in ln and "?" not in ln for ln in lines)  # downloads
    assert_clean(report, [emu.api_key, emu.api_key[4:]])


def test_scenario_triverse_and_dressx_reports_hold_no_secret(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    runner = fast_runner(journal)
    with ScenarioEmulator(job_seconds=0.2) as scn, TriverseEmulator(job_seconds=0.2) as trv, \
            DressxEmulator(job_seconds=0.2) as dsx:
        scn_cfg = ProviderConfig(api_key=scn.api_key, api_base=f"{scn.url}/v1", extras={
            "api_secret": scn.api_secret, "model_id": scn.default_model})
        basic = base64.b64encode(f"{scn.api_key}:{scn.api_secret}".encode()).decode()
        trv_cfg = ProviderConfig(api_key=trv.api_key, api_base=trv.url)
        dsx_cfg = ProviderConfig(api_key=dsx.api_key, api_base=dsx.url,
                                 extras={"public_url": "http://127.0.0.1:{port}",
                                         "coordinator_key": "dsx_coordinator_SECRET_42"})
        cases = [
            ("SCENARIO", lambda: ScenarioProvider(scn_cfg, poll_interval=0.03, retry=FAST),
             [scn.api_key, scn.api_secret, basic]),
            ("TRIVERSE", lambda: TriverseProvider(trv_cfg, poll_interval=0.05, retry=FAST,
                                                  upload_retry=FAST, rate_limit_wait=0.05),
             [trv.api_key]),
            ("DRESSX", lambda: DressxProvider(dsx_cfg, poll_interval=0.02, retry=FAST),
             [dsx.api_key, "dsx_coordinator_SECRET_42"]),
        ]
        try:
            for pid, make, secrets in cases:
                job = make_job(tmp_path, pid, pid.title())
                if pid == "DRESSX":
                    obj = Path(job.request.mesh_path).with_suffix(".obj")
                    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                                   "f 1/1 2/2 3/3\n")
                    job.request.mesh_path, job.request.mesh_format = str(obj), "OBJ"
                done = run(runner, [job], make)[job.id]
                assert done.state is State.READY, (pid, done.message)
                report = job_report(journal, done, secrets=secrets)
                assert_clean(report, secrets)
                assert report.count("\n") > 8, report
                if pid == "DRESSX":
                    token = done.remote_id.split(":")[2]
                    assert token not in report and "Remote id: order " in report
        finally:
            local_server.shutdown()


def test_masking_rules() -> None:
    key = "msy_live_0123456789abcdef"
    answer = json.dumps({
        "id": "018a210d-8ba4-705c-b111-1f1776f7f578",
        "echo": f"bad key {key}", "access_token": "short-but-secret",
        "input": {"model_url": "data:model/gltf-binary;base64,Z2xURgIAAAA" + "A" * 5000},
        "output": {"glb": "https://cdn.example/a.glb?X-Amz-Signature=abc&Expires=1"},
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
        "blob": "x" * 60,
    }).encode()
    text = excerpt(answer, "application/json", [key])
    assert key not in text and "short-but-secret" not in text and "data:" not in text
    assert "X-Amz-Signature" not in text and "eyJhbGci" not in text and "x" * 60 not in text
    assert "018a210d-8ba4-705c-b111-1f1776f7f578" in text  # ids stay readable
    assert len(text) <= 2049
    assert excerpt(b"<html>oops</html>", "text/html") == ""  # only JSON answers are kept
    assert scrub("POST /w/abcdefghijklmnopqrstuvwxyz012345/") == "POST /w/***/"


def test_a_long_log_keeps_its_start_and_end(tmp_path: Path) -> None:
    log = ExchangeLog(["secret-key-value"])
    path = tmp_path / "x.jsonl"
    log.attach(str(path))
    for i in range(500):
        log.exchange("GET", f"/tasks/{i}", 200, 0.01, b'{"status":"IN_PROGRESS"}',
                     "application/json")
    log.note("with secret-key-value inside")
    lines = read_lines(str(path))
    assert 400 <= len(lines) <= 402 and lines[-1]["note"] == "with *** inside"  # capped
    job = make_job(tmp_path, "MESHY")
    text = report_text(job, lines)
    assert "more exchanges left out" in text and text.count("GET /tasks/") == 59
