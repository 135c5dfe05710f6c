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

This module is the public face; the work is done in private modules, one job each:
``_wire`` (JavaScript/qs wire format), ``_tree`` (the include tree: :class:`Include`),
``_where`` (validating conditions), ``_build`` (:class:`Query`, :func:`build_query`,
:func:`request_params`), ``_split`` (splitting and merging conditions) and ``_predicates``
(evaluating conditions locally).
"""

from ._build import (
    MAX_INCLUDE_LEVELS,
    Order,
    Query,
    build_query,
    explain_query,
    parse_order,
    query_urls,
    request_params,
)
from ._predicates import compile_where, matches
from ._split import MAX_SPLIT_REQUESTS, OR_BUDGET, and_where, split_where
from ._tree import Include
from ._where import OPERATORS, convert_value
from ._wire import (
    ISO_FORMS,
    MAX_QUERY_CHARS,
    QS_DEPTH,
    QS_PARAMETER_LIMIT,
    encode,
    js_number,
    to_instant,
    to_iso,
    to_wire,
)

__all__ = [
    "ISO_FORMS",
    "MAX_INCLUDE_LEVELS",
    "MAX_QUERY_CHARS",
    "MAX_SPLIT_REQUESTS",
    "OPERATORS",
    "OR_BUDGET",
    "QS_DEPTH",
    "QS_PARAMETER_LIMIT",
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
]
