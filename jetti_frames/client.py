"""The reading API: :class:`JettiClient`, :func:`read_jetti` and :func:`get_jetti`.

A read goes through these steps (each its own module)::

    build_query()        validate against the catalogue, split long arrays      query.py
    Pager                keyset pages on id, several id windows in flight       paging.py
    Transport            HTTP cache -> rate limiter -> network, retries         transport.py
    frame_from_records   flatten includes, type every column                    flatten.py/schema.py

Paging strategy
---------------
Records are read in keyset pages on ``id`` (``where[id][$gt]=<last id>``), several id windows in
flight at once so that the whole allowance of 2 requests/s is used even on a slow server.  Pages
never shift under inserts or updates, and a server that silently caps ``limit`` loses nothing (a
short page is not taken as the end until an empty or a shorter-than-seen page proves it).

When a read took more than one page, :meth:`JettiClient.read` then asks once more for the records
updated since the read began (``updatedAt >= <server time of the first answer>``) and merges them
by ``id``, so records inserted or changed while paging are returned as they are at the end of the
read.  A user ``order`` is applied locally to the complete result.  With ``limit=N`` and an
``order`` the first N are read exactly by value ranges of the order attribute
(:class:`~jetti_frames.paging.TopPager`), then no consistency pass.

Examples
--------
>>> from jetti_frames.sandbox import serve
>>> with serve(rate="off", purchases=200) as base_url:
...     client = JettiClient("sandbox-token", base_url=base_url, cache=False, progress=False)
...     df = client.read("purchases", where={"purchaseType": "dropship"},
...                      attributes=["id", "total"], include="PurchaseStatus")
>>> df.columns.tolist()[:3]
['id', 'total', 'purchase_status_createdAt']
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import pandas as pd

from ._bounded import BoundedPager
from ._build import Query, build_query, explain_query, request_params
from ._collect import Collector, merge, sort_records
from ._fanout import Fanout, Stream, at_most, open_streams
from ._pack import LogicSupport, Packed, PackIgnored, is_packed, many_ids, pack_where
from ._predicates import compile_where
from ._progress import ReadBar
from ._split import and_where, split_where
from ._top import TopPager
from ._wire import encode
from .drift import DriftLog
from .errors import (
    JettiAuthError,
    JettiBadRequestError,
    JettiConfigError,
    JettiQueryError,
)
from .flatten import frame_from_records
from .options import check_options, record_id
from .paging import Pager, PageRequest
from .schema import DEFAULT_SEP, DtypeBackend, FrameSpec, column_dtypes
from .settings import MAX_ARRAY, Settings
from .transport import CacheInfo, Transport, explain_seconds

__all__ = ["Explanation", "JettiClient", "ReadStats", "get_jetti", "read_jetti"]

IncludeMode = Literal["joined", "tables"]
#: Hosts on which the embedded sandbox runs.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class ReadStats:
    """What one read (or the client in total) cost.

    ``requests`` left the process; ``cache_hits`` were answered from the HTTP cache;
    ``status_429`` answers made us wait; ``retries`` were resent after a 5xx or a dropped
    connection; ``limiter_wait`` is the seconds spent waiting for the rate limiter;
    ``seconds`` the wall time of the read(s).
    """

    requests: int = 0
    cache_hits: int = 0
    status_429: int = 0
    retries: int = 0
    pages: int = 0
    rows: int = 0
    limiter_wait: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class Explanation:
    """The requests a read would send, and how long they would take under the rate limit.

    ``estimated_requests`` and ``estimated_seconds`` are ``None`` when the total cannot be
    known before reading (the API sends no count): ``explain(..., probe=True)`` then sends
    the read's first two requests (the first page and the probe of the top of the id range)
    and estimates the rest from the id range (``probed``).
    """

    resource: str
    urls: tuple[str, ...]
    min_requests: int
    estimated_seconds: float | None
    notes: str
    estimated_requests: int | None = None
    probed: bool = False

    def __str__(self) -> str:
        if self.estimated_requests is None or self.estimated_seconds is None:
            cost = (f"at least {self.min_requests} request(s); the total is unknown before "
                    "reading")
        else:
            how = " (estimated from the id range the first 2 requests showed)" \
                if self.probed else ""
            cost = (f"about {self.estimated_requests} request(s){how}, about "
                    f"{self.estimated_seconds:.1f} s at the rate limit")
        return f"{self.notes}\n{cost}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


@dataclass
class _Plan:
    """A validated read: the query, the wanted frame and the request streams."""

    query: Query
    spec: FrameSpec
    parts: list[dict[str, Any]]
    page_size: int
    limit: int | None
    #: Expect a small answer (the consistency pass): one sequential stream, no probe.
    few: bool = False
    #: The largest page the server has returned for this plan's endpoint.
    cap: int | None = None

    @property
    def id_ordered(self) -> bool:
        """The result is wanted in id order, the order keyset pages come in."""
        order = self.query.order
        return order is None or (order.attribute == "id" and not order.descending)

    @property
    def top(self) -> bool:
        """The first N in a user order: read by value ranges (:class:`TopPager`).

        Not for a string attribute: a null there cannot be asked for (it is sent as ``''``),
        so such a read takes every matching record and orders them locally; nor for a long
        list of ids, whose records all come in fewer requests than value ranges per list chunk.
        """
        order = self.query.order
        return (self.limit is not None and order is not None and not self.id_ordered
                and self.query.resource.field(order.attribute).kind != "string"
                and not many_ids(self.query.where))


class JettiClient:
    """A connection to one Jetti account: settings, HTTP cache, rate limiter.

    Parameters
    ----------
    token : str, optional
        API token (Integrations > Api in Jetti); default ``$JETTI_API_TOKEN``.  Never written to
        disk, logs or error messages.
    base_url : str, optional
        Default ``$JETTI_BASE_URL`` or ``https://api.jetti.io/api/``; point it at the sandbox
        (``jetti_frames.sandbox.serve()``) to work without an account.
    cache : bool or path, default True
        ``True``: the on-disk HTTP cache in the user's cache directory; a path: that SQLite file,
        or ``http-cache.sqlite`` inside it when it is a directory (or ends with ``/``);
        ``False``: no cache.
    cache_expire : float, optional
        Seconds a cached answer is reused (default one hour); ``refresh=True`` always refetches.
    page_size : int, optional
        ``limit`` asked per page (default 100, the largest the live service is known to honour).
    progress : bool, default True
        Show a progress bar (terminal or notebook) while reading.
    max_in_flight, get_rate, get_burst, write_rate, timeout, retries, backoff, max_array, \
deadline, rate_limit_wait : optional
        The :class:`~jetti_frames.settings.Settings` of the same names (requests in flight,
        the allowance, seconds per request, retries of a 5xx, seconds one read may take, ...);
        ``None`` takes the ``JETTI_*`` variable where there is one, else the default.

    Examples
    --------
    >>> from jetti_frames.sandbox import serve
    >>> with serve(rate="off", purchases=50) as base_url:
    ...     client = JettiClient("sandbox-token", base_url=base_url, cache=False,
    ...                          progress=False)
    ...     statuses = client.read("purchase-statuses", attributes=["id", "name"])
    ...     one = client.get("purchase-statuses", int(statuses.id[0]))
    >>> statuses.dtypes.astype(str).tolist(), one["name"] == statuses.name[0]
    (['Int64', 'string'], True)
    """

    def __init__(self, token: str | None = None, *, base_url: str | None = None,
                 cache: bool | str | Path = True, cache_expire: float | None = None,
                 page_size: int | None = None, progress: bool = True,
                 max_in_flight: int | None = None, get_rate: float | None = None,
                 get_burst: int | None = None, write_rate: float | None = None,
                 timeout: float | None = None, retries: int | None = None,
                 backoff: float | None = None, max_array: int | None = None,
                 deadline: float | None = None, rate_limit_wait: float | None = None) -> None:
        cache_path = None if isinstance(cache, bool) else cache  # a file, or a directory
        self.settings = Settings.from_env(
            token=token, base_url=base_url, cache=cache is not False, cache_path=cache_path,
            cache_expire=cache_expire, page_size=page_size, max_in_flight=max_in_flight,
            get_rate=get_rate, get_burst=get_burst, write_rate=write_rate, timeout=timeout,
            retries=retries, backoff=backoff, max_array=max_array, deadline=deadline,
            rate_limit_wait=rate_limit_wait)
        if self.settings.page_size < 1:
            raise JettiQueryError("page_size must be at least 1")
        self.progress = progress
        self.stats = ReadStats()
        self.last_stats = ReadStats()
        self._transport = Transport(self.settings)
        self._logic = LogicSupport()  # whether this account's server takes $or/$and

    def __repr__(self) -> str:
        cache = self.settings.resolved_cache_path if self.settings.cache else None
        return f"JettiClient(base_url={self.base_url!r}, cache={str(cache) if cache else None!r})"

    def close(self) -> None:
        """Release the HTTP session and worker threads."""
        self._transport.close()

    def __enter__(self) -> JettiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def is_sandbox(self) -> bool:
        """True when the client talks to a server on this machine (the sandbox)."""
        return urlsplit(self.base_url).hostname in LOCAL_HOSTS

    # -- cache ------------------------------------------------------------------------------
    def cache_info(self) -> CacheInfo:
        """Where the HTTP cache lives, how many answers it holds for this account, its size.

        A :class:`~jetti_frames.transport.CacheInfo`; ``info["entries"]`` works as well.
        """
        return self._transport.cache_info()

    def clear_cache(self) -> int:
        """Delete this account's cached answers; return how many were deleted."""
        return self._transport.clear_cache()

    # -- planning ---------------------------------------------------------------------------
    def _plan(self, resource: str, *, where: Mapping[str, Any] | None = None,
              attributes: Sequence[str] | None = None, include: Any = None, order: Any = None,
              limit: int | None = None, page_size: int | None = None) -> _Plan:
        limit = None if limit is None else int(limit)  # checked by check_options: numpy ints
        size = self.settings.page_size if page_size is None else int(page_size)
        query = build_query(resource, where=where, attributes=attributes, include=include,
                            order=order)
        parts = [] if query.is_empty or limit == 0 else split_where(query)
        plan = _Plan(query, query.spec, parts, size, limit)
        if parts and not plan.top:  # long lists in few requests (see _pack)
            plan.query, plan.parts = pack_where(
                query, page_size=size, logic=self._logic.usable(self._transport.account))
        return plan

    def _check_token(self) -> None:
        if not self.settings.token:
            raise JettiAuthError(
                "no API token: pass token=... or set JETTI_API_TOKEN (to try the toolkit "
                "without an account, run a sandbox: jetti_frames.sandbox.serve())")

    # -- pulling ----------------------------------------------------------------------------
    def _pull(self, plan: _Plan, *, refresh: bool, bar: Any = None,
              dates: list[str] | None = None,
              late: Callable[[], list[Stream]] | None = None,
              streams: list[Stream] | None = None,
              ) -> Iterator[tuple[Stream, list[dict[str, Any]]]]:
        """Pages of final records with their stream (post-filtered, not deduplicated across
        parts; none for a :class:`TopPager`, whose rows come with its result).

        ``streams`` default to :meth:`_streams`; ``late`` may add streams (the consistency
        pass) once every pager is draining.  When the server ignores (an answer holds records
        not asked for) or refuses (400) the ``$or``/``$and`` of packed requests, the plan is
        read again without them (records already handed out are not repeated) and the account
        is remembered.
        """
        seen: set[Any] = set()
        try:
            for stream, records in self._pull_parts(plan, refresh=refresh, bar=bar, dates=dates,
                                                    late=late, streams=streams):
                seen.update(r.get("id") for r in records)
                yield stream, records
            return
        except (PackIgnored, JettiBadRequestError) as exc:
            if not is_packed(plan.parts):
                raise
            certain = isinstance(exc, PackIgnored)
        account = self._transport.account
        if certain:
            self._logic.refuse(account)
        plan.query, plan.parts = pack_where(plan.query, page_size=plan.page_size, logic=False)
        for stream, records in self._pull_parts(plan, refresh=refresh, bar=bar, dates=dates,
                                                late=late):
            self._logic.refuse(account)  # a 400 was the packing's: the plain read goes on
            if stream.member is None:
                records = [r for r in records if r.get("id") not in seen]
            yield stream, records

    def _pull_parts(self, plan: _Plan, *, refresh: bool, bar: Any = None,
                    dates: list[str] | None = None,
                    late: Callable[[], list[Stream]] | None = None,
                    streams: list[Stream] | None = None,
                    ) -> Iterator[tuple[Stream, list[dict[str, Any]]]]:
        """:meth:`_pull` for the plan's parts as they are."""
        if not plan.parts:
            return
        self._check_token()
        query = plan.query
        url = f"{query.resource.url}.json"
        fanout = Fanout(self._streams(plan) if streams is None else streams,
                        lambda: self._transport.in_flight_target, late)

        def build(req: PageRequest) -> tuple[str, str]:
            stream, inner = fanout.stream_of(req)
            return url, encode(page_params(query, stream.part, inner))

        pages = self._transport.run_pager(fanout, build, refresh=refresh, dates=dates)
        for req, records in pages:
            stream, _ = fanout.answered(req)
            if isinstance(stream.part, Packed) and not stream.part.holds(records):
                raise PackIgnored(f"the server answered records not asked for in {url}")
            if query.post_filter:
                records = [r for r in records if query.keep(r)]
            if bar is not None:
                bar.update(1)
            plan.cap = max(plan.cap or 0, stream.pager.cap or 0) or None
            yield stream, records

    def _streams(self, plan: _Plan) -> list[Stream]:
        """One pager per part of the plan."""
        # limit=N: each stream stops after N rows when they are the first N in the wanted order
        max_rows = plan.limit if plan.id_ordered and not plan.query.post_filter else None
        return open_streams(plan.parts, plan.page_size, budget=self._transport.in_flight_target,
                            max_rows=max_rows, sequential=plan.few, cap=plan.cap)

    def _top_pagers(self, plan: _Plan) -> list[tuple[dict[str, Any], TopPager | BoundedPager]]:
        """One pager per part of a ``plan.top`` plan: by ``-id`` a descending
        :class:`BoundedPager` (with a post-filter, which it cannot count, a :class:`TopPager`
        like any other order)."""
        order, query = plan.query.order, plan.query
        assert order is not None and plan.limit is not None
        keep = query.keep if query.post_filter else None
        budget = self._transport.in_flight_target
        if order.attribute == "id" and keep is None:
            return [(part, BoundedPager(plan.page_size, at_most(plan.limit, part) or 0,
                                        parallel=budget, descending=True))
                    for part in plan.parts]
        return [(part, TopPager(order.attribute, at_most(plan.limit, part) or 0,
                                plan.page_size, descending=order.descending,
                                nulls_first=order.nulls_first, unique=order.attribute == "id",
                                keep=keep, parallel=budget))
                for part in plan.parts]

    def _top(self, plan: _Plan, *, refresh: bool, bar: Any = None,
             on_page: Callable[[int, int], Any] | None = None) -> list[dict[str, Any]]:
        """The first ``plan.limit`` records in the plan's order, exactly (value ranges, or
        id windows by ``-id``).

        Every request a pager asks for is awaited, even once the rows are known, so that a
        repeated read asks for nothing the cache does not hold.
        """
        streams = [Stream(part, pager) for part, pager in self._top_pagers(plan)]
        tops = [s.pager for s in streams if isinstance(s.pager, TopPager)]
        rows: list[dict[str, Any]] = []
        pulled = self._pull(plan, refresh=refresh, bar=bar, streams=streams)
        for pages, (_, records) in enumerate(pulled, start=1):
            rows += records
            known = len(rows) + sum(len(p.result()) for p in tops)
            if bar is not None:
                self._bar_rows(bar, known)
            if on_page is not None:
                on_page(pages, known)
        if tops and len(streams) == 1:
            return [dict(r) for r in tops[0].result()]
        by_id: dict[Any, dict[str, Any]] = {}
        merge(by_id, rows)
        for pager in tops:
            merge(by_id, [dict(r) for r in pager.result()])
        return sort_records(list(by_id.values()), plan.query.order)[:plan.limit]

    def _records(self, plan: _Plan, into: Collector, *, refresh: bool, progress: bool | None,
                 consistent: bool = True,
                 on_page: Callable[[int, int], Any] | None = None) -> None:
        """Every record of a plan into ``into``, page by page (it deduplicates and orders).

        With ``consistent``, a read of several pages also asks for the records updated since
        its first answer (the consistency pass); that request goes out as soon as every other
        request of the read has been sent, and the newer version of each record wins.
        """
        stats_before = self._snapshot_stats()
        dates: list[str] = []
        pages = pages_with_rows = 0
        wanted = (consistent and plan.limit is None
                  and plan.query.resource.has_field("updatedAt"))
        passes: list[Stream] = []

        def catch_up() -> list[Stream]:
            began = min(filter(None, map(server_date, dates)), default=None)
            if not wanted or passes or not pages_with_rows or began is None:
                return []
            again, member = catch_up_plan(plan, began - dt.timedelta(seconds=2))
            passes.extend(replace(s, member=member) for s in self._streams(again))
            return passes

        if plan.top:
            with self._bar(plan, progress) as bar:
                into.add_ordered(self._top(plan, refresh=refresh, bar=bar, on_page=on_page))
                self._finish_stats(stats_before, rows=into.count, bar=bar)
            return
        seen: dict[int, Stream] = {}
        with self._bar(plan, progress) as bar:
            for stream, records in self._pull(plan, refresh=refresh, bar=bar, dates=dates,
                                              late=catch_up):
                pages += 1
                pages_with_rows += bool(records) and stream.member is None
                into.add(records, stream.member)
                if (plan.limit is not None and plan.id_ordered and len(plan.parts) == 1
                        and into.count >= plan.limit):
                    break  # the first N in id order are in
                seen.setdefault(id(stream), stream)
                bar.expect(expected_pages(plan, list(seen.values()), wanted))
                self._bar_rows(bar, into.count)
                if on_page is not None:
                    on_page(pages, into.count)
            # a read answered in its first round (the first page and the probe) is one moment;
            # one that went on, and whose pass found nothing to overlap, catches up now
            if pages > 2 and not passes and catch_up():
                again = replace(plan, parts=[s.part for s in passes], few=True)
                for _, records in self._pull(again, refresh=refresh, bar=bar):
                    into.add(records, passes[0].member)
                self._bar_rows(bar, into.count)
            rows = into.count if plan.limit is None else min(into.count, plan.limit)
            self._finish_stats(stats_before, rows=rows, bar=bar)

    def _bar(self, plan: _Plan, progress: bool | None) -> ReadBar:
        show = self.progress if progress is None else progress
        return ReadBar(plan.query.resource.url, show=show)

    def _bar_rows(self, bar: ReadBar, rows: int) -> None:
        bar.rows(rows, cache_hits=self._transport.stats.cache_hits)

    def _snapshot_stats(self) -> dict[str, float]:
        s = self._transport.stats
        return {"requests": s.network, "cache_hits": s.cache_hits, "status_429": s.throttled,
                "retries": s.retries, "limiter_wait": s.limiter_wait, "pages": 0,
                "clock": time.monotonic()}

    def _finish_stats(self, before: dict[str, float], *, rows: int,
                      bar: ReadBar | None = None) -> ReadStats:
        """Set ``last_stats`` (and add it to ``stats``); leave its summary on ``bar``."""
        now = self._snapshot_stats()
        last = ReadStats(
            requests=int(now["requests"] - before["requests"]),
            cache_hits=int(now["cache_hits"] - before["cache_hits"]),
            status_429=int(now["status_429"] - before["status_429"]),
            retries=int(now["retries"] - before["retries"]),
            limiter_wait=round(now["limiter_wait"] - before["limiter_wait"], 3),
            rows=rows,
            seconds=round(now["clock"] - before["clock"], 3),
        )
        last.pages = last.requests + last.cache_hits
        self.last_stats = last
        for name in ("requests", "cache_hits", "status_429", "retries", "pages", "rows"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(last, name))
        self.stats.limiter_wait = round(self.stats.limiter_wait + last.limiter_wait, 3)
        self.stats.seconds = round(self.stats.seconds + last.seconds, 3)
        if bar is not None:
            bar.finish(rows=rows, requests=last.requests, cache_hits=last.cache_hits,
                       status_429=last.status_429, seconds=last.seconds)
        return last

    # -- public reading API ---------------------------------------------------------------
    @overload
    def read(self, resource: str, *, where: Mapping[str, Any] | None = ...,
             attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
             limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
             dtype_backend: DtypeBackend = ..., include_mode: IncludeMode = ...,
             sep: str = ..., progress: bool | None = ..., explain: Literal[True],
             consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
             ) -> Explanation: ...

    @overload
    def read(self, resource: str, *, where: Mapping[str, Any] | None = ...,
             attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
             limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
             dtype_backend: DtypeBackend = ..., include_mode: Literal["tables"],
             sep: str = ..., progress: bool | None = ..., explain: Literal[False] = ...,
             consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
             ) -> dict[str, pd.DataFrame]: ...

    @overload
    def read(self, resource: str, *, where: Mapping[str, Any] | None = ...,
             attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
             limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
             dtype_backend: DtypeBackend = ..., include_mode: Literal["joined"] = ...,
             sep: str = ..., progress: bool | None = ..., explain: Literal[False] = ...,
             consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
             ) -> pd.DataFrame: ...

    @overload
    def read(self, resource: str, *, where: Mapping[str, Any] | None = ...,
             attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
             limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
             dtype_backend: DtypeBackend = ..., include_mode: IncludeMode = ...,
             sep: str = ..., progress: bool | None = ..., explain: bool = ...,
             consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
             ) -> pd.DataFrame | dict[str, pd.DataFrame] | Explanation: ...

    def read(self, resource: str, *, where: Mapping[str, Any] | None = None,
             attributes: Sequence[str] | None = None, include: Any = None, order: Any = None,
             limit: int | None = None, page_size: int | None = None, refresh: bool = False,
             dtype_backend: DtypeBackend = "numpy_nullable", include_mode: IncludeMode = "joined",
             sep: str = DEFAULT_SEP, progress: bool | None = None, explain: bool = False,
             consistent: bool = True, on_page: Callable[[int, int], Any] | None = None,
             ) -> pd.DataFrame | dict[str, pd.DataFrame] | Explanation:
        """Read every matching record of ``resource`` into a typed DataFrame.

        Parameters
        ----------
        resource : str
            ``"purchases"``, ``"purchase-items"`` or ``"purchase_items"`` (any list endpoint).
        where : dict, optional
            Conditions ANDed together: ``{"purchaseType": "dropship"}``,
            ``{"createdAt": {"$gte": datetime(2024, 1, 1)}}``, ``{"id": [1, 2, 3]}`` (a list
            means ``$in``, of any length), ``{"saleId": None}`` (SQL NULL).  Operators:
            ``$eq $ne $in $notIn $gt $gte $lt $lte $like $notLike $between $or $and``.
        attributes : list of str, optional
            Columns to return, in this order (default: every field).
        include : str, dict or list, optional
            Related models: ``"PurchaseStatus"``, or
            ``{"model": "Sale", "attributes": [...], "include": [...]}`` (two levels at most).
            Belongs-to models become prefixed columns (``purchase_status_name``); has-many
            models explode into one row per child.
        order : str, tuple or dict, optional
            ``"dateOrdered"``, ``"-dateOrdered"`` (descending), ``("total", "desc")`` or
            ``{"attribute": ..., "descending": ..., "nullsFirst": ...}``.  Default: by ``id``.
        limit : int, optional
            At most this many records, with the fewest requests.
        page_size : int, optional
            ``limit`` asked per request (default ``settings.page_size``).
        refresh : bool, default False
            Ignore cached answers (fresh ones are still stored).
        dtype_backend : {"numpy_nullable", "pyarrow"}
            As in :func:`pandas.read_csv`.
        include_mode : {"joined", "tables"}
            ``"tables"`` returns a dict of frames (the resource and each include) linked by keys.
        sep : str, default "_"
            Between an include's key and its field names.
        progress : bool, optional
            Show a progress bar (default: the client's setting).
        explain : bool, default False
            Return an :class:`Explanation` of the requests instead of sending them.
        consistent : bool, default True
            After a multi-page read, fetch the records updated while paging once more.
        on_page : callable, optional
            Called as ``on_page(pages, rows)`` after every page; an exception it raises stops
            the read (nothing more is requested) and propagates.

        Returns
        -------
        pandas.DataFrame, dict of DataFrame, or Explanation

        Raises
        ------
        JettiQueryError
            Unknown resource, field, operator or model (before any request), or a 400 answer.
        JettiAuthError, JettiRateLimitError, JettiServerError, JettiNotFoundError
            From the server, after retries where they make sense.
        """
        check_options(limit=limit, page_size=page_size, dtype_backend=dtype_backend,
                      include_mode=include_mode, sep=sep, progress=progress, on_page=on_page,
                      refresh=refresh, consistent=consistent, explain=explain)
        if explain:
            return self.explain(resource, where=where, attributes=attributes, include=include,
                                order=order, limit=limit, page_size=page_size)
        plan = self._plan(resource, where=where, attributes=attributes, include=include,
                          order=order, limit=limit, page_size=page_size)
        drift = DriftLog()
        into = Collector(plan.spec, order=plan.query.order, sep=sep, drift=drift,
                         dtype_backend=dtype_backend, tables=include_mode == "tables")
        self._records(plan, into, refresh=refresh, progress=progress, consistent=consistent,
                      on_page=on_page)
        drift.warn(f"reading {plan.query.resource.url}")
        return into.result(plan.limit)

    def iter_pages(self, resource: str, *, where: Mapping[str, Any] | None = None,
                   attributes: Sequence[str] | None = None, include: Any = None,
                   order: Any = None, limit: int | None = None, page_size: int | None = None,
                   refresh: bool = False, progress: bool | None = None,
                   ) -> Iterator[list[dict[str, Any]]]:
        """Raw records, one list per page, as pages arrive (not by id; see :meth:`iter_frames`).

        Takes the options of :meth:`read` that shape the request.  Records are never repeated;
        a record updated while paging comes with the values it had when its page was read.
        With ``limit`` and an ``order``, the first N are read first, then handed over in order
        in pages of ``page_size``.

        Parameters
        ----------
        resource, where, attributes, include, order, limit, page_size, refresh, progress
            As in :meth:`JettiClient.read`.
        """
        check_options(refresh=refresh, progress=progress, limit=limit, page_size=page_size)
        plan = self._plan(resource, where=where, attributes=attributes, include=include,
                          order=order, limit=limit, page_size=page_size)
        return self._iter_pages(plan, refresh=refresh, progress=progress)

    def _iter_pages(self, plan: _Plan, *, refresh: bool,
                    progress: bool | None) -> Iterator[list[dict[str, Any]]]:
        before = self._snapshot_stats()
        seen: set[Any] = set()
        rows = 0
        multi = len(plan.parts) > 1
        try:
            if plan.top:  # the order is only known once the first N are: pages in order
                with self._bar(plan, progress) as bar:
                    records = self._top(plan, refresh=refresh, bar=bar)
                rows = len(records)
                for start in range(0, rows, plan.page_size):
                    yield records[start:start + plan.page_size]
                return
            with self._bar(plan, progress) as bar:
                for _, records in self._pull(plan, refresh=refresh, bar=bar):
                    if multi:
                        records = [r for r in records if r.get("id") not in seen]
                        seen.update(r.get("id") for r in records)
                    if plan.limit is not None:
                        records = records[:max(0, plan.limit - rows)]
                    rows += len(records)
                    self._bar_rows(bar, rows)
                    yield records
                    if plan.limit is not None and rows >= plan.limit:
                        return
        finally:
            self._finish_stats(before, rows=rows)

    def iter_records(self, resource: str, *, where: Mapping[str, Any] | None = None,
                     attributes: Sequence[str] | None = None, include: Any = None,
                     order: Any = None, limit: int | None = None, page_size: int | None = None,
                     refresh: bool = False, progress: bool | None = None,
                     ) -> Iterator[dict[str, Any]]:
        """Raw records one by one; see :meth:`iter_pages`.

        Parameters
        ----------
        resource, where, attributes, include, order, limit, page_size, refresh, progress
            As in :meth:`JettiClient.read`.
        """
        for page in self.iter_pages(resource, where=where, attributes=attributes,
                                    include=include, order=order, limit=limit,
                                    page_size=page_size, refresh=refresh, progress=progress):
            yield from page

    def iter_frames(self, resource: str, *, where: Mapping[str, Any] | None = None,
                    attributes: Sequence[str] | None = None, include: Any = None,
                    order: Any = None, limit: int | None = None, page_size: int | None = None,
                    refresh: bool = False, progress: bool | None = None,
                    dtype_backend: DtypeBackend = "numpy_nullable", sep: str = DEFAULT_SEP,
                    drift: DriftLog | None = None) -> Iterator[pd.DataFrame]:
        """Typed frames, one per page, each with the columns and dtypes :meth:`read` returns.

        Pages come in the order they are read, not by id: several id windows are read in
        parallel, and the first page is the top of the id range, read in descending order to
        plan them. Every record comes exactly once. For one frame in id order use :meth:`read`
        (or ``pd.concat(frames).sort_values("id")``); with ``limit`` and an ``order`` the
        pages follow that order.

        Parameters
        ----------
        resource, where, attributes, include, order, limit, page_size, refresh, progress, \
dtype_backend, sep
            As in :meth:`JettiClient.read`.
        drift : DriftLog, optional
            Collects the schema drift of the pages (:mod:`jetti_frames.drift`); either way,
            drift warns once, after the last page.

        Examples
        --------
        >>> from jetti_frames.sandbox import serve
        >>> with serve(rate="off", purchases=120) as base_url:
        ...     client = JettiClient("sandbox-token", base_url=base_url, cache=False,
        ...                          progress=False)
        ...     sizes = [len(f) for f in client.iter_frames("purchases", page_size=50)]
        >>> sum(sizes)
        120
        """
        check_options(dtype_backend=dtype_backend, sep=sep, refresh=refresh, progress=progress,
                      limit=limit, page_size=page_size)
        plan = self._plan(resource, where=where, attributes=attributes, include=include,
                          order=order, limit=limit, page_size=page_size)
        log = DriftLog() if drift is None else drift
        for records in self._iter_pages(plan, refresh=refresh, progress=progress):
            if records:
                log.observe(records, plan.spec)
                yield frame_from_records(records, plan.spec, sep=sep, dtype_backend=dtype_backend)
        log.warn(f"reading {plan.query.resource.url}")

    def frame_dtypes(self, resource: str, *, attributes: Sequence[str] | None = None,
                     include: Any = None, dtype_backend: DtypeBackend = "numpy_nullable",
                     sep: str = DEFAULT_SEP) -> dict[str, Any]:
        """The columns and dtypes :meth:`read` returns for these options (catalogue fields)."""
        check_options(dtype_backend=dtype_backend, sep=sep)
        plan = self._plan(resource, attributes=attributes, include=include)
        return column_dtypes(plan.spec, sep=sep, dtype_backend=dtype_backend)

    @overload
    def get(self, resource: str, id: int | str, *, include: Any = ..., refresh: bool = ...,
            as_frame: Literal[False] = ...) -> dict[str, Any]: ...

    @overload
    def get(self, resource: str, id: int | str, *, include: Any = ..., refresh: bool = ...,
            as_frame: Literal[True]) -> pd.DataFrame: ...

    @overload
    def get(self, resource: str, id: int | str, *, include: Any = ..., refresh: bool = ...,
            as_frame: bool) -> dict[str, Any] | pd.DataFrame: ...

    def get(self, resource: str, id: int | str, *, include: Any = None,
            refresh: bool = False, as_frame: bool = False) -> dict[str, Any] | pd.DataFrame:
        """One record (``GET /api/<resource>/<id>.json``): the raw dict, or a typed frame.

        ``id`` is a whole number or a string of digits. The dict is the record as the API sent
        it, included records nested under their keys (``purchase_status``, ``purchase_items``).
        With ``as_frame=True`` it is a DataFrame with the columns and dtypes :meth:`read`
        gives for the same ``include``: one row, or one per item of a has-many include, so
        ``get(..., as_frame=True)`` equals ``read(..., where={"id": id})``. The dict stays the
        default because a record with has-many items is not one row.

        Raises
        ------
        JettiQueryError
            A bad ``id`` (``"../../x"``, ``1.5``), resource or include, before any request.
        JettiNotFoundError
            No record with that id.
        """
        number = record_id(id)
        check_options(refresh=refresh)
        if not isinstance(as_frame, bool):
            raise JettiQueryError(f"as_frame must be True or False, not {as_frame!r}")
        plan = self._plan(resource, include=include)
        query = plan.query
        self._check_token()
        params = request_params(None, None, query.include, exclude=query.exclude)
        before = self._snapshot_stats()
        record = self._transport.get(f"{query.resource.url}/{number}.json", encode(params),
                                     refresh=refresh)
        self._finish_stats(before, rows=1)
        if as_frame:
            return frame_from_records([record], plan.spec)
        return dict(record)

    def explain(self, resource: str, *, where: Mapping[str, Any] | None = None,
                attributes: Sequence[str] | None = None, include: Any = None,
                order: Any = None, limit: int | None = None, page_size: int | None = None,
                refresh: bool = False, progress: bool | None = None,
                dtype_backend: DtypeBackend = "numpy_nullable",
                include_mode: IncludeMode = "joined", sep: str = DEFAULT_SEP,
                consistent: bool = True, on_page: Callable[[int, int], Any] | None = None,
                probe: bool = False) -> Explanation:
        """The requests a :meth:`read` with these options would start with, and what the
        whole read would cost when that can be known; sends nothing unless ``probe``.

        Parameters
        ----------
        resource, where, attributes, include, order, limit, page_size
            As in :meth:`JettiClient.read`: they decide the requests.
        refresh, progress, dtype_backend, include_mode, sep, consistent, on_page
            As in :meth:`JettiClient.read`: checked, but they change no request.
        probe : bool, default False
            When the total is unknown (an unbounded read), send the read's first two
            requests (the first page and the probe of the top of the id range; the read
            then finds them in the HTTP cache) and estimate the pages from the id range.

        Examples
        --------
        >>> client = JettiClient("t", base_url="http://127.0.0.1:9/api/", cache=False)
        >>> e = client.explain("purchases", where={"id": list(range(45))})
        >>> e.min_requests, len(e.urls), e.estimated_requests
        (1, 1, 1)
        >>> client.explain("purchases").estimated_requests is None  # no count before reading
        True
        """
        check_options(refresh=refresh, progress=progress, dtype_backend=dtype_backend,
                      include_mode=include_mode, sep=sep, consistent=consistent,
                      on_page=on_page, limit=limit, page_size=page_size)
        if not isinstance(probe, bool):
            raise JettiQueryError(f"probe must be True or False, not {probe!r}")
        plan = self._plan(resource, where=where, attributes=attributes, include=include,
                          order=order, limit=limit, page_size=page_size)
        query = plan.query
        firsts = ([(part, req) for part, pager in self._top_pagers(plan)
                   for req in pager.next_requests()] if plan.top else
                  [(stream.part, req) for stream in self._streams(plan)
                   for req in stream.pager.next_requests()[:1]])
        urls = tuple(f"{query.resource.url}.json?"
                     + encode(page_params(query, part, req), readable=True)
                     for part, req in firsts)
        per_part = 1 if plan.limit is None else max(1, -(-plan.limit // plan.page_size))
        n = max(len(urls), len(plan.parts) * per_part)
        total = None if plan.top else known_pages(plan)
        probed = False
        if total is None and probe and not plan.top and len(plan.parts) == 1:
            total, probed = self._probe_pages(plan, refresh=refresh), True
        if total is not None and consistent and total > 2 and plan.limit is None \
                and query.resource.has_field("updatedAt"):
            total += 1  # the consistency pass
        latency = self._transport.latency or 0.5
        seconds = None if total is None else explain_seconds(
            total, rate=self.settings.get_rate, latency=latency,
            cached=2 if probed and self.settings.cache else 0)
        lines = explain_query(query, parts=plan.parts).splitlines()
        notes = [lines[0], *(f"  {u}" for u in urls),
                 *(line for line in lines[1:] if ".json" not in line)]
        if total is None and not plan.top and len(plan.parts) == 1:
            notes.append("explain(..., probe=True) sends the first 2 requests to estimate "
                         "the total from the id range")
        return Explanation(query.resource.url, urls, n, seconds, "\n".join(notes),
                           estimated_requests=total, probed=probed)

    def _probe_pages(self, plan: _Plan, *, refresh: bool) -> int | None:
        """The pages a one-part read would take, from its first page and its probe (the two
        requests the read starts with: it then finds them in the cache)."""
        self._check_token()
        before = self._snapshot_stats()
        [stream] = open_streams(plan.parts, plan.page_size, budget=2)
        assert isinstance(stream.pager, Pager)  # an unbounded read of one part
        url = f"{plan.query.resource.url}.json"
        sent = [(req, self._transport.submit(url, encode(page_params(plan.query, stream.part,
                                                                     req)), refresh=refresh))
                for req in stream.pager.next_requests()[:2]]
        for req, answer in sent:
            stream.pager.on_page(req, [int(r["id"]) for r in answer.result()])
        self._finish_stats(before, rows=0)
        return stream.pager.estimated_pages


# -- pure helpers --------------------------------------------------------------------------


def known_pages(plan: _Plan) -> int | None:
    """The pages a read takes when its query bounds them (``limit``, ``id`` lists), before
    any request; ``None`` when only reading can tell."""
    max_rows = plan.limit if plan.id_ordered and not plan.query.post_filter else None
    total = 0
    for part in plan.parts:
        rows = at_most(max_rows, part)
        if rows is None:
            return None
        total += max(1, -(-rows // plan.page_size))
    return total


def expected_pages(plan: _Plan, streams: list[Stream], consistent: bool) -> int | None:
    """The pages a read is expected to take, once every part's pager can estimate its own
    (a consistency pass still to come counts one); ``None`` before."""
    if sum(s.member is None for s in streams) < len(plan.parts):
        return None
    total = 0
    for stream in streams:
        pages = stream.pager.estimated_pages
        if pages is None:
            if stream.member is None:
                return None
            pages = stream.pager.stats.pages + max(1, stream.pager.in_flight)
        total += pages
    if consistent and total > 2 and all(s.member is None for s in streams):
        total += 1
    return total


def catch_up_plan(plan: _Plan, since: dt.datetime) -> tuple[_Plan, Callable[[Any], bool]]:
    """The plan that re-reads what changed since ``since``, and a filter for its records.

    A query split into many requests by long ``$in`` lists is not split again: the lists are
    left out of the request and tested locally (exact membership), so the pass usually costs a
    single request.
    """
    changed = {"updatedAt": {"$gte": since}}
    where = plan.query.wire_where
    long_in = {k: v for k, v in where.items()
               if isinstance(v, Mapping) and list(v) == ["$in"] and len(v["$in"]) > MAX_ARRAY}
    if long_in:  # split, or packed (even into one request)
        rest = {k: v for k, v in where.items() if k not in long_in}
        parts = split_where(replace(plan.query, wire_where=rest))
        if len(parts) == 1:
            return (replace(plan, parts=[and_where(parts[0], changed)], few=True),
                    compile_where(long_in))
    parts = [and_where(p, changed) for p in plan.parts]
    return replace(plan, parts=parts, few=True), lambda record: True


def page_params(query: Query, part: Mapping[str, Any], req: PageRequest) -> dict[str, Any]:
    """The parameters of one page request of one part of a query."""
    paging = req.params(dict(part))
    return request_params(paging.get("where"), query.sent_attributes, query.include,
                          paging.get("order", query.order), limit=req.limit,
                          exclude=query.exclude)


def server_date(value: str | None) -> dt.datetime | None:
    """The ``Date`` header as an aware datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


# -- module-level shortcuts ---------------------------------------------------------------


@contextmanager
def open_client(client: JettiClient | None = None, /, **options: Any) -> Iterator[JettiClient]:
    """The client an entry point works with, closed afterwards when it was made here.

    The one way ``read_jetti``, ``get_jetti``, the snapshot functions, the command line and
    the query form come by a client: ``client`` itself when given (its owner closes it), else a
    new :class:`JettiClient` made from ``options``, then the ``JETTI_*`` variables, then the
    defaults (an option that is ``None`` is left to the variables).

    Raises
    ------
    JettiConfigError
        Options next to a given ``client`` (they would be ignored).

    Examples
    --------
    >>> with open_client(token="t", base_url="http://127.0.0.1:9/api/", cache=False) as c:
    ...     c.base_url
    'http://127.0.0.1:9/api/'
    >>> with open_client(c, token="other"):
    ...     pass
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiConfigError: pass token only when no client is given
    """
    if client is not None:
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise JettiConfigError(f"pass {', '.join(given)} only when no client is given")
        yield client
        return
    with JettiClient(**{k: v for k, v in options.items() if v is not None}) as made:
        yield made


@overload
def read_jetti(resource: str, *, client: JettiClient | None = ..., token: str | None = ...,
               base_url: str | None = ..., where: Mapping[str, Any] | None = ...,
               attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
               limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
               dtype_backend: DtypeBackend = ..., include_mode: IncludeMode = ...,
               sep: str = ..., progress: bool | None = ..., explain: Literal[True],
               consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
               ) -> Explanation: ...

@overload
def read_jetti(resource: str, *, client: JettiClient | None = ..., token: str | None = ...,
               base_url: str | None = ..., where: Mapping[str, Any] | None = ...,
               attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
               limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
               dtype_backend: DtypeBackend = ..., include_mode: Literal["tables"],
               sep: str = ..., progress: bool | None = ..., explain: Literal[False] = ...,
               consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
               ) -> dict[str, pd.DataFrame]: ...

@overload
def read_jetti(resource: str, *, client: JettiClient | None = ..., token: str | None = ...,
               base_url: str | None = ..., where: Mapping[str, Any] | None = ...,
               attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
               limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
               dtype_backend: DtypeBackend = ..., include_mode: Literal["joined"] = ...,
               sep: str = ..., progress: bool | None = ..., explain: Literal[False] = ...,
               consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
               ) -> pd.DataFrame: ...

@overload
def read_jetti(resource: str, *, client: JettiClient | None = ..., token: str | None = ...,
               base_url: str | None = ..., where: Mapping[str, Any] | None = ...,
               attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
               limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
               dtype_backend: DtypeBackend = ..., include_mode: IncludeMode = ...,
               sep: str = ..., progress: bool | None = ..., explain: bool = ...,
               consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
               ) -> pd.DataFrame | dict[str, pd.DataFrame] | Explanation: ...


def read_jetti(resource: str, *, client: JettiClient | None = None, token: str | None = None,
               base_url: str | None = None, where: Mapping[str, Any] | None = None,
               attributes: Sequence[str] | None = None, include: Any = None, order: Any = None,
               limit: int | None = None, page_size: int | None = None, refresh: bool = False,
               dtype_backend: DtypeBackend = "numpy_nullable",
               include_mode: IncludeMode = "joined", sep: str = DEFAULT_SEP,
               progress: bool | None = None, explain: bool = False, consistent: bool = True,
               on_page: Callable[[int, int], Any] | None = None,
               ) -> pd.DataFrame | dict[str, pd.DataFrame] | Explanation:
    """Read a Jetti list endpoint into a typed DataFrame; see :meth:`JettiClient.read`.

    Uses ``client`` if given, else a client made for this read from ``token`` and ``base_url``
    (or ``JETTI_API_TOKEN`` / ``JETTI_BASE_URL``) and closed after it.

    Parameters
    ----------
    resource : str
        Any list endpoint: ``"purchases"``, ``"purchase-items"``, ...
    client : JettiClient, optional
        Read with this client (its token, cache and settings).
    token, base_url : str, optional
        For the client made when no ``client`` is given.
    where, attributes, include, order, limit, page_size, refresh, dtype_backend, include_mode, \
sep, progress, explain, consistent, on_page
        As in :meth:`JettiClient.read`.

    Returns
    -------
    pandas.DataFrame
        A dict of DataFrames with ``include_mode="tables"``, an :class:`Explanation` with
        ``explain=True``.

    Examples
    --------
    >>> from jetti_frames.sandbox import serve
    >>> with serve(rate="off", purchases=300) as base_url:
    ...     df = read_jetti("purchases", token="sandbox-token", base_url=base_url,
    ...                     where={"purchaseType": ["dropship", "automated_dropship"]},
    ...                     include=["PurchaseStatus", "DropshipProvider"], progress=False)
    >>> {"purchase_status_name", "dropship_provider_name"} <= set(df.columns)
    True
    >>> str(df["createdAt"].dtype), str(df["purchaseType"].dtype)
    ('datetime64[us, UTC]', 'category')
    """
    with open_client(client, token=token, base_url=base_url) as reader:
        return reader.read(
            resource, where=where, attributes=attributes, include=include, order=order,
            limit=limit, page_size=page_size, refresh=refresh, dtype_backend=dtype_backend,
            include_mode=include_mode, sep=sep, progress=progress, explain=explain,
            consistent=consistent, on_page=on_page)


@overload
def get_jetti(resource: str, id: int | str, *, include: Any = ...,
              client: JettiClient | None = ..., token: str | None = ...,
              base_url: str | None = ..., refresh: bool = ...,
              as_frame: Literal[False] = ...) -> dict[str, Any]: ...

@overload
def get_jetti(resource: str, id: int | str, *, include: Any = ...,
              client: JettiClient | None = ..., token: str | None = ...,
              base_url: str | None = ..., refresh: bool = ...,
              as_frame: Literal[True]) -> pd.DataFrame: ...

@overload
def get_jetti(resource: str, id: int | str, *, include: Any = ...,
              client: JettiClient | None = ..., token: str | None = ...,
              base_url: str | None = ..., refresh: bool = ...,
              as_frame: bool) -> dict[str, Any] | pd.DataFrame: ...


def get_jetti(resource: str, id: int | str, *, include: Any = None,
              client: JettiClient | None = None, token: str | None = None,
              base_url: str | None = None, refresh: bool = False,
              as_frame: bool = False) -> dict[str, Any] | pd.DataFrame:
    """One record: a dict, or with ``as_frame=True`` a typed frame equal to
    ``read_jetti(resource, where={"id": id}, include=include)``; see :meth:`JettiClient.get`.
    """
    with open_client(client, token=token, base_url=base_url) as reader:
        return reader.get(resource, id, include=include, refresh=refresh, as_frame=as_frame)
