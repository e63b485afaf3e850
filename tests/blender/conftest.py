"""Fixtures for Blender tests that talk to provider emulators."""

from __future__ import annotations

from typing import Any

import pytest

from emulators.base import guard_loopback
from emulators.meshy import MeshyEmulator
from t2t_testing import installed

KEY = "msy_emulator_SECRET_0123456789"


@pytest.fixture()
def meshy(blender, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The Meshy emulator on loopback, reached through MESHY_API_BASE/KEY, online access on."""
    guard_loopback(monkeypatch)
    emu = MeshyEmulator(job_seconds=0.3, api_key=KEY).start()
    monkeypatch.setenv("MESHY_API_BASE", emu.url)
    monkeypatch.setenv("MESHY_API_KEY", KEY)
    http = installed("providers.http")
    meshy_mod = installed("providers.meshy")
    monkeypatch.setattr(meshy_mod, "_working_route", {})

    class FastMeshy(meshy_mod.MeshyProvider):  # same behaviour, test-sized waits
        poll_interval = 0.05

        def __init__(self, config: Any, **kw: Any) -> None:
            kw.setdefault("retry", http.RetryPolicy(retries=3, base=0.01, cap=0.05))
            super().__init__(config, **kw)

    monkeypatch.setitem(installed("providers.registry").PROVIDERS, "MESHY", FastMeshy)
    system = blender.context.preferences.system
    system.use_online_access = True
    yield emu
    system.use_online_access = False
    emu.stop()


