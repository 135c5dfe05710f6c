"""Columns of a snapshot: the manifest's column descriptions, partitions, dtypes from files.

The manifest describes each column in JSON (``{"type": "category", "categories": [...]}``,
``{"type": "numpy", "name": "Int64"}``, ...): enough for filters, for checking that a refresh
still fits, and for the categories and string flavours a file's schema does not record. Every
other dtype comes back from the pandas metadata Arrow stores in each parquet file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import JettiQueryError
from .common import _jsonable, _scalar

PARTITION_UNITS = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d"}
_KINDS = {"category": ("categories", "ordered"), "arrow": ("arrow",), "string": ("storage", "na"),
          "json": (), "numpy": ("name",)}


# -- the manifest's column descriptions ---------------------------------------------------------


def _column_specs(dtypes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A JSON description of each column's dtype (what the manifest records as ``columns``)."""
    return {str(name): _dtype_spec(dtype) for name, dtype in dtypes.items()}


def _dtype_spec(dtype: Any) -> dict[str, Any]:
    dtype = pd.api.types.pandas_dtype(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        categories = [_scalar(c) for c in dtype.categories] if dtype.categories is not None \
            else None
        return {"type": "category", "categories": categories, "ordered": bool(dtype.ordered)}
    if isinstance(dtype, pd.ArrowDtype):
        return {"type": "arrow", "arrow": str(dtype.pyarrow_dtype)}
    if isinstance(dtype, pd.StringDtype):
        na = "NA" if dtype.na_value is pd.NA else "nan"
        return {"type": "string", "storage": dtype.storage, "na": na}
    if dtype == np.dtype(object):
        return {"type": "json"}
    return {"type": "numpy", "name": str(dtype)}


def _good_specs(specs: Any) -> bool:
    """Whether ``columns`` of a manifest describes each column with the keys its kind needs."""
    return isinstance(specs, dict) and all(
        isinstance(spec, dict) and spec.get("type") in _KINDS
        and all(key in spec for key in _KINDS[spec["type"]]) for spec in specs.values())


def _compatible(query: Mapping[str, Any], recorded: Mapping[str, Any]) -> bool:
    """Whether the columns a query gives now still fit a recorded snapshot's columns."""
    for name, spec in query.items():
        old = recorded.get(name)
        if old is None or old["type"] != spec["type"]:
            return False
        if spec["type"] == "category":
            if old["categories"][:len(spec["categories"])] != spec["categories"]:
                return False
        elif spec != old:
            return False
    return True


# -- dtypes back from a file schema's pandas metadata ------------------------------------------


def _snapshot_dtypes(specs: Mapping[str, Any], schema: pa.Schema | None) -> dict[str, Any]:
    """The dtype of each column: the pandas metadata of the files' ``schema``, with categories
    and string flavours from the manifest (``schema`` is ``None`` for a snapshot without files).
    """
    restored = schema.empty_table().to_pandas().dtypes if schema is not None else pd.Series()
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        kind = spec["type"]
        if kind == "category":
            out[name] = pd.CategoricalDtype(spec["categories"], ordered=spec["ordered"])
        elif kind == "string":
            out[name] = pd.StringDtype(spec["storage"],
                                       na_value=pd.NA if spec["na"] == "NA" else np.nan)
        elif kind == "json":
            out[name] = np.dtype(object)
        elif kind == "arrow" and schema is not None and name in schema.names:
            out[name] = pd.ArrowDtype(schema.field(name).type)
        elif name in restored.index:
            out[name] = restored[name]
        elif kind == "arrow":  # not in the files: a partition column, or a snapshot without
            out[name] = pd.ArrowDtype.construct_from_string(f"{spec['arrow']}[pyarrow]")
        else:
            out[name] = pd.api.types.pandas_dtype(spec["name"])
    return out


def _file_schema(dtypes: Mapping[str, Any], skip: str | None = None) -> pa.Schema:
    """The Arrow schema of the files (with pandas metadata); JSON columns are text."""
    empty = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in dtypes.items()
                          if name != skip})
    schema = pa.Schema.from_pandas(empty, preserve_index=False)
    fields = []
    for f in schema:
        if dtypes[f.name] == np.dtype(object):
            f = pa.field(f.name, pa.large_string())
        elif pa.types.is_dictionary(f.type):
            f = pa.field(f.name, pa.dictionary(pa.int32(), f.type.value_type))
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def _to_pandas(table: pa.Table, dtypes: Mapping[str, Any]) -> pd.DataFrame:
    """A scanned table as a frame with the snapshot's dtypes."""
    columns: dict[str, Any] = {}
    for name in table.column_names:
        column = table.column(name)
        dtype = dtypes.get(name)
        if dtype is None:  # a derived partition column
            columns[name] = pd.Series(column.to_pylist(), dtype=pd.StringDtype())
        elif dtype == np.dtype(object):
            columns[name] = pd.Series([_from_json_text(v) for v in column.to_pylist()],
                                      dtype=object)
        elif isinstance(dtype, pd.ArrowDtype):
            columns[name] = pd.Series(pd.array(column.cast(dtype.pyarrow_dtype), dtype=dtype))
        elif isinstance(dtype, pd.CategoricalDtype) and pa.types.is_dictionary(column.type):
            values = pd.Series(column.to_pandas(), copy=False)
            columns[name] = values.cat.set_categories(dtype.categories).astype(dtype)
        else:
            mapper = (lambda _type, d=dtype: d) if isinstance(
                dtype, pd.api.extensions.ExtensionDtype) and not isinstance(
                dtype, pd.DatetimeTZDtype) else None
            columns[name] = pd.Series(column.to_pandas(types_mapper=mapper),
                                      copy=False).astype(dtype)
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def _json_text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def _from_json_text(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# -- partitions -------------------------------------------------------------------------------


def _is_datetime(dtype: Any) -> bool:
    if isinstance(dtype, pd.ArrowDtype):
        return pa.types.is_timestamp(dtype.pyarrow_dtype)
    return bool(pd.api.types.is_datetime64_any_dtype(dtype))


def _is_float(dtype: Any) -> bool:
    if isinstance(dtype, pd.ArrowDtype):
        return pa.types.is_floating(dtype.pyarrow_dtype)
    return bool(pd.api.types.is_float_dtype(dtype))


def _usage(message: str) -> JettiQueryError:
    return JettiQueryError(message)
@dataclass(frozen=True)
class _Partition:
    """``partition_by``: a column, or a datetime column cut to a unit (derived column)."""

    column: str
    unit: str | None

    @property
    def name(self) -> str:
        return f"{self.column}_{self.unit}" if self.unit else self.column

    @property
    def derived(self) -> bool:
        return self.unit is not None

    @classmethod
    def of(cls, spec: str | tuple[str, str] | Sequence[str] | None,
           dtypes: Mapping[str, Any]) -> _Partition | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            column, unit = spec, None
        else:
            try:
                column, unit = spec
            except (TypeError, ValueError):
                raise _usage(f"partition_by must be a column or (column, unit), not "
                             f"{spec!r}") from None
        if column not in dtypes:
            raise _usage(f"cannot partition by {column!r}: not a column of this query")
        dtype = dtypes[column]
        is_datetime = _is_datetime(dtype)
        if unit is not None:
            if unit not in PARTITION_UNITS:
                raise _usage(f"partition unit must be one of {', '.join(PARTITION_UNITS)}, "
                             f"not {unit!r}")
            if not is_datetime:
                raise _usage(f"cannot cut {column!r} by {unit}: it is not a datetime column")
        elif is_datetime:
            raise _usage(f"partition a datetime column by a unit, e.g. ({column!r}, 'month')")
        elif _is_float(dtype) or pd.api.types.is_object_dtype(dtype):
            raise _usage(f"cannot partition by {column!r}: use an integer, boolean, enum or "
                         "string column, or a datetime cut to a unit")
        return cls(column, unit)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> _Partition | None:
        return cls(raw["column"], raw.get("unit")) if raw else None

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "unit": self.unit, "name": self.name}

    def keys(self, frame: pd.DataFrame) -> pd.Series:
        """The partition value of each row, as Python scalars (None for null)."""
        values = frame[self.column]
        if self.unit:
            out = values.dt.strftime(PARTITION_UNITS[self.unit]).astype(object)
        else:
            out = values.astype(object)
        return out.where(values.notna(), None)

    def arrow_type(self, specs: Mapping[str, Any]) -> pa.DataType:
        if self.unit:
            return pa.string()
        kind = specs[self.column]["type"]
        name = specs[self.column].get("name", "")
        if kind == "numpy" and "int" in name.lower():
            return pa.int64()
        if kind == "numpy" and name in ("boolean", "bool"):
            return pa.bool_()
        if kind == "arrow":
            arrow = specs[self.column]["arrow"]
            if "int" in arrow:
                return pa.int64()
            if arrow in ("bool", "boolean"):
                return pa.bool_()
        return pa.string()

    def arrow_schema(self, specs: Mapping[str, Any]) -> pa.Schema:
        return pa.schema([pa.field(self.name, self.arrow_type(specs))])


