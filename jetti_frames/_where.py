"""Validation and normalisation of ``where`` conditions against the catalogue.

``_norm_where`` checks every field, operator and value (values through :func:`convert_value`,
the one conversion of values); ``_wire_where`` then splits the normalised condition into what is
sent and what must be applied locally.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ._wire import _as_list, _dedupe, _is_list_like, _scalar, _to_utc_datetime, js_number
from .catalog import Field, Resource, _suggest
from .errors import JettiQueryError
from .settings import MAX_ARRAY

#: Operators accepted in a ``where``; ``$or``/``$and`` only at where level (a list of where dicts).
OPERATORS = ("$eq", "$ne", "$in", "$notIn", "$gt", "$gte", "$lt", "$lte", "$like", "$notLike",
             "$between", "$or", "$and")
_FIELD_OPS = OPERATORS[:-2]
_WHERE_OPS = ("$or", "$and")
_ORDERED_KINDS = frozenset({"integer", "number", "datetime", "string"})
_ORDERED_OPS = frozenset({"$gt", "$gte", "$lt", "$lte", "$between"})


def _field_value(fld: Field, raw: Any, where: str) -> Any:
    """One value for ``fld``, converted and checked against the field's kind."""
    if raw is pd.NaT or (isinstance(raw, np.datetime64) and np.isnat(raw)):
        raise JettiQueryError(f"{where}: NaT is not a value for {fld.name!r}; "
                              f"None is how to say NULL")
    if fld.kind == "datetime" and raw is not None:
        try:
            return _to_utc_datetime(raw)
        except JettiQueryError as exc:
            raise JettiQueryError(f"{where}: not a valid datetime for {fld.name!r}: "
                                  f"{exc}") from None
    value = _scalar(raw)
    if value is None:
        return None
    kind = fld.kind
    bad = f"{where}: {value!r} is not a valid {kind} for {fld.name!r}"
    if kind in ("integer", "number"):
        if isinstance(value, bool):
            raise JettiQueryError(bad)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                try:
                    value = float(value.strip())
                except ValueError:
                    raise JettiQueryError(bad) from None
        if isinstance(value, float) and value.is_integer() and kind == "integer":
            return int(value)
        if isinstance(value, int | float) and not (isinstance(value, float)
                                                    and math.isinf(value)):
            return value
        raise JettiQueryError(bad)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise JettiQueryError(bad + " (use True or False)")
    if kind == "enum":
        allowed = fld.enum or ()
        if isinstance(value, str) and (not allowed or value in allowed):
            return value
        raise JettiQueryError(f"{where}: {value!r} is not one of {fld.name!r}'s values "
                              f"{list(allowed)}{_suggest(str(value), allowed)}")
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return js_number(value)
        raise JettiQueryError(bad)
    if isinstance(value, datetime.datetime | str | int | float | bool):
        return value  # array / json: the server decides
    raise JettiQueryError(bad)


def convert_value(fld: Field, op: str, value: Any, where: str = "value") -> Any:
    """``value`` as a condition ``op`` on ``fld`` compares it: the one conversion of values.

    ``read_jetti``'s ``where``, ``read_snapshot``'s ``filters``, the query form and the
    command line's ``--where`` all convert through here: date-times by :func:`to_instant`
    (aware UTC), integers and numbers from numbers or numeric strings, booleans from bools or
    ``"true"``/``"false"``, enums checked against their values; a list for ``$in``, ``$notIn``
    and ``$between``.  None is SQL NULL (``$eq``/``$ne`` only); NaT is refused.

    Raises
    ------
    JettiQueryError
        Naming ``where`` and the field.

    Examples
    --------
    >>> from jetti_frames.catalog import CATALOG
    >>> fld = CATALOG.resource("purchases").field("dateOrdered")
    >>> convert_value(fld, "$in", ["2025-06-01", datetime.date(2025, 6, 2)])
    [datetime.datetime(2025, 6, 1, 0, 0, tzinfo=datetime.timezone.utc), \
datetime.datetime(2025, 6, 2, 0, 0, tzinfo=datetime.timezone.utc)]
    >>> convert_value(CATALOG.resource("purchases").field("id"), "$gt", "12")
    12
    """
    if op not in _FIELD_OPS:
        raise JettiQueryError(f"{where}: unknown operator {op!r}{_suggest(str(op), _FIELD_OPS)}")
    return _norm_op(fld, op, value, where)


def _norm_op(fld: Field, op: str, arg: Any, where: str) -> Any:
    kind = fld.kind
    if op in ("$like", "$notLike"):
        if kind != "string":
            raise JettiQueryError(f"{where}: {op} works on string fields only; "
                                  f"{fld.name!r} is {kind}")
        if not isinstance(arg, str):
            raise JettiQueryError(f"{where}: {op} takes a pattern string such as '%abc%'")
        return arg
    if op in _ORDERED_OPS and kind not in _ORDERED_KINDS:
        raise JettiQueryError(f"{where}: {op} needs an ordered field (integer, number, datetime "
                              f"or string); {fld.name!r} is {kind}")
    if op in ("$in", "$notIn", "$between"):
        if not _is_list_like(arg):
            raise JettiQueryError(f"{where}: {op} takes a list, got {arg!r}")
        values = [_field_value(fld, v, where) for v in _as_list(arg)]
        if any(v is None for v in values):
            hint = ("use {'$eq': None} or {'$ne': None}, combined with $or if needed"
                    if op != "$between" else "give both bounds")
            raise JettiQueryError(f"{where}: {op} cannot hold None/missing values "
                                  f"(SQL never matches NULL that way); {hint}")
        if op == "$between":
            if len(values) != 2:
                raise JettiQueryError(f"{where}: $between takes exactly 2 values "
                                      f"[low, high], got {len(values)}")
            return values
        return _dedupe(values)
    if _is_list_like(arg) or isinstance(arg, Mapping):
        raise JettiQueryError(f"{where}: {op} takes a single value, got {arg!r}")
    value = _field_value(fld, arg, where)
    if value is None and op not in ("$eq", "$ne"):
        raise JettiQueryError(f"{where}: {op} cannot compare with None")
    return value


def _norm_json(value: Any, where: str) -> Any:
    """A condition on a JSON field: nested keys are paths, ``$`` keys operators; no kind checks."""
    if isinstance(value, Mapping):
        out = {}
        for key, sub in value.items():
            key = str(key)
            if key.startswith("$") and key not in _FIELD_OPS:
                raise JettiQueryError(f"{where}: unknown operator {key!r}"
                                      f"{_suggest(key, _FIELD_OPS)}")
            out[key] = _norm_json(sub, f"{where}[{key}]")
        return out
    if _is_list_like(value):
        return {"$in": _dedupe(_norm_json(v, where) for v in _as_list(value))}
    return _scalar(value)


def _norm_condition(fld: Field, value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        if fld.kind == "json" and any(not str(k).startswith("$") for k in value):
            return _norm_json(value, where)
        ops: dict[str, Any] = {}
        for op, arg in value.items():
            if op in _WHERE_OPS:
                raise JettiQueryError(
                    f"{where}: {op} belongs at the where level with a list of where dicts, e.g. "
                    f"{{'{op}': [{{'{fld.name}': 1}}, {{'{fld.name}': 2}}]}}; for several values "
                    f"of one field use $in")
            if op not in _FIELD_OPS:
                raise JettiQueryError(f"{where}: unknown operator {op!r}"
                                      f"{_suggest(str(op), _FIELD_OPS)}; operators: "
                                      f"{', '.join(_FIELD_OPS)}")
            ops[op] = _norm_op(fld, op, arg, f"{where}[{op}]")
        return ops
    if _is_list_like(value):
        return {"$in": _norm_op(fld, "$in", value, where)}
    return _norm_op(fld, "$eq", value, where)


def _norm_where(res: Resource, where: Any, path: str) -> dict[str, Any]:
    if where is None:
        return {}
    if not isinstance(where, Mapping):
        raise JettiQueryError(f"{path} must be a dict of field -> condition, got {where!r}")
    out: dict[str, Any] = {}
    for key, value in where.items():
        if not isinstance(key, str):
            raise JettiQueryError(f"{path}: keys must be field names, got {key!r}")
        if key in _WHERE_OPS:
            if not _is_list_like(value) or isinstance(value, Mapping):
                raise JettiQueryError(f"{path}[{key}] takes a list of where dicts")
            out[key] = [_norm_where(res, w, f"{path}[{key}][{i}]")
                        for i, w in enumerate(_as_list(value))]
        elif key.startswith("$"):
            raise JettiQueryError(f"{path}: {key!r} is not a where-level operator"
                                  f"{_suggest(key, _WHERE_OPS)}; only $or and $and go there, "
                                  f"field operators go under a field")
        else:
            fld = res.field(key)
            out[key] = _norm_condition(fld, value, f"{path}[{key}]")
    return out


_DROP = object()
_FALSE = object()


def _wire_condition(fld: Field | None, key: str, cond: Any, residual: list[dict[str, Any]] | None,
                    path: str) -> Any:
    """The sendable part of one field condition; ``_FALSE`` if it can never match."""
    string_null = fld is not None and fld.kind == "string"

    def local(part: Any, why: str) -> None:
        if residual is None:
            raise JettiQueryError(f"{path}: {why}; this cannot be sent, and it can only be "
                                  f"applied locally outside $or and include where clauses")
        residual.append({key: part})

    null_why = ("None on a string field is sent as an empty string, so the server could not "
                "tell it from ''")
    if not isinstance(cond, dict):
        if cond is None and string_null:
            local(None, null_why)
            return _DROP
        return cond
    if fld is not None and fld.kind == "json" and any(not k.startswith("$") for k in cond):
        return cond
    ops: dict[str, Any] = {}
    for op, arg in cond.items():
        if op == "$in" and not arg:
            return _FALSE
        if op == "$notIn":
            if not arg:
                continue
            if len(arg) > MAX_ARRAY:
                local({"$notIn": arg[MAX_ARRAY:]},
                      f"$notIn with {len(arg)} values (more than {MAX_ARRAY})")
                arg = arg[:MAX_ARRAY]
        if op in ("$eq", "$ne") and arg is None and string_null:
            local({op: None}, null_why)
            continue
        ops[op] = arg
    return ops if ops else _DROP


def _wire_where(res: Resource, where: dict[str, Any], residual: list[dict[str, Any]] | None,
                path: str) -> dict[str, Any] | None:
    """The part of ``where`` to send (None: known to match nothing); the rest goes to residual."""
    out: dict[str, Any] = {}
    for key, cond in where.items():
        if key == "$or":
            branches = []
            for i, branch in enumerate(cond):
                w = _wire_where(res, branch, None, f"{path}[$or][{i}]")
                if w is not None:
                    branches.append(w)
            if not branches:
                return None
            if all(branches):  # an empty branch is always true, and so is the whole $or
                out[key] = branches
        elif key == "$and":
            items = []
            for i, item in enumerate(cond):
                w = _wire_where(res, item, residual, f"{path}[$and][{i}]")
                if w is None:
                    return None
                if w:
                    items.append(w)
            if items:
                out[key] = items
        else:
            fld = res.fields_by_name.get(key)
            sent = _wire_condition(fld, key, cond, residual, f"{path}[{key}]")
            if sent is _FALSE:
                return None
            if sent is not _DROP:
                out[key] = sent
    return out
