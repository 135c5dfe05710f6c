"""Flat columns -> typed pandas DataFrames, with dtypes taken from the catalogue.

The wanted frame is an include tree (:class:`FrameSpec` and its :class:`IncludeSpec` nodes, see
:mod:`jetti_frames._tree`): the one a validated query carries (``Query.spec``), or one built
with ``FrameSpec.of`` and ``IncludeSpec.of``.

Dtypes follow pandas' ``dtype_backend`` convention:

========  ==========================  ==========================================
kind      ``"numpy_nullable"``         ``"pyarrow"``
========  ==========================  ==========================================
integer   ``Int64``                    ``int64[pyarrow]``
number    ``Float64``                  ``double[pyarrow]``
boolean   ``boolean``                  ``bool[pyarrow]``
datetime  ``datetime64[us, UTC]``      ``timestamp[us, tz=UTC][pyarrow]``
enum      ``category`` (spec values)   ``category`` (spec values)
string    ``string`` (pyarrow storage) ``string[pyarrow]`` (``pa.string()``)
array     ``object`` (lists)           ``object`` (lists)
json      ``object`` (dicts, lists...) ``object`` (dicts, lists, ...)
========  ==========================  ==========================================

Choices made so that every page of a result has the same columns and dtypes:

- ``string`` always uses pyarrow storage (``pd.StringDtype("pyarrow")``, missing = ``pd.NA``):
  that is what plain ``"string"`` means under pandas 3, and pinning it makes pandas 2.2 agree.
- Free-form JSON and arrays stay Python objects under both backends (an arrow type cannot hold
  JSON whose shape changes from record to record).
- Enum columns have the spec's values as categories, in spec order.  A value the spec lacks is
  never turned into a missing value: it is added as an extra category after the spec's ones
  (sorted).  Pages with different extra values then have different categories; combine pages with
  :func:`concat_frames` (which unions the categories) rather than a bare ``pd.concat``.
- Dates are parsed with their offsets and converted to UTC; a date without an offset is read as
  UTC.  A value that is not a date raises :class:`ValueError` naming the column.
- Fields the catalogue lacks ("unknown fields") get a kind inferred from their JSON values, see
  :func:`infer_kind`.  With ``attributes=None`` they come after the catalogue fields of their
  model, sorted by name, and only when some record of the input has a value for them (an all-null
  unknown field has no knowable dtype; the same holds for a selected name the catalogue lacks).
  Pages are then combined by column name: ``pd.concat`` and :func:`concat_frames` fill a column
  missing from one page with nulls of the other pages' dtype.  To pin such a field for every
  page, list it in ``extra_kinds``.  Keys of included records (``purchase_status``...) are never
  read as unknown fields.

Examples
--------
>>> from jetti_frames.schema import FrameSpec, IncludeSpec, column_dtypes
>>> spec = FrameSpec.of("purchases", columns=("id", "total", "purchaseStatusId"),
...                     includes=(IncludeSpec.of("purchases", "PurchaseStatus", ("name",)),))
>>> {k: str(v) for k, v in column_dtypes(spec).items()}
{'id': 'Int64', 'total': 'Float64', 'purchaseStatusId': 'Int64', 'purchase_status_name': 'string'}
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._tree import DEFAULT_SEP, Column, FrameSpec, Include, column_plan
from .errors import JettiDataError, JettiQueryError

__all__ = [
    "DEFAULT_SEP",
    "WIRE_TYPES",
    "Column",
    "DtypeBackend",
    "FrameSpec",
    "IncludeSpec",
    "arrow_to_pandas",
    "column_dtypes",
    "column_plan",
    "concat_frames",
    "empty_frame",
    "frame_of",
    "infer_kind",
    "kind_dtype",
    "order_key",
    "typed_array",
    "typed_frame",
    "wire_array",
]

DtypeBackend = Literal["numpy_nullable", "pyarrow"]
#: The include tree's node type (:class:`jetti_frames.query.Include`) under the name the frame
#: builders' callers know.
IncludeSpec = Include

_STRING = pd.StringDtype("pyarrow")
_NUMPY_NULLABLE: dict[str, Any] = {
    "integer": pd.Int64Dtype(),
    "number": pd.Float64Dtype(),
    "boolean": pd.BooleanDtype(),
    "datetime": pd.DatetimeTZDtype("us", "UTC"),
    "string": _STRING,
    "array": np.dtype(object),
    "json": np.dtype(object),
}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "string": pa.string(),
}
_PYARROW: dict[str, Any] = {
    **{kind: pd.ArrowDtype(t) for kind, t in _ARROW_TYPES.items()},
    "array": np.dtype(object),
    "json": np.dtype(object),
}
_BACKENDS = {"numpy_nullable": _NUMPY_NULLABLE, "pyarrow": _PYARROW}
_ISO_DATETIME = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)\Z"
)


def _check_backend(dtype_backend: str) -> dict[str, Any]:
    try:
        return _BACKENDS[dtype_backend]
    except KeyError:
        raise JettiQueryError(
            f"dtype_backend must be 'numpy_nullable' or 'pyarrow', not {dtype_backend!r}"
        ) from None


def kind_dtype(kind: str, enum: Sequence[str] | None = None,
               dtype_backend: DtypeBackend = "numpy_nullable") -> Any:
    """The pandas dtype of a field kind.

    Examples
    --------
    >>> kind_dtype("datetime")
    datetime64[us, UTC]
    >>> kind_dtype("integer", dtype_backend="pyarrow")
    int64[pyarrow]
    >>> kind_dtype("enum", ["a", "b"]).categories.tolist()
    ['a', 'b']
    """
    table = _check_backend(dtype_backend)
    if kind == "enum":
        return pd.CategoricalDtype(categories=list(enum or ()), ordered=False)
    try:
        return table[kind]
    except KeyError:
        raise JettiQueryError(f"unknown field kind {kind!r}") from None


def column_dtypes(spec: FrameSpec, *, sep: str = DEFAULT_SEP,
                  dtype_backend: DtypeBackend = "numpy_nullable") -> dict[str, Any]:
    """Column name -> pandas dtype of every planned column, in frame order.

    Selected names the catalogue lacks (and not in ``extra_kinds``) have no knowable dtype and
    are left out; so are unknown fields found only in records.

    Examples
    --------
    >>> spec = FrameSpec.of("purchase-statuses", ["id", "level", "createdAt"])
    >>> column_dtypes(spec)["level"].categories.tolist()
    ['default', 'warning', 'danger']
    """
    _check_backend(dtype_backend)
    return {c.name: kind_dtype(c.kind, c.enum, dtype_backend)
            for c in column_plan(spec, sep=sep) if c.kind is not None}


# -- inference ---------------------------------------------------------------------------------


def infer_kind(values: Iterable[Any]) -> str | None:
    """The kind of a field the catalogue lacks, from its JSON values (nulls ignored).

    booleans -> ``boolean``; integers -> ``integer``; integers and floats -> ``number``; strings
    that are all ISO-8601 date-times with an offset -> ``datetime``; other strings -> ``string``;
    arrays -> ``array``; anything else or mixed -> ``json``; no value at all -> ``None``.

    Examples
    --------
    >>> infer_kind([1, None, 2]), infer_kind([1, 2.5]), infer_kind(["2024-05-04T09:42:00+00:00"])
    ('integer', 'number', 'datetime')
    >>> infer_kind([None]) is None
    True
    """
    types = {type(v) for v in values if v is not None}
    if not types:
        return None
    if types == {bool}:
        return "boolean"
    if types == {int}:
        return "integer"
    if types <= {int, float}:
        return "number"
    if types == {str}:
        strings = [v for v in values if v is not None]
        if all(_ISO_DATETIME.match(s) for s in strings):
            return "datetime"
        return "string"
    if types == {list}:
        return "array"
    return "json"


# -- typed arrays ------------------------------------------------------------------------------


def typed_array(values: Sequence[Any], kind: str, enum: Sequence[str] | None = None,
                dtype_backend: DtypeBackend = "numpy_nullable", name: str = "") -> Any:
    """A pandas array of ``kind`` from JSON values (``None`` = missing).

    Raises :class:`ValueError` naming ``name`` when a value cannot be read as ``kind`` (never
    turns it into a missing value).  Lenient where the meaning is plain: integral floats and
    numeric strings for numbers, ``0``/``1``/``"true"``/``"false"`` for booleans, JSON text for a
    non-string value in a string or enum field.

    Examples
    --------
    >>> typed_array([1, None], "integer").tolist()
    [1, <NA>]
    >>> str(typed_array(["2024-05-04T11:42:00+02:00"], "datetime")[0])
    '2024-05-04 09:42:00+00:00'
    """
    _check_backend(dtype_backend)
    if kind in ("array", "json"):
        return np.fromiter(values, dtype=object, count=len(values))
    if kind not in WIRE_TYPES:
        raise JettiQueryError(f"unknown field kind {kind!r}")
    return arrow_to_pandas(wire_array(values, kind, name), kind, enum, dtype_backend, name)


#: The arrow type JSON values of each scalar kind are first read into (dates and enums as text).
WIRE_TYPES: dict[str, pa.DataType] = {
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "datetime": pa.string(),
    "enum": pa.string(),
}


def wire_array(values: Sequence[Any], kind: str, name: str = "") -> pa.Array:
    """JSON values of a scalar kind as an arrow array of ``WIRE_TYPES[kind]``.

    Examples
    --------
    >>> wire_array([1, True, None], "integer").to_pylist()
    [1, 1, None]
    """
    typ = WIRE_TYPES[kind]
    try:
        if kind == "integer" and not _INT_TYPES.issuperset(map(type, values)):
            raise pa.ArrowInvalid("not only integers")  # arrow would truncate 2.5 to 2
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        coerce = _COERCE[kind]
        fixed = []
        for v in values:
            try:
                fixed.append(None if v is None else coerce(v))
            except (TypeError, ValueError, OverflowError):
                raise JettiDataError(f"column {name!r}: cannot read {v!r} as {kind}") from None
        return pa.array(fixed, type=typ)


_INT_TYPES = frozenset({int, type(None)})


def order_key(value: Any, kind: str) -> Any:
    """A JSON value as the server orders it: a number for ``integer`` and ``number`` (numeric
    text too, read as :func:`typed_array` reads it), an instant for ``datetime`` (UTC when it
    names no zone), the value itself for any other kind; None when it cannot be read so.
    Instants keep their full precision (:func:`~jetti_frames.query.to_instant` reads the
    values a query sends, at JavaScript's milliseconds).

    Examples
    --------
    >>> order_key("1000.00", "number") > order_key("404.64", "number")
    True
    >>> order_key("2024-05-04T11:42:00+02:00", "datetime") < order_key("2024-05-04T10:00Z",
    ...                                                                  "datetime")
    True
    >>> order_key("n/a", "number") is None, order_key(True, "integer") is None
    (True, True)
    """
    if value is None:
        return None
    if kind in ("integer", "number"):
        if isinstance(value, bool):
            return None
        try:
            return _COERCE[kind](value)
        except (TypeError, ValueError, OverflowError):
            return None
    if kind == "datetime":
        if not isinstance(value, str):
            return None
        try:
            instant = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return instant if instant.tzinfo is not None else instant.replace(tzinfo=dt.UTC)
    return value


def arrow_to_pandas(arr: pa.Array, kind: str, enum: Sequence[str] | None = None,
                    dtype_backend: DtypeBackend = "numpy_nullable", name: str = "") -> Any:
    """A pandas array of ``kind`` from an arrow array of ``WIRE_TYPES[kind]``."""
    if kind == "enum":
        return _categorical(arr, enum or ())
    if kind == "datetime":
        arr = _parse_datetimes(arr, name)
    if dtype_backend == "pyarrow":
        return pd.arrays.ArrowExtensionArray(arr)
    return _NUMPY_NULLABLE[kind].__from_arrow__(arr)


def _parse_datetimes(text: pa.Array, name: str) -> pa.Array:
    try:
        return pc.cast(text, _ARROW_TYPES["datetime"])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # dates without an offset (read as UTC), other ISO-8601 spellings
        parsed = pd.to_datetime(pd.Series(text.to_pylist(), dtype=object), utc=True,
                                format="ISO8601")
    except (TypeError, ValueError) as exc:
        raise JettiDataError(f"column {name!r}: cannot read dates: {exc}") from None
    return pa.array(parsed.dt.as_unit("us"), type=_ARROW_TYPES["datetime"])


def _to_int(v: Any) -> int:
    if isinstance(v, float) and not v.is_integer():
        raise ValueError(v)
    if isinstance(v, (dict, list)):
        raise TypeError(v)
    return int(v)


def _to_float(v: Any) -> float:
    if isinstance(v, (dict, list)):
        raise TypeError(v)
    return float(v)


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ValueError(v)


def _to_str(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


_COERCE = {"integer": _to_int, "number": _to_float, "boolean": _to_bool, "string": _to_str,
           "datetime": _to_str, "enum": _to_str}


def _categorical(arr: pa.Array, enum: Sequence[str]) -> pd.Categorical:
    categories = list(enum)
    codes = pc.index_in(arr, value_set=pa.array(categories, type=pa.string()))
    off_spec = pc.and_(pc.is_null(codes), pc.is_valid(arr))
    if pc.any(off_spec).as_py():
        categories += sorted(set(pc.filter(arr, off_spec).to_pylist()))
        codes = pc.index_in(arr, value_set=pa.array(categories, type=pa.string()))
    np_codes = codes.fill_null(-1).to_numpy(zero_copy_only=False)
    return pd.Categorical.from_codes(np_codes, dtype=category_dtype(tuple(categories)))


@lru_cache(maxsize=512)
def category_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """The (unordered) categorical dtype of ``categories``, made once: making one checks them.

    >>> category_dtype(("open", "shut")) is category_dtype(("open", "shut"))
    True
    """
    return pd.CategoricalDtype(categories=list(categories), ordered=False)


# -- frames ------------------------------------------------------------------------------------


def typed_frame(columns: Mapping[str, Sequence[Any]], spec: FrameSpec, *,
                sep: str = DEFAULT_SEP,
                dtype_backend: DtypeBackend = "numpy_nullable") -> pd.DataFrame:
    """A typed DataFrame from flat columns (name -> list of JSON values).

    Columns of the spec's plan get catalogue dtypes; other columns (unknown fields, and selected
    names the catalogue lacks) get the kind :func:`infer_kind` finds, and are left out when they
    hold no value.  Planned columns missing from ``columns`` are added, all-null, after the given
    ones.

    Examples
    --------
    >>> spec = FrameSpec.of("purchase-statuses", ["id", "name"])
    >>> typed_frame({"id": [1, 2], "name": ["Open", None]}, spec).dtypes.astype(str).tolist()
    ['Int64', 'string']
    """
    _check_backend(dtype_backend)
    plan = {c.name: c for c in column_plan(spec, sep=sep)}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise JettiDataError(f"columns have different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    data: dict[str, Any] = {}
    for name, values in columns.items():
        col = plan.get(name)
        kind = col.kind if col is not None else None
        if kind is None:
            kind = infer_kind(values)
            if kind is None:  # a field of unknown kind without values: no knowable dtype
                continue
        enum = col.enum if col is not None else None
        data[name] = typed_array(values, kind, enum, dtype_backend, name)
    for name, col in plan.items():
        if name not in data and name not in columns and col.kind is not None:
            data[name] = typed_array([None] * n, col.kind, col.enum, dtype_backend, name)
    return frame_of(data, n)


def frame_of(data: Mapping[str, Any], n: int) -> pd.DataFrame:
    """A frame of ``n`` rows from typed arrays; ``object`` arrays (array and json fields) stay
    ``object`` even when they hold only strings (pandas would read them as ``str``).

    Examples
    --------
    >>> frame_of({"billingFullName": np.array(["Ava Smith", None], dtype=object)}, 2).dtypes
    billingFullName    object
    dtype: object
    """
    data = {name: pd.Series(a, dtype=object, copy=False)
            if isinstance(a, np.ndarray) and a.dtype == object else a
            for name, a in data.items()}
    return pd.DataFrame(data, index=pd.RangeIndex(n), copy=False)


def empty_frame(spec: FrameSpec, *, sep: str = DEFAULT_SEP,
                dtype_backend: DtypeBackend = "numpy_nullable") -> pd.DataFrame:
    """A frame with no rows and every planned column with its dtype.

    Examples
    --------
    >>> df = empty_frame(FrameSpec.of("purchase-statuses"))
    >>> len(df), df.columns.tolist()
    (0, ['createdAt', 'id', 'level', 'name', 'updatedAt'])
    """
    return typed_frame({}, spec, sep=sep, dtype_backend=dtype_backend)


def concat_frames(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate page frames, keeping every dtype.

    Unlike a bare ``pd.concat``, categorical columns whose pages hold different extra (off-spec)
    categories are unified first (the union keeps the first page's order and adds new values at the
    end), so they stay categorical.  Columns missing from a page (unknown fields) are filled with
    nulls of the other pages' dtype.  The index is renumbered.

    Examples
    --------
    >>> a = pd.DataFrame({"x": pd.Categorical(["a"], categories=["a", "z1"])})
    >>> b = pd.DataFrame({"x": pd.Categorical(["a"], categories=["a", "z2"])})
    >>> concat_frames([a, b])["x"].cat.categories.tolist()
    ['a', 'z1', 'z2']
    """
    frames = list(frames)
    if not frames:
        return pd.DataFrame()
    empty: dict[Any, pd.Series] = {}  # every column, in order of appearance, with no rows
    for frame in frames:
        for name in frame.columns:
            if name not in empty:
                empty[name] = frame[name].iloc[:0]
    # empty pages add no rows: leave them out (pandas 2.2 warns about them), keep their columns
    frames = [f for f in frames if len(f)] or frames[:1]
    categories: dict[str, list[Any]] = {}
    for frame in frames:
        for label, dtype in frame.dtypes.items():
            if isinstance(dtype, pd.CategoricalDtype):
                cats = categories.setdefault(str(label), [])
                seen = set(cats)
                cats.extend(c for c in dtype.categories if c not in seen)
    fixed = []
    for frame in frames:
        changes = {}
        for name, cats in categories.items():
            if name in frame.columns:
                dtype = frame[name].dtype
                if isinstance(dtype, pd.CategoricalDtype) and list(dtype.categories) != cats:
                    changes[name] = frame[name].cat.set_categories(cats)
        fixed.append(frame.assign(**changes) if changes else frame)
    result = pd.concat(fixed, ignore_index=True)
    for name, column in empty.items():
        if name not in result.columns:
            result[name] = column.reindex(result.index)
    return result[list(empty)]
