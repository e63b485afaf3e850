"""What every cloud provider shares: settings for tests, its base URL, one lazy HTTP client."""

from __future__ import annotations

import threading

from ..net.http import HttpClient, RetryPolicy, ServiceHooks, Sleeper, bearer
from .base import Provider, ProviderConfig, ProviderError


class CloudProvider(Provider):
    """A provider behind `HttpClient`. Subclasses name their documented base URL and, where
    the service differs, their auth headers and error hooks."""

    default_timeout_s = 3600.0  # a cloud job that has not finished within an hour is stuck

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        poll_interval: float | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleeper | None = None,
    ) -> None:
        super().__init__(config)
        if poll_interval is not None:  # tests shorten the waits; behaviour is unchanged
            self.poll_interval = poll_interval  # type: ignore[misc]
        self._retry = retry
        self._sleep = sleep
        self._client: HttpClient | None = None
        self._client_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """The preferences' or `<P>_API_BASE` URL, else the documented one."""
        return (self.config.api_base or self.default_base).strip().rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        return bearer(self.config.api_key)

    def hooks(self) -> ServiceHooks:
        return ServiceHooks()

    def client(self) -> HttpClient:
        """One client per provider instance, made on first use (on a worker thread)."""
        with self._client_lock:
            if self._client is None:
                problem = self.check_ready()
                if problem:
                    raise ProviderError(problem)
                self._client = HttpClient(
                    self.base_url, self.auth_headers(), self.label,
                    hooks=self.hooks(), retry=self._retry, sleep=self._sleep,
                )
            return self._client
