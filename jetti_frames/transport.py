"""Send requests to Jetti: persistent HTTP cache, per-account rate limit, retries, concurrency.

Knows nothing of pandas or of query semantics: it takes URLs (relative to ``base_url``) and
encoded query strings, and returns parsed JSON.

Layers, top to bottom::

    Transport.get / submit / map / run_pager     retries (429, 5xx, dropped or bad bodies), errors
      requests_cache.CachedSession (SQLite)      a hit is answered here: no wait, no allowance
        _LimitedAdapter.send                     the account's limiter: one GET start per 0.5 s
          network

Rate limit.  Jetti meters each account with a leaky bucket of capacity 2 draining 2 GET/s (and 1
non-GET/s).  A fixed window of ``calls=2, period=1`` could start 3 requests within one second
at a window edge; instead ``ratelimit``'s ``limits(calls=1, period=1 / rate)`` starts at most one
request per 0.5 s (the window is reset by the call that passes, so starts are at least a period
apart), which drains exactly as fast as the bucket and leaves its second slot as slack for
network jitter.  Limiters are shared by every :class:`Transport` of the same account (token and
base URL) in the process, one for GET and one for other methods.  A 429 pauses the account's
limiter for ``Retry-After`` and the same request is sent again.

Cache.  Only 200 answers are stored, in SQLite at ``settings.resolved_cache_path``.  Keys mix in
a non-reversible account id (HMAC-SHA256 of the token), so two tokens never share an entry, and
the ``Authorization`` header is an ignored parameter: it is left out of keys and redacted from
stored requests, so the token never reaches the cache file.

Examples
--------
>>> explain_seconds(120, rate=2.0, latency=1.5)
61.5
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from ratelimit import limits, sleep_and_retry
from requests.adapters import HTTPAdapter
from requests_cache import CachedSession
from requests_cache.cache_keys import create_key
from requests_cache.policy.settings import DEFAULT_IGNORED_PARAMS

from .errors import (
    JettiAuthError,
    JettiHTTPError,
    JettiNotFoundError,
    JettiQueryError,
    JettiRateLimitError,
    JettiServerError,
)
from .paging import Pager, PageRequest
from .settings import Settings

__all__ = ["Transport", "TransportStats", "account_id", "explain_seconds"]

log = logging.getLogger("jetti_frames.transport")

_SALT = b"jetti-frames/account-id/v1"
#: How many 429 answers in a row one request may wait out before giving up.
MAX_THROTTLED = 20
_RETRYABLE = (requests.ConnectionError, requests.Timeout,
              requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)

Query = str | Mapping[str, Any] | None
Item = str | tuple[str, Query]


def account_id(token: str | None, base_url: str = "") -> str:
    """A short, non-reversible id of an account: HMAC-SHA256 of the token with a fixed salt.

    Examples
    --------
    >>> a = account_id("secret-token")
    >>> len(a), a == account_id("secret-token"), a == account_id("other")
    (16, True, False)
    >>> "secret" in a
    False
    """
    digest = hmac.new(_SALT, f"{base_url}\0{token or ''}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def explain_seconds(n_requests: int, *, rate: float = 2.0, latency: float = 1.0,
                    cached: int = 0) -> float:
    """Estimated duration of ``n_requests`` under the rate limit: ``n / rate`` + one latency.

    Cached requests cost nothing.

    Examples
    --------
    >>> explain_seconds(10, rate=2.0, latency=0.8)
    5.8
    >>> explain_seconds(0)
    0.0
    """
    sent = max(0, n_requests - cached)
    return 0.0 if sent == 0 else round(sent / rate + latency, 3)


@dataclass
class TransportStats:
    """Counters of one :class:`Transport` (``network`` counts requests that left the process)."""

    network: int = 0
    cache_hits: int = 0
    throttled: int = 0  # 429 answers seen
    retries: int = 0  # 5xx, dropped connections, unreadable bodies
    limiter_wait: float = 0.0  # seconds spent waiting for the rate limiter
    errors: int = 0


class _Limiter:
    """One account's limiter for one kind of method: ``ratelimit`` spacing plus 429 pauses."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.pause_until = 0.0
        self._lock = threading.Lock()

        @sleep_and_retry
        @limits(calls=1, period=1.0 / rate)
        def _gate() -> None:
            return None

        self._gate = _gate

    def pause(self, seconds: float) -> None:
        with self._lock:
            self.pause_until = max(self.pause_until, time.monotonic() + seconds)

    def acquire(self) -> float:
        """Block until a request may start; return the seconds waited."""
        began = time.monotonic()
        while (delay := self.pause_until - time.monotonic()) > 0:
            time.sleep(delay)
        self._gate()
        return time.monotonic() - began


_LIMITERS: dict[tuple[str, str, str], _Limiter] = {}
_LIMITERS_LOCK = threading.Lock()


def _limiter(account: str, base_url: str, kind: str, rate: float) -> _Limiter:
    key = (account, base_url, kind)
    with _LIMITERS_LOCK:
        found = _LIMITERS.get(key)
        if found is None or found.rate != rate:
            found = _LIMITERS[key] = _Limiter(rate)
        return found


class _LimitedAdapter(HTTPAdapter):
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
        waited = limiter.acquire()
        with t._lock:
            t.stats.limiter_wait += waited
            t.stats.network += 1
        began = time.monotonic()
        response = super().send(request, *args, **kwargs)
        response.jetti_waited = waited  # type: ignore[attr-defined]
        t._observe_latency(time.monotonic() - began)  # to the headers: the body comes after
        return response


class Transport:
    """HTTP transport for one account.

    Parameters
    ----------
    settings : Settings
        ``base_url``, ``token``, cache, rate and retry settings.

    Examples
    --------
    >>> from jetti_frames.sandbox import Sandbox
    >>> from jetti_frames.settings import Settings
    >>> with Sandbox(purchases=20) as sb, Transport(Settings(
    ...         base_url=sb.base_url, token="sandbox-token", cache=False)) as t:
    ...     rows = t.get("purchases.json", "limit=3")
    >>> len(rows), t.stats.network
    (3, 1)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.account = account_id(settings.token, settings.base_url)
        self.stats = TransportStats()
        self._lock = threading.Lock()
        self._latency: float | None = None
        self._get_limiter = _limiter(self.account, settings.base_url, "get", settings.get_rate)
        self._write_limiter = _limiter(self.account, settings.base_url, "write",
                                       settings.write_rate)
        self.session = self._make_session()
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "jetti-frames"
        if settings.token:
            self.session.headers["Authorization"] = f"Bearer {settings.token}"
        pool = max(10, settings.max_in_flight)
        adapter = _LimitedAdapter(self, pool)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._pool = ThreadPoolExecutor(max_workers=settings.max_in_flight,
                                        thread_name_prefix="jetti-transport")

    def __repr__(self) -> str:
        return (f"Transport(base_url={self.settings.base_url!r}, account={self.account!r}, "
                f"cache={self.cache_path if self.settings.cache else None!r})")

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cache --------------------------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        return self.settings.resolved_cache_path

    def _make_session(self) -> requests.Session:
        if not self.settings.cache:
            return requests.Session()
        path = self.cache_path
        path.parent.mkdir(parents=True, exist_ok=True)
        account = self.account

        def key_fn(request: Any, **kwargs: Any) -> str:
            return f"{account}-{create_key(request, **kwargs)}"

        return CachedSession(
            str(path), backend="sqlite", expire_after=self.settings.cache_expire,
            allowable_codes=(200,), allowable_methods=("GET", "HEAD"),
            ignored_parameters=DEFAULT_IGNORED_PARAMS, key_fn=key_fn, stale_if_error=False,
        )

    def cache_info(self) -> dict[str, Any]:
        """``enabled``, ``path``, ``entries`` (this account's), ``entries_total`` and ``size``
        (bytes, with SQLite's side files)."""
        if not isinstance(self.session, CachedSession):
            return {"enabled": False, "path": None, "entries": 0, "entries_total": 0, "size": 0}
        keys = list(self.session.cache.responses.keys())
        path = self.cache_path
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                   if p.exists())
        return {"enabled": True, "path": str(path),
                "entries": sum(1 for k in keys if k.startswith(self.account + "-")),
                "entries_total": len(keys), "size": size}

    def clear_cache(self, *, all_accounts: bool = False) -> int:
        """Delete this account's cached responses (or everyone's); return how many."""
        if not isinstance(self.session, CachedSession):
            return 0
        cache = self.session.cache
        keys = [k for k in cache.responses
                if all_accounts or k.startswith(self.account + "-")]
        if all_accounts:
            cache.clear()
        elif keys:
            cache.delete(*keys)
        return len(keys)

    # -- concurrency -------------------------------------------------------------------------
    def _observe_latency(self, seconds: float) -> None:
        with self._lock:
            prev = self._latency
            self._latency = seconds if prev is None else 0.7 * prev + 0.3 * seconds

    @property
    def latency(self) -> float | None:
        """Smoothed network latency (seconds to the response headers), None before any."""
        return self._latency

    @property
    def in_flight_target(self) -> int:
        """How many requests to keep in flight: ``ceil(rate x latency) + 1``, capped."""
        latency = 1.0 if self._latency is None else self._latency
        want = math.ceil(self.settings.get_rate * latency) + 1
        return max(1, min(self.settings.max_in_flight, want))

    def submit(self, url: str, query: Query = None, *, refresh: bool = False,
               dates: list[str] | None = None) -> Future[Any]:
        """Run :meth:`get` on the transport's thread pool."""
        return self._pool.submit(self.get, url, query, refresh=refresh, dates=dates)

    def map(self, items: Iterable[Item], *, refresh: bool = False) -> Iterator[Any]:
        """Parsed answers of ``items`` (URLs or ``(url, query)`` pairs), in the input order.

        Keeps :attr:`in_flight_target` requests running; the first error is raised.
        """
        todo = iter(items)
        queue: deque[Future[Any]] = deque()
        running: set[Future[Any]] = set()
        exhausted = False
        try:
            while True:
                while not exhausted and len(running) < self.in_flight_target:
                    item = next(todo, None)
                    if item is None:
                        exhausted = True
                        break
                    url, query = (item, None) if isinstance(item, str) else item
                    fut = self.submit(url, query, refresh=refresh)
                    queue.append(fut)
                    running.add(fut)
                if not queue:
                    return
                while queue and queue[0].done():
                    running.discard(queue[0])
                    yield queue.popleft().result()
                if queue and not queue[0].done():
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    running -= finished
        finally:
            for fut in queue:
                fut.cancel()

    def run_pager(self, pager: Pager,
                  build: Callable[[PageRequest], tuple[str, Query]], *,
                  refresh: bool = False,
                  dates: list[str] | None = None) -> Iterator[tuple[PageRequest, list[Any]]]:
        """Drive a pager: yield ``(request, records)`` per page as pages complete.

        ``build(request)`` returns the URL and query of a page request; each record must carry
        ``id``.  Records are already trimmed to what the pager keeps.  The pager's ``parallel``
        follows :attr:`in_flight_target` unless ``max_rows`` makes it sequential.  ``dates``
        collects the ``Date`` header of every answer (the server's clock, cached answers included).
        """
        running: dict[Future[Any], PageRequest] = {}
        try:
            while not pager.done:
                if pager.max_rows is None:
                    pager.parallel = self.in_flight_target
                for req in pager.next_requests():
                    url, query = build(req)
                    running[self.submit(url, query, refresh=refresh,
                                        dates=dates)] = req
                if not running:
                    raise RuntimeError("the pager stalled with nothing in flight")
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    req = running.pop(fut)
                    records = fut.result()
                    if not isinstance(records, list):
                        raise JettiServerError("a list endpoint did not answer a JSON array",
                                               status=200)
                    keep = pager.on_page(req, [int(r["id"]) for r in records])
                    yield req, records[:keep]
        finally:
            for fut in running:
                fut.cancel()

    # -- one request ---------------------------------------------------------------------------
    def url(self, url: str) -> str:
        return urljoin(self.settings.base_url, url.lstrip("/"))

    def get(self, url: str, query: Query = None, *, refresh: bool = False,
            dates: list[str] | None = None) -> Any:
        """GET ``url`` (relative to ``base_url``) and return the parsed JSON answer.

        ``query`` is an encoded query string or a mapping.  ``refresh=True`` skips the cache
        read (the answer is still stored).  Raises the matching :mod:`jetti_frames.errors`.
        """
        full = self.url(url)
        if isinstance(query, str) and query:
            full = f"{full}{'&' if '?' in full else '?'}{query.lstrip('?')}"
            params = None
        else:
            params = query or None
        return self._request("GET", full, params, refresh=refresh, dates=dates)

    def _request(self, method: str, url: str, params: Mapping[str, Any] | None, *,
                 refresh: bool, dates: list[str] | None = None) -> Any:
        s = self.settings
        failures = throttled = 0
        force = refresh
        while True:
            began = time.monotonic()
            kwargs: dict[str, Any] = {"params": params, "timeout": s.timeout}
            if isinstance(self.session, CachedSession):
                kwargs["force_refresh"] = force
            problem: str
            response: requests.Response | None = None
            try:
                resp = self.session.request(method, url, **kwargs)
            except _RETRYABLE as exc:
                problem = type(exc).__name__
            else:
                response = resp
                hit = bool(getattr(resp, "from_cache", False))
                self._log(resp, hit, began)
                if hit:
                    with self._lock:
                        self.stats.cache_hits += 1
                status = resp.status_code
                if status == 200:
                    try:
                        body = resp.json()
                        if dates is not None and resp.headers.get("Date"):
                            dates.append(resp.headers["Date"])
                        return body
                    except ValueError:
                        problem = "unreadable JSON body"
                        self._forget(resp)
                elif status == 429:
                    throttled += 1
                    with self._lock:
                        self.stats.throttled += 1
                    if throttled > MAX_THROTTLED:
                        raise self._error(resp, JettiRateLimitError)
                    delay = _retry_after(resp)
                    limiter = self._get_limiter if method == "GET" else self._write_limiter
                    limiter.pause(delay)
                    log.info("429 from %s: waiting %.3f s", _safe_url(resp.url), delay)
                    continue
                elif status >= 500:
                    problem = f"HTTP {status}"
                else:
                    raise self._error(resp)
            failures += 1
            force = True  # never answer a retry from the cache
            if failures > s.retries:
                if response is not None and response.status_code >= 500:
                    raise self._error(response, JettiServerError)
                with self._lock:
                    self.stats.errors += 1
                raise JettiServerError(f"{problem} from {_safe_url(url)} after "
                                       f"{failures} attempts", url=_safe_url(url))
            with self._lock:
                self.stats.retries += 1
            delay = s.backoff * 2 ** (failures - 1) * (0.5 + random.random())
            log.info("retrying %s in %.3f s (%s)", _safe_url(url), delay, problem)
            time.sleep(delay)

    def _forget(self, response: requests.Response) -> None:
        key = getattr(response, "cache_key", None)
        if key and isinstance(self.session, CachedSession):
            with contextlib.suppress(Exception):
                self.session.cache.delete(key)

    def _log(self, response: requests.Response, hit: bool, began: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("GET %s -> %s cache_hit=%s limiter_wait=%.3fs elapsed=%.3fs",
                      _safe_url(response.url), response.status_code, hit,
                      getattr(response, "jetti_waited", 0.0), time.monotonic() - began)

    def _error(self, response: requests.Response,
               kind: type[JettiHTTPError] | None = None) -> Exception:
        status = response.status_code
        problem: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict):
                problem = body
        detail = str(problem.get("detail") or problem.get("title") or response.reason or "")
        url = _safe_url(response.url)
        with self._lock:
            self.stats.errors += 1
        message = f"HTTP {status} from {url}: {detail}"
        if kind is None and status == 400:
            return JettiQueryError(message, status=status, detail=detail, url=url)
        if kind is None:
            kind = {401: JettiAuthError, 403: JettiAuthError,
                    404: JettiNotFoundError}.get(status, JettiHTTPError)
        return kind(message, status=status, detail=detail, url=url, problem=problem)

    def stats_dict(self) -> dict[str, Any]:
        return asdict(self.stats)


def _retry_after(response: requests.Response) -> float:
    """Seconds to wait after a 429: ``Retry-After`` (seconds or HTTP date), or the exact
    ``X-RateLimit-Reset`` when it is a plausible delay no longer than ``Retry-After``."""
    raw = response.headers.get("Retry-After")
    after: float | None = None
    if raw:
        try:
            after = float(raw)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                after = parsedate_to_datetime(raw).timestamp() - time.time()
    with contextlib.suppress(TypeError, ValueError):
        reset = float(response.headers.get("X-RateLimit-Reset", ""))
        if 0 < reset <= (after if after is not None else 60):
            after = reset
    return min(max(after if after is not None else 1.0, 0.05), 120.0)


def _safe_url(url: str | None) -> str:
    """The URL as logged: tokens travel in headers only, so the URL is safe as it is."""
    return url or ""
