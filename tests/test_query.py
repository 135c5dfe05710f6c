"""Unit tests of the pure query layer: validation, normalisation, splitting and encoding."""

from __future__ import annotations

import datetime
import doctest
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from qs_codec import decode

import jetti_frames.query as query_module
from jetti_frames import _build, _predicates, _split, _where, _wire
from jetti_frames.errors import JettiQueryError
from jetti_frames.query import (
    Order,
    and_where,
    build_query,
    encode,
    explain_query,
    js_number,
    matches,
    parse_order,
    query_urls,
    request_params,
    split_where,
    to_iso,
)
from jetti_frames.settings import MAX_ARRAY

UTC = datetime.UTC


def test_docstring_examples() -> None:
    modules = [query_module, _build, _predicates, _split, _where, _wire]
    results = [doctest.testmod(m, optionflags=doctest.ELLIPSIS) for m in modules]
    assert sum(r.attempted for r in results) > 20
    assert sum(r.failed for r in results) == 0


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"resource": "purchse"}, ["unknown resource 'purchse'", "'purchases'"]),
        ({"where": {"purchaseTyp": "dropship"}}, ["no field 'purchaseTyp'", "'purchaseType'"]),
        ({"where": {"total": {"$gtt": 1}}}, ["unknown operator '$gtt'", "'$gt'"]),
        ({"where": {"total": {"$not": None}}}, ["unknown operator '$not'", "'$notIn'"]),
        ({"where": {"$orr": [{"id": 1}]}}, ["'$orr'", "did you mean '$or'"]),
        ({"where": {"id": {"$or": [1, 2]}}}, ["where level", "$in"]),
        ({"attributes": ["refrence"]}, ["no field 'refrence'", "'reference'"]),
        ({"include": "PurchaseStatuss"}, ["no relation to 'PurchaseStatuss'", "'PurchaseStatus'",
                                         "Related models:"]),
        ({"include": "purchase_itemz"}, ["'PurchaseItem'"]),
        ({"include": "Variant"}, ["no relation to 'Variant'"]),
        ({"include": [{"model": "PurchaseItem", "attrs": ["id"]}]}, ["unknown include key"]),
        ({"order": "-dateOrderd"}, ["no field 'dateOrderd'", "'dateOrdered'"]),
        ({"order": [("id", "desc"), ("total", "asc")]}, ["one order"]),
        ({"where": {"purchaseType": "dropshp"}}, ["'dropshp' is not one of", "'replenishment'",
                                                  "did you mean 'dropship'"]),
        ({"where": {"total": {"$between": [1, 2, 3]}}}, ["exactly 2"]),
        ({"where": {"total": {"$like": "1%"}}}, ["string fields only"]),
        ({"where": {"id": {"$in": [1, None]}}}, ["cannot hold None"]),
        ({"where": {"id": "abc"}}, ["not a valid integer"]),
        ({"where": {"approved": "yes"}}, ["not a valid boolean"]),
        ({"where": {"createdAt": {"$gte": "not a date"}}}, ["not a valid datetime"]),
        ({"where": {"approved": {"$gt": True}}}, ["ordered field"]),
        ({"attributes": []}, ["empty"]),
    ],
)
def test_validation_errors_name_close_matches(kwargs: dict[str, Any],
                                              fragments: list[str]) -> None:
    resource = kwargs.pop("resource", "purchases")
    with pytest.raises(JettiQueryError) as info:
        build_query(resource, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_query_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no field"):
        build_query("purchases", where={"nope": 1})


def test_resource_aliases_and_include_aliases() -> None:
    for alias in ("PurchaseStatus", "purchase-statuses", "purchase_status", "purchase_statuses"):
        query = build_query("Purchase", include=alias)
        assert query.resource.url == "purchases"
        assert [(i.model, i.kind, i.key) for i in query.include] == [
            ("PurchaseStatus", "belongs_to", "purchase_status")]


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-7, "1e-7"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
        (0.1 + 0.2, "0.30000000000000004"), (19.99, "19.99"), (10.0, "10"), (-0.0, "0"),
        (-1.5e-10, "-1.5e-10"), (123.456e-6, "0.000123456"), (1.7976931348623157e308,
                                                              "1.7976931348623157e+308"),
        (5e-324, "5e-324"), (2**53, "9007199254740992"), (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"), (1234, "1234"), (np.float32(0.5), "0.5"),
    ],
)
def test_js_number(value: float, text: str) -> None:
    assert js_number(value) == text


def test_js_number_refuses_a_bool_with_a_jetti_error() -> None:
    with pytest.raises(JettiQueryError, match="bool"):
        js_number(True)


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2019, 1, 1),
        datetime.datetime(2019, 1, 1, tzinfo=UTC),
        datetime.datetime(2019, 1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
        datetime.date(2019, 1, 1),
        pd.Timestamp("2019-01-01"),
        pd.Timestamp("2018-12-31 19:00", tz="America/New_York"),
        np.datetime64("2019-01-01T00:00:00.000000001"),
        "2019-01-01T00:00:00Z",
    ],
)
def test_instants_are_written_like_to_iso_string(value: Any) -> None:
    assert to_iso(value) == "2019-01-01T00:00:00.000Z"


def test_values_are_normalised_by_field_kind() -> None:
    query = build_query("purchases", where={
        "createdAt": {"$gte": datetime.date(2024, 1, 1), "$lt": "2024-02-01T01:00:00+01:00"},
        "approved": np.bool_(True),
        "cancelled": "false",
        "quantity": np.int64(3),
        "total": {"$gt": np.float64(1e-7)},
        "reference": 123,
        "saleId": None,
        "purchaseStatusId": pd.Series([4, 5, 4]),
        "vendorId": {"$notIn": np.array([7, 8])},
        "warehouseId": {2, 1},
        "dropshipProviderId": pd.Index([9]),
        "userId": (1, 2),
    })
    where = query.where
    assert where["createdAt"] == {"$gte": datetime.datetime(2024, 1, 1, tzinfo=UTC),
                                  "$lt": datetime.datetime(2024, 2, 1, tzinfo=UTC)}
    assert where["approved"] is True and where["cancelled"] is False
    assert where["quantity"] == 3 and type(where["quantity"]) is int
    assert where["reference"] == "123"
    assert where["saleId"] is None
    assert where["purchaseStatusId"] == {"$in": [4, 5]}
    assert where["vendorId"] == {"$notIn": [7, 8]}
    assert where["warehouseId"] == {"$in": [1, 2]}
    assert where["dropshipProviderId"] == {"$in": [9]}
    assert where["userId"] == {"$in": [1, 2]}
    text = encode({"where": split_where(query)[0]}, readable=True)
    assert "where[createdAt][$gte]=2024-01-01T00%3A00%3A00.000Z" in text
    assert "where[createdAt][$lt]=2024-02-01T00%3A00%3A00.000Z" in text
    assert "where[approved]=true&where[cancelled]=false" in text
    assert "where[total][$gt]=1e-7" in text
    assert "where[saleId]=&" in text
    assert "where[purchaseStatusId][$in][0]=4&where[purchaseStatusId][$in][1]=5" in text


def test_encode_orders_integer_like_keys_as_javascript_does() -> None:
    assert encode({"w": {"b": 1, "10": 2, "a": 3, "2": 4}}, readable=True) == (
        "w[2]=4&w[10]=2&w[b]=1&w[a]=3")


# ---------------------------------------------------------------- splitting


def test_500_ids_split_into_25_chunks_of_20_whose_union_is_the_input() -> None:
    ids = list(range(1000, 1500))
    query = build_query("purchases", where={"id": ids + ids[:50], "purchaseType": "dropship"})
    parts = split_where(query)
    assert len(parts) == 25
    chunks = [part["id"]["$in"] for part in parts]
    assert all(len(chunk) == MAX_ARRAY for chunk in chunks)
    assert sorted(v for chunk in chunks for v in chunk) == ids  # union, no duplicates
    assert all(part["purchaseType"] == "dropship" for part in parts)
    for part in parts:
        decoded = decode(encode({"where": part}))["where"]["id"]["$in"]
        assert isinstance(decoded, list) and len(decoded) == MAX_ARRAY


def test_two_long_in_lists_split_into_their_product() -> None:
    query = build_query("purchases", where={"id": range(45), "vendorId": range(25)})
    parts = split_where(query)
    assert len(parts) == 3 * 2
    pairs = {(i, v) for p in parts for i in p["id"]["$in"] for v in p["vendorId"]["$in"]}
    assert pairs == {(i, v) for i in range(45) for v in range(25)}


def test_long_in_inside_or_becomes_more_branches() -> None:
    where = {"$or": [{"id": list(range(5000, 5500))}, {"reference": "PO-1"}]}
    parts = split_where(build_query("purchases", where=where))
    assert len(parts) > 1
    branches = [b for p in parts for b in p["$or"]]
    ids = [i for b in branches if "id" in b for i in b["id"]["$in"]]
    assert sorted(ids) == list(range(5000, 5500))
    assert {"reference": "PO-1"} in branches
    for part in parts:
        assert len(part["$or"]) <= MAX_ARRAY
        request_params(part, None, (), None, limit=100)  # within every qs limit


def test_empty_in_is_answered_locally() -> None:
    query = build_query("purchases", where={"id": [], "purchaseType": "dropship"})
    assert query.is_empty and split_where(query) == [] and query_urls(query) == []
    assert "no request" in explain_query(query)
    assert build_query("purchases", where={"$or": [{"id": []}, {"saleId": np.array([])}]}).is_empty
    partly = build_query("purchases", where={"$or": [{"id": []}, {"saleId": 3}]})
    assert not partly.is_empty and split_where(partly) == [{"$or": [{"saleId": 3}]}]
    assert build_query("purchases", where={"id": {"$notIn": []}}).wire_where == {}
    assert not build_query("purchases", where={"id": {"$in": [1]}}).is_empty


# ---------------------------------------------------------------- local post-filter


def test_long_not_in_sends_20_values_and_filters_the_rest_locally() -> None:
    excluded = list(range(1, 31))
    query = build_query("purchases", where={"purchaseStatusId": {"$notIn": excluded}},
                        attributes=["reference"])
    (part,) = split_where(query)
    assert part == {"purchaseStatusId": {"$notIn": excluded[:MAX_ARRAY]}}
    assert query.post_filter == {"purchaseStatusId": {"$notIn": excluded[MAX_ARRAY:]}}
    assert "purchaseStatusId" in query.added_attributes  # the post-filter needs the column
    records = [{"purchaseStatusId": s} for s in (5, 25, 31, None)]
    served = [r for r in records if matches(r, part)]  # what the server would answer
    kept = [r["purchaseStatusId"] for r in served if query.keep(r)]
    assert kept == [31]


def test_null_on_string_fields_is_filtered_locally() -> None:
    query = build_query("purchases", where={"notes": None, "reference": {"$ne": None}, "id": 1})
    assert split_where(query) == [{"id": 1}]
    assert query.keep({"notes": None, "reference": "a"})
    assert not query.keep({"notes": "", "reference": "a"})
    assert not query.keep({"notes": None, "reference": None})
    with pytest.raises(JettiQueryError, match="outside \\$or"):
        build_query("purchases", where={"$or": [{"notes": None}, {"id": 1}]})


def test_long_not_in_inside_or_is_refused() -> None:
    with pytest.raises(JettiQueryError, match="notIn with 25 values"):
        build_query("purchases", where={"$or": [{"id": {"$notIn": list(range(25))}}, {"id": 1}]})


# ---------------------------------------------------------------- attributes and includes


def test_more_than_20_attributes_are_selected_locally() -> None:
    names = build_query("purchases").resource.field_names[:25]
    query = build_query("purchases", attributes=names, include="PurchaseStatus")
    assert query.attributes == tuple(names)
    assert query.sent_attributes is None and query.select_locally
    (part,) = split_where(query)
    params = request_params(part, query.sent_attributes, query.include, query.order, 100)
    assert "attributes" not in params


def test_foreign_keys_id_and_order_attribute_are_added_and_reported() -> None:
    query = build_query(
        "purchases", attributes=["reference", "total"], order="-dateOrdered",
        include=["PurchaseStatus",
                 {"model": "purchase-items", "attributes": ["quantity"], "include": ["Variant"]}])
    assert query.sent_attributes == ("reference", "total", "id", "dateOrdered",
                                     "purchaseStatusId")
    assert query.added_attributes == ("id", "dateOrdered", "purchaseStatusId")
    status, items = query.include
    assert status.kind == "belongs_to" and status.sent_attributes is None
    assert items.kind == "has_many" and items.key == "purchase_items"
    assert items.sent_attributes == ("quantity", "id", "purchaseId", "variantId")
    assert items.added_attributes == ("id", "purchaseId", "variantId")
    assert items.include[0].model == "Variant" and items.include[0].kind == "belongs_to"


def test_request_matches_the_node_vector_for_a_two_level_include() -> None:
    query = build_query(
        "sales", where={"channelId": 7, "dateOrdered": {"$between": [
            datetime.datetime(2024, 1, 1), pd.Timestamp("2024-02-01", tz="UTC")]}},
        attributes=["id", "channelId", "dateOrdered"], order="id",
        include={"model": "SaleItem", "attributes": ["id", "saleId", "variantId"],
                 "include": {"model": "Variant", "attributes": ["id", "sku"]}})
    (part,) = split_where(query)
    params = request_params(part, query.sent_attributes, query.include, query.order,
                            limit=50, from_=2)
    assert encode(params) == _vector("jetti_sales_two_level_include")["encoded_default"]


def test_request_params_wire_form_matches_the_node_vector() -> None:
    case = _vector("jetti_purchases_list")
    given = case["input"]
    where = dict(given["where"], createdAt={"$gte": datetime.datetime(2018, 1, 1)})
    params = request_params(where, given["attributes"], given["include"],
                            {"attribute": "dateOrdered", "descending": True, "nullsFirst": True},
                            limit=100, from_=0)
    assert list(params) == ["where", "attributes", "include", "order", "limit", "from"]
    assert encode(params) == case["encoded_default"]


def test_include_levels_and_depth_are_checked_before_any_request() -> None:
    with pytest.raises(JettiQueryError, match="at most 2 levels"):
        build_query("sales", include={"model": "SaleItem", "include": {
            "model": "Variant", "include": "Product"}})
    with pytest.raises(JettiQueryError, match=r"where\[\$or\]\[0\]\[\$and\]\[1\]\[total\]"
                                              r"\[\$gt\] nests 6 bracket levels"):
        build_query("purchases", where={"$or": [{"$and": [{"id": 1}, {"total": {"$gt": 2}}]},
                                                {"id": 3}]})
    with pytest.raises(JettiQueryError, match="nests 7 bracket levels"):
        build_query("sales", include={"model": "SaleItem", "include": {
            "model": "Variant", "where": {"sku": {"$in": ["A", "B"]}}}})
    ok = build_query("sales", include={"model": "SaleItem", "include": {
        "model": "Variant", "where": {"sku": "A"}}})
    assert ok.include[0].include[0].where == {"sku": "A"}
    with pytest.raises(JettiQueryError, match="has 21 elements"):
        request_params({"id": {"$in": list(range(21))}})
    with pytest.raises(JettiQueryError, match="cannot be split"):
        build_query("purchases", include={"model": "PurchaseItem",
                                          "where": {"variantId": list(range(21))}})


# ---------------------------------------------------------------- order


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("dateOrdered", Order("dateOrdered")),
        ("-dateOrdered", Order("dateOrdered", descending=True)),
        (("dateOrdered", "desc"), Order("dateOrdered", descending=True)),
        (("dateOrdered", "ASC", "nulls first"), Order("dateOrdered", nulls_first=True)),
        ([["dateOrdered", "DESC"]], Order("dateOrdered", descending=True)),
        ({"attribute": "dateOrdered", "descending": True, "nullsFirst": True},
         Order("dateOrdered", True, True)),
        ({"attribute": "dateOrdered", "nulls_first": "true"}, Order("dateOrdered", False, True)),
        (Order("id"), Order("id")),
    ],
)
def test_order_forms(spec: Any, expected: Order) -> None:
    assert parse_order(spec) == expected
    assert build_query("purchases", order=spec).order == expected


@pytest.mark.parametrize("spec", [("id", "down"), {"attr": "id"}, ("id", "asc", "middle"), 5])
def test_bad_order_forms(spec: Any) -> None:
    with pytest.raises(JettiQueryError):
        parse_order(spec)


# ---------------------------------------------------------------- keyset helper


def test_and_where_merges_without_adding_depth() -> None:
    assert and_where({"id": 5}, {"id": {"$gt": 3}}) == {"id": {"$eq": 5, "$gt": 3}}
    assert and_where({"id": {"$gte": 10}}, {"id": {"$gt": 10}}) == {"id": {"$gt": 10}}
    assert and_where({"id": {"$gt": 10}}, {"id": {"$gte": 10}}) == {"id": {"$gt": 10}}
    assert and_where({"id": {"$gt": 10}}, {"id": {"$gte": 11}}) == {"id": {"$gte": 11}}
    assert and_where({"id": {"$lte": 50}}, {"id": {"$lt": 40, "$gt": 1}}) == {
        "id": {"$lt": 40, "$gt": 1}}
    assert and_where({"id": [1, 2, 3]}, {"id": {"$in": [3, 4]}}) == {"id": {"$in": [3]}}
    merged = and_where({"id": 1}, {"id": 2})
    assert merged == {"id": {"$in": []}}  # matches nothing
    assert build_query("purchases", where=merged).is_empty
    dates = and_where({"updatedAt": {"$gte": datetime.datetime(2024, 1, 1, tzinfo=UTC)}},
                      {"updatedAt": {"$gte": "2024-03-01T00:00:00.000Z"}})
    assert dates == {"updatedAt": {"$gte": "2024-03-01T00:00:00.000Z"}}
    part = {"$or": [{"a": 1}, {"b": 2}], "id": {"$in": [1, 2]}}
    assert and_where(part, {"id": {"$gt": 1}}) == {"$or": [{"a": 1}, {"b": 2}],
                                                   "id": {"$in": [1, 2], "$gt": 1}}
    assert part == {"$or": [{"a": 1}, {"b": 2}], "id": {"$in": [1, 2]}}  # input untouched


# ---------------------------------------------------------------- local evaluator


def test_matches_follows_sql_null_semantics_and_like() -> None:
    record = {"id": 7, "reference": "PO_7", "notes": None, "total": np.float64(12.5),
              "createdAt": "2024-05-04T09:42:00+00:00", "approved": True}
    assert matches(record, {"notes": None, "reference": {"$ne": None}})
    assert not matches(record, {"notes": {"$ne": "x"}})  # NULL != 'x' is not true in SQL
    assert not matches(record, {"notes": {"$notIn": ["x"]}})
    assert matches(record, {"reference": {"$like": "PO\\_%"}, "total": {"$between": [12, 13]}})
    assert not matches(record, {"reference": {"$like": "po%"}})
    assert matches(record, {"createdAt": {"$gt": datetime.datetime(2024, 5, 4, 9, 41)}})
    assert matches(record, {"createdAt": {"$in": [pd.Timestamp("2024-05-04 11:42",
                                                               tz="Europe/Berlin")]}})
    assert matches(record, {"$or": [{"id": 1}, {"approved": True}], "id": {"$in": [7.0]}})
    assert not matches(record, {"$and": [{"id": 7}, {"approved": False}]})


def _vector(name: str) -> dict[str, Any]:
    path = Path(__file__).resolve().parent / "data" / "qs-vectors.json"
    cases = json.loads(path.read_text(encoding="utf-8"))["encode_cases"]
    return next(c for c in cases if c["name"] == name)
