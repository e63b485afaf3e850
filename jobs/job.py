"""A texturing job and its state machine.

One job textures one object. States move forward only; every move carries a message, so the
artist always reads why a job is where it is.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..net.redact import clean_text
from ..providers.base import TextureRequest


class State(StrEnum):
    QUEUED = "queued"
    EXPORTING = "exporting"
    SUBMITTING = "submitting"
    RUNNING = "running"
    DOWNLOADING = "downloading"
    BAKING = "baking"  # the maps are carried onto the object's own UVs, here
    READY = "ready"
    APPLIED = "applied"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def in_flight(self) -> bool:
        """True while a worker may be talking to the provider for this job."""
        return self in (State.SUBMITTING, State.RUNNING, State.DOWNLOADING)


TERMINAL = frozenset({State.APPLIED, State.FAILED, State.CANCELED})

# Forward moves only. FAILED and CANCELED are reachable from every live state; READY may be
# applied again (re-apply) and an APPLIED job may be re-applied, so APPLIED -> APPLIED is allowed.
# BAKING needs nothing from the provider any more: a restart bakes again, never buys again.
_FORWARD: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.EXPORTING, State.SUBMITTING}),
    State.EXPORTING: frozenset({State.SUBMITTING}),
    # Back to QUEUED only when the service answered "queue full": nothing was created, so the
    # job waits for a free place and is sent again (never re-sent on a restart otherwise).
    State.SUBMITTING: frozenset({State.RUNNING, State.QUEUED}),
    State.RUNNING: frozenset({State.RUNNING, State.DOWNLOADING}),
    State.DOWNLOADING: frozenset({State.DOWNLOADING, State.BAKING, State.READY}),
    State.BAKING: frozenset({State.BAKING, State.READY}),
    State.READY: frozenset({State.APPLIED}),
    State.APPLIED: frozenset({State.APPLIED}),
    State.FAILED: frozenset(),
    State.CANCELED: frozenset(),
}


class TransitionError(ValueError):
    pass


def can_move(old: State, new: State) -> bool:
    if new in (State.FAILED, State.CANCELED):
        return not old.terminal
    return new in _FORWARD[old]


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Job:
    """The journaled record of one job. Plain data: safe to copy between threads."""

    id: str
    provider: str
    object_name: str
    request: TextureRequest
    state: State = State.QUEUED
    progress: float = 0.0
    message: str = "Waiting to start"
    remote_id: str = ""
    maps: dict[str, str] = field(default_factory=dict)  # role -> local file path
    extra: dict[str, Any] = field(default_factory=dict)  # provider facts worth keeping (balance…)
    blend_file: str = ""  # the .blend the job belongs to ("" for an unsaved file)
    owner_pid: int = 0  # the Blender process watching it; a dead owner's unsaved jobs are adopted
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def warn(self, text: str) -> None:
        """Add a warning the job details show (earlier ones are kept, in order)."""
        old = str(self.extra.get("warning") or "")
        if text and text not in old:
            self.extra["warning"] = clean_text(f"{old}; {text}" if old else text)

    def move(self, state: State, message: str = "", progress: float | None = None) -> None:
        """Change state; the message is cleaned and capped (it often carries a server's words,
        and it is journaled at every change), a progress that is not a number is ignored."""
        if not can_move(self.state, state):
            raise TransitionError(f"job {self.id}: {self.state.value} -> {state.value}")
        self.state = state
        if message:
            self.message = clean_text(message)
        if progress is not None and math.isfinite(progress):
            self.progress = max(0.0, min(1.0, progress))
        self.updated = time.time()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "object_name": self.object_name,
            "request": self.request.to_dict(),
            "state": self.state.value,
            "progress": self.progress,
            "message": self.message,
            "remote_id": self.remote_id,
            "maps": dict(self.maps),
            "extra": dict(self.extra),
            "blend_file": self.blend_file,
            "owner_pid": self.owner_pid,
            "created": self.created,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            id=str(data["id"]),
            provider=str(data["provider"]),
            object_name=str(data.get("object_name", "")),
            request=TextureRequest.from_dict(dict(data.get("request", {}))),
            state=State(data.get("state", State.QUEUED.value)),
            progress=float(data.get("progress", 0.0)),
            message=str(data.get("message", "")),
            remote_id=str(data.get("remote_id", "")),
            maps={str(k): str(v) for k, v in dict(data.get("maps", {})).items()},
            extra=dict(data.get("extra", {})),
            blend_file=str(data.get("blend_file", "")),
            owner_pid=int(data.get("owner_pid", 0)),
            created=float(data.get("created", time.time())),
            updated=float(data.get("updated", time.time())),
        )
