"""Which page requests to send: a pure state machine, no I/O.

Jetti lists have no total count and no paging metadata, ``limit`` may be capped silently by the
server, and the rate limit (2 requests/s) with a slow server (0.8-1.5 s per answer) means several
requests must be in flight to use the allowance.  This module decides *which* requests to send;
:mod:`jetti_frames.transport` sends them.

Strategy (keyset, :class:`Pager`)
---------------------------------
* Every request is the user's ``where`` AND ``id > gt`` (AND ``id <= lte`` for a bounded window),
  ordered by ``id`` ascending, with ``limit`` = page size.  The next request of a stream starts
  after the last id seen, so updates while paging (which never change ids) cannot shift rows
  between pages: nothing is lost or read twice.  Values are as of each page's fetch time.
* End of a stream: an empty page, a page that reaches the window's upper bound, or a page shorter
  than ``min(limit, largest page seen so far)``.  The largest page seen is never above the
  server's real cap, so a server that caps ``limit`` (37 rows under a requested 100) never makes
  us stop early: while nothing larger has been seen, a short page only teaches the cap and the
  stream goes on (costing one empty request when the result really was that small).
* Parallel windows: the first request (ascending, no bound) is sent together with a *probe*
  (descending, no bound).  The probe reads the top of the id range, so the ids in between lie
  in ``(last id of page 1, lowest id of the probe)``.  From the id density of those two pages
  that gap is cut into about ``TARGET_WINDOWS`` windows of whole pages, paged independently
  and started as request slots free up, the one with the most left first.  Nothing above the
  probe's highest id is read again: records inserted while paging are left to the reader's
  consistency pass (see :mod:`jetti_frames.client`).  A window whose own pages show clearly more
  rows than planned is carved further (from its cursor on).  Windows only ever split, so they
  never overlap and never leave gaps; a page that runs past its window's bound is trimmed.
* Determinism: which requests are sent depends only on the pages' contents, never on the order
  in which answers arrive or on how large ``parallel`` is (only whether it ever exceeds 1), so
  a repeated pull asks for exactly the same pages and can be answered from the HTTP cache.
* :meth:`Pager.on_page` answers how many *leading* records of a page belong to the result: pages
  are trimmed, never filtered, because every window is an id interval.
* ``max_rows=N`` (the user's ``limit=N``): one sequential stream, ``limit = min(page, rows
  left)``, no probe and no windows: ``ceil(N / cap)`` requests once the cap is known.

Guarantee: every record that exists for the whole pull is delivered exactly once; a record
inserted during the pull is delivered at most once (with ``parallel > 1`` only if it lands below
the probe's highest id, or before the first page for a sequential pull); a record deleted during
the pull may or may not appear.

Strategy (ordered, :class:`TopPager`)
-------------------------------------
For a user ``order`` with ``max_rows`` (the user's ``limit=N``) the first N rows in that order
are read exactly by *value ranges*, never by offsets: rows that tie on the order attribute come
back in a different order on every request (PostgreSQL), so offset pages overlap and skip rows,
and Jetti's ``order`` takes one attribute, so ``id`` cannot break the ties on the server.

* A range request is the user's ``where`` AND a bound on the order attribute (``$ne: null``
  first, then ``$gt``/``$gte`` a value, ``$lt``/``$lte`` when descending), ordered by the
  attribute.  In its answer every row *before* the trailing run of rows equal to the page's
  last value is final: no other row with those values exists.  The trailing run is not.
* A trailing run that is the whole page or more than half a full page (a heavy value): the
  value's first rows still needed are read by id keyset (a
  :class:`~jetti_frames._bounded.BoundedPager` with ``where col = value``, id windows in
  parallel), and the next range starts after the value (``$gt``), sent at once.  Otherwise
  the next range starts *at* the last value (``$gte``), which reads that value's rows again,
  all of them first.  ``limit`` is the rows still needed plus one, so the last page usually
  proves the N-th row final.
* Nulls (``$eq: null``) are read by id keyset, first or last as ``nulls_first`` says,
  whatever the server's default is; ``id`` is never null and never ties.
* Rows that tie are put in id order, so the result is the first N by ``(attribute, id)``.
* Determinism: each decision uses only answers whose content it depends on (a range answer
  is used once every segment before it is known exactly), so the same data always sends the
  same requests and a repeated read is answered from the HTTP cache.  At most one range
  request (sent while the heavy value before it is read) can turn out unneeded.

Examples
--------
>>> rows = list(range(1, 251))                       # the server's ids
>>> def serve(req):                                  # ids of one page, cap 37
...     ids = [i for i in rows if (req.gt is None or i > req.gt)
...            and (req.lte is None or i <= req.lte)]
...     return sorted(ids, reverse=req.descending)[:min(req.limit, 37)]
>>> pager, got = Pager(100, parallel=4), []
>>> while not pager.done:
...     for req in pager.next_requests():
...         ids = serve(req)
...         got += ids[:pager.on_page(req, ids)]
>>> sorted(got) == rows
True
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import count, groupby, pairwise
from typing import Any

from ._bounded import BoundedPager
from ._pages import ById, PageRequest, PagerStats, PageSource, Record
from .errors import JettiConfigError, JettiDataError
from .settings import DEFAULT_PAGE_SIZE

__all__ = ["PageRequest", "PageSource", "Pager", "PagerStats", "TopPager"]

#: The gap between the first page and the probe is cut into about this many windows (enough
#: for the requests in flight; each window boundary costs half a request on average).
TARGET_WINDOWS = 8
#: The smallest planned window, in pages.
MIN_WINDOW_PAGES = 2
#: A window found to hold more pages than planned is cut into at most this many more.
MAX_CARVE = 16


def _work_left(w: _Window) -> float:
    """Ids a window still has to read (unbounded: infinite)."""
    if w.hi is None or w.cursor is None:
        return math.inf
    return w.hi - w.cursor


@dataclass(eq=False)
class _Window:
    """Ids in ``(cursor, hi]`` still to read (``None``: unbounded on that side)."""

    cursor: int | None
    hi: int | None
    closed: bool = False
    inflight: PageRequest | None = None

    def close_if_exhausted(self) -> None:
        if self.hi is not None and self.cursor is not None and self.cursor >= self.hi:
            self.closed = True


class Pager(ById):
    """Keyset pager on ``id`` with parallel windows (see the module docstring).

    Parameters
    ----------
    page_size : int
        The ``limit`` asked for; the server may silently answer with fewer rows.
    max_rows : int, optional
        Stop after this many rows (the user's ``limit=N``); sequential, fewest requests.
    parallel : int
        How many requests may be in flight at once.
    probe : bool
        Send the descending probe that enables parallel windows: with the first request when
        ``parallel > 1`` from the start; when ``parallel`` is raised later (e.g. as latency
        becomes known), only once the first page has shown that the stream goes on.
    ahead : bool
        With a probe sent with the first request: once the first page comes back full
        (``limit`` rows), send the next page at once, without an upper bound, instead of
        waiting for the probe's answer.  Its rows are trimmed to the first window once the
        plan is known; :meth:`on_records` holds an answer that comes before the probe's, so
        the pages read never depend on the order of answers (:meth:`on_page` does not hold:
        drive an ``ahead`` pager through :meth:`on_records`).

    Examples
    --------
    >>> p = Pager(100, max_rows=150)
    >>> [r] = p.next_requests(); (r.gt, r.limit)
    (None, 100)
    >>> p.on_page(r, list(range(1, 101)))
    100
    >>> [r] = p.next_requests(); (r.gt, r.limit)
    (100, 50)
    >>> p.on_page(r, list(range(101, 151))), p.done
    (50, True)
    """

    def __init__(self, page_size: int = DEFAULT_PAGE_SIZE, *, max_rows: int | None = None,
                 parallel: int = 1, probe: bool = True, ahead: bool = False) -> None:
        if page_size < 1:
            raise JettiConfigError("page_size must be at least 1")
        if max_rows is not None and max_rows < 0:
            raise JettiConfigError("max_rows must be >= 0")
        if parallel < 1:
            raise JettiConfigError("parallel must be at least 1")
        self.page_size = page_size
        self.max_rows = max_rows
        self.parallel = 1 if max_rows is not None else parallel
        self.cap: int | None = None  # largest page seen: never above the server's real cap
        self.stats = PagerStats(windows=1)
        self._keys = count()
        self._first = _Window(cursor=None, hi=None)
        self._windows: list[_Window] = [self._first]
        self._inflight: dict[int, _Window | None] = {}
        self._probe_pending = probe and max_rows is None  # sent once parallel > 1
        self._probe_early = parallel > 1  # with the first request; else once it shows more rows
        self._probe_out = False
        self._probe_done = False
        # the first window's second page, sent while the probe is out: once page 1 is full
        self._ahead = ahead and self._probe_pending and self._probe_early
        self._ahead_after: int | None = None  # the last id of a full first page
        self._ahead_key: int | None = None
        self._held: tuple[PageRequest, list[Record]] | None = None
        self._window_pages = 0  # pages per window, planned once the probe is back
        self._first_rows = 0
        self._first_span = 0
        if max_rows == 0:
            self._first.closed = True

    # -- public -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True when nothing is in flight and no window has ids left to read."""
        return not self._inflight and all(w.closed for w in self._windows)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def draining(self) -> bool:
        """Every request this pull is known to need has been sent: what is left is in flight
        (an answer may still open more work, e.g. a full page)."""
        if self.done:
            return True
        if (self._probe_out or self._probe_due() or self._first.cursor is None
                or self._ahead_after is not None):
            return False
        return all(w.closed or w.inflight is not None for w in self._windows)

    @property
    def estimated_pages(self) -> int | None:
        """Pages this pull is expected to take in all (answered ones included), from the id
        density of the first page and the probe; ``None`` until both are back.  Exact once
        done.  Only read: it changes no plan."""
        if self.done:
            return self.stats.pages
        if self.max_rows is not None and self.cap:
            return self.stats.pages + math.ceil(max(0, self.max_rows - self.stats.rows)
                                                / self.cap)
        if not self._probe_done or not self.cap or not self._first_rows:
            return None
        density = self._first_rows / max(self._first_span, 1)
        left = 0
        for w in self._windows:
            if w.closed:
                left += w.inflight is not None
            elif w.hi is None or w.cursor is None:
                return None
            else:
                left += max(1, math.ceil((w.hi - w.cursor) * density / self.cap))
        return self.stats.pages + left

    def windows(self) -> list[tuple[int | None, int | None]]:
        """The id intervals ``(gt, lte)`` still to read, in id order (for inspection)."""
        live = [w for w in self._windows if not w.closed or w.inflight is not None]
        return sorted(((w.cursor, w.hi) for w in live),
                      key=lambda b: -math.inf if b[0] is None else b[0])

    def next_requests(self) -> list[PageRequest]:
        """Requests to send now, so that at most ``parallel`` are in flight.

        Which requests are sent depends only on the pages' contents, never on the order in
        which they are answered, so the same pull asks for the same pages (and a repeated pull
        can be answered from a cache).
        """
        out: list[PageRequest] = []
        while len(self._inflight) < self.parallel:
            first = self._first
            waiting = (first.hi is None and first.cursor is not None
                       and (self._probe_out or self._probe_due()))  # the plan needs the probe
            idle = [w for w in self._windows if not w.closed and w.inflight is None
                    and not (w is first and waiting)]
            if self._ahead_after is not None and first.inflight is None:
                # sent whatever is known by now (even if the probe closed the window), so
                # that the same pages are read in any order of answers
                first.inflight = PageRequest(next(self._keys), self.page_size,
                                             gt=self._ahead_after)
                self._ahead_after, self._ahead_key = None, first.inflight.key
                out.append(self._send(first.inflight, first))
            elif idle:  # the most work left first, so that windows finish together
                out.append(self._issue(max(idle, key=_work_left)))
            elif self._probe_due():
                self._probe_pending, self._probe_out = False, True
                out.append(self._send(PageRequest(next(self._keys), self.page_size,
                                                  descending=True), None))
            else:
                break
        return out

    def on_records(self, request: PageRequest, records: list[Record]) -> list[Record]:
        """:meth:`on_page` for records, the page sent ahead held until the probe is in."""
        if request.key == self._ahead_key and not self._probe_done:
            self._held = (request, records)  # read once the plan is known
            return []
        out = super().on_records(request, records)
        if self._held is not None and self._probe_done:
            held, self._held = self._held, None
            out += super().on_records(*held)
        return out

    def on_page(self, request: PageRequest, ids: list[int]) -> int:
        """Record the answer to ``request``; return how many leading records to keep.

        ``ids`` are the ids of the returned records in the order returned (ascending, or
        descending for the probe).  The caller keeps ``records[:n]`` and drops the rest (rows
        already read through another window, or past ``max_rows``).
        """
        window = self._inflight.pop(request.key)
        n = len(ids)
        step = -1 if request.descending else 1
        if any((b - a) * step <= 0 for a, b in pairwise(ids)):
            raise JettiDataError("page ids are not strictly ordered by id as requested")
        self.stats.pages += 1
        if n:
            self.cap = max(self.cap or 0, n)
        if window is None:
            keep = self._on_probe(request, ids)
        else:
            keep = self._on_window_page(window, request, ids)
        self.stats.rows += keep
        self.stats.dropped += n - keep
        if keep == 0:
            self.stats.wasted += 1
        if self.max_rows is not None and self.stats.rows >= self.max_rows:
            for w in self._windows:
                w.closed = True
        return keep

    # -- internals -------------------------------------------------------------------------
    def _short(self, request: PageRequest, n: int) -> bool:
        """A page that proves its stream has no more rows."""
        return n == 0 or n < min(request.limit, self.cap or 0)

    def _probe_due(self) -> bool:
        if not self._probe_pending or self.parallel < 2:
            return False
        w = self._first
        if w.closed or w.hi is not None:
            return False
        return self._probe_early or w.cursor is not None

    def _send(self, request: PageRequest, window: _Window | None) -> PageRequest:
        self._inflight[request.key] = window
        self.stats.requests += 1
        return request

    def _issue(self, w: _Window) -> PageRequest:
        limit = self.page_size
        if self.max_rows is not None:
            limit = max(1, min(limit, self.max_rows - self.stats.rows))
        w.inflight = PageRequest(next(self._keys), limit, gt=w.cursor, lte=w.hi)
        return self._send(w.inflight, w)

    def _on_window_page(self, w: _Window, request: PageRequest, ids: list[int]) -> int:
        w.inflight = None
        n = len(ids)
        keep = n if w.hi is None else bisect_right(ids, w.hi)
        if self.max_rows is not None:
            keep = min(keep, self.max_rows - self.stats.rows)
        if keep:
            w.cursor = ids[keep - 1]
        if keep < n or self._short(request, n):
            w.closed = True
        w.close_if_exhausted()
        if w is self._first and request.gt is None and n:
            self._first_rows += n
            self._first_span += ids[-1] - ids[0] + 1
            if self._ahead and n == request.limit:
                self._ahead_after = ids[-1]
        if w is self._first and self._probe_done:
            self._plan()
        elif not w.closed and self._window_pages and n:
            span = ids[-1] - (request.gt if request.gt is not None else ids[0] - 1)
            self._carve(w, n / max(span, 1))
        return keep

    def _on_probe(self, request: PageRequest, ids: list[int]) -> int:
        self._probe_out, self._probe_done = False, True
        w = self._first
        if w.closed or w.hi is not None or not ids:
            return 0
        keep = len(ids) if w.cursor is None else sum(1 for i in ids if i > w.cursor)
        if keep < len(ids):
            # the probe reached down into the first page: together they read every row, in
            # one round, so the first window has nothing left (a page sent ahead keeps none)
            w.closed, w.hi = True, w.cursor
            return keep
        self._first_rows += keep
        self._first_span += ids[0] - ids[keep - 1] + 1
        w.hi = ids[keep - 1] - 1  # below the probe's lowest id
        if keep == len(ids) and self._short(request, len(ids)):
            w.closed = True  # nothing below the probe's lowest id: the probe read it all
            return keep
        w.close_if_exhausted()
        if w.inflight is None or w.inflight.key == self._ahead_key:
            self._plan()  # from the first page on: a page sent ahead is trimmed to the plan
        return keep

    def _plan(self) -> None:
        """Cut the gap between the first page and the probe into windows of whole pages."""
        w = self._first
        if self._window_pages or w.closed or w.cursor is None or w.hi is None:
            return
        if not self.cap or not self._first_rows:
            return
        density = self._first_rows / max(self._first_span, 1)
        pages = (w.hi - w.cursor) * density / self.cap
        self._window_pages = max(MIN_WINDOW_PAGES, math.ceil(pages / TARGET_WINDOWS))
        self._carve(w, density)

    def _carve(self, w: _Window, density: float) -> None:
        """Split ``w`` if it holds clearly more than a window's worth of pages.

        Depends only on the window and the density of its own pages: the same data always
        gives the same windows.
        """
        if w.hi is None or w.cursor is None or not self.cap or density <= 0:
            return
        width = self._window_pages * max(1, math.ceil(self.cap / density))
        if w.hi - w.cursor <= width + width // 2:
            return
        hi = w.hi
        bounds = [w.cursor + k * width for k in range(1, MAX_CARVE + 1)
                  if w.cursor + k * width < hi]
        w.hi = bounds[0]
        for lo, up in pairwise([*bounds, hi]):
            self._windows.append(_Window(cursor=lo, hi=up))
            self.stats.windows += 1
        self.stats.splits += 1


@dataclass(eq=False)
class _Keyset:
    """The first ``need`` records of one value of the order attribute (or its nulls) in id
    order: a :class:`~jetti_frames._bounded.BoundedPager` (windows in parallel), or, with a
    post-filter, a sequential :class:`Pager` over every record of the value."""

    where: dict[str, Any]
    pager: Pager | BoundedPager
    need: int
    rows: list[Record] = field(default_factory=list)

    @property
    def satisfied(self) -> bool:
        if isinstance(self.pager, BoundedPager):  # its rows are final only once it is done
            return self.pager.done
        return self.pager.done or len(self.rows) >= self.need

    def in_order(self) -> list[Record]:
        return sorted(self.rows, key=lambda r: int(r["id"]))

    @property
    def complete(self) -> bool:
        return self.satisfied and not self.pager.in_flight


@dataclass(eq=False)
class _Range:
    """One range request: the rows after a bound, ordered by the attribute."""

    where: dict[str, Any]
    limit: int
    sent: bool = False
    records: list[Record] | None = None


class TopPager:
    """The exact first ``max_rows`` records in a one-attribute order, by value ranges.

    A pure state machine like :class:`Pager` (see the module docstring for the strategy), fed
    whole records, since it needs the order attribute's values.  :meth:`result` gives the
    rows in order: by the attribute with nulls placed as asked, ties by id.

    Parameters
    ----------
    attribute : str
        The order attribute; its values must come back in every record, with ``id``.
    max_rows : int
        How many rows (the user's ``limit``).
    page_size : int
        The largest ``limit`` asked.
    descending, nulls_first : bool
        The order.
    unique : bool
        The attribute never ties and is never null (``id``): no keyset reads.
    keep : callable, optional
        Rows for which it is false do not count (a local post-filter).
    parallel : int
        How many requests may be in flight (read by the keyset reads' windows; a range
        request always goes out at once, so this changes timing, never the requests).

    Examples
    --------
    >>> import operator, random
    >>> totals = {1: 5, 2: 3, 3: 5, 4: None, 5: 3, 6: 9, 7: 5}       # id -> total
    >>> OPS = {"$gt": operator.gt, "$gte": operator.ge, "$ne": operator.ne}
    >>> def match(value, cond):
    ...     if not isinstance(cond, dict):                   # a keyset read of one value
    ...         return value == cond
    ...     (op, bound), = cond.items()
    ...     return value is not None and (bound is None or OPS[op](value, bound))
    >>> def serve(req):
    ...     rows = [{"id": i, "total": v} for i, v in totals.items()
    ...             if match(v, req.where["total"]) and (req.gt is None or i > req.gt)]
    ...     if req.by_order:                                 # ties in any order
    ...         random.shuffle(rows)
    ...         rows.sort(key=lambda r: r["total"])
    ...     return rows[:req.limit]
    >>> top = TopPager("total", 4, page_size=2)
    >>> while not top.done:
    ...     for req in top.next_requests():
    ...         top.on_page(req, serve(req))
    >>> [(r["id"], r["total"]) for r in top.result()]
    [(2, 3), (5, 3), (1, 5), (3, 5)]
    """

    def __init__(self, attribute: str, max_rows: int, page_size: int = DEFAULT_PAGE_SIZE, *,
                 descending: bool = False, nulls_first: bool = False, unique: bool = False,
                 keep: Callable[[Record], bool] | None = None, parallel: int = 1) -> None:
        if page_size < 1:
            raise JettiConfigError("page_size must be at least 1")
        if max_rows < 0:
            raise JettiConfigError("max_rows must be >= 0")
        self.attribute = attribute
        self.max_rows = max_rows
        self.page_size = page_size
        self.descending = descending
        self.unique = unique
        self.nulls_last = not nulls_first and not unique
        self.keep = keep
        self.parallel = parallel
        self.cap: int | None = None  # the largest range page seen
        self.stats = PagerStats()
        self._rows: list[Record] = []
        self._keys = count()
        self._owner: dict[int, tuple[_Keyset | _Range, PageRequest | None]] = {}
        self._finished = max_rows == 0
        self._head = None if unique or not nulls_first else self._keyset(None, max_rows)
        self._boundary: _Keyset | None = None
        self._tail: _Keyset | None = None
        first = {} if unique else {attribute: {"$ne": None}}
        self._range: _Range | None = _Range(first, self._limit(max_rows + (not unique)))

    # -- public -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the first ``max_rows`` are known and no request is in flight."""
        return self._finished and not self._owner

    @property
    def in_flight(self) -> int:
        return len(self._owner)

    @property
    def draining(self) -> bool:
        """Nothing known to be needed is left unsent."""
        if self._finished:
            return True
        if self._range is not None and not self._range.sent:
            return False
        return all(seg is None or seg.satisfied or seg.pager.draining
                   for seg in (self._head, self._boundary, self._tail))

    @property
    def estimated_pages(self) -> int | None:
        """Unknown: how many reads the order's values need shows only while reading."""
        return None

    def result(self) -> list[Record]:
        """The rows known so far, in the final order (all of them once :attr:`done`)."""
        return self._rows[:self.max_rows]

    def next_requests(self) -> list[PageRequest]:
        """Requests to send now: a range request at once, keyset pages within ``parallel``."""
        out: list[PageRequest] = []
        if self._finished:
            return out
        for seg in (self._head, self._boundary, self._tail):
            if seg is not None and not seg.satisfied:
                if isinstance(seg.pager, BoundedPager):
                    others = self.in_flight - seg.pager.in_flight + len(out)
                    seg.pager.parallel = max(1, self.parallel - others)
                for inner in seg.pager.next_requests():
                    out.append(self._send(replace(inner, key=next(self._keys),
                                                  where=seg.where), seg, inner))
        r = self._range
        if r is not None and not r.sent:
            r.sent = True
            out.append(self._send(PageRequest(next(self._keys), r.limit, where=r.where,
                                              by_order=True), r, None))
        return out

    def on_records(self, request: PageRequest, records: list[Record]) -> list[Record]:
        """Record an answer (see :meth:`on_page`); the rows come with :meth:`result`."""
        self.on_page(request, records)
        return []

    def on_page(self, request: PageRequest, records: list[Record]) -> None:
        """Record the answer to ``request`` (its records, as returned)."""
        seg, inner = self._owner.pop(request.key)
        self.stats.pages += 1
        if self._finished:
            self.stats.wasted += 1
            return
        if isinstance(seg, _Range):
            seg.records = list(records)
            if records:
                self.cap = max(self.cap or 0, len(records))
        elif isinstance(seg.pager, BoundedPager):
            assert inner is not None
            seg.rows += seg.pager.on_records(inner, records)
        else:
            assert inner is not None
            n = seg.pager.on_page(inner, [int(r["id"]) for r in records])
            kept = [r for r in records[:n] if self._kept(r)]
            seg.rows += kept[:max(0, seg.need - len(seg.rows))]
        self._advance()

    # -- internals ----------------------------------------------------------------------
    def _send(self, request: PageRequest, seg: _Keyset | _Range,
              inner: PageRequest | None) -> PageRequest:
        self._owner[request.key] = (seg, inner)
        self.stats.requests += 1
        return request

    def _kept(self, record: Record) -> bool:
        return self.keep is None or self.keep(record)

    def _limit(self, wanted: int) -> int:
        """A range's ``limit``: the rows still wanted (all of a page with a post-filter)."""
        return self.page_size if self.keep is not None else max(1, min(self.page_size, wanted))

    def _keyset(self, value: Any, need: int) -> _Keyset:
        pager: Pager | BoundedPager
        if self.keep is None:
            pager = BoundedPager(self.page_size, need, parallel=self.parallel)
        else:  # how many rows a page keeps is known only once read: one page at a time
            pager = Pager(self.page_size, probe=False)
        pager.cap = self.cap
        return _Keyset({self.attribute: value}, pager, need)

    def _take(self, rows: list[Record]) -> None:
        self._rows += rows
        if len(self._rows) >= self.max_rows:
            self._finished = True

    def _advance(self) -> None:
        """Settle segments in result order as far as their answers allow."""
        while not self._finished:
            seg = self._head or self._boundary
            if seg is not None:
                if not seg.complete:
                    return
                self._take(seg.in_order())
                if seg is self._head:
                    self._head = None
                else:
                    self._boundary = None
            elif self._range is not None:
                if self._range.records is None:
                    return
                self._on_range(self._range)
            elif self._tail is not None:
                if not self._tail.complete:
                    return
                self._take(self._tail.in_order())
                self._tail = None
            else:
                self._finished = True

    def _in_order(self, records: list[Record]) -> list[Record]:
        """Kept records in the server's order, each run of equal values in id order."""
        out: list[Record] = []
        for _, run in groupby(records, key=lambda r: r.get(self.attribute)):
            out += sorted((r for r in run if self._kept(r)), key=lambda r: r["id"])
        return out

    def _on_range(self, r: _Range) -> None:
        self._range = None
        records = r.records or []
        n = len(records)
        if n == 0 or n < min(r.limit, self.cap or 0):  # the rest of the range: all final
            self._take(self._in_order(records))
            if not self._finished and self.nulls_last:
                self._tail = self._keyset(None, self.max_rows - len(self._rows))
            return
        last = records[-1].get(self.attribute)
        run = 0  # the trailing run of rows equal to the last value: not final
        while not self.unique and run < n and records[n - 1 - run].get(self.attribute) == last:
            run += 1
        self._take(self._in_order(records[:n - run]))
        if self._finished:
            return
        left = self.max_rows - len(self._rows)
        after, at = ("$lt", "$lte") if self.descending else ("$gt", "$gte")
        if run < n and 2 * run <= self.page_size:
            # progress: start the next range at the last value, which it reads again
            self._range = _Range({self.attribute: {at if run else after: last}},
                                 self._limit(left + 1 if run else left))
            return
        # a heavy value (the whole page, or more than half a full one): read it by id
        self._boundary = self._keyset(last, left)
        # the value has at least ``run`` rows (which of them came back is chance: with a
        # post-filter nothing certain is known about how many it keeps)
        known = 0 if self.keep is not None else run
        if known < left:
            self._range = _Range({self.attribute: {after: last}}, self._limit(left - known + 1))

