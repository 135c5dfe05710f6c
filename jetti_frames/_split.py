"""Splitting a query's condition into sendable requests and merging conditions into one.

:func:`split_where` turns long ``$in`` lists and ``$or`` branches into several where dicts whose
union is the answer; :func:`and_where` ANDs keyset constraints onto one without adding depth.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._predicates import _comparable, _same
from ._wire import _as_list, _dedupe, _is_list_like, _scalar, encode
from .errors import JettiQueryError
from .settings import MAX_ARRAY

if TYPE_CHECKING:
    from ._build import Query

#: Encoded characters of ``$or`` branches packed into one request when they must be split.
OR_BUDGET = 6 * 1024
#: More split requests than this for one query is almost certainly a mistake.
MAX_SPLIT_REQUESTS = 10_000


def _chunks(values: list[Any], size: int) -> list[list[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def _pack(branches: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``$or`` branches grouped into requests: at most ``MAX_ARRAY`` and ``OR_BUDGET`` chars."""
    groups: list[list[dict[str, Any]]] = []
    size = 0
    for branch in branches:
        cost = len(encode({"where": {"$or": {"00": branch}}}))
        if not groups or len(groups[-1]) >= MAX_ARRAY or size + cost > OR_BUDGET:
            groups.append([])
            size = 0
        groups[-1].append(branch)
        size += cost
    return groups


def _alternatives(where: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where dicts with short arrays whose union is ``where``."""
    per_key: list[list[tuple[str, Any]]] = []
    for key, cond in where.items():
        if key == "$or":
            branches = [alt for branch in cond for alt in _alternatives(branch)]
            per_key.append([(key, group) for group in _pack(branches)])
        elif key == "$and":
            if len(cond) > MAX_ARRAY:
                raise JettiQueryError(f"where[$and] has {len(cond)} terms; at most {MAX_ARRAY} "
                                      f"can be sent: merge terms on the same field")
            combos = itertools.product(*(_alternatives(item) for item in cond))
            per_key.append([(key, list(combo)) for combo in combos])
        elif isinstance(cond, Mapping) and len(cond.get("$in", ())) > MAX_ARRAY:
            per_key.append([(key, {**cond, "$in": chunk})
                            for chunk in _chunks(list(cond["$in"]), MAX_ARRAY)])
        else:
            per_key.append([(key, cond)])
    if math.prod(len(options) for options in per_key) > MAX_SPLIT_REQUESTS:
        raise JettiQueryError(f"this where would need more than {MAX_SPLIT_REQUESTS} requests "
                              f"(several long $in lists multiply); narrow it down")
    return [dict(combo) for combo in itertools.product(*per_key)]


def split_where(query: Query) -> list[dict[str, Any]]:
    """The where dicts to send, each with arrays of at most ``MAX_ARRAY`` elements.

    Their results together are the answer (a record may come back from several when ``$or``
    branches overlap: dedupe on ``id``).  Empty for an empty query: make no request.

    Examples
    --------
    >>> from jetti_frames.query import build_query
    >>> parts = split_where(build_query("purchases", where={"id": list(range(500))}))
    >>> len(parts), [len(p["id"]["$in"]) for p in parts][:2]
    (25, [20, 20])
    >>> split_where(build_query("purchases", where={"id": []}))
    []
    """
    if query.is_empty:
        return []
    return _alternatives(query.wire_where)


def _stricter(op: str, a: Any, b: Any) -> Any:
    x, y = _comparable(a, b)
    try:
        lower = op in ("$gt", "$gte")
        return (a if x >= y else b) if lower else (a if x <= y else b)
    except TypeError:
        raise JettiQueryError(f"cannot compare {a!r} and {b!r} for {op}") from None


def _as_ops(cond: Any) -> dict[str, Any]:
    if isinstance(cond, Mapping) and all(str(k).startswith("$") for k in cond):
        return dict(cond)
    if _is_list_like(cond):
        return {"$in": _as_list(cond)}
    return {"$eq": _scalar(cond)}


def _merge_ops(old: dict[str, Any], new: Mapping[str, Any], name: str) -> dict[str, Any]:
    out = dict(old)
    for op, value in new.items():
        if op not in out:
            out[op] = value
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            out[op] = _stricter(op, out[op], value)
        elif op == "$in":
            keep = list(value)
            out[op] = [v for v in out[op] if any(_same(v, k) for k in keep)]
        elif op == "$notIn":
            out[op] = _dedupe([*out[op], *value])
        elif _same(out[op], value):
            continue
        elif op == "$eq":
            del out[op]
            out["$in"] = []  # two different values: nothing matches
        elif op == "$ne":  # NOT IN (.., NULL) matches nothing in SQL: keep IS NOT NULL apart
            values = [out.pop(op), value]
            if None in values:
                out[op] = None
            out["$notIn"] = _dedupe([*out.get("$notIn", []),
                                     *(v for v in values if v is not None)])
        else:
            raise JettiQueryError(f"cannot AND two different {op} conditions on {name!r}")
    for strict, loose, lower in (("$gt", "$gte", True), ("$lt", "$lte", False)):
        if strict in out and loose in out:
            x, y = _comparable(out[strict], out[loose])
            strict_wins = x >= y if lower else x <= y
            del out[loose if strict_wins else strict]
    return out


def and_where(where: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """AND ``extra`` onto ``where`` at the top level, without adding nesting depth.

    A field already constrained gets the operators merged: the stricter of two bounds, the
    intersection of two ``$in`` lists, an equality turned into ``{"$eq": v, ...}``.  Used by the
    pager for keyset constraints such as ``{"id": {"$gt": 123}}``.

    Examples
    --------
    >>> and_where({"id": 5, "total": {"$gte": 10}}, {"id": {"$gt": 3}, "total": {"$gt": 20}})
    {'id': {'$eq': 5, '$gt': 3}, 'total': {'$gt': 20}}
    >>> and_where({"id": {"$in": [1, 2, 3]}}, {"id": {"$in": [2, 3, 4], "$lte": 2}})
    {'id': {'$in': [2, 3], '$lte': 2}}
    >>> and_where({"saleId": {"$ne": 4}}, {"saleId": {"$ne": None}})
    {'saleId': {'$ne': None, '$notIn': [4]}}
    """
    out = dict(where)
    for key, cond in extra.items():
        if key == "$and":
            out[key] = [*out.get(key, []), *cond]
        elif key == "$or":
            if "$or" in out:
                raise JettiQueryError("cannot AND a second $or onto a where at the top level")
            out[key] = list(cond)
        elif key not in out:
            out[key] = cond
        else:
            old = out[key]
            if isinstance(old, Mapping) and not all(str(k).startswith("$") for k in old):
                raise JettiQueryError(f"cannot merge a condition into JSON path filter {key!r}")
            out[key] = _merge_ops(_as_ops(old), _as_ops(cond), key)
    return out
