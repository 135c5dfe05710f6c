"""Several pagers driven as one: :func:`open_streams` and :class:`Fanout`.

A read split into several parts (long ``$in`` lists) has one pager per part, a :class:`Stream`:
a :class:`~jetti_frames.paging.Pager`, a :class:`~jetti_frames._bounded.BoundedPager` (the first
N by id) or a :class:`~jetti_frames._top.TopPager` (the first N in a user order).  The
fan-out shares one in-flight budget between them (asked of ``budget()`` each round, e.g. the
transport's ``in_flight_target``), keeps the keys of their requests apart, shares what the
server's page cap is known to be, and adds the ``late`` streams (the consistency pass) as soon
as every other request has been sent.

The cap is shared once, from the *opening*: the first answer of every part.  A page shorter
than asked is the end of its part or the server's cap, and a part that does not know the cap
asks once more to tell.  So an answer shorter than a page that comes before the opening is
complete waits for it (:meth:`Fanout.released` hands its records on), and every part then
learns the largest first page.  What a part learns from the others is therefore the same in
any order of answers, and a repeated read asks for the same pages (it used to depend on which
answer came first).

This module is the one owner of a pager's ``parallel``: :func:`open_streams` starts each pager
at the budget (above 1, each pager probes, whatever room it gets later) and :class:`Fanout`
hands out the room left each round.  A pager's request set depends only on whether its
``parallel`` exceeded 1 when it was made (see :mod:`jetti_frames.paging`), so the budget
changes timing, never which pages are read.

Examples
--------
>>> rows = list(range(1, 501))
>>> def serve(req):
...     ids = [i for i in rows if (req.gt is None or i > req.gt)
...            and (req.lte is None or i <= req.lte)]
...     return sorted(ids, reverse=req.descending)[:req.limit]
>>> fanout = Fanout(open_streams([{"a": 1}, {"a": 2}], 100, budget=4), lambda: 4)
>>> got = []
>>> while not fanout.done:
...     for req in fanout.next_requests():
...         got += fanout.on_records(req, [{"id": i} for i in serve(req)])
...         got += [r for _, final in fanout.released() for r in final]
...         _ = fanout.answered(req)
>>> len(got) == 2 * len(rows)
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from itertools import count
from typing import Any

from ._bounded import BoundedPager
from ._pack import listed_ids
from ._pages import PageRequest, Record
from ._top import TopPager
from ._windows import ValueWindows
from .paging import Pager

__all__ = ["Fanout", "Stream", "at_most", "open_streams"]


@dataclass
class Stream:
    """One pager over one part of the query, inside a :class:`Fanout`."""

    part: dict[str, Any]
    pager: Pager | BoundedPager | TopPager | ValueWindows
    #: Set on the streams of the consistency pass: which of their records belong to the result.
    member: Callable[[Any], bool] | None = None


class Fanout:
    """Several pagers driven as one, so that split ``$in`` chunks run in parallel too.

    Parameters
    ----------
    streams : list of Stream
        The pagers (from :func:`open_streams`).
    budget : callable
        How many requests may be in flight in total, asked each round.
    late : callable, optional
        Asked for more streams once every pager has sent all it knows it needs (once it
        returns some, never again).
    """

    def __init__(self, streams: list[Stream], budget: Callable[[], int],
                 late: Callable[[], list[Stream]] | None = None) -> None:
        self.streams = streams
        self.budget = budget
        self.late = late
        self._keys = count()
        self._owner: dict[int, tuple[Stream, PageRequest]] = {}
        self._answered: dict[int, tuple[Stream, PageRequest]] = {}
        # the opening: the parts whose first answer is awaited (one part learns nothing; the
        # late streams take no part: their answers never wait)
        self._parts = {id(s) for s in streams} if len(streams) > 1 else set()
        self._awaiting = {id(s) for s in streams if id(s) in self._parts and not s.pager.done}
        self._unsent = set(self._awaiting)  # awaited parts that have not asked yet
        self._first_keys: dict[int, Stream] = {}  # the first request of each awaited part
        self._opening_cap = 0
        self._waiting: list[tuple[Stream, PageRequest, list[Record]]] = []
        self._released: list[tuple[Stream, list[Record]]] = []

    @property
    def done(self) -> bool:
        return all(s.pager.done for s in self.streams)

    def next_requests(self) -> list[PageRequest]:
        budget = self.budget()
        out = self._collect([], budget)
        if self.late is not None and len(self._owner) < budget and all(
                s.pager.draining for s in self.streams):
            more = self.late()
            if more:
                self.late = None
                self.streams.extend(more)
                out = self._collect(out, budget)
        return out

    def on_records(self, request: PageRequest, records: list[Record]) -> list[Record]:
        """Hand an answer to its stream's pager; the records it says are final.

        Before the opening is complete, a page shorter than a full one waits (see the module
        docstring): the records it releases later come with :meth:`released`.
        """
        stream, inner = self._answered[request.key] = self._owner.pop(request.key)
        if self._first_keys.pop(request.key, None) is not None:
            self._awaiting.discard(id(stream))
            self._opening_cap = max(self._opening_cap, len(records))
            if not self._awaiting:
                self._open()
        if (self._awaiting and id(stream) in self._parts
                and 0 < len(records) < stream.pager.page_size):
            self._waiting.append((stream, inner, records))  # the end, or the server's cap?
            return []
        return stream.pager.on_records(inner, records)

    def released(self) -> list[tuple[Stream, list[Record]]]:
        """The final records of answers that waited for the opening, with their streams (once
        each; call after every :meth:`on_records`)."""
        out, self._released = self._released, []
        return out

    def on_withdrawn(self, request: PageRequest) -> None:
        """A held request of a stream was withdrawn."""
        stream, inner = self._owner.pop(request.key)
        stream.pager.on_withdrawn(inner)

    def stream_of(self, request: PageRequest) -> tuple[Stream, PageRequest]:
        """The stream and inner request behind an outer request still in flight."""
        return self._owner[request.key]

    def answered(self, request: PageRequest) -> tuple[Stream, PageRequest]:
        """The stream and inner request of an answered request (once)."""
        return self._answered.pop(request.key)

    # -- internals -------------------------------------------------------------------------
    def _collect(self, out: list[PageRequest], budget: int) -> list[PageRequest]:
        for stream in self.streams:
            room = budget - len(self._owner) - len(out)
            if room <= 0:
                break
            _allow(stream.pager, room)
            first = id(stream) in self._unsent
            for req in stream.pager.next_requests():
                outer = replace(req, key=next(self._keys))
                self._owner[outer.key] = (stream, req)
                out.append(outer)
                if first:
                    self._first_keys[outer.key], first = stream, False
                    self._unsent.discard(id(stream))
        return out

    def _open(self) -> None:
        """Every part's first answer is in: each learns the largest first page (the server's
        cap is at least that), and the answers that waited go to their pagers."""
        if self._opening_cap:
            for stream in self.streams:
                stream.pager.cap = max(stream.pager.cap or 0, self._opening_cap)
        waiting, self._waiting = self._waiting, []
        for stream, inner, records in waiting:
            self._released.append((stream, stream.pager.on_records(inner, records)))


def open_streams(parts: list[dict[str, Any]], page_size: int, *, budget: int,
                 max_rows: int | None = None, sequential: bool = False,
                 cap: int | None = None) -> list[Stream]:
    """One pager per part of a query.

    ``budget`` is the in-flight target now: above 1, each pager probes with its first request.
    ``max_rows`` (lowered to the ids a part lists) reads the first that many rows of each part
    (a :class:`~jetti_frames._bounded.BoundedPager`); ``sequential`` pagers send no probe (a
    small answer is expected); ``cap`` is the largest page the server is known to return.
    """
    ahead = len(parts) == 1 and not sequential  # position pages fill the first round trip
    streams = [Stream(part, _pager(page_size, at_most(max_rows, part), budget, sequential, ahead))
               for part in parts]
    for stream in streams:
        stream.pager.cap = cap
    return streams


def _pager(page_size: int, max_rows: int | None, budget: int, sequential: bool,
           ahead: bool) -> Pager | BoundedPager:
    if max_rows is not None:
        return BoundedPager(page_size, max_rows, parallel=budget, ahead=ahead, hold=True)
    return Pager(page_size, parallel=budget, probe=not sequential, ahead=ahead)


def _allow(pager: Pager | BoundedPager | TopPager | ValueWindows, room: int) -> None:
    """Let ``pager`` send up to ``room`` more requests."""
    pager.parallel = pager.in_flight + room


def at_most(max_rows: int | None, part: Mapping[str, Any]) -> int | None:
    """``max_rows``, lowered to the number of ids when the part lists them (``id $in``, also
    packed in ``$or`` branches).

    Examples
    --------
    >>> at_most(10, {"id": {"$in": [4, 8]}}), at_most(None, {"x": 1})
    (2, None)
    """
    n = listed_ids(part)
    if n is None:
        return max_rows
    return n if max_rows is None else min(max_rows, n)
