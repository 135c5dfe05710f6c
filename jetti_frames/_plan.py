"""The plan of a read: what :class:`~jetti_frames.client.JettiClient` will ask for, and how many
pages that takes, before and while it reads.

A :class:`Plan` is a validated query, the frame it makes and its parts (one request stream
each); the functions here are pure: they send nothing.

Examples
--------
>>> server_date("Tue, 02 Jan 2024 03:04:05 GMT").isoformat()
'2024-01-02T03:04:05+00:00'
>>> server_date("not a date") is None
True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any

from ._build import Query, request_params
from ._fanout import Stream, at_most
from ._pack import many_ids
from ._predicates import compile_where
from ._split import and_where, split_where
from ._wire import encode_checked
from .paging import PageRequest
from .schema import FrameSpec
from .settings import MAX_ARRAY

__all__ = ["Plan", "catch_up_plan", "expected_pages", "known_pages", "page_params",
           "page_query", "server_date"]


@dataclass
class Plan:
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

        In id order only with a post-filter, whose kept rows a range counts (an id window
        cannot).  Not for a string attribute: a null there cannot be asked for (it is sent
        as ``''``), so such a read takes every matching record and orders them locally; nor
        for a long list of ids, whose records all come in fewer requests than value ranges
        per list chunk.
        """
        order = self.query.order
        if self.limit is None or many_ids(self.query.where):
            return False
        if order is None or self.id_ordered:
            return bool(self.query.post_filter)
        return self.query.resource.field(order.attribute).kind != "string"


def known_pages(plan: Plan) -> int | None:
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


def expected_pages(plan: Plan, streams: list[Stream], consistent: bool) -> int | None:
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


def catch_up_plan(plan: Plan, since: dt.datetime) -> tuple[Plan, Callable[[Any], bool]]:
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


def page_params(query: Query, part: Mapping[str, Any], req: PageRequest, *,
                check: bool = True) -> dict[str, Any]:
    """The parameters of one page request of one part of a query (``check``: as
    :func:`~jetti_frames._build.request_params`)."""
    paging = req.params(dict(part))
    return request_params(paging.get("where"), query.sent_attributes, query.include,
                          paging.get("order", query.order), limit=req.limit,
                          from_=paging.get("from"), exclude=query.exclude, check=check)


def page_query(query: Query, part: Mapping[str, Any], req: PageRequest) -> str:
    """The encoded query string of one page request, checked for the qs limits (encoded once).

    Examples
    --------
    >>> from jetti_frames._build import build_query
    >>> page_query(build_query("purchase-statuses"), {}, PageRequest(key=0, limit=50, gt=7))
    'where%5Bid%5D%5B%24gt%5D=7&order%5Battribute%5D=id&order%5Bdescending%5D=false&limit=50'
    """
    return encode_checked(page_params(query, part, req, check=False))


def server_date(value: str | None) -> dt.datetime | None:
    """The ``Date`` header as an aware datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None

