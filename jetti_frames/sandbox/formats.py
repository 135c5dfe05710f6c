"""How the sandbox writes the values its database holds: the ``zones`` and ``numbers`` knobs.

Jetti writes an instant as ISO-8601 text with an offset (``2024-05-04T09:42:00+00:00``); a
server set to another zone writes the same instant as ``2024-05-04T11:42:00+02:00``, and one
with summer time changes offset during the year: the order of the texts is then not the order
of the instants.  ``zones="mixed"`` writes each record's date-times at one of :data:`OFFSETS`,
picked by the record's id: the harshest case, neighbouring rows a day of offsets apart.

A server on PostgreSQL whose money columns are ``NUMERIC`` sends them as text, as node-postgres
reads them (``"404.64"``, ``"12.50"``): ``"1000.00"`` then sorts before ``"404.64"``.
``numbers="text"`` writes every ``number`` field so.

Filters and ``order`` still compare the stored values, as the server's database does.

Examples
--------
>>> local("2024-05-04T09:42:00+00:00", "+05:45")
'2024-05-04T15:27:00+05:45'
>>> local("2024-05-04T09:42:00.250000+00:00", "-09:30")
'2024-05-04T00:12:00.250000-09:30'
>>> records = [{"id": 1, "createdAt": "2024-05-04T09:42:00+00:00", "total": 12.5}]
>>> write_values(records, "purchases", [], zones="mixed", numbers="text")
>>> records[0]["createdAt"], records[0]["total"]
('2024-05-04T15:27:00+05:45', '12.50')
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from ..catalog import CATALOG

__all__ = ["NUMBERS", "OFFSETS", "ZONES", "local", "numeric_text", "write_values"]

#: The ``zones`` knob's values: ``"utc"`` (``+00:00``, the default) or ``"mixed"``.
ZONES = ("utc", "mixed")
#: The ``numbers`` knob's values: ``"json"`` (JSON numbers, the default) or ``"text"``.
NUMBERS = ("json", "text")
#: The offsets of ``zones="mixed"``, record ``id`` modulo their count picks one.
OFFSETS = ("+00:00", "+05:45", "-09:30", "+14:00", "-03:00", "+01:00", "-11:00")


def local(text: str, offset: str) -> str:
    """The instant ``text`` written at ``offset`` (``+HH:MM``), fractions kept as they are."""
    sign = -1 if offset[0] == "-" else 1
    zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    at = datetime.fromisoformat(text).astimezone(zone)
    return at.isoformat(timespec="microseconds" if at.microsecond else "seconds")


def numeric_text(value: float) -> str:
    """A number as a ``NUMERIC`` column's text: two decimals, more when it has them.

    >>> numeric_text(1000), numeric_text(0.1234)
    ('1000.00', '0.1234')
    """
    return f"{value:.2f}" if round(value, 2) == value else repr(float(value))


def write_values(records: Sequence[dict[str, Any]], url: str, includes: Sequence[Any], *,
                 zones: str, numbers: str) -> None:
    """Write the date-times (``zones``) and numbers (``numbers``) of ``records`` of resource
    ``url`` and of their ``includes`` (a query plan's) in place."""
    if zones == "utc" and numbers == "json":
        return
    fields = CATALOG.resource(url).fields
    dates = [f.name for f in fields if f.kind == "datetime"] if zones == "mixed" else []
    money = [f.name for f in fields if f.kind == "number"] if numbers == "text" else []
    for rec in records:
        ident = rec.get("id")
        offset = OFFSETS[ident % len(OFFSETS)] if isinstance(ident, int) else OFFSETS[1]
        for name in dates:
            value = rec.get(name)
            if isinstance(value, str):
                rec[name] = local(value, offset)
        for name in money:
            value = rec.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                rec[name] = numeric_text(value)
    for inc in includes:  # a shared included record is written once
        write_values(inc.records_in(records), inc.res.url, inc.children, zones=zones,
                     numbers=numbers)
