"""Which providers exist, in the order the panel lists them, and where their settings come from.

Adding a provider means: its module here, its Blender surface (`blender/surfaces/`), and one
line in `PROVIDERS`. Labels, descriptions, default base URLs and extra settings are read from
the provider classes themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .base import Provider, ProviderConfig
from .dressx import DressxProvider
from .meshy import MeshyProvider
from .procedural import ProceduralProvider
from .scenario import ScenarioProvider
from .triverse import TriverseProvider

# In menu order.
PROVIDERS: dict[str, type[Provider]] = {
    cls.id: cls
    for cls in (ProceduralProvider, MeshyProvider, TriverseProvider, DressxProvider,
                ScenarioProvider)
}
# (id, label, description) for the provider menu.
CHOICES: list[tuple[str, str, str]] = [
    (pid, cls.label, cls.description) for pid, cls in PROVIDERS.items()
]
LABELS = {pid: cls.label for pid, cls in PROVIDERS.items()}


def provider_class(provider_id: str) -> type[Provider] | None:
    return PROVIDERS.get(provider_id)


def label(provider_id: str) -> str:
    return LABELS.get(provider_id, provider_id)


def resolve_config(
    provider_id: str,
    saved: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
) -> ProviderConfig:
    """Preferences, overridden by environment variables (`<P>_API_KEY`, `<P>_API_BASE`,
    `<P>_TIMEOUT_S`, extras)."""
    env = os.environ if environ is None else environ
    cfg = ProviderConfig(
        api_key=env.get(f"{provider_id}_API_KEY") or saved.get("api_key", ""),
        api_base=env.get(f"{provider_id}_API_BASE") or saved.get("api_base", ""),
        timeout_s=env.get(f"{provider_id}_TIMEOUT_S") or saved.get("timeout_s", ""),
    )
    cls = PROVIDERS.get(provider_id)
    for key, var in cls.extras if cls is not None else ():
        cfg.extras[key] = env.get(var) or saved.get(key, "")
    return cfg
