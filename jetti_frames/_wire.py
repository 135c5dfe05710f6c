"""Jetti's wire format: Python values written as JavaScript and Node's ``qs`` write them.

Numbers as ``Number#toString`` (:func:`js_number`), instants as ``Date#toISOString``
(:func:`to_iso`, read by the one rule :func:`to_instant`), nested parameters with string leaves
(:func:`to_wire`) and the query string of ``qs.stringify`` (:func:`encode`); also the limits of
the server's ``qs.parse`` that every request must respect (``_check_params``).

Examples
--------
>>> encode({"where": {"createdAt": {"$gte": datetime.date(2019, 1, 1)}}})
'where%5BcreatedAt%5D%5B%24gte%5D=2019-01-01T00%3A00%3A00.000Z'
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import qs_codec
from qs_codec import EncodeOptions

from .errors import JettiQueryError
from .settings import MAX_ARRAY

#: Bracket levels below the root key that ``qs.parse`` reads with default options.
QS_DEPTH = 5
#: Node's HTTP server refuses a request head over 16 KiB; keep the query string well below it.
MAX_QUERY_CHARS = 15 * 1024
#: ``qs.parse`` reads at most this many parameters.
QS_PARAMETER_LIMIT = 1000

_UTC = datetime.UTC


def js_number(value: float | int) -> str:
    """Format a number as JavaScript's ``Number.prototype.toString`` does.

    Examples
    --------
    >>> [js_number(v) for v in (1e-7, 1e21, 0.1 + 0.2, 10.0, -0.0, 123456789012345680000.0)]
    ['1e-7', '1e+21', '0.30000000000000004', '10', '0', '123456789012345680000']
    """
    if isinstance(value, bool):
        raise JettiQueryError("js_number takes a number, not a bool")
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


def _dedupe(values: Iterable[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in values:
        key = (type(v) is bool, v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


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


def _leaves(value: Any, path: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, str(i)))
    else:
        yield path, value


def encode_checked(params: Mapping[str, Any]) -> str:
    """:func:`encode` of request parameters checked for the server's ``qs`` limits, encoding
    them once.

    Examples
    --------
    >>> encode_checked({"where": {"id": {"$gt": 5}}, "limit": 100})
    'where%5Bid%5D%5B%24gt%5D=5&limit=100'
    """
    text = encode(params)
    _check_params(params, text)
    return text


def _check_params(params: Mapping[str, Any], text: str | None = None) -> None:
    """Raise :class:`JettiQueryError` for parameters the server's ``qs`` would misread;
    ``text`` is their :func:`encode` when already known."""
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
    size = len(encode(params) if text is None else text)
    if size > MAX_QUERY_CHARS:
        raise JettiQueryError(f"the query string would be {size} characters; Node refuses "
                              f"request heads over 16 KiB. Use shorter values or fewer of them.")
