"""What every cloud provider shares: settings for tests, its base URL, one lazy HTTP client,
the artist's "Jobs at once", the job's exchange log and the shape of a connection test."""

from __future__ import annotations

import threading
from typing import ClassVar
from urllib.parse import urlsplit

from ..net.exchanges import ExchangeLog
from ..net.http import HttpClient, RetryPolicy, ServiceHooks, Sleeper, bearer
from ..net.links import is_loopback_host
from .base import CancelToken, ConnectionCheck, Provider, ProviderConfig, ProviderError

# "Jobs at once" may be set this high (Meshy Enterprise plans allow 100 or more).
MAX_JOBS_AT_ONCE = 200


def jobs_at_once(value: object, default: int) -> int:
    """The artist's "Jobs at once" (`<P>_JOBS_AT_ONCE` or the preference), else `default`;
    a value that is not a whole number from 1 up is ignored rather than failing a job."""
    try:
        number = int(str(value).strip()) if value not in (None, "") else 0
    except ValueError:
        number = 0
    return min(MAX_JOBS_AT_ONCE, number) if number >= 1 else default


class CloudProvider(Provider):
    """A provider behind `HttpClient`. Subclasses name their documented base URL and, where
    the service differs, their auth headers and error hooks."""

    # Every cloud provider takes the artist's "Jobs at once": the preference
    # `<prefix>_jobs_at_once` or the variable `<PROVIDER>_JOBS_AT_ONCE`.
    jobs_at_once_extra: ClassVar[str] = "jobs_at_once"
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
        chosen = self.config.extras.get(self.jobs_at_once_extra, "")
        self.max_concurrency = jobs_at_once(chosen, type(self).max_concurrency)  # type: ignore[misc]
        self._retry = retry
        self._sleep = sleep
        self._client: HttpClient | None = None
        self._client_lock = threading.Lock()
        self.exchanges = ExchangeLog(self.config.secrets())

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
                headers = self.auth_headers()
                assert self.exchanges is not None
                self.exchanges.add_secrets(headers.values())
                self.exchanges.set_api(self.base_url)
                self._client = HttpClient(
                    self.base_url, headers, self.label,
                    hooks=self.hooks(), retry=self._retry, sleep=self._sleep,
                    exchanges=self.exchanges,
                )
            return self._client

    def test_connection(self, cancel: CancelToken | None = None) -> ConnectionCheck:
        """Settings first (no request when they cannot work), then the provider's one free
        request (`check_connection`); any failure is its one line, as a job would say it."""
        problem = self.check_ready()
        if problem:
            return ConnectionCheck(False, problem)
        try:
            return self.check_connection(cancel)
        except ProviderError as exc:
            return ConnectionCheck(False, self.redact(exc.message))

    def check_connection(self, cancel: CancelToken | None) -> ConnectionCheck:
        """The provider's free request; raises `ProviderError` with the line to show."""
        raise NotImplementedError


def public_https(url: str, what: str, label: str) -> str:
    """`url` if the service could download it itself (a public https URL), else ProviderError:
    the service's servers fetch these links, so this computer's addresses can never work."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme != "https" or not parts.hostname or is_loopback_host(
            parts.hostname):
        raise ProviderError(f"The {what} must be a public https:// address {label} can "
                            "download")
    return url
