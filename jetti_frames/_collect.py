"""Pages of records -> one typed frame, converted page by page as they arrive.

A read holds at most a few thousand JSON records at a time: every :data:`BATCH` records are
turned into typed columns (by :func:`~jetti_frames.flatten.frame_from_records`, or
:func:`~jetti_frames.flatten.frame_tables` for a table without includes), and only a few keys of
each record are kept as Python values (``id``, ``updatedAt``, the order attribute).  Once every
page is in, those keys decide, exactly as for whole records, which version of a record is kept
(:func:`merge`: the later ``updatedAt`` wins) and in which order (:func:`sort_records`); the
frame is then built once by taking those rows from the columns.

Every row carries the arrival number of its record (a column under :data:`MARK`, dropped at the
end), so a record exploded into several rows by a has-many include is taken or left whole;
without a has-many include a batch's rows are its records, and their numbers a range.
Three things depend on the whole result, not on one page, and are settled at the end:

- enum columns get the spec's categories plus the off-spec values present, sorted;
- fields the catalogue lacks (and selected names it lacks) keep their raw JSON values until
  the end, then get the kind :func:`~jetti_frames.schema.infer_kind` finds over the result
  (and no column when the result holds no value for them);
- their columns take the place :func:`~jetti_frames.flatten.frame_from_records` gives them:
  after their model's catalogue fields, sorted by name.

``include_mode="tables"`` with includes keeps whole records (included tables are deduplicated
across the whole result, which pages cannot do alone).

Examples
--------
>>> from jetti_frames.schema import FrameSpec
>>> spec = FrameSpec.of("purchase-statuses", ["id", "name"])
>>> c = Collector(spec)
>>> c.add([{"id": 2, "name": "Open", "updatedAt": "2024-01-01T00:00:00Z"}])
>>> c.add([{"id": 1, "name": "Done"}, {"id": 2, "name": "Shut",
...                                    "updatedAt": "2024-02-01T00:00:00Z"}])
>>> c.result().values.tolist()
[[1, 'Done'], [2, 'Shut']]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from ._build import Order
from ._tree import Include, Node, node_columns, walk
from .catalog import Resource
from .drift import DriftLog
from .errors import JettiDataError
from .flatten import frame_tables, new_fields, record_columns
from .schema import (
    DEFAULT_SEP,
    DtypeBackend,
    FrameSpec,
    empty_frame,
    frame_of,
    infer_kind,
    order_key,
    typed_array,
)

__all__ = ["MARK", "Collector", "merge", "order_kind", "sort_records"]

Record = Mapping[str, Any]
#: The key (and column) that carries each record's arrival number; no API field is named so.
MARK = "\x00arrival"
#: Records converted together (a page at a time would cost 10x the time of one conversion).
BATCH = 4000
#: Converted batches before their columns are joined into one block.
BLOCK_BATCHES = 8


class Collector:
    """Typed columns of the pages of one read; :meth:`result` builds the frame once.

    Parameters
    ----------
    spec : FrameSpec
        The wanted frame.
    order : Order, optional
        The user's order (default: by id).
    sep, dtype_backend
        As in :func:`~jetti_frames.flatten.frame_from_records`.
    tables : bool
        ``include_mode="tables"``: :meth:`result` returns a dict of frames.
    batch : int
        Records converted together.
    drift : DriftLog, optional
        Notes every page's fields and enum values (schema drift).
    """

    def __init__(self, spec: FrameSpec, *, order: Order | None = None, sep: str = DEFAULT_SEP,
                 dtype_backend: DtypeBackend = "numpy_nullable", tables: bool = False,
                 batch: int = BATCH, drift: DriftLog | None = None) -> None:
        self.spec = spec
        self.drift = drift
        self.batch = batch
        self.order = order
        self.sep = sep
        self.dtype_backend = dtype_backend
        self.tables = tables
        #: Keep whole records: included tables are deduplicated across the whole result.
        self.whole = tables and bool(spec.include)
        self._by_id: dict[Any, dict[str, Any]] = {}
        self._in_order: list[dict[str, Any]] | None = None
        #: The server's order of the order attribute's text values (set once they are in).
        self.ranks: Mapping[Any, int] | None = None
        self._seq = 0
        self._keys = ("id", "updatedAt", *((order.attribute,) if order else ()))
        self._nodes = walk(spec, sep)
        #: A has-many include makes several rows of a record: rows carry their record's mark.
        self._explodes = any(isinstance(node, Include) and node.kind == "has_many"
                             for node, _, _ in self._nodes)
        self._owner = {name: path for node, prefix, path in self._nodes
                       for name in _names(node, prefix)}
        self._owner[MARK] = ()
        # columns kept as raw JSON until the end: names the catalogue lacks, per node path
        self._raw: dict[tuple[str, ...], dict[str, str]] = {
            path: {c.field: c.name for c in node_columns(node, prefix) if c.kind is None}
            for node, prefix, path in self._nodes}
        self._pinned = self._pin()
        self._batch: list[dict[str, Any]] = []
        self._batch_first = 0  # the arrival number of the batch's first record
        self._blocks: list[tuple[int, dict[str, Any]]] = []
        self._pending: list[tuple[int, dict[str, Any]]] = []

    @property
    def count(self) -> int:
        """Distinct records so far (by ``id``)."""
        return len(self._by_id) if self._in_order is None else len(self._in_order)

    def add(self, records: Sequence[dict[str, Any]],
            member: Callable[[Any], bool] | None = None) -> None:
        """Take one page; ``member`` filters it first (the consistency pass)."""
        if member is not None:
            records = [r for r in records if member(r)]
        if not records:
            return
        if self.drift is not None:
            self.drift.observe(records, self.spec)
        if self.whole:
            merge(self._by_id, list(records))
            return
        first = self._seq
        self._seq += len(records)
        keyed = []
        for n, record in enumerate(records, first):
            keys = {k: record.get(k) for k in self._keys}
            keys[MARK] = n
            keyed.append(keys)
        merge(self._by_id, keyed)
        if not self._batch:
            self._batch_first = first
        self._batch.extend(_marked(records, first) if self._explodes else records)
        if len(self._batch) >= self.batch:
            self._convert()

    def add_ordered(self, records: Sequence[dict[str, Any]]) -> None:
        """Take the whole result at once, already deduplicated and in its final order."""
        if self.drift is not None:
            self.drift.observe(records, self.spec)
        if self.whole:
            self._in_order = list(records)
            return
        self._in_order = [{MARK: i} for i in range(len(records))]
        self._seq = len(records)
        self._batch_first = 0
        self._batch = _marked(records, 0) if self._explodes else list(records)

    def kept(self) -> list[dict[str, Any]]:
        """The records :meth:`add` kept so far, deduplicated, in no order (each holds at least
        ``id``, ``updatedAt`` and the order attribute)."""
        return list(self._by_id.values())

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The kept records (whole, or their keys), deduplicated, in the final order."""
        if self._in_order is not None:
            return self._in_order
        records = sort_records(list(self._by_id.values()), self.order,
                               order_kind(self.spec.resource, self.order), self.ranks)
        return records if limit is None else records[:limit]

    def result(self, limit: int | None = None) -> Any:
        """The frame (a dict of frames in tables mode) of the first ``limit`` records."""
        kept = self.records(limit)
        if self.whole:
            return frame_tables(kept, self.spec, sep=self.sep, dtype_backend=self.dtype_backend)
        if not kept:
            if self.tables:
                return frame_tables([], self.spec, sep=self.sep,
                                    dtype_backend=self.dtype_backend)
            return empty_frame(self.spec, sep=self.sep, dtype_backend=self.dtype_backend)
        self._convert()
        self._flush()
        blocks, self._blocks, self._by_id = self._blocks, [], {}
        rank = np.full(self._seq, -1, dtype=np.int64)
        rank[np.fromiter((r[MARK] for r in kept), dtype=np.int64, count=len(kept))] = \
            np.arange(len(kept))
        marks = np.concatenate([block[MARK] for _, block in blocks])
        ranks = rank[marks]
        rows = np.flatnonzero(ranks >= 0)
        take = rows[np.argsort(ranks[rows], kind="stable")]
        data: dict[str, Any] = {}
        for name, raw in self._columns():
            array = _concat([_column(block, name, n) for n, block in blocks])
            for _, block in blocks:
                block.pop(name, None)
            typed = self._finish(name, array[take], raw)
            if typed is not None:
                data[name] = typed
        frame = frame_of(data, len(take))
        if self.tables:
            return {self.spec.resource.key_many: frame}
        return frame

    # -- internals -------------------------------------------------------------------------
    def _pin(self) -> FrameSpec:
        """The spec converted per batch: raw columns read as JSON, the listed model's columns
        named (its new fields are found before converting), and the arrival column when a
        record can make several rows."""
        root = _pinned(self.spec, self._raw, ())
        mark = (MARK,) if self._explodes else ()
        if mark:
            root = replace(root, extra_kinds=(*root.extra_kinds, (MARK, "integer")))
        columns = (*root.attributes, *mark) if root.attributes is not None \
            else tuple(c.field for c in node_columns(root))
        return replace(root, attributes=columns)

    def _new_fields(self, batch: list[dict[str, Any]]) -> list[str]:
        """The listed model's fields the catalogue lacks not yet kept raw (from the fields the
        drift log has seen, a superset of the batch's)."""
        if self.spec.attributes is not None:
            return []
        found = set().union(*batch) if self.drift is None else self.drift.fields()
        return new_fields(found, self._pinned)

    def _convert(self) -> None:
        """Turn the records taken so far into typed columns."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        new = self._new_fields(batch)
        if new:
            for name in new:
                self._keep_raw((), name)
            self._pinned = self._pin()
        while True:  # an included model's new fields show in the frame: convert again
            columns, n = self._columns_of(batch)
            new = [name for name in columns if name not in self._owner]
            if not new:
                break
            self._adopt(list(columns), new)
        columns[MARK] = _ints(columns[MARK]) if self._explodes else \
            np.arange(self._batch_first, self._batch_first + len(batch), dtype=np.int64)
        self._pending.append((n, columns))
        if len(self._pending) >= BLOCK_BATCHES:
            self._flush()

    def _columns_of(self, batch: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
        """The typed columns of a batch, and their length."""
        if self.tables:
            frame = frame_tables(batch, self._pinned, sep=self.sep,
                                 dtype_backend=self.dtype_backend)[self.spec.resource.key_many]
            return {name: _array(frame[name]) for name in frame.columns}, len(frame)
        return record_columns(batch, self._pinned, sep=self.sep, dtype_backend=self.dtype_backend)

    def _adopt(self, columns: list[str], new: list[str]) -> None:
        """Keep raw from now on the fields the catalogue lacks found in a page's frame.

        Such a column comes right after the columns of its own model, so it belongs to the
        model of the nearest known column before it.
        """
        owner: tuple[str, ...] = ()
        for name in columns:
            if name in self._owner:
                owner = self._owner[name]
            elif name in new:
                self._keep_raw(owner, name)
        self._pinned = self._pin()

    def _keep_raw(self, owner: tuple[str, ...], name: str) -> None:
        """Keep column ``name`` of the model at ``owner`` as raw JSON until the end."""
        prefix = next(prefix for _, prefix, path in self._nodes if path == owner)
        self._raw[owner][name[len(prefix):]] = name
        self._owner[name] = owner

    def _flush(self) -> None:
        if not self._pending:
            return
        pages, self._pending = self._pending, []
        names = list(dict.fromkeys(name for _, page in pages for name in page))
        n = sum(rows for rows, _ in pages)
        self._blocks.append((n, {name: _concat([_column(page, name, rows)
                                                for rows, page in pages])
                                 for name in names}))

    def _columns(self) -> list[tuple[str, bool]]:
        """Final column names in frame order, and whether each is kept raw until the end."""
        out: list[tuple[str, bool]] = []
        for node, prefix, path in self._nodes:
            raw = self._raw[path]
            planned = [c.name for c in node_columns(node, prefix)]
            out.extend((name, name in raw.values()) for name in planned)
            out.extend((raw[f], True) for f in sorted(raw) if raw[f] not in planned)
        return out

    def _finish(self, name: str, array: Any, raw: bool) -> Any:
        if raw:
            values = list(array)
            kind = infer_kind(values)
            if kind is None:
                return None
            return typed_array(values, kind, None, self.dtype_backend, name)
        if isinstance(array, pd.Categorical):
            return _recategorize(array, self._enums().get(name, ()))
        return array

    def _enums(self) -> dict[str, tuple[str, ...]]:
        return {c.name: c.enum or () for node, prefix, _ in self._nodes
                for c in node_columns(node, prefix) if c.kind == "enum"}


def _marked(records: Sequence[dict[str, Any]], first: int) -> list[dict[str, Any]]:
    """Copies of ``records`` carrying their arrival numbers (from ``first``) under :data:`MARK`."""
    return [{**r, MARK: n} for n, r in enumerate(records, first)]


def _names(node: Node, prefix: str) -> list[str]:
    return [c.name for c in node_columns(node, prefix)]


def _pinned(node: Any, raw: Mapping[tuple[str, ...], Mapping[str, str]],
            path: tuple[str, ...]) -> Any:
    """``node`` with its raw fields read as JSON (``extra_kinds``), its includes likewise."""
    fields = raw.get(path, {})
    known = {name for name, _ in node.extra_kinds}
    extra = (*node.extra_kinds, *((f, "json") for f in fields if f not in known))
    include: tuple[Include, ...] = tuple(
        _pinned(inc, raw, (*path, inc.key)) for inc in node.include)
    return replace(node, extra_kinds=extra, include=include)


def _array(column: pd.Series) -> Any:
    """The typed array of a column (JSON columns: their numpy array of objects)."""
    return column.to_numpy() if column.dtype == object else column.array


def _ints(array: Any) -> np.ndarray:
    return np.asarray(array.to_numpy(dtype=np.int64), dtype=np.int64)


def _column(columns: Mapping[str, Any], name: str, n: int) -> Any:
    """Column ``name`` of a batch of ``n`` rows (all None when the batch lacks it)."""
    return columns[name] if name in columns else _nones(n)


def _nones(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


def _concat(arrays: list[Any]) -> Any:
    """One array of several of the same kind (categoricals: the union of their categories)."""
    if len(arrays) == 1:
        return arrays[0]
    if all(isinstance(a, pd.Categorical) for a in arrays):
        return union_categoricals(arrays)
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np.concatenate(arrays)
    if any(isinstance(a, np.ndarray) for a in arrays):  # a raw column and a page without it
        return np.concatenate([np.asarray(a, dtype=object) for a in arrays])
    return type(arrays[0])._concat_same_type(arrays)


def _recategorize(values: pd.Categorical, enum: Sequence[str]) -> pd.Categorical:
    """The spec's categories, then the off-spec values present, sorted (as for one page)."""
    if tuple(values.categories) == tuple(enum):  # no off-spec value in any batch
        return values
    used = values.categories[np.unique(values.codes[values.codes >= 0])]
    spec = set(enum)
    categories = [*enum, *sorted(v for v in used if v not in spec)]
    return values.set_categories(categories)


# -- records: which version wins, and their order ------------------------------------------


def merge(by_id: dict[Any, dict[str, Any]], records: list[dict[str, Any]],
          member: Callable[[Any], bool] | None = None) -> None:
    """Put records into ``by_id``; of two versions of a record the later ``updatedAt`` wins
    (or the later answer, without ``updatedAt``).  ``member`` filters consistency-pass records."""
    for record in records:
        if member is not None and not member(record):
            continue
        key = record.get("id")
        old = by_id.get(key)
        if old is None or not _older(record, old):
            by_id[key] = record


def _older(record: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether ``record`` was updated before ``other`` (False when either lacks updatedAt)."""
    mine = order_key(record.get("updatedAt"), "datetime")
    theirs = order_key(other.get("updatedAt"), "datetime")
    return mine is not None and theirs is not None and bool(mine < theirs)


def order_kind(resource: Resource, order: Order | None) -> str:
    """The kind of ``order``'s attribute (``""`` without an order, or for a field the
    catalogue does not list)."""
    found = None if order is None else resource.fields_by_name.get(order.attribute)
    return "" if found is None else found.kind


def sort_records(records: list[dict[str, Any]], order: Order | None,
                 kind: str = "", ranks: Mapping[Any, int] | None = None
                 ) -> list[dict[str, Any]]:
    """Records by ``order`` (nulls placed as asked), ties by id; by id without an order.

    Values compare as the order attribute's ``kind`` reads them
    (:func:`~jetti_frames.schema.order_key`), as the server orders them: numeric text by its
    number, date-times by their instants, whatever their offsets; or, given ``ranks`` (the
    server's order of text values, :mod:`~jetti_frames._text_order`), by their rank.

    >>> rows = [{"id": 1, "total": "404.64"}, {"id": 2, "total": "1000.00"}, {"id": 3}]
    >>> [r["id"] for r in sort_records(rows, Order("total", descending=True), "number")]
    [2, 1, 3]
    """
    by_id = sorted(records, key=lambda r: (r.get("id") is None, r.get("id") or 0))
    if order is None or (order.attribute == "id" and not order.descending):
        return by_id
    name = order.attribute
    present = [r for r in by_id if r.get(name) is not None]
    missing = [r for r in by_id if r.get(name) is None]
    keyed = []
    for r in present:
        key = order_key(r[name], kind) if ranks is None else ranks.get(r[name])
        if key is None:
            raise JettiDataError(f"column {name!r}: cannot read {r[name]!r} as {kind}")
        keyed.append((key, r))
    keyed.sort(key=lambda pair: pair[0], reverse=order.descending)
    present = [r for _, r in keyed]
    return missing + present if order.nulls_first else present + missing
