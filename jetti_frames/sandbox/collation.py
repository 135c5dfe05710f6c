"""How the sandbox compares text: as a PostgreSQL server usually does, or by code point.

``collation="natural"`` (the default) orders text as a server whose database has a language
collation and enum types: strings by letters and digits first, case, accents and punctuation
only breaking ties (``"de Vries"`` after ``"Devon"``, ``"apple"`` before ``"Banana"``), enum
values in the order the OpenAPI document declares them, not alphabetically.
``collation="binary"`` orders strings and enum values by code point, as PostgreSQL's ``C``
collation does.  ``order`` and the range filters (``$gt``, ``$gte``, ``$lt``, ``$lte``,
``$between``) compare the same way; equality stays exact.

Examples
--------
>>> sorted(["Banana", "apple", "de Vries", "Devon", "Évian", "Eve"], key=natural_key)
['apple', 'Banana', 'Devon', 'de Vries', 'Eve', 'Évian']
"""

from __future__ import annotations

import sqlite3
import unicodedata
from typing import Any

from ..catalog import Resource

__all__ = ["COLLATIONS", "comparable", "natural_key", "register", "sort_expression"]

COLLATIONS = ("binary", "natural")


def natural_key(text: str) -> tuple[str, str, str]:
    """The sort key of ``text`` under ``natural``: its letters and digits without case or
    accents, then the folded text, then lower case before upper.  Only equal texts have
    equal keys."""
    folded = text.casefold()
    base = "".join(ch for ch in unicodedata.normalize("NFKD", folded)
                   if ch.isalnum() and not unicodedata.combining(ch))
    return base, folded, text.swapcase()


def _compare(a: str, b: str) -> int:
    ka, kb = natural_key(a), natural_key(b)
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
