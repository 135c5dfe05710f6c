"""Send requests to Jetti: persistent HTTP cache, per-account rate limit, retries, concurrency.

Knows nothing of pandas or of query semantics: it takes URLs (relative to ``base_url``) and
encoded query strings, and returns parsed JSON.

Layers, top to bottom::

    Transport.get / submit / map / run_pager     retries (429, 5xx, dropped or bad bodies), errors
      Transport._fresh_hit                       a fresh entry, read straight from the file
      requests_cache.CachedSession (SQLite)      a hit is answered here: no wait, no allowance
        _limiter.LimitedAdapter.send             the account's limiter: 2 GET starts per s
          _shared_bucket.Schedule                  ... in every process of the user (cache dir)
            network

Rate limit (:mod:`jetti_frames._limiter`).  Jetti meters each account with a leaky bucket of
capacity ``get_burst`` = 2 draining 2 GET/s (1 non-GET/s), shared by every process of the user
through the cache directory.  A 429 pauses the account for ``Retry-After`` and the same request
is sent again.

Cache (:mod:`jetti_frames._cache`).  Only well-formed 200 answers are stored, as JSON, keyed by
the URL exactly as sent and a non-reversible account id; the token never reaches the file.  A
cached body is parsed once, with its entry, and handed out as parsed.

Connections.  A failed connection raises
:class:`~jetti_frames.errors.JettiConnectionError` naming its cause; a host name that does not
resolve or a refused connection is tried twice only, timeouts and 5xx answers ``retries`` times
with backoff.  ``settings.deadline`` bounds one read, ``settings.rate_limit_wait`` the time one
request waits out 429 answers.

Examples
--------
>>> explain_seconds(120, rate=2.0, latency=1.5)
61.5
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests_cache import DO_NOT_CACHE, CachedSession

from . import _failures
from ._cache import CACHE_KEY_VERSION, account_id, answer_problem, cache_key, move_aside, open_cache
from ._failures import CAUSES, FAST_FAIL, failure_cause
from ._hold import Hold, Withdrawn
from ._limiter import LimitedAdapter, StartOrder, limiter
from .credentials import drop_exclude, has_exclude, strip_response
from .errors import (
    JettiAuthError,
    JettiBadRequestError,
    JettiCacheError,
    JettiConnectionError,
    JettiHTTPError,
    JettiNotFoundError,
    JettiRateLimitError,
    JettiServerError,
    JettiTimeoutError,
)
from .paging import PageRequest, PageSource
from .settings import Settings

__all__ = ["Transport", "TransportStats", "account_id", "answer_problem", "cache_key",
           "explain_seconds"]

log = logging.getLogger("jetti_frames.transport")

#: How many 429 answers in a row one request may wait out before giving up.
MAX_THROTTLED = 20



class _UnreadableBody(requests.RequestException):
    """A 200 answer whose body is not JSON (cut short, or garbage): retried, never stored."""


_RETRYABLE = (requests.ConnectionError, requests.Timeout, _UnreadableBody,
              requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)

Query = str | Mapping[str, Any] | None
Item = str | tuple[str, Query]


@dataclass(frozen=True)
class CacheInfo(Mapping[str, Any]):
    """The HTTP cache of one account, as :meth:`JettiClient.cache_info` reports it.

    Attributes
    ----------
    enabled : bool
        False when the client was made with ``cache=False``.
    path : str or None
        The SQLite file (``None`` when the cache is off).
    entries : int
        This account's answers that reads can be served from.
    entries_total : int
        Every entry in the file: every token and base URL, older key versions too.
    size : int
        Bytes on disk, with SQLite's ``-wal`` and ``-shm`` files.

    ``info["entries"]``, ``dict(info)`` and ``info.get(...)`` read it as a mapping too.

    Examples
    --------
    >>> info = CacheInfo(enabled=True, path="/tmp/http-cache.sqlite", entries=12,
    ...                  entries_total=40, size=2_500_000)
    >>> info
    CacheInfo(path='/tmp/http-cache.sqlite', entries=12, entries_total=40, size='2.5 MB')
    >>> info["entries"], dict(info)["enabled"]
    (12, True)
    >>> CacheInfo(enabled=False, path=None, entries=0, entries_total=0, size=0)
    CacheInfo(enabled=False)
    """

    enabled: bool
    path: str | None
    entries: int
    entries_total: int
    size: int

    def __repr__(self) -> str:
        if not self.enabled:
            return "CacheInfo(enabled=False)"
        return (f"CacheInfo(path={self.path!r}, entries={self.entries}, "
                f"entries_total={self.entries_total}, size='{self.size / 1e6:.1f} MB')")

    def __getitem__(self, key: str) -> Any:
        return asdict(self)[key]  # KeyError for any other name, as a dict

    def __iter__(self) -> Iterator[str]:
        return iter(asdict(self))

    def __len__(self) -> int:
        return len(fields(self))


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


#: Accounts (account id, base URL) whose server answered ``attributes[exclude]`` with 400.
_EXCLUDE_REFUSED: set[tuple[str, str]] = set()


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
        folder = settings.resolved_cache_path.parent if settings.cache else None
        self._get_limiter = limiter(self.account, settings.base_url, "get", settings.get_rate,
                                     settings.get_burst, folder)
        self._write_limiter = limiter(self.account, settings.base_url, "write",
                                       settings.write_rate, 1, folder)
        self.session = self._make_session()
        self._mount()
        self._order = StartOrder()
        self._pool = ThreadPoolExecutor(max_workers=settings.max_in_flight,
                                        thread_name_prefix="jetti-transport")

    def _mount(self) -> None:
        """Headers and the rate-limited adapter on :attr:`session`."""
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "jetti-frames"
        if self.settings.token:
            self.session.headers["Authorization"] = f"Bearer {self.settings.token}"
        adapter = LimitedAdapter(self, max(10, self.settings.max_in_flight))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

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
        session = self._cached_session() if self.settings.cache else requests.Session()
        # hooks run inside send, before requests-cache stores the answer: credential fields the
        # request did not name leave the body, then the answer's shape is checked
        session.hooks["response"].extend([strip_response, self._check_answer])
        return session

    def _cached_session(self) -> CachedSession:
        """The cache session; a file too damaged to open is moved aside with a warning."""
        try:
            return open_cache(self.cache_path, self.account, self.settings.cache_expire)
        except sqlite3.DatabaseError as exc:
            raise self._cache_error(exc) from exc

    def _cache_error(self, exc: BaseException) -> JettiCacheError:
        return JettiCacheError(f"the HTTP cache file {self.cache_path} is damaged ({exc}): clear "
                               "it with `jetti-frames cache clear`, or delete the file")

    def _account_keys(self, *, current: bool) -> list[str]:
        """This account's cache keys: of the current key version, or of any version."""
        assert isinstance(self.session, CachedSession)
        prefix = f"{self.account}-{CACHE_KEY_VERSION}-" if current else f"{self.account}-"
        return [k for k in self.session.cache.responses if k.startswith(prefix)]

    def cache_info(self) -> CacheInfo:
        """Where the HTTP cache lives, how many answers it holds for this account, its size."""
        if not isinstance(self.session, CachedSession):
            return CacheInfo(enabled=False, path=None, entries=0, entries_total=0, size=0)
        path = self.cache_path
        try:
            entries = len(self._account_keys(current=True))
            total = len(self.session.cache.responses)
        except sqlite3.DatabaseError as exc:
            raise self._cache_error(exc) from exc
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                   if p.exists())
        return CacheInfo(enabled=True, path=str(path), entries=entries, entries_total=total,
                         size=size)

    def clear_cache(self, *, all_accounts: bool = False) -> int:
        """Delete this account's cached responses, of every key version (or everyone's);
        return how many.  A damaged cache file is moved aside instead."""
        if not isinstance(self.session, CachedSession):
            return 0
        cache = self.session.cache
        try:
            keys = list(cache.responses.keys()) if all_accounts \
                else self._account_keys(current=False)
            if all_accounts:
                cache.clear()
            elif keys:
                cache.delete(*keys)
        except sqlite3.DatabaseError:
            self.session.close()
            aside = move_aside(self.cache_path)
            log.warning("the HTTP cache file %s was damaged: moved aside to %s",
                        self.cache_path, aside.name)
            self.session = self._make_session()
            self._mount()
            return 0
        return len(keys)

    def _check_answer(self, response: requests.Response, *args: Any,
                      **kwargs: Any) -> requests.Response:
        """Response hook: a 200 that is not JSON is retried, one of the wrong shape raises;
        either way it is never stored.  Cached answers were checked when they were stored."""
        if (response.status_code != 200 or getattr(response, "from_cache", False)
                or getattr(response, "jetti_checked", False)):
            return response
        try:
            body = response.json()
        except ValueError as exc:
            raise _UnreadableBody("unreadable JSON body") from exc
        parts = urlsplit(response.url or "")
        root = urlsplit(self.settings.base_url).path
        path = parts.path[len(root):] if parts.path.startswith(root) else parts.path
        problem = answer_problem(path, parts.query, body)
        if problem:
            with self._lock:
                self.stats.errors += 1
            url = response.url
            raise JettiServerError(f"malformed answer from {url}: {problem} (not cached)",
                                   status=200, url=url)
        response.jetti_checked = True  # type: ignore[attr-defined]
        response.jetti_body = body  # type: ignore[attr-defined]  # parsed once, read by _request
        return response

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
               dates: list[str] | None = None, deadline: float | None = None,
               hold: Hold | None = None, decides: Hold | None = None) -> Future[Any]:
        """Run :meth:`get` on the transport's thread pool.

        With a ``hold``, the request waits for its decision before the rate limiter (a cache
        hit does not wait), and the future raises :class:`~jetti_frames._hold.Withdrawn` when
        it is not wanted.  A request that ``decides`` a hold starts its clock when it has its
        slot, and tells it when its answer is in.
        """
        ticket = self._order.take()  # the network sees requests in the order submitted
        future = self._pool.submit(self._order.run, ticket, self.get, url, query,
                                   refresh=refresh, dates=dates, deadline=deadline, hold=hold,
                                   decides=decides)
        future.add_done_callback(lambda _: self._order.release(ticket))
        if decides is not None:
            decides.expect()
            future.add_done_callback(lambda _: decides.arrived())
        return future

    def deadline(self) -> float | None:
        """The ``time.monotonic()`` by which a read starting now must end (``settings.deadline``
        from now), or None."""
        limit = self.settings.deadline
        return None if limit is None else time.monotonic() + limit

    def map(self, items: Iterable[Item], *, refresh: bool = False) -> Iterator[Any]:
        """Parsed answers of ``items`` (URLs or ``(url, query)`` pairs), in the input order.

        Keeps :attr:`in_flight_target` requests running; the first error is raised.
        """
        todo = iter(items)
        deadline = self.deadline()
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
                    fut = self.submit(url, query, refresh=refresh, deadline=deadline)
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

    def run_pager(self, pager: PageSource,
                  build: Callable[[PageRequest], tuple[str, Query]], *,
                  refresh: bool = False,
                  dates: list[str] | None = None) -> Iterator[tuple[PageRequest, list[Any]]]:
        """Drive a pager: yield ``(request, records)`` per page as pages complete.

        ``build(request)`` returns the URL and query of a page request; each record must carry
        ``id``.  The records yielded are those the pager says are final (a page trimmed to its
        window; none for a pager that gives its result at the end).  The pager decides how many
        requests are in flight (a :class:`~jetti_frames._fanout.Fanout` asks
        :attr:`in_flight_target`); a lone :class:`Pager` keeps its ``parallel``.  ``dates``
        collects the ``Date`` header of every answer (the server's clock, cached answers included).
        """
        running: dict[Future[Any], PageRequest] = {}
        deadline = self.deadline()
        try:
            while not pager.done:
                for req in pager.next_requests():
                    url, query = build(req)
                    running[self.submit(url, query, refresh=refresh, dates=dates,
                                        deadline=deadline, hold=req.hold,
                                        decides=req.decides)] = req
                if not running:
                    raise JettiServerError("the pager stalled with nothing in flight")
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    req = running.pop(fut)
                    try:
                        records = fut.result()
                    except Withdrawn:
                        pager.on_withdrawn(req)
                        continue
                    yield req, pager.on_records(req, records)
        finally:
            for fut, req in running.items():
                fut.cancel()
                if req.hold is not None:  # the read is over: nothing held goes out
                    req.hold.decide(False)

    # -- one request ---------------------------------------------------------------------------
    def url(self, url: str) -> str:
        return urljoin(self.settings.base_url, url.lstrip("/"))

    def get(self, url: str, query: Query = None, *, refresh: bool = False,
            dates: list[str] | None = None, deadline: float | None = None) -> Any:
        """GET ``url`` (relative to ``base_url``) and return the parsed JSON answer.

        ``query`` is an encoded query string or a mapping.  ``refresh=True`` skips the cache
        read (the answer is still stored).  ``deadline`` is a ``time.monotonic()`` value
        (default: ``settings.deadline`` from now).  Raises the matching
        :mod:`jetti_frames.errors`.
        """
        if deadline is None:
            deadline = self.deadline()
        full = self.url(url)
        if isinstance(query, str) and query:
            full = f"{full}{'&' if '?' in full else '?'}{query.lstrip('?')}"
            params = None
        else:
            params = query or None
        refused = (self.account, self.settings.base_url) in _EXCLUDE_REFUSED
        if refused or not has_exclude(full):
            return self._request("GET", drop_exclude(full) if refused else full, params,
                                 refresh=refresh, dates=dates, deadline=deadline)
        try:
            return self._request("GET", full, params, refresh=refresh, dates=dates,
                                 deadline=deadline)
        except JettiBadRequestError:
            pass
        body = self._request("GET", drop_exclude(full), params, refresh=refresh, dates=dates,
                             deadline=deadline)
        _EXCLUDE_REFUSED.add((self.account, self.settings.base_url))
        log.info("the server refused attributes[exclude]: reading without it "
                 "(credential fields are still stripped)")
        return body

    def _request(self, method: str, url: str, params: Mapping[str, Any] | None, *,
                 refresh: bool, dates: list[str] | None = None,
                 deadline: float | None = None) -> Any:
        s = self.settings
        failures = throttled = 0
        waited_429 = 0.0
        force = refresh
        while True:
            timeout = self._time_left(deadline, url)
            began = time.monotonic()
            kwargs: dict[str, Any] = {"params": params, "timeout": timeout}
            if isinstance(self.session, CachedSession):
                kwargs["force_refresh"] = force
            response: requests.Response | None = None
            failure: Exception
            try:
                resp = None if force else self._fresh_hit(method, url, params)
                if resp is None:
                    resp = self.session.request(method, url, **kwargs)
            except _RETRYABLE as exc:
                failure = exc
            except sqlite3.DatabaseError as exc:
                raise self._cache_error(exc) from exc
            except requests.RequestException as exc:  # a bad URL or header, redirects, ...
                with self._lock:
                    self.stats.errors += 1
                # the type only: an invalid-header message would quote the token
                raise JettiServerError(f"cannot send the request to {url}: "
                                       f"{type(exc).__name__}", url=url) from exc
            else:
                response = resp
                hit = bool(getattr(resp, "from_cache", False))
                self._log(resp, hit, began)
                if hit:
                    with self._lock:
                        self.stats.cache_hits += 1
                status = resp.status_code
                if status == 200:
                    body = getattr(resp, "jetti_body", None)  # a network answer: checked
                    if body is None:
                        try:
                            body = resp.json()
                        except ValueError as exc:  # a cached answer was checked when stored
                            raise self._cache_error(exc) from exc
                    if dates is not None and resp.headers.get("Date"):
                        dates.append(resp.headers["Date"])
                    return body
                if status == 429:
                    throttled += 1
                    with self._lock:
                        self.stats.throttled += 1
                    delay = _failures.retry_after(resp)
                    if throttled > MAX_THROTTLED or waited_429 + delay > s.rate_limit_wait:
                        raise self._throttled(resp, throttled, waited_429)
                    if deadline is not None and time.monotonic() + delay >= deadline:
                        raise self._past_deadline(url)
                    waited_429 += delay
                    limiter = self._get_limiter if method == "GET" else self._write_limiter
                    limiter.pause(delay)
                    log.info("429 from %s: waiting %.3f s", resp.url, delay)
                    continue
                if status < 500:
                    raise self._error(resp)
                failure = JettiServerError(f"HTTP {status}")
            failures += 1
            force = True  # never answer a retry from the cache
            cause = failure_cause(failure)
            if failures > min(s.retries, FAST_FAIL.get(cause, s.retries + 1) - 1):
                raise self._give_up(url, response, failure, failures) from failure
            with self._lock:
                self.stats.retries += 1
            delay = s.backoff * 2 ** (failures - 1) * (0.5 + random.random())
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            reason = failure if isinstance(failure, (JettiServerError, _UnreadableBody)) else cause
            log.info("retrying %s in %.3f s (%s)", url, delay, reason)
            time.sleep(delay)

    def _fresh_hit(self, method: str, url: str,
                   params: Mapping[str, Any] | None) -> requests.Response | None:
        """The cached answer to ``GET url`` when the cache holds a fresh one, read straight from
        the cache file; None otherwise (the request then goes through requests-cache).

        It is the answer requests-cache gives for this session's settings: the key comes from
        the session's key function (the URL as sent), an entry is served until it expires, and
        response hooks skip cached answers.  An entry whose answer names ``Vary`` is left to
        requests-cache.
        """
        session = self.session
        if (method != "GET" or not isinstance(session, CachedSession) or session.settings.disabled
                or session.settings.expire_after == DO_NOT_CACHE):
            return None
        request = requests.PreparedRequest()
        request.prepare_method(method)
        request.prepare_url(url, params)
        cached = session.cache.get_response(session.cache.create_key(request))
        if cached is None or cached.is_expired or cached.headers.get("Vary"):
            return None
        return cached

    def _time_left(self, deadline: float | None, url: str) -> float:
        """The timeout of the next attempt: ``settings.timeout``, cut to what the deadline
        leaves; raises :class:`JettiTimeoutError` when nothing is left."""
        if deadline is None:
            return self.settings.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._past_deadline(url)
        return min(self.settings.timeout, left)

    def _past_deadline(self, url: str) -> JettiTimeoutError:
        with self._lock:
            self.stats.errors += 1
        return JettiTimeoutError(
            f"the read did not finish within deadline={self.settings.deadline:g} s "
            f"(at {url}): raise deadline= (JettiClient(deadline=...)) or read "
            "fewer rows")

    def _give_up(self, url: str, response: requests.Response | None, failure: Exception,
                 attempts: int) -> Exception:
        """The error raised when the retries of one request are spent."""
        if response is not None and response.status_code >= 500:
            return self._error(response, JettiServerError)
        with self._lock:
            self.stats.errors += 1
        if isinstance(failure, _UnreadableBody):
            return JettiServerError(f"unreadable JSON body from {url} after {attempts} attempts",
                                    status=200, url=url)
        cause = failure_cause(failure)
        host = urlsplit(url).netloc
        return JettiConnectionError(f"cannot reach {host} ({cause}): {CAUSES[cause]}; "
                                    f"{type(failure).__name__} after {attempts} attempts",
                                    cause=cause, url=url)

    def _throttled(self, response: requests.Response, answers: int,
                   waited: float) -> JettiRateLimitError:
        """The error raised when 429 answers outlast ``rate_limit_wait`` or MAX_THROTTLED."""
        error = self._error(response, JettiRateLimitError)
        assert isinstance(error, JettiRateLimitError)
        error.args = (f"{error.args[0]} ({answers} answers 429 over {waited:.1f} s; "
                      f"rate_limit_wait={self.settings.rate_limit_wait:g} s): the account's "
                      "allowance is in use elsewhere; try later or raise rate_limit_wait=",)
        return error

    def _log(self, response: requests.Response, hit: bool, began: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("GET %s -> %s cache_hit=%s limiter_wait=%.3fs elapsed=%.3fs",
                      response.url, response.status_code, hit,
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
        url = response.url
        with self._lock:
            self.stats.errors += 1
        message = f"HTTP {status} from {url}: {detail}"
        if kind is None:
            kind = {400: JettiBadRequestError, 401: JettiAuthError, 403: JettiAuthError,
                    404: JettiNotFoundError}.get(status, JettiHTTPError)
        return kind(message, status=status, detail=detail, url=url, problem=problem)
