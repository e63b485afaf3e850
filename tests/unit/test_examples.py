"""Every example payload docs/providers.md shows (§7) goes through the provider's own parser.

The examples are read from the page itself, so the page and the code cannot drift apart: a
new example without a check here fails, and so does a check whose example was removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from text_to_texture.net.http import HttpError
from text_to_texture.providers.base import RemoteState
from text_to_texture.providers.dressx import maps_of
from text_to_texture.providers.meshy import contract as meshy
from text_to_texture.providers.scenario import contract as scenario
from text_to_texture.providers.triverse import contract as triverse

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
BLOCK = re.compile(r"^```json (?P<name>[\w-]+)\n(?P<body>.*?)^```", re.M | re.S)


def examples() -> dict[str, Any]:
    return {m["name"]: json.loads(m["body"]) for m in BLOCK.finditer(DOC.read_text("utf-8"))}


def meshy_task(doc: Any) -> None:
    status = meshy.status_of(doc)
    assert status.state is RemoteState.SUCCEEDED and status.progress == 1.0
    assert status.maps["base_color"].endswith("texture_0.png?Expires=1")
    assert status.maps["uv_mesh"].endswith("model.glb?Expires=1")
    assert meshy.task_id_of(doc) == "018a210d-8ba4-705c-b111-1f1776f7f578"


def _meshy_error(status: int, doc: Any) -> HttpError:
    hooks = meshy.MeshyHooks()
    message = hooks.error_message(status, doc)
    line = hooks.describe(status, message, "api", "Meshy") or ""
    return HttpError(line, status=status, provider_message=message, body=doc)


def meshy_error_queue_full(doc: Any) -> None:
    hooks = meshy.MeshyHooks()
    assert hooks.queue_full(429, doc, "POST", meshy.V2_CREATE)
    assert hooks.is_transient(429, doc) is False  # waited for by the runner, not retried
    assert _meshy_error(429, doc).message.startswith("Your Meshy plan's limit of unfinished")


def meshy_error_conflict(doc: Any) -> None:
    exc = _meshy_error(400, doc)
    assert "prompt and the reference image were both sent" in exc.message
    assert meshy.refused_field(exc, {"texture_prompt": "x", "enable_pbr": True}) == ""


def meshy_error_no_route(doc: Any) -> None:
    exc = _meshy_error(404, doc)
    assert meshy.is_no_route(exc) and "route not found" in exc.message


def scenario_model(doc: Any) -> None:
    model = scenario.model_of(doc, "model_abc")
    assert model.route == scenario.ROUTE_TXT2IMG and model.type == "sd-xl"


def scenario_job(doc: Any) -> None:
    assert scenario.job_id_of(doc) == "job_123"
    assert scenario.asset_ids(doc["job"]) == ["asset_1"]
    assert scenario.STATES[doc["job"]["status"]] is RemoteState.SUCCEEDED
    assert scenario.progress_of(doc["job"]["progress"]) == 1.0
    assert scenario.cost_of(doc) == 5


def scenario_dry_run(doc: Any) -> None:
    assert scenario.cost_of(doc) == 10


def scenario_cancel(doc: Any) -> None:
    assert scenario.STATES[doc["job"]["status"]] is RemoteState.CANCELED


def triverse_create(doc: Any) -> None:
    data = triverse.unwrap(doc)
    assert triverse.first_str(data, "task_uuid") == "9f0c3a52-1b7e-4c38-9a53-2f6a1e0b7d41"
    until, header = triverse.read_after_write(data, 1000.0)
    assert (until, header) == (1005.0, "X-Read-After-Write")
    assert triverse.first_number(data, "cost_credits") == 20
    assert triverse.status_of(data).state is RemoteState.QUEUED


def triverse_create_old(doc: Any) -> None:
    data = triverse.unwrap(doc)
    assert triverse.first_str(data, "task_uuid", "taskUuid", "task_id", "taskId") == (
        "9f0c3a52-1b7e-4c38-9a53-2f6a1e0b7d41")
    assert triverse.first_number(data, "cost_credits", "costCredits") == 20
    assert triverse.read_after_write(data, 0.0) == (triverse.READ_AFTER_WRITE_GRACE_S, "")


def triverse_presign(doc: Any) -> None:
    data = triverse.unwrap(doc)
    assert triverse.first_str(data, "download_url", "url") == "https://storage.example/k.glb?sig=1"


def triverse_task(doc: Any) -> None:
    status = triverse.status_of(triverse.unwrap(doc))
    assert status.state is RemoteState.RUNNING and status.progress == pytest.approx(0.4)


def triverse_error(doc: Any) -> None:
    hooks = triverse.TriverseHooks()
    assert triverse.envelope_code(doc) == 2000
    assert hooks.queue_full(429, doc, "POST", "/tasks/text-to-texture")
    assert not hooks.queue_full(429, doc, "POST", "/upload/model")  # an upload limit instead
    line = hooks.describe(429, hooks.error_message(429, doc), "create", "Triverse")
    assert line is not None and line.startswith("Triverse's task queue for your account is full")


def dressx_webhook(doc: Any) -> None:
    assert maps_of(doc) == {"base_color": "https://api.dressx.com/v1/files/a.jpg",
                            "normal": "https://api.dressx.com/v1/files/n.jpg",
                            "roughness": "https://api.dressx.com/v1/files/r.jpg",
                            "metallic": "https://api.dressx.com/v1/files/m.jpg"}


CHECKS: dict[str, Callable[[Any], None]] = {
    "meshy-task": meshy_task,
    "meshy-error-queue-full": meshy_error_queue_full,
    "meshy-error-conflict": meshy_error_conflict,
    "meshy-error-no-route": meshy_error_no_route,
    "scenario-model": scenario_model,
    "scenario-job": scenario_job,
    "scenario-dry-run": scenario_dry_run,
    "scenario-cancel": scenario_cancel,
    "triverse-create": triverse_create,
    "triverse-create-old": triverse_create_old,
    "triverse-presign": triverse_presign,
    "triverse-task": triverse_task,
    "triverse-error": triverse_error,
    "dressx-webhook": dressx_webhook,
}


def test_every_example_has_a_check_and_every_check_an_example() -> None:
    assert set(examples()) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_documented_example_parses(name: str) -> None:
    doc = examples()[name]
    assert isinstance(doc, dict) and doc, f"{name}: a provider answers with a JSON object"
    CHECKS[name](doc)
