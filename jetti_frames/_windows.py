"""The exact first N records in a user order, several requests at once:
:class:`ValueWindows`, a pure state machine like :class:`~jetti_frames._top.TopPager`.

A :class:`~jetti_frames._top.TopPager` reads value ranges one after another: each range page
holds about a page of rows, and the next range starts from its last value, so a read of many
pages sends one request per round trip.  The allowance has room for more on a slow server.

* Over numbers and dates (values that seldom tie) the read is one TopPager that sends position
  pages ahead (see :mod:`~jetti_frames._positions`): they answer most of its ranges.
* Over integers (which tie in runs, where position pages seldom line up) the values are cut
  into windows read at once, as follows.

* The read starts as one TopPager (the first *lane*).  When its first range page holds no
  heavy value and leaves at least :data:`MIN_PAGES` pages to read, the values still needed
  are cut into up to :data:`~jetti_frames._bounded.WINDOWS` value windows from that page's
  density (values per row), like the id windows of a
  :class:`~jetti_frames._bounded.BoundedPager`.  The first lane reads on up to the first
  window's far end; every other window is a lane of its own, its ranges bounded by both
  ends (``$gt`` its start, ``$lte`` its end; mirrored when descending), the last one open.
* A bounded window is read to its end (at most the rows still needed); the last, open window
  for the rows its share of the pages holds.  Once every lane is done: when they hold fewer
  rows than needed and the last window did not run out, a lane goes on from its last value
  (``$gte``: its rows of that value come again and are dropped by id); when the values ran
  out, the nulls are read by id (when the order puts them last).
* The windows' ends depend on the density only: they decide which requests go out, never
  which rows come back.  A window holding many more rows than planned costs requests (it is
  read one range after another), never rows.
* Determinism: the windows are cut from the first range page's content, each lane decides
  from its own answers, and what follows the lanes from all of them once they are done, so a
  repeated read asks for the same pages and is answered from the cache.

Examples
--------
>>> import operator, random
>>> quantity = {i: (i * 7919) % 10007 // 3 for i in range(1, 2001)}  # ties in pairs
>>> OPS = {"$gt": operator.gt, "$gte": operator.ge, "$lte": operator.le,
...        "$ne": lambda v, b: True}
>>> def serve(req):
...     cond = req.where["quantity"]
...     rows = [{"id": i, "quantity": v} for i, v in quantity.items()
...             if all(OPS[op](v, b) for op, b in cond.items())] if isinstance(cond, dict) \\
...         else [{"id": i, "quantity": v} for i, v in quantity.items() if v == cond]
...     rows.sort(key=lambda r: (r["quantity"], random.random()))
...     return rows[:req.limit]
>>> read = ValueWindows("quantity", 900, 100, kind="integer", parallel=4)
>>> while not read.done:
...     for req in read.next_requests():
...         read.on_page(req, serve(req))
>>> [r["id"] for r in read.result()] == sorted(quantity, key=lambda i: (quantity[i], i))[:900]
True
>>> read.lanes
4
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from itertools import count
from typing import Any

from ._bounded import MIN_WINDOW_PAGES, SLACK, WINDOWS
from ._pages import PageRequest, PagerStats, Record
from ._top import TopPager
from .schema import order_key
from .settings import DEFAULT_PAGE_SIZE

__all__ = ["MIN_PAGES", "ValueWindows"]

#: Windows are cut only when the first range page leaves at least this many pages to read.
MIN_PAGES = 2 * MIN_WINDOW_PAGES
#: The attribute kinds read with position pages (see :mod:`~jetti_frames._positions`).
POSITION_KINDS = ("number", "datetime")


class ValueWindows:
    """The exact first ``max_rows`` records in a one-attribute order, by value windows read
    at once (see the module docstring); the same interface as
    :class:`~jetti_frames._top.TopPager`.

    Parameters
    ----------
    attribute, max_rows, page_size, descending, nulls_first, keep, parallel, few_values
        As for :class:`~jetti_frames._top.TopPager`.
    kind : str
        The attribute's kind: ``number`` and ``datetime`` are read with position pages,
        ``integer`` in value windows, others as one lane.
    """

    def __init__(self, attribute: str, max_rows: int, page_size: int = DEFAULT_PAGE_SIZE, *,
                 kind: str, descending: bool = False, nulls_first: bool = False,
                 keep: Callable[[Record], bool] | None = None, parallel: int = 1,
                 few_values: bool = False) -> None:
        self.attribute = attribute
        self.max_rows = max_rows
        self.page_size = page_size
        self.descending = descending
        self.nulls_last = not nulls_first
        self.parallel = parallel
        self.cap: int | None = None
        #: Over numbers and dates (values seldom tie) position pages answer most ranges.
        positions = kind if kind in POSITION_KINDS and not few_values else None
        self._lanes = [TopPager(attribute, max_rows, page_size, descending=descending,
                                nulls_first=nulls_first, keep=keep, parallel=parallel,
                                few_values=few_values, positions=positions)]
        #: Windows may still be cut (once, from the first lane's first range page).
        self._cutting = keep is None and kind == "integer"
        self._owner: dict[int, tuple[TopPager, PageRequest]] = {}
        self._keys = count()
        self._requests = 0
        self._nulls_read = False

    # -- public -------------------------------------------------------------------------
    @property
    def lanes(self) -> int:
        """How many lanes the read has used."""
        return len(self._lanes)

    @property
    def stats(self) -> PagerStats:
        total = PagerStats(requests=self._requests)
        for lane in self._lanes:
            total.pages += lane.stats.pages
            total.wasted += lane.stats.wasted
            total.rows += lane.stats.rows
        return total

    @property
    def done(self) -> bool:
        return all(lane.done for lane in self._lanes) and self._after() is None

    @property
    def in_flight(self) -> int:
        return len(self._owner)

    @property
    def draining(self) -> bool:
        return all(lane.draining for lane in self._lanes)

    @property
    def estimated_pages(self) -> int | None:
        return None

    def result(self) -> list[Record]:
        """The rows known so far, in the final order (all of them once :attr:`done`)."""
        out: list[Record] = []
        for lane in self._lanes:
            rows = lane.result()
            seen = {r["id"] for r in out[-len(rows):]} if out else set()
            out += [r for r in rows if r["id"] not in seen]  # a lane that goes on re-reads
            if not lane.done or len(out) >= self.max_rows:
                break
        return out[:self.max_rows]

    def next_requests(self) -> list[PageRequest]:
        """Requests to send now: each lane's, in order, within ``parallel``."""
        if all(lane.done for lane in self._lanes):
            self._lanes += self._after(make=True) or []
        out: list[PageRequest] = []
        for lane in self._lanes:
            if lane.cap is None and self.cap is not None:
                lane.cap = self.cap
            lane.parallel = max(1, self.parallel - (self.in_flight - lane.in_flight))
            for inner in lane.next_requests():
                outer = replace(inner, key=next(self._keys))
                self._owner[outer.key] = (lane, inner)
                self._requests += 1
                out.append(outer)
        return out

    def on_withdrawn(self, request: PageRequest) -> None:
        lane, inner = self._owner.pop(request.key)
        self._requests -= 1
        lane.on_withdrawn(inner)

    def on_records(self, request: PageRequest, records: list[Record]) -> list[Record]:
        """Record an answer (see :meth:`on_page`); the rows come with :meth:`result`."""
        self.on_page(request, records)
        return []

    def on_page(self, request: PageRequest, records: list[Record]) -> None:
        """Record the answer to ``request``."""
        lane, inner = self._owner.pop(request.key)
        lane.on_page(inner, records)
        if lane.cap is not None:
            self.cap = max(self.cap or 0, lane.cap)
        if self._cutting and lane is self._lanes[0]:
            self._cut()

    # -- internals ----------------------------------------------------------------------
    def _cut(self) -> None:
        """Cut the values after the first lane's first range page into windows, once that
        page is read and it held no heavy value (or never, when it did)."""
        first = self._lanes[0]
        start, page = first.pending_from, first.progress_page
        if start is None or page is None:
            self._cutting = not first.ranges_read  # else the first range page said otherwise
            return
        self._cutting = False
        left = self.max_rows - len(first.result())
        if math.ceil(left / self.page_size) >= MIN_PAGES:
            self._lanes += self._windows(first, start, page, left, MIN_WINDOW_PAGES)

    def _windows(self, first: TopPager, start: Any, page: list[Record], left: int,
                 least: int) -> list[TopPager]:
        """Lanes for the ``left`` rows from ``start`` on, in windows of at least ``least``
        pages cut by the density of ``page`` (values in order); ``first`` reads the first
        window.  None when the values do not tell a density."""
        pages = math.ceil(left / self.page_size)
        low, high = (order_key(page[k].get(self.attribute), "number") for k in (0, -1))
        at = order_key(start, "number")
        n = min(WINDOWS, pages // least)
        if n < 2 or low is None or high is None or at is None or low == high:
            return []
        step = (high - low) / (len(page) - 1)  # value per row (< 0 descending)
        sizes = [pages // n + (k < pages % n) for k in range(n)]
        ends: list[Any] = []
        planned = 0
        for size in sizes[:-1]:
            rows = round(size * self.page_size * (1 - SLACK))
            at += rows * step
            end = _value(at, up=not self.descending)
            if end is None or (ends and end == ends[-1]) or end == start:
                break
            ends.append(end)
            planned += rows
        if not ends:
            return []
        far, near = ("$gte", "$lt") if self.descending else ("$lte", "$gt")
        first.close_at({far: ends[0]})
        lanes = []
        for lo, hi in zip(ends, [*ends[1:], None], strict=True):
            bound = {} if hi is None else {far: hi}
            # the open window: the rows left over, in whole pages (costs no request)
            rows = left if hi is not None else self.page_size * math.ceil(
                max(1, left - planned) / self.page_size)
            lanes.append(TopPager(
                self.attribute, rows, self.page_size, descending=self.descending,
                parallel=self.parallel, first={near: lo}, bound=bound, nulls="none"))
        return lanes

    def _after(self, *, make: bool = False) -> list[TopPager] | None:
        """Once every lane is done: the lanes that go on (``None``: the read is done); made
        only with ``make`` (else an empty list says some are due).  The values from the last
        one on, cut into windows again by the last lane's density; or the nulls."""
        if not all(lane.done for lane in self._lanes) or len(self._lanes) == 1:
            return None
        rows = self.result()
        last = self._lanes[-1]
        if len(rows) >= self.max_rows or self._nulls_read:
            return None
        if len(last.result()) < last.max_rows:  # the values ran out
            if not self.nulls_last:
                return None
            if not make:
                return []
            self._nulls_read = True
            return [TopPager(self.attribute, self.max_rows - len(rows), self.page_size,
                             descending=self.descending, parallel=self.parallel,
                             nulls="only")]
        if not make:
            return []
        value = rows[-1].get(self.attribute)
        again = sum(1 for r in last.result() if r.get(self.attribute) == value)
        near = "$lte" if self.descending else "$gte"
        left = self.max_rows - len(rows)
        lane = TopPager(self.attribute, left + again, self.page_size,
                        descending=self.descending, parallel=self.parallel,
                        first={near: value}, nulls="none")
        return [lane, *self._windows(lane, value, last.result(), left, 1)]


def _value(x: float, *, up: bool) -> int | None:
    """A window end: an integer, rounded away from the start."""
    if not math.isfinite(x):
        return None
    return math.floor(x) if up else math.ceil(x)
