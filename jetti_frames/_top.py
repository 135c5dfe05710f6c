"""The exact first N records in a one-attribute order: :class:`TopPager`, a pure state
machine like :class:`~jetti_frames.paging.Pager`.

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
  parallel: two for a few pages, since the range page spent up to a page on the run and each
  window boundary may cost one more; the four of a plain read once each holds
  :data:`HEAVY_WINDOW_PAGES` pages, and then the value's highest id is asked for with its
  first page, so that the windows stay within its ids when it holds fewer rows than needed).
  After a range page as full as asked, the value's first page goes out with position pages
  (``ahead``: ordered by the unique id, used only where they overlap, see
  :mod:`~jetti_frames._chain`; held until that page is answered, and withdrawn when it comes
  back short, so that they go out or not whatever room the other reads leave), so that the
  round trip after the range answer carries more than one request.  The next range starts
  after the value (``$gt``) and is sent only once the value's ids run out in its last
  (unbounded) window while its pages read without an upper id bound hold fewer rows than
  needed
  (:attr:`~jetti_frames._bounded.BoundedPager.ended_short`): a value that holds the rows
  needed costs no range after it.  Otherwise the next range starts *at* the last value
  (``$gte``), which reads that value's rows again, all of them first.  ``limit`` is the
  rows still needed plus one, so the last page usually proves the N-th row final.
* The heavy value after a heavy one starts early: the range after the first goes out once its
  highest id says it holds fewer rows than needed
  (:attr:`~jetti_frames._bounded.BoundedPager.expects_short`), and a range page that is one
  value, as full as asked, prepares that value's read at once.  Sized from the most rows
  wanted after the first value (or what its highest id leaves), its first page, probe and
  position pages fill the slots the first value leaves; its windows wait for the first value's
  count (:meth:`~jetti_frames._bounded.BoundedPager.settle`).
* ``few_values`` (an integer, boolean or enum attribute): the first range goes with a position
  page (``from=1``, held until the range page is in).  When it goes on with the range page's
  last value for more than half a page in all, that value is read by id at once, without a
  range at it first.
* ``positions`` (a number or a date attribute): position pages go ahead of the read (see
  :mod:`~jetti_frames._positions`); each range after the first is answered by the next one
  when that page is exactly such an answer, else sent.
* Nulls (``$eq: null``) are read by id keyset, first or last as ``nulls_first`` says,
  whatever the server's default is; ``id`` is never null and never ties.
* ``first``, ``bound`` and ``nulls`` make a pager one lane of a
  :class:`~jetti_frames._windows.ValueWindows` read: one value window, or the nulls alone.
* Rows that tie are put in id order, so the result is the first N by ``(attribute, id)``.
* Determinism: each decision uses only answers whose content it depends on (a range answer
  is used once every segment before it is known exactly; the range after a heavy value is
  decided by the contents of pages followed one after another, and sent even once the
  rows are known), so the same data always sends the same requests and a repeated read is
  answered from the HTTP cache.  A range after a heavy value turns out unneeded only when the
  value's other windows hold the rows its last one lacked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import count, groupby
from typing import Any

from ._bounded import MIN_WINDOW_PAGES, WINDOWS, BoundedPager
from ._hold import Hold
from ._pages import PageRequest, PagerStats, Record, check_sizes
from ._positions import behind, continuation, plan
from .paging import Pager
from .settings import DEFAULT_PAGE_SIZE

__all__ = ["TopPager"]

#: A heavy value's id windows past the second hold at least this many pages: each boundary
#: may cost a page that is not full, and the range request before it already spent one (a
#: value read in 9 pages gets two windows, one read in 16 or more the four of any bounded read).
HEAVY_WINDOW_PAGES = 4
#: Position pages that add nothing, one after another, after which no more are sent (``from``
#: ignored, or a value that fills many pages).
UNUSED_POSITIONS = 2


@dataclass(eq=False)
class _Keyset:
    """The first ``need`` records of one value of the order attribute (or its nulls) in id
    order: a :class:`~jetti_frames._bounded.BoundedPager` (windows in parallel), or, with a
    post-filter, a sequential :class:`Pager` over every record of the value."""

    where: dict[str, Any]
    pager: Pager | BoundedPager
    need: int
    rows: list[Record] = field(default_factory=list)
    #: The range after a heavy value, sent once the value shows its end (if it does).
    then: _Range | None = None

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
    #: Decided by an answer's content alone: sent even once the rows are known.
    due: bool = False
    #: The rows wanted from the range on, as far as known when it is sent (after a value
    #: read by windows, what its highest id leaves): sizes the read of a heavy value it finds
    #: before the rows before it are counted.
    upper: int = 0
    #: Send a position page with it (``from=1``): whether the first page's trailing value
    #: is heavy shows one round trip sooner.  Held until the range page is answered.
    ahead: bool = False
    hold: Hold | None = None
    #: The position page's answer (``[]`` once it is known not to be needed).
    next_page: list[Record] | None = None


@dataclass(frozen=True)
class _Position:
    """The ``index``-th position page of a read."""

    index: int


@dataclass(eq=False)
class _Positions:
    """The position pages of a read (see :mod:`~jetti_frames._positions`): page ``k`` is sent
    once page ``k - WINDOWS`` is used or given up, and each is used in turn as the answer to
    the range the read asks next, when it is one."""

    where: dict[str, Any]
    plan: Iterator[tuple[int, int]]
    #: How the attribute's values compare (:func:`~jetti_frames.schema.order_key`).
    kind: str
    hold: Hold = field(default_factory=Hold)
    #: The next page of the plan to send (None: the plan is done).
    upcoming: tuple[int, int] | None = None
    sent: int = 0
    answers: dict[int, list[Record]] = field(default_factory=dict)
    #: The first page not yet used or given up.
    next: int = 0
    unused: int = 0  # given up one after another
    #: No page from this index on is sent (set once: the pages due when it is set stay due,
    #: so that which pages are sent does not depend on when answers came).
    end: int | None = None

    def __post_init__(self) -> None:
        self.upcoming = next(self.plan, None)

    @property
    def due(self) -> bool:
        last = self.next + WINDOWS if self.end is None else min(self.end, self.next + WINDOWS)
        return self.upcoming is not None and self.sent < last

    def stop(self, end: int) -> None:
        """Send no page from ``end`` on (the first call decides)."""
        if self.end is None:
            self.end = end

    @property
    def waiting(self) -> bool:
        """A page that may answer the next range is still to come (sent, or due and sent
        once a request in flight is answered)."""
        return self.next < self.sent or self.due

    def issue(self) -> tuple[int, int]:
        """The next page of the plan, as it is sent."""
        assert self.upcoming is not None
        page, self.upcoming = self.upcoming, next(self.plan, None)
        self.sent += 1
        return page


class TopPager:
    """The exact first ``max_rows`` records in a one-attribute order, by value ranges.

    A pure state machine like :class:`~jetti_frames.paging.Pager` (see the module docstring
    for the strategy), fed
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
    few_values : bool
        The attribute is of a kind with few distinct values (an integer, a boolean, an
        enum): the first range page goes with a position page (held until it is answered),
        which shows one round trip sooner whether the page's last value is heavy.
    first, bound : dict, optional
        One value window of a :class:`~jetti_frames._windows.ValueWindows` read: the first
        range's condition on the attribute (``{"$ne": None}`` by default), and conditions
        added to every range (the window's far end).
    nulls : str
        ``"order"``: the nulls where the order puts them; ``"none"``: no nulls (a window);
        ``"only"``: the nulls alone, by id (after the last window).
    positions : str, optional
        The attribute's kind (``"number"`` or ``"datetime"``, which says how its values
        compare): send position pages ahead (see :mod:`~jetti_frames._positions`), up to the
        ``max_rows``-th row, :data:`~jetti_frames._bounded.WINDOWS` ahead of the ones used:
        for an attribute whose values seldom tie (a number, a date), where they answer most
        ranges, so that a slow server's round trips carry several requests.  The first ones
        are held until the first range page is answered, and none are sent after it comes
        back shorter than asked.

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
                 keep: Callable[[Record], bool] | None = None, parallel: int = 1,
                 few_values: bool = False, first: dict[str, Any] | None = None,
                 bound: dict[str, Any] | None = None, nulls: str = "order",
                 positions: str | None = None) -> None:
        check_sizes(page_size, max_rows, parallel)
        self.attribute = attribute
        self.max_rows = max_rows
        self.page_size = page_size
        self.descending = descending
        self.unique = unique
        self.nulls_last = not nulls_first and not unique and nulls == "order"
        self.bound = dict(bound or {})
        #: The range page that set the pending range going on from its last value (a
        #: :class:`~jetti_frames._windows.ValueWindows` cuts its windows from it).
        self.progress_page: list[Record] | None = None
        self.ranges_read = 0  # range pages used so far
        self.keep = keep
        self.parallel = parallel
        self.cap: int | None = None  # the largest range page seen
        self.stats = PagerStats()
        self._rows: list[Record] = []
        self._keys = count()
        self._owner: dict[int, tuple[_Keyset | _Range | _Position, PageRequest | None]] = {}
        self._finished = max_rows == 0
        self._head = (None if unique or not nulls_first or nulls != "order"
                      else self._keyset(None, max_rows))
        self._boundary: _Keyset | None = None
        #: The heavy value that fills the range after the boundary, its first page out early.
        self._next: _Keyset | None = None
        self._spare: list[_Keyset] = []  # prepared and not needed: their opening still goes
        self._tail: _Keyset | None = None
        where = {} if unique else {attribute: {**(first or {"$ne": None}), **self.bound}}
        limit = self._limit(max_rows + (not unique))
        ahead = (few_values and keep is None and not unique and limit == page_size
                 and max_rows > 2 * limit)
        self._first = _Range(where, limit, upper=max_rows, ahead=ahead)
        self._range: _Range | None = self._first
        self._positions = (
            _Positions(where, plan(limit, max_rows), positions)
            if positions is not None and keep is None and not unique and not ahead
            and not self.bound and first is None and nulls == "order" and max_rows >= limit
            else None)
        if nulls == "only":
            self._range, self._tail = None, self._keyset(None, max_rows)

    # -- public -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the first ``max_rows`` are known and no request is in flight."""
        return (self._finished and not self._owner and not self._due()
                and all(seg.pager.done for seg in self._spare)
                and (self._positions is None or not self._positions.due))

    @property
    def in_flight(self) -> int:
        return len(self._owner)

    @property
    def draining(self) -> bool:
        """Nothing known to be needed is left unsent."""
        if self._positions is not None and self._positions.due:
            return False
        if self._finished:
            return not self._due()
        if self._range is not None and not self._range.sent:
            return False
        return all(seg is None or seg.satisfied or seg.pager.draining
                   for seg in (self._head, self._boundary, self._next, self._tail, *self._spare))

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
        early = [seg for seg in (self._next, *self._spare) if seg is not None]
        for seg in (self._head, self._boundary, self._tail, *early):
            if seg is not None and (seg in early or (not seg.satisfied and not self._finished)):
                if isinstance(seg.pager, BoundedPager):
                    others = self._keyset_flight - seg.pager.in_flight + len(out)
                    seg.pager.parallel = max(1, self.parallel - others)
                    if seg is self._next:
                        seg.pager.parallel = self._next_room()
                for inner in seg.pager.next_requests():
                    out.append(self._send(replace(inner, key=next(self._keys),
                                                  where=seg.where), seg, inner))
        r = self._range
        if (r is not None and not r.sent and (r.due or not self._finished)
                and self._supply(r) == "send"):
            r.sent = True
            r.hold = Hold() if r.ahead else None
            decides = self._positions.hold if r is self._first and self._positions else r.hold
            out.append(self._send(PageRequest(next(self._keys), r.limit, where=r.where,
                                              by_order=True, decides=decides), r, None))
            if r.hold is not None:  # positions limit - 1 to 2 (limit - 1) - 1: from the
                # range page's last
                page = PageRequest(next(self._keys), r.limit - 1, where=r.where, by_order=True,
                                   page=1, hold=r.hold)
                out.append(self._send(page, r, page))
        return out + self._issue_positions()

    def _issue_positions(self) -> list[PageRequest]:
        """The position pages due, once the first range is sent, within ``parallel`` (and
        all of them once the read is finished: each went due on an answer's content)."""
        p = self._positions
        if p is None or not self._first.sent:
            return []
        pages: list[PageRequest] = []
        while p.due and (self._finished or self.in_flight < self.parallel):
            index, held = p.sent, p.hold if p.sent < WINDOWS else None
            frm, limit = p.issue()
            pages.append(self._send(PageRequest(next(self._keys), limit, where=p.where,
                                                by_order=True, page=frm, hold=held),
                                    _Position(index), None))
        return pages

    def _supply(self, r: _Range) -> str:
        """Answer the range ``r`` with the next position page when that page is such an
        answer: ``"used"``, ``"wait"`` (the page is not in yet) or ``"send"`` (send ``r``).
        A page that adds nothing is given up; one that starts too late stays for a later
        range."""
        p = self._positions
        if p is None or r is self._first:
            return "send"
        (op, start), = r.where[self.attribute].items()
        inclusive = op in ("$gte", "$lte")
        while p.waiting:
            records = p.answers.get(p.next)
            if records is None:
                return "wait"
            rows = continuation(records, self.attribute, start, inclusive=inclusive,
                                descending=self.descending, kind=p.kind)
            if rows is not None:
                del p.answers[p.next]
                p.next, p.unused = p.next + 1, 0
                r.sent, r.records, r.limit = True, rows, len(rows)
                return "used"
            if not behind(records, self.attribute, start, descending=self.descending,
                          kind=p.kind):
                return "send"  # it starts after the range does: for a later range, maybe
            del p.answers[p.next]  # it ends where the range starts: nothing to add
            p.next, p.unused = p.next + 1, p.unused + 1
            self.stats.wasted += 1
            if p.unused >= UNUSED_POSITIONS:
                p.stop(p.next + WINDOWS)
        return "send"

    @property
    def _keyset_flight(self) -> int:
        """Requests in flight other than position pages, which take no room from the keyset
        reads (whose pages then do not depend on when position pages are answered)."""
        return sum(not isinstance(seg, _Position) for seg, _ in self._owner.values())

    def _next_room(self) -> int:
        """How many requests the prepared value may have in flight: once the boundary has
        every request out, what it leaves; before, one at a time in the slots it cannot
        fill (its windows wait for the boundary's count, which comes with its last answer)."""
        assert self._next is not None
        before = self._boundary.pager if self._boundary is not None else None
        mine = self._next.pager.in_flight
        if not isinstance(before, BoundedPager) or before.ending:
            return max(1, self.parallel - (self._keyset_flight - mine))
        if before.draining and before.in_flight < self.parallel - 1:
            return 1
        return mine

    def on_withdrawn(self, request: PageRequest) -> None:
        """A held position page was not sent: the range page, or the first page of a value's
        read by id, did not need it."""
        r, inner = self._owner.pop(request.key)
        self.stats.requests -= 1
        if isinstance(r, _Keyset):  # a position page of a value's read by id
            assert inner is not None and isinstance(r.pager, BoundedPager)
            r.pager.on_withdrawn(inner)
            self._advance()
            return
        if isinstance(r, _Position):
            assert self._positions is not None
            self._positions.answers[r.index] = []
            return
        assert isinstance(r, _Range)
        r.next_page = []

    def on_records(self, request: PageRequest, records: list[Record]) -> list[Record]:
        """Record an answer (see :meth:`on_page`); the rows come with :meth:`result`."""
        self.on_page(request, records)
        return []

    def on_page(self, request: PageRequest, records: list[Record]) -> None:
        """Record the answer to ``request`` (its records, as returned)."""
        seg, inner = self._owner.pop(request.key)
        self.stats.pages += 1
        if isinstance(seg, _Position):
            assert self._positions is not None
            self._positions.answers[seg.index] = list(records)
            if self._finished:
                self.stats.wasted += 1
        elif isinstance(seg, _Range) and inner is not None:  # its position page
            seg.next_page = list(records) if seg.hold is None or not seg.hold.withdrawn else []
            if self._finished:
                self.stats.wasted += 1
        elif isinstance(seg, _Range):
            seg.records = list(records)
            if records:
                self.cap = max(self.cap or 0, len(records))
            if seg is self._first and self._positions is not None:
                # a page shorter than asked: the end of the rows, or a cap (then the
                # positions would not line up)
                wanted = len(records) == seg.limit
                if not wanted:
                    self._positions.stop(self._positions.sent)
                self._positions.hold.decide(wanted)
            if seg.hold is not None:
                light = self._light(seg)
                seg.hold.decide(light)
                if not light:
                    seg.next_page = []  # its answer, if it went out anyway, is not used
            # a heavy value's read starts as soon as it fills a range page, needed or not
            prepared = self._prepare(seg)
            if self._finished:
                self._drop(prepared)
                self.stats.wasted += 1
            else:
                self._next = prepared
        elif seg in self._spare:
            assert inner is not None and isinstance(seg.pager, BoundedPager)
            seg.pager.on_records(inner, records)
            self.stats.wasted += 1
        elif self._finished:
            self.stats.wasted += 1
        elif isinstance(seg.pager, BoundedPager):
            assert inner is not None
            seg.rows += seg.pager.on_records(inner, records)
            if seg.then is not None and (seg.pager.ended_short or seg.pager.expects_short):
                # the value ended in its last window, or its highest id says it will: it may
                # hold fewer rows than needed
                self._range = self._after(seg)
                self._range.due = True
        else:
            assert inner is not None
            n = seg.pager.on_page(inner, [int(r["id"]) for r in records])
            kept = [r for r in records[:n] if self._kept(r)]
            seg.rows += kept[:max(0, seg.need - len(seg.rows))]
        self._advance()

    # -- internals ----------------------------------------------------------------------
    def _send(self, request: PageRequest, seg: _Keyset | _Range | _Position,
              inner: PageRequest | None) -> PageRequest:
        self._owner[request.key] = (seg, inner)
        self.stats.requests += 1
        return request

    def _due(self) -> bool:
        """A range decided by an answer alone is still to be sent."""
        return self._range is not None and self._range.due and not self._range.sent

    def _after(self, seg: _Keyset) -> _Range:
        """The range after a heavy value, taken from it: sized, like the value's read, from
        what its highest id leaves when it was asked for (whenever the range is taken, so that
        its requests do not depend on when the value's answers came)."""
        r, seg.then = seg.then, None
        assert r is not None
        expected = seg.pager.expected_rows if isinstance(seg.pager, BoundedPager) else None
        if expected is not None:
            r.upper = max(1, min(r.upper, seg.need - expected))
        return r

    def _kept(self, record: Record) -> bool:
        return self.keep is None or self.keep(record)

    def _limit(self, wanted: int) -> int:
        """A range's ``limit``: the rows still wanted (all of a page with a post-filter)."""
        return self.page_size if self.keep is not None else max(1, min(self.page_size, wanted))

    def _keyset(self, value: Any, need: int, window_pages: int = MIN_WINDOW_PAGES,
                ahead: bool = False, probe: bool = False) -> _Keyset:
        pager: Pager | BoundedPager
        if self.keep is None:
            pager = BoundedPager(self.page_size, need, parallel=self.parallel,
                                 window_pages=window_pages, ahead=ahead, hold=ahead,
                                 probe=probe)
        else:  # how many rows a page keeps is known only once read: one page at a time
            pager = Pager(self.page_size, probe=False)
        pager.cap = self.cap
        return _Keyset({self.attribute: value}, pager, need)

    def _take(self, rows: list[Record]) -> None:
        self._rows += rows
        if len(self._rows) >= self.max_rows:
            self._finished = True
            self._drop(self._next)
            self._next = None

    def _drop(self, prepared: _Keyset | None) -> None:
        """A prepared value is not read after all: its opening is still sent (an answer's
        content decided it), its answers ignored."""
        if prepared is not None:
            assert isinstance(prepared.pager, BoundedPager)
            prepared.pager.settle(0)
            self._spare.append(prepared)

    def _cond(self, op: str, value: Any) -> dict[str, Any]:
        """A range's condition: ``op value`` on the attribute, within the bound."""
        return {self.attribute: {op: value, **self.bound}}

    @property
    def pending_from(self) -> Any:
        """The value the next range starts at, while it goes on from a range page that held
        no heavy value and is not sent yet (else ``None``)."""
        r = self._range
        if (r is None or r.sent or self._boundary is not None or self._head is not None
                or self._finished or self.progress_page is None):
            return None
        return self.progress_page[-1].get(self.attribute)

    def close_at(self, bound: dict[str, Any]) -> None:
        """Read no further than ``bound`` (a window's far end), nulls aside: the ranges from
        the next one on carry it."""
        self.bound.update(bound)
        self.nulls_last = False
        assert self._range is not None and not self._range.sent
        self._range.where = {self.attribute: {**self._range.where[self.attribute], **bound}}

    def _trailing(self, records: list[Record]) -> int:
        """How many rows at the end of ``records`` share the last one's value."""
        n, run = len(records), 0
        last = records[-1].get(self.attribute) if records else None
        while not self.unique and run < n and records[n - 1 - run].get(self.attribute) == last:
            run += 1
        return run

    def _light(self, r: _Range) -> bool:
        """The range page came back as full as asked, its trailing value within half of it:
        whether that value is heavy is for its position page to say."""
        records = r.records or []
        n = len(records)
        run = self._trailing(records)
        return n == r.limit and run < n and 2 * run <= self.page_size

    def _heavy_after(self, r: _Range, last: Any, run: int) -> bool:
        """The position page after the range page goes on with its trailing value for more
        than half a page in all (a guess: positions move when rows come or go, and either way
        the rows read are exact)."""
        page = r.next_page or []
        lead = next((k for k, rec in enumerate(page) if rec.get(self.attribute) != last),
                    len(page))
        return lead > 0 and 2 * (run + lead - 1) > self.page_size

    def _prepare(self, r: _Range) -> _Keyset | None:
        """A range that came back as one value, as full as asked: that value is heavy, and
        its read is sized from the most rows wanted from the range on (``r.upper``), known
        when the range was made, then settled to the rows wanted.  So the range after a
        boundary prepares it as soon as it is answered: its first page (with its probe and
        position pages) fills the slots the boundary leaves, its windows wait for the
        boundary's count, and its requests are the same whichever comes first."""
        records = r.records or []
        if (self.keep is not None or self.unique or not records or len(records) < r.limit
                or records[0].get(self.attribute) != records[-1].get(self.attribute)):
            return None
        value = records[0].get(self.attribute)
        wide = r.upper >= 3 * HEAVY_WINDOW_PAGES * self.page_size
        pager = BoundedPager(self.page_size, r.upper, parallel=self.parallel,
                             window_pages=HEAVY_WINDOW_PAGES, ahead=True, hold=True,
                             probe=wide, settled=False)
        pager.cap = self.cap
        return _Keyset({self.attribute: value}, pager, r.upper)

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
                    if seg.then is not None and not self._finished:  # read a page at a time
                        self._range = self._after(seg)
            elif self._range is not None:
                r = self._range
                if not r.sent:
                    self._supply(r)
                if r.records is None or (r.ahead and r.next_page is None):
                    return
                self._on_range(r)
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
        self.progress_page = None
        self.ranges_read += 1
        prepared, self._next = self._next, None
        records = r.records or []
        n = len(records)
        last = records[-1].get(self.attribute) if records else None
        if prepared is not None and prepared.where != {self.attribute: last}:
            self._drop(prepared)
            prepared = None
        if n == 0 or n < min(r.limit, self.cap or 0):  # the rest of the range: all final
            self._drop(prepared)
            self._take(self._in_order(records))
            if not self._finished and self.nulls_last:
                self._tail = self._keyset(None, self.max_rows - len(self._rows))
            return
        run = self._trailing(records)  # the rows equal to the last value: not final
        self._take(self._in_order(records[:n - run]))
        if self._finished:
            self._drop(prepared)
            return
        left = self.max_rows - len(self._rows)
        after, at = ("$lt", "$lte") if self.descending else ("$gt", "$gte")
        if run < n and 2 * run <= self.page_size and not self._heavy_after(r, last, run):
            self._drop(prepared)
            # progress: start the next range at the last value, which it reads again
            self._range = _Range(self._cond(at if run else after, last),
                                 self._limit(left + 1 if run else left), upper=left)
            self.progress_page = records
            return
        # a heavy value (the whole page, or more than half a full one): read it by id, in
        # wider windows than a plain read (the range page spent up to a page on the run),
        # its first page with position pages when the range page came back as full as asked
        # (a shorter one may be the end of the rows: few rows, and no page to fill); with
        # more than two windows, a probe for the value's highest id keeps the windows within
        # its ids when it holds fewer rows than needed (else some come back empty)
        if prepared is not None:  # a whole page of the value: sized now
            assert isinstance(prepared.pager, BoundedPager)
            prepared.rows += prepared.pager.settle(left)
            prepared.need = left
            self._boundary = prepared
        else:
            wide = left >= 3 * HEAVY_WINDOW_PAGES * self.page_size
            self._boundary = self._keyset(last, left, HEAVY_WINDOW_PAGES, ahead=n == r.limit,
                                          probe=wide)
        # the value has at least ``run`` rows (which of them came back is chance: with a
        # post-filter nothing certain is known about how many it keeps); the range after it
        # waits until the value's read reaches the value's end, which it seldom does when
        # the value holds the rows needed
        known = 0 if self.keep is not None else run
        if known < left:
            self._boundary.then = _Range(self._cond(after, last),
                                         self._limit(left - known + 1), upper=left - known)

