"""Dtypes from the catalogue: kinds, backends, enums, dates, inference, empty frames, concat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jetti_frames.catalog import CATALOG
from jetti_frames.errors import JettiDataError, JettiQueryError
from jetti_frames.schema import (
    FrameSpec,
    IncludeSpec,
    column_dtypes,
    column_plan,
    concat_frames,
    empty_frame,
    infer_kind,
    kind_dtype,
    typed_array,
    typed_frame,
)

NUMPY_NULLABLE = {
    "integer": "Int64",
    "number": "Float64",
    "boolean": "boolean",
    "datetime": "datetime64[us, UTC]",
    "string": "string",
    "array": "object",
    "json": "object",
}
PYARROW = {
    "integer": pd.ArrowDtype(pa.int64()),
    "number": pd.ArrowDtype(pa.float64()),
    "boolean": pd.ArrowDtype(pa.bool_()),
    "datetime": pd.ArrowDtype(pa.timestamp("us", tz="UTC")),
    "string": pd.ArrowDtype(pa.string()),
    "array": np.dtype(object),
    "json": np.dtype(object),
}
SAMPLE = {
    "integer": [1, None, 3],
    "number": [1.5, None, 2],
    "boolean": [True, None, False],
    "datetime": ["2024-05-04T09:42:00+00:00", None, "2024-05-04T11:42:00.5+02:00"],
    "string": ["a", None, "c"],
    "array": [["x", "y"], None, []],
    "json": [{"a": 1}, None, [1, 2]],
}


@pytest.mark.parametrize("kind", sorted(NUMPY_NULLABLE))
def test_numpy_nullable_dtype_per_kind(kind):
    arr = typed_array(SAMPLE[kind], kind)
    assert str(arr.dtype) == NUMPY_NULLABLE[kind]
    assert str(kind_dtype(kind)) == NUMPY_NULLABLE[kind]
    assert pd.isna(arr[1])
    assert arr[0] is not None and arr[0] is not pd.NA


@pytest.mark.parametrize("kind", sorted(PYARROW))
def test_pyarrow_dtype_per_kind(kind):
    arr = typed_array(SAMPLE[kind], kind, dtype_backend="pyarrow")
    assert arr.dtype == PYARROW[kind]
    assert kind_dtype(kind, dtype_backend="pyarrow") == PYARROW[kind]
    assert pd.isna(arr[1])


def test_string_dtype_is_pinned_to_pyarrow_storage():
    arr = typed_array(["a", None], "string")
    assert arr.dtype == pd.StringDtype("pyarrow")
    assert arr[1] is pd.NA


def test_values_read_back_exactly():
    assert typed_array([1, None, 2**40], "integer").tolist() == [1, pd.NA, 2**40]
    assert typed_array([1.25, 2], "number").tolist() == [1.25, 2.0]
    assert typed_array(["x", None], "string").tolist() == ["x", pd.NA]
    tags = typed_array([["a", "b"], None], "array")
    assert tags[0] == ["a", "b"] and tags[1] is None
    blob = typed_array([{"k": [1]}, [1, 2]], "json")
    assert blob[0] == {"k": [1]} and blob[1] == [1, 2]


@pytest.mark.parametrize("backend", ["numpy_nullable", "pyarrow"])
def test_datetimes_are_utc_with_offsets_applied(backend):
    values = [
        "2024-05-04T09:42:00+00:00",
        "2024-05-04T11:42:00+02:00",
        "2024-05-04T04:42:00.250-05:00",
        "2024-05-04T09:42:00Z",
        None,
    ]
    ser = pd.Series(typed_array(values, "datetime", dtype_backend=backend))
    assert str(ser.dt.tz) == "UTC"
    got = [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in ser]
    assert got == [
        "2024-05-04T09:42:00+00:00",
        "2024-05-04T09:42:00+00:00",
        "2024-05-04T09:42:00.250000+00:00",
        "2024-05-04T09:42:00+00:00",
        None,
    ]


def test_dates_without_offset_are_read_as_utc():
    arr = typed_array(["2024-05-04T09:42:00", "2024-05-04"], "datetime")
    assert [str(v) for v in arr] == ["2024-05-04 09:42:00+00:00", "2024-05-04 00:00:00+00:00"]
    assert str(arr.dtype) == "datetime64[us, UTC]"


def test_bad_values_raise_and_are_never_turned_into_nulls():
    with pytest.raises(ValueError, match="total"):
        typed_array([1.5, "lots"], "number", name="total")
    with pytest.raises(ValueError, match="quantity"):
        typed_array([1, 2.5], "integer", name="quantity")
    with pytest.raises(ValueError, match="createdAt"):
        typed_array(["yesterday"], "datetime", name="createdAt")


def test_lenient_where_the_meaning_is_plain():
    assert typed_array([True, 0, 3.0, "12"], "integer").tolist() == [1, 0, 3, 12]
    assert typed_array([1, 0, "true", "False"], "boolean").tolist() == [True, False, True, False]
    assert typed_array([12, True, "x", {"a": 1}], "string").tolist() == [
        "12", "true", "x", '{"a": 1}',
    ]


@pytest.mark.parametrize("backend", ["numpy_nullable", "pyarrow"])
def test_enum_categories_equal_the_spec_list(backend):
    field = CATALOG.resource("purchases").field("purchaseType")
    arr = typed_array(["dropship", None], "enum", field.enum, dtype_backend=backend)
    assert isinstance(arr.dtype, pd.CategoricalDtype)
    assert list(arr.categories) == list(field.enum)
    assert not arr.dtype.ordered
    assert arr.tolist()[0] == "dropship" and pd.isna(arr.tolist()[1])


def test_enum_values_outside_the_spec_become_extra_categories():
    arr = typed_array(["paid", "zeta", "alpha", None, "zeta"], "enum",
                      ("notPaid", "partiallyPaid", "paid"))
    assert list(arr.categories) == ["notPaid", "partiallyPaid", "paid", "alpha", "zeta"]
    assert arr.tolist()[:3] == ["paid", "zeta", "alpha"]
    assert pd.isna(arr[3])
    assert int(pd.isna(arr).sum()) == 1


def test_infer_kind():
    assert infer_kind([None, True]) == "boolean"
    assert infer_kind([1, None, 2]) == "integer"
    assert infer_kind([1, 2.5]) == "number"
    assert infer_kind(["2024-05-04T09:42:00+00:00", None]) == "datetime"
    assert infer_kind(["2024-05-04T09:42:00+00:00", "soon"]) == "string"
    assert infer_kind([["a"], []]) == "array"
    assert infer_kind([{"a": 1}]) == "json"
    assert infer_kind([1, "a"]) == "json"
    assert infer_kind([None, None]) is None
    assert infer_kind([]) is None


def test_column_dtypes_and_plan_with_nested_includes():
    spec = FrameSpec.of("purchases", ["id", "total", "dateOrdered", "paymentStatus", "saleId"], [
        IncludeSpec.of("purchases", "Sale", ["id", "customerId"], [
            IncludeSpec.of("sales", "Customer", ["email"]),
        ]),
        IncludeSpec.of("purchases", "PurchaseItem", ["quantity"]),
    ])
    dtypes = column_dtypes(spec)
    assert list(dtypes) == [
        "id", "total", "dateOrdered", "paymentStatus", "saleId",
        "sale_id", "sale_customerId", "sale_customer_email", "purchase_items_quantity",
    ]
    assert str(dtypes["dateOrdered"]) == "datetime64[us, UTC]"
    assert list(dtypes["paymentStatus"].categories) == ["notPaid", "partiallyPaid", "paid"]
    assert str(dtypes["sale_customer_email"]) == "string"
    assert {c.name: c.kind for c in column_plan(spec)}["purchase_items_quantity"] == "integer"
    assert [c.path for c in column_plan(spec)][-2:] == [("sale", "customer"), ("purchase_items",)]
    dotted = column_dtypes(spec, sep="__")
    assert "sale__customer__email" in dotted


def test_all_catalogue_fields_in_catalogue_order_by_default():
    spec = FrameSpec.of("purchases")
    assert list(column_dtypes(spec)) == CATALOG.resource("purchases").field_names
    assert len(column_dtypes(spec)) == 107


@pytest.mark.parametrize("backend", ["numpy_nullable", "pyarrow"])
def test_empty_frame_has_every_column_with_its_dtype(backend):
    spec = FrameSpec.of("purchases", includes=[IncludeSpec.of("purchases", "PurchaseStatus")])
    df = empty_frame(spec, dtype_backend=backend)
    expected = column_dtypes(spec, dtype_backend=backend)
    assert len(df) == 0
    assert list(df.columns) == list(expected)
    assert df.dtypes.to_dict() == expected


def test_typed_frame_infers_unknown_and_drops_valueless_unknown_columns():
    spec = FrameSpec.of("purchase-statuses", ["id", "name"])
    df = typed_frame({"id": [1, 2], "name": ["a", "b"], "companyId": [7, None],
                      "ghost": [None, None]}, spec)
    assert df.columns.tolist() == ["id", "name", "companyId"]
    assert str(df["companyId"].dtype) == "Int64"


def test_typed_frame_adds_missing_planned_columns_and_checks_lengths():
    spec = FrameSpec.of("purchase-statuses", ["id", "level"])
    df = typed_frame({"id": [1]}, spec)
    assert df.columns.tolist() == ["id", "level"]
    assert isinstance(df["level"].dtype, pd.CategoricalDtype) and pd.isna(df.loc[0, "level"])
    with pytest.raises(ValueError, match="lengths"):
        typed_frame({"id": [1], "level": []}, spec)


def test_extra_kinds_pin_fields_the_catalogue_lacks():
    spec = FrameSpec.of("purchase-statuses", extra_kinds={"companyId": "integer"})
    assert str(column_dtypes(spec)["companyId"]) == "Int64"
    assert str(empty_frame(spec)["companyId"].dtype) == "Int64"
    with pytest.raises(JettiQueryError, match="kind"):
        column_dtypes(FrameSpec.of("purchase-statuses", extra_kinds={"x": "decimal"}))


def test_bad_backend_and_unknown_relation_raise():
    with pytest.raises(JettiQueryError, match="dtype_backend"):
        column_dtypes(FrameSpec.of("purchases"), dtype_backend="numpy")  # type: ignore[arg-type]
    with pytest.raises(JettiQueryError, match="no relation"):
        IncludeSpec.of("purchase-statuses", "Customer")


def test_concat_frames_unions_extra_categories_and_fills_missing_columns():
    spec = FrameSpec.of("purchase-statuses", ["id", "level"])
    a = typed_frame({"id": [1], "level": ["odd"], "companyId": [3]}, spec)
    b = typed_frame({"id": [2], "level": ["other"]}, spec)
    assert list(a["level"].cat.categories) != list(b["level"].cat.categories)
    both = concat_frames([a, b])
    assert isinstance(both["level"].dtype, pd.CategoricalDtype)
    assert list(both["level"].cat.categories) == ["default", "warning", "danger", "odd", "other"]
    assert both["level"].tolist() == ["odd", "other"]
    assert str(both["companyId"].dtype) == "Int64"
    assert both["companyId"].isna().tolist() == [False, True]
    assert both.index.tolist() == [0, 1]


def test_unreadable_values_are_jetti_data_errors():
    with pytest.raises(JettiDataError, match=r"quantity.*2\.5"):
        typed_array([1, 2.5], "integer", name="quantity")
    with pytest.raises(JettiDataError, match="createdAt"):
        typed_array(["yesterday"], "datetime", name="createdAt")
    with pytest.raises(JettiDataError, match="lengths"):
        typed_frame({"id": [1], "level": []}, FrameSpec.of("purchase-statuses", ["id", "level"]))
