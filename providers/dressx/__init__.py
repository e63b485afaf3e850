"""DRESSX Text to Texture: `provider.py` talks to the service and listens for its webhook,
`contract.py` holds its API and reads webhooks, `results.py` keeps a success webhook on disk."""

from .contract import (
    CREATE_PATH,
    DEFAULT_BASE,
    MAP_KEYS,
    DressxHooks,
    DressxRef,
    check_obj,
    maps_of,
    order_for,
)
from .provider import DressxProvider

__all__ = ["CREATE_PATH", "DEFAULT_BASE", "MAP_KEYS", "DressxHooks", "DressxProvider",
           "DressxRef", "check_obj", "maps_of", "order_for"]
