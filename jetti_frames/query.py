"""Validated, normalised Jetti queries and their qs-encoded request parameters.

A user's ``where``, ``attributes``, ``include`` and ``order`` are checked against the catalogue and
normalised by :func:`build_query` before any request is made.  The resulting :class:`Query` knows
what must not be sent as it stands (see the API notes): long ``$in`` lists are split into several
requests (:func:`split_where`), a long ``$notIn`` and ``IS NULL`` tests on string fields become a
local post-filter (:meth:`Query.keep`), a long ``attributes`` list is selected locally, and an
empty ``$in`` is answered without any request (:attr:`Query.is_empty`).

:func:`request_params` assembles one request's parameters in Jetti's wire form and :func:`encode`
writes them exactly as Node's ``qs.stringify`` does, numbers and dates formatted the JavaScript way.

Examples
--------
>>> q = build_query("purchases", where={"purchaseType": "dropship", "id": range(1, 46)},
...                 attributes=["reference"], order="-dateOrdered")
>>> len(split_where(q)), q.sent_attributes, q.added_attributes
(3, ('reference', 'id', 'dateOrdered'), ('id', 'dateOrdered'))
>>> params = request_params(split_where(q)[0], q.sent_attributes, q.include, q.order, limit=100)
>>> encode(params, readable=True)[:64]
'where[purchaseType]=dropship&where[id][$in][0]=1&where[id][$in]['
>>> encode({"where": {"createdAt": {"$gte": datetime.date(2019, 1, 1)}}})
'where%5BcreatedAt%5D%5B%24gte%5D=2019-01-01T00%3A00%3A00.000Z'
"""

from __future__ import annotations

import datetime
import difflib
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import qs_codec
from qs_codec import EncodeOptions

from .catalog import CATALOG, Field, Relation, Resource
from .errors import JettiQueryError
from .settings import MAX_ARRAY

__all__ = [
    "OPERATORS",
    "Include",
    "Order",
    "Query",
    "and_where",
    "build_query",
    "compile_where",
    "convert_value",
    "encode",
    "explain_query",
    "js_number",
    "matches",
    "parse_order",
    "query_urls",
    "request_params",
    "split_where",
    "to_instant",
    "to_iso",
    "to_wire",
    "where_is_empty",
]

#: Operators accepted in a ``where``; ``$or``/``$and`` only at where level (a list of where dicts).
OPERATORS = ("$eq", "$ne", "$in", "$notIn", "$gt", "$gte", "$lt", "$lte", "$like", "$notLike",
             "$between", "$or", "$and")
_FIELD_OPS = OPERATORS[:-2]
_WHERE_OPS = ("$or", "$and")
#: Bracket levels below the root key that ``qs.parse`` reads with default options.
QS_DEPTH = 5
#: Include levels that survive ``QS_DEPTH``: ``include[0][include][0][attributes][0]``.
MAX_INCLUDE_LEVELS = 2
#: Node's HTTP server refuses a request head over 16 KiB; keep the query string well below it.
MAX_QUERY_CHARS = 15 * 1024
#: Encoded characters of ``$or`` branches packed into one request when they must be split.
OR_BUDGET = 6 * 1024
#: ``qs.parse`` reads at most this many parameters.
QS_PARAMETER_LIMIT = 1000
#: More split requests than this for one query is almost certainly a mistake.
MAX_SPLIT_REQUESTS = 10_000

_ORDERED_KINDS = frozenset({"integer", "number", "datetime", "string"})
_ORDERED_OPS = frozenset({"$gt", "$gte", "$lt", "$lte", "$between"})
_INCLUDE_KEYS = ("model", "attributes", "include", "where")
_UTC = datetime.UTC


# --------------------------------------------------------------------------------------------
# Data structures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    """One sort order, Jetti's ``order`` object.

    Examples
    --------
    >>> Order("dateOrdered", descending=True).to_wire()
    {'attribute': 'dateOrdered', 'descending': True, 'nullsFirst': False}
    >>> Order("id").to_wire()
    {'attribute': 'id', 'descending': False}
    """

    attribute: str
    descending: bool = False
    nulls_first: bool = False

    def to_wire(self) -> dict[str, Any]:
        """``{"attribute", "descending", "nullsFirst"}`` as sent in ``order[...]``.

        ``nullsFirst`` is left out only for ascending, nulls-last order, which every SQL
        database does by default; descending order states it, as databases differ there.
        """
        out: dict[str, Any] = {"attribute": self.attribute, "descending": self.descending}
        if self.descending or self.nulls_first:
            out["nullsFirst"] = self.nulls_first
        return out


@dataclass(frozen=True)
class Include:
    """A related model to embed in each record.

    ``kind`` is ``"belongs_to"`` (one object under :attr:`key`) or ``"has_many"`` (a list under
    :attr:`key`); ``relation.foreign_key`` is a field of the parent for belongs-to and of this
    model for has-many.  ``attributes`` is what was asked (None: all fields); ``sent_attributes``
    what goes on the wire, ``added_attributes`` the keys added for the join (drop them unless
    asked for).  ``where`` is already in wire form.  ``exclude`` lists the credential fields sent
    as ``attributes[exclude]`` when no attributes are sent (first include level only: a deeper
    one would pass the 5 bracket levels qs reads).
    """

    model: str
    resource: Resource = field(repr=False)
    kind: str
    relation: Relation
    attributes: tuple[str, ...] | None = None
    include: tuple[Include, ...] = ()
    where: dict[str, Any] = field(default_factory=dict)
    sent_attributes: tuple[str, ...] | None = None
    added_attributes: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The record key the server puts this include under (``purchase_status``, ...)."""
        return self.resource.key_one if self.kind == "belongs_to" else self.resource.key_many

    def to_wire(self) -> dict[str, Any]:
        """``{"model", "attributes", "include", "where"}`` with empty parts left out."""
        out: dict[str, Any] = {"model": self.model}
        if self.sent_attributes:
            out["attributes"] = list(self.sent_attributes)
        elif self.exclude:
            out["attributes"] = {"exclude": list(self.exclude)}
        if self.include:
            out["include"] = [inc.to_wire() for inc in self.include]
        if self.where:
            out["where"] = self.where
        return out


@dataclass(frozen=True)
class Query:
    """A validated query on one resource.

    Attributes
    ----------
    resource, where, attributes, include, order
        The normalised request; ``where`` is the full condition (Python values, dates as aware
        UTC datetimes) and ``attributes`` the columns asked for (None: all).
    wire_where
        What is sent: ``where`` minus what is applied locally; still unsplit, see
        :func:`split_where`.
    post_filter
        A where dict that records must also satisfy (:meth:`keep`); ``{}`` when none.
    sent_attributes, added_attributes
        The wire ``attributes`` (None: not sent, every field comes back) and the columns added
        to it for paging, ordering, includes or the post-filter.  When ``attributes`` is set
        but ``sent_attributes`` is None (more than ``MAX_ARRAY``), select ``attributes`` locally.
    is_empty
        The answer is known to be empty (e.g. ``$in: []``): make no request.
    exclude
        Credential fields not named in ``attributes``, sent as ``attributes[exclude]`` when no
        ``attributes`` are sent (at most ``MAX_ARRAY``; the response hook strips them anyway).
    """

    resource: Resource
    where: dict[str, Any]
    attributes: tuple[str, ...] | None
    include: tuple[Include, ...]
    order: Order | None
    wire_where: dict[str, Any] = field(default_factory=dict)
    post_filter: dict[str, Any] = field(default_factory=dict)
    sent_attributes: tuple[str, ...] | None = None
    added_attributes: tuple[str, ...] = ()
    is_empty: bool = False
    exclude: tuple[str, ...] = ()

    def __repr__(self) -> str:
        parts = [f"resource={self.resource.url!r}", f"where={self.where!r}"]
        for name in ("attributes", "include", "order", "post_filter", "sent_attributes",
                     "added_attributes", "is_empty", "exclude"):
            value = getattr(self, name)
            if value not in (None, (), {}, False):
                parts.append(f"{name}={value!r}")
        return f"Query({', '.join(parts)})"

    @property
    def select_locally(self) -> bool:
        """True when the asked ``attributes`` are not sent and must be selected locally."""
        return self.attributes is not None and self.sent_attributes is None

    @cached_property
    def _post_predicate(self) -> Callable[[Mapping[str, Any]], bool]:
        return compile_where(self.post_filter)

    def keep(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` passes the local post-filter (always True when there is none)."""
        return self._post_predicate(record)


# --------------------------------------------------------------------------------------------
# Python values -> JavaScript strings
# --------------------------------------------------------------------------------------------


def js_number(value: float | int) -> str:
    """Format a number as JavaScript's ``Number.prototype.toString`` does.

    Examples
    --------
    >>> [js_number(v) for v in (1e-7, 1e21, 0.1 + 0.2, 10.0, -0.0, 123456789012345680000.0)]
    ['1e-7', '1e+21', '0.30000000000000004', '10', '0', '123456789012345680000']
    """
    if isinstance(value, bool):
        raise TypeError("js_number takes a number, not a bool")
    if isinstance(value, int):
        return str(value)
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number(-x)
    # repr() gives the shortest round-tripping digits, as ECMAScript's Number::toString does.
    _, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    assert isinstance(exponent, int)
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = exponent + k  # value = 0.digits * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits[0] + (f".{digits[1:]}" if k > 1 else "")
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


#: The strings a date-time condition accepts, as error messages name them.
ISO_FORMS = ("ISO-8601: a date (2025-06-01) or a date-time (2025-06-01T14:30, "
             "2025-06-01 14:30:00.250) with Z or an offset (2025-06-01T14:30:00+02:00), "
             "or neither (read as UTC)")
_ISO_INSTANT = re.compile(
    r"(?P<year>\d{4}|[+-]\d{6})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2}))?)?",
    re.ASCII)
_YEARS = "years 0001-9999"


def to_iso(value: datetime.date | pd.Timestamp | np.datetime64 | str) -> str:
    """An instant written as JavaScript's ``Date#toISOString`` writes it.

    Takes what :func:`to_instant` takes; years before 1000 are zero-padded as JavaScript pads
    them.

    Examples
    --------
    >>> to_iso(datetime.date(2019, 1, 1))
    '2019-01-01T00:00:00.000Z'
    >>> to_iso(pd.Timestamp("2024-03-15 14:34:56.789999", tz="Europe/Berlin"))
    '2024-03-15T13:34:56.789Z'
    >>> to_iso(datetime.datetime(5, 1, 2, 3, 4))
    '0005-01-02T03:04:00.000Z'
    """
    instant = _to_utc_datetime(value)
    return instant.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def to_instant(value: Any) -> datetime.datetime:
    """The one rule for reading a date-time value: an aware UTC ``datetime`` floored to ms.

    Accepts ``datetime.date`` (midnight UTC), ``datetime.datetime`` and ``pd.Timestamp`` (naive
    means UTC), ``numpy.datetime64`` (UTC), and strings in ISO-8601 form only: ``YYYY-MM-DD``,
    optionally ``T`` (or a space) ``HH:MM[:SS[.fff]]`` and ``Z`` or ``+HH:MM``; no offset means
    UTC.  Day-first or month-first forms (``01/06/2025``), names (``June 1 2025``), compact or
    week dates (``20250601``, ``2025-W22``), ``""``, ``"NaT"`` and missing values (``NaT``,
    ``NA``, ``NaN``) are refused, as are instants outside years 0001-9999 in UTC.

    Raises
    ------
    JettiQueryError
        Naming the accepted forms.

    Examples
    --------
    >>> to_instant("2025-06-01T14:30:00.1239+02:00")
    datetime.datetime(2025, 6, 1, 12, 30, 0, 123000, tzinfo=datetime.timezone.utc)
    >>> to_instant("01/06/2025")
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiQueryError: '01/06/2025' is not ISO-8601: a date (2025-06-01) or \
a date-time (2025-06-01T14:30, 2025-06-01 14:30:00.250) with Z or an offset \
(2025-06-01T14:30:00+02:00), or neither (read as UTC)
    """
    return _to_utc_datetime(value)


def _to_utc_datetime(value: Any) -> datetime.datetime:
    """Aware UTC ``datetime`` floored to milliseconds (JavaScript ``Date`` precision)."""
    if isinstance(value, str):
        instant = _parse_iso(value)
    elif _is_missing(value) or (isinstance(value, np.datetime64) and np.isnat(value)):
        raise JettiQueryError(f"{value!r} is a missing value, not a date-time; "
                              f"None is how to say NULL")
    elif isinstance(value, np.datetime64):
        instant = _from_datetime64(value)
    elif isinstance(value, pd.Timestamp):
        instant = value.to_pydatetime(warn=False)
    elif isinstance(value, datetime.datetime):
        instant = value
    elif isinstance(value, datetime.date):
        instant = datetime.datetime(value.year, value.month, value.day)
    else:
        raise JettiQueryError(f"{value!r} is not a date-time: give a date, datetime, pandas "
                              f"Timestamp, numpy datetime64 or a string in {ISO_FORMS}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        instant = instant.replace(tzinfo=_UTC)
    else:
        try:
            instant = instant.astimezone(_UTC)
        except OverflowError:
            raise JettiQueryError(f"{value!r} falls outside {_YEARS} in UTC") from None
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def _parse_iso(text: str) -> datetime.datetime:
    """An ISO-8601 date or date-time (see :func:`to_instant`); naive when it has no offset."""
    match = _ISO_INSTANT.fullmatch(text.strip())
    if match is None:
        raise JettiQueryError(f"{text!r} is not {ISO_FORMS}")
    year = int(match["year"])
    if not 1 <= year <= 9999:
        raise JettiQueryError(f"{text!r}: year {year} is outside {_YEARS}")
    tz: datetime.tzinfo | None = _UTC if match["offset"] else None
    if match["sign"]:
        hours, minutes = int(match["oh"]), int(match["om"])
        if hours > 23 or minutes > 59:
            raise JettiQueryError(f"{text!r}: {match['offset']} is not a UTC offset")
        offset = datetime.timedelta(hours=hours, minutes=minutes)
        tz = datetime.timezone(-offset if match["sign"] == "-" else offset)
    try:
        return datetime.datetime(
            year, int(match["month"]), int(match["day"]), int(match["hour"] or 0),
            int(match["minute"] or 0), int(match["second"] or 0),
            int((match["fraction"] or "")[:6].ljust(6, "0")), tzinfo=tz)
    except ValueError as exc:
        raise JettiQueryError(f"{text!r} is not a valid date-time ({exc})") from None


def _from_datetime64(value: np.datetime64) -> datetime.datetime:
    year = int(value.astype("datetime64[Y]").astype(np.int64)) + 1970
    if not 1 <= year <= 9999:
        raise JettiQueryError(f"{value!r}: year {year} is outside {_YEARS}")
    instant = value.astype("datetime64[us]").item()
    assert isinstance(instant, datetime.datetime)
    return instant


def _is_list_like(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset | range | np.ndarray | pd.Series
                      | pd.Index | pd.api.extensions.ExtensionArray)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, np.ndarray | pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        return list(value.tolist())
    return list(value)


def _scalar(value: Any, *, nan_is_null: bool = True) -> Any:
    """A plain Python scalar: numpy/pandas scalars unwrapped, missing values -> None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else _to_utc_datetime(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value) and nan_is_null:
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime.date):
        return _to_utc_datetime(value)
    return value


_INDEX_KEY = re.compile(r"0|[1-9][0-9]{0,9}")


def _js_items(mapping: Mapping[Any, Any]) -> list[tuple[str, Any]]:
    """Items in JavaScript's property order: integer-like keys first, ascending."""
    items = [(k if isinstance(k, str) else str(k), v) for k, v in mapping.items()]
    index = [kv for kv in items if _INDEX_KEY.fullmatch(kv[0]) and int(kv[0]) < 2**32 - 1]
    rest = [kv for kv in items if kv not in index]
    return sorted(index, key=lambda kv: int(kv[0])) + rest


def to_wire(value: Any) -> Any:
    """Nested params with every leaf a string (or None), formatted the JavaScript way.

    Examples
    --------
    >>> to_wire({"where": {"total": {"$gte": 1e-7}, "isActive": True, "saleId": None}})
    {'where': {'total': {'$gte': '1e-7'}, 'isActive': 'true', 'saleId': None}}
    """
    if isinstance(value, Mapping):
        return {k: to_wire(v) for k, v in _js_items(value)}
    if _is_list_like(value):
        return [to_wire(v) for v in _as_list(value)]
    value = _scalar(value, nan_is_null=False)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(value)
    if isinstance(value, datetime.datetime):
        return to_iso(value)
    raise JettiQueryError(f"cannot send a value of type {type(value).__name__}: {value!r}")


def encode(params: Mapping[str, Any], *, readable: bool = False) -> str:
    """Encode request parameters exactly as Node's ``qs.stringify(params)`` does.

    Brackets and values are percent-encoded (RFC 3986); None becomes ``key=``, empty lists and
    dicts vanish.  ``readable=True`` leaves the brackets raw (``encodeValuesOnly``), for display.

    Examples
    --------
    >>> encode({"where": {"id": {"$in": [1, 2]}}, "limit": 50, "from": 0})
    'where%5Bid%5D%5B%24in%5D%5B0%5D=1&where%5Bid%5D%5B%24in%5D%5B1%5D=2&limit=50&from=0'
    >>> encode({"where": {"saleId": {"$ne": None}}}, readable=True)
    'where[saleId][$ne]='
    """
    return qs_codec.encode(to_wire(params), EncodeOptions(encode_values_only=readable))


# --------------------------------------------------------------------------------------------
# Validation and normalisation
# --------------------------------------------------------------------------------------------


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


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


def _dedupe(values: Iterable[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in values:
        key = (type(v) is bool, v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


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


def where_is_empty(where: Mapping[str, Any]) -> bool:
    """True when ``where`` can match nothing for a plain reason (an empty ``$in`` or ``$or``).

    Examples
    --------
    >>> where_is_empty({"id": {"$in": []}}), where_is_empty({"$or": [{"id": {"$in": []}}]})
    (True, True)
    >>> where_is_empty({"$or": [{"id": {"$in": []}}, {"id": 3}]})
    False
    """
    for key, cond in where.items():
        if key == "$or":
            if all(where_is_empty(b) for b in cond):
                return True
        elif key == "$and":
            if any(where_is_empty(b) for b in cond):
                return True
        elif isinstance(cond, Mapping) and "$in" in cond and len(cond["$in"]) == 0:
            return True
    return False


def _norm_attributes(res: Resource, attributes: Any, path: str) -> tuple[str, ...] | None:
    if attributes is None:
        return None
    names = [attributes] if isinstance(attributes, str) else (
        _as_list(attributes) if _is_list_like(attributes) else None)
    if names is None:
        raise JettiQueryError(f"{path} must be a list of field names, got {attributes!r}")
    if not names:
        raise JettiQueryError(f"{path} is empty; pass None for every field")
    for name in names:
        if not isinstance(name, str):
            raise JettiQueryError(f"{path}: field names are strings, got {name!r}")
        res.field(name)
    return tuple(_dedupe(names))


def _with_needed(res: Resource, attrs: tuple[str, ...] | None,
                 needed: Iterable[str]) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """(sent attributes, added attributes); not sent at all when longer than ``MAX_ARRAY``."""
    if attrs is None:
        return None, ()
    added = tuple(n for n in _dedupe(needed) if n not in attrs and res.has_field(n))
    sent = attrs + added
    if len(sent) > MAX_ARRAY:
        return None, ()
    return sent, added


def _exclude(res: Resource, attrs: tuple[str, ...] | None,
             sent: tuple[str, ...] | None) -> tuple[str, ...]:
    """Credential fields to send as ``attributes[exclude]``: those not named, when no
    ``attributes`` list is sent and they fit in one array.

    >>> _exclude(CATALOG.resource("channels"), None, None)
    ('shipstationPassword',)
    >>> _exclude(CATALOG.resource("channels"), ("id", "shipstationPassword"), None)
    ()
    """
    if sent is not None:
        return ()
    names = tuple(n for n in res.credentials if attrs is None or n not in attrs)
    return names if len(names) <= MAX_ARRAY else ()


def parse_order(order: Any) -> Order | None:
    """Read an order given as ``"field"``, ``"-field"``, ``("field", "desc")``,
    ``("field", "desc", "nulls first")``, ``{"attribute", "descending", "nullsFirst"}`` or an
    :class:`Order` (no catalogue check; :func:`build_query` does that).

    Examples
    --------
    >>> parse_order("-dateOrdered")
    Order(attribute='dateOrdered', descending=True, nulls_first=False)
    >>> parse_order(("total", "ASC", "first"))
    Order(attribute='total', descending=False, nulls_first=True)
    >>> parse_order({"attribute": "id", "descending": True, "nullsFirst": True}).nulls_first
    True
    """
    if order is None or isinstance(order, Order):
        return order
    if isinstance(order, str):
        name = order[1:] if order[:1] in "-+" else order
        if not name:
            raise JettiQueryError(f"order {order!r} names no attribute")
        return Order(name, descending=order.startswith("-"))
    if isinstance(order, Mapping):
        unknown = set(order) - {"attribute", "descending", "nullsFirst", "nulls_first"}
        if unknown or "attribute" not in order:
            raise JettiQueryError(
                f"order dict takes 'attribute', 'descending', 'nullsFirst'; got {dict(order)!r}")
        nulls = order.get("nullsFirst", order.get("nulls_first", False))
        return Order(str(order["attribute"]), _flag(order.get("descending", False), "descending"),
                     _flag(nulls, "nullsFirst"))
    if isinstance(order, list | tuple):
        if len(order) == 1 and not isinstance(order[0], str):
            return parse_order(order[0])  # Sequelize style [["field", "DESC"]]
        if order and isinstance(order[0], str) and 1 <= len(order) <= 3:
            direction = order[1] if len(order) > 1 else "asc"
            if isinstance(direction, str) and direction.lower() in ("asc", "desc"):
                descending = direction.lower() == "desc"
            elif isinstance(direction, bool):
                descending = direction
            else:
                raise JettiQueryError(f"order direction must be 'asc' or 'desc', got {direction!r}")
            nulls_first = False
            if len(order) == 3:
                nulls = order[2]
                text = (nulls.lower().removeprefix("nulls").strip() if isinstance(nulls, str)
                        else nulls)
                if text not in ("first", "last", True, False):
                    raise JettiQueryError(f"order nulls must be 'first' or 'last', got {nulls!r}")
                nulls_first = text in ("first", True)
            return Order(order[0], descending, nulls_first)
    raise JettiQueryError(f"Jetti takes one order: 'field', '-field', ('field', 'desc') or "
                          f"{{'attribute': ..., 'descending': ..., 'nullsFirst': ...}}; "
                          f"got {order!r}")


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise JettiQueryError(f"order {name} must be True or False, got {value!r}")


def _related(parent: Resource, name: Any, path: str) -> tuple[Resource, str, Relation]:
    res = CATALOG.resource(name) if isinstance(name, str) and name in CATALOG else None
    link = parent.relation_to(res.model) if res is not None else None
    if res is None or link is None:
        aliases: dict[str, str] = {}
        for model in parent.related_models:
            rel_res = CATALOG.model(model)
            for alias in (model, rel_res.url, rel_res.key_one, rel_res.key_many):
                aliases.setdefault(alias, model)
        close = difflib.get_close_matches(str(name), list(aliases), n=6, cutoff=0.6)
        models = _dedupe(aliases[c] for c in close)[:3]
        hint = f"; did you mean {', '.join(repr(m) for m in models)}?" if models else "."
        related = parent.related_models
        listed = ", ".join(related[:40]) + (", ..." if len(related) > 40 else "")
        raise JettiQueryError(f"{path}: {parent.url} ({parent.model}) has no relation to "
                              f"{name!r}{hint} Related models: {listed}")
    return res, link[0], link[1]


def _norm_includes(parent: Resource, spec: Any, level: int, path: str) -> tuple[Include, ...]:
    if spec is None:
        return ()
    items = [spec] if isinstance(spec, str | Mapping | Include) else (
        _as_list(spec) if _is_list_like(spec) else None)
    if items is None:
        raise JettiQueryError(f"{path} must be a model name, a dict or a list of them")
    out: list[Include] = []
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        if isinstance(item, Include):
            item = {"model": item.model, "attributes": item.attributes,
                    "include": list(item.include) or None, "where": item.where or None}
        if isinstance(item, str):
            item = {"model": item}
        if not isinstance(item, Mapping) or "model" not in item:
            raise JettiQueryError(f"{here}: an include is a model name or a dict with 'model'")
        unknown = [k for k in item if k not in _INCLUDE_KEYS]
        if unknown:
            raise JettiQueryError(f"{here}: unknown include key(s) {unknown}; "
                                  f"allowed: {list(_INCLUDE_KEYS)}")
        res, kind, rel = _related(parent, item["model"], here)
        if any(inc.model == res.model for inc in out):
            raise JettiQueryError(f"{here}: {res.model} is included twice")
        nested_spec = item.get("include")
        if nested_spec and level >= MAX_INCLUDE_LEVELS:
            raise JettiQueryError(
                f"{here}[include]: includes nest at most {MAX_INCLUDE_LEVELS} levels; the "
                f"server's qs parser reads only {QS_DEPTH} bracket levels, so a third level "
                f"would arrive garbled. Query {res.url} separately and join locally.")
        nested = _norm_includes(res, nested_spec, level + 1, f"{here}[include]")
        attrs = _norm_attributes(res, item.get("attributes"), f"{here}[attributes]")
        needed = ["id"] + ([rel.foreign_key] if kind == "has_many" else [])
        needed += [c.relation.foreign_key for c in nested if c.kind == "belongs_to"]
        sent, added = _with_needed(res, attrs, needed)
        where = _norm_where(res, item.get("where"), f"{here}[where]")
        wire = _wire_where(res, where, None, f"{here}[where]")
        if wire is None:
            raise JettiQueryError(f"{here}[where] can match nothing (empty $in or $or); drop the "
                                  f"include or the condition")
        _check_arrays(wire, f"{here}[where]", "an include where cannot be split into several "
                      "requests; query the included resource separately instead")
        exclude = _exclude(res, attrs, sent) if level == 1 else ()
        out.append(Include(res.model, res, kind, rel, attrs, nested, wire, sent, added,
                           exclude))
    return tuple(out)


def _check_arrays(value: Any, path: str, advice: str) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_arrays(v, f"{path}[{k}]", advice)
    elif isinstance(value, list):
        if len(value) > MAX_ARRAY:
            raise JettiQueryError(f"{path} has {len(value)} elements; qs turns arrays longer "
                                  f"than {MAX_ARRAY} into objects and the server would "
                                  f"silently misread it; {advice}")
        for i, v in enumerate(value):
            _check_arrays(v, f"{path}[{i}]", advice)


def _where_fields(where: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, cond in where.items():
        if key in _WHERE_OPS:
            for branch in cond:
                out += _where_fields(branch)
        else:
            out.append(key)
    return out


def _check_local_credentials(res: Resource, attrs: tuple[str, ...] | None,
                             fields: Iterable[str]) -> None:
    """A condition applied locally needs the field's values: a credential must be named.

    >>> _check_local_credentials(CATALOG.resource("channels"), None, ["shipstationPassword"])
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiQueryError: where on credential field 'shipstationPassword' is \
applied locally and needs its values: name it in attributes (it is then read and cached like \
any field)
    """
    for name in _dedupe(fields):
        fld = res.fields_by_name.get(name)
        if fld is not None and fld.credential and (attrs is None or name not in attrs):
            raise JettiQueryError(
                f"where on credential field {name!r} is applied locally and needs its values: "
                f"name it in attributes (it is then read and cached like any field)")


def build_query(resource: str | Resource, *, where: Mapping[str, Any] | None = None,
                attributes: Any = None, include: Any = None, order: Any = None) -> Query:
    """Validate a query against the catalogue and normalise it.

    Parameters
    ----------
    resource
        Any catalogue alias (``"purchases"``, ``"purchase_items"``, ``"PurchaseItem"``) or a
        :class:`~jetti_frames.catalog.Resource`.
    where
        ``{field: value}`` (equality; None is SQL NULL), ``{field: [values]}`` (``$in``; any
        list, tuple, set, numpy array or pandas Series/Index), ``{field: {op: value}}`` with
        ``$eq $ne $in $notIn $gt $gte $lt $lte $like $notLike $between``, and
        ``{"$or"|"$and": [where, ...]}``.  Dates may be datetime, date, pandas Timestamp or ISO
        strings (naive means UTC).
    attributes
        Field names to return (None: all).
    include
        A model name or alias (``"PurchaseStatus"``, ``"purchase-statuses"``), a dict
        ``{"model", "attributes", "include", "where"}`` or a list of them; two levels at most.
    order
        ``"field"``, ``"-field"``, ``("field", "desc")`` or
        ``{"attribute", "descending", "nullsFirst"}``.

    Raises
    ------
    JettiQueryError
        For anything unknown or impossible, naming close matches where there are some.

    Examples
    --------
    >>> q = build_query("purchases", where={"purchaseStatusId": [3, 3, 4], "cancelledAt": None},
    ...                 attributes=["reference"], include="purchase_status")
    >>> q.where, q.include[0].kind, q.sent_attributes
    ({'purchaseStatusId': {'$in': [3, 4]}, 'cancelledAt': None}, 'belongs_to', \
('reference', 'id', 'purchaseStatusId'))
    >>> build_query("purchases", where={"purchaseTyp": "dropship"})
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiQueryError: purchases has no field 'purchaseTyp'; did you mean \
'purchaseType', 'purchaseId'?
    """
    res = resource if isinstance(resource, Resource) else CATALOG.resource(resource)
    full = _norm_where(res, where, "where")
    residual: list[dict[str, Any]] = []
    wire = _wire_where(res, full, residual, "where")
    post = residual[0] if len(residual) == 1 else ({"$and": residual} if residual else {})
    attrs = _norm_attributes(res, attributes, "attributes")
    parsed_order = parse_order(order)
    if parsed_order is not None:
        fld = res.fields_by_name.get(parsed_order.attribute)
        if fld is None:
            res.field(parsed_order.attribute)  # raises with suggestions
        elif fld.kind in ("json", "array"):
            raise JettiQueryError(f"order: cannot sort by {fld.kind} field {fld.name!r}")
    includes = _norm_includes(res, include, 1, "include")
    needed = ["id"]
    if parsed_order is not None:
        needed.append(parsed_order.attribute)
    needed += [inc.relation.foreign_key for inc in includes if inc.kind == "belongs_to"]
    needed += _where_fields(post)
    _check_local_credentials(res, attrs, _where_fields(post))
    sent, added = _with_needed(res, attrs, needed)
    query = Query(res, full, attrs, includes, parsed_order, wire or {}, post, sent, added,
                  is_empty=wire is None, exclude=_exclude(res, attrs, sent))
    for part in split_where(query):  # surface depth and size problems before any request
        request_params(part, sent, includes, parsed_order, limit=1, from_=0,
                       exclude=query.exclude)
    return query


# --------------------------------------------------------------------------------------------
# Splitting, keyset merging, request building
# --------------------------------------------------------------------------------------------


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
    >>> parts = split_where(build_query("purchases", where={"id": list(range(500))}))
    >>> len(parts), [len(p["id"]["$in"]) for p in parts][:2]
    (25, [20, 20])
    >>> split_where(build_query("purchases", where={"id": []}))
    []
    """
    if query.is_empty:
        return []
    return _alternatives(query.wire_where)


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


def _stricter(op: str, a: Any, b: Any) -> Any:
    x, y = _comparable(a, b)
    try:
        lower = op in ("$gt", "$gte")
        return (a if x >= y else b) if lower else (a if x <= y else b)
    except TypeError:
        raise JettiQueryError(f"cannot compare {a!r} and {b!r} for {op}") from None


def _same(a: Any, b: Any) -> bool:
    x, y = _comparable(a, b)
    return bool(x == y)


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


def _leaves(value: Any, path: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, str(i)))
    else:
        yield path, value


def _check_params(params: Mapping[str, Any]) -> None:
    _check_arrays(params, "", "split it first (see split_where)")
    leaves = list(_leaves(params, ()))
    if len(leaves) > QS_PARAMETER_LIMIT:
        raise JettiQueryError(f"the query has {len(leaves)} parameters; the server's qs parser "
                              f"reads only {QS_PARAMETER_LIMIT}. Use fewer values.")
    for path, _ in leaves:
        if len(path) - 1 > QS_DEPTH:
            key = path[0] + "".join(f"[{p}]" for p in path[1:])
            raise JettiQueryError(
                f"{key} nests {len(path) - 1} bracket levels; the server's qs parser reads only "
                f"{QS_DEPTH} and would misread the rest. Flatten the condition (e.g. merge "
                f"$and terms into one field's operators, or use $in instead of $or).")
    size = len(encode(params))
    if size > MAX_QUERY_CHARS:
        raise JettiQueryError(f"the query string would be {size} characters; Node refuses "
                              f"request heads over 16 KiB. Use shorter values or fewer of them.")


def request_params(query_where: Mapping[str, Any] | None,
                   attributes: Sequence[str] | None = None,
                   include: Sequence[Include | Mapping[str, Any]] | None = (),
                   order: Any = None, limit: int | None = None,
                   from_: int | None = None, *,
                   exclude: Sequence[str] = ()) -> dict[str, Any]:
    """One request's parameters in Jetti's wire form, checked for qs limits.

    ``query_where`` is one of :func:`split_where`'s dicts (possibly with keyset constraints from
    :func:`and_where`); ``attributes`` normally ``Query.sent_attributes``, and without them
    ``exclude`` (normally ``Query.exclude``) is sent as ``attributes[exclude]``.  Values stay
    Python values; :func:`encode` formats them.

    Raises
    ------
    JettiQueryError
        An array longer than ``MAX_ARRAY``, nesting deeper than qs reads, or an oversized query.

    Examples
    --------
    >>> request_params({"id": {"$gt": 10}}, ["id"], (), "id", limit=100, from_=0)
    {'where': {'id': {'$gt': 10}}, 'attributes': ['id'], 'order': {'attribute': 'id', \
'descending': False}, 'limit': 100, 'from': 0}
    """
    params: dict[str, Any] = {}
    if query_where:
        params["where"] = dict(query_where)
    if attributes:
        params["attributes"] = list(attributes)
    elif exclude:
        params["attributes"] = {"exclude": list(exclude)}
    if include:
        params["include"] = [inc.to_wire() if isinstance(inc, Include) else dict(inc)
                             for inc in include]
    parsed = parse_order(order)
    if parsed is not None:
        params["order"] = parsed.to_wire()
    if limit is not None:
        params["limit"] = int(limit)
    if from_ is not None:
        params["from"] = int(from_)
    _check_params(params)
    return params


def query_urls(query: Query, *, limit: int | None = None, readable: bool = False) -> list[str]:
    """``<url>.json?<qs>`` of each request of the first page, for display.

    Examples
    --------
    >>> query_urls(build_query("purchase-statuses", where={"name": "open"}), readable=True)
    ['purchase-statuses.json?where[name]=open']
    """
    urls = []
    for part in split_where(query):
        params = request_params(part, query.sent_attributes, query.include, query.order, limit,
                                exclude=query.exclude)
        text = encode(params, readable=readable)
        urls.append(f"{query.resource.url}.json" + (f"?{text}" if text else ""))
    return urls


def explain_query(query: Query, *, limit: int | None = None, readable: bool = True) -> str:
    """A human-readable account of the requests a query makes and what is done locally.

    Examples
    --------
    >>> print(explain_query(build_query("purchases", where={"id": []})))
    GET purchases: no request, the answer is known to be empty
    """
    if query.is_empty:
        return f"GET {query.resource.url}: no request, the answer is known to be empty"
    urls = query_urls(query, limit=limit, readable=readable)
    lines = [f"GET {query.resource.url}: {len(urls)} request stream(s)"]
    lines += [f"  {u}" for u in urls]
    if query.post_filter:
        lines.append(f"  then keep records matching {query.post_filter!r} locally")
    if query.select_locally:
        lines.append(f"  attributes not sent (more than {MAX_ARRAY}); "
                     f"{len(query.attributes or ())} columns selected locally")
    if query.added_attributes:
        lines.append(f"  added for paging/ordering/joins: {', '.join(query.added_attributes)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Local evaluation
# --------------------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


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
