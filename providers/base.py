"""The one interface every texture provider implements.

A provider turns a `TextureRequest` into a remote task, reports a uniform `RemoteStatus`, and
downloads (or, offline, generates) the finished maps as image files. Providers run on worker
threads only, never import `bpy`, and raise `ProviderError` with a message an artist can act on.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from ..formats.roles import (  # noqa: F401  (re-exported: the names providers speak)
    BASE_COLOR,
    HEIGHT,
    MAP_ROLES,
    METALLIC,
    METALLIC_ROUGHNESS,
    NORMAL,
    RESULT_MESH,
    ROUGHNESS,
    UV_MESH,
    VARIANT_SEP,
)
from ..net.errors import (  # noqa: F401  (re-exported)
    Canceled,
    CancelRefused,
    CancelToken,
    ProviderError,
    QueueFull,
    TimedOut,
)
from ..net.exchanges import ExchangeLog
from ..net.redact import redact, secret_forms


class RemoteState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    # The service sent a status this version cannot read (a new word, a number, null, a list).
    # Watched like RUNNING, but the runner ends the job after a bounded number of these in a row.
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in (RemoteState.SUCCEEDED, RemoteState.FAILED, RemoteState.CANCELED)


@dataclass
class TextureRequest:
    """Everything a provider needs for one object; journaled as is, so never holds a key."""

    job_id: str
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    resolution: int = 1024
    enable_pbr: bool = True
    mesh_path: str = ""  # exported mesh on disk ("" for providers that need no mesh)
    mesh_format: str = ""  # "GLB" or "OBJ"
    out_dir: str = ""  # where the finished maps are written
    file_stem: str = ""  # file name prefix for the maps, chosen by the caller, never the server
    options: dict[str, Any] = field(default_factory=dict)  # provider-specific panel options

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextureRequest:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class RemoteStatus:
    state: RemoteState
    progress: float = 0.0  # 0..1
    message: str = ""
    maps: dict[str, str] = field(default_factory=dict)  # role -> URL (or provider token)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. balance, uv info

    def __post_init__(self) -> None:
        self.progress = fraction(self.progress, 1.0)


def fraction(value: Any, full: float = 100.0) -> float:
    """A server's progress (`full` = done) as 0..1; anything that is not a finite number
    (NaN, infinity, a string, a bool, null) counts as no progress, never as done."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return 0.0
    try:
        number = float(value) / full
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return 0.0
    return max(0.0, min(1.0, number)) if math.isfinite(number) else 0.0


@dataclass
class ProviderConfig:
    """Credentials and endpoints, read from preferences/environment when used; never journaled."""

    api_key: str = ""
    api_base: str = ""
    extras: dict[str, str] = field(default_factory=dict)
    timeout_s: str = ""  # the job's overall deadline (preferences / <P>_TIMEOUT_S); "" = default

    def __repr__(self) -> str:  # keys must never reach a log line through a repr
        masked = "***" if self.api_key else ""
        return f"ProviderConfig(api_base={self.api_base!r}, api_key={masked!r})"

    def secrets(self) -> list[str]:
        """The values that must never be shown: the key, and every extra named a key or secret."""
        return [self.api_key, *(v for k, v in self.extras.items() if "secret" in k or "key" in k)]


ProgressFn = Callable[[float, str], None]


@dataclass
class ConnectionCheck:
    """What "Test connection" found: one line for the artist, and whether it worked."""

    ok: bool
    line: str

# (age below which, delay): a cloud job is polled every second while young, every 2 s until
# half a minute, then every `poll_interval`. A short job is picked up within ~1 s of its end
# instead of up to a whole interval late; a job of 30 s or more costs 10 more status requests.
RAMP: tuple[tuple[float, float], ...] = ((10.0, 1.0), (30.0, 2.0))


def ramped_delay(elapsed: float, interval: float, ramp: tuple[tuple[float, float], ...] = RAMP
                 ) -> float:
    """The delay `RAMP` gives at age `elapsed`, never longer than `interval`."""
    for below, delay in ramp:
        if elapsed < below:
            return min(delay, interval)
    return interval


class Provider:
    """Base class: one subclass per service, in its own module."""

    id: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""  # the provider menu's tooltip
    # Settings beyond key and base URL: (config key, environment variable that overrides it).
    extras: ClassVar[tuple[tuple[str, str], ...]] = ()
    offline: ClassVar[bool] = False  # True: no network, no key, works without online access
    mesh_format: ClassVar[str] = ""  # "GLB"/"OBJ" when the service needs the mesh, "" otherwise
    max_concurrency: ClassVar[int] = 4  # jobs in flight at the service at once
    poll_interval: ClassVar[float] = 2.0  # seconds between status requests
    resubmit_safe: ClassVar[bool] = False  # True only when submitting again costs nothing
    # True for 2D seamless textures not tied to the mesh (Scenario): applied tiled through a
    # Mapping node scaled from the object's size, box-projected where the mesh has no UVs.
    seamless_2d: ClassVar[bool] = False
    # Largest mesh the service takes, in triangles (0: no limit); larger objects are skipped
    # with one line before anything is exported or sent.
    max_triangles: ClassVar[int] = 0
    default_base: ClassVar[str] = ""  # the service's documented base URL ("" offline)
    # How long a job may take from being sent until its maps are in, unless the preferences say
    # otherwise (0: no limit). When it passes, the job ends as timed out and keeps its remote id.
    default_timeout_s: ClassVar[float] = 0.0

    def __init__(self, config: ProviderConfig | None = None) -> None:
        self.config = config or ProviderConfig()
        # Heavy local work (re-encoding a map) runs inside this: the runner hands in its
        # semaphore so such work happens one job at a time; alone, it costs nothing.
        self.heavy: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        # The job's redacted exchanges with the service, for its report (None: no network).
        self.exchanges: ExchangeLog | None = None

    def check_ready(self) -> str:
        """Return "" when the provider can take a job, else one line saying what is missing."""
        return ""

    def redact(self, text: str) -> str:
        """`text` with this account's secrets masked: services have been seen echoing them."""
        return redact(text, secret_forms(self.config.secrets()))

    def test_connection(self, cancel: CancelToken | None = None) -> ConnectionCheck:
        """One free request that shows the settings work ("Test connection"): never creates a
        task, never charges. Worker thread (or a blocking call in background mode) only."""
        problem = self.check_ready()
        if problem:
            return ConnectionCheck(False, problem)
        return ConnectionCheck(True, f"{self.label} works here: no account or network needed")

    def timeout_s(self, options: dict[str, Any] | None = None) -> float:
        """The job's overall deadline in seconds (0: none): `options["timeout_s"]`, else the
        preferences' (`config.timeout_s`), else `default_timeout_s`."""
        raw = (options or {}).get("timeout_s")
        if raw is None or raw == "":
            raw = self.config.timeout_s
        if raw is None or raw == "":
            return float(self.default_timeout_s)
        value = _seconds(raw)
        if value is None:
            raise ProviderError(f"The {self.label} time limit must be a number of seconds above "
                                "0 — check the preferences")
        return value

    @classmethod
    def shown_id(cls, remote_id: str) -> str:
        """The remote id as the artist may see it and a .blend may keep it (a provider whose
        id carries a secret of the job shows less). Given a shown id, returns it unchanged."""
        return remote_id

    def timed_out_message(self, remote_id: str, seconds: float) -> str:
        """The line a job ends with when its overall deadline passed."""
        label = self.label
        return (f"{label} did not finish within {duration(seconds)}; it may still finish there "
                f"— look it up in your {label} account ({self.shown_id(remote_id)})")

    def abandon(self, remote_id: str) -> None:
        """The job ended here without the service saying so (timed out): drop what this side
        keeps for it. Unlike `cancel`, the remote task is left alone."""

    def check_request(self, request: TextureRequest) -> str:
        """"" or one line saying why the service would refuse this request (prompt too long…),
        checked on the main thread before anything is sent, so the artist hears it at once."""
        return ""

    def quote(self, request: TextureRequest, cancel: CancelToken | None = None) -> dict | None:
        """What the job would cost, read-only, where the service can say: a dict with
        "cost_credits" and optionally "available_credits"; None otherwise. Worker thread only."""
        return None

    def price_per_task(self, request: TextureRequest) -> dict | None:
        """The service's published price of one task like `request`, known without asking it:
        a dict like `quote`'s ({"cost_credits", "unit", "note"}); None where it is not known
        (then `quote` is asked). Pure and cheap: called on the main thread for whole batches."""
        return None

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        """Start the remote task; return its id. Called once per job, ever."""
        raise NotImplementedError

    def restore(self, remote_id: str, extra: dict[str, Any]) -> None:
        """Called before a job's first poll with what its earlier polls put in
        `RemoteStatus.extra` (journaled), so a resumed job knows what it already started."""

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        raise NotImplementedError

    def poll_delay(self, elapsed: float) -> float:
        """Seconds to wait before the next status request, `elapsed` seconds after the job's
        watch began (cloud providers poll sooner while a job is young; see `ramped_delay`)."""
        return self.poll_interval

    def fetch(
        self,
        remote_id: str,
        status: RemoteStatus,
        request: TextureRequest,
        cancel: CancelToken,
        progress: ProgressFn,
    ) -> dict[str, str]:
        """Write the finished maps into `request.out_dir`; return role -> file path."""
        raise NotImplementedError

    def cancel(self, remote_id: str) -> None:
        """Ask the service to stop the task, where it can; best effort."""


def _seconds(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def duration(seconds: float) -> str:
    """A time limit as an artist reads it: "45 s", "30 min", "2 h"."""
    if seconds < 60:
        return f"{seconds:g} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:g} h"
