"""Send requests to Jetti: persistent HTTP cache, per-account rate limit, retries, concurrency.

Knows nothing of pandas or of query semantics: it takes URLs (relative to ``base_url``) and
encoded query strings, and returns parsed JSON.

Layers, top to bottom::

    Transport.get / submit / map / run_pager     retries (429, 5xx, dropped or bad bodies), errors
      requests_cache.CachedSession (SQLite)      a hit is answered here: no wait, no allowance
        _LimitedAdapter.send                     the account's limiter: 2 GET starts per s
          _shared_bucket.Schedule                  ... in every process of the user (cache dir)
            network

Rate limit.  Jetti meters each account with a leaky bucket of capacity ``get_burst`` = 2
draining 2 GET/s (and 1 non-GET/s).  In the process, ``ratelimit``'s ``limits(calls=burst,
period=burst / rate)`` never starts more than a full bucket per time the bucket takes to drain.
Limiters are shared by every :class:`Transport` of the same account (token and base URL) in the
process, one for GET and one for other methods.  Jetti meters the account, not the process:
behind that in-process gate, every start takes a slot of the account's
:class:`~jetti_frames._shared_bucket.Schedule`, a lock-protected file in the cache directory
that every process of the user shares (in the process only when the cache is off).  It starts
one request per ``1.02 / rate`` seconds, lets an idle account use the bucket's second slot at
once (a read's first page and its probe start 0.11 s apart), and keeps room for network jitter.
The ``X-RateLimit-Remaining`` of every answer tells when another integration of the account
uses the bucket: the schedule then slows down.  A 429 pauses the account for ``Retry-After``
and the same request is sent again.

Cache.  Only well-formed 200 answers are stored, as JSON (never pickles), in SQLite at
``settings.resolved_cache_path``.  The key is :func:`cache_key`: the method, the URL exactly as
sent (query string byte for byte: ``where[saleId]=`` and no condition are two keys) and a
non-reversible account id (HMAC-SHA256 of the token), so two tokens never share an entry; the key
is versioned, so entries written by older versions are never served.  The ``Authorization``
header is redacted from stored requests, so the token never reaches the cache file.  Every 200
answer is checked before it is stored (:func:`answer_problem`: a list where a list is due,
records with an integer ``id``, ids in the requested order); a malformed one raises
:class:`~jetti_frames.errors.JettiServerError` and the next read asks the server again.  A cache
file that is not SQLite or is truncated is moved aside with a warning and started afresh.

Connections.  A failed connection raises
:class:`~jetti_frames.errors.JettiConnectionError` naming its cause; a host name that does not
resolve or a refused connection is tried twice only, timeouts and 5xx answers ``retries`` times
with backoff.  ``settings.deadline`` bounds one read, ``settings.rate_limit_wait`` the time one
request waits out 429 answers.

Examples
--------
>>> explain_seconds(120, rate=2.0, latency=1.5)
61.5
>>> url = "http://h/api/sales.json"
>>> cache_key("GET", url + "?where[saleId]=", "acc") == cache_key("GET", url, "acc")
False
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import random
import re
import socket
import sqlite3
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from email.utils import parsedate_to_datetime
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests
from ratelimit import limits, sleep_and_retry
from requests.adapters import HTTPAdapter
from requests_cache import CachedSession
from requests_cache.backends.sqlite import SQLiteCache
from requests_cache.policy.settings import DEFAULT_IGNORED_PARAMS
from requests_cache.serializers import SerializerPipeline, Stage
from requests_cache.serializers.preconf import json_preconf_stage
from urllib3.exceptions import NameResolutionError

from ._shared_bucket import Schedule, Ticket
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

_SALT = b"jetti-frames/account-id/v1"
#: The version of :func:`cache_key`: entries under any other version are never served.
CACHE_KEY_VERSION = "v2"
#: How many 429 answers in a row one request may wait out before giving up.
MAX_THROTTLED = 20
#: Failures that no retry cures soon: tried this many times at most.
_FAST_FAIL = {"name resolution": 2, "refused": 2}
_CAUSES = {
    "name resolution": "the host name does not resolve (check base_url and the network)",
    "refused": "the connection was refused (is the server running? check base_url)",
    "timeout": "no answer in time (raise timeout=, or check the network)",
    "TLS": "the TLS handshake failed (certificate, or a proxy in between?)",
    "proxy": "the proxy failed (check HTTP_PROXY / HTTPS_PROXY)",
    "dropped": "the connection dropped before the answer was complete",
    "connection": "the connection failed",
}


#: requests-cache's JSON serializer, compact: the cache never holds pickles.  With the session's
#: ``decode_content=True`` JSON bodies are stored as JSON (not base64), so the file can be read.
_JSON = SerializerPipeline(
    [json_preconf_stage,
     Stage(dumps=partial(json.dumps, separators=(",", ":")), loads=json.loads)],
    name="json", is_binary=False)


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


def cache_key(method: str, url: str, account: str) -> str:
    """The HTTP cache key of a request: the method, the URL exactly as sent and the account.

    Nothing is normalised: two URLs that differ in any byte (``where[saleId]=`` against no
    condition, parameter order) are two keys.  The key starts with ``<account>-<version>-`` so
    an account's entries can be counted, and entries of older key versions never match.

    Examples
    --------
    >>> k = cache_key("GET", "http://h/api/sales.json?where[saleId][$ne]=", "0123abcd")
    >>> k.startswith("0123abcd-v2-"), len(k)
    (True, 76)
    >>> k == cache_key("get", "http://h/api/sales.json?where[saleId][$ne]=", "0123abcd")
    True
    >>> k == cache_key("GET", "http://h/api/sales.json", "0123abcd")
    False
    """
    raw = f"{method.upper()}\0{url}".encode("utf-8", "surrogatepass")
    return f"{account}-{CACHE_KEY_VERSION}-{hashlib.sha256(raw).hexdigest()}"


def _drop_old_versions(session: CachedSession) -> int:
    """Delete every entry written under an older key scheme, and vacuum the file.

    They can never be served (their keys never match), and entries of versions before
    credential stripping may hold integration secrets: they must not stay on disk.
    """
    current = re.compile(rf"[0-9a-f]+-{CACHE_KEY_VERSION}-[0-9a-f]{{64}}\Z")
    cache = session.cache
    assert isinstance(cache, SQLiteCache)
    old = [k for k in cache.responses if not current.match(k)]
    if old:
        cache.delete(*old, vacuum=False)
        cache.responses.vacuum()  # deleted rows would stay in free pages otherwise
        log.info("dropped %d cache entries of older versions", len(old))
    return len(old)


def answer_problem(path: str, query: str, body: Any) -> str | None:
    """Why ``body``, a 200 answer to ``path?query``, cannot be right; None when it can.

    ``path`` is relative to the API root: ``purchases.json`` is a list endpoint (a JSON array
    of records, each with an integer ``id``), ``purchases/7.json`` answers one object.  Ids must
    ascend when the query has no ``order`` or orders by ``id``, and descend for
    ``order[attribute]=id&order[descending]=true``; other orders are not checked.

    Examples
    --------
    >>> answer_problem("sales.json", "", [{"id": 1}, {"id": 3}]) is None
    True
    >>> answer_problem("sales.json", "limit=2", {"id": 1})
    'a JSON object where a list was due'
    >>> answer_problem("sales.json", "", [{"id": 1}, {"total": 2}])
    'a record without an integer id'
    >>> answer_problem("sales.json", "", [{"id": 3}, {"id": 1}])
    'ids not in ascending order'
    >>> answer_problem("sales.json", "order[attribute]=id&order[descending]=true",
    ...                [{"id": 3}, {"id": 1}]) is None
    True
    >>> answer_problem("sales.json", "order[attribute]=total", [{"id": 3}, {"id": 1}]) is None
    True
    """
    if "/" in path.strip("/"):  # one record, or an action
        return None if isinstance(body, dict) else f"a JSON {_kind(body)} where an object was due"
    if not isinstance(body, list):
        return f"a JSON {_kind(body)} where a list was due"
    found = [r.get("id") if isinstance(r, dict) else None for r in body]
    ids = [i for i in found if isinstance(i, int) and not isinstance(i, bool)]
    if len(ids) != len(found):
        return "a record without an integer id"
    params = dict(parse_qsl(query, keep_blank_values=True))
    attribute = params.get("order[attribute]")
    if attribute not in (None, "id"):
        return None
    descending = attribute == "id" and params.get("order[descending]", "").lower() == "true"
    step = -1 if descending else 1
    if any((b - a) * step <= 0 for a, b in pairwise(ids)):
        return f"ids not in {'descending' if descending else 'ascending'} order"
    return None


def _kind(body: Any) -> str:
    names: dict[type, str] = {dict: "object", list: "list", str: "string"}
    return names.get(type(body), "value")


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
    """One account's limiter for one kind of method: ``ratelimit``'s gate in the process (at
    most a full bucket per time it takes to drain), then the account's :class:`Schedule`
    (shared with the user's other processes), which sets the pace."""

    def __init__(self, rate: float, schedule: Schedule) -> None:
        self.rate = rate
        self.schedule = schedule

        @sleep_and_retry
        @limits(calls=schedule.burst, period=schedule.burst / rate)
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


_LIMITERS: dict[tuple[str, str, str], _Limiter] = {}
#: Accounts (account id, base URL) whose server answered ``attributes[exclude]`` with 400.
_EXCLUDE_REFUSED: set[tuple[str, str]] = set()
_LIMITERS_LOCK = threading.Lock()


def _limiter(account: str, base_url: str, kind: str, rate: float, burst: int,
             folder: Path | None) -> _Limiter:
    """The process's limiter of an account; its schedule is shared through ``folder`` (the
    first given, for the life of the process) or, with None, kept in the process."""
    key = (account, base_url, kind)
    with _LIMITERS_LOCK:
        found = _LIMITERS.get(key)
        if (found is None or found.rate != rate or found.schedule.burst != burst
                or (folder is not None and not found.schedule.shared)):
            schedule = Schedule(rate, folder, account, kind, burst=burst)
            found = _LIMITERS[key] = _Limiter(rate, schedule)
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
        ticket = limiter.acquire()
        with t._lock:
            t.stats.limiter_wait += ticket.waited
            t.stats.network += 1
        began = time.monotonic()
        response = super().send(request, *args, **kwargs)
        response.jetti_waited = ticket.waited  # type: ignore[attr-defined]
        t._observe_latency(time.monotonic() - began)  # to the headers: the body comes after
        limiter.observe(ticket, response)
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
        folder = settings.resolved_cache_path.parent if settings.cache else None
        self._get_limiter = _limiter(self.account, settings.base_url, "get", settings.get_rate,
                                     settings.get_burst, folder)
        self._write_limiter = _limiter(self.account, settings.base_url, "write",
                                       settings.write_rate, 1, folder)
        self.session = self._make_session()
        self._mount()
        self._pool = ThreadPoolExecutor(max_workers=settings.max_in_flight,
                                        thread_name_prefix="jetti-transport")

    def _mount(self) -> None:
        """Headers and the rate-limited adapter on :attr:`session`."""
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "jetti-frames"
        if self.settings.token:
            self.session.headers["Authorization"] = f"Bearer {self.settings.token}"
        adapter = _LimitedAdapter(self, max(10, self.settings.max_in_flight))
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
        path = self.cache_path
        path.parent.mkdir(parents=True, exist_ok=True)
        damage = _cache_damage(path)
        if damage is None:
            try:
                return self._open_cache(path)
            except sqlite3.DatabaseError as exc:
                damage = f"unreadable ({exc})"
        aside = _move_aside(path)
        message = (f"the HTTP cache file {path} was {damage}: moved aside to {aside.name}, "
                   "starting an empty cache")
        warnings.warn(message, RuntimeWarning, stacklevel=5)
        try:
            return self._open_cache(path)
        except sqlite3.DatabaseError as exc:
            raise self._cache_error(exc) from exc

    def _open_cache(self, path: Path) -> CachedSession:
        account = self.account

        def key_fn(request: requests.PreparedRequest, **kwargs: Any) -> str:
            return cache_key(request.method or "GET", request.url or "", account)

        session = CachedSession(
            str(path), backend="sqlite", serializer=_JSON, decode_content=True,
            expire_after=self.settings.cache_expire, allowable_codes=(200,),
            allowable_methods=("GET", "HEAD"), ignored_parameters=DEFAULT_IGNORED_PARAMS,
            key_fn=key_fn, stale_if_error=False,
        )
        try:
            _drop_old_versions(session)
        except sqlite3.DatabaseError:
            session.close()
            raise
        return session

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
            aside = _move_aside(self.cache_path)
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
               dates: list[str] | None = None, deadline: float | None = None) -> Future[Any]:
        """Run :meth:`get` on the transport's thread pool."""
        return self._pool.submit(self.get, url, query, refresh=refresh, dates=dates,
                                 deadline=deadline)

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
                                        deadline=deadline)] = req
                if not running:
                    raise JettiServerError("the pager stalled with nothing in flight")
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    req = running.pop(fut)
                    yield req, pager.on_records(req, fut.result())
        finally:
            for fut in running:
                fut.cancel()

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
                    delay = _retry_after(resp)
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
            cause = _failure_cause(failure)
            if failures > min(s.retries, _FAST_FAIL.get(cause, s.retries + 1) - 1):
                raise self._give_up(url, response, failure, failures) from failure
            with self._lock:
                self.stats.retries += 1
            delay = s.backoff * 2 ** (failures - 1) * (0.5 + random.random())
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            reason = failure if isinstance(failure, (JettiServerError, _UnreadableBody)) else cause
            log.info("retrying %s in %.3f s (%s)", url, delay, reason)
            time.sleep(delay)

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
        cause = _failure_cause(failure)
        host = urlsplit(url).netloc
        return JettiConnectionError(f"cannot reach {host} ({cause}): {_CAUSES[cause]}; "
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


def _failure_cause(exc: BaseException) -> str:
    """Why a request got no answer: a key of ``_CAUSES``, found along the exception chain.

    Examples
    --------
    >>> _failure_cause(requests.ConnectionError(ConnectionRefusedError(111, "refused")))
    'refused'
    >>> _failure_cause(requests.exceptions.ReadTimeout())
    'timeout'
    """
    if isinstance(exc, requests.exceptions.ProxyError):
        return "proxy"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    seen: list[BaseException] = [exc]
    for err in seen:  # grows while walked: args, reason, __cause__, __context__
        if isinstance(err, (NameResolutionError, socket.gaierror)):
            return "name resolution"
        if isinstance(err, ConnectionRefusedError):
            return "refused"
        nested = [*err.args, getattr(err, "reason", None), err.__cause__, err.__context__]
        seen.extend(e for e in nested if isinstance(e, BaseException) and e not in seen)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        return "dropped"
    return "connection"


def _cache_damage(path: Path) -> str | None:
    """What is wrong with the SQLite file at ``path`` seen from its header (``not an SQLite
    file``, ``truncated``), or None (also for a missing or empty file)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        return "not an SQLite file"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] == head[92:96] and pages * page_size > size:
        return f"truncated ({size} of {pages * page_size} bytes)"
    return None


def _move_aside(path: Path) -> Path:
    """Rename a damaged cache file (and its side files) to ``<name>.damaged-<time>``."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            side.replace(Path(f"{aside}{suffix}"))
    return aside
