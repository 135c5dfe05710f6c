"""Pages read by position that continue a keyset stream once checked: :class:`Chain`.

A keyset stream (``id > cursor``) needs an answer before it can ask for its next page, so on a
slow server the first round trip of a read carries one or two requests while the allowance
has room for three.  Jetti also pages by position (``from``, a zero-based page index: offset =
``from`` x ``limit``), which needs no answer; but a position shifts when rows before it come or
go, and then skips or repeats rows.  So a position page is used only where it *overlaps* the
page before it.  The ``k``-th page of a chain asks ``limit = P - k`` rows from ``from = k``
(rows ``k (P - k)`` to ``(k + 1)(P - k) - 1``, P the page size), which starts ``k`` rows before
the page before it ends.  Its rows after the stream's cursor are taken only when the cursor is
among them: ordered by the unique ``id``, the rows that follow the cursor in one answer are
then exactly the first rows after the cursor at that moment, as a keyset request ``id >
cursor`` would have read them.  A page that does not overlap (a row before it was deleted, the
server caps ``limit`` lower, or ignores ``from``) is dropped, with every later page of the
chain, and the stream goes on by keyset from its cursor: it costs a request, never a row.

Determinism: a chain's requests are fixed when it is made, and which of its rows are taken
depends only on the answers' contents, so a repeated read asks for the same pages.

Examples
--------
>>> rows = list(range(10, 1000, 3))
>>> chain = Chain(pages=2, size=100)
>>> first, second = chain.issue(0), chain.issue(1)
>>> (first.page, first.limit), (second.page, second.limit)
((1, 99), (2, 98))
>>> chain.answer(second, [{"id": i} for i in rows[196:294]])   # any order of answers
>>> chain.answer(first, [{"id": i} for i in rows[99:198]])
>>> taken = chain.follow(cursor=rows[99], cap=100)              # the first page's last id
>>> [len(t.records) for t in taken], taken[-1].records[-1]["id"] == rows[293]
([98, 96], True)
>>> chain.settled
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from ._hold import Hold
from ._pages import PageRequest, Record
from .errors import JettiDataError

__all__ = ["Chain", "Link"]


@dataclass
class Link:
    """The rows one chain page adds after the cursor, and whether it ended the data."""

    records: list[Record]
    ids: list[int]  # their ids times the stream's sign (ascending)
    last: bool  # a short page: no row follows its last one


@dataclass(eq=False)
class Chain:
    """Up to ``pages`` position pages continuing one stream.

    Parameters
    ----------
    pages : int
        How many chain pages the stream sends once they are known to be needed (then all of
        them, whatever later answers say, so that a read asks for the same pages in any order
        of answers).
    size : int
        The rows of the stream's first page when full (the page size, or the server's cap when
        known before the read starts: never what answers teach later).
    descending : bool
        The stream reads ids from the top down.
    held : bool
        Pages issued before :meth:`decide` carry a :class:`~jetti_frames._hold.Hold`: the
        transport withdraws them when the chain turns out not to be needed.
    """

    pages: int
    size: int
    descending: bool = False
    held: bool = False
    requests: list[PageRequest] = field(default_factory=list)
    broken: bool = False
    decided: bool = False
    _hold: Hold | None = None
    _answers: dict[int, list[Record]] = field(default_factory=dict)
    _followed: int = 0

    @property
    def due(self) -> bool:
        """A page of the chain is still to send."""
        return len(self.requests) < self.pages

    @property
    def settled(self) -> bool:
        """Every page is sent, and followed or given up: the stream may go on by keyset."""
        return not self.due and (self.broken or self._followed == len(self.requests))

    @property
    def loss(self) -> int:
        """Rows the chain's pages hold fewer than as many full pages: page ``k`` asks ``k``
        rows fewer and repeats ``k`` rows of the page before.  A window continued by the chain
        is planned that much shorter, so that it still ends on a full page (a chain given up
        continues nothing: 0)."""
        return 0 if self.broken else self.pages * (self.pages + 1)

    @property
    def hold(self) -> Hold | None:
        """The hold of the pages issued now, which the answers still awaited decide (None once
        decided, or when the chain is not held)."""
        return None if self.decided else self._hold

    def owns(self, request: PageRequest) -> bool:
        return any(r.key == request.key for r in self.requests)

    def start(self, size: int) -> Hold | None:
        """The stream's first request goes out now: its full size, and (``held``) the hold
        of the pages issued before :meth:`decide`, which that request's answer decides."""
        self.size = size
        self._hold = Hold() if self.held else None
        return self._hold

    def issue(self, key: int) -> PageRequest:
        """The next page of the chain, with the pager's ``key`` (held while undecided)."""
        k = len(self.requests) + 1
        request = PageRequest(key, max(1, self.size - k), descending=self.descending, page=k,
                              hold=self.hold)
        self.requests.append(request)
        return request

    def decide(self, needed: bool) -> None:
        """Whether the stream needs the chain (once): if not, no more pages are issued, the
        held ones still unsent are withdrawn and the answers of the others are ignored."""
        if self.decided:
            return
        self.decided = True
        if not needed:
            self.pages = len(self.requests)
            self.drop()
        if self._hold is not None:
            self._hold.decide(needed)

    def answer(self, request: PageRequest, records: list[Record]) -> None:
        """Keep an answer until :meth:`follow` can use it."""
        if not self.broken:
            self._answers[request.key] = records

    def drop(self) -> None:
        """Give the chain up: the stream ended, or goes on by keyset from its cursor."""
        self.broken = True
        self._answers.clear()

    def follow(self, cursor: int | None, cap: int | None) -> list[Link]:
        """The rows after ``cursor`` of the pages answered so far, in chain order, as far as
        each overlaps the one before; each page is followed once.

        ``cursor`` is the stream's last id (times the sign) before the chain; ``cap`` the
        largest page seen, which tells a short page (the end of the data) from a capped one.
        """
        links: list[Link] = []
        sign = -1 if self.descending else 1
        while not self.broken and self._followed < len(self.requests):
            request = self.requests[self._followed]
            records = self._answers.pop(request.key, None)
            if records is None:
                break
            self._followed += 1
            ids = [sign * int(r["id"]) for r in records]
            if any(b <= a for a, b in pairwise(ids)):
                raise JettiDataError("page ids are not strictly ordered by id as requested")
            at = _index(ids, cursor)
            if at is None:
                self.drop()
                break
            last = len(ids) < min(request.limit, cap or request.limit)
            links.append(Link(list(records[at + 1:]), ids[at + 1:], last))
            if last:
                self.drop()  # nothing follows it: the later pages can add nothing
                break
            cursor = ids[-1]
        return links


def _index(ids: list[int], cursor: int | None) -> int | None:
    """Where ``cursor`` is in ``ids`` (None: absent, or no cursor to overlap)."""
    if cursor is None:
        return None
    for k, i in enumerate(ids):
        if i >= cursor:
            return k if i == cursor else None
    return None
