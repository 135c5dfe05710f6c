"""The server's order of text values (strings and enums), asked of the server.

A read in a text order that is put together locally (several parts, or every record of a
string order) cannot sort by code point: a PostgreSQL server orders strings by its database's
collation (``"apple"`` before ``"Banana"``, ``"du Bois"`` among the D's) and enum values in
their declared order.  So the client asks: one record per distinct value (the lowest id), in
requests of ``where[id][$in]`` ordered by the attribute, each answer giving the order of its
values.

* Values that fit one request are ranked exactly as the server orders them.
* More values: one request orders a sample spread over them, which picks the first guess
  (:data:`GUESSES`: code point, then ICU's language order, :func:`language_key`) that agrees
  with it.  All values are then sent in that order in requests of consecutive values that
  overlap by one.  When every answer keeps its values in the guessed order, that is the
  server's order for all of them (each overlap links one request to the next).  When no
  guess agrees, no request can tell how values of different requests compare, and
  :class:`JettiOrderError` says so.

:func:`learn_ranks` is the whole procedure over an ``ask`` function that sends requests.

Examples
--------
>>> rows = [{"id": 3, "name": "b"}, {"id": 1, "name": "B"}, {"id": 2, "name": "b"}]
>>> representatives(rows, "name")
{'B': 1, 'b': 2}
>>> batches(["a", "b", "c", "d", "e"], 3)
[['a', 'b', 'c'], ['c', 'd', 'e']]
>>> ranks([["a", "b", "c"], ["c", "d", "e"]], [["a", "b", "c"], ["c", "d", "e"]])
{'a': 0, 'b': 1, 'c': 2, 'd': 3, 'e': 4}
>>> ranks([["B", "a"]], [["a", "B"]])          # one request: the server's order, whatever it is
{'a': 0, 'B': 1}
>>> sorted(["Banana", "apple", "du Bois", "Dublin", "St. Louis", "Stanford"], key=language_key)
['apple', 'Banana', 'du Bois', 'Dublin', 'St. Louis', 'Stanford']
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .errors import JettiDataError, JettiOrderError
from .settings import MAX_ARRAY

__all__ = ["GUESSES", "TEXT_KINDS", "batches", "language_key", "learn_ranks",
           "ranking_where", "ranks", "representatives", "spread"]

#: Kinds whose order the server decides (a collation, an enum type's declared order).
TEXT_KINDS = ("string", "enum")


def language_key(text: Any) -> tuple[Any, ...]:
    """A language collation's order, as ICU's root collation (PostgreSQL's ``und-x-icu`` and
    ``en-US-x-icu``, and glibc 2.28 locales) has it for common text: character by character,
    spaces before punctuation before symbols before digits before letters, letters without
    case or accents; then accents; then lower case before upper."""
    value = unicodedata.normalize("NFKD", str(text))
    base = [ch for ch in value if not unicodedata.combining(ch)]
    primary = tuple((_CLASSES.get(unicodedata.category(ch)[0], 6), ch.casefold()) for ch in base)
    return primary, value.casefold(), tuple(not ch.islower() for ch in base)


#: Character classes in ICU's primary order: spaces, punctuation, symbols, digits, letters.
_CLASSES = {"Z": 0, "P": 1, "S": 2, "N": 4, "L": 5}


def _code_point(value: Any) -> Any:
    return value


#: The orders tried, in turn, for values too many for one request.
GUESSES: tuple[Callable[[Any], Any], ...] = (_code_point, language_key)


def representatives(records: Iterable[Mapping[str, Any]], attribute: str) -> dict[Any, Any]:
    """Each distinct non-null value of ``attribute``, with the lowest id holding it, by value
    (code point).  Raises :class:`~jetti_frames.errors.JettiDataError` for a value that is
    not text."""
    lowest: dict[Any, Any] = {}
    for record in records:
        value, key = record.get(attribute), record.get("id")
        if value is not None and not isinstance(value, str):
            raise JettiDataError(f"column {attribute!r}: cannot order {value!r} as text")
        if value is not None and key is not None and (value not in lowest
                                                       or key < lowest[value]):
            lowest[value] = key
    return {value: lowest[value] for value in sorted(lowest)}


def learn_ranks(values: Sequence[Any], size: int,
                ask: Callable[[list[list[Any]]], list[list[Any]]]) -> dict[Any, int]:
    """Each of ``values`` (distinct) ranked in the server's order, asking ``ask`` (runs of
    values in, each run's values in the server's order out) in runs of at most ``size``.

    >>> server = lambda runs: [sorted(run, key=str.casefold) for run in runs]
    >>> learn_ranks(["b", "A", "c", "B"], 4, server)
    {'A': 0, 'b': 1, 'B': 2, 'c': 3}
    >>> ranked = learn_ranks([f"{c}{i}" for c in "aBcD" for i in range(5)], 6, server)
    >>> list(ranked)[:7]
    ['a0', 'a1', 'a2', 'a3', 'a4', 'B0', 'B1']
    """
    values = list(values)
    if len(values) <= size:
        return ranks([values], ask([values]))
    sample = spread(values, size)
    seen = list(ranks([sample], ask([sample])))
    for guess in GUESSES:
        if sorted(sample, key=guess) == seen:
            asked = batches(sorted(values, key=guess), size)
            return ranks(asked, ask(asked))
    raise JettiOrderError(
        f"the server orders text values neither by code point nor as a language collation "
        f"does ({seen[:4]!r} ...), and they are too many to be ordered in one request, so the "
        "order of the whole result cannot be told: read without order= and sort the frame, or "
        "narrow the read with where=")


def spread(values: Sequence[Any], size: int) -> list[Any]:
    """``size`` of ``values`` spread evenly over them, the first and the last included.

    >>> spread(list(range(10)), 4)
    [0, 3, 6, 9]
    """
    if len(values) <= size:
        return list(values)
    return [values[round(i * (len(values) - 1) / (size - 1))] for i in range(size)]


def batches(values: Sequence[Any], size: int) -> list[list[Any]]:
    """``values`` (at least two) in runs of at most ``size``, each starting with the last
    value of the one before."""
    if len(values) <= size:
        return [list(values)]
    step = size - 1
    return [list(values[start:start + size]) for start in range(0, len(values) - 1, step)]


def ranking_where(ids: Sequence[Any], packed: bool) -> dict[str, Any]:
    """The ``where`` asking for the records ``ids``: one ``$in`` array, or (``packed``, more
    than qs reads as one array) ``$or`` of arrays of :data:`MAX_ARRAY`."""
    if len(ids) <= MAX_ARRAY or not packed:
        return {"id": {"$in": list(ids)}}
    return {"$or": [{"id": {"$in": list(ids[i:i + MAX_ARRAY])}}
                    for i in range(0, len(ids), MAX_ARRAY)]}


def ranks(asked: Sequence[Sequence[Any]], answered: Sequence[Sequence[Any]]
          ) -> dict[Any, int]:
    """Each value's position in the server's order, from the values of each request
    (``asked``, from :func:`batches`) and of its answer, in the order it came.

    Raises :class:`JettiOrderError` when several requests were needed and an answer does not
    keep the order they were asked in, and :class:`~jetti_frames.errors.JettiDataError` when
    an answer does not hold the values asked for (the records changed meanwhile).
    """
    for values, got in zip(asked, answered, strict=True):
        if sorted(got, key=repr) != sorted(values, key=repr):
            raise JettiDataError("the records changed while the order of their values was "
                                 "read; read again")
    if len(asked) == 1:
        return {value: i for i, value in enumerate(answered[0])}
    for values, got in zip(asked, answered, strict=True):
        if list(got) != list(values):
            first = next(i for i, (a, b) in enumerate(zip(values, got, strict=True)) if a != b)
            raise JettiOrderError(
                f"the server orders these values in no order the client can reproduce "
                f"({got[first]!r} before {values[first]!r}), and they are too many to be "
                "ordered in one request, so the order of the whole result cannot be told: "
                "read without order= and sort the frame, or narrow the read with where=")
    ordered = [value for run in asked for value in run]
    return {value: i for i, value in enumerate(dict.fromkeys(ordered))}
