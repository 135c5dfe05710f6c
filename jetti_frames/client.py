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
(:class:`~jetti_frames._top.TopPager`), then no consistency pass.

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

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import pandas as pd

from ._build import build_query, request_params
from ._collect import Collector
from ._explain import explain_fields
from ._pack import LogicSupport, pack_where
from ._plan import Plan
from ._reading import Reading, ReadStats
from ._shortcuts import get_jetti, read_jetti
from ._shortcuts import open_client as open_client  # the entry points import it from here
from ._split import split_where
from ._wire import encode
from .drift import DriftLog
from .errors import JettiQueryError
from .flatten import frame_from_records
from .options import check_options, record_id
from .schema import DEFAULT_SEP, DtypeBackend, column_dtypes
from .settings import Settings
from .transport import CacheInfo, Transport

__all__ = ["Explanation", "JettiClient", "ReadStats", "get_jetti", "read_jetti"]

IncludeMode = Literal["joined", "tables"]
#: Hosts on which the embedded sandbox runs.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


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


class JettiClient(Reading):
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
              limit: int | None = None, page_size: int | None = None) -> Plan:
        limit = None if limit is None else int(limit)  # checked by check_options: numpy ints
        size = self.settings.page_size if page_size is None else int(page_size)
        query = build_query(resource, where=where, attributes=attributes, include=include,
                            order=order)
        parts = [] if query.is_empty or limit == 0 else split_where(query)
        plan = Plan(query, query.spec, parts, size, limit)
        if parts and not plan.top:  # long lists in few requests (see _pack)
            plan.query, plan.parts = pack_where(
                query, page_size=size, logic=self._logic.usable(self._transport.account))
        return plan

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
        With ``limit`` or an ``order``, which only the whole read can settle, the records
        :meth:`read` returns are read first, then handed over in its order in pages of
        ``page_size``.

        Parameters
        ----------
        resource, where, attributes, include, order, limit, page_size, refresh, progress
            As in :meth:`JettiClient.read`.
        """
        check_options(refresh=refresh, progress=progress, limit=limit, page_size=page_size)
        plan = self._plan(resource, where=where, attributes=attributes, include=include,
                          order=order, limit=limit, page_size=page_size)
        return self._iter_pages(plan, refresh=refresh, progress=progress)

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
        return Explanation(**explain_fields(self, plan, refresh=refresh, consistent=consistent,
                                            probe=probe))
