"""Test connection: one free request per provider, on a worker thread, without freezing Blender.

The result is kept for the session only (never in the .blend): a provider counts as verified
while its settings are the ones that worked (a fingerprint of key, base URL and extras, kept in
memory), so changing the key brings the panel's button back.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

import bpy

from ..providers.base import CancelToken, ConnectionCheck
from ..providers.registry import provider_class
from .preflight import online_blocker, provider_config
from .redraw import redraw

_lock = threading.Lock()


@dataclass
class _Check:
    fingerprint: str
    thread: threading.Thread | None = None
    result: ConnectionCheck | None = None


_checks: dict[str, _Check] = {}  # provider id -> its latest check
_verified: dict[str, str] = {}  # provider id -> fingerprint of the settings that worked


def fingerprint(provider_id: str) -> str:
    """A digest of what the check depends on (key, base URL, extras), never the values."""
    cfg = provider_config(provider_id)
    text = "\n".join([cfg.api_key, cfg.api_base, *(f"{k}={v}" for k, v in
                                                    sorted(cfg.extras.items()))])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def needs_check(provider_id: str) -> bool:
    """True for a cloud provider not yet verified with its current settings."""
    cls = provider_class(provider_id)
    if cls is None or cls.offline:
        return False
    return _verified.get(provider_id) != fingerprint(provider_id)


def start(provider_id: str) -> str:
    """Start a check on a worker thread; "" or one line why it cannot start."""
    cls = provider_class(provider_id)
    blocker = online_blocker(provider_id)
    if cls is None or blocker:
        return blocker or f"{provider_id} has no connection to test"
    if running(provider_id):
        return ""
    check = _Check(fingerprint(provider_id))
    provider = cls(provider_config(provider_id))

    def work() -> None:
        try:
            result = provider.test_connection(CancelToken())
        except Exception as exc:  # a check must end with a line, whatever happens
            result = ConnectionCheck(False, provider.redact(f"{cls.label}: {exc}"))
        with _lock:
            check.result = result
            if result.ok:
                _verified[provider_id] = check.fingerprint
            else:
                _verified.pop(provider_id, None)

    check.thread = threading.Thread(target=work, name=f"t2t-check-{provider_id.lower()}",
                                    daemon=True)
    with _lock:
        _checks[provider_id] = check
    check.thread.start()
    return ""


def running(provider_id: str) -> bool:
    check = _checks.get(provider_id)
    return bool(check and check.thread and check.thread.is_alive())


def result(provider_id: str) -> ConnectionCheck | None:
    """The latest finished check (of any settings), or None."""
    with _lock:
        check = _checks.get(provider_id)
        return check.result if check is not None else None


def wait(provider_id: str, timeout: float = 60.0) -> ConnectionCheck:
    """Background mode: block until the check started by `start` has ended."""
    check = _checks.get(provider_id)
    if check is not None and check.thread is not None:
        check.thread.join(timeout)
    found = result(provider_id)
    return found or ConnectionCheck(False, "The connection test did not finish in time")


def watch(provider_id: str) -> None:
    """In the interface: redraw panels and preferences once the check has ended."""
    started = time.monotonic()

    def tick() -> float | None:
        if running(provider_id) and time.monotonic() - started < 120:
            return 0.2
        redraw()
        return None

    bpy.app.timers.register(tick, first_interval=0.2)


def forget() -> None:
    """Unregister (and tests): nothing of a session's checks outlives it."""
    with _lock:
        _checks.clear()
        _verified.clear()
