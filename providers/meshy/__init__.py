"""Meshy Retexture (API v2): `provider.py` talks to the service, `contract.py` holds its API."""

from ..base import UV_MESH
from .contract import DEFAULT_BASE, TEXTURE_MODELS, V1_SUNSET, MeshyHooks, prompt_problem
from .provider import MeshyProvider

__all__ = ["DEFAULT_BASE", "TEXTURE_MODELS", "UV_MESH", "V1_SUNSET", "MeshyHooks",
           "MeshyProvider", "prompt_problem"]
