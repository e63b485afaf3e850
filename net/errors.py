"""What a request can end in besides an answer: a one-line error for the artist, or a cancel."""

from __future__ import annotations

import threading


class ProviderError(Exception):
    """A failure with a one-line message for the artist.

    `retryable` tells the caller a later attempt of the same call may succeed (it never means
    re-submitting a paid job automatically).
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


class Canceled(Exception):
    """Raised inside a worker when the artist canceled the job."""


class CancelToken:
    """A cancel flag a worker can sleep on, so cancel wakes it immediately."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def canceled(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> None:
        """Sleep, or raise `Canceled` as soon as the job is canceled."""
        if self._event.wait(max(0.0, seconds)):
            raise Canceled()

    def check(self) -> None:
        if self._event.is_set():
            raise Canceled()
