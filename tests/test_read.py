"""read_jetti end to end: a real sandbox over a socket, a real SQLite HTTP cache, real retries.

Every expected frame is built here from the sandbox's SQLite database with SQL and an
independent dtype table, never from the toolkit's own conversion code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from jetti_frames import JettiClient, get_jetti, read_jetti
from jetti_frames.catalog import CATALOG
from jetti_frames.errors import JettiAuthError, JettiNotFoundError, JettiQueryError
from jetti_frames.sandbox import FaultPlan, Sandbox
from jetti_frames.settings import SANDBOX_TOKEN

#: The sandbox's allowance is off in most tests; the client's limiter is set high to match.
FAST = {"get_rate": 1000.0, "progress": False}

DTYPES = {"integer": "Int64", "number": "Float64", "boolean": "boolean",
          "datetime": "datetime64[us, UTC]", "string": "string", "array": "object",
          "json": "object"}


def expected_dtype(resource: str, field: str) -> Any:
    f = CATALOG.resource(resource).field(field)
    if f.kind == "enum":
        return pd.CategoricalDtype(list(f.enum or ()))
    return DTYPES[f.kind]


def truth(sb: Sandbox, sql: str, params: tuple[Any, ...] = (),
          types: dict[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """The expected frame: SQL rows typed by ``{column: (resource, field)}`` from the spec."""
    rows = sb.query(sql, params)
    frame = pd.DataFrame(rows)
    for column, (resource, field) in (types or {}).items():
        dtype = expected_dtype(resource, field)
        values = frame[column] if column in frame else pd.Series([], dtype=object)
        if dtype == "datetime64[us, UTC]":
            frame[column] = pd.to_datetime(values, utc=True, format="ISO8601").astype(dtype)
        elif dtype in ("object",):
            frame[column] = [None if v is None else json.loads(v) for v in values]
        else:
            frame[column] = values.astype(dtype)
    return frame.reset_index(drop=True)


def purchase_types(columns: list[str]) -> dict[str, tuple[str, str]]:
    return {c: ("purchases", c) for c in columns}


@pytest.fixture
def client(sandbox: Sandbox, tmp_path: Path) -> Iterator[JettiClient]:
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=tmp_path / "cache.sqlite",
                     **FAST) as c:
        yield c


# -- the three query examples of Jetti's documentation ------------------------------------


def test_doc_example_filter_by_provider(sandbox: Sandbox, client: JettiClient) -> None:
    provider = sandbox.query("SELECT dropshipProviderId AS p FROM purchases WHERE "
                             "dropshipProviderId IS NOT NULL GROUP BY p ORDER BY count(*) DESC "
                             "LIMIT 1")[0]["p"]
    columns = ["id", "reference", "dropshipProviderId", "total", "createdAt", "purchaseType"]
    got = client.read("purchases", where={"dropshipProviderId": provider}, attributes=columns)
    want = truth(sandbox, f"SELECT {', '.join(columns)} FROM purchases "
                 "WHERE dropshipProviderId = ? ORDER BY id", (provider,), purchase_types(columns))
    assert len(want) > 50  # more than one page
    pd.testing.assert_frame_equal(got, want)


def test_doc_example_dates_and_types(sandbox: Sandbox, client: JettiClient) -> None:
    columns = ["id", "createdAt", "purchaseType", "paymentStatus", "subtotal", "cancelled"]
    got = client.read("purchases", attributes=columns, where={
        "createdAt": {"$gte": datetime(2021, 1, 1, tzinfo=UTC), "$lte": "2022-06-30T23:59:59Z"},
        "purchaseType": {"$in": ["dropship", "automated_dropship"]}})
    want = truth(sandbox, f"SELECT {', '.join(columns)} FROM purchases WHERE createdAt >= ? "
                 "AND createdAt <= ? AND purchaseType IN ('dropship', 'automated_dropship') "
                 "ORDER BY id", ("2021-01-01T00:00:00+00:00", "2022-06-30T23:59:59+00:00"),
                 purchase_types(columns))
    assert len(want) > 100
    pd.testing.assert_frame_equal(got, want)


def test_doc_example_limit_and_order(sandbox: Sandbox, client: JettiClient) -> None:
    columns = ["id", "dateOrdered", "total"]
    got = client.read("purchases", attributes=columns, order="-dateOrdered", limit=130,
                      page_size=50)
    want = truth(sandbox, "SELECT id, dateOrdered, total FROM purchases "
                 "ORDER BY dateOrdered DESC, id LIMIT 130", (), purchase_types(columns))
    pd.testing.assert_frame_equal(got, want)
    assert client.last_stats.requests == 3  # ceil(130 / 50)


def test_doc_example_attributes_with_include(sandbox: Sandbox, client: JettiClient) -> None:
    got = client.read("purchases", attributes=["id", "total"],
                      include={"model": "PurchaseStatus", "attributes": ["name", "level"]},
                      where={"purchaseType": "dropship"})
    want = truth(sandbox, "SELECT p.id, p.total, s.name AS purchase_status_name, "
                 "s.level AS purchase_status_level FROM purchases p LEFT JOIN "
                 "purchase_statuses s ON s.id = p.purchaseStatusId WHERE "
                 "p.purchaseType = 'dropship' ORDER BY p.id", (),
                 {"id": ("purchases", "id"), "total": ("purchases", "total"),
                  "purchase_status_name": ("purchase-statuses", "name"),
                  "purchase_status_level": ("purchase-statuses", "level")})
    # the foreign key the server needed was sent, then dropped as it was not asked for
    pd.testing.assert_frame_equal(got, want)


# -- typed frames ------------------------------------------------------------------------


def test_every_column_is_typed_from_the_catalogue(client: JettiClient) -> None:
    df = client.read("purchases", limit=200)
    resource = CATALOG.resource("purchases")
    assert df.columns.tolist()[:len(resource.fields)] == resource.field_names
    for f in resource.fields:
        assert df[f.name].dtype == expected_dtype("purchases", f.name), f.name
    assert df["id"].is_unique and df["id"].is_monotonic_increasing


def test_empty_result_keeps_every_column_and_dtype(sandbox: Sandbox,
                                                   client: JettiClient) -> None:
    before = sandbox.counters(SANDBOX_TOKEN)["requests"]
    df = client.read("purchases", where={"id": []}, include="PurchaseStatus")
    assert sandbox.counters(SANDBOX_TOKEN)["requests"] == before  # answered locally
    assert len(df) == 0
    assert df["purchaseType"].dtype == expected_dtype("purchases", "purchaseType")
    assert df["purchase_status_name"].dtype == "string"
    assert df["createdAt"].dtype == "datetime64[us, UTC]"


def test_unknown_fields_are_kept(client: JettiClient) -> None:
    df = client.read("purchase-statuses")
    assert "companyId" in df.columns  # sent by the server, absent from the spec
    assert str(df["companyId"].dtype) == "Int64"


def test_pyarrow_backend(client: JettiClient) -> None:
    df = client.read("purchases", attributes=["id", "total", "cancelled", "createdAt"],
                     limit=10, dtype_backend="pyarrow")
    assert all(isinstance(t, pd.ArrowDtype) for t in df.dtypes)


def test_has_many_include_explodes_and_tables_mode(sandbox: Sandbox,
                                                   client: JettiClient) -> None:
    where = {"id": [r["id"] for r in sandbox.query("SELECT id FROM purchases ORDER BY id "
                                                   "LIMIT 40")]}
    joined = client.read("purchases", where=where, attributes=["id", "total"],
                         include={"model": "PurchaseItem", "attributes": ["quantity"]})
    items = sandbox.query("SELECT p.id, count(i.id) AS n FROM purchases p LEFT JOIN "
                          "purchase_items i ON i.purchaseId = p.id WHERE p.id IN "
                          f"({', '.join(map(str, where['id']))}) GROUP BY p.id")
    assert len(joined) == sum(max(1, r["n"]) for r in items)
    childless = [r["id"] for r in items if r["n"] == 0]
    if childless:
        row = joined[joined["id"] == childless[0]]
        assert len(row) == 1 and row["purchase_items_quantity"].isna().all()
    tables = client.read("purchases", where=where, include="PurchaseItem", include_mode="tables")
    assert set(tables) == {"purchases", "purchase_items"}
    assert len(tables["purchases"]) == 40
    assert len(tables["purchase_items"]) == sum(r["n"] for r in items)
    assert set(tables["purchase_items"]["purchaseId"]) <= set(where["id"])


def test_long_attribute_list_yields_exactly_those_columns(client: JettiClient) -> None:
    names = CATALOG.resource("purchases").field_names[::-1][:30]
    df = client.read("purchases", attributes=names, limit=5)
    assert df.columns.tolist() == names


# -- completeness under paging hazards ----------------------------------------------------


def all_purchases(sb: Sandbox) -> pd.DataFrame:
    columns = ["id", "total", "updatedAt", "notes"]
    return truth(sb, "SELECT id, total, updatedAt, notes FROM purchases ORDER BY id", (),
                 purchase_types(columns))


def read_all(sb: Sandbox, tmp_path: Path, **options: Any) -> tuple[pd.DataFrame, JettiClient]:
    client = JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                         **FAST)
    df = client.read("purchases", attributes=["id", "total", "updatedAt", "notes"], **options)
    return df, client


def test_silent_cap_below_the_page_size(make_sandbox: Callable[..., Sandbox],
                                        tmp_path: Path) -> None:
    sb = make_sandbox(rate="off", max_limit=37, purchases=500)
    df, client = read_all(sb, tmp_path, page_size=100)
    pd.testing.assert_frame_equal(df, all_purchases(sb))
    assert client.last_stats.requests <= -(-500 // 37) + 6


def test_row_count_an_exact_multiple_of_the_page_size(make_sandbox: Callable[..., Sandbox],
                                                      tmp_path: Path) -> None:
    sb = make_sandbox(rate="off", purchases=300)
    assert sb.query("SELECT count(*) AS n FROM purchases")[0]["n"] == 300
    df, _ = read_all(sb, tmp_path, page_size=100)
    pd.testing.assert_frame_equal(df, all_purchases(sb))


def test_inserts_and_updates_while_paging(make_sandbox: Callable[..., Sandbox],
                                          tmp_path: Path) -> None:
    sb = make_sandbox(rate="off", purchases=1000, latency_ms=5)
    ids = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id")]
    early, late = ids[:25], ids[-25:]  # rows read before the change, and rows read after it

    def change(s: Sandbox) -> None:
        s.insert("purchases", 50)
        s.touch("purchases", early + late)

    sb.after_requests(4, change)
    df, _ = read_all(sb, tmp_path, page_size=50)
    final = all_purchases(sb)
    assert len(final) == 1050
    assert df["id"].is_unique
    pd.testing.assert_frame_equal(df, final)


def test_user_order_is_complete_and_ordered(sandbox: Sandbox, client: JettiClient) -> None:
    got = client.read("purchases", attributes=["id", "dateOrdered", "cancelledAt"],
                      order={"attribute": "cancelledAt", "descending": True, "nullsFirst": True})
    want = truth(sandbox, "SELECT id, dateOrdered, cancelledAt FROM purchases ORDER BY "
                 "cancelledAt IS NOT NULL, cancelledAt DESC, id", (),
                 purchase_types(["id", "dateOrdered", "cancelledAt"]))
    pd.testing.assert_frame_equal(got, want)


def test_limit_stops_early_with_the_fewest_requests(sandbox: Sandbox,
                                                    client: JettiClient) -> None:
    df = client.read("purchases", attributes=["id"], limit=250, page_size=100)
    assert len(df) == 250 and client.last_stats.requests == 3
    want = sandbox.query("SELECT id FROM purchases ORDER BY id LIMIT 250")
    assert df["id"].tolist() == [r["id"] for r in want]


def test_faults_lose_nothing(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(rate="off", purchases=800,
                      faults=FaultPlan(rate=0.2, kinds=("503", "429", "drop"), seed=3))
    df, client = read_all(sb, tmp_path, page_size=50)
    sb.configure(faults=None)
    pd.testing.assert_frame_equal(df, all_purchases(sb))
    counters = sb.counters()
    assert counters["faults"] > 0
    assert client.last_stats.retries + client.last_stats.status_429 >= counters["faults"]


def test_in_with_500_ids(sandbox: Sandbox, client: JettiClient) -> None:
    all_ids = [r["id"] for r in sandbox.query("SELECT id FROM purchases ORDER BY id")]
    wanted = [*all_ids[::5][:480], 1, 2, 3, *range(10_000_000, 10_000_017)]  # 500 ids
    assert len(set(wanted)) == 500
    df = client.read("purchases", where={"id": wanted}, attributes=["id", "total"])
    want = truth(sandbox, f"SELECT id, total FROM purchases WHERE id IN "
                 f"({', '.join(map(str, wanted))}) ORDER BY id", (),
                 purchase_types(["id", "total"]))
    assert len(want) == 480
    pd.testing.assert_frame_equal(df, want)
    # 5 requests of 100 ids ($or branches of 20: never a longer array), all sent before any
    # answer: one moment of the data.  The parts whose ids partly do not exist (short pages)
    # end on their first page in any order of answers: the other parts' first pages show that
    # the server's cap is not below 100
    assert client.last_stats.requests == 5
    assert all(len(e["target"]) < 16 * 1024 for e in sandbox.log)


# -- the HTTP cache, tokens and errors -----------------------------------------------------


def test_cache_per_account_and_the_token_never_reaches_disk_or_logs(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    second = "second-account-token-4f9a"
    sb = make_sandbox(rate="off", tokens=(SANDBOX_TOKEN, second), purchases=400)
    cache = tmp_path / "http.sqlite"
    caplog.set_level(logging.DEBUG, logger="jetti_frames")
    options: dict[str, Any] = {"attributes": ["id", "total"], "include": "PurchaseStatus"}
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=cache, **FAST) as one:
        first = one.read("purchases", **options)
        sent = sb.counters(SANDBOX_TOKEN)["requests"]
        assert sent == one.last_stats.requests > 1
        again = one.read("purchases", **options)
        assert sb.counters(SANDBOX_TOKEN)["requests"] == sent  # zero requests the second time
        assert one.last_stats.requests == 0 and one.last_stats.cache_hits == sent
    pd.testing.assert_frame_equal(first, again)
    with JettiClient(second, base_url=sb.base_url, cache=cache, **FAST) as two:
        other = two.read("purchases", **options)
        assert sb.counters(second)["requests"] > 0  # never served from the first account's cache
    pd.testing.assert_frame_equal(first, other)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("http"))
    for token in (SANDBOX_TOKEN, second):
        assert token.encode() not in raw
        assert token not in caplog.text
    assert "purchases.json" in caplog.text  # the requests were logged


def test_refresh_bypasses_the_cache(sandbox: Sandbox, client: JettiClient) -> None:
    client.read("purchase-statuses")
    client.read("purchase-statuses", refresh=True)
    assert client.last_stats.requests >= 1 and client.last_stats.cache_hits == 0


def test_bad_query_fails_before_any_request(sandbox: Sandbox, client: JettiClient) -> None:
    before = sandbox.counters(SANDBOX_TOKEN)["requests"]
    with pytest.raises(JettiQueryError, match="purchaseType"):
        client.read("purchases", where={"purchaseTyp": "dropship"})
    with pytest.raises(JettiQueryError, match="did you mean 'purchases'"):
        client.read("purchse")
    with pytest.raises(JettiQueryError, match="PurchaseStatus"):
        client.read("purchases", include="PurchaseStatuss")
    with pytest.raises(JettiQueryError, match=r"\$gte"):
        client.read("purchases", where={"total": {"$gtee": 3}})
    assert sandbox.counters(SANDBOX_TOKEN)["requests"] == before


def test_wrong_token_is_an_auth_error_without_the_token(sandbox: Sandbox,
                                                        tmp_path: Path) -> None:
    secret = "not-a-valid-token-71c2"
    with JettiClient(secret, base_url=sandbox.base_url, cache=False, **FAST) as c:
        with pytest.raises(JettiAuthError) as info:
            c.read("purchase-statuses")
        assert info.value.status == 401
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert secret not in repr(c)


def test_missing_token_is_refused_locally(sandbox: Sandbox,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JETTI_API_TOKEN", raising=False)
    with (JettiClient(base_url=sandbox.base_url, cache=False, **FAST) as c,
          pytest.raises(JettiAuthError, match="JETTI_API_TOKEN")):
        c.read("purchases")


def test_get_jetti_and_not_found(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JETTI_API_TOKEN", SANDBOX_TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", "")
    pid = sandbox.query("SELECT id FROM purchases WHERE purchaseStatusId IS NOT NULL "
                        "LIMIT 1")[0]["id"]
    record = get_jetti("purchases", pid, include="PurchaseStatus")
    assert record["id"] == pid and isinstance(record["purchase_status"], dict)
    with pytest.raises(JettiNotFoundError):
        get_jetti("purchases", 1)
    df = read_jetti("purchases", where={"id": pid}, progress=False)
    assert df["id"].tolist() == [pid]


def test_get_jetti_as_frame_is_typed_like_read_jetti(sandbox: Sandbox, client: JettiClient
                                                    ) -> None:
    pid = sandbox.query("SELECT p.id FROM purchases p JOIN purchase_items i ON i.purchaseId = "
                        "p.id GROUP BY p.id HAVING count(*) >= 2 ORDER BY p.id LIMIT 1")[0]["id"]
    for include in (None, "PurchaseStatus", ["PurchaseStatus", "PurchaseItem"]):
        one = client.get("purchases", pid, include=include, as_frame=True)
        same = client.read("purchases", where={"id": pid}, include=include)
        pd.testing.assert_frame_equal(one, same)
        if include is None:
            assert len(one) == 1 and str(one["dateOrdered"].dtype) == "datetime64[us, UTC]"
    assert len(one) >= 2  # has-many: one row per item, as read() gives
    via_function = get_jetti("purchases", pid, client=client, as_frame=True)
    pd.testing.assert_frame_equal(via_function, client.read("purchases", where={"id": pid}))
    with pytest.raises(JettiQueryError, match="as_frame"):
        client.get("purchases", pid, as_frame="yes")  # type: ignore[arg-type]


def test_iter_frames_pages_come_as_read_and_make_up_the_read(client: JettiClient) -> None:
    """As documented: pages in the order they are read, not by id; each page is one id run."""
    frames = list(client.iter_frames("purchases", page_size=40))
    assert all(f["id"].is_monotonic_increasing or f["id"].is_monotonic_decreasing
               for f in frames)
    firsts = [int(f["id"].min()) for f in frames]
    assert firsts != sorted(firsts)  # parallel id windows interleave
    joined = pd.concat(frames).sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(joined, client.read("purchases"))


def test_explain_sends_nothing(sandbox: Sandbox, client: JettiClient) -> None:
    before = sandbox.counters(SANDBOX_TOKEN)["requests"]
    plan = client.read("purchases", where={"id": list(range(1, 46))}, explain=True)
    assert sandbox.counters(SANDBOX_TOKEN)["requests"] == before
    assert plan.min_requests == 1 and len(plan.urls) == 1  # 45 ids in $or branches of 20
    assert all("where[$or][2][id][$in][4]" in u for u in plan.urls)
    assert "1 request stream(s)" in str(plan)
    assert "request" in str(plan)


def test_the_real_allowance_is_never_exceeded(make_sandbox: Callable[..., Sandbox],
                                              tmp_path: Path) -> None:
    sb = make_sandbox(purchases=400, latency_ms=20)  # 2 GET/s, bucket capacity 2
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False) as c:
        df = c.read("purchases", attributes=["id"], page_size=40)
    assert len(df) == 400
    assert sb.counters()["status_429"] == 0 and c.last_stats.status_429 == 0
    assert sb.counters()["requests"] == c.last_stats.requests >= 10


def test_limit_with_a_long_in_list_and_an_order(sandbox: Sandbox, client: JettiClient) -> None:
    ids = [r["id"] for r in sandbox.query("SELECT id FROM purchases ORDER BY id DESC LIMIT 90")]
    listed = ", ".join(map(str, ids))
    first = client.read("purchases", where={"id": ids}, attributes=["id"], limit=7)
    want = sandbox.query(f"SELECT id FROM purchases WHERE id IN ({listed}) ORDER BY id LIMIT 7")
    assert first["id"].tolist() == [r["id"] for r in want]
    top = client.read("purchases", where={"id": ids}, attributes=["id", "total"], order="-total",
                      limit=7)
    want = sandbox.query(f"SELECT id FROM purchases WHERE id IN ({listed}) "
                         "ORDER BY total DESC, id LIMIT 7")
    assert top["id"].tolist() == [r["id"] for r in want]


def test_nested_include_two_levels(sandbox: Sandbox, client: JettiClient) -> None:
    got = client.read("purchases", attributes=["id"], where={"saleId": {"$ne": None}},
                      include={"model": "Sale", "attributes": ["id"],
                               "include": [{"model": "Customer", "attributes": ["email"]}]},
                      limit=60)
    want = truth(sandbox, "SELECT p.id, s.id AS sale_id, c.email AS sale_customer_email "
                 "FROM purchases p JOIN sales s ON s.id = p.saleId "
                 "LEFT JOIN customers c ON c.id = s.customerId ORDER BY p.id LIMIT 60", (),
                 {"id": ("purchases", "id"), "sale_id": ("sales", "id"),
                  "sale_customer_email": ("customers", "email")})
    pd.testing.assert_frame_equal(got, want)
    with pytest.raises(JettiQueryError, match="level"):
        client.read("purchases", include={"model": "Sale", "include": [
            {"model": "Customer", "include": ["Channel"]}]})
