"""The query language of the sandbox, checked over a real socket against SQL over its database."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from jetti_frames.sandbox import Sandbox

Q = "%5B", "%5D"


def get(sb: Sandbox, auth: dict[str, str], path: str, query: str = "") -> requests.Response:
    url = sb.base_url + path + (f"?{query}" if query else "")
    return requests.get(url, headers=auth, timeout=30)


def ok(sb: Sandbox, auth: dict[str, str], path: str, query: str = "") -> Any:
    r = get(sb, auth, path, query)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in rows]


def truth(sb: Sandbox, sql: str, params: tuple[Any, ...] = ()) -> list[int]:
    return [r["id"] for r in sb.query(sql, params)]


# --------------------------------------------------------------------- acceptance checks
def test_acceptance_curl_example(sandbox: Sandbox, auth: dict[str, str]) -> None:
    rows = ok(sandbox, auth, "purchases.json",
              "where%5BpurchaseType%5D%5B%24in%5D%5B0%5D=dropship"
              "&include%5B0%5D%5Bmodel%5D=PurchaseStatus")
    assert isinstance(rows, list)
    assert 0 < len(rows) <= 50
    assert {r["purchaseType"] for r in rows} == {"dropship"}
    for r in rows:
        status = r["purchase_status"]
        if r["purchaseStatusId"] is None:
            assert status is None
        else:
            assert status["id"] == r["purchaseStatusId"] and isinstance(status["name"], str)
    assert ids(rows) == truth(sandbox, "SELECT id FROM purchases WHERE purchaseType = 'dropship' "
                                       "ORDER BY id LIMIT 50")


def test_doc_example_filter_by_provider(sandbox: Sandbox, auth: dict[str, str]) -> None:
    provider = sandbox.query("SELECT dropshipProviderId AS p FROM purchases "
                             "WHERE dropshipProviderId IS NOT NULL LIMIT 1")[0]["p"]
    rows = ok(sandbox, auth, "purchases.json", f"where[dropshipProviderId]={provider}&limit=100")
    expected = truth(sandbox, "SELECT id FROM purchases WHERE dropshipProviderId = ? "
                              "ORDER BY id LIMIT 100", (provider,))
    assert ids(rows) == expected and expected


def test_doc_example_dates_and_types(sandbox: Sandbox, auth: dict[str, str]) -> None:
    query = ("where%5BcreatedAt%5D%5B%24gte%5D=2021-01-01T00%3A00%3A00.000Z"
             "&where%5BcreatedAt%5D%5B%24lte%5D=2021-06-30T23%3A59%3A59Z"
             "&where%5BpurchaseType%5D%5B%24in%5D%5B0%5D=dropship"
             "&where%5BpurchaseType%5D%5B%24in%5D%5B1%5D=automated_dropship&limit=100")
    rows = ok(sandbox, auth, "purchases.json", query)
    expected = truth(sandbox, "SELECT id FROM purchases WHERE createdAt >= '2021-01-01T00:00:00' "
                              "AND createdAt <= '2021-06-30T23:59:59+00:00' AND purchaseType IN "
                              "('dropship', 'automated_dropship') ORDER BY id LIMIT 100")
    assert ids(rows) == expected and len(expected) > 10


def test_doc_example_limit_from_order(sandbox: Sandbox, auth: dict[str, str]) -> None:
    query = "limit=20&from=2&order[attribute]=dateOrdered&order[descending]=true"
    rows = ok(sandbox, auth, "purchases.json", query)
    expected = truth(sandbox, "SELECT id FROM purchases ORDER BY dateOrdered DESC, id "
                              "LIMIT 20 OFFSET 40")
    assert ids(rows) == expected


def test_doc_example_attributes_with_include(sandbox: Sandbox, auth: dict[str, str]) -> None:
    query = ("attributes[0]=id&attributes[1]=reference&attributes[2]=purchaseStatusId"
             "&include[0][model]=PurchaseStatus&include[0][attributes][0]=name&limit=10")
    rows = ok(sandbox, auth, "purchases.json", query)
    expected = sandbox.query("SELECT p.id, p.reference, p.purchaseStatusId, s.name "
                             "FROM purchases p LEFT JOIN purchase_statuses s "
                             "ON s.id = p.purchaseStatusId "
                             "ORDER BY p.id LIMIT 10")
    got = [{"id": r["id"], "reference": r["reference"], "purchaseStatusId": r["purchaseStatusId"],
            "name": (r["purchase_status"] or {}).get("name")} for r in rows]
    assert got == expected
    assert set(rows[0]) == {"id", "reference", "purchaseStatusId", "purchase_status"}
    assert all(r["purchase_status"] is None or set(r["purchase_status"]) == {"name"}
               for r in rows)


# --------------------------------------------------------------------- record shape
def test_records_have_every_catalogue_field_with_spec_types(sandbox: Sandbox,
                                                            auth: dict[str, str]) -> None:
    from jetti_frames.catalog import CATALOG

    res = CATALOG.resource("purchases")
    rows = ok(sandbox, auth, "purchases.json", "limit=100")
    types = {"integer": int, "number": (int, float), "boolean": bool, "datetime": str,
             "enum": str, "string": str, "array": list, "json": (dict, list, str, int, float)}
    for row in rows:
        assert set(res.field_names) <= set(row)
        assert row["companyId"] == 4821  # a field real responses carry beyond the catalogue
        for f in res.fields:
            value = row[f.name]
            if value is None:
                assert f.nullable, f.name
                continue
            assert isinstance(value, types[f.kind]), (f.name, value)
            if f.enum:
                assert value in f.enum
            if f.kind == "datetime":
                assert value.endswith("+00:00") and value[10] == "T"
        assert row["updatedAt"] >= row["createdAt"]


def test_single_record(sandbox: Sandbox, auth: dict[str, str]) -> None:
    first = sandbox.query("SELECT id FROM purchases ORDER BY id LIMIT 1")[0]["id"]
    assert first > 1
    row = ok(sandbox, auth, f"purchases/{first}.json")
    assert isinstance(row, dict) and row["id"] == first
    assert isinstance(row["isDropship"], bool)


def test_ids_are_not_contiguous(sandbox: Sandbox) -> None:
    got = truth(sandbox, "SELECT id FROM purchases ORDER BY id")
    assert got[0] > 1 and got[-1] - got[0] + 1 > len(got)


# --------------------------------------------------------------------- where
@pytest.mark.parametrize(("query", "sql"), [
    ("where[saleId][$ne]=", "saleId IS NOT NULL"),
    ("where[saleId]=", "saleId IS NULL"),
    ("where[saleId][$eq]=", "saleId IS NULL"),
    ("where[cancelled]=true", "cancelled = 1"),
    ("where[cancelled]=false", "cancelled = 0"),
    ("where[total][$gt]=300.5", "total > 300.5"),
    ("where[total][$lt]=20", "total < 20"),
    ("where[quantity][$between][0]=3&where[quantity][$between][1]=5", "quantity BETWEEN 3 AND 5"),
    ("where[reference][$like]=PO-101%25", "reference LIKE 'PO-101%'"),
    ("where[purchaseType][$ne]=dropship", "purchaseType != 'dropship'"),
    ("where[purchaseStatusId][$notIn][0]=4&where[purchaseStatusId][$notIn][1]=5",
     "purchaseStatusId NOT IN (4, 5)"),
    ("where[$or][0][purchaseType]=replenishment&where[$or][1][total][$gte]=390",
     "(purchaseType = 'replenishment' OR total >= 390)"),
    ("where[$and][0][total][$gte]=100&where[$and][1][total][$lte]=150",
     "total >= 100 AND total <= 150"),
    ("where[createdAt][$gt]=2022-03-01T12:00:00%2B02:00",
     "createdAt > '2022-03-01T10:00:00+00:00'"),
    ("where[id][$in][]=100004&where[id][$in][]=100008", "id IN (100004, 100008)"),
    ("where[purchaseType]=dropship&where[purchaseType]=replenishment",
     "purchaseType IN ('dropship', 'replenishment')"),
])
def test_where_operators(sandbox: Sandbox, auth: dict[str, str], query: str, sql: str) -> None:
    rows = ok(sandbox, auth, "purchases.json", query + "&limit=10&from=1")
    expected = truth(sandbox, f"SELECT id FROM purchases WHERE {sql} ORDER BY id "
                              "LIMIT 10 OFFSET 10")
    assert ids(rows) == expected
    assert expected or sql.startswith("id IN")


def test_long_in_matches_nothing_and_long_attributes_are_ignored(sandbox: Sandbox,
                                                                 auth: dict[str, str]) -> None:
    all_ids = truth(sandbox, "SELECT id FROM purchases ORDER BY id LIMIT 22")
    in21 = "&".join(f"where[id][$in][{i}]={v}" for i, v in enumerate(all_ids[:21]))
    in22 = "&".join(f"where[id][$in][{i}]={v}" for i, v in enumerate(all_ids))
    assert ids(ok(sandbox, auth, "purchases.json", in21)) == all_ids[:21]
    assert ok(sandbox, auth, "purchases.json", in22) == []
    not22 = "&".join(f"where[id][$notIn][{i}]={v}" for i, v in enumerate(all_ids))
    assert ids(ok(sandbox, auth, "purchases.json", not22 + "&limit=5")) == all_ids[:5]
    names = ["id", "reference", "total", "tax", "subtotal", "quantity", "saleId", "createdAt",
             "updatedAt", "notes", "cancelled", "locked", "approved", "finalized", "discounts",
             "isDropship", "purchaseType", "paymentStatus", "returnStatus", "invoiceStatus",
             "inventoryStatus", "dateOrdered"]
    attrs = "&".join(f"attributes[{i}]={n}" for i, n in enumerate(names))
    row = ok(sandbox, auth, "purchases.json", attrs + "&limit=1")[0]
    assert len(row) > 100  # ignored: every field comes back
    attrs21 = "&".join(f"attributes[{i}]={n}" for i, n in enumerate(names[:21]))
    assert set(ok(sandbox, auth, "purchases.json", attrs21 + "&limit=1")[0]) == set(names[:21])


def test_latest_switch_and_strict(make_sandbox: Any, auth: dict[str, str]) -> None:
    sb = make_sandbox(rate="off", qs_version="latest")
    some = truth(sb, "SELECT id FROM purchases ORDER BY id LIMIT 21")
    in20 = "&".join(f"where[id][$in][{i}]={v}" for i, v in enumerate(some[:20]))
    in21 = "&".join(f"where[id][$in][{i}]={v}" for i, v in enumerate(some))
    assert ids(ok(sb, auth, "purchases.json", in20)) == some[:20]
    assert ok(sb, auth, "purchases.json", in21) == []
    sb.configure(strict=True)
    r = get(sb, auth, "purchases.json", in21)
    assert r.status_code == 400 and "$in" in r.json()["detail"]
    attrs = "&".join("attributes[]=id" for _ in range(21))
    assert get(sb, auth, "purchases.json", attrs).status_code == 400


# --------------------------------------------------------------------- paging, order, limit
def test_default_limit_cap_and_from(sandbox: Sandbox, auth: dict[str, str]) -> None:
    assert len(ok(sandbox, auth, "purchases.json")) == 50
    assert len(ok(sandbox, auth, "purchases.json", "limit=500")) == 100  # silent cap
    pages = [ids(ok(sandbox, auth, "purchases.json", f"limit=100&from={p}")) for p in range(3)]
    assert pages[0] + pages[1] + pages[2] == truth(sandbox, "SELECT id FROM purchases "
                                                            "ORDER BY id LIMIT 300")
    last = ok(sandbox, auth, "purchases.json", "limit=100&from=29")
    assert ok(sandbox, auth, "purchases.json", "limit=100&from=30") == [] and len(last) == 100


def test_cap_is_configurable(make_sandbox: Any, auth: dict[str, str]) -> None:
    sb = make_sandbox(rate="off", max_limit=30, default_limit=10)
    assert len(ok(sb, auth, "purchases.json")) == 10
    assert len(ok(sb, auth, "purchases.json", "limit=100")) == 30
    sb.configure(max_limit=7)
    assert len(ok(sb, auth, "purchases.json", "limit=100")) == 7


def test_order_nulls_first(make_sandbox: Any, auth: dict[str, str]) -> None:
    sb = make_sandbox(rate="off", ties="id")  # ties by id, to compare with SQL row for row
    query = "order[attribute]=saleId&order[nullsFirst]=true&limit=100&from=1"
    expected = truth(sb, "SELECT id FROM purchases ORDER BY saleId ASC NULLS FIRST, id "
                         "LIMIT 100 OFFSET 100")
    assert ids(ok(sb, auth, "purchases.json", query)) == expected
    query = "order[attribute]=saleId&order[descending]=true&limit=100"
    expected = truth(sb, "SELECT id FROM purchases ORDER BY saleId DESC NULLS LAST, id "
                         "LIMIT 100")
    assert ids(ok(sb, auth, "purchases.json", query)) == expected


def test_ties_come_back_in_a_new_order_on_every_request(make_sandbox: Any,
                                                        auth: dict[str, str]) -> None:
    """As from PostgreSQL: offset pages on a column with ties overlap and skip rows."""
    sb = make_sandbox(rate="off", purchases=1000)
    query = "attributes[0]=id&order[attribute]=purchaseStatusId&limit=100&from={}"
    pages = [ids(ok(sb, auth, "purchases.json", query.format(p))) for p in range(10)]
    seen = {i for page in pages for i in page}
    assert len(seen) < 1000 == sum(map(len, pages))
    again = [ids(ok(sb, auth, "purchases.json", query.format(0))) for _ in range(3)]
    assert len({tuple(p) for p in again}) == 3
    # rows are still ordered by the attribute, nulls last
    rows = ok(sb, auth, "purchases.json", query.format(0).replace("=id&", "=id&attributes[1]="
                                                                   "purchaseStatusId&"))
    values = [r["purchaseStatusId"] for r in rows]
    assert values == sorted(values, key=lambda v: (v is None, v or 0))
    # a seed repeats the sequence of tie orders; ties="id" breaks them by id
    seeded = []
    for _ in range(2):
        sb.configure(ties_seed=7)
        seeded.append([ids(ok(sb, auth, "purchases.json", query.format(p))) for p in range(2)])
    assert seeded[0] == seeded[1]
    sb.configure(ties="id")
    want = truth(sb, "SELECT id FROM purchases ORDER BY purchaseStatusId NULLS LAST, id LIMIT 100")
    assert ids(ok(sb, auth, "purchases.json", query.format(0))) == want
    with pytest.raises(ValueError, match="ties"):
        sb.configure(ties="random")


# --------------------------------------------------------------------- includes
def test_has_many_include_and_two_levels(sandbox: Sandbox, auth: dict[str, str]) -> None:
    query = ("attributes[0]=id&attributes[1]=saleId&include[0][model]=PurchaseItem"
             "&include[1][model]=Sale&include[1][include][0][model]=SaleItem"
             "&include[1][include][0][attributes][0]=id&include[1][include][0][attributes][1]=saleId"
             "&limit=20")
    rows = ok(sandbox, auth, "purchases.json", query)
    for r in rows:
        items = truth(sandbox, "SELECT id FROM purchase_items WHERE purchaseId = ? ORDER BY id",
                      (r["id"],))
        assert ids(r["purchase_items"]) == items and items
        if r["saleId"] is None:
            assert r["sale"] is None
        else:
            assert r["sale"]["id"] == r["saleId"]
            expected = truth(sandbox, "SELECT id FROM sale_items WHERE saleId = ? ORDER BY id",
                             (r["saleId"],))
            assert ids(r["sale"]["sale_items"]) == expected
            assert all(set(i) == {"id", "saleId"} for i in r["sale"]["sale_items"])


def test_include_by_bare_model_name(sandbox: Sandbox, auth: dict[str, str]) -> None:
    rows = ok(sandbox, auth, "sale-items.json", "include[0]=Variant&include[1]=Sale&limit=5")
    for r in rows:
        assert r["sale"]["id"] == r["saleId"]
        assert (r["variant"] is None) == (r["variantId"] is None)


def test_include_where_is_required(sandbox: Sandbox, auth: dict[str, str]) -> None:
    query = "include[0][model]=PurchaseStatus&include[0][where][name]=Shipped&limit=100"
    rows = ok(sandbox, auth, "purchases.json", query)
    expected = truth(sandbox, "SELECT p.id FROM purchases p JOIN purchase_statuses s "
                              "ON s.id = p.purchaseStatusId WHERE s.name = 'Shipped' "
                              "ORDER BY p.id LIMIT 100")
    assert ids(rows) == expected
    assert {r["purchase_status"]["name"] for r in rows} == {"Shipped"}


@pytest.mark.parametrize(("query", "needle"), [
    ("include[0][model]=Sale&include[0][include][0][model]=SaleItem"
     "&include[0][include][0][include][0][model]=Variant", "include nested deeper"),
    ("include[0][model]=Nope", "'Nope'"),
    ("include[0][model]=Customer", "'Customer'"),
    ("where[nope]=1", "'nope'"),
    ("where[id][$regex]=1", "'$regex'"),
    ("attributes[0]=id&attributes[1]=bogus", "'bogus'"),
    ("order[attribute]=bogus", "'bogus'"),
    ("where[total][$gt]=abc", "'abc'"),
    ("where[createdAt][$gte]=yesterday", "'yesterday'"),
    ("limit=ten", "'ten'"),
])
def test_bad_queries_are_400_problems(sandbox: Sandbox, auth: dict[str, str], query: str,
                                      needle: str) -> None:
    r = get(sandbox, auth, "purchases.json", query)
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail"} and body["status"] == 400
    assert needle in body["detail"]


def test_sequelize_quirks(sandbox: Sandbox, auth: dict[str, str]) -> None:
    r = get(sandbox, auth, "purchases.json", "attributes[0]=id&include[0][model]=PurchaseStatus")
    assert r.status_code == 500 and "purchaseStatusId" in r.json()["detail"]
    r = get(sandbox, auth, "purchases.json", "attributes[0]=id&include[0][model]=PurchaseItem"
                                             "&order[attribute]=total")
    assert r.status_code == 500 and "total" in r.json()["detail"]


@pytest.mark.parametrize("path", ["nope.json", "purchases/1.json", "purchases/abc.json",
                                  "fulfillments.json", "purchases"])
def test_not_found(sandbox: Sandbox, auth: dict[str, str], path: str) -> None:
    r = get(sandbox, auth, path)
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["status"] == 404


@pytest.mark.parametrize("resource", ["purchase-statuses", "dropship-providers", "products",
                                      "variants", "channels", "customers", "warehouses", "sales",
                                      "sale-items", "purchases", "purchase-items"])
def test_every_resource_lists(sandbox: Sandbox, auth: dict[str, str], resource: str) -> None:
    rows = ok(sandbox, auth, f"{resource}.json", "limit=3")
    assert len(rows) == 3 and rows[0]["id"] < rows[1]["id"]
    assert ok(sandbox, auth, f"{resource}/{rows[1]['id']}.json") == rows[1]


def test_not_in_with_a_null_matches_nothing(sandbox: Sandbox, auth: dict[str, str]) -> None:
    """As SQL (and so Sequelize on PostgreSQL): ``x NOT IN (4, NULL)`` is never true."""
    base = "attributes[0]=id&limit=5&where[purchaseStatusId][$notIn][0]=4"
    assert len(ok(sandbox, auth, "purchases.json", base)) == 5
    assert ok(sandbox, auth, "purchases.json", base + "&where[purchaseStatusId][$notIn][1]=") == []
