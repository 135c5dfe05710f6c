"""The account's rate limiter, under an ``HTTPAdapter`` below the cache.

Jetti meters each account with a leaky bucket of capacity ``get_burst`` = 2 draining 2 GET/s
(and 1 non-GET/s).  In the process, ``ratelimit``'s ``limits(calls=burst + 60 x rate,
period=60)`` never starts more requests in a minute than the bucket can take in it (a full
bucket, and what it drains meanwhile): it holds the long-run rate to the allowance, and a
schedule keeping to the bucket never meets it.  Limiters are
shared by every :class:`~jetti_frames.transport.Transport` of the same account (token and base
URL) in the process, one for GET and one for other methods.  Jetti meters the account, not the
process: behind that in-process gate, every start takes a slot of the account's
:class:`~jetti_frames._shared_bucket.Schedule`, a lock-protected file in the cache directory
that every process of the user shares (in the process only when the cache is off).  It starts
one request per ``1.01 / rate`` seconds, lets an account seen alone on its bucket use the
second slot after a pause (two starts 0.11 s apart), and keeps room for network jitter.
The ``X-RateLimit-Remaining`` of every answer tells when another integration of the account
uses the bucket: the schedule then slows down.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from ratelimit import limits, sleep_and_retry
from requests.adapters import HTTPAdapter

from ._hold import Hold, Withdrawn
from ._shared_bucket import Schedule, Ticket

if TYPE_CHECKING:
    from .transport import Transport

__all__ = ["LimitedAdapter", "Limiter", "StartOrder", "limiter"]

#: Seconds of ``ratelimit``'s fixed period.
GATE_PERIOD = 60.0


class Limiter:
    """One account's limiter for one kind of method: ``ratelimit``'s gate in the process (at
    most what the bucket can take in a minute), then the account's :class:`Schedule` (shared
    with the user's other processes), which sets the pace."""

    def __init__(self, rate: float, schedule: Schedule) -> None:
        self.rate = rate
        self.schedule = schedule

        # ratelimit counts calls in fixed periods: a bucket of ``burst`` draining ``rate`` takes
        # at most burst + rate x period in a period (full at its start, drained by its end).
        # A short period holds a schedule that uses the bucket's second slot back; a long one
        # never does, and still holds the long-run rate to the allowance (2.03/s for Jetti)
        @sleep_and_retry
        @limits(calls=schedule.burst + math.ceil(rate * GATE_PERIOD), period=GATE_PERIOD)
        def _gate() -> None:
            return None

        self._gate = _gate

    def pause(self, seconds: float) -> None:
        self.schedule.pause(seconds)

    def acquire(self) -> Ticket:
        """Block until a request may start; its ticket tells the seconds waited."""
        began = time.monotonic()
        self._gate()
        ticket = self.schedule.acquire()
        ticket.waited = time.monotonic() - began
        return ticket

    def observe(self, ticket: Ticket, response: requests.Response) -> None:
        """Pass the answer's ``X-RateLimit-Remaining`` (when it has one) to the schedule."""
        with contextlib.suppress(TypeError, ValueError):
            self.schedule.observe(ticket, int(response.headers.get("X-RateLimit-Remaining", "")))


_LIMITERS: dict[tuple[str, str, str], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter(account: str, base_url: str, kind: str, rate: float, burst: int,
             folder: Path | None) -> Limiter:
    """The process's limiter of an account; its schedule is shared through ``folder`` (the
    first given, for the life of the process) or, with None, kept in the process."""
    key = (account, base_url, kind)
    with _LIMITERS_LOCK:
        found = _LIMITERS.get(key)
        if (found is None or found.rate != rate or found.schedule.burst != burst
                or (folder is not None and not found.schedule.shared)):
            schedule = Schedule(rate, folder, account, kind, burst=burst)
            found = _LIMITERS[key] = Limiter(rate, schedule)
        return found


class StartOrder:
    """Requests submitted to the transport's threads reach the limiter in the order they were
    submitted: a pager's first page before the pages it sends on speculation, whichever thread
    runs first.  A request answered without the network (the cache) gives its turn up when it
    is done, so cache hits never wait.

    Examples
    --------
    >>> order = StartOrder()
    >>> first, second = order.take(), order.take()
    >>> order.run(second, order.ready, 0.01)  # waits for `first`: false after the timeout
    False
    >>> order.release(first)
    >>> order.run(second, order.ready)
    True
    """

    #: Seconds a request waits for those submitted before it, at most (a safety net).
    TIMEOUT = 5.0

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        self._next = 0
        self._open: set[int] = set()
        self._local = threading.local()

    def take(self) -> int:
        """A ticket for a request about to be submitted."""
        with self._cond:
            ticket = self._next
            self._next += 1
            self._open.add(ticket)
            return ticket

    def run(self, ticket: int, fn: Any, *args: Any, hold: Hold | None = None,
            decides: Hold | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` as the request of ``ticket`` (on a transport thread),
        sent on speculation with a ``hold``, or deciding the hold ``decides``."""
        self._local.ticket, self._local.hold, self._local.decides = ticket, hold, decides
        try:
            return fn(*args, **kwargs)
        finally:
            self._local.ticket = self._local.hold = self._local.decides = None

    def go(self, wait: bool = True) -> None:
        """Wait for this thread's hold, if any (with ``wait``); raise :class:`Withdrawn` when
        it says the request is not wanted."""
        hold = getattr(self._local, "hold", None)
        if hold is not None and (not hold.go() if wait else hold.withdrawn):
            raise Withdrawn("withdrawn before it was sent")

    def ready(self, timeout: float | None = None) -> bool:
        """Wait until every request submitted before this thread's has started or ended."""
        ticket = getattr(self._local, "ticket", None)
        if ticket is None:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: min(self._open, default=ticket) >= ticket,
                                       self.timeout if timeout is None else timeout)

    def started(self) -> None:
        """This thread's request has its slot: later ones may take theirs, and the clock of
        the hold it decides starts."""
        ticket = getattr(self._local, "ticket", None)
        if ticket is not None:
            self.release(ticket)
        decides = getattr(self._local, "decides", None)
        if decides is not None:
            decides.begin()

    def release(self, ticket: int) -> None:
        with self._cond:
            self._open.discard(ticket)
            self._cond.notify_all()


class LimitedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose ``send`` waits for the account's limiter first.

    It sits below the cache, so only requests that really go to the network wait.
    """

    def __init__(self, transport: Transport, pool: int) -> None:
        super().__init__(pool_connections=pool, pool_maxsize=pool)
        self._transport = transport

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        t = self._transport
        limiter = t._get_limiter if request.method in ("GET", "HEAD") else t._write_limiter
        t._order.ready()
        t._order.go()
        ticket = limiter.acquire()
        t._order.go(wait=False)  # decided while waiting for the slot: the slot goes unused
        t._order.started()
        with t._lock:
            t.stats.limiter_wait += ticket.waited
            t.stats.network += 1
        began = time.monotonic()
        response = super().send(request, *args, **kwargs)
        response.jetti_waited = ticket.waited  # type: ignore[attr-defined]
        t._observe_latency(time.monotonic() - began)  # to the headers: the body comes after
        limiter.observe(ticket, response)
        return response
