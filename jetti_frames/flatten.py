"""JSON records -> flat columns and typed frames: joined includes or linked tables.

Records are dicts as the Jetti API returns them: camelCase fields, included records under
snake_case keys (a belongs-to include as one object or null under ``key_one``, a has-many include
as an array under ``key_many``).  Everything here is pure: no I/O.

Joined mode (:func:`frame_from_records`):

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
>>> df = frame_from_records(records, spec)
>>> df.columns.tolist(), df.dtypes.astype(str).tolist()
(['id', 'purchaseStatusId', 'purchase_status_name'], ['Int64', 'Int64', 'string'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ._tree import DEFAULT_SEP, FrameSpec, Include, Node, node_columns, walk
from .catalog import CATALOG
from .errors import JettiQueryError
from .schema import (
    WIRE_TYPES,
    DtypeBackend,
    IncludeSpec,
    arrow_to_pandas,
    frame_of,
    infer_kind,
    kind_dtype,
    typed_array,
    typed_frame,
    wire_array,
)

__all__ = [
    "FrameSpec",
    "IncludeSpec",
    "check_joinable",
    "frame_from_records",
    "frame_tables",
    "new_fields",
    "record_columns",
    "unknown_fields",
]

Record = Mapping[str, Any]
_EMPTY: Record = {}
#: Keys under which the API nests included records; never read as unknown fields.
_STRUCT_KINDS = frozenset(WIRE_TYPES) - {"integer"}
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
    paths = sorted((step.path for step in walk(spec)
                    if isinstance(step.node, Include) and step.node.kind == "has_many"), key=len)
    for shorter, longer in pairwise(paths):
        if longer[: len(shorter)] != shorter:
            raise JettiQueryError(
                f"cannot join has-many includes {'.'.join(shorter)!r} and {'.'.join(longer)!r} "
                "into one frame (that would be a cross product of unrelated rows); "
                'use include_mode="tables" for one frame per model, linked by keys'
            )


@dataclass
class _Part:
    """The records of one spec node: distinct ``rows`` and, for each output row, the position of
    its record in ``rows`` (``-1``: none); ``index=None`` means row ``i`` is ``rows[i]``."""

    rows: list[Record]
    index: np.ndarray | None = None

    def positions(self, n_out: int) -> np.ndarray:
        return np.arange(n_out, dtype=np.int64) if self.index is None else self.index


def _layout(records: Sequence[Record], spec: FrameSpec) -> dict[tuple[str, ...], _Part]:
    """For each spec node (by include-key path), which record fills each output row.

    Belongs-to records are deduplicated (equal records under the same ``id`` are read once), so a
    status or provider repeated on every row is converted once and then repeated with ``take``.
    """
    parts: dict[tuple[str, ...], _Part] = {(): _Part(list(records))}
    n_out = len(records)
    for step in walk(spec):
        inc = step.node
        if not isinstance(inc, Include):
            continue
        parent = parts[step.path[:-1]]
        key = inc.key
        if inc.kind == "belongs_to":
            fields = None
            if inc.attributes is not None and not inc.include:
                fields = list(dict.fromkeys(inc.attributes))
            rows, pos = _distinct([r.get(key) for r in parent.rows], fields)
            if parent.index is not None:
                pos = np.append(pos, -1)[parent.index]
            parts[step.path] = _Part(rows, pos)
            continue
        at = parent.positions(n_out).tolist()
        repeat: list[int] = []
        child_pos: list[int] = []
        kids: list[Record] = []
        for o, i in enumerate(at):
            these = _children(parent.rows[i].get(key)) if i >= 0 else []
            if these:
                repeat.extend([o] * len(these))
                child_pos.extend(range(len(kids), len(kids) + len(these)))
                kids.extend(these)
            else:
                repeat.append(o)
                child_pos.append(-1)
        if len(repeat) != n_out:
            rep = np.asarray(repeat, dtype=np.int64)
            for part in parts.values():
                part.index = part.positions(n_out)[rep]
            n_out = len(repeat)
        parts[step.path] = _Part(kids, np.asarray(child_pos, dtype=np.int64))
    return parts


def _distinct(objs: list[Any], fields: Sequence[str] | None) -> tuple[list[Record], np.ndarray]:
    """Distinct records of ``objs`` and each one's position among them (``-1`` for null).

    Records are the same when they share an ``id`` and hold equal values: in ``fields`` when
    given (the only fields read from them), otherwise everywhere.
    """
    rows: list[Record] = []
    pos: list[int] = []
    seen: dict[Any, int] = {}
    pick = itemgetter(*fields) if fields else None
    for obj in objs:
        if not isinstance(obj, dict):
            pos.append(-1)
            continue
        ident = obj.get("id")
        key = id(obj) if ident is None else ident
        at = seen.get(key)
        if at is not None and rows[at] is not obj and not _same(rows[at], obj, pick):
            at = None
        if at is None:
            at = seen[key] = len(rows)
            rows.append(obj)
        pos.append(at)
    return rows, np.asarray(pos, dtype=np.int64)


def _same(a: Record, b: Record, pick: itemgetter[Any] | None) -> bool:
    if pick is None:
        return a == b
    try:
        return bool(pick(a) == pick(b))
    except KeyError:
        return a == b


def _children(value: Any) -> list[Record]:
    if not value:
        return []
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)]


def _read_columns(rows: Sequence[Record], fields: Sequence[str]) -> list[list[Any]]:
    """The values of ``fields`` in ``rows``, one list per field (missing key = ``None``)."""
    try:
        return [list(map(itemgetter(f), rows)) for f in fields]
    except KeyError:  # some record lacks some field: read the slow way
        return [[r.get(f) for r in rows] for f in fields]


def unknown_fields(rows: Sequence[Record], node: Node) -> list[str]:
    """Fields found in ``rows`` that the node's catalogue lacks, sorted by name (none when the
    node selects its attributes).

    Examples
    --------
    >>> unknown_fields([{"id": 1, "colour": "red"}, {"id": 2, "size": 3}],
    ...                FrameSpec.of("purchase-statuses"))
    ['colour', 'size']
    """
    if node.attributes is not None or not rows:
        return []
    return new_fields(set().union(*rows), node)


def new_fields(found: Iterable[str], node: Node) -> list[str]:
    """Of the field names ``found``, those the node's catalogue (and its ``extra_kinds``)
    lacks, include keys left out, sorted by name.

    Examples
    --------
    >>> new_fields({"id", "colour", "purchase_status"}, FrameSpec.of("purchase-statuses"))
    ['colour']
    """
    unknown = set(found)
    unknown -= node.resource.fields_by_name.keys()
    unknown -= {n for n, _ in node.extra_kinds}
    unknown -= {inc.key for inc in node.include}
    unknown -= _INCLUDE_KEYS
    return sorted(unknown)


def _claim(name: str, out: Mapping[str, Any]) -> str:
    if name in out:
        raise JettiQueryError(f"two columns would be called {name!r}; choose another sep")
    return name


def frame_from_records(records: Sequence[Record], spec: FrameSpec, *, sep: str = DEFAULT_SEP,
                       dtype_backend: DtypeBackend = "numpy_nullable") -> pd.DataFrame:
    """The joined, typed frame of ``records``, typed as :func:`jetti_frames.schema.typed_frame`
    types them.

    Columns: the resource's (selected ones, or catalogue fields then unknown fields sorted),
    then each include's, depth first; every planned column is present, even with no records.

    Scalar fields of each model are read into arrow in one pass (``pa.array`` of the records as
    structs), typed per column, and repeated for the output rows with ``take``.

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
    return frame_of(*record_columns(records, spec, sep=sep, dtype_backend=dtype_backend))


def record_columns(records: Sequence[Record], spec: FrameSpec, *, sep: str = DEFAULT_SEP,
                   dtype_backend: DtypeBackend = "numpy_nullable") -> tuple[dict[str, Any], int]:
    """The columns of :func:`frame_from_records` as typed arrays (``object`` columns as numpy
    arrays), and its number of rows.

    Examples
    --------
    >>> data, n = record_columns([{"id": 1}, {"id": 2}], FrameSpec.of("purchase-statuses"))
    >>> n, data["id"].tolist()
    (2, [1, 2])
    """
    check_joinable(spec)
    kind_dtype("integer", dtype_backend=dtype_backend)  # validates the backend
    parts = _layout(records, spec)
    n_out = len(records)
    for part in parts.values():
        if part.index is not None:
            n_out = len(part.index)
            break
    data: dict[str, Any] = {}
    for node, prefix, path in walk(spec, sep):
        part = parts[path]
        for name, array in _node_arrays(node, part.rows, prefix, dtype_backend).items():
            if part.index is not None:
                array = _take(array, part.index)
            data[_claim(name, data)] = array
    return data, n_out


def _node_arrays(node: Node, rows: list[Record], prefix: str,
                 dtype_backend: DtypeBackend) -> dict[str, Any]:
    """Typed arrays of one node's columns over its distinct records, in column order."""
    planned = node_columns(node)
    unknown = unknown_fields(rows, node)
    # integers are read from lists: arrow's struct conversion would truncate 2.5 to 2 silently
    scalar = list(dict.fromkeys(c.field for c in planned if c.kind in _STRUCT_KINDS))
    other = list(dict.fromkeys(c.field for c in planned if c.kind not in _STRUCT_KINDS))
    wire = _wire_arrays(rows, scalar, {c.field: c.kind for c in planned})
    lists = dict(zip(other + unknown, _read_columns(rows, other + unknown), strict=True))
    for col in planned:
        if col.kind == "integer" and col.field not in wire:
            wire[col.field] = wire_array(lists[col.field], "integer", prefix + col.field)
    out: dict[str, Any] = {}
    for col in planned:
        name = prefix + col.field
        if col.kind in WIRE_TYPES:
            out[name] = arrow_to_pandas(wire[col.field], col.kind, col.enum, dtype_backend, name)
        else:
            array = _list_array(lists[col.field], col.kind, dtype_backend, name)
            if array is not None:
                out[name] = array
    for field in unknown:
        array = _list_array(lists[field], None, dtype_backend, prefix + field)
        if array is not None:
            out[prefix + field] = array
    return out


def _wire_arrays(rows: list[Record], fields: list[str], kinds: Mapping[str, str | None]
                 ) -> dict[str, pa.Array]:
    if not fields:
        return {}
    struct = pa.struct([pa.field(f, WIRE_TYPES[str(kinds[f])]) for f in fields])
    try:
        arrays = pa.array(rows, type=struct).flatten()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # a value of an unexpected type somewhere: read column by column, leniently
        return {f: wire_array(values, str(kinds[f]), f)
                for f, values in zip(fields, _read_columns(rows, fields), strict=True)}
    return dict(zip(fields, arrays, strict=True))


def _list_array(values: list[Any], kind: str | None, dtype_backend: DtypeBackend,
                name: str) -> Any:
    """Typed array of a list-read column; ``None`` for a field of unknown kind without values."""
    if kind is None:
        kind = infer_kind(values)
        if kind is None:  # no value anywhere: no knowable dtype, leave the column out
            return None
    return typed_array(values, kind, None, dtype_backend, name)


def _take(array: Any, index: np.ndarray) -> Any:
    if isinstance(array, np.ndarray):  # JSON objects: missing rows hold None
        padded = np.empty(len(array) + 1, dtype=object)
        padded[:-1] = array
        padded[-1] = None
        return padded[index]
    return array.take(index, allow_fill=True)


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
    out: dict[str, pd.DataFrame] = {}
    for table in _plan_tables(spec, records, sep):
        columns = table.columns()
        tspec = FrameSpec(table.node.resource, table.selected(),
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
        cols = self.node.attributes
        if cols is None:
            return None
        return (*(c for c in self.links if c not in cols), *cols)

    def columns(self) -> list[str]:
        return [c.field for c in node_columns(FrameSpec(self.node.resource, self.selected(),
                                                        extra_kinds=self.node.extra_kinds))]


def _plan_tables(spec: FrameSpec, records: Sequence[Record], sep: str) -> list[_Table]:
    """One table per node of ``spec``, depth first, with the link columns each one needs."""
    tables: dict[tuple[str, ...], _Table] = {
        (): _Table(spec.resource.key_many, spec, list(records), is_root=True)}
    names = {tables[()].name}
    for step in walk(spec):
        inc = step.node
        if not isinstance(inc, Include):
            continue
        parent = tables[step.path[:-1]]
        fk = inc.relation.foreign_key
        name = inc.resource.key_many
        if name in names:
            name = f"{parent.name}{sep}{name}"
        names.add(name)
        key = inc.key
        if inc.kind == "belongs_to":
            child = _Table(name, inc, [r[key] for r in parent.rows if r.get(key)])
            child.need("id")
            parent.need(fk)
            parent.fill_from_include[fk] = key
        else:
            kids: list[Record] = []
            parent_ids: list[Any] = []
            for r in parent.rows:
                these = _children(r.get(key))
                kids.extend(these)
                parent_ids.extend([r.get("id")] * len(these))
            child = _Table(name, inc, kids)
            child.need("id")
            parent.need("id")
            child.need(fk)
            child.parent_ids = parent_ids
            child.fk_from_parent = fk
        tables[step.path] = child
    return list(tables.values())


def _table_values(table: _Table, fields: list[str]) -> dict[str, list[Any]]:
    unknown = unknown_fields(table.rows, table.node)
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

