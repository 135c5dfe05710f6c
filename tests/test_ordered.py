"""``limit=N`` with an ``order``: the exact first N rows, over a real socket.

The sandbox answers rows that tie on the order attribute in a different order on every request
(as PostgreSQL does), so a read that pages with offsets (``from``) on a non-unique attribute
overlaps and loses rows.  Every expected answer is SQL over the sandbox's own database, with
ties broken by id: ``ORDER BY col [DESC] NULLS FIRST|LAST, id LIMIT N``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jetti_frames import JettiClient
from jetti_frames._bounded import WINDOWS
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN

FAST = {"get_rate": 1000.0, "progress": False}


def first_ids(sb: Sandbox, col: str, limit: int, *, desc: bool = False,
              nulls_first: bool = False, where: str = "1", params: tuple[Any, ...] = (),
              table: str = "purchases") -> list[int]:
    """The ids of the exact first ``limit`` rows, ties by id, ordered as the server orders."""
    direction = "DESC" if desc else "ASC"
    nulls = "FIRST" if nulls_first else "LAST"
    rows = sb.query(f"SELECT id FROM {table} WHERE {where} ORDER BY "
                    f"{sb.order_sql(table, col)} {direction} NULLS {nulls}, id LIMIT {limit}",
                    params)
    return [r["id"] for r in rows]


@pytest.fixture
def client(sandbox: Sandbox, tmp_path: Path) -> Iterator[JettiClient]:
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=tmp_path / "cache.sqlite",
                     **FAST) as c:
        yield c


def ids_of(client: JettiClient, **options: Any) -> list[int]:
    df = client.read("purchases", **options)
    return [int(i) for i in df["id"]]


def planned_requests(counts: list[int], limit: int, page: int,
                     boundaries: int = 0) -> int:
    """The requests of an exact first ``limit`` over values with ``counts`` rows each (in
    order), by the rule of docs/design.md: a range request per page (``limit`` = rows needed +
    1, capped at ``page``); a page whose trailing run of one value is the whole page or more
    than half of it is a heavy value, read by id keyset (the value's first rows still needed,
    or all of them and a short page); the next range goes out only when the value holds fewer
    rows than needed.  Each keyset read cuts its ids into windows: up to ``boundaries`` more
    pages that are not full."""
    requests, need, i = 1, limit, 0
    while need > 0 and i < len(counts):
        take = min(need + 1, page)
        seq, rows, j = [], 0, i
        while rows < take and j < len(counts):
            seq.append((j, min(counts[j], take - rows)))
            rows += seq[-1][1]
            j += 1
        if rows < take:  # the end of the values: every row is final
            break
        last, run = seq[-1]
        need -= rows - run  # rows before the trailing run are final
        if len(seq) == 1 or 2 * run > page:
            got = min(counts[last], need)
            requests += (-(-got // page) if got == need else got // page + 1) + boundaries
            requests += counts[last] < need  # the range after the value
            need, i = need - got, last + 1
        else:  # the next range starts at the last value
            i = last
            requests += need > 0
    return requests


def test_planned_requests_of_the_reported_failure() -> None:
    # 4 value ranges, 4 heavy values read by id (201 + 165 + 374 + 260 rows): 12 pages
    assert planned_requests([201, 165, 374, 536, 374, 160, 352, 545, 192], 1000, 100) == 16
    # a range of light values ending in a run of 66 of a heavy one that holds the rest: 1 + 10
    assert planned_requests([8, 26, 1242, 1528], 1000, 100) == 11


def test_top_n_by_a_column_with_ties_is_exact(sandbox: Sandbox, client: JettiClient) -> None:
    """The reported failure: 1000 rows by purchaseStatusId (10 values over 3000 rows)."""
    before = len(sandbox.log)
    got = ids_of(client, attributes=["id", "purchaseStatusId"], order="purchaseStatusId",
                 limit=1000)
    assert len(set(got)) == 1000
    assert got == first_ids(sandbox, "purchaseStatusId", 1000)
    counts = [r["n"] for r in sandbox.query(
        "SELECT count(*) AS n FROM purchases WHERE purchaseStatusId IS NOT NULL "
        "GROUP BY purchaseStatusId ORDER BY purchaseStatusId")]
    sent = client.last_stats.requests
    assert planned_requests(counts, 1000, 100) <= sent
    assert sent <= planned_requests(counts, 1000, 100, boundaries=WINDOWS - 2)
    targets = [entry["target"] for entry in list(sandbox.log)[before:]]
    assert len(targets) == sent
    # position pages only where the order is unique: a heavy value's pages by id
    assert not any("from=" in t and "order[attribute]=id&" not in t for t in targets)
    assert any("from=" in t for t in targets)


@pytest.mark.parametrize(("order", "col", "desc", "nulls_first", "limit"), [
    ("approved", "approved", False, False, 950),                 # a boolean
    ("-approved", "approved", True, False, 120),
    ({"attribute": "cancelledAt", "nullsFirst": True}, "cancelledAt", False, True, 180),
    ({"attribute": "cancelledAt", "nullsFirst": False}, "cancelledAt", False, False, 180),
    ({"attribute": "cancelledAt", "descending": True, "nullsFirst": True},
     "cancelledAt", True, True, 150),
    ("-cancelledAt", "cancelledAt", True, False, 160),            # nulls after 145 dates
    ("-purchaseStatusId", "purchaseStatusId", True, False, 700),
    ({"attribute": "purchaseStatusId", "nullsFirst": True}, "purchaseStatusId", False, True,
     300),
    ("-dateOrdered", "dateOrdered", True, False, 50),
    ("muteError", "muteError", False, False, 1200),               # nullable boolean
    ("-total", "total", True, False, 250),
    ("purchaseType", "purchaseType", False, False, 1500),         # an enum
    ("-id", "id", True, False, 333),
])
def test_orders_with_ties_and_nulls(sandbox: Sandbox, client: JettiClient, order: Any,
                                    col: str, desc: bool, nulls_first: bool,
                                    limit: int) -> None:
    got = ids_of(client, attributes=["id", col], order=order, limit=limit)
    assert got == first_ids(sandbox, col, limit, desc=desc, nulls_first=nulls_first)


def test_a_where_on_the_order_column_and_on_others(sandbox: Sandbox,
                                                   client: JettiClient) -> None:
    where = {"purchaseStatusId": {"$in": [5, 7, 10, 12]}, "purchaseType": "dropship"}
    got = ids_of(client, attributes=["id"], where=where, order="-purchaseStatusId", limit=300)
    want = first_ids(sandbox, "purchaseStatusId", 300, desc=True,
                     where="purchaseStatusId IN (5, 7, 10, 12) AND purchaseType = 'dropship'")
    assert got == want
    got = ids_of(client, attributes=["id"], where={"purchaseStatusId": {"$gte": 10}},
                 order="purchaseStatusId", limit=900)
    assert got == first_ids(sandbox, "purchaseStatusId", 900, where="purchaseStatusId >= 10")
    # $ne on the order column meets the ranges' $ne: null (NOT IN (4, NULL) matches nothing)
    got = ids_of(client, attributes=["id"], where={"purchaseStatusId": {"$ne": 4}},
                 order="purchaseStatusId", limit=300)
    assert got == first_ids(sandbox, "purchaseStatusId", 300, where="purchaseStatusId != 4")
    # the order column must be NULL: only the null read answers
    got = ids_of(client, attributes=["id"], where={"purchaseStatusId": None},
                 order="purchaseStatusId", limit=40)
    assert got == first_ids(sandbox, "purchaseStatusId", 40, where="purchaseStatusId IS NULL")


def test_a_split_in_list(sandbox: Sandbox, client: JettiClient) -> None:
    ids = [r["id"] for r in sandbox.query("SELECT id FROM purchases WHERE id % 7 = 3")]
    assert len(ids) > 200  # many parts of 20
    listed = ", ".join(map(str, ids))
    got = ids_of(client, attributes=["id"], where={"id": ids}, order="purchaseStatusId",
                 limit=120)
    assert got == first_ids(sandbox, "purchaseStatusId", 120, where=f"id IN ({listed})")


def test_a_post_filtered_where(sandbox: Sandbox, client: JettiClient) -> None:
    """$notIn with more than 20 values: the rest is applied locally, rows are still N."""
    top = first_ids(sandbox, "purchaseStatusId", 200)
    dropped = top[::4][:45]
    got = ids_of(client, attributes=["id"], where={"id": {"$notIn": dropped}},
                 order="purchaseStatusId", limit=200)
    listed = ", ".join(map(str, dropped))
    assert got == first_ids(sandbox, "purchaseStatusId", 200, where=f"id NOT IN ({listed})")


def test_a_has_many_include_counts_records(sandbox: Sandbox, client: JettiClient) -> None:
    df = client.read("purchases", attributes=["id", "purchaseStatusId"],
                     include={"model": "PurchaseItem", "attributes": ["id"]},
                     order="-purchaseStatusId", limit=130)
    assert len(df) > 130  # one row per item
    got = list(dict.fromkeys(int(i) for i in df["id"]))
    assert got == first_ids(sandbox, "purchaseStatusId", 130, desc=True)


def test_a_page_cap_below_page_size(make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(rate="off", purchases=600, max_limit=37)
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, **FAST) as c:
        got = ids_of(c, attributes=["id"], order="purchaseStatusId", limit=250)
        assert got == first_ids(sb, "purchaseStatusId", 250)
        got = ids_of(c, attributes=["id"], order="-dateOrdered", limit=100)
        assert got == first_ids(sb, "dateOrdered", 100, desc=True)
        assert c.last_stats.requests == 3  # 37 + 36 + 29 rows, the last row of each repeated


def test_limit_beyond_the_matching_rows(sandbox: Sandbox, client: JettiClient) -> None:
    where = {"purchaseType": "adjusted_dropship"}
    got = ids_of(client, attributes=["id"], where=where, order="purchaseStatusId",
                 limit=5000)
    want = first_ids(sandbox, "purchaseStatusId", 5000, where="purchaseType = 'adjusted_dropship'")
    assert 100 < len(want) < 5000 and got == want


def test_limit_below_one_page(sandbox: Sandbox, client: JettiClient) -> None:
    got = ids_of(client, attributes=["id"], order="-dateOrdered", limit=50)
    assert got == first_ids(sandbox, "dateOrdered", 50, desc=True)
    assert client.last_stats.requests == 1  # 51 rows: the 51st proves the 50th complete
    got = ids_of(client, attributes=["id"], order="purchaseStatusId", limit=7)
    assert got == first_ids(sandbox, "purchaseStatusId", 7)


def test_a_repeated_read_is_answered_from_the_cache(make_sandbox: Any, tmp_path: Path) -> None:
    """Answers arrive in another order each time (jitter); the requests depend on data only."""
    sb = make_sandbox(rate="off", purchases=1500, latency_ms=2, jitter_ms=25)
    options: dict[str, Any] = dict(attributes=["id", "purchaseStatusId"],
                                   order={"attribute": "purchaseStatusId", "nullsFirst": True},
                                   limit=600, page_size=50)
    want = first_ids(sb, "purchaseStatusId", 600, nulls_first=True)
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     **FAST) as c:
        assert ids_of(c, **options) == want
        sent = c.last_stats.requests
        assert sent > 10
        assert ids_of(c, **options) == want
        assert c.last_stats.requests == 0 and c.last_stats.cache_hits == sent
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     **FAST) as c:  # a new process, the same cache file
        assert ids_of(c, **options) == want and c.last_stats.requests == 0


def test_iteration_gives_the_same_rows(sandbox: Sandbox, client: JettiClient) -> None:
    options: dict[str, Any] = dict(attributes=["id", "purchaseStatusId"],
                                   order="purchaseStatusId", limit=450, page_size=100)
    want = first_ids(sandbox, "purchaseStatusId", 450)
    pages = list(client.iter_pages("purchases", **options))
    assert [r["id"] for page in pages for r in page] == want
    frames = list(client.iter_frames("purchases", **options))
    assert [int(i) for f in frames for i in f["id"]] == want
    assert [r["id"] for r in client.iter_records("purchases", **options)] == want


def test_explain_shows_the_value_range_requests(client: JettiClient) -> None:
    text = str(client.explain("purchases", attributes=["id"], limit=300,
                              order={"attribute": "purchaseStatusId", "nullsFirst": True}))
    assert "where[purchaseStatusId][$ne]=&" in text          # the first value range
    assert "where[purchaseStatusId]=&" in text               # the nulls, read first
    assert "from=" not in text


def test_a_string_column_is_read_in_full_and_ordered_locally(sandbox: Sandbox,
                                                             client: JettiClient) -> None:
    """A null on a string field cannot be asked for, so no value ranges: every row, sorted."""
    got = ids_of(client, attributes=["id", "billingCity"], order="-billingCity", limit=90)
    assert got == first_ids(sandbox, "billingCity", 90, desc=True)
    assert client.last_stats.requests >= 30  # 3000 purchases at 100 a page


def test_top_n_over_one_heavy_value_sends_no_request_it_does_not_need(
        make_sandbox: Any, tmp_path: Path) -> None:
    """1000 rows by purchaseStatusId, pages of 100: 34 rows of two light values, then 966 of
    one value of 1242 rows.  At most the pages the rows need and one request per window
    boundary of the value's read beyond them; the read after the value is never sent."""
    sb = make_sandbox(rate="off", purchases=3000, max_limit=100, jitter_ms=5)
    options: dict[str, Any] = dict(attributes=["id", "purchaseStatusId"],
                                   order="purchaseStatusId", limit=1000, page_size=100)
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, **FAST) as c:
        every = c.read("purchases", attributes=["id", "purchaseStatusId"], page_size=100)
        before = sb.counters()["ok"]
        got = ids_of(c, **options)
        sent = sb.counters()["ok"] - before
    status = every["purchaseStatusId"]
    ordered = every.assign(null=status.isna()).sort_values(["null", "purchaseStatusId", "id"])
    assert got == [int(i) for i in ordered["id"][:1000]]
    counts = ordered.groupby("purchaseStatusId").size()
    assert counts.iloc[:2].sum() < 100 < counts.iloc[2] and counts.iloc[:3].sum() > 1000
    assert sent <= math.ceil(1000 / 100) + WINDOWS - 1
    ranges = [e["target"] for e in list(sb.log)[-sent:] if "order[attribute]=purchaseStatusId"
              in e["target"]]
    assert len(ranges) == 1  # the first range shows the heavy value; no range after it


@pytest.mark.parametrize(("options", "sql"), [
    (dict(limit=450, page_size=50), "1 ORDER BY id LIMIT 450"),
    (dict(order="-id"), "1 ORDER BY id DESC"),
    (dict(order="-total"), "1 ORDER BY total DESC NULLS LAST, id"),
    (dict(order="billingCity", limit=30), "1 ORDER BY billingCity NULLS LAST, id LIMIT 30"),
    (dict(where={"id": list(range(100000, 101000, 3))}, order="-id", limit=50),
     "id IN ({listed}) ORDER BY id DESC LIMIT 50"),
    # $notIn beyond 20 values is applied locally: a read by id windows would count rows it
    # drops; ranges over id count only the kept ones
    (dict(where={"id": {"$notIn": list(range(100000, 100100))}}, limit=300),
     "id NOT IN ({dropped}) ORDER BY id LIMIT 300"),
])
def test_read_and_iteration_give_the_rows_of_sql(make_sandbox: Any, options: dict[str, Any],
                                                 sql: str) -> None:
    """Answers come in another order each time (jitter): whatever arrives first, read() and
    every iter_* hand over the rows SQL gives, in its order."""
    sb = make_sandbox(rate="off", purchases=1200, latency_ms=2, jitter_ms=30)
    listed = ", ".join(map(str, range(100000, 101000, 3)))
    dropped = ", ".join(map(str, range(100000, 100100)))
    want = [r["id"] for r in sb.query("SELECT id FROM purchases WHERE "
                                      + sql.format(listed=listed, dropped=dropped))]
    columns = ["id", "total", "billingCity"]
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, **FAST) as c:
        assert ids_of(c, attributes=columns, **options) == want
        assert [r["id"] for r in c.iter_records("purchases", attributes=columns,
                                                **options)] == want
        frames = c.iter_frames("purchases", attributes=columns, **options)
        assert [int(i) for f in frames for i in f["id"]] == want
    if "$notIn" in str(options):
        assert c.last_stats.requests <= 4  # ranges over id, not the whole table
