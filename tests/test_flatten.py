"""Records -> joined and linked frames: includes, explode, unknown fields, pages."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from jetti_frames.catalog import CATALOG
from jetti_frames.errors import JettiQueryError
from jetti_frames.flatten import (
    check_joinable,
    frame_from_records,
    frame_tables,
)
from jetti_frames.schema import FrameSpec, IncludeSpec, column_dtypes, concat_frames

BACKENDS = ["numpy_nullable", "pyarrow"]

STATUS_OPEN = {"id": 7, "name": "Open", "level": "default", "companyId": 99,
               "createdAt": "2024-01-01T00:00:00+00:00", "updatedAt": "2024-01-02T00:00:00+00:00"}
PROVIDER = {"id": 3, "name": "Acme", "active": True}


def purchase(pid, **fields):
    rec = {"id": pid, "reference": f"PO-{pid}", "total": 10.5 * pid,
           "dateOrdered": "2024-05-04T11:42:00+02:00", "paymentStatus": "paid",
           "purchaseType": "dropship", "tags": ["a"], "files": {"n": pid},
           "purchaseStatusId": 7, "dropshipProviderId": 3, "cancelled": False}
    rec.update(fields)
    return rec


def status_spec(columns=None, status_columns=("name", "level")):
    return FrameSpec.of("purchases", columns, [
        IncludeSpec.of("purchases", "PurchaseStatus", status_columns),
        IncludeSpec.of("purchases", "DropshipProvider", ("name",)),
    ])


# -- belongs-to ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_belongs_to_becomes_prefixed_columns_and_null_include_gives_nulls(backend):
    records = [
        purchase(1, purchase_status=dict(STATUS_OPEN), dropship_provider=dict(PROVIDER)),
        purchase(2, purchaseStatusId=None, purchase_status=None, dropship_provider=None),
        purchase(3, purchase_status=dict(STATUS_OPEN)),  # key missing altogether
    ]
    spec = status_spec(["id", "reference", "purchaseStatusId"])
    df = frame_from_records(records, spec, dtype_backend=backend)
    assert df.columns.tolist() == ["id", "reference", "purchaseStatusId", "purchase_status_name",
                                   "purchase_status_level", "dropship_provider_name"]
    assert df["purchase_status_name"].tolist()[0] == "Open"
    assert df["purchase_status_name"].isna().tolist() == [False, True, False]
    assert df["dropship_provider_name"].isna().tolist() == [False, True, True]
    assert isinstance(df["purchase_status_level"].dtype, pd.CategoricalDtype)
    assert list(df["purchase_status_level"].cat.categories) == ["default", "warning", "danger"]
    assert df.dtypes.to_dict() == column_dtypes(spec, dtype_backend=backend)


def test_separator_is_configurable():
    records = [purchase(1, purchase_status=STATUS_OPEN)]
    spec = FrameSpec.of("purchases", ["id"],
                        [IncludeSpec.of("purchases", "PurchaseStatus", ["name"])])
    assert frame_from_records(records, spec, sep="__").columns.tolist() == [
        "id", "purchase_status__name"]


def test_repeated_belongs_to_records_that_differ_are_kept_apart():
    renamed = dict(STATUS_OPEN, name="Open (renamed)")
    records = [purchase(1, purchase_status=dict(STATUS_OPEN)),
               purchase(2, purchase_status=renamed),
               purchase(3, purchase_status=dict(STATUS_OPEN))]
    for columns in (("name",), None):
        spec = FrameSpec.of("purchases", ["id"],
                            [IncludeSpec.of("purchases", "PurchaseStatus", columns)])
        df = frame_from_records(records, spec)
        assert df["purchase_status_name"].tolist() == ["Open", "Open (renamed)", "Open"]


# -- has-many --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_has_many_explodes_and_parent_without_children_stays(backend):
    records = [
        purchase(1, purchase_items=[{"id": 11, "quantity": 2, "purchaseId": 1},
                                    {"id": 12, "quantity": 5, "purchaseId": 1}]),
        purchase(2, purchase_items=[]),
        purchase(3),
        purchase(4, purchase_items=[{"id": 41, "quantity": 1, "purchaseId": 4}]),
    ]
    spec = FrameSpec.of("purchases", ["id", "total"], [
        IncludeSpec.of("purchases", "PurchaseItem", ["id", "quantity"]),
        IncludeSpec.of("purchases", "PurchaseStatus", ["name"]),
    ])
    records[3]["purchase_status"] = STATUS_OPEN
    df = frame_from_records(records, spec, dtype_backend=backend)
    assert df["id"].tolist() == [1, 1, 2, 3, 4]
    assert df["total"].tolist() == [10.5, 10.5, 21.0, 31.5, 42.0]
    assert df["purchase_items_id"].tolist()[:2] == [11, 12]
    assert df["purchase_items_id"].isna().tolist() == [False, False, True, True, False]
    assert df["purchase_items_quantity"].tolist()[-1] == 1
    assert df["purchase_status_name"].isna().tolist() == [True, True, True, True, False]
    assert df.index.tolist() == [0, 1, 2, 3, 4]
    assert df["purchase_items_quantity"].tolist()[:2] == [2, 5]


def test_two_has_many_side_by_side_raise_a_clear_error():
    spec = FrameSpec.of("purchases", includes=[
        IncludeSpec.of("purchases", "PurchaseItem"), IncludeSpec.of("purchases", "Comment")])
    with pytest.raises(JettiQueryError, match='include_mode="tables"'):
        frame_from_records([], spec)
    with pytest.raises(JettiQueryError, match="cross product"):
        frame_from_records([], spec)


def test_has_many_chain_is_allowed():
    items = IncludeSpec.of("sales", "SaleItem", ["id"])
    spec = FrameSpec.of("purchases", ["id"], [IncludeSpec.of("purchases", "Sale", ["id"],
                                                             [items])])
    check_joinable(spec)
    records = [purchase(1, sale={"id": 5, "sale_items": [{"id": 50}, {"id": 51}]}),
               purchase(2, sale=None)]
    df = frame_from_records(records, spec)
    assert df.columns.tolist() == ["id", "sale_id", "sale_sale_items_id"]
    assert df["id"].tolist() == [1, 1, 2]
    assert df["sale_sale_items_id"].tolist()[:2] == [50, 51]
    assert df["sale_id"].isna().tolist() == [False, False, True]


# -- nested includes ---------------------------------------------------------------------------


def test_nested_belongs_to_chains_prefixes():
    spec = FrameSpec.of("purchases", ["id", "saleId"], [
        IncludeSpec.of("purchases", "Sale", ["id", "customerId"], [
            IncludeSpec.of("sales", "Customer", ["email"])])])
    records = [
        purchase(1, saleId=5, sale={"id": 5, "customerId": 8,
                                    "customer": {"email": "a@example.com"}}),
        purchase(2, saleId=6, sale={"id": 6, "customerId": None, "customer": None}),
        purchase(3, saleId=None, sale=None),
    ]
    df = frame_from_records(records, spec)
    assert df.columns.tolist() == ["id", "saleId", "sale_id", "sale_customerId",
                                   "sale_customer_email"]
    assert df["sale_customer_email"].tolist()[0] == "a@example.com"
    assert df["sale_customer_email"].isna().tolist() == [False, True, True]
    assert str(df["sale_customer_email"].dtype) == "string"


def test_nested_belongs_to_inside_has_many():
    spec = FrameSpec.of("purchases", ["id"], [
        IncludeSpec.of("purchases", "PurchaseItem", ["quantity"], [
            IncludeSpec.of("purchase-items", "Variant", ["sku"])])])
    records = [purchase(1, purchase_items=[{"quantity": 1, "variant": {"sku": "S1"}},
                                           {"quantity": 2, "variant": None}]),
               purchase(2, purchase_items=[])]
    df = frame_from_records(records, spec)
    assert df.columns.tolist() == ["id", "purchase_items_quantity", "purchase_items_variant_sku"]
    assert df["id"].tolist() == [1, 1, 2] and df["purchase_items_quantity"].tolist()[:2] == [1, 2]
    assert df.loc[0, "purchase_items_variant_sku"] == "S1"
    assert df["purchase_items_variant_sku"].isna().tolist() == [False, True, True]


# -- unknown fields, selection, nulls ----------------------------------------------------------


def test_unknown_fields_are_kept_with_inferred_types_after_catalogue_fields():
    statuses = [dict(STATUS_OPEN, zExtra="x"), dict(STATUS_OPEN, id=8, companyId=None)]
    spec = FrameSpec.of("purchase-statuses")
    df = frame_from_records(statuses, spec)
    catalogue = CATALOG.resource("purchase-statuses").field_names
    assert df.columns.tolist() == [*catalogue, "companyId", "zExtra"]
    assert str(df["companyId"].dtype) == "Int64"
    assert df["companyId"].isna().tolist() == [False, True]
    assert str(df["zExtra"].dtype) == "string"
    inc = FrameSpec.of("purchases", ["id"], [IncludeSpec.of("purchases", "PurchaseStatus")])
    joined = frame_from_records([purchase(1, purchase_status=statuses[0])], inc)
    assert "purchase_status_companyId" in joined.columns
    assert "purchase_status_zExtra" in joined.columns


def test_selected_names_the_catalogue_lacks_are_inferred_or_left_out_when_valueless():
    spec = FrameSpec.of("purchases", ["id", "companyId"])
    assert frame_from_records([{"id": 1, "companyId": None}], spec).columns.tolist() == ["id"]
    df = frame_from_records([{"id": 1, "companyId": 4}], spec)
    assert str(df["companyId"].dtype) == "Int64"
    pinned = FrameSpec.of("purchases", ["id", "companyId"], extra_kinds={"companyId": "integer"})
    df = frame_from_records([{"id": 1}], pinned)
    assert str(df["companyId"].dtype) == "Int64"


def test_explicit_selection_is_exact_and_ordered():
    rec = purchase(1, somethingNew=5)
    spec = FrameSpec.of("purchases", ["total", "id", "reference"])
    df = frame_from_records([rec], spec)
    assert df.columns.tolist() == ["total", "id", "reference"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_null_columns_keep_their_dtypes(backend):
    spec = FrameSpec.of("purchases", includes=[IncludeSpec.of("purchases", "PurchaseStatus")])
    records = [{"id": 1}, {"id": 2, "purchase_status": None}]
    df = frame_from_records(records, spec, dtype_backend=backend)
    assert df.dtypes.to_dict() == column_dtypes(spec, dtype_backend=backend)
    assert int(df.drop(columns="id").notna().sum().sum()) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_input_has_every_column_with_its_dtype(backend):
    spec = status_spec()
    df = frame_from_records([], spec, dtype_backend=backend)
    assert len(df) == 0
    assert df.dtypes.to_dict() == column_dtypes(spec, dtype_backend=backend)


def test_wrongly_typed_values_are_coerced_or_raise():
    spec = FrameSpec.of("purchases", ["id", "quantity", "reference", "cancelled"])
    df = frame_from_records([purchase(1, quantity=True, reference=42, cancelled=1)], spec)
    assert df.loc[0, "quantity"] == 1 and df.loc[0, "reference"] == "42"
    assert bool(df.loc[0, "cancelled"]) is True
    with pytest.raises(ValueError, match="quantity"):
        frame_from_records([purchase(1, quantity=2.5)], spec)


def test_off_spec_enum_values_are_kept():
    spec = FrameSpec.of("purchases", ["id", "paymentStatus"])
    df = frame_from_records([purchase(1, paymentStatus="refunded"), purchase(2)], spec)
    assert df["paymentStatus"].tolist() == ["refunded", "paid"]
    assert list(df["paymentStatus"].cat.categories)[-1] == "refunded"


def test_records_are_not_modified():
    records = [purchase(1, purchase_items=[{"quantity": 1}], purchase_status=STATUS_OPEN)]
    before = copy.deepcopy(records)
    spec = FrameSpec.of("purchases", includes=[IncludeSpec.of("purchases", "PurchaseItem"),
                                               IncludeSpec.of("purchases", "PurchaseStatus")])
    frame_from_records(records, spec)
    frame_tables(records, spec)
    assert records == before


# -- pages --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_pages_with_different_null_patterns_have_identical_dtypes(backend):
    spec = FrameSpec.of("purchases", includes=[
        IncludeSpec.of("purchases", "PurchaseStatus"),
        IncludeSpec.of("purchases", "PurchaseItem", ["id", "quantity", "price"])])
    page1 = [purchase(1, cancelledAt="2024-05-05T00:00:00+00:00", purchase_status=STATUS_OPEN,
                      purchase_items=[{"id": 1, "quantity": 1, "price": 2.5}])]
    page2 = [{"id": 2, "tags": None, "files": None, "purchase_status": None},
             {"id": 3, "purchase_items": [{"id": 4, "quantity": None, "price": None}]}]
    a = frame_from_records(page1, spec, dtype_backend=backend)
    b = frame_from_records(page2, spec, dtype_backend=backend)
    c = frame_from_records([], spec, dtype_backend=backend)
    planned = column_dtypes(spec, dtype_backend=backend)
    for frame in (a, b, c):
        assert {k: v for k, v in frame.dtypes.items() if k in planned} == planned
    assert set(a.columns) - set(planned) == {"purchase_status_companyId"}
    assert set(b.columns) == set(c.columns) == set(planned)
    both = pd.concat([a, b], ignore_index=True)
    assert {k: v for k, v in both.dtypes.items() if k in planned} == planned
    assert both["id"].tolist() == [1, 2, 3]
    assert both["purchase_items_id"].tolist()[2] == 4
    # an unknown field only page 1 has: filled with nulls of page 1's dtype
    assert str(both["purchase_status_companyId"].dtype).startswith(("Int64", "int64"))
    assert both["purchase_status_companyId"].isna().tolist() == [False, True, True]
    for frames in ([a, b, c], [c, a, b]):
        combined = concat_frames(frames)
        assert combined.dtypes.to_dict() == both.dtypes.to_dict()
        assert combined["id"].tolist() == [1, 2, 3]
    assert concat_frames([c, c]).dtypes.to_dict() == c.dtypes.to_dict()


# -- tables mode --------------------------------------------------------------------------------


def test_tables_mode_links_children_and_dedupes_belongs_to():
    records = [
        purchase(1, purchase_status=dict(STATUS_OPEN),
                 purchase_items=[{"id": 11, "quantity": 2, "purchaseId": 1},
                                 {"id": 12, "quantity": 5}]),
        purchase(2, purchase_status=dict(STATUS_OPEN), purchase_items=[],
                 comments=[{"id": 70, "purchaseId": 2, "body": "hi"}]),
        purchase(3, purchaseStatusId=None, purchase_status=None),
    ]
    spec = FrameSpec.of("purchases", ["reference"], [
        IncludeSpec.of("purchases", "PurchaseStatus", ["name"]),
        IncludeSpec.of("purchases", "PurchaseItem", ["quantity"]),
        IncludeSpec.of("purchases", "Comment", ["body"]),
    ])
    tables = frame_tables(records, spec)
    assert list(tables) == ["purchases", "purchase_statuses", "purchase_items", "comments"]
    purchases = tables["purchases"]
    assert purchases.columns.tolist() == ["purchaseStatusId", "id", "reference"]
    assert purchases["purchaseStatusId"].tolist()[:2] == [7, 7]
    assert pd.isna(purchases.loc[2, "purchaseStatusId"])
    statuses = tables["purchase_statuses"]
    assert statuses.columns.tolist() == ["id", "name"]
    assert statuses["id"].tolist() == [7]
    items = tables["purchase_items"]
    assert items.columns.tolist() == ["id", "purchaseId", "quantity"]
    assert items["purchaseId"].tolist() == [1, 1]  # the second one filled from its parent
    assert str(items["purchaseId"].dtype) == "Int64"
    assert tables["comments"]["purchaseId"].tolist() == [2]
    joined = purchases.merge(items, left_on="id", right_on="purchaseId", how="left",
                             suffixes=("", "_item"))
    assert len(joined) == 4


def test_tables_mode_fills_a_missing_foreign_key_from_the_include():
    records = [{"id": 1, "purchase_status": {"id": 7, "name": "Open"}}]
    spec = FrameSpec.of("purchases", ["id"],
                        [IncludeSpec.of("purchases", "PurchaseStatus", ["name"])])
    tables = frame_tables(records, spec)
    assert tables["purchases"]["purchaseStatusId"].tolist() == [7]


@pytest.mark.parametrize("backend", BACKENDS)
def test_tables_mode_empty_input_and_nested(backend):
    spec = FrameSpec.of("purchases", ["id"], [
        IncludeSpec.of("purchases", "PurchaseItem", ["quantity"], [
            IncludeSpec.of("purchase-items", "Variant", ["sku"])])])
    tables = frame_tables([], spec, dtype_backend=backend)
    assert list(tables) == ["purchases", "purchase_items", "variants"]
    assert all(len(t) == 0 for t in tables.values())
    assert tables["purchase_items"].columns.tolist() == ["id", "purchaseId", "variantId",
                                                         "quantity"]
    assert tables["variants"].columns.tolist() == ["id", "sku"]
    records = [purchase(1, purchase_items=[
        {"id": 5, "quantity": 1, "variantId": 9, "variant": {"id": 9, "sku": "S"}},
        {"id": 6, "quantity": 2, "variant": {"id": 9, "sku": "S"}}])]
    tables = frame_tables(records, spec, dtype_backend=backend)
    assert tables["variants"]["sku"].tolist() == ["S"]
    assert tables["purchase_items"]["variantId"].tolist() == [9, 9]
