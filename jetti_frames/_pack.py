"""Long lists in few requests: :func:`pack_where`.

qs reads at most ``MAX_ARRAY`` (20) items as an array, so a list of 1500 ids sent in plain
chunks costs 75 requests.  Three ways to send fewer, of which :func:`pack_where` takes the
cheapest:

* **Packed ``$in``**: ``where[$or][i][id][$in][j]`` is 5 bracket levels, within what qs reads,
  so one request carries up to 20 arrays of 20 values (bounded by the 1000 parameters qs reads
  and the 16 KiB request line Node accepts).  A request lists about one page of ids, so 1500
  ids cost 15 requests.  Such a where is a :class:`Packed` dict: every answer is checked
  (:meth:`Packed.holds`), because a server that drops an operator it does not know answers as
  if the ``$or`` were absent.
* **A dense id range**: ``id >= min AND id <= max``, read by keyset pages and filtered locally
  (exact membership), when that costs fewer pages than listing the ids (without ``$or``).
* **Packed ``$notIn``**: beyond the 20 values a ``$notIn`` array carries, more go to
  ``where[$and][k][field][$notIn][j]`` terms; every value is tested locally anyway (the query's
  post-filter), so those terms only save rows.

Without ``$or``/``$and`` (``logic=False``: the account's server ignores or refuses them, see
:class:`LogicSupport`) lists go in plain chunks, or as a dense range.

Examples
--------
>>> from jetti_frames._build import build_query
>>> q = build_query("purchases", where={"id": list(range(1, 1501)), "purchaseType": "dropship"})
>>> _, parts = pack_where(q, page_size=100)
>>> len(parts), len(parts[0]["$or"]), parts[0]["purchaseType"]
(15, 5, 'dropship')
>>> _, plain = pack_where(q, page_size=100, logic=False)     # 1500 dense ids: one range
>>> plain
[{'purchaseType': 'dropship', 'id': {'$gte': 1, '$lte': 1500}}]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from ._build import Order, Query, request_params
from ._predicates import compile_where
from ._split import and_where, split_where
from .errors import JettiDataError, JettiQueryError
from .settings import MAX_ARRAY

__all__ = ["LogicSupport", "PackIgnored", "Packed", "is_packed", "listed_ids", "many_ids",
           "pack_where"]

#: Values of a non-id field per request: as many arrays as ``$or`` can carry.
MAX_PACKED = MAX_ARRAY * MAX_ARRAY
#: Requests a keyset read of an id range costs beyond its pages (the probe, window ends).
RANGE_OVERHEAD = 2
#: The widest keyset bound a request can carry, to size requests for the worst case.
_BIG_ID = 2**31 - 1


class PackIgnored(JettiDataError):
    """An answer to a packed request holds a record the request did not ask for."""


class Packed(dict[str, Any]):
    """A where dict whose ``$or`` branches list values of ``key`` (see :func:`pack_where`).

    Examples
    --------
    >>> p = Packed({"$or": [{"id": {"$in": [1, 2]}}, {"id": {"$in": [3]}}]}, "id", [1, 2, 3])
    >>> p.holds([{"id": 2}, {"id": 3}]), p.holds([{"id": 4}]), p.holds([{"total": 1}])
    (True, False, False)
    """

    def __init__(self, where: Mapping[str, Any], key: str | None = None,
                 values: Iterable[Any] = ()) -> None:
        super().__init__(where)
        self.key = key
        self.listed = list(values)
        self._member: Callable[[Mapping[str, Any]], bool] | None = (
            None if key is None else compile_where({key: {"$in": self.listed}}))

    def holds(self, records: Iterable[Mapping[str, Any]]) -> bool:
        """Whether every record has a value of ``key`` the request listed."""
        member, key = self._member, self.key
        if member is None or key is None:
            return True
        return all(key in r and member(r) for r in records)


class LogicSupport:
    """Accounts whose server ignores or refuses ``$or``/``$and``; kept in memory only.

    Accounts are the transport's account ids (a salted hash of the base URL and the token).

    Examples
    --------
    >>> s = LogicSupport(); s.usable("a1")
    True
    >>> s.refuse("a1"); s.usable("a1"), s.usable("b2")
    (False, True)
    """

    def __init__(self) -> None:
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    def usable(self, account: str) -> bool:
        with self._lock:
            return account not in self._refused

    def refuse(self, account: str) -> None:
        with self._lock:
            self._refused.add(account)


def listed_ids(part: Mapping[str, Any]) -> int | None:
    """How many ids ``part`` lists (``id $in``, plain or packed), None when it lists none.

    An upper bound on the records it matches.

    Examples
    --------
    >>> listed_ids({"id": {"$in": [4, 8]}}), listed_ids({"x": 1})
    (2, None)
    >>> listed_ids({"$or": [{"id": {"$in": [1, 2]}}, {"id": {"$in": [3]}}]})
    3
    """
    cond = part.get("id")
    if isinstance(cond, Mapping) and isinstance(cond.get("$in"), list):
        return len(cond["$in"])
    branches = part.get("$or")
    if not isinstance(branches, list) or not branches:
        return None
    total = 0
    for branch in branches:
        cond = branch.get("id") if isinstance(branch, Mapping) and len(branch) == 1 else None
        if not (isinstance(cond, Mapping) and list(cond) == ["$in"]
                and isinstance(cond["$in"], list)):
            return None
        total += len(cond["$in"])
    return total


def many_ids(where: Mapping[str, Any]) -> bool:
    """Whether ``where`` lists more ids than one array holds (``{"id": {"$in": [...]}}``).

    >>> many_ids({"id": {"$in": list(range(21))}}), many_ids({"id": {"$in": [1, 2]}})
    (True, False)
    """
    cond = where.get("id")
    return isinstance(cond, Mapping) and len(cond.get("$in") or ()) > MAX_ARRAY


def is_packed(parts: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any part uses ``$or``/``$and`` terms :func:`pack_where` added."""
    return any(isinstance(p, Packed) for p in parts)


def _cost(parts: list[dict[str, Any]], page_size: int) -> int:
    """Requests the parts cost at least: the pages of the ids they list, else one each."""
    total = 0
    for part in parts:
        n = listed_ids(part)
        total += 1 if n is None else max(1, math.ceil(n / page_size))
    return total


def _fits(part: Mapping[str, Any], query: Query, page_size: int) -> bool:
    """Whether a page request of ``part`` stays within every qs and request-line limit."""
    worst = and_where(part, {"id": {"$gt": _BIG_ID, "$lte": _BIG_ID}})
    try:
        request_params(worst, query.sent_attributes, query.include,
                       Order("id", descending=True), limit=page_size, exclude=query.exclude)
    except JettiQueryError:
        return False
    return True


def _long_in(where: Mapping[str, Any]) -> str | None:
    """The top-level field whose ``$in`` list is too long for one array (``id`` first)."""
    if "$or" in where:
        return None  # a second $or cannot be ANDed on without going past qs's depth
    keys = [k for k, v in where.items() if not k.startswith("$") and isinstance(v, Mapping)
            and isinstance(v.get("$in"), list) and len(v["$in"]) > MAX_ARRAY]
    if not keys:
        return None
    return "id" if "id" in keys else max(keys, key=lambda k: len(where[k]["$in"]))


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return values


def _pack_in(query: Query, key: str, page_size: int) -> list[dict[str, Any]]:
    """Parts listing ``key``'s values in ``$or`` branches of ``MAX_ARRAY``."""
    where = query.wire_where
    cond = dict(where[key])
    values = _sorted(list(cond.pop("$in")))
    rest = {k: v for k, v in where.items() if k != key}
    if cond:
        rest[key] = cond
    per_part = max(MAX_ARRAY, page_size) if key == "id" else MAX_PACKED
    chunks = [values[i:i + MAX_ARRAY] for i in range(0, len(values), MAX_ARRAY)]
    parts: list[dict[str, Any]] = []
    for base in split_where(replace(query, wire_where=rest)):
        group: list[list[Any]] = []

        def close(group: list[list[Any]], base: dict[str, Any] = base) -> None:
            if len(group) == 1:
                parts.append(and_where(base, {key: {"$in": group[0]}}))
            elif group:
                branches = [{key: {"$in": chunk}} for chunk in group]
                parts.append(Packed({**base, "$or": branches}, key,
                                    [v for chunk in group for v in chunk]))

        for chunk in chunks:
            bigger = [*group, chunk]
            if group and (len(bigger) > MAX_ARRAY
                          or sum(map(len, bigger)) > per_part
                          or not _fits({**base, "$or": [{key: {"$in": c}} for c in bigger]},
                                       query, page_size)):
                close(group)
                bigger = [chunk]
            group = bigger
        close(group)
    return parts


def _dense_range(query: Query) -> Query | None:
    """The query reading ``id``'s listed range whole and keeping the listed ids locally."""
    where = query.wire_where
    ids = where["id"]["$in"]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return None
    others = {op: v for op, v in where["id"].items() if op != "$in"}
    rest = {k: v for k, v in where.items() if k != "id"}
    bounds = {"$gte": min(ids), "$lte": max(ids)}
    ranged = and_where({**rest, "id": others}, {"id": bounds}) if others else {
        **rest, "id": bounds}
    member = {"id": {"$in": list(ids)}}
    post = {"$and": [query.post_filter, member]} if query.post_filter else member
    return replace(query, wire_where=ranged, post_filter=post)


def _residual_not_in(post: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``field -> values`` of the ``$notIn`` lists the post-filter tests locally."""
    terms = post.get("$and", [post]) if "$and" in post else [post]
    out: dict[str, list[Any]] = {}
    for term in terms:
        for key, cond in term.items():
            if not key.startswith("$") and isinstance(cond, Mapping) and list(cond) == ["$notIn"]:
                out.setdefault(key, []).extend(cond["$notIn"])
    return out


def _pack_not_in(part: dict[str, Any], query: Query, page_size: int) -> dict[str, Any]:
    """``part`` with as many of the locally tested ``$notIn`` values as fit in ``$and`` terms."""
    extra = _residual_not_in(query.post_filter)
    if not extra:
        return part
    terms = list(part.get("$and", []))
    added = 0
    for key, values in extra.items():
        for i in range(0, len(values), MAX_ARRAY):
            if len(terms) >= MAX_ARRAY:
                break
            bigger = [*terms, {key: {"$notIn": values[i:i + MAX_ARRAY]}}]
            if not _fits({**part, "$and": bigger}, query, page_size):
                break
            terms, added = bigger, added + 1
    if not added:
        return part
    out = {**part, "$and": terms}
    if isinstance(part, Packed):
        return Packed(out, part.key, part.listed)
    return Packed(out)


def pack_where(query: Query, *, page_size: int,
               logic: bool = True) -> tuple[Query, list[dict[str, Any]]]:
    """The query to read and the where of each request stream, in as few requests as fit.

    ``logic=False`` sends no ``$or``/``$and`` of its own (the server ignores or refuses them).
    The returned query differs from ``query`` only when a dense id range is read instead of
    the list (its post-filter then keeps the listed ids).

    Examples
    --------
    >>> from jetti_frames._build import build_query
    >>> q = build_query("purchases", where={"purchaseStatusId": list(range(1, 61))})
    >>> [len(p["$or"]) for p in pack_where(q, page_size=100)[1]]
    [3]
    """
    if query.is_empty:
        return query, []
    plain = split_where(query)
    key = _long_in(query.wire_where)
    options: list[tuple[int, Query, list[dict[str, Any]]]] = []
    if key is not None and logic:
        packed = _pack_in(query, key, page_size)
        options.append((_cost(packed, page_size), query, packed))
    options.append((_cost(plain, page_size), query, plain))
    if key == "id" and len(plain) > 1:
        ranged = _dense_range(query)
        if ranged is not None:
            lo, hi = ranged.wire_where["id"]["$gte"], ranged.wire_where["id"]["$lte"]
            cost = math.ceil((hi - lo + 1) / page_size) + RANGE_OVERHEAD
            options.append((cost, ranged, split_where(ranged)))
    _, chosen, parts = min(options, key=lambda o: o[0])  # the first of equals
    if logic:
        parts = [_pack_not_in(p, chosen, page_size) for p in parts]
    return chosen, parts
