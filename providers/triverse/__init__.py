"""Triverse texturing: `provider.py` talks to the service, `contract.py` holds its API,
`uploads.py` paces uploads under Triverse's limit."""

from .contract import (
    DEFAULT_BASE,
    TriverseHooks,
    client_order_id,
    envelope_code,
    failure_message,
    polygon_limit,
    read_after_write,
    status_of,
    texture_size,
    unwrap,
)
from .provider import TriverseProvider

__all__ = ["DEFAULT_BASE", "TriverseHooks", "TriverseProvider", "client_order_id",
           "envelope_code", "failure_message", "polygon_limit", "read_after_write", "status_of",
           "texture_size", "unwrap"]
