"""Which page requests to send: a pure state machine, no I/O (the first N rows in a user
order: :mod:`jetti_frames._top`).

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
  in which answers arrive or on how large ``parallel`` is (only whether it exceeds 1), so
  a repeated pull asks for exactly the same pages and can be answered from the HTTP cache.
* :meth:`Pager.on_page` answers how many *leading* records of a page belong to the result: pages
  are trimmed, never filtered, because every window is an id interval.
* ``max_rows=N`` (the user's ``limit=N``): one sequential stream, ``limit = min(page, rows
  left)``, no probe and no windows: ``ceil(N / cap)`` requests once the cap is known.

Guarantee: every record that exists for the whole pull is delivered exactly once; a record
inserted during the pull is delivered at most once (with ``parallel > 1`` only if it lands below
the probe's highest id, or before the first page for a sequential pull); a record deleted during
the pull may or may not appear.

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
from dataclasses import dataclass, replace
from itertools import count, pairwise

from ._chain import Chain
from ._pages import ById, PageRequest, PagerStats, PageSource, Record, check_sizes
from .errors import JettiConfigError, JettiDataError
from .settings import DEFAULT_PAGE_SIZE

__all__ = ["PageRequest", "PageSource", "Pager", "PagerStats"]

#: The gap between the first page and the probe is cut into about this many windows (enough
#: for the requests in flight; each window boundary costs half a request on average).
TARGET_WINDOWS = 8
#: The smallest planned window, in pages.
MIN_WINDOW_PAGES = 2
#: A window found to hold more pages than planned is cut into at most this many more.
MAX_CARVE = 16
#: Position pages an ``ahead`` pull sends after its first page, before the plan is known.
CHAIN_PAGES = 2


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
        With a probe sent with the first request: send :data:`CHAIN_PAGES` position pages (a
        :class:`~jetti_frames._chain.Chain`, ``from=1, 2``) before the plan is known, the
        first window's next pages where they overlap it (it goes on by keyset from where they
        end).  They are needed when the first page is full and the probe does not reach into
        it (more than two pages of rows); until both answers say so they carry a
        :class:`~jetti_frames._hold.Hold`: they take a slot of the allowance only when those
        answers are slower than a slot, and are withdrawn when the read turns out smaller (a
        small read costs no request more).  A read that needs them sends them whatever the
        timing, so the pages read depend on the data only.  Drive an ``ahead`` pager through
        :meth:`on_records`.

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
        check_sizes(page_size, max_rows, parallel)
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
        # position pages continuing a full first page, sent while the probe is out
        self._chain = (Chain(CHAIN_PAGES, page_size, held=True) if ahead
                       and self._probe_pending and self._probe_early else None)
        self._first_full: bool | None = None  # the first page, once back: full?
        self._window_pages = 0  # pages per window, planned once the probe is back
        self._later = False  # a request that needed an answer was sent
        self._first_rows = 0
        self._first_span = 0
        if max_rows == 0:
            self._first.closed = True

    # -- public -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True when nothing is in flight and no window has ids left to read."""
        return (not self._inflight and all(w.closed for w in self._windows)
                and (self._chain is None or not self._chain.due))

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def one_round(self) -> bool:
        """Every request so far is one the pull sends before any answer (the first page and
        the probe), however many went out at once: the pages are one moment of the data."""
        return not self._later

    @property
    def draining(self) -> bool:
        """Every request this pull is known to need has been sent: what is left is in flight
        (an answer may still open more work, e.g. a full page)."""
        if self.done:
            return True
        if (self._probe_out or self._probe_due() or self._first.cursor is None
                or (self._chain is not None and not self._chain.settled)):
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
        first, chain = self._first, self._chain
        # the first page and the probe decide whether the chain is needed
        decides = None
        if chain is not None and not self.stats.requests:
            decides = chain.start(min(self.page_size, self.cap or self.page_size))
        while len(self._inflight) < self.parallel:
            waiting = first.cursor is not None and (
                (first.hi is None and (self._probe_out or self._probe_due()))  # needs the plan
                or (chain is not None and not chain.settled))  # its next pages are the chain's
            idle = [w for w in self._windows if not w.closed and w.inflight is None
                    and not (w is first and waiting)]
            if idle:  # the most work left first, so that windows finish together
                out.append(replace(self._issue(max(idle, key=_work_left)), decides=decides))
                decides = None  # the first page only
            elif self._probe_due():
                self._probe_pending, self._probe_out = False, True
                out.append(self._send(PageRequest(next(self._keys), self.page_size,
                                                  descending=True,
                                                  decides=chain.hold if chain else None), None))
            elif chain is not None and chain.due:
                # held until the first page and the probe say they are needed; once needed,
                # sent whatever later answers say, so that the same pages are read in any order
                out.append(self._send(chain.issue(next(self._keys)), None))
            else:
                break
        return out

    def on_records(self, request: PageRequest, records: list[Record]) -> list[Record]:
        """:meth:`on_page` for records; with ``ahead``, the chain's rows once they are known
        to continue the first page inside the first window."""
        chain = self._chain
        if chain is not None and chain.owns(request):
            del self._inflight[request.key]
            self.stats.pages += 1
            if records:
                self.cap = max(self.cap or 0, len(records))
            chain.answer(request, records)
            return self._follow()
        out = super().on_records(request, records)
        if chain is not None:
            out += self._follow()
        return out

    def on_withdrawn(self, request: PageRequest) -> None:
        """A held chain page was not sent (the read turned out to hold two pages or less)."""
        del self._inflight[request.key]
        self.stats.requests -= 1

    def _follow(self) -> list[Record]:
        """The rows the chain adds to the first window, once the plan has bounded it."""
        chain, w = self._chain, self._first
        if chain is None or chain.broken or w.cursor is None or not self._probe_done:
            return []
        if (w.closed and w.inflight is None) or w.hi is None:
            chain.drop()  # the first page or the probe read everything
            return []
        out: list[Record] = []
        for link in chain.follow(w.cursor, self.cap):
            keep = bisect_right(link.ids, w.hi)
            out += link.records[:keep]
            self.stats.rows += keep
            self._later = self._later or keep > 0  # rows of a page sent after an answer
            self.stats.dropped += len(link.ids) - keep
            if keep:
                w.cursor = link.ids[keep - 1]
            if keep < len(link.ids) or link.last:
                w.closed = True
            w.close_if_exhausted()
            if w.closed:
                chain.drop()
                break
        return out

    def on_page(self, request: PageRequest, ids: list[int]) -> int:
        """Record the answer to ``request``; return how many leading records to keep.

        ``ids`` are the ids of the returned records in the order returned (ascending, or
        descending for the probe).  The caller keeps ``records[:n]`` and drops the rest (rows
        already read through another window, or past ``max_rows``).
        """
        if self._chain is not None and self._chain.owns(request):
            raise JettiConfigError("a pager that reads ahead is driven through on_records")
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
        self._decide()
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
        # a pull that probes early does so whatever room it has later (in a fan-out, a part
        # may get one free slot at a time): its pages depend on the data only
        if not self._probe_pending or (self.parallel < 2 and not self._probe_early):
            return False
        w = self._first
        if w.closed or w.hi is not None:
            return False
        return self._probe_early or w.cursor is not None

    def _send(self, request: PageRequest, window: _Window | None) -> PageRequest:
        # a chain page counts once its rows are used (it may have gone out before any answer)
        first_ones = request.descending or request.gt is None
        self._later = self._later or not first_ones
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
        if w is self._first and request.gt is None:
            if n:
                self._first_rows += n
                self._first_span += ids[-1] - ids[0] + 1
            self._first_full = n == request.limit
        if w is self._first and self._probe_done:
            self._plan()
        elif not w.closed and self._window_pages and n:
            span = ids[-1] - (request.gt if request.gt is not None else ids[0] - 1)
            self._carve(w, n / max(span, 1))
        return keep

    def _decide(self) -> None:
        """Decide the held chain pages once the first page and the probe tell whether the read
        goes on past them: not after a short first page, nor when the probe reaches into it
        (they read every row); else they are needed (more than two pages of rows)."""
        chain, w = self._chain, self._first
        if chain is None:
            return
        if w.closed or self._first_full is False:
            chain.decide(False)
        elif self._first_full and self._probe_done:
            chain.decide(True)

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
        if w.inflight is None:
            self._plan()  # from the first page on (the chain's rows are trimmed to the plan)
        return keep

    def _plan(self) -> None:
        """Cut the gap between the first page and the probe into windows of whole pages."""
        self._decide()  # first: whether the chain continues the first window
        w = self._first
        if self._window_pages or w.closed or w.cursor is None or w.hi is None:
            return
        if not self.cap or not self._first_rows:
            return
        density = self._first_rows / max(self._first_span, 1)
        pages = (w.hi - w.cursor) * density / self.cap
        self._window_pages = max(MIN_WINDOW_PAGES, math.ceil(pages / TARGET_WINDOWS))
        # the first window is continued by the chain: that much shorter, to end on a full page
        self._carve(w, density, 0 if self._chain is None else self._chain.loss)

    def _carve(self, w: _Window, density: float, loss: int = 0) -> None:
        """Split ``w`` if it holds clearly more than a window's worth of pages (the first of
        them ``loss`` rows shorter).

        Depends only on the window and the density of its own pages: the same data always
        gives the same windows.
        """
        if w.hi is None or w.cursor is None or not self.cap or density <= 0:
            return
        width = self._window_pages * max(1, math.ceil(self.cap / density))
        if w.hi - w.cursor <= width + width // 2:
            return
        hi = w.hi
        start = w.cursor - min(width - 1, round(loss / density))
        bounds = [start + k * width for k in range(1, MAX_CARVE + 1) if start + k * width < hi]
        w.hi = bounds[0]
        for lo, up in pairwise([*bounds, hi]):
            self._windows.append(_Window(cursor=lo, hi=up))
            self.stats.windows += 1
        self.stats.splits += 1
