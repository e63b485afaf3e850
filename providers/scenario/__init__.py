"""Scenario seamless textures: `provider.py` talks to the service, `contract.py` holds its API,
`phase.py` keeps the map-making step across restarts."""

from .contract import (
    DEFAULT_BASE,
    MAP_TYPES,
    SMOOTHNESS,
    TEXTURE_ROUTES,
    TXT2IMG,
    Model,
    ScenarioHooks,
    size,
)
from .provider import CANCEL_REFUSED, ScenarioProvider

__all__ = ["CANCEL_REFUSED", "DEFAULT_BASE", "MAP_TYPES", "SMOOTHNESS", "TEXTURE_ROUTES",
           "TXT2IMG", "Model", "ScenarioHooks", "ScenarioProvider", "size"]
