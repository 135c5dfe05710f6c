"""Text orders the server decides: strings by its database's collation, enum values in their
declared order.  On a sandbox with ``collation="natural"`` (the default: ``"du Bois"`` among
the D's, ``"Évian"`` among the E's, ``replenishment`` before ``dropship``), every read in a
string or enum order, whole or the first N, read in parts or not, by ``read()`` or
``iter_*``, returns the rows SQL returns in the server's order; a sandbox ordering by code
point costs no more than the requests that prove it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from jetti_frames import JettiClient, JettiDataError, JettiOrderError
from jetti_frames._text_order import (
    batches,
    language_key,
    learn_ranks,
    ranks,
    representatives,
)
from jetti_frames.catalog import CATALOG
from jetti_frames.sandbox import Sandbox
from jetti_frames.sandbox.collation import sort_expression
from jetti_frames.settings import SANDBOX_TOKEN

PURCHASES = CATALOG.resource("purchases")


@pytest.fixture(scope="module")
def natural() -> Iterator[Sandbox]:
    with Sandbox(purchases=1200, rate="off") as sb:  # collation="natural", the default
        yield sb


def make_client(sb: Sandbox) -> JettiClient:
    return JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                       page_size=100, get_rate=1000.0)


def first_ids(sb: Sandbox, col: str, limit: int | None = None, *, desc: bool = False,
              nulls_first: bool = False, where: str = "1", collation: str = "natural"
              ) -> list[int]:
    """The ids SQL orders first, ties by id, comparing as the sandbox's server does."""
    column = sort_expression(PURCHASES, col, f'"{col}"', collation)
    sql = (f"SELECT id FROM purchases WHERE {where} ORDER BY {column} "
           f"{'DESC' if desc else 'ASC'} NULLS {'FIRST' if nulls_first else 'LAST'}, id")
    return [r["id"] for r in sb.query(sql + (f" LIMIT {limit}" if limit else ""))]


def distinct(sb: Sandbox, col: str) -> int:
    return sb.query(f'SELECT count(DISTINCT "{col}") AS n FROM purchases')[0]["n"]


@pytest.mark.parametrize(("order", "col", "desc", "nulls_first", "limit"), [
    ("billingName", "billingName", False, False, 40),
    ("-billingName", "billingName", True, False, None),
    ({"attribute": "billingCity", "nullsFirst": True}, "billingCity", False, True, 1000),
    ("shippingLastName", "shippingLastName", False, False, None),
    ("purchaseType", "purchaseType", False, False, None),      # an enum: declared order
    ("-paymentStatus", "paymentStatus", True, False, 700),     # an enum, the first N by ranges
])
def test_reads_in_a_text_order_follow_the_server(natural: Sandbox, order: Any, col: str,
                                                 desc: bool, nulls_first: bool,
                                                 limit: int | None) -> None:
    want = first_ids(natural, col, limit, desc=desc, nulls_first=nulls_first)
    assert want != first_ids(natural, col, limit, desc=desc, nulls_first=nulls_first,
                             collation="binary")  # the collation matters to this read
    with make_client(natural) as c:
        frame = c.read("purchases", attributes=["id", col], order=order, limit=limit)
        assert [int(i) for i in frame["id"]] == want
        assert [r["id"] for r in c.iter_records("purchases", attributes=["id", col],
                                                order=order, limit=limit)] == want


def test_a_split_list_in_an_enum_order(natural: Sandbox) -> None:
    """Each part's first N come in the server's order; merging them needs the same order."""
    ids = [r["id"] for r in natural.query("SELECT id FROM purchases WHERE id % 5 = 2")]
    listed = ", ".join(map(str, ids))
    with make_client(natural) as c:
        frame = c.read("purchases", attributes=["id", "purchaseType"], where={"id": ids},
                       order="purchaseType", limit=150)
    assert [int(i) for i in frame["id"]] == first_ids(natural, "purchaseType", 150,
                                                      where=f"id IN ({listed})")


def test_requests_that_learn_the_order(natural: Sandbox) -> None:
    """A sample picks the language order, then one request per 99 values proves it."""
    values = distinct(natural, "billingName")
    assert values > 100
    with make_client(natural) as c:
        c.read("purchases", attributes=["id", "billingName"], order="billingName")
        pages = -(-1200 // 100)
        # the read (with its probe and consistency pass), the sample, the proof
        assert c.last_stats.requests <= pages + 2 + 1 + -(-(values - 1) // 99)
        c.read("purchases", attributes=["id", "purchaseType"], order="purchaseType")
        assert c.last_stats.requests <= pages + 2 + 1  # five values: one request


def test_code_point_servers_cost_one_guess(make_sandbox: Any) -> None:
    sb = make_sandbox(purchases=1200, rate="off", collation="binary")
    values = distinct(sb, "billingName")
    with make_client(sb) as c:
        frame = c.read("purchases", attributes=["id", "billingName"], order="billingName",
                       limit=30)
        assert [int(i) for i in frame["id"]] == first_ids(sb, "billingName", 30,
                                                          collation="binary")
        assert c.last_stats.requests <= -(-1200 // 100) + 2 + 1 + -(-(values - 1) // 99)


def test_a_server_without_or_is_asked_in_plain_lists(make_sandbox: Any) -> None:
    """A server that ignores ``$or`` answers a packed request with records not asked for: the
    values are asked again in lists of 20, and the account remembered."""
    sb = make_sandbox(purchases=600, rate="off", collation="natural", logic="ignore")
    with make_client(sb) as c:
        frame = c.read("purchases", attributes=["id", "billingName"], order="billingName")
        assert [int(i) for i in frame["id"]] == first_ids(sb, "billingName")


def test_a_page_cap_met_while_ordering(make_sandbox: Any) -> None:
    """A server that starts capping pages below the values asked for (its cap unseen by the
    read): the values are asked for again in runs of the cap."""
    sb = make_sandbox(purchases=600, rate="off")
    with make_client(sb) as c:
        c.read("purchases", attributes=["id"])  # the plan's requests: the read's page count
        pages = c.last_stats.requests
        sb.after_requests(pages, lambda s: s.configure(max_limit=37))
        frame = c.read("purchases", attributes=["id", "billingName"], order="billingName")
    assert [int(i) for i in frame["id"]] == first_ids(sb, "billingName")


# ------------------------------------------------------------------- the pure parts


def test_batches_overlap_by_one_and_cover_every_value() -> None:
    values = list(range(250))
    runs = batches(values, 100)
    assert [len(r) for r in runs] == [100, 100, 52]
    assert all(a[-1] == b[0] for a, b in pairwise(runs))
    assert sorted({v for r in runs for v in r}) == values
    assert batches(["a", "b"], 2) == [["a", "b"]]


def test_ranks_from_answers() -> None:
    asked = [["a", "b", "c"], ["c", "d"]]
    assert ranks(asked, asked) == {"a": 0, "b": 1, "c": 2, "d": 3}
    with pytest.raises(JettiOrderError, match="no order the client can reproduce"):
        ranks(asked, [["b", "a", "c"], ["c", "d"]])
    with pytest.raises(JettiDataError, match="changed"):
        ranks(asked, [["a", "b"], ["c", "d"]])  # a record gone since it was read
    assert ranks([["a", "B", "c"]], [["c", "a", "B"]]) == {"c": 0, "a": 1, "B": 2}


def test_learn_ranks_picks_a_guess_by_a_sample_and_proves_it() -> None:
    values = sorted(f"{w} {i}" for w in ("apple", "Banana", "cherry", "Date") for i in range(30))
    asked: list[list[str]] = []

    def icu(runs: list[list[str]]) -> list[list[str]]:
        asked.extend(runs)
        return [sorted(run, key=language_key) for run in runs]

    ranked = learn_ranks(values, 20, icu)
    assert list(ranked) == sorted(values, key=language_key)
    assert len(asked) == 1 + 7  # the sample, then 120 values in runs of 20 overlapping by one
    with pytest.raises(JettiOrderError, match="neither by code point"):
        learn_ranks(values, 20, lambda runs: [sorted(run, reverse=True) for run in runs])
    assert learn_ranks(values[:20], 20, lambda runs: [run[::-1] for run in runs]) \
        == {v: i for i, v in enumerate(values[:20][::-1])}  # one request: taken as it comes


def test_representatives() -> None:
    rows = [{"id": 9, "n": "x"}, {"id": 4, "n": "x"}, {"id": 5, "n": None}, {"id": 2, "n": "A"}]
    assert representatives(rows, "n") == {"A": 2, "x": 4}


def test_the_language_guess_is_postgresql_icu_order() -> None:
    """``tests/data/icu-order.json``: sandbox names and hard cases (case, accents, spaces,
    punctuation, digits) as PostgreSQL 15 orders them by ``COLLATE "en-US-x-icu"``."""
    vector = json.loads((Path(__file__).parent / "data" / "icu-order.json").read_text("utf-8"))
    ordered = vector["ordered"]
    assert len(ordered) > 150 and "en-US-x-icu" in vector["source"]
    assert sorted(ordered, key=language_key) == ordered
    assert sorted(ordered) != ordered  # code point order is not it
