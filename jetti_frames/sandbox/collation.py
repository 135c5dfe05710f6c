"""How the sandbox compares text: as a PostgreSQL database with ICU collations does, or by
code point.

``collation="natural"`` (the default) orders text as a database whose columns have a
language collation (ICU's, as PostgreSQL's ``en-US-x-icu``) and enum types: strings
character by character, spaces before punctuation before digits before letters, case and
accents only breaking ties (``"apple"`` before ``"Banana"``, ``"du Bois"`` before ``"Dublin"``,
``"Évian"`` after ``"Eve"``), enum values in the order the OpenAPI document declares them, not
alphabetically.  ``collation="binary"`` orders strings and enum values by code point, as
PostgreSQL's ``C`` collation does.  ``order`` and the range filters (``$gt``, ``$gte``,
``$lt``, ``$lte``, ``$between``) compare the same way; equality stays exact.

The string order is :func:`jetti_frames._text_order.language_key`, checked against
PostgreSQL 15's ``en-US-x-icu`` (``tests/data/icu-order.json``).

Examples
--------
>>> sorted(["Banana", "apple", "du Bois", "Dublin", "Évian", "Eve"], key=language_key)
['apple', 'Banana', 'du Bois', 'Dublin', 'Eve', 'Évian']
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .._text_order import language_key
from ..catalog import Resource

__all__ = ["COLLATIONS", "comparable", "register", "sort_expression"]

COLLATIONS = ("binary", "natural")


def _compare(a: str, b: str) -> int:
    ka, kb = language_key(a), language_key(b)
    return (ka > kb) - (ka < kb)


def register(con: sqlite3.Connection) -> None:
    """Let SQL on ``con`` say ``COLLATE natural_text``."""
    con.create_collation("natural_text", _compare)


def _enum(res: Resource, name: str) -> tuple[str, ...] | None:
    found = res.fields_by_name.get(name)
    return found.enum if found is not None and found.kind == "enum" else None


def sort_expression(res: Resource, name: str, column: str, collation: str) -> str:
    """The SQL that ``column`` (field ``name``) is ordered and range-compared by."""
    if collation != "natural":
        return column
    found = res.fields_by_name.get(name)
    if found is not None and found.kind == "string":
        return f"{column} COLLATE natural_text"
    values = _enum(res, name)
    if values:
        whens = " ".join(f"WHEN '{v}' THEN {i}" for i, v in enumerate(values))
        return f"(CASE {column} {whens} ELSE {len(values)} END)"
    return column


def comparable(res: Resource, name: str, value: Any, collation: str) -> Any:
    """A filter's value as :func:`sort_expression` compares it (an enum value's position).

    Raises ``ValueError`` for a value the enum does not declare (PostgreSQL refuses it).
    """
    values = _enum(res, name) if collation == "natural" else None
    if not values or value is None:
        return value
    if value not in values:
        raise ValueError(f"invalid input value for enum {name}: {value!r}")
    return values.index(value)
