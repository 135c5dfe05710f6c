"""Schema drift: where the server's records stop matching the catalogue.

Three kinds of change are noticed while a read's records are turned into frames:

``new_field``
    a field the catalogue does not list (with ``attributes=None`` it is kept as a column, its
    dtype inferred from its values);
``missing_field``
    a catalogue field that was asked for but is absent from every record (its column stays,
    all null);
``enum_value``
    a value outside an enum's documented values (kept: the categorical gains the category).

None of them is an error and no column is dropped: a read warns once with a
:class:`JettiDriftWarning`, and a snapshot records them in its manifest (``drift``), where
:func:`~jetti_frames.snapshot_info` (``info.drift``) and ``jetti-frames info`` report them.
Fields every real answer carries without the OpenAPI document listing them
(:data:`UNDOCUMENTED_FIELDS`) are not drift.

Examples
--------
>>> from jetti_frames.schema import FrameSpec
>>> log = DriftLog()
>>> log.observe([{"id": 1, "level": "critical", "colour": "red"}],
...             FrameSpec.of("purchase-statuses", ["id", "name", "level"]))
>>> [str(item) for item in log.items()]   # doctest: +NORMALIZE_WHITESPACE
["purchase-statuses: 'level' has values outside its enum: 'critical' (kept as categories)",
 "purchase-statuses: 'name' no longer arrives (its column is all null)",
 "purchase-statuses: new field 'colour' (string)"]
"""

from __future__ import annotations

import json
import os
import sys
import threading
import types
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any, Literal

from ._tree import FrameSpec, Node, node_columns, walk
from .catalog import CATALOG
from .schema import infer_kind

__all__ = ["UNDOCUMENTED_FIELDS", "DriftItem", "DriftLog", "JettiDriftWarning"]

#: Fields real answers carry on every resource that the OpenAPI document does not list.
UNDOCUMENTED_FIELDS = frozenset({"companyId"})
DriftKind = Literal["new_field", "missing_field", "enum_value"]
_KINDS: tuple[DriftKind, ...] = ("enum_value", "missing_field", "new_field")
#: Keys under which the API nests included records: never fields of the record itself.
_INCLUDE_KEYS = frozenset(k for r in CATALOG for k in (r.key_one, r.key_many))
#: Values of a new field kept to infer its kind from.
_SAMPLE = 200
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class JettiDriftWarning(UserWarning):
    """The server's records no longer match the catalogue (see :mod:`jetti_frames.drift`).

    ``items`` holds the :class:`DriftItem` s the warning reports.
    """

    def __init__(self, message: str, items: Sequence[DriftItem] = ()) -> None:
        super().__init__(message)
        self.items = tuple(items)


@dataclass(frozen=True)
class DriftItem:
    """One change: its ``kind``, the ``resource`` (URL name) and ``field`` it concerns.

    ``path`` is the chain of include keys from the listed resource to the records holding the
    field (``"purchase_status"``, ``"sale.customer"``; ``""`` for the listed resource itself).
    ``values`` are the values outside the enum (``enum_value``); ``inferred`` is the kind a
    new field's values suggest (``None`` when it only held nulls).

    Examples
    --------
    >>> item = DriftItem("enum_value", "purchases", "purchaseType", values=("consignment",))
    >>> str(item)
    "purchases: 'purchaseType' has values outside its enum: 'consignment' (kept as categories)"
    >>> DriftItem.from_json(item.to_json()) == item
    True
    """

    kind: DriftKind
    resource: str
    field: str
    path: str = ""
    values: tuple[str, ...] = ()
    inferred: str | None = None

    def __str__(self) -> str:
        where = f"{self.path} ({self.resource})" if self.path else self.resource
        if self.kind == "new_field":
            kind = f" ({self.inferred})" if self.inferred else " (only nulls so far)"
            return f"{where}: new field {self.field!r}{kind}"
        if self.kind == "missing_field":
            return f"{where}: {self.field!r} no longer arrives (its column is all null)"
        shown = ", ".join(map(repr, self.values))
        return f"{where}: {self.field!r} has values outside its enum: {shown} (kept as categories)"

    def to_json(self) -> dict[str, Any]:
        """The manifest's form: a JSON object."""
        out: dict[str, Any] = {"kind": self.kind, "resource": self.resource,
                               "field": self.field, "path": self.path}
        if self.values:
            out["values"] = list(self.values)
        if self.inferred:
            out["inferred"] = self.inferred
        return out

    @classmethod
    def from_json(cls, raw: Any) -> DriftItem | None:
        """An item from its manifest form; ``None`` for an entry that is not one."""
        if not isinstance(raw, Mapping) or raw.get("kind") not in _KINDS:
            return None
        if not all(isinstance(raw.get(k), str) for k in ("resource", "field")):
            return None
        values = raw.get("values") or ()
        inferred = raw.get("inferred")
        return cls(raw["kind"], raw["resource"], raw["field"], str(raw.get("path") or ""),
                   tuple(str(v) for v in values) if isinstance(values, list) else (),
                   inferred if isinstance(inferred, str) else None)

    @property
    def _key(self) -> tuple[str, str, str]:
        return self.path, self.kind, self.field


def items_from_manifest(raw: Any) -> tuple[DriftItem, ...]:
    """The drift a manifest records (its ``drift`` list); entries that are not items are skipped.

    >>> items_from_manifest([{"kind": "missing_field", "resource": "purchases",
    ...                       "field": "notes"}, "junk"])[0].field
    'notes'
    """
    if not isinstance(raw, list):
        return ()
    return tuple(item for item in map(DriftItem.from_json, raw) if item is not None)


@dataclass
class _NodeSeen:
    """What the records of one spec node have shown so far."""

    resource: str
    expected: tuple[str, ...]
    enums: dict[str, frozenset[str]]
    known: frozenset[str]
    rows: int = 0
    fields: set[str] = field(default_factory=set)
    off_enum: dict[str, set[str]] = field(default_factory=dict)
    samples: dict[str, list[Any]] = field(default_factory=dict)


class DriftLog:
    """Drift seen over the pages of one read: :meth:`observe` each page's records, then
    :meth:`items`. Safe to share between threads.

    A field counts as missing only when it was absent from every record of its model seen in
    the read (a page without such records, or an empty read, proves nothing). An included
    record repeated under the same ``id`` is looked at once.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, _NodeSeen] = {}
        self._lock = threading.Lock()

    def observe(self, records: Sequence[Mapping[str, Any]], spec: FrameSpec) -> None:
        """Note the fields and enum values of ``records`` (and of their included records)."""
        for node, path, rows in _node_rows(records, spec):
            if not rows:
                continue
            seen = self._node(node, path)
            fields: set[str] = set().union(*rows)
            unknown = fields - seen.known
            off: dict[str, set[str]] = {}
            enums = [name for name in seen.enums if name in fields]
            combos = _distinct(rows, enums) if enums else []
            for name, column in zip(enums, zip(*combos, strict=True), strict=False):
                try:
                    distinct: Iterable[Any] = set(column)
                except TypeError:  # a list or object where a string belongs
                    distinct = column
                values = {t for v in distinct if (t := _text(v)) is not None}
                values -= seen.enums[name]
                if values:
                    off[name] = values
            with self._lock:
                seen.rows += len(rows)
                seen.fields |= fields
                for name, values in off.items():
                    seen.off_enum.setdefault(name, set()).update(values)
                for name in unknown:
                    kept = seen.samples.setdefault(name, [])
                    if len(kept) < _SAMPLE:
                        kept.extend(v for r in rows if (v := r.get(name)) is not None)
                        del kept[_SAMPLE:]

    def _node(self, node: Node, path: str) -> _NodeSeen:
        with self._lock:
            seen = self._nodes.get(path)
            if seen is None:
                res = node.resource
                planned = [c for c in node_columns(node) if res.has_field(c.field)]
                extra = {name for name, _ in node.extra_kinds}
                seen = self._nodes[path] = _NodeSeen(
                    resource=res.url,
                    expected=tuple(dict.fromkeys(c.field for c in planned)),
                    enums={c.field: frozenset(c.enum or ()) for c in planned
                           if c.kind == "enum"},
                    known=frozenset(res.fields_by_name) | extra | _INCLUDE_KEYS
                    | UNDOCUMENTED_FIELDS | {inc.key for inc in node.include})
            return seen

    def fields(self, path: str = "") -> frozenset[str]:
        """Every field the records at include path ``path`` carried so far.

        >>> log = DriftLog()
        >>> log.observe([{"id": 1}, {"id": 2, "colour": "red"}], FrameSpec.of("purchases"))
        >>> sorted(log.fields())
        ['colour', 'id']
        """
        with self._lock:
            seen = self._nodes.get(path)
            return frozenset(seen.fields) if seen is not None else frozenset()

    def saw(self, path: str, name: str) -> bool:
        """Whether a record at include path ``path`` carried the field ``name``."""
        seen = self._nodes.get(path)
        return seen is not None and name in seen.fields

    def items(self) -> tuple[DriftItem, ...]:
        """The drift seen so far, by include path, kind and field name."""
        out: list[DriftItem] = []
        with self._lock:
            for path, seen in self._nodes.items():
                if not seen.rows:
                    continue
                for name in seen.expected:
                    if name not in seen.fields:
                        out.append(DriftItem("missing_field", seen.resource, name, path))
                for name, values in seen.off_enum.items():
                    out.append(DriftItem("enum_value", seen.resource, name, path,
                                         tuple(sorted(values))))
                for name, samples in seen.samples.items():
                    out.append(DriftItem("new_field", seen.resource, name, path,
                                         inferred=infer_kind(samples)))
        return tuple(sorted(out, key=lambda i: i._key))

    def merged(self, previous: Iterable[DriftItem]) -> tuple[DriftItem, ...]:
        """This read's drift joined with what a snapshot recorded before it (a refresh).

        New fields and off-enum values stay reported (their rows are still in the snapshot);
        a field recorded as missing is dropped once a record carries it again.
        """
        found = {item._key: item for item in self.items()}
        for old in previous:
            now = found.get(old._key)
            if old.kind == "missing_field" and self.saw(old.path, old.field):
                continue
            if now is None:
                found[old._key] = old
            elif old.kind == "enum_value":
                found[old._key] = replace(now, values=tuple(sorted({*old.values, *now.values})))
        return tuple(sorted(found.values(), key=lambda i: i._key))

    def warn(self, what: str) -> None:
        """Issue one :class:`JettiDriftWarning` for everything seen (nothing when none)."""
        items = self.items()
        if items:
            warn_drift(items, what)


def warn_drift(items: Sequence[DriftItem], what: str) -> None:
    """One :class:`JettiDriftWarning` listing ``items``, pointing at the caller's code."""
    text = "; ".join(map(str, items))
    message = (f"{what}: the server's records differ from the catalogue: {text} "
               "(nothing was dropped)")
    warnings.warn(JettiDriftWarning(message, items), stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller point at the first frame
    outside the package (the user's line), whatever the depth of the call."""
    level = 1
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def _distinct(rows: Sequence[Mapping[str, Any]], names: Sequence[str]
              ) -> Iterable[tuple[Any, ...]]:
    """The distinct combinations of the values of ``names`` in ``rows`` (in one C-level pass
    when every row has them and they are hashable; otherwise every row's, slowly).

    >>> sorted(_distinct([{"a": 1, "b": "x"}, {"a": 1, "b": "x"}, {"a": 2}], ["a"]))
    [(1,), (2,)]
    """
    get = itemgetter(*names)
    try:
        found = set(map(get, rows))
    except (KeyError, TypeError):  # a row lacks a field, or a value is a list or object
        return [tuple(r.get(n) for n in names) for r in rows]
    return found if len(names) > 1 else {(v,) for v in found}


def _unique(rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Included ``rows`` with each ``id`` once (a status or provider comes with every record
    that points to it: its first copy stands for the others); rows without an id all stay.

    >>> _unique([{"id": 1, "a": 1}, {"id": 1, "a": 1}, {"id": 2}, {"a": 1}, {"a": 1}])
    [{'id': 1, 'a': 1}, {'id': 2}, {'a': 1}, {'a': 1}]
    """
    seen: set[Any] = set()
    out = []
    for row in rows:
        key = row.get("id")
        if key is None or key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _text(value: Any) -> str | None:
    """An enum value as its category reads it (a non-string as JSON text)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _node_rows(records: Sequence[Mapping[str, Any]], spec: FrameSpec
               ) -> list[tuple[Node, str, list[Mapping[str, Any]]]]:
    """``(node, include path, records of that node)`` for the spec and each include."""
    rows_at: dict[tuple[str, ...], list[Mapping[str, Any]]] = {
        (): [r for r in records if isinstance(r, Mapping)]}
    out: list[tuple[Node, str, list[Mapping[str, Any]]]] = []
    for step in walk(spec):  # parents come before their includes
        if step.path:
            children: list[Mapping[str, Any]] = []
            for row in rows_at[step.path[:-1]]:
                value = row.get(step.path[-1])
                if isinstance(value, dict):
                    children.append(value)
                elif isinstance(value, list):
                    children.extend(v for v in value if isinstance(v, dict))
            rows_at[step.path] = _unique(children)
        out.append((step.node, ".".join(step.path), rows_at[step.path]))
    return out
