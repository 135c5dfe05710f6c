"""Reading a snapshot back: the dataset scan, column and row order, typed filters."""

from __future__ import annotations

import difflib
import operator
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from ..catalog import Field
from ..errors import JettiError, JettiQueryError, SnapshotError
from .columns import _Partition, _snapshot_dtypes, _to_pandas
from .store import _check_footers, _culprit, _damaged, _join, _Target


def _read_frame(target: _Target, root: str, manifest: Mapping[str, Any],
                columns: Any, filters: Any) -> pd.DataFrame:
    """The rows of a checked snapshot as :func:`read_snapshot` returns them."""
    specs: dict[str, Any] = manifest["columns"]
    partition = _Partition.from_json(manifest.get("partition_by"))
    files = [_join(root, f["path"]) for f in manifest["files"]]
    derived = partition.name if partition and partition.derived else None
    wanted = _column_order(manifest) if columns is None else list(columns)
    unknown = [c for c in wanted if c not in specs and c != derived]
    if unknown:
        raise SnapshotError(f"no such column in the snapshot: {', '.join(map(repr, unknown))}")
    part_schema = partition.arrow_schema(specs) if partition else None
    partitioning = pads.partitioning(part_schema, flavor="hive") if part_schema else None
    if not files:  # written before empty snapshots kept an empty file
        dtypes = _snapshot_dtypes(specs, None)
        return pd.DataFrame({c: pd.Series([], dtype=dtypes[c]) for c in wanted
                             if c in dtypes}).reindex(columns=wanted)
    dataset = pads.dataset(files, format="parquet", filesystem=target.fs,
                           partitioning=partitioning,
                           partition_base_dir=root if part_schema else None)
    _check_footers(target, root, manifest, dataset)
    try:
        file_schema = pa.unify_schemas([f.physical_schema for f in dataset.get_fragments()])
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(target, root, _culprit(dataset, root, manifest, list(specs)),
                       exc) from None
    file_schema = pa.schema([f for f in file_schema if part_schema is None
                             or f.name not in part_schema.names], metadata=file_schema.metadata)
    schema = pa.schema([*file_schema, *(part_schema or [])], metadata=file_schema.metadata)
    dataset = dataset.replace_schema(schema)
    dtypes = _snapshot_dtypes(specs, file_schema)
    expression = _filter_expression(filters, specs, schema)
    sort_keys = _sort_columns(manifest, specs)
    read_cols = list(dict.fromkeys([*wanted, *[k for k in sort_keys if k in specs]]))
    try:
        table = dataset.to_table(columns=read_cols, filter=expression)
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(target, root, _culprit(dataset, root, manifest, read_cols),
                       exc) from None
    frame = _sort(_to_pandas(table, dtypes), manifest, sort_keys)
    return frame[wanted].reset_index(drop=True)


def _column_order(manifest: Mapping[str, Any]) -> list[str]:
    """The columns in the order ``read_jetti`` gives them.

    Pages may bring fields the catalogue lacks; a read places them after the catalogue fields of
    their model (sorted by name), before the columns of nested includes.
    """
    columns = list(manifest["columns"])
    try:
        groups = _column_groups(manifest)
    except JettiError:  # the recorded query no longer fits the catalogue: keep stored order
        return columns
    planned = {c for _, names in groups for c in names}
    extra: dict[str, list[str]] = {prefix: [] for prefix, _ in groups}
    for name in columns:
        if name not in planned:
            prefix = max((p for p, _ in groups if name.startswith(p)), key=len)
            extra[prefix].append(name)
    present = set(columns)
    ordered = [c for prefix, names in groups
               for c in [*[n for n in names if n in present], *sorted(extra[prefix])]]
    return ordered if len(ordered) == len(columns) else columns


def _column_groups(manifest: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """``(column prefix, planned columns)`` of the resource and each include, depth first."""
    from .._tree import node_columns, walk
    from ..query import build_query

    query = manifest["query"]
    sep = (manifest.get("options") or {}).get("sep", "_")
    spec = build_query(manifest["resource"], attributes=query.get("attributes"),
                       include=query.get("include")).spec
    return [(step.prefix, [c.name for c in node_columns(*step)]) for step in walk(spec, sep)]


def _sort_columns(manifest: Mapping[str, Any], specs: Mapping[str, Any]) -> list[str]:
    order = _order_spec(manifest["query"].get("order"))
    keys = [order[0]] if order and order[0] in specs else []
    if "id" in specs:
        keys.append("id")
    return keys


def _order_spec(order: Any) -> tuple[str, bool, bool] | None:
    """``(attribute, descending, nulls_first)`` of a recorded order, read as the client reads it."""
    from ..query import parse_order

    parsed = parse_order(order) if order else None
    return (parsed.attribute, parsed.descending, parsed.nulls_first) if parsed else None


def _sort(frame: pd.DataFrame, manifest: Mapping[str, Any], keys: list[str]) -> pd.DataFrame:
    """Rows in the order ``read_jetti`` gives them: by the query's order, then by id."""
    if frame.empty or not keys:
        return frame
    order = _order_spec(manifest["query"].get("order"))
    if order and order[0] == keys[0]:
        attribute, descending, nulls_first = order
        frame = frame.sort_values(keys[1:], kind="stable") if len(keys) > 1 else frame
        return frame.sort_values(attribute, ascending=not descending, kind="stable",
                                 na_position="first" if nulls_first else "last", key=_by_value)
    return frame.sort_values(keys, kind="stable")


def _by_value(values: pd.Series) -> pd.Series:
    """Sort categoricals by their values, as the client sorts records (not by category order)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(object)
    return values


_FILTER_OPS = {"=": "$eq", "==": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt",
               ">=": "$gte", "in": "$in", "not in": "$notIn"}
_COMPARE = {"$eq": operator.eq, "$ne": operator.ne, "$lt": operator.lt, "$lte": operator.le,
            "$gt": operator.gt, "$gte": operator.ge}


def _filter_expression(filters: Any, specs: Mapping[str, Any],
                       schema: pa.Schema) -> pc.Expression | None:
    """pyarrow DNF filters as an expression, each value converted to its column's type.

    The values go through :func:`jetti_frames.query.convert_value`, the conversion of
    ``read_jetti``'s ``where``, with the column's kind taken from the manifest.
    """
    if filters is None or isinstance(filters, pc.Expression):
        return filters
    if not isinstance(filters, list | tuple):
        raise JettiQueryError(f"filters must be a list of (column, op, value) tuples or a list "
                              f"of such lists, got {filters!r}")
    if not filters:
        return None
    nested = all(isinstance(f, list) for f in filters)
    groups = filters if nested else [filters]
    expression: pc.Expression | None = None
    for i, group in enumerate(groups):
        terms = [_filter_term(term, specs, schema, f"filters[{i}][{j}]" if nested
                              else f"filters[{j}]")
                 for j, term in enumerate(group)]
        if not terms:
            raise JettiQueryError(f"filters[{i}] is empty")
        conjunction = terms[0]
        for term in terms[1:]:
            conjunction = conjunction & term
        expression = conjunction if expression is None else expression | conjunction
    return expression


def _filter_term(term: Any, specs: Mapping[str, Any], schema: pa.Schema,
                 where: str) -> pc.Expression:
    from ..query import convert_value

    if not isinstance(term, tuple | list) or len(term) != 3:
        raise JettiQueryError(f"{where}: a filter is a (column, op, value) tuple, got {term!r}")
    column, op_text, value = term
    op = _FILTER_OPS.get(str(op_text).strip().lower())
    if op is None:
        raise JettiQueryError(f"{where}: unknown filter operator {op_text!r}; use one of "
                              f"{', '.join(_FILTER_OPS)}")
    fld = _column_field(column, specs, schema, where)
    converted = convert_value(fld, op, value, f"{where}[{column}]")
    field = pc.field(column)
    if converted is None:
        return field.is_null() if op == "$eq" else field.is_valid()
    if op in ("$in", "$notIn"):
        arrow_type = schema.field(column).type
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        found = field.isin(pa.array(converted, type=arrow_type))
        return found if op == "$in" else field.is_valid() & ~found
    return _COMPARE[op](field, pc.scalar(converted))


def _column_field(column: Any, specs: Mapping[str, Any], schema: pa.Schema,
                  where: str) -> Field:
    """A catalogue-style :class:`Field` for a snapshot column, its kind from the manifest."""
    if not isinstance(column, str) or column not in schema.names:
        close = difflib.get_close_matches(str(column), schema.names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise JettiQueryError(f"{where}: the snapshot has no column {column!r}{hint}")
    spec = specs.get(column) or {"type": "derived"}  # a derived partition column is text
    arrow_type = schema.field(column).type
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    kind = ("boolean" if pa.types.is_boolean(arrow_type) else
            "integer" if pa.types.is_integer(arrow_type) else
            "number" if pa.types.is_floating(arrow_type) else
            "datetime" if pa.types.is_timestamp(arrow_type) else
            "string" if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            else "json")
    if spec["type"] == "json" or kind == "json":
        raise JettiQueryError(f"{where}: cannot filter on {column!r}, a JSON or list column")
    if spec["type"] == "category" and kind == "string":
        return Field(column, "enum", enum=tuple(spec["categories"] or ()) or None)
    return Field(column, kind)
