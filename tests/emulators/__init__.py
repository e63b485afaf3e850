"""Loopback HTTP emulators of the cloud texturing services, for tests, benchmarks and demos.

Each follows its provider's contract (docs/providers.md): routes,
auth, JSON shapes, status lifecycle, errors and limits, plus fault knobs. Run one by hand with
``python -m tests.emulators meshy`` from the repository root.
"""

from __future__ import annotations

# name -> (module, class); imported lazily so one broken emulator cannot break the others.
EMULATORS: dict[str, tuple[str, str]] = {
    "meshy": ("meshy", "MeshyEmulator"),
    "triverse": ("triverse", "TriverseEmulator"),
    "dressx": ("dressx", "DressxEmulator"),
    "scenario": ("scenario", "ScenarioEmulator"),
}
