"""Requests in flight: every one has a total deadline, a cancel cuts it within a fraction of a
second, its answer is read with a cap, and a link's connection must reach a public address.

A socket read blocks until bytes arrive, and a read timeout restarts with every byte, so a server
that trickles one byte every two seconds could hold a worker (and the artist's Esc) forever. Here
each request runs as an `Exchange`: the connections it uses are known (our own urllib3 pool
classes register them), and one watchdog thread checks every live exchange a few times a second
and shuts its sockets down when its job is canceled, its job's deadline has passed, or its own
total deadline has. The blocked read then fails at once and `HttpClient` turns the failure into
the right ending (a cancel, a timed-out job, or "did not answer in time").

A request whose answer we must not lose (a create that may start a paid task) is not cut by a
cancel: only its total deadline ends it, so a task created in that moment is learnt and then
canceled properly instead of running on unseen.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import CancelToken
from .links import is_public_address

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.1  # how often the watchdog looks: a cancel is felt within about this
READ_CHUNK = 16 * 1024  # decoded bytes per read: a compressed bomb is checked every few MB

CANCELED = "canceled"  # the artist canceled the job
EXPIRED = "expired"  # the job's overall deadline passed
DEADLINE = "deadline"  # this request's own total deadline passed

# The job a worker thread is running: its token, for requests a provider made without passing
# one (the runner sets it; each worker thread has its own context).
_job_token: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar(
    "t2t_job_token", default=None)
# A tighter deadline for everything a block of code sends (e.g. the remote cancel after a job
# was canceled here: it must not keep the worker for a minute).
_cap_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "t2t_cap_deadline", default=None)


class LinkRefused(Exception):
    """The connection reached an address the policy forbids (a link pointing home)."""


class TooLarge(Exception):
    """An answer went past its cap while it was read."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@contextlib.contextmanager
def job_scope(token: CancelToken) -> Iterator[None]:
    """Requests made inside (on this thread) belong to the job of `token`."""
    reset = _job_token.set(token)
    try:
        yield
    finally:
        _job_token.reset(reset)


def job_token() -> CancelToken | None:
    return _job_token.get()


@contextlib.contextmanager
def deadline_within(seconds: float) -> Iterator[None]:
    """Every request made inside ends within `seconds` from now, whatever its own deadline."""
    reset = _cap_deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _cap_deadline.reset(reset)


@dataclass(eq=False)
class Exchange:
    """One request (with its redirects and its body read) as the watchdog sees it."""

    token: CancelToken | None
    deadline: float  # time.monotonic() seconds
    interruptible: bool = True  # False: a cancel waits for the answer (see the module doc)
    public_only: bool = False  # the peer address must be public (a server-sent link)
    reason: str = ""  # why it was cut; "" while it runs
    started: float = field(default_factory=time.monotonic)
    conns: set[Any] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def why_cut(self, now: float) -> str:
        token = self.token
        if token is not None and self.interruptible:
            if token.canceled:
                return CANCELED
            if token.expired:
                return EXPIRED
        return DEADLINE if now >= self.deadline else ""

    def extend(self, seconds: float) -> None:
        """Move the deadline to `seconds` from now, never past a cap set around the call."""
        cap = _cap_deadline.get()
        when = time.monotonic() + seconds
        self.deadline = min(when, cap) if cap is not None else when

    def cut(self, reason: str) -> None:
        with self.lock:
            self.reason = self.reason or reason
            conns = list(self.conns)
        for conn in conns:
            _shut(_socket_of(conn))

    def attach(self, conn: Any) -> None:
        with self.lock:
            self.conns.add(conn)
            reason = self.reason
        conn._t2t_exchange = self
        if reason:
            _shut(_socket_of(conn))

    def detach(self, conn: Any) -> None:
        with self.lock:
            self.conns.discard(conn)
        conn._t2t_exchange = None


_current = threading.local()
_live: set[Exchange] = set()
_live_lock = threading.Condition()
_watchdog: threading.Thread | None = None


def current() -> Exchange | None:
    return getattr(_current, "exchange", None)


@contextlib.contextmanager
def exchange(token: CancelToken | None, seconds: float, *, interruptible: bool = True,
             public_only: bool = False) -> Iterator[Exchange]:
    """Run one request as an exchange the watchdog guards (on this thread)."""
    ex = Exchange(token, 0.0, interruptible, public_only)
    ex.extend(seconds)
    outer = current()
    _current.exchange = ex
    _watch(ex)
    try:
        yield ex
    finally:
        _current.exchange = outer
        _unwatch(ex)


def _watch(ex: Exchange) -> None:
    global _watchdog
    with _live_lock:
        _live.add(ex)
        if _watchdog is None:
            _watchdog = threading.Thread(target=_watch_loop, name="t2t-http-watchdog",
                                         daemon=True)
            _watchdog.start()


def _unwatch(ex: Exchange) -> None:
    with _live_lock:
        _live.discard(ex)
        _live_lock.notify_all()


def _watch_loop() -> None:
    """Cut what must be cut, a few times a second; end as soon as nothing is in flight (the
    next request starts a new watchdog), so no thread outlives the requests it guards."""
    global _watchdog
    while True:
        with _live_lock:
            if not _live:
                _watchdog = None
                return
            live = list(_live)
        now = time.monotonic()
        for ex in live:
            reason = ex.reason or ex.why_cut(now)
            if reason:
                ex.cut(reason)  # again each round: a socket may have appeared since
        with _live_lock:
            if _live:
                _live_lock.wait(WATCH_INTERVAL)


def _socket_of(conn: Any) -> socket.socket | None:
    """The socket a connection reads from: its own, or (once http.client handed it to a
    response that closes the connection after it) the one kept when the answer began."""
    return getattr(conn, "sock", None) or getattr(conn, "_t2t_sock", None)


def _shut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:  # the plain socket's shutdown: a reader blocked in another thread wakes at once
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


# --------------------------------------------------------------------------- reading answers


def read_capped(resp: requests.Response, max_bytes: int,
                sink: Callable[[bytes], None] | None = None) -> bytes:
    """The body of `resp`, decoded, raising `TooLarge` as soon as more than `max_bytes` came.

    With `sink`, each piece goes there instead of into the returned bytes (downloads).
    """
    parts: list[bytes] = []
    size = 0
    for piece in resp.raw.stream(READ_CHUNK, decode_content=True):
        if not piece:
            continue
        size += len(piece)
        if size > max_bytes:
            raise TooLarge(size)
        if sink is not None:
            sink(piece)
        else:
            parts.append(piece)
    return b"".join(parts)


# --------------------------------------------------------------------------- connections


def peer_problem(sock: socket.socket) -> str:
    """"" if the socket's peer is a public address, else a few words saying what it is."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
    except (OSError, ValueError, IndexError):
        return "an unknown address"
    return "" if is_public_address(ip) else f"a private address ({ip})"


class _Watched:
    """Mixin for urllib3 connections: a new socket joins the current exchange, and a link's
    socket must reach a public address (checked before anything is sent on it)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        ex = current()
        if ex is None:
            return sock
        proxied = bool(getattr(self, "proxy", None) or getattr(self, "_tunnel_host", None))
        problem = "" if proxied or not ex.public_only else peer_problem(sock)
        if problem or ex.reason:
            sock.close()
            if problem:
                raise LinkRefused(f"the link's host resolves to {problem}")
            raise urllib3.exceptions.ProtocolError("request cut before it was sent")
        return sock

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        # http.client drops `sock` from a connection whose answer closes it, while the answer
        # is still being read from it: keep it, so a cut can still reach it.
        self._t2t_sock = getattr(self, "sock", None)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _PoolMixin:
    """Pools hand their connections to the exchange of the thread that takes them."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        ex = current()
        if ex is not None:
            ex.attach(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        ex = getattr(conn, "_t2t_exchange", None) if conn is not None else None
        if ex is not None:
            ex.detach(conn)
            if ex.reason and conn is not None:  # a cut connection is never reused
                conn.close()
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_PoolMixin, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_PoolMixin, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """A requests adapter whose connections the watchdog can cut and whose links' peers are
    checked."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager


def watched_session(user_agent: str) -> requests.Session:
    session = requests.Session()
    adapter = WatchedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session
