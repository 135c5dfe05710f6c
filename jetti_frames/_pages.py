"""What a pager asks for and what it counts: :class:`PageRequest` and :class:`PagerStats`;
what the transport drives: :class:`PageSource` (:class:`ById` for pagers that decide from ids).

Shared by the keyset :class:`~jetti_frames.paging.Pager` and the ordered
:class:`~jetti_frames._top.TopPager`; :meth:`PageRequest.params` turns a request into the
paging part of the query parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._hold import Hold
from ._split import and_where
from .errors import JettiConfigError


@dataclass(frozen=True)
class PageRequest:
    """One request the pager wants sent.

    Attributes
    ----------
    key : int
        Unique per pager; pass the request back to ``on_page`` unchanged.
    limit : int
        The ``limit`` query parameter.
    gt, lte, lt, gte : int or None
        Id bounds (``where[id][$gt]``, ``$lte``, ``$lt``, ``$gte``); None means unbounded.
    descending : bool
        Order by id descending (the probe of the top of the id range, a read by ``-id``).
    where : dict, optional
        More conditions ANDed onto the user's ``where`` (a value range of the order attribute).
    by_order : bool
        Ordered by the user's ``order`` (a value range) rather than by id.
    page : int, optional
        The ``from`` page index of a position page (a :class:`~jetti_frames._chain.Chain`'s,
        ordered by id, no bounds).
    hold : Hold, optional
        Sent on speculation: the transport waits for the hold's decision before the rate
        limiter and withdraws the request when it is not wanted (see :mod:`jetti_frames._hold`).
    decides : Hold, optional
        The hold this request's answer decides: the transport starts its clock when this
        request has its slot and tells it when the answer is in.
    """

    key: int
    limit: int
    gt: int | None = None
    lte: int | None = None
    descending: bool = False
    lt: int | None = None
    gte: int | None = None
    where: dict[str, Any] | None = field(default=None, hash=False)
    by_order: bool = False
    page: int | None = None
    hold: Hold | None = field(default=None, compare=False, repr=False)
    decides: Hold | None = field(default=None, compare=False, repr=False)

    def params(self, where: dict[str, Any] | None = None) -> dict[str, Any]:
        """The paging part of the query, merged with the user's ``where``.

        Keyset requests also set ``order`` (by id); ``by_order`` requests leave it out (the
        caller keeps the user's ``order``).

        Examples
        --------
        >>> PageRequest(key=0, limit=100, gt=5, lte=90).params({"status": "open"})
        {'where': {'status': 'open', 'id': {'$gt': 5, '$lte': 90}}, 'order': {'attribute': 'id', 'descending': False}, 'limit': 100}
        >>> PageRequest(1, 37, where={"total": {"$gte": 9.5}}, by_order=True).params({"a": 1})
        {'where': {'a': 1, 'total': {'$gte': 9.5}}, 'limit': 37}
        >>> PageRequest(2, 99, page=1).params()
        {'order': {'attribute': 'id', 'descending': False}, 'limit': 99, 'from': 1}
        """  # noqa: E501
        merged = dict(where or {})
        if self.where:
            merged = and_where(merged, self.where)
        bounds = {op: v for op, v in (("$gt", self.gt), ("$gte", self.gte), ("$lt", self.lt),
                                      ("$lte", self.lte)) if v is not None}
        if bounds:
            merged = and_where(merged, {"id": bounds})
        out: dict[str, Any] = {"where": merged} if merged else {}
        if not self.by_order:
            out["order"] = {"attribute": "id", "descending": self.descending}
        out["limit"] = self.limit
        if self.page is not None:
            out["from"] = self.page
        return out


@dataclass
class PagerStats:
    """Counters of one pull.

    ``wasted`` counts answered requests that contributed no row (an empty final page, a probe
    that only repeated rows already read); ``dropped`` counts rows returned but trimmed away.
    """

    requests: int = 0
    pages: int = 0
    wasted: int = 0
    rows: int = 0
    dropped: int = 0
    windows: int = 0
    splits: int = 0


Record = Mapping[str, Any]


class PageSource(Protocol):
    """What :meth:`~jetti_frames.transport.Transport.run_pager` drives: a
    :class:`~jetti_frames.paging.Pager`, a :class:`~jetti_frames._bounded.BoundedPager`, a
    :class:`~jetti_frames._top.TopPager` or a :class:`~jetti_frames._fanout.Fanout` of them.

    The source decides how many requests it keeps in flight; the transport only sends what
    :meth:`next_requests` returns and hands each answer's records to :meth:`on_records`.
    """

    @property
    def done(self) -> bool:
        """Nothing in flight and nothing left to ask for."""
        ...  # pragma: no cover

    def next_requests(self) -> list[PageRequest]:
        """Requests to send now."""
        ...  # pragma: no cover

    def on_records(self, request: PageRequest, records: list[Any]) -> list[Any]:
        """Record the answer to ``request``; return the records that are now final."""
        ...  # pragma: no cover

    def on_withdrawn(self, request: PageRequest) -> None:
        """``request`` (sent with a ``hold``) was withdrawn before it left the process."""
        ...  # pragma: no cover


class ById(ABC):
    """:meth:`PageSource.on_records` for a pager that decides from ids alone: its
    ``on_page(request, ids)`` says how many leading records to keep."""

    @abstractmethod
    def on_page(self, request: PageRequest, ids: list[int]) -> int:
        """Record the ids of the answer to ``request``; return how many lead the result."""

    def on_records(self, request: PageRequest, records: list[Any]) -> list[Any]:
        """The leading records of the answer that belong to the result."""
        return records[:self.on_page(request, [int(r["id"]) for r in records])]


def check_sizes(page_size: int, max_rows: int | None = None, parallel: int = 1) -> None:
    """Refuse a pager's sizes that cannot work (every pager takes the same three).

    >>> check_sizes(0)
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiConfigError: page_size must be at least 1
    """
    if page_size < 1:
        raise JettiConfigError("page_size must be at least 1")
    if max_rows is not None and max_rows < 0:
        raise JettiConfigError("max_rows must be >= 0")
    if parallel < 1:
        raise JettiConfigError("parallel must be at least 1")
