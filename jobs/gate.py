"""(issue 12) How many jobs of one provider may be at its service at once, adapting to the
service's "queue full" answers; the runner holds one `Gate` per provider."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..providers.base import CancelToken

# After a queue-full answer the limit climbs back one job per this many seconds.
RECOVER_S = 30.0
# A job refused for a full queue tries again once a job of ours has left the service,
# or after this wait (doubled per refusal, at most QUEUE_WAIT_MAX_S): other tools of the same
# account may free slots we cannot see.
QUEUE_WAIT_S = 5.0
QUEUE_WAIT_MAX_S = 60.0
# A refusal that names its own wait (Retry-After, Scenario's `remainingSeconds`) is sent again
# after that wait, but never sooner than this: a hint of 0 must not become a busy loop.
QUEUE_HINT_MIN_S = 0.5


class Gate:
    """How many jobs of one provider may have a task at the service at once.

    The ceiling is the artist's "Jobs at once". When the service answers that the account's
    queue is full, the limit drops to the number of our jobs still there (the rest of the plan
    is used by something else: another Blender, another tool) and climbs back one job every
    `recover_s` seconds; the refused job waits for a slot instead of failing.
    """

    def __init__(self, ceiling: int, recover_s: float) -> None:
        self.ceiling = max(1, ceiling)
        self.recover_s = recover_s
        self.inside = 0  # jobs with a task at the service, or a create on its way
        self.released = 0  # jobs that left the service so far (a waiting job watches this)
        self.refusals = 0
        self._lowered: int | None = None
        self._refused_at = 0.0
        self.cond = threading.Condition()

    def limit(self) -> int:
        """The limit now (read without the lock by the main thread: plain attribute reads)."""
        lowered = self._lowered
        if lowered is None:
            return self.ceiling
        climbed = lowered + int((time.monotonic() - self._refused_at) / self.recover_s)
        return min(self.ceiling, climbed)

    def enter(self, token: CancelToken, alive: Callable[[], None], not_before: float = 0.0,
              after: int = -1) -> None:
        """Take a slot once one is free; a refused job also waits until `not_before` unless a
        job left the service after its refusal (`released` > `after`)."""
        with self.cond:
            while not (self.inside < self.limit() and (
                    time.monotonic() >= not_before or self.released > after)):
                self.cond.wait(0.1)
                token.check()
                alive()
            self.inside += 1

    def take(self) -> None:
        """A resumed job whose task is already at the service."""
        with self.cond:
            self.inside += 1

    def leave(self) -> None:
        with self.cond:
            self.inside -= 1
            self.released += 1
            self.cond.notify_all()

    def refused(self) -> int:
        """This job's create was refused (queue full): it leaves without freeing anything; the
        limit becomes the jobs still inside. Returns `released`, for `enter(after=…)`."""
        with self.cond:
            self.inside -= 1
            self.refusals += 1
            self._lowered = max(1, min(self.limit(), self.inside))
            self._refused_at = time.monotonic()
            return self.released
