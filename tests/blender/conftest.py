"""Fixtures for Blender tests that talk to provider emulators on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulators.base import Emulator, guard_loopback
from emulators.dressx import DressxEmulator
from emulators.meshy import MeshyEmulator
from emulators.scenario import ScenarioEmulator
from emulators.triverse import TriverseEmulator
from t2t_testing import installed

KEY = "msy_emulator_SECRET_0123456789"


@pytest.fixture()
def online(blender) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Blender's "Allow Online Access" on for the test (off in the bpy module by default)."""
    system = blender.context.preferences.system
    system.use_online_access = True
    yield
    system.use_online_access = False


def fast_provider(monkeypatch: pytest.MonkeyPatch, pid: str, module: str, name: str,
                  **kwargs: Any) -> None:
    """Replace a provider by a subclass with test-sized waits; behaviour is unchanged."""
    http = installed("net.http")
    base = getattr(installed(f"providers.{module}"), name)

    class Fast(base):  # type: ignore[misc, valid-type]
        poll_interval = 0.05

        def __init__(self, config: Any, **kw: Any) -> None:
            kw.setdefault("retry", http.RetryPolicy(retries=3, base=0.01, cap=0.05))
            for key, value in kwargs.items():
                kw.setdefault(key, value)
            super().__init__(config, **kw)

    monkeypatch.setitem(installed("providers.registry").PROVIDERS, pid, Fast)


def serve(emu: Emulator, monkeypatch: pytest.MonkeyPatch, prefix: str) -> Emulator:
    guard_loopback(monkeypatch)
    emu.start()
    monkeypatch.setenv(f"{prefix}_API_BASE", emu.url)
    monkeypatch.setenv(f"{prefix}_API_KEY", emu.api_key)
    return emu


@pytest.fixture()
def meshy(blender, online, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The Meshy emulator, reached through MESHY_API_BASE/KEY."""
    emu = serve(MeshyEmulator(job_seconds=0.3, api_key=KEY), monkeypatch, "MESHY")
    monkeypatch.setattr(installed("providers.meshy.provider"), "_facts", {})
    fast_provider(monkeypatch, "MESHY", "meshy", "MeshyProvider")
    yield emu
    emu.stop()


@pytest.fixture()
def triverse(blender, online, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The Triverse emulator (returning a different topology), via TRIVERSE_API_BASE/KEY."""
    emu = serve(TriverseEmulator(job_seconds=0.3, api_key="trv_SECRET_0123456789",
                                 result_topology="different"), monkeypatch, "TRIVERSE")
    fast_provider(monkeypatch, "TRIVERSE", "triverse", "TriverseProvider", rate_limit_wait=0.05)
    yield emu
    emu.stop()


@pytest.fixture()
def dressx(blender, online, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The DRESSX emulator; the local server's loopback address stands in for the tunnel."""
    emu = serve(DressxEmulator(job_seconds=0.3, api_key="dsx_SECRET_0123456789"),
                monkeypatch, "DRESSX")
    monkeypatch.setenv("DRESSX_PUBLIC_URL", "http://127.0.0.1:{port}")
    monkeypatch.setenv("DRESSX_LOCAL_PORT", "0")
    fast_provider(monkeypatch, "DRESSX", "dressx", "DressxProvider")
    yield emu
    emu.stop()
    installed("net.local_server").shutdown()


@pytest.fixture()
def scenario(blender, online, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The Scenario emulator, via SCENARIO_API_BASE/KEY/SECRET/MODEL_ID."""
    guard_loopback(monkeypatch)
    emu = ScenarioEmulator(job_seconds=0.2, pending_seconds=0.04).start()
    for var, value in emu.env().items():
        monkeypatch.setenv(var, value)
    fast_provider(monkeypatch, "SCENARIO", "scenario", "ScenarioProvider")
    yield emu
    emu.stop()
