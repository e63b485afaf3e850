"""DRESSX's API as the code speaks it: addresses, the remote id, error shapes, and reading a
webhook's payload (its maps, its failure reason); the mesh checked before paying.

Contract: docs/providers.md §4, which leave most things unknown. Every guess is a setting or a
named constant, and is marked "Guess:". No network here: `provider.py` sends and listens.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...net import local_server
from ...net.http import PREFS_HINT, ServiceHooks
from ..base import (
    BASE_COLOR,
    METALLIC,
    NORMAL,
    ROUGHNESS,
    ProviderError,
    RemoteState,
    RemoteStatus,
)

# Guess: the base URL is not published; the result files live on api.dressx.com
# [docs/providers.md §4.1].
DEFAULT_BASE = "https://api.dressx.com"
CREATE_PATH = "/v2/pipeline/text-to-texture/"  # trailing slash as documented (Django style)
DEFAULT_TIMEOUT_S = 30 * 60.0  # Guess: no duration is documented
DEFAULT_STEPS = 20  # Guess: the document's example; pinned so a seed stays reproducible
MAX_STEPS = 1000
MAX_ORDER = 2**31 - 1  # Guess: `order` is an Int; kept in a signed 32-bit range

# Guess: the example names the maps albedo/normal/roughness/metallic; a few aliases are read too.
MAP_KEYS: dict[str, tuple[str, ...]] = {
    BASE_COLOR: ("albedo", "base_color", "basecolor", "diffuse", "color"),
    NORMAL: ("normal",),
    ROUGHNESS: ("roughness",),
    METALLIC: ("metallic", "metalness"),
}


class DressxHooks(ServiceHooks):
    """Errors: the shape is undocumented. Guess: a Django REST Framework service (the trailing
    slash): ``{"detail": "..."}``, or field errors ``{"order": ["This field is required."]}``."""

    def error_message(self, status: int, body: Any) -> str:
        text = super().error_message(status, body)
        if text:
            return text
        if isinstance(body, Mapping):
            parts = [f"{name}: {_joined(value)}" for name, value in body.items() if _joined(value)]
            return "; ".join(parts)
        return _joined(body)

    def describe(self, status: int, message: str, context: str, label: str) -> str | None:
        said = message.lower()
        if status == 401 or (status == 403 and ("credential" in said or "token" in said)):
            return f"DRESSX rejected the API key — check {PREFS_HINT} > DRESSX (or DRESSX_API_KEY)"
        if status == 403 and "key" in said:
            return (f"DRESSX refused the coordinator key — check it in {PREFS_HINT} > DRESSX "
                    f"(DRESSX said: {message})")
        if status == 402:
            return ("Your DRESSX balance is used up — top it up in your DRESSX account, then "
                    "retry")
        return None


def _joined(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return " ".join(v.strip() for v in value)
    return ""


@dataclass(frozen=True)
class DressxRef:
    """What the remote id must carry for a job to be watched again after a restart."""

    order: int
    submitted: float  # epoch seconds (ms precision): the timeout counts from here, across restarts
    webhook_token: str
    mesh_token: str = ""  # "" when the artist gave a mesh URL

    def encode(self) -> str:
        return f"{self.order}:{self.submitted:.3f}:{self.webhook_token}:{self.mesh_token}"

    @classmethod
    def parse(cls, remote_id: str) -> DressxRef:
        parts = remote_id.split(":")
        try:
            order, submitted, webhook, mesh = parts
            ref = cls(int(order), round(float(submitted), 3), webhook, mesh)
        except ValueError:
            raise ProviderError("This DRESSX job's record is damaged; look the result up in your "
                                "DRESSX account") from None
        if not ref.webhook_token or not math.isfinite(ref.submitted):
            raise ProviderError(f"This DRESSX job's record is damaged (order {ref.order}); look "
                                "it up in your DRESSX account")
        return ref


def order_for(job_id: str) -> int:
    """The DRESSX order id of a job: derived from its id, so it can be told to the artist even
    when Blender stopped before the remote id was saved. 1 .. 2**31-1; a collision between two
    jobs of one account is about 1 in 4 million per pair."""
    digest = hashlib.sha256(job_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % MAX_ORDER + 1


# ------------------------------------------------------------- webhook payloads, the mesh


def check_obj(path: str) -> None:
    """Refuse, before paying, a mesh DRESSX would fail on: no file, not OBJ, or no UVs."""
    if not path or not os.path.isfile(path):
        raise ProviderError("The exported mesh is missing; run the job again")
    has_v = has_vt = False
    try:
        with open(path, "rb") as fh:
            for line in fh:
                head = line.lstrip()[:3]
                has_v = has_v or head.startswith(b"v ")
                has_vt = has_vt or head.startswith(b"vt ")
                if has_v and has_vt:
                    return
    except OSError as exc:
        raise ProviderError(f"The exported mesh could not be read ({exc.strerror or exc})"
                            ) from None
    if not has_v:
        raise ProviderError("DRESSX needs the mesh as OBJ, and the exported file is not one")
    raise ProviderError("DRESSX needs a mesh with UVs, and this one has none — unwrap it (or let "
                        "the add-on unwrap meshes without UVs), then retry")


def status_of(payload: Mapping[str, Any], order: int, extra: dict[str, Any]) -> RemoteStatus:
    """A webhook's payload as the job's status; `extra` (the order, the balance) goes with it,
    with the render's link when the payload has one."""
    raw = str(payload.get("status") or "")
    kind = local_server.classify_status(raw)
    if isinstance(payload.get("render_url"), str) and payload["render_url"]:
        extra["render_url"] = payload["render_url"]
    if kind == local_server.DONE:
        return RemoteStatus(RemoteState.SUCCEEDED, 1.0, maps=maps_of(payload), extra=extra)
    if kind == local_server.FAILED:
        return RemoteStatus(RemoteState.FAILED, message=failure_message(payload, order),
                            extra=extra)
    if kind == local_server.CANCELED:
        return RemoteStatus(RemoteState.CANCELED, extra=extra,
                            message=f"The job was canceled at DRESSX (order {order})")
    word = " ".join(raw.split()).lower()[:40]  # from the webhook: one tidy line
    shown = "processing" if word in ("processin", "processing") else word
    return RemoteStatus(RemoteState.RUNNING, 0.0, f"DRESSX is {shown} (order {order})",
                        extra=extra)


def balance_of(payload: Mapping[str, Any]) -> float | None:
    """The balance a webhook reports, when it is a number."""
    balance = payload.get("balance")
    if isinstance(balance, (int, float)) and not isinstance(balance, bool):
        return balance
    return None


def maps_of(payload: Mapping[str, Any]) -> dict[str, str]:
    """Role -> URL from `pbr_components` (keys read case-insensitively)."""
    pbr = payload.get("pbr_components")
    if not isinstance(pbr, Mapping):
        return {}
    lowered = {str(k).strip().lower(): v for k, v in pbr.items()}
    out: dict[str, str] = {}
    for role, keys in MAP_KEYS.items():
        for key in keys:
            value = lowered.get(key)
            if isinstance(value, str) and value.strip():
                out[role] = value.strip()
                break
    return out


def failure_message(payload: Mapping[str, Any], order: int) -> str:
    """Guess: the failure payload's reason field is unknown; message/error/detail/reason read."""
    text = " ".join(DressxHooks().error_message(0, _without_status(payload)).split())
    if len(text) > 300:
        text = text[:297] + "…"
    if text:
        return f"DRESSX: {text} (order {order})"
    return f"DRESSX reported the job failed (order {order}); no reason given"


def _without_status(payload: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("message", "error", "detail", "reason", "msg", "errors")
    return {k: payload[k] for k in keys if k in payload}
