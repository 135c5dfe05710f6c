"""Position pages of a read in a user order, used as far as they continue it exactly:
:func:`plan` and :func:`continuation`.

A read of the first N rows by a number or a date goes one value range after another: each
range starts at the last value the one before returned, so a slow server answers one request
per round trip.  Jetti also pages by position (``from``, a page index: offset = ``from`` x
``limit``), which needs no answer first.  But rows that tie on the order attribute come back in
a new order on every request, and rows that come or go move every position after them, so a
position page is never taken as it is.  It is taken as the answer to the range the read asks
next, *when it is one*: a page ordered like the range, whose first row comes before the range's
start value, holds from that value on exactly the rows the range would return (every row it
skips comes before the start).  Anything else (a tie at the page's edge, a page that moved,
``from`` ignored, ``limit`` capped) leaves the page unused and the range is sent.

:func:`plan` lays the pages out so that each one starts :data:`OVERLAP` rows before the one
before it ends: a run of up to ``OVERLAP - 1`` tied rows at a page's end still leaves the next
page starting before it.

Examples
--------
>>> list(plan(100, 300))
[(1, 97), (2, 95), (3, 94)]
>>> rows = [{"v": v} for v in (5, 6, 6, 7, 8)]
>>> continuation(rows, "v", 6, inclusive=True, descending=False, kind="number")
[{'v': 6}, {'v': 6}, {'v': 7}, {'v': 8}]
>>> continuation(rows[1:], "v", 6, inclusive=True, descending=False,
...              kind="number") is None  # starts at 6
True
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

from ._pages import Record
from .schema import order_key

__all__ = ["OVERLAP", "behind", "continuation", "plan"]

#: Each position page starts at least this many rows before the one before it ends.
OVERLAP = 3


def plan(page_size: int, rows: int) -> Iterator[tuple[int, int]]:
    """``(from, limit)`` of the position pages after a first page of ``page_size`` rows, until
    they reach row ``rows`` (zero-based): each starts :data:`OVERLAP` rows before the end of
    the one before and reaches as far as a page of at most ``page_size`` rows can.

    >>> list(plan(10, 9)), list(plan(10, 10))
    ([], [(1, 7)])
    """
    end = page_size - 1  # the last row position read so far
    while end < rows:
        start = end - OVERLAP + 1  # the latest a page may start
        best = max(((start // limit, limit) for limit in range(1, page_size + 1)
                    if start // limit >= 1), key=lambda p: ((p[0] + 1) * p[1], p[1]),
                   default=None)
        if best is None or (best[0] + 1) * best[1] - 1 <= end:
            break  # pages this small cannot move on
        yield best
        end = (best[0] + 1) * best[1] - 1


def continuation(records: list[Record], attribute: str, start: Any, *, inclusive: bool,
                 descending: bool, kind: str) -> list[Record] | None:
    """The rows of a page ordered by ``attribute`` that a range from ``start`` (``$gte``,
    or ``$gt`` unless ``inclusive``; mirrored when ``descending``) would return first, or None
    when the page is not such an answer: its first row does not come before the range's
    start, or no row of it comes after ``start`` (nothing new).

    Values are compared as the server orders them, read as ``kind`` says
    (:func:`~jetti_frames.schema.order_key`): numbers as numbers (numeric text too), ISO
    date-times as instants (``"...T10:00:00+02:00"`` comes before ``"...T09:00:00Z"``).  Nulls
    never count: the pages and the ranges read non-null values only; a page with a value that
    cannot be read as ``kind`` is never taken.

    >>> rows = [{"v": "2024-05-01T10:00:00+02:00"}, {"v": "2024-05-01T09:00:00Z"}]
    >>> continuation(rows, "v", "2024-05-01T08:30:00Z", inclusive=True, descending=False,
    ...              kind="datetime")
    [{'v': '2024-05-01T09:00:00Z'}]
    """
    keys = _ordered(records, attribute, descending, kind)
    at = order_key(start, kind)
    if keys is None or at is None or not _before(at, keys[-1], descending):
        return None
    if not (_before(keys[0], at, descending) if inclusive
            else not _before(at, keys[0], descending)):
        return None
    return [r for r, k in zip(records, keys, strict=True)
            if _before(at, k, descending) or (inclusive and k == at)]


def behind(records: list[Record], attribute: str, start: Any, *, descending: bool,
           kind: str) -> bool:
    """No row of the page comes after ``start`` (or it is empty, not ordered as asked, or
    holds a value that cannot be read as ``kind``): it adds nothing to a read that has come as
    far as ``start``.

    >>> behind([{"v": 5}, {"v": 6}], "v", 6, descending=False, kind="number")
    True
    >>> behind([], "v", 6, descending=False, kind="number")
    True
    """
    keys = _ordered(records, attribute, descending, kind)
    at = order_key(start, kind)
    return keys is None or at is None or not _before(at, keys[-1], descending)


def _before(a: Any, b: Any, descending: bool) -> bool:
    return bool(a > b) if descending else bool(a < b)


def _ordered(records: list[Record], attribute: str, descending: bool,
             kind: str) -> list[Any] | None:
    """The page's values as keys, or None when it is empty, holds a value that cannot be read
    as ``kind`` (a null), or is out of order."""
    keys = [order_key(r.get(attribute), kind) for r in records]
    if not keys or any(k is None for k in keys):
        return None
    if any(_before(b, a, descending) for a, b in pairwise(keys)):
        return None
    return keys
