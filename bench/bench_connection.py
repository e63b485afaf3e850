"""What Test connection says for each provider against its emulator, with a good key and with a
wrong one, and what it cost there (requests made, tasks created). Pure Python, no Blender.

    .venv/bin/python bench/bench_connection.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import ext_dev  # noqa: E402

ext_dev.use_source_package()
sys.path.insert(0, str(ROOT / "tests"))

from emulators.dressx import DressxEmulator  # noqa: E402
from emulators.meshy import MeshyEmulator  # noqa: E402
from emulators.scenario import ScenarioEmulator  # noqa: E402
from emulators.triverse import TriverseEmulator  # noqa: E402
from text_to_texture.net import local_server  # noqa: E402
from text_to_texture.providers.base import ConnectionCheck, ProviderConfig  # noqa: E402
from text_to_texture.providers.dressx import DressxProvider  # noqa: E402
from text_to_texture.providers.meshy import MeshyProvider  # noqa: E402
from text_to_texture.providers.scenario import ScenarioProvider  # noqa: E402
from text_to_texture.providers.triverse import TriverseProvider  # noqa: E402

WRONG = "wrong_key_0123456789"


def _config(pid: str, emu: Any, key: str) -> ProviderConfig:
    if pid == "SCENARIO":
        return ProviderConfig(api_key=key, api_base=f"{emu.url}/v1", extras={
            "api_secret": emu.api_secret, "model_id": emu.default_model})
    if pid == "DRESSX":
        return ProviderConfig(api_key=key, api_base=emu.url,
                              extras={"public_url": "http://127.0.0.1:{port}"})
    return ProviderConfig(api_key=key, api_base=emu.url)


def _cell(check: ConnectionCheck) -> str:
    return f"{'INFO' if check.ok else 'ERROR'}: {check.line}".replace("|", "\\|")


def run() -> list[dict[str, Any]]:
    rows = []
    cases = [("MESHY", MeshyProvider, MeshyEmulator), ("SCENARIO", ScenarioProvider,
                                                       ScenarioEmulator),
             ("TRIVERSE", TriverseProvider, TriverseEmulator),
             ("DRESSX", DressxProvider, DressxEmulator)]
    for pid, cls, emu_cls in cases:
        with emu_cls() as emu:
            good = cls(_config(pid, emu, emu.api_key)).test_connection()
            requests_good = emu.count()
            wrong = cls(_config(pid, emu, WRONG)).test_connection()
            paths = sorted({r.path for r in emu.recorded()})
            rows.append({"provider": cls.label, "good": good, "wrong": wrong,
                         "requests": (requests_good, emu.count() - requests_good),
                         "paths": paths, "tasks": len(emu.tasks)})
        local_server.shutdown()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "> Test connection against each emulator: the line the artist reads, with the right key "
        "and with a wrong one; requests made at the service (good / wrong) and tasks created "
        "(must be 0: a test never creates or charges).",
        "",
        "| provider | good key | wrong key | requests | paths | tasks created |",
        "|---|---|---|---:|---|---:|",
    ]
    for r in rows:
        paths = ", ".join(f"`{p}`" for p in r["paths"]) or "none (a request to itself)"
        lines.append(f"| {r['provider']} | {_cell(r['good'])} | {_cell(r['wrong'])} "
                     f"| {r['requests'][0]} / {r['requests'][1]} | {paths} | {r['tasks']} |")
    return "\n".join(lines)


def main() -> None:
    print(table(run()))


if __name__ == "__main__":
    main()
