"""The first N records in id order (or by ``-id``), several id windows in flight:
:class:`BoundedPager`.

A pure state machine like :class:`~jetti_frames.paging.Pager` (no I/O), for the user's
``limit=N``.  Read one page after another, such a read uses a fraction of the allowance on a
slow server (one request per round trip); read in parallel, it must still send about
``ceil(N / page)`` requests and return exactly the first N rows.

Strategy
--------
* The first page (ascending, no bound) shows where the ids start and how dense they are.
* The ids after it that should hold the rows still needed are cut into up to
  :data:`WINDOWS` windows of whole pages (from that density).  Every window but the last is an
  id interval ``(lo, hi]`` read completely by keyset (``id > cursor AND id <= hi``); the last
  one is unbounded and sends the pages planned for it.  Windows never overlap.
* ``limit`` is always the page size (or N below one page), so a request never depends on when
  it was decided.  A window boundary costs at most one page that is not full; the estimate
  only decides where windows start, never which rows are returned.
* Once every planned request is answered: if the rows read hold fewer than N (the density was
  overestimated), the last window goes on, cut into windows again when several pages are still
  needed.  Rows past the N-th are read only when the density was underestimated, and dropped.
* Determinism: every decision uses only the pages' contents (the plan after the first page,
  a window's end, the count once everything planned is answered), never the order of answers
  or ``parallel``, so a repeated read asks for the same pages and is answered from the cache.
* Rows are final only when every row before them is known: :meth:`BoundedPager.final_bound`
  says up to which id kept rows belong to the result (the N-th row only once :attr:`done`);
  :meth:`BoundedPager.on_records` holds the records of an answer until they are final.
* ``descending=True`` reads the first N by ``-id`` the same way: every bound is mirrored
  (``id < cursor AND id >= lo``, ordered by id descending).
* ``probe=True`` asks, with the first page, for the highest id (one row, ordered the other way
  round): the windows are cut up to it when the rows end before ``max_rows``, instead of
  planned from the density past the last row, where they would come back empty.
* ``ahead=True`` fills the first round trip: with the first page go up to two position pages
  (a :class:`~jetti_frames._chain.Chain`: ``from=1``, ``from=2``, each overlapping the page
  before it), which the first planned window takes as its first pages where they overlap, and
  goes on by keyset from where they end.  Such a pager is driven through :meth:`on_records`.

Examples
--------
>>> rows = list(range(3, 3000, 3))                   # 999 ids, 3 apart
>>> def serve(req):
...     ids = [i for i in rows if (req.gt is None or i > req.gt)
...            and (req.lte is None or i <= req.lte)]
...     return ids[:min(req.limit, 100)]
>>> pager, got = BoundedPager(100, 450, parallel=4), []
>>> while not pager.done:
...     for req in pager.next_requests():
...         ids = serve(req)
...         got += ids[:pager.on_page(req, ids)]
>>> sorted(i for i in got if i <= pager.final_bound()) == rows[:450]
True
>>> pager.stats.requests                             # ceil(450 / 100)
5
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import count, pairwise

from ._chain import Chain
from ._pages import PageRequest, PagerStats, Record, check_sizes
from .errors import JettiConfigError, JettiDataError
from .settings import GET_RATE

__all__ = ["WINDOWS", "BoundedPager"]

#: The slowest answers (seconds) the windows are planned for.
PLANNED_LATENCY = 1.5
#: At most this many windows are planned at once: one request each in flight keeps Jetti's 2
#: requests/s for answers up to :data:`PLANNED_LATENCY`, with one more for the time an answer
#: takes to turn into the window's next request (each boundary may cost one page that is not
#: full, and more windows finish more unevenly).  A constant, so the requests of a read depend
#: on its data only, never on the latency measured.
WINDOWS = math.ceil(GET_RATE * PLANNED_LATENCY) + 1
#: The smallest planned window, in pages.
MIN_WINDOW_PAGES = 2
#: The share of a bounded window's pages planned empty: ids a little denser than the first
#: page said would otherwise cost a page of a few rows at its end (the rows left over go to
#: the last, unbounded window, which reads whole pages).
SLACK = 0.02
#: Position pages sent with the first page (``ahead=True``): with it, they fill the first
#: round trip at :data:`PLANNED_LATENCY`.
CHAIN_PAGES = math.ceil(GET_RATE * PLANNED_LATENCY) - 1


@dataclass(eq=False)
class _Window:
    """Ids in ``(lo, hi]`` (``None``: unbounded), read from ``cursor`` on."""

    lo: int | None
    hi: int | None
    cursor: int | None
    #: Pages still to send when unbounded (a bounded window reads to its end).
    pages: int = 0
    ids: list[int] = field(default_factory=list)
    complete: bool = False
    inflight: PageRequest | None = None
    #: Position pages that continue the window from its start, followed before any keyset page.
    chain: Chain | None = None

    def can_send(self) -> bool:
        return (not self.complete and self.inflight is None
                and (self.hi is not None or self.pages > 0)
                and (self.chain is None or self.chain.settled))


class BoundedPager:
    """The first ``max_rows`` records in id order, by keyset windows read in parallel.

    Parameters
    ----------
    page_size : int
        The ``limit`` asked for; the server may silently answer with fewer rows.
    max_rows : int
        How many rows (the user's ``limit=N``).
    parallel : int
        How many requests may be in flight at once (changes timing, never the requests).
    descending : bool
        The first ``max_rows`` by ``-id``: ids are read from the top down.
    ahead : bool
        Send position pages with the first page (see the module docstring); drive the pager
        through :meth:`on_records`.
    hold : bool
        With ``ahead``: the position pages wait for the first page (a
        :class:`~jetti_frames._hold.Hold`), which withdraws them when it is not full, so that a
        read of fewer rows than a page costs one request (a pager whose driver routes
        :meth:`on_withdrawn`).
    max_windows : int
        The most windows planned at once (each boundary may cost a page that is not full).
    window_pages : int
        After the first page, windows past the second are planned only when each holds this
        many pages (:data:`MIN_WINDOW_PAGES`, like the first two, by default).
    probe : bool
        With the first page, ask for the highest id (one row, the other way round): windows
        are cut up to it when the rows end before ``max_rows``, instead of past the end.
    settled : bool
        False: ``max_rows`` is only an upper bound for now.  The first page (with its probe
        and position pages, all sized from that bound) goes out, and the windows are planned
        once :meth:`settle` gives the exact number.

    Examples
    --------
    >>> pager = BoundedPager(100, 250, descending=True)
    >>> [first] = pager.next_requests()
    >>> first.params()["order"], pager.on_page(first, list(range(1000, 900, -1)))
    ({'attribute': 'id', 'descending': True}, 100)
    >>> [(r.lt, r.gte, r.limit) for r in pager.next_requests()]
    [(901, None, 100)]
    """

    def __init__(self, page_size: int, max_rows: int, *, parallel: int = 1,
                 descending: bool = False, ahead: bool = False, hold: bool = False,
                 max_windows: int = WINDOWS, window_pages: int = MIN_WINDOW_PAGES,
                 probe: bool = False, settled: bool = True) -> None:
        check_sizes(page_size, max_rows, parallel)
        self._settled = settled
        self._opening_rows = max_rows  # what the first page is sized from, whenever it goes
        #: Planned from the probe: the rows up to the highest id (an estimate), and whether
        #: they are fewer than ``max_rows``.
        self.expected_rows: int | None = None
        self.expects_short = False
        self.max_windows = max(1, max_windows)
        self.window_pages = max(1, window_pages)
        self.page_size = page_size
        self.max_rows = max_rows
        self.parallel = parallel
        self.descending = descending
        self._sign = -1 if descending else 1  # ids times this ascend in the read's order
        self.cap: int | None = None  # largest page seen: never above the server's real cap
        self.stats = PagerStats(windows=1)
        self._keys = count()
        self._windows = [_Window(None, None, None, pages=1)]
        self._inflight: dict[int, _Window | None] = {}  # None: a page of the chain
        pages = min(CHAIN_PAGES, math.ceil(max_rows / page_size) - 1, page_size - 2)
        self._chain = (Chain(pages, page_size, descending, held=hold) if ahead and pages > 0
                       else None)
        self._planned = False
        # the probe: still to send; the plan waits for it; the highest id it found
        self._probe_unsent = self._probe_awaited = probe and max_rows > page_size
        self._top: int | None = None
        self._first_full: bool | None = None  # the first page came back full (until the plan)
        self._held: list[Record] = []  # records kept but not yet known to be final
        self._later = False  # a request planned from an answer was sent
        self._open_rows = 0  # rows of pages read without an upper id bound (see ended_short)
        if max_rows == 0:
            self._windows[0].complete = True

    # -- public -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the first ``max_rows`` rows (or every row, when fewer) are known and
        every request sent is answered."""
        return not self._inflight and not self._more()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def one_round(self) -> bool:
        """Every request so far is one the read sends before any answer (the first page and
        its position pages): the pages are one moment of the data."""
        return not self._later

    @property
    def estimated_pages(self) -> int:
        """Pages this read is expected to take in all: at least those the rows need (exact
        once done)."""
        if self.done:
            return self.stats.pages
        return max(self.stats.pages + self.in_flight, -(-self.max_rows // self.page_size))

    @property
    def draining(self) -> bool:
        """Nothing known to be needed is left unsent."""
        chain = self._chain
        return (not any(w.can_send() for w in self._windows) and not self._probe_unsent
                and (chain is None or chain.settled))

    @property
    def ending(self) -> bool:
        """Planned, and every request the read is expected to send is out: each open window's
        page in flight should reach its end (by the density seen).  A guess for timing only."""
        return self._planned and self.draining and all(
            w.complete or (w.inflight is not None and self._work_left(w) <= 1)
            for w in self._windows)

    @property
    def ended_short(self) -> bool:
        """The ids ran out in the last, unbounded window while the pages read without an
        upper id bound (the first page, the position pages continuing an unbounded window,
        every unbounded window's pages: each followed in turn) hold fewer than ``max_rows``
        rows: the rows may be fewer than ``max_rows``.  Decided by the pages' contents alone,
        whatever the order of answers."""
        last = self._windows[-1]
        return last.hi is None and last.complete and self._open_rows < self.max_rows

    def windows(self) -> list[tuple[int | None, int | None]]:
        """The windows ``(lo, hi]`` of the plan, in read order (for inspection; ``-id`` for a
        descending read)."""
        return [(w.lo, w.hi) for w in self._windows]

    def next_requests(self) -> list[PageRequest]:
        """Requests to send now, so that at most ``parallel`` are in flight."""
        out: list[PageRequest] = []
        if not self._inflight and not any(w.can_send() for w in self._windows):
            self._extend()
        chain, decides = self._chain, None
        if chain is not None and not self.stats.requests:
            decides = chain.start(min(self.page_size, self.cap or self.page_size))
        while len(self._inflight) < self.parallel:
            idle = [w for w in self._windows if w.can_send()]
            if self._probe_unsent and self.stats.requests:  # with the first page
                request = PageRequest(next(self._keys), 1, descending=not self.descending)
                self._probe_unsent = False
                self._inflight[request.key] = None
                self.stats.requests += 1
                out.append(request)
            elif chain is not None and chain.due and self.stats.requests:
                request = chain.issue(next(self._keys))
                self._inflight[request.key] = None
                self.stats.requests += 1
                out.append(request)
            elif idle:
                out.append(replace(self._issue(max(idle, key=self._work_left)), decides=decides))
                decides = None  # the stream's first page decides the chain
            else:
                break
        return out

    def on_page(self, request: PageRequest, ids: list[int]) -> int:
        """Record the answer to ``request``; return how many leading records to keep.

        Kept records are the page's rows inside its window; which of them belong to the
        result is known from :meth:`final_bound`.
        """
        if self._chain is not None and self._chain.owns(request):
            raise JettiConfigError("a pager that reads ahead is driven through on_records")
        w = self._inflight.pop(request.key)
        if w is None:  # the probe
            self._probe_awaited = False
            self.stats.pages += 1
            self._top = self._sign * ids[0] if ids else None
            self._try_plan()
            return 0
        w.inflight = None
        ids = [self._sign * i for i in ids]
        if any(b <= a for a, b in pairwise(ids)):
            raise JettiDataError("page ids are not strictly ordered by id as requested")
        n = len(ids)
        self.stats.pages += 1
        if n:
            self.cap = max(self.cap or 0, n)
        keep = n if w.hi is None else sum(1 for i in ids if i <= w.hi)
        self._open_rows += keep if w.hi is None else 0
        w.ids += ids[:keep]
        if keep:
            w.cursor = ids[keep - 1]
        if w.hi is None:
            w.pages -= 1
        if keep < n or n == 0 or n < min(request.limit, self.cap or 0):
            w.complete = True  # the end of the window, or of the data
        if w.hi is not None and w.cursor is not None and w.cursor >= w.hi:
            w.complete = True
        self.stats.rows += keep
        self.stats.dropped += n - keep
        if keep == 0:
            self.stats.wasted += 1
        if not self._planned and w is self._windows[0]:
            if self._chain is not None:  # before the plan counts what the chain loses
                self._chain.decide(n == request.limit)
            self._first_full = n == request.limit
            self._try_plan()  # once the probe is back and the rows needed are known
        return keep

    def settle(self, max_rows: int) -> list[Record]:
        """The exact number of rows wanted (at most the bound the pager was made with): the
        windows are planned now, or once the first page and its probe are answered.  Returns
        the records that are now known to belong to the result (see :meth:`on_records`)."""
        self.max_rows, self._settled = max_rows, True
        self._try_plan()
        self._follow()
        return self._release()

    def on_withdrawn(self, request: PageRequest) -> None:
        """A held position page was not sent (the first page came back short)."""
        del self._inflight[request.key]
        self.stats.requests -= 1

    def on_records(self, request: PageRequest, records: list[Record]) -> list[Record]:
        """Record an answer; return the records (of this page or held from earlier ones)
        that are now known to belong to the result, each once."""
        chain = self._chain
        if chain is not None and chain.owns(request):
            del self._inflight[request.key]
            self.stats.pages += 1
            if records:
                self.cap = max(self.cap or 0, len(records))
            chain.answer(request, records)
            self._follow()
        else:
            keep = self.on_page(request, [int(r["id"]) for r in records])
            self._held += records[:keep]
            self._follow()
        return self._release()

    def _release(self) -> list[Record]:
        """The held records now known to belong to the result."""
        bound = self.final_bound()
        final = [r for r in self._held if self._sign * int(r["id"]) <= bound]
        if final:
            self._held = [r for r in self._held if self._sign * int(r["id"]) > bound]
        if self.done:
            self._held = []  # past the N-th row
        return final

    def final_bound(self) -> float:
        """Kept rows with an id up to this bound belong to the result (``-inf``: none yet;
        for a descending read, the bound is on ``-id``).

        Once :attr:`done` it is the N-th id (``inf`` when fewer rows exist); before, it stays
        below the N-th row, so that the result is complete only when every request is
        answered.
        """
        need = self.max_rows if self.done else self.max_rows - 1
        seen = 0
        bound = -math.inf
        for w in self._windows:
            if seen + len(w.ids) >= need:
                return w.ids[need - seen - 1] if need > seen else bound
            seen += len(w.ids)
            if not w.complete:
                return bound if w.cursor is None else w.cursor
            bound = math.inf if w.hi is None else w.hi
        return bound

    # -- internals ----------------------------------------------------------------------
    def _follow(self) -> None:
        """Take what the chain's answers add to the window it continues, once that window is
        planned; give the chain up when no window needs it."""
        chain = self._chain
        if chain is None or chain.broken or not self._planned:
            return
        w = next((w for w in self._windows if w.chain is chain), None)
        if w is None or w.complete:
            chain.drop()
            return
        for link in chain.follow(w.cursor, self.cap):
            ids = link.ids
            keep = len(ids) if w.hi is None else sum(1 for i in ids if i <= w.hi)
            self._open_rows += keep if w.hi is None else 0
            w.ids += ids[:keep]
            self._held += link.records[:keep]
            self.stats.rows += keep
            self.stats.dropped += len(ids) - keep
            if keep:
                w.cursor = ids[keep - 1]
            if w.hi is None:
                w.pages = max(0, w.pages - 1)
            if keep < len(ids) or link.last or (w.hi is not None and w.cursor is not None
                                                 and w.cursor >= w.hi):
                w.complete = True
                chain.drop()
                return

    def _rows(self) -> int:
        return sum(len(w.ids) for w in self._windows)

    def _more(self) -> bool:
        """Something is left to send, now or once the answers in flight are in."""
        chain = self._chain
        if (not self._settled or (self.stats.requests and self._probe_unsent)
                or (chain is not None and chain.due and self.stats.requests)):
            return True  # the plan waits for the rows wanted; the opening is sent in full
        if any(w.can_send() for w in self._windows):
            return True
        last = self._windows[-1]
        return not last.complete and self._rows() < self.max_rows

    def _work_left(self, w: _Window) -> float:
        """Pages a window still has to read (estimated), the most first."""
        if w.hi is None:
            return w.pages
        start = w.cursor if w.cursor is not None else w.lo
        page = self.cap or self.page_size
        return math.inf if start is None else (w.hi - start) / self._gap() / page

    def _gap(self) -> float:
        """The mean distance between consecutive ids read (1 before two are known)."""
        spans = [(w.ids[-1] - w.ids[0], len(w.ids) - 1) for w in self._windows if len(w.ids) > 1]
        dist = sum(s for s, _ in spans)
        steps = sum(k for _, k in spans)
        return dist / steps if steps and dist > 0 else 1.0

    def _issue(self, w: _Window) -> PageRequest:
        self._later = self._later or self._planned
        limit = self.page_size if self._planned else min(self.page_size, self._opening_rows)
        if self.descending:  # mirrored: id < -cursor AND id >= -hi
            w.inflight = PageRequest(next(self._keys), max(1, limit), descending=True,
                                     lt=_neg(w.cursor), gte=_neg(w.hi))
        else:
            w.inflight = PageRequest(next(self._keys), max(1, limit), gt=w.cursor, lte=w.hi)
        self._inflight[w.inflight.key] = w
        self.stats.requests += 1
        return w.inflight

    def _try_plan(self) -> None:
        if (not self._planned and self._settled and not self._probe_awaited
                and self._first_full is not None):
            self._plan_first(self._first_full)

    def _plan_first(self, full: bool) -> None:
        """After the first page: cut what follows into windows of whole pages.  After one
        shorter than asked that may be the server's cap (none larger seen), one page first:
        it ends the read, or shows the cap, and the windows are cut once it is answered."""
        self._planned = True
        first = self._windows[0]
        if first.complete or len(first.ids) >= self.max_rows:
            first.complete = True
            return
        first.hi, first.complete = first.cursor, True
        if not full:
            self._windows.append(_Window(first.cursor, None, first.cursor, pages=1))
            return
        chain = self._chain
        need = self.max_rows - len(first.ids)
        if self._top is not None and first.cursor is not None:  # no more rows than ids left
            left = max(1, round((self._top - first.cursor) / self._gap()))
            self.expected_rows = len(first.ids) + left
            self.expects_short = left < need
            need = min(need, left)
        self._split(first.cursor, need, wide=self.window_pages,
                    loss=0 if chain is None else chain.loss)
        self._windows[1].chain = chain

    def _extend(self) -> None:
        """Every planned request is answered and rows are missing: the last window goes on."""
        last = self._windows[-1]
        if (last.complete or not self._planned
                or (last.chain is not None and not last.chain.settled)):
            return
        need = self.max_rows - self._rows()
        if need <= 0:
            return
        pages = math.ceil(need / (self.cap or self.page_size))
        if pages < 2:
            last.pages = pages
            return
        last.hi, last.complete = last.cursor, True  # read up to its cursor: split what follows
        self._split(last.cursor, need, 1)  # the density is known well by now: pages in parallel

    def _split(self, after: int | None, need: int, least: int = MIN_WINDOW_PAGES, *,
               loss: int = 0, wide: int | None = None) -> None:
        """Windows after ``after`` for ``need`` more rows: whole pages (at least ``least``
        each; past the second, at least ``wide``), the last unbounded; the first ``loss`` rows
        shorter (its chain's)."""
        page = self.cap or self.page_size
        pages = math.ceil(need / page)
        n = pages // least
        if wide is not None:
            n = max(min(2, n), pages // wide)
        n = max(1, min(self.max_windows, n))
        # the last window also takes the rows the bounded ones leave (their slack): the
        # pages left over go to the first windows
        sizes = [pages // n + (k < pages % n) for k in range(n)]
        gap = self._gap()
        lo = after
        for k, size in enumerate(sizes):
            if k == n - 1 or lo is None:  # the rest, in whole pages
                self._windows.append(_Window(lo, None, lo, pages=max(1, math.ceil(need / page))))
                break
            rows = max(1, round(size * page * (1 - SLACK)) - (loss if k == 0 else 0))
            hi = lo + max(1, round(rows * gap))
            self._windows.append(_Window(lo, hi, lo))
            lo = hi
            need -= rows
        self.stats.windows = len(self._windows)
        self.stats.splits += 1


def _neg(key: int | None) -> int | None:
    return None if key is None else -key
