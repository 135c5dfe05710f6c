"""The query form's words and values: pickers' options and tooltips, typed-in values, the
``where`` a filter list stands for and the code a form shows (no widget here).

Examples
--------
>>> build_where([("purchaseType", "=", "dropship"), ("total", "$gte", 100.0)])
{'purchaseType': 'dropship', 'total': {'$gte': 100.0}}
>>> print(fields_help(CATALOG.resource("dropship-providers"), ["commissionRate"]))
commissionRate: number, may be null
This is the percentage or fixed amount of the price you will keep.
"""

from __future__ import annotations

import datetime as dt
import pprint
from collections.abc import Iterable, Sequence
from typing import Any

from ._where import convert_value
from ._wire import to_iso
from .catalog import CATALOG, Field, Resource
from .errors import JettiQueryError

#: Resources an analyst reaches for first; listed at the top of the picker.
ANALYTICS_RESOURCES = (
    "purchases", "purchase-items", "purchase-statuses", "sales", "sale-items",
    "dropship-providers", "products", "variants", "channels", "customers", "warehouses",
    "variant-warehouses", "fulfillments", "fulfillment-items", "dropshipments",
    "dropshipment-items", "purchase-invoices", "sale-returns", "sale-return-items", "vendors",
    "currencies",
)

NULL, NOT_NULL, EQ = "is null", "is not null", "="
_ORDERED = [EQ, "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$notIn", NULL, NOT_NULL]
#: Operators offered for each field kind.
OPERATORS: dict[str, list[str]] = {
    "integer": _ORDERED,
    "number": _ORDERED,
    "datetime": [EQ, "$gt", "$gte", "$lt", "$lte", NULL, NOT_NULL],
    "enum": [EQ, "$ne", "$in", "$notIn", NULL, NOT_NULL],
    "string": [EQ, "$ne", "$in", "$notIn", "$like", NULL, NOT_NULL],
    "boolean": [EQ, "$ne", NULL, NOT_NULL],
    "array": [NULL, NOT_NULL],
    "json": [NULL, NOT_NULL],
}
_LIST_OPS = ("$in", "$notIn")


def resource_options() -> list[str]:
    """Resource names for the picker: the analytics resources first, then the rest A-Z.

    >>> resource_options()[:3]
    ['purchases', 'purchase-items', 'purchase-statuses']
    """
    first = [name for name in ANALYTICS_RESOURCES if name in CATALOG]
    rest = sorted(r.url for r in CATALOG if r.url not in first)
    return first + rest


def field_options(resource: Resource) -> list[tuple[str, str]]:
    """``(label, field)`` pairs for an attribute picker; credential fields are marked.

    A credential is only read when picked (and is then stored in the HTTP cache like any field).

    >>> [label for label, name in field_options(CATALOG.resource("channels")) if label != name]
    ['🔒 shipstationPassword (credential)']
    """
    return [(f"🔒 {f.name} (credential)" if f.credential else f.name, f.name)
            for f in resource.fields]


_KIND_TEXT = {"integer": "whole number", "number": "number", "boolean": "true/false",
              "datetime": "date-time (UTC)", "string": "text", "json": "JSON"}


def field_help(field: Field) -> str:
    """What a field holds, for a tooltip: its type, its values, whether it may be null, and
    Jetti's description where it says more than the name.

    >>> purchases = CATALOG.resource("purchases")
    >>> field_help(purchases.field("total")), field_help(purchases.field("cancelledAt"))
    ('total: number', 'cancelledAt: date-time (UTC), may be null')
    >>> field_help(purchases.field("paymentStatus"))
    'paymentStatus: one of notPaid, partiallyPaid, paid (default notPaid)'
    >>> print(field_help(CATALOG.resource("variants").field("taxable")))
    taxable: true/false
    Whether a tax is charged when the product variant is sold.
    """
    if field.kind == "enum":
        text = "one of " + ", ".join(field.enum or ())
        if isinstance(field.default, str):
            text += f" (default {field.default})"
    elif field.kind == "array":
        text = f"list of {field.items or 'values'}"
    else:
        text = _KIND_TEXT.get(field.kind, field.kind)
    if field.nullable:
        text += ", may be null"
    if field.credential:
        text += ", a credential: read only when picked"
    about = f"\n{field.description}" if field.description else ""
    return f"{field.name}: {text}{about}"


#: Fields whose help a picker's tooltip shows at most.
HELP_FIELDS = 12


def fields_help(resource: Resource, names: Sequence[str]) -> str:
    """A field picker's tooltip: :func:`field_help` of each picked field (the first
    ``HELP_FIELDS``), or what the picker is for when nothing is picked.

    >>> fields_help(CATALOG.resource("purchases"), [])
    'purchases fields to read (none picked: every field); pick some to see what they hold here'
    >>> print(fields_help(CATALOG.resource("dropship-providers"), ["name", "commissionRate"]))
    name: text
    <BLANKLINE>
    commissionRate: number, may be null
    This is the percentage or fixed amount of the price you will keep.
    """
    if not names:
        return (f"{resource.url} fields to read (none picked: every field); pick some to see "
                "what they hold here")
    shown = [field_help(resource.field(name)) for name in names[:HELP_FIELDS]]
    if len(names) > HELP_FIELDS:
        shown.append(f"... and {len(names) - HELP_FIELDS} more")
    return "\n\n".join(shown)


def parse_scalar(kind: str, text: str) -> Any:
    """Convert one typed-in value to the Python value of a field kind.

    The rule is :func:`jetti_frames.query.convert_value`'s, the one ``read_jetti`` applies;
    date-times come back as the ISO text that is sent (see :func:`iso_datetime`).

    >>> parse_scalar("integer", " 42 "), parse_scalar("number", "1.5"), parse_scalar("enum", "paid")
    (42, 1.5, 'paid')
    """
    return _shown(convert_value(Field("value", kind), "$eq", text.strip(), "text"))


def parse_list(kind: str, text: str) -> list[Any]:
    """Split comma-separated text into typed values (for ``$in`` and ``$notIn``).

    >>> parse_list("integer", "3, 1,2,")
    [3, 1, 2]
    """
    return [parse_scalar(kind, part) for part in text.split(",") if part.strip()]


def iso_datetime(value: Any) -> str:
    """A date or datetime as the ISO-8601 UTC text sent for it, the way the form writes it in code.

    Takes what ``read_jetti`` takes (:func:`jetti_frames.query.to_instant`): a date, datetime,
    Timestamp or an ISO-8601 string; naive means UTC.

    >>> iso_datetime(dt.date(2024, 3, 1))
    '2024-03-01T00:00:00.000Z'
    >>> iso_datetime("2024-03-01 12:30")
    '2024-03-01T12:30:00.000Z'
    """
    return to_iso(value)


def _shown(value: Any) -> Any:
    """A converted value as the form shows it in code: date-times as the ISO text sent."""
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return to_iso(value) if isinstance(value, dt.datetime) else value


def build_where(conditions: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """Turn ``(field, operator, value)`` rows into a ``where`` dict.

    ``"="`` gives a bare value, ``"is null"``/``"is not null"`` give ``None``/``{"$ne": None}``;
    several operators on one field merge into one dict.

    >>> build_where([("createdAt", "$gte", "2024-01-01"), ("saleId", "is not null", None),
    ...              ("createdAt", "$lt", "2024-02-01")])
    {'createdAt': {'$gte': '2024-01-01', '$lt': '2024-02-01'}, 'saleId': {'$ne': None}}
    """
    where: dict[str, Any] = {}
    for name, op, value in conditions:
        if op == NULL:
            op, value = EQ, None
        elif op == NOT_NULL:
            op, value = "$ne", None
        current = where.get(name, _MISSING)
        if op == EQ:
            if current is not _MISSING:
                raise JettiQueryError(f"{name}: '=' cannot be combined with another condition")
            where[name] = value
            continue
        if current is _MISSING:
            where[name] = {op: value}
        elif isinstance(current, dict) and op not in current:
            current[op] = value
        else:
            raise JettiQueryError(f"{name}: two conditions with {op!r} or '=' and {op!r}")
    return where


_MISSING = object()


def format_call(func: str, resource: str, options: dict[str, Any], *,
                extra_args: Iterable[str] = (), connection: dict[str, str] | None = None,
                imports: Iterable[str] = ()) -> str:
    """Python code calling ``func`` with the form's options, one argument a line.

    ``connection`` maps keyword names to Python expressions (e.g. ``{"token": "SANDBOX_TOKEN"}``).

    >>> print(format_call("read_jetti", "purchases", {"where": {"id": 3}, "limit": None}))
    from jetti_frames import read_jetti
    <BLANKLINE>
    df = read_jetti(
        "purchases",
        where={'id': 3},
    )
    """
    module = "jetti_frames.snapshot" if func == "snapshot" else "jetti_frames"
    lines = [f"from {module} import {func}", *imports, ""]
    lines.append(f"{'info' if func == 'snapshot' else 'df'} = {func}(")
    lines.append(f'    "{resource}",')
    lines.extend(f"    {arg}," for arg in extra_args)
    for key, value in options.items():
        if value is None or value == [] or value == {}:
            continue
        text = pprint.pformat(value, width=96 - len(key), sort_dicts=False)
        lines.append(f"    {key}={text},".replace("\n", "\n    " + " " * (len(key) + 1)))
    for key, expr in (connection or {}).items():
        lines.append(f"    {key}={expr},")
    lines.append(")")
    return "\n".join(lines)
