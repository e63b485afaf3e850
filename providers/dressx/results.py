"""A DRESSX order's success webhook, kept on disk beside its maps until they are in.

DRESSX cannot be asked for a result again, so the webhook that named the maps is written to
``.<stem>.dressx-result.json`` in the job's folder: a restart during the downloads then finds it
instead of losing a paid result. It is removed once the maps are in (or the job ends otherwise).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ..base import TextureRequest
from .contract import DressxRef

log = logging.getLogger(__name__)

# The webhook's fields worth keeping (the maps' links and what the job's details show).
KEPT_FIELDS = ("order_id", "status", "render_url", "mesh_url", "pbr_components", "balance")


def result_path(request: TextureRequest) -> str:
    """Where a job's webhook is kept ("" when the job has no folder)."""
    if not request.out_dir:
        return ""
    stem = request.file_stem or request.job_id
    return os.path.join(request.out_dir, f".{stem}.dressx-result.json")


class KeptResults:
    """The webhooks one provider kept, by remote id, so each file is removed once used."""

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}

    def save(self, request: TextureRequest, ref: DressxRef, payload: dict[str, Any],
             remote_id: str) -> None:
        path = result_path(request)
        if not path:
            return
        kept = {k: payload[k] for k in KEPT_FIELDS if k in payload}
        try:
            os.makedirs(request.out_dir, exist_ok=True)
            tmp = f"{path}.part"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"order": ref.order, "webhook": kept}, fh)
            os.replace(tmp, path)
            self._paths[remote_id] = path
        except OSError as exc:  # the job goes on; only a restart mid-download would miss it
            log.warning("Could not keep DRESSX's result for order %d: %s", ref.order,
                        exc.strerror or exc)

    def load(self, request: TextureRequest, ref: DressxRef) -> dict[str, Any] | None:
        """The webhook kept for this order before a restart, or None."""
        path = result_path(request)
        if not path or not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("order") != ref.order:
            return None
        webhook = data.get("webhook")
        if not isinstance(webhook, dict):
            return None
        self._paths[ref.encode()] = path
        log.info("DRESSX order %d: using the result received before the restart", ref.order)
        return webhook

    def forget(self, remote_id: str) -> None:
        """Remove the kept webhook of this order, if any (its maps are in, or it ended)."""
        path = self._paths.pop(remote_id, "")
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
