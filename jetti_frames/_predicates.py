"""Local evaluation of a where condition on records, with SQL's NULL semantics.

:func:`compile_where` makes a predicate once; :func:`matches` tests one record.  Used for the
post-filter of conditions that cannot be sent.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._where import _FIELD_OPS, _WHERE_OPS
from ._wire import _as_list, _is_list_like, _is_missing, _scalar, _to_utc_datetime
from .catalog import _suggest
from .errors import JettiQueryError


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring a record value and a condition value to comparable types where that is cheap."""
    a, b = _scalar(a), _scalar(b)
    if isinstance(a, datetime.datetime) or isinstance(b, datetime.datetime):
        try:
            return _to_utc_datetime(a), _to_utc_datetime(b)
        except (ValueError, TypeError):
            return a, b
    a_num = isinstance(a, int | float) and not isinstance(a, bool)
    b_num = isinstance(b, int | float) and not isinstance(b, bool)
    try:
        if a_num and isinstance(b, str):
            return a, float(b)
        if b_num and isinstance(a, str):
            return float(a), b
    except ValueError:
        pass
    if isinstance(a, bool) and isinstance(b, str):
        return ("true" if a else "false"), b
    if isinstance(b, bool) and isinstance(a, str):
        return a, ("true" if b else "false")
    return a, b


def _same(a: Any, b: Any) -> bool:
    x, y = _comparable(a, b)
    return bool(x == y)


def _like(pattern: str) -> re.Pattern[str]:
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _set_key(value: Any) -> Any:
    value = _scalar(value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return float(value)
    return value


def _compile_op(op: str, arg: Any) -> Callable[[Any], bool]:
    if op in ("$eq", "$ne"):
        negate = op == "$ne"
        if arg is None:
            return (lambda v: not _is_missing(v)) if negate else _is_missing
        return lambda v: not _is_missing(v) and _same(v, arg) != negate
    if op in ("$in", "$notIn"):
        negate = op == "$notIn"
        values = list(arg)
        if any(isinstance(_scalar(a), datetime.datetime) for a in values):
            stamps = {_to_utc_datetime(a) for a in values}
            return lambda v: not _is_missing(v) and (_to_utc_datetime(v) in stamps) != negate
        keys = {_set_key(a) for a in values}

        def member(v: Any) -> bool:
            if _is_missing(v):
                return False
            found = _set_key(v) in keys or any(_same(v, a) for a in values
                                                if isinstance(a, str) != isinstance(v, str))
            return found != negate
        return member
    if op in ("$like", "$notLike"):
        rx, negate = _like(str(arg)), op == "$notLike"
        return lambda v: not _is_missing(v) and (rx.fullmatch(str(v)) is not None) != negate
    if op == "$between":
        low, high = arg
        return lambda v: (not _is_missing(v) and _compile_op("$gte", low)(v)
                          and _compile_op("$lte", high)(v))
    compare = {"$gt": lambda x, y: x > y, "$gte": lambda x, y: x >= y,
               "$lt": lambda x, y: x < y, "$lte": lambda x, y: x <= y}.get(op)
    if compare is None:
        raise JettiQueryError(f"unknown operator {op!r}{_suggest(op, _FIELD_OPS)}")

    def ordered(v: Any) -> bool:
        if _is_missing(v):
            return False
        x, y = _comparable(v, arg)
        try:
            return bool(compare(x, y))
        except TypeError:
            return False
    return ordered


def _compile_condition(cond: Any) -> Callable[[Any], bool]:
    if isinstance(cond, Mapping):
        if cond and all(str(k).startswith("$") for k in cond):
            tests = [_compile_op(op, arg) for op, arg in cond.items()]
            return lambda v: all(t(v) for t in tests)
        nested = compile_where(cond)
        return lambda v: isinstance(v, Mapping) and nested(v)
    if _is_list_like(cond):
        return _compile_op("$in", _as_list(cond))
    return _compile_op("$eq", cond)


def compile_where(where: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate on records equivalent to ``where`` (see :func:`matches`)."""
    tests = [_compile_key(key, cond) for key, cond in where.items()]
    return lambda record: all(t(record) for t in tests)


def _compile_key(key: str, cond: Any) -> Callable[[Mapping[str, Any]], bool]:
    if key in _WHERE_OPS:
        subs = [compile_where(w) for w in cond]
        if key == "$or":
            return lambda record: any(s(record) for s in subs)
        return lambda record: all(s(record) for s in subs)
    test = _compile_condition(cond)
    return lambda record: test(record.get(key))


def matches(record: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """Whether one record satisfies ``where``, with SQL's NULL semantics.

    A missing or null value only matches ``None`` / ``{"$eq": None}`` and ``{"$ne": None}``'s
    opposite; ``$like`` is case-sensitive with ``%``, ``_`` and backslash escapes; ISO strings and
    datetimes compare as instants.

    Examples
    --------
    >>> rec = {"id": 7, "reference": "PO-7", "cancelledAt": None,
    ...        "createdAt": "2024-05-04T09:42:00+00:00"}
    >>> matches(rec, {"id": {"$notIn": [1, 2]}, "reference": {"$like": "PO-%"},
    ...               "cancelledAt": None, "createdAt": {"$gte": datetime.date(2024, 5, 4)}})
    True
    >>> matches(rec, {"$or": [{"id": 1}, {"cancelledAt": {"$ne": None}}]})
    False
    """
    return compile_where(where)(record)
