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


class QueueFull(ProviderError):
    """The service refused a new task because the account's queue of unfinished tasks is full
    (Meshy `pending_task_limit_reached`, Triverse 2000 on a create, Scenario 429 on a create).

    Nothing was created and nothing charged, so the job is not failed: the runner keeps it
    waiting and sends it again once one of the account's tasks has ended."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, retryable=True, status=status)
        self.retry_after = retry_after


class CancelRefused(ProviderError):
    """The service would not stop a task (Scenario cancels only image jobs; Meshy does not
    delete a running task): it runs on there and may be charged, so its result is still
    fetched and kept for the artist, not applied."""
