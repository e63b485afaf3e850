"""Triverse's upload limit (10 a minute, images and models together) and the memory of recent
uploads, shared by every job of this Blender."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from ...net.http import Sleeper
from ..base import CancelToken

log = logging.getLogger(__name__)

class UploadGate:
    """Keeps this Blender under Triverse's upload limit (10 a minute, images and models together).

    Shared by every provider instance (one is made per job) and keyed by base URL, so a batch of
    objects spaces its uploads instead of collecting code-2000 refusals. Other programs using the
    same account can still use up the limit: then the server's 2000 is retried with patience.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, collections.deque[float]] = {}

    @contextlib.contextmanager
    def turn(self, key: str, limit: int, window: float, cancel: CancelToken | None,
             sleep: Sleeper) -> Iterator[None]:
        """Wait until one more upload fits in the window, then hold its place while it is sent.

        The place is dated when the upload has ended: the server counts an upload when it
        arrives, which can be well after it was started (a large mesh, a busy machine) but
        never after its answer. Dated at the start, the next window opened too early and its
        first upload could be refused."""
        taken = self._wait_turn(key, limit, window, cancel, sleep)
        try:
            yield
        finally:
            with self._lock:
                sent = self._sent.setdefault(key, collections.deque())
                if taken in sent:  # (a place older than the window is gone already)
                    sent.remove(taken)
                sent.append(time.monotonic())  # the latest time of all: the order is kept

    def _wait_turn(self, key: str, limit: int, window: float, cancel: CancelToken | None,
                   sleep: Sleeper) -> float:
        """Block until one more upload fits in the window; returns the time its place got."""
        while True:
            with self._lock:
                now = time.monotonic()
                sent = self._sent.setdefault(key, collections.deque())
                while sent and sent[0] <= now - window:
                    sent.popleft()
                if len(sent) < max(1, limit):
                    sent.append(now)
                    return now
                # The service counts arrivals, we count departures: leave room for latency.
                wait = sent[0] + window - now + max(0.05, 0.05 * window)
            log.info("Triverse: %d uploads in the last %.0f s; waiting %.1f s", len(sent),
                     window, wait)
            sleep(wait, cancel)


UPLOAD_GATE = UploadGate()


class UploadedFiles:
    """file_keys of recent uploads by (base URL, account, route, content hash).

    How long Triverse keeps uploads is not documented; a key is reused for `ttl` seconds, and
    a 1005 "not found" on a reused key makes the job upload again (see `submit`).
    """

    def __init__(self, ttl: float = 20 * 60.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, ...], tuple[str, float]] = {}
        self._busy: dict[tuple[str, ...], threading.Lock] = {}

    def get(self, slot: tuple[str, ...]) -> str:
        with self._lock:
            entry = self._keys.get(slot)
            if entry is None or time.monotonic() - entry[1] > self.ttl:
                self._keys.pop(slot, None)
                return ""
            return entry[0]

    def put(self, slot: tuple[str, ...], key: str) -> None:
        with self._lock:
            self._keys[slot] = (key, time.monotonic())

    @contextlib.contextmanager
    def single_flight(self, slot: tuple[str, ...], cancel: CancelToken) -> Iterator[None]:
        """Hold `slot` while uploading, so identical bytes are uploaded once; cancelable."""
        with self._lock:
            lock = self._busy.setdefault(slot, threading.Lock())
        while not lock.acquire(timeout=0.1):
            cancel.check()
        try:
            yield
        finally:
            lock.release()


UPLOADED = UploadedFiles()

