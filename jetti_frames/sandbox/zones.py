"""The sandbox's ``zones`` knob: date-times written with offsets other than UTC.

Jetti writes an instant as ISO-8601 text with an offset (``2024-05-04T09:42:00+00:00``); a
server set to another zone writes the same instant as ``2024-05-04T11:42:00+02:00``, and one
with daylight saving time changes offset during the year.  Then the order of the texts is not
the order of the instants, and equal instants need not be equal texts.  ``zones="mixed"``
writes each record's date-times with one of :data:`OFFSETS`, picked by the record's id: the
harshest case, where neighbouring rows differ by up to a day of offsets.  Filters and ``order``
still compare the stored instants, as the server's database does.

Examples
--------
>>> local("2024-05-04T09:42:00+00:00", "+05:45")
'2024-05-04T15:27:00+05:45'
>>> local("2024-05-04T09:42:00.250000+00:00", "-09:30")
'2024-05-04T00:12:00.250000-09:30'
>>> records = [{"id": 1, "createdAt": "2024-05-04T09:42:00+00:00", "notes": None}]
>>> write_zones(records, "purchases", [])
>>> records[0]["createdAt"]
'2024-05-04T15:27:00+05:45'
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from ..catalog import CATALOG

__all__ = ["OFFSETS", "ZONES", "local", "write_zones"]

#: The knob's values: ``"utc"`` (``+00:00``, the default) or ``"mixed"``.
ZONES = ("utc", "mixed")
#: The offsets of ``zones="mixed"``, record ``id`` modulo their count picks one.
OFFSETS = ("+00:00", "+05:45", "-09:30", "+14:00", "-03:00", "+01:00", "-11:00")


def local(text: str, offset: str) -> str:
    """The instant ``text`` written at ``offset`` (``+HH:MM``), fractions kept as they are."""
    sign = -1 if offset[0] == "-" else 1
    zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    at = datetime.fromisoformat(text).astimezone(zone)
    return at.isoformat(timespec="microseconds" if at.microsecond else "seconds")


def write_zones(records: Sequence[dict[str, Any]], url: str, includes: Sequence[Any]) -> None:
    """Write the date-times of ``records`` of resource ``url`` (and of their ``includes``, a
    query plan's) in place, each record at the offset its id picks."""
    fields = [f.name for f in CATALOG.resource(url).fields if f.kind == "datetime"]
    for rec in records:
        ident = rec.get("id")
        offset = OFFSETS[ident % len(OFFSETS)] if isinstance(ident, int) else OFFSETS[1]
        for name in fields:
            value = rec.get(name)
            if isinstance(value, str):
                rec[name] = local(value, offset)
    for inc in includes:
        key = inc.res.key_one if inc.kind == "belongs_to" else inc.res.key_many
        children: dict[int, dict[str, Any]] = {}  # a shared included record is written once
        for rec in records:
            value = rec.get(key)
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, dict):
                    children[id(child)] = child
        write_zones(list(children.values()), inc.res.url, inc.children)
