"""JSON records -> flat columns and typed frames: joined includes or linked tables.

Records are dicts as the Jetti API returns them: camelCase fields, included records under
snake_case keys (a belongs-to include as one object or null under ``key_one``, a has-many include
as an array under ``key_many``).  Everything here is pure: no I/O.

Joined mode (:func:`flatten_records`, :func:`frame_from_records`):

- a belongs-to include becomes prefixed columns ``<key_one><sep><field>``
  (``purchase_status_name``); a null include gives nulls in those columns;
- a has-many include explodes: one row per child, the parent's columns repeated, child columns
  ``<key_many><sep><field>``; a parent without children stays as one row with null child columns;
- nested includes chain the prefixes (``sale_customer_email``);
- all has-many includes must lie on one chain (``purchases -> purchase_items -> ...``): two
  has-many includes side by side would multiply into a cross product of unrelated children, so
  they raise :class:`JettiQueryError`; use :func:`frame_tables` (``include_mode="tables"``).

Tables mode (:func:`frame_tables`) gives one frame per model, linked by keys.

Speed: columns are read in one C-level pass per model (``operator.itemgetter`` over all fields,
then transposed with ``zip``) and typed per column through pyarrow; nothing is done per row in
pandas.

Examples
--------
>>> from jetti_frames.schema import FrameSpec, IncludeSpec
>>> spec = FrameSpec.of("purchases", ["id", "purchaseStatusId"],
...                     [IncludeSpec.of("purchases", "PurchaseStatus", ["name"])])
>>> records = [{"id": 1, "purchaseStatusId": 7, "purchase_status": {"name": "Open"}},
...            {"id": 2, "purchaseStatusId": None, "purchase_status": None}]
>>> flatten_records(records, spec)
{'id': [1, 2], 'purchaseStatusId': [7, None], 'purchase_status_name': ['Open', None]}
>>> frame_from_records(records, spec).dtypes.astype(str).tolist()
['Int64', 'Int64', 'string']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from operator import itemgetter
from types import MappingProxyType
from typing import Any

import pandas as pd

from .catalog import CATALOG
from .errors import JettiQueryError
from .schema import (
    DEFAULT_SEP,
    DtypeBackend,
    FrameSpec,
    IncludeSpec,
    Node,
    node_columns,
    typed_frame,
)

__all__ = [
    "FrameSpec",
    "IncludeSpec",
    "check_joinable",
    "flatten_records",
    "frame_from_records",
    "frame_tables",
]

Record = Mapping[str, Any]
_EMPTY: Record = MappingProxyType({})
#: Keys under which the API nests included records; never read as unknown fields.
_INCLUDE_KEYS = frozenset(k for r in CATALOG for k in (r.key_one, r.key_many))


def check_joinable(spec: FrameSpec) -> None:
    """Raise :class:`JettiQueryError` unless the has-many includes of ``spec`` form one chain.

    Examples
    --------
    >>> spec = FrameSpec.of("purchases", includes=[
    ...     IncludeSpec.of("purchases", "PurchaseItem"), IncludeSpec.of("purchases", "Comment")])
    >>> check_joinable(spec)
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiQueryError: ...
    """
    paths: list[tuple[str, ...]] = []

    def walk(node: Node, path: tuple[str, ...]) -> None:
        for inc in node.includes:
            sub = (*path, inc.key)
            if inc.kind == "has_many":
                paths.append(sub)
            walk(inc, sub)

    walk(spec, ())
    paths.sort(key=len)
    for shorter, longer in pairwise(paths):
        if longer[: len(shorter)] != shorter:
            raise JettiQueryError(
                f"cannot join has-many includes {'.'.join(shorter)!r} and {'.'.join(longer)!r} "
                "into one frame (that would be a cross product of unrelated rows); "
                'use include_mode="tables" for one frame per model, linked by keys'
            )


def _layout(records: Sequence[Record], spec: FrameSpec) -> dict[tuple[str, ...], list[Record]]:
    """For each spec node (by include-key path), the record that fills each output row."""
    rows: dict[tuple[str, ...], list[Record]] = {(): list(records)}

    def walk(node: Node, path: tuple[str, ...]) -> None:
        for inc in node.includes:
            parent = rows[path]
            sub = (*path, inc.key)
            key = inc.key
            if inc.kind == "belongs_to":
                rows[sub] = [r.get(key) or _EMPTY for r in parent]
            else:
                index: list[int] = []
                children: list[Record] = []
                for i, r in enumerate(parent):
                    kids = _as_list(r.get(key))
                    if kids:
                        index.extend([i] * len(kids))
                        children.extend(k if k is not None else _EMPTY for k in kids)
                    else:
                        index.append(i)
                        children.append(_EMPTY)
                if len(index) != len(parent):
                    for p, lst in rows.items():
                        rows[p] = [lst[i] for i in index]
                rows[sub] = children
            walk(inc, sub)

    walk(spec, ())
    return rows


def _as_list(value: Any) -> list[Any]:
    if not value:
        return []
    return value if isinstance(value, list) else [value]


def _read_columns(rows: Sequence[Record], fields: Sequence[str]) -> list[list[Any]]:
    """The values of ``fields`` in ``rows``, one list per field (missing key = ``None``)."""
    if not fields:
        return []
    if not rows:
        return [[] for _ in fields]
    try:
        if len(fields) == 1:
            return [list(map(itemgetter(fields[0]), rows))]
        return [list(col) for col in zip(*map(itemgetter(*fields), rows), strict=True)]
    except KeyError:  # some record lacks some field: read the slow way
        return [[r.get(f) for r in rows] for f in fields]


def _unknown_fields(rows: Sequence[Record], node: Node) -> list[str]:
    """Fields found in ``rows`` that the node's catalogue lacks, sorted by name."""
    if node.columns is not None or not rows:
        return []
    shapes = set(map(tuple, rows))
    found: set[str] = set().union(*shapes)
    known = node.resource.fields_by_name.keys() | {n for n, _ in node.extra_kinds}
    found -= known
    found -= {inc.key for inc in node.includes}
    found -= _INCLUDE_KEYS
    return sorted(found)


def _node_values(node: Node, rows: Sequence[Record], prefix: str, path: tuple[str, ...],
                 out: dict[str, list[Any]]) -> None:
    planned = node_columns(node, prefix, path)
    fields = [c.field for c in planned]
    unknown = _unknown_fields(rows, node)
    names = [c.name for c in planned] + [prefix + f for f in unknown]
    for name, values in zip(names, _read_columns(rows, fields + unknown), strict=True):
        if name in out:
            raise JettiQueryError(f"two columns would be called {name!r}; choose another sep")
        out[name] = values


def flatten_records(records: Sequence[Record], spec: FrameSpec, *,
                    sep: str = DEFAULT_SEP) -> dict[str, list[Any]]:
    """Flat columns (name -> list of JSON values) of the joined frame, in frame order.

    Order: the resource's columns (selected ones, or catalogue fields then unknown fields sorted),
    then each include's, depth first.  Every planned column is present, even with no records.

    Examples
    --------
    >>> spec = FrameSpec.of("purchases", ["id"],
    ...                     [IncludeSpec.of("purchases", "PurchaseItem", ["quantity"])])
    >>> flatten_records([{"id": 1, "purchase_items": [{"quantity": 2}, {"quantity": 5}]},
    ...                  {"id": 2, "purchase_items": []}], spec)
    {'id': [1, 1, 2], 'purchase_items_quantity': [2, 5, None]}
    """
    check_joinable(spec)
    layout = _layout(records, spec)
    out: dict[str, list[Any]] = {}

    def walk(node: Node, prefix: str, path: tuple[str, ...]) -> None:
        _node_values(node, layout[path], prefix, path, out)
        for inc in node.includes:
            walk(inc, prefix + inc.key + sep, (*path, inc.key))

    walk(spec, "", ())
    return out


def frame_from_records(records: Sequence[Record], spec: FrameSpec, *, sep: str = DEFAULT_SEP,
                       dtype_backend: DtypeBackend = "numpy_nullable") -> pd.DataFrame:
    """The joined, typed frame of ``records`` (see :func:`flatten_records`).

    Examples
    --------
    >>> spec = FrameSpec.of("purchase-statuses", ["id", "level", "createdAt"])
    >>> df = frame_from_records([{"id": 1, "level": "warning",
    ...                           "createdAt": "2024-05-04T11:42:00+02:00"}], spec)
    >>> df.dtypes.astype(str).tolist()
    ['Int64', 'category', 'datetime64[us, UTC]']
    >>> str(df.loc[0, "createdAt"])
    '2024-05-04 09:42:00+00:00'
    """
    columns = flatten_records(records, spec, sep=sep)
    return typed_frame(columns, spec, sep=sep, dtype_backend=dtype_backend)


def frame_tables(records: Sequence[Record], spec: FrameSpec, *, sep: str = DEFAULT_SEP,
                 dtype_backend: DtypeBackend = "numpy_nullable") -> dict[str, pd.DataFrame]:
    """One typed frame per model (``include_mode="tables"``), linked by keys.

    The listed resource's frame comes first, under its ``key_many`` (``"purchases"``), then one
    frame per include under the included resource's ``key_many`` (``"purchase_statuses"``,
    ``"purchase_items"``); a resource included twice gets ``<parent table><sep><key_many>`` the
    second time.  Links: a belongs-to include's table has ``id`` and its parent's table the foreign
    key (``purchaseStatusId``); a has-many include's table has the foreign key to its parent
    (``purchaseId``) and the parent's table has ``id``.  Link columns missing from a selection are
    added in front (and filled from the included records when the parent lacks them).  Included
    tables hold each record once (deduplicated by ``id``, first occurrence kept); null belongs-to
    includes add no row.  No has-many restriction applies.

    Examples
    --------
    >>> spec = FrameSpec.of("purchases", ["reference"],
    ...                     [IncludeSpec.of("purchases", "PurchaseItem", ["quantity"])])
    >>> tables = frame_tables([{"id": 1, "reference": "PO-1",
    ...                         "purchase_items": [{"id": 9, "quantity": 2}]}], spec)
    >>> {name: df.columns.tolist() for name, df in tables.items()}
    {'purchases': ['id', 'reference'], 'purchase_items': ['id', 'purchaseId', 'quantity']}
    >>> tables["purchase_items"]["purchaseId"].tolist()
    [1]
    """
    plans: list[_Table] = []
    root = _Table(spec.resource.key_many, spec, list(records), is_root=True)
    plans.append(root)
    _plan_tables(root, sep, plans, {root.name})
    out: dict[str, pd.DataFrame] = {}
    for table in plans:
        columns = table.columns()
        tspec = FrameSpec(table.node.resource, columns=table.selected(),
                          extra_kinds=table.node.extra_kinds)
        values = _table_values(table, columns)
        frame = typed_frame(values, tspec, sep=sep, dtype_backend=dtype_backend)
        if not table.is_root and "id" in frame.columns:
            ids = frame["id"]
            frame = frame[~(ids.duplicated() & ids.notna())].reset_index(drop=True)
        out[table.name] = frame
    return out


class _Table:
    """One model's table: its spec node, its records and the link columns it needs."""

    def __init__(self, name: str, node: Node, rows: list[Record], *, is_root: bool = False):
        self.name = name
        self.node = node
        self.rows = rows
        self.is_root = is_root
        #: link column -> how to fill it when a record lacks it: (include key, field in include)
        #: for a foreign key of a belongs-to, or the parent ids of a has-many's rows.
        self.links: list[str] = []
        self.fill_from_include: dict[str, str] = {}
        self.parent_ids: list[Any] | None = None
        self.fk_from_parent: str | None = None

    def need(self, column: str) -> None:
        if column not in self.links:
            self.links.append(column)

    def selected(self) -> tuple[str, ...] | None:
        cols = self.node.columns
        if cols is None:
            return None
        return (*(c for c in self.links if c not in cols), *cols)

    def columns(self) -> list[str]:
        return [c.field for c in node_columns(FrameSpec(self.node.resource, self.selected(),
                                                        extra_kinds=self.node.extra_kinds))]


def _plan_tables(parent: _Table, sep: str, plans: list[_Table], names: set[str]) -> None:
    for inc in parent.node.includes:
        rel = parent.node.resource.relation_to(inc.resource.model)
        fk = rel[1].foreign_key if rel is not None else None
        name = inc.resource.key_many
        if name in names:
            name = f"{parent.name}{sep}{name}"
        names.add(name)
        key = inc.key
        if inc.kind == "belongs_to":
            child = _Table(name, inc, [r[key] for r in parent.rows if r.get(key)])
            child.need("id")
            if fk is not None:
                parent.need(fk)
                parent.fill_from_include[fk] = key
        else:
            kids: list[Record] = []
            parent_ids: list[Any] = []
            for r in parent.rows:
                these = [k for k in _as_list(r.get(key)) if k is not None]
                kids.extend(these)
                parent_ids.extend([r.get("id")] * len(these))
            child = _Table(name, inc, kids)
            child.need("id")
            parent.need("id")
            if fk is not None:
                child.need(fk)
                child.parent_ids = parent_ids
                child.fk_from_parent = fk
        plans.append(child)
        _plan_tables(child, sep, plans, names)


def _table_values(table: _Table, fields: list[str]) -> dict[str, list[Any]]:
    unknown = _unknown_fields(table.rows, table.node)
    values = dict(zip(fields + unknown, _read_columns(table.rows, fields + unknown), strict=True))
    for fk, key in table.fill_from_include.items():
        col = values.get(fk)
        if col is not None and any(v is None for v in col):
            values[fk] = [v if v is not None else (r.get(key) or _EMPTY).get("id")
                          for v, r in zip(col, table.rows, strict=True)]
    parent_fk = table.fk_from_parent
    if parent_fk is not None and table.parent_ids is not None and parent_fk in values:
        values[parent_fk] = [v if v is not None else p
                             for v, p in zip(values[parent_fk], table.parent_ids, strict=True)]
    return values

