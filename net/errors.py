"""What a request can end in besides an answer: a one-line error for the artist, a cancel, or
the job's overall deadline passing."""

from __future__ import annotations

import threading
import time

from .redact import clean_text


class ProviderError(Exception):
    """A failure with a one-line message for the artist.

    `retryable` tells the caller a later attempt of the same call may succeed (it never means
    re-submitting a paid job automatically). The message is cleaned and capped here, once, since
    it often carries what a server said (`clean_text`).
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        message = clean_text(message)
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


class Canceled(Exception):
    """Raised inside a worker when the artist canceled the job."""


class TimedOut(Canceled):
    """Raised inside a worker when the job's overall deadline has passed. A kind of `Canceled`,
    so everything that unwinds on a cancel unwinds on it too; the runner tells them apart (a
    timed-out job keeps its remote task: it may still finish and be paid for)."""


class CancelToken:
    """A cancel flag a worker can sleep on, so cancel wakes it immediately; optionally with an
    overall deadline (`time.monotonic()` seconds) after which every check and wait raises
    `TimedOut`. The HTTP layer watches the same token to cut a request in flight."""

    def __init__(self, deadline: float | None = None) -> None:
        self._event = threading.Event()
        self.deadline = deadline

    def cancel(self) -> None:
        self._event.set()

    def set_deadline(self, deadline: float | None) -> None:
        self.deadline = deadline

    @property
    def canceled(self) -> bool:
        return self._event.is_set()

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def remaining(self) -> float | None:
        """Seconds until the deadline (None: none set)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep, or raise `Canceled` as soon as the job is canceled (`TimedOut` once its
        deadline has passed)."""
        wait = max(0.0, seconds)
        left = self.remaining()
        if left is not None:
            wait = min(wait, max(0.0, left))
        if self._event.wait(wait):
            raise Canceled()
        if self.expired:
            raise TimedOut()

    def check(self) -> None:
        if self._event.is_set():
            raise Canceled()
        if self.expired:
            raise TimedOut()


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
