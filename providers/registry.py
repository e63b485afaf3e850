"""Which providers exist, what the panel calls them, and where their settings come from."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .base import Provider, ProviderConfig
from .dressx import DressxProvider
from .meshy import MeshyProvider
from .procedural import ProceduralProvider
from .scenario import ScenarioProvider
from .triverse import TriverseProvider

# (id, label, description) for every provider the panel lists, available or not yet.
CHOICES: list[tuple[str, str, str]] = [
    ("PROCEDURAL", "Offline (procedural)", "Built in: seamless PBR maps from the prompt's words; "
     "no account, no network"),
    ("MESHY", "Meshy", "Meshy Retexture with your Meshy API key"),
    ("TRIVERSE", "Triverse", "Triverse texturing with your Triverse API key"),
    ("DRESSX", "DRESSX", "DRESSX text-to-texture; needs a public URL for the result webhook"),
    ("SCENARIO", "Scenario", "Scenario seamless textures with your Scenario key and secret"),
]
LABELS = {pid: label for pid, label, _ in CHOICES}

# Providers that can take jobs in this version; the others say "not available yet".
PROVIDERS: dict[str, type[Provider]] = {
    ProceduralProvider.id: ProceduralProvider,
    MeshyProvider.id: MeshyProvider,
    TriverseProvider.id: TriverseProvider,
    DressxProvider.id: DressxProvider,
    ScenarioProvider.id: ScenarioProvider,
}

# Extra settings per provider: (config key, environment variable).
EXTRAS: dict[str, list[tuple[str, str]]] = {
    "SCENARIO": [
        ("api_secret", "SCENARIO_API_SECRET"),
        ("model_id", "SCENARIO_MODEL_ID"),
        ("project_id", "SCENARIO_PROJECT_ID"),
    ],
    "DRESSX": [
        ("public_url", "DRESSX_PUBLIC_URL"),
        ("local_port", "DRESSX_LOCAL_PORT"),
        ("coordinator_key", "DRESSX_COORDINATOR_KEY"),
        ("timeout_s", "DRESSX_TIMEOUT_S"),
    ],
}


def provider_class(provider_id: str) -> type[Provider] | None:
    return PROVIDERS.get(provider_id)


def unavailable_reason(provider_id: str) -> str:
    if provider_id in PROVIDERS:
        return ""
    return f"{LABELS.get(provider_id, provider_id)} is not available yet in this version"


def resolve_config(
    provider_id: str,
    saved: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
) -> ProviderConfig:
    """Preferences, overridden by environment variables (`<P>_API_KEY`, `<P>_API_BASE`, extras)."""
    env = os.environ if environ is None else environ
    cfg = ProviderConfig(
        api_key=env.get(f"{provider_id}_API_KEY") or saved.get("api_key", ""),
        api_base=env.get(f"{provider_id}_API_BASE") or saved.get("api_base", ""),
    )
    for key, var in EXTRAS.get(provider_id, []):
        cfg.extras[key] = env.get(var) or saved.get(key, "")
    return cfg
