"""`ProceduralProvider`: the offline provider, which makes the maps on this machine and writes
them as PNG files.

It fits the cloud providers' submit/poll/fetch shape so the job runner treats it like any
other: submit and poll are instant, and fetch does the work with progress and cancel.
"""

from __future__ import annotations

import hashlib
import json
import os

from ...formats import imagefile
from ..base import (
    BASE_COLOR,
    MAP_ROLES,
    CancelToken,
    ProgressFn,
    Provider,
    ProviderError,
    RemoteState,
    RemoteStatus,
    TextureRequest,
)
from .generate import generate_maps


class ProceduralProvider(Provider):
    """Built-in offline provider: nothing leaves the machine, no key, no cost."""

    id = "PROCEDURAL"
    label = "Offline (procedural)"
    description = "Built in: seamless PBR maps from the prompt's words; no account, no network"
    offline = True
    mesh_format = ""
    # One job at a time: each already spreads its bands over the cores, and Blender's main
    # thread needs a core of its own to stay smooth while a batch generates.
    max_concurrency = 1
    poll_interval = 0.0
    resubmit_safe = True

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        key = json.dumps([request.prompt, request.negative_prompt, request.seed,
                          request.resolution, request.enable_pbr])
        return "local-" + hashlib.sha1(key.encode()).hexdigest()[:12]

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        roles = MAP_ROLES if request.enable_pbr else (BASE_COLOR,)
        return RemoteStatus(RemoteState.SUCCEEDED, progress=1.0,
                            maps={role: "procedural:" + role for role in roles})

    def fetch(self, remote_id: str, status: RemoteStatus, request: TextureRequest,
              cancel: CancelToken, progress: ProgressFn) -> dict[str, str]:
        cancel.check()
        roles = MAP_ROLES if request.enable_pbr else (BASE_COLOR,)
        if not request.out_dir:
            raise ProviderError("No texture folder is set: choose one in the add-on preferences.")

        def step(fraction: float, message: str) -> None:
            cancel.check()
            progress(0.85 * fraction, message)

        try:
            maps = generate_maps(request.prompt, request.seed, request.resolution,
                                 request.negative_prompt, roles=roles, on_step=step)
        except ValueError as exc:
            raise ProviderError(f"Offline textures: {exc}.") from None
        stem = request.file_stem or request.job_id or "texture"
        try:
            os.makedirs(request.out_dir, exist_ok=True)
            paths = {}
            for i, role in enumerate(roles):
                cancel.check()
                progress(0.85 + 0.15 * i / len(roles), f"saving {role.replace('_', ' ')} map")
                path = os.path.join(request.out_dir, f"{stem}_{role}.png")
                imagefile.write_png(path, maps[role])
                paths[role] = path
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ProviderError(
                f"Could not write textures to {request.out_dir}: {reason}.") from None
        progress(1.0, "done")
        return paths
