"""``limit=N`` in id order read by parallel id windows: exact rows, request counts, the cache.

The pure pager is driven against an in-memory server (answers in random order); the reads go
over a real socket to the sandbox, whose own counters and SQL give the expected answers.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetti_frames import JettiClient
from jetti_frames._bounded import WINDOWS, BoundedPager
from jetti_frames.errors import JettiConfigError
from jetti_frames.paging import PageRequest
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN

#: The allowance scaled up tenfold (the bucket and our limiter alike), so 429s would show.
RATE = {"get_rate": 20.0}


def answer(rows: list[int], req: PageRequest, cap: int | None) -> list[int]:
    ids = [i for i in rows if (req.gt is None or i > req.gt) and (req.lte is None or i <= req.lte)
           and (req.lt is None or i < req.lt) and (req.gte is None or i >= req.gte)]
    return sorted(ids, reverse=req.descending)[:min(req.limit, cap or req.limit)]


def drive(pager: BoundedPager, rows: list[int], *, cap: int | None = None,
          rng: random.Random | None = None) -> tuple[list[int], list[tuple[Any, ...]]]:
    """Run a read; the result and the requests sent (in the order sent)."""
    pending: list[PageRequest] = []
    got: list[int] = []
    sent: list[tuple[Any, ...]] = []
    while not pager.done:
        new = pager.next_requests()
        sent += [(r.gt, r.lte, r.lt, r.gte, r.limit) for r in new]
        pending += new
        assert pending, "the pager stalled"
        assert len(pending) == pager.in_flight <= pager.parallel
        req = pending.pop(rng.randrange(len(pending)) if rng else 0)
        ids = answer(rows, req, cap)
        got += ids[:pager.on_page(req, ids)]
        assert len(sent) < 10_000
    bound = pager.final_bound()
    sign = -1 if pager.descending else 1
    return sorted((i for i in got if sign * i <= bound), key=lambda i: sign * i), sent


def sandbox_ids(sb: Sandbox, table: str, n: int) -> list[int]:
    return [r["id"] for r in sb.query(f"SELECT id FROM {table} ORDER BY id LIMIT {n}")]


# -- the pure pager --------------------------------------------------------------------------
@pytest.mark.parametrize("cap", [None, 37, 1])
@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 450, 999, 1000, 1001, 2500])
def test_the_first_n_ids_whatever_the_cap(n: int, cap: int | None) -> None:
    rows = list(range(5, 5 + 3 * 1000, 3))
    got, sent = drive(BoundedPager(100, n, parallel=4), rows, cap=cap, rng=random.Random(n))
    assert got == rows[:n]
    assert len(set(sent)) == len(sent)  # no request twice: each could be a cache hit


def test_even_ids_cost_the_pages_and_the_slack_at_most_one_more() -> None:
    rows = list(range(10, 100_000, 7))
    pager = BoundedPager(100, 4000, parallel=8)
    got, _ = drive(pager, rows, rng=random.Random(1))
    assert got == rows[:4000]
    assert pager.stats.requests <= 41  # the bounded windows' slack fills one page at most
    assert len(pager.windows()) == 1 + WINDOWS  # the first page, then the windows


@pytest.mark.parametrize(("n", "windows"), [(600, 2), (1000, 2), (1700, 4), (4000, 4)])
def test_wide_windows_past_the_second_only_for_reads_that_fill_them(n: int,
                                                                      windows: int) -> None:
    """A heavy value's read (``window_pages=4``): two windows for a few pages, the four of any
    bounded read once each holds four pages."""
    rows = list(range(10, 100_000, 7))
    pager = BoundedPager(100, n, parallel=8, window_pages=4)
    got, _ = drive(pager, rows, rng=random.Random(n))
    assert got == rows[:n]
    assert len(pager.windows()) == 1 + windows  # the first page, then the windows
    assert pager.stats.requests <= -(-n // 100) + windows - 1


@pytest.mark.parametrize("cap", [None, 37])
def test_a_probe_cuts_the_windows_below_the_highest_id(cap: int | None) -> None:
    """2300 rows where 4000 are asked: the probe's highest id bounds the plan, so no window
    starts past the last row; the same pages in any order of answers."""
    rows = list(range(10, 10 + 7 * 2300, 7))
    plans = set()
    for seed in range(4):
        pager = BoundedPager(100, 4000, parallel=6, window_pages=4, probe=True)
        got, sent = drive(pager, rows, cap=cap, rng=random.Random(seed))
        assert got == rows
        plans.add(frozenset(sent))
        if cap is None:
            assert pager.stats.wasted == 0 and len(pager.windows()) == 1 + WINDOWS
    assert len(plans) == 1


def test_irregular_ids_cost_at_most_a_page_per_window_boundary() -> None:
    rng = random.Random(7)
    rows, i = [], 0
    for _ in range(9000):
        i += rng.choice([1, 2, 2, 3])
        rows.append(i)
    pager = BoundedPager(100, 4000, parallel=3)
    got, _ = drive(pager, rows, rng=rng)
    assert got == rows[:4000]
    assert pager.stats.requests <= 40 + WINDOWS - 1


def test_rows_missing_after_the_plan_are_read_in_parallel_windows() -> None:
    """Ids sparser after the first page than in it: the planned windows hold too few rows, and
    the pages still needed go out together, not one after another."""
    rows = list(range(1, 101)) + list(range(103, 30_000, 3))
    pager = BoundedPager(100, 1000, parallel=4)
    pending: list[PageRequest] = []
    rounds = []  # how many requests went out together once nothing was in flight
    got: list[int] = []
    while not pager.done:
        new = pager.next_requests()
        if not pending:
            rounds.append(len(new))
        pending += new
        req = pending.pop(0)
        ids = answer(rows, req, None)
        got += ids[:pager.on_page(req, ids)]
    assert sorted(i for i in got if i <= pager.final_bound()) == rows[:1000]
    assert pager.stats.splits == 2  # the plan after the first page, then the rest
    assert rounds[:2] == [1, WINDOWS]  # the first page, then the planned windows
    assert WINDOWS in rounds[2:]  # the rest, in parallel too
    assert pager.stats.requests <= 10 + 2 * (WINDOWS - 1)


@settings(max_examples=60, deadline=None)
@given(ids=st.sets(st.integers(1, 3000), max_size=900), n=st.integers(0, 1000),
       cap=st.sampled_from([None, 7, 37]), page=st.sampled_from([10, 100]),
       seed=st.integers(0, 10))
def test_property_exact_and_independent_of_answer_order(ids: set[int], n: int, cap: int | None,
                                                        page: int, seed: int) -> None:
    rows = sorted(ids)
    for descending in (False, True):
        want = sorted(rows, reverse=descending)[:n]
        got, sent = drive(BoundedPager(page, n, parallel=4, descending=descending), rows,
                          cap=cap, rng=random.Random(seed))
        assert got == want
        again, sent_again = drive(BoundedPager(page, n, parallel=2, descending=descending),
                                  rows, cap=cap, rng=random.Random(seed + 1))
        assert again == got and sorted(sent_again, key=str) == sorted(sent, key=str)


def test_a_descending_read_mirrors_the_bounds() -> None:
    """By ``-id``: windows ``[gte, lt)`` from the top down, ordered by id descending."""
    rows = list(range(10, 100_000, 7))
    pager = BoundedPager(100, 4000, parallel=8, descending=True)
    got, sent = drive(pager, rows, rng=random.Random(2))
    assert got == rows[::-1][:4000] and pager.stats.requests <= 41
    assert all(gt is None and lte is None for gt, lte, *_ in sent)
    assert [r for r in sent if r[2] is None and r[3] is None] == [(None,) * 4 + (100,)]
    assert len({gte for *_, gte, _ in sent}) == WINDOWS  # the windows' lower bounds, and None


def test_records_are_released_once_final_and_each_once() -> None:
    rows = list(range(1, 3001))
    pager = BoundedPager(100, 950, parallel=4, descending=True)
    pending, out = pager.next_requests(), []
    rng = random.Random(5)
    while pending:
        req = pending.pop(rng.randrange(len(pending)))
        final = [r["id"] for r in pager.on_records(req, [{"id": i} for i in
                                                          answer(rows, req, None)])]
        assert all(i > 3000 - 950 for i in final)  # never a row past the N-th
        out += final
        pending += pager.next_requests()
    assert sorted(out, reverse=True) == rows[::-1][:950]  # each once


def test_rows_are_final_only_when_every_request_is_answered() -> None:
    rows = list(range(1, 2001))
    pager = BoundedPager(100, 1000, parallel=4)
    pending = pager.next_requests()
    while pending:
        req = pending.pop()
        pager.on_page(req, answer(rows, req, None))
        pending += pager.next_requests()
        bound = pager.final_bound()
        assert bound < 1000 or (pager.done and bound == 1000)
    assert pager.done and pager.final_bound() == 1000


def test_impossible_arguments_are_config_errors() -> None:
    for kwargs in ({"page_size": 0, "max_rows": 1}, {"page_size": 1, "max_rows": -1},
                   {"page_size": 1, "max_rows": 1, "parallel": 0}):
        with pytest.raises(JettiConfigError):
            BoundedPager(**kwargs)


# -- over a real socket ----------------------------------------------------------------------
def test_a_bounded_read_sends_the_pages_plus_boundaries_and_repeats_from_the_cache(
        make_sandbox: Any, tmp_path: Path) -> None:
    """40 pages of purchase items, 3 in flight: at most 40 + 2 requests, no 429, exact ids;
    the same read again (answers in another order: jitter) sends nothing."""
    sb = make_sandbox(purchases=3000, jitter_ms=20, **RATE)
    want = sandbox_ids(sb, "purchase_items", 4000)
    in_flight = 3
    options: dict[str, Any] = {"attributes": ["id"], "limit": 4000}
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     progress=False, max_in_flight=in_flight, **RATE) as client:
        df = client.read("purchase-items", **options)
        assert [int(i) for i in df["id"]] == want
        sent = sb.counters()["requests"]
        assert math.ceil(4000 / 100) <= sent <= 40 + (in_flight - 1)
        assert sb.counters()["status_429"] == 0 and client.last_stats.requests == sent
        pages = list(client.iter_pages("purchase-items", **options))
        assert sorted(r["id"] for p in pages for r in p) == want
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     progress=False, max_in_flight=8, **RATE) as client:
        df = client.read("purchase-items", **options)  # another budget, the same requests
        assert [int(i) for i in df["id"]] == want
        assert client.last_stats.requests == 0 and client.last_stats.cache_hits == sent
    assert sb.counters()["requests"] == sent


def test_a_bounded_read_beyond_the_data_and_under_a_cap(make_sandbox: Any) -> None:
    sb = make_sandbox(purchases=600, max_limit=37, rate="off")
    want = sandbox_ids(sb, "purchases", 10_000)
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False) as c:
        assert [int(i) for i in c.read("purchases", attributes=["id"], limit=5000)["id"]] == want
        got = c.read("purchases", attributes=["id"], where={"purchaseType": "dropship"},
                     limit=150)
    dropship = [r["id"] for r in sb.query(
        "SELECT id FROM purchases WHERE purchaseType = 'dropship' ORDER BY id LIMIT 150")]
    assert [int(i) for i in got["id"]] == dropship


def test_a_full_pull_of_30_pages_sends_at_most_32_requests(make_sandbox: Any) -> None:
    # no limit on the server: a busy machine's late start must not turn into a retried 429
    sb = make_sandbox(purchases=3000, rate="off")
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                     **RATE) as client:
        df = client.read("purchases", attributes=["id", "total"])
    assert [int(i) for i in df["id"]] == sandbox_ids(sb, "purchases", 3000)
    counts = sb.counters()
    assert counts["requests"] <= 32


@pytest.mark.parametrize(("order", "sql"), [
    ("-id", "id DESC"), ("purchaseStatusId", "purchaseStatusId NULLS LAST, id")])
def test_an_ordered_read_uses_windows_and_repeats_from_the_cache(
        make_sandbox: Any, tmp_path: Path, order: str, sql: str) -> None:
    """By ``-id``: 40 pages plus at most (in flight - 1) boundaries.  By a column with heavy
    values: the ranges and keyset windows; the same requests under another budget."""
    sb = make_sandbox(purchases=3000, jitter_ms=20, **RATE)
    limit = 4000 if order == "-id" else 1000
    table = "purchase_items" if order == "-id" else "purchases"
    want = [r["id"] for r in sb.query(f"SELECT id FROM {table} ORDER BY {sql} LIMIT {limit}")]
    options: dict[str, Any] = {"attributes": ["id", order.lstrip("-")], "order": order,
                               "limit": limit}
    in_flight = 3
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     progress=False, max_in_flight=in_flight, **RATE) as client:
        df = client.read(table.replace("_", "-"), **options)
        assert [int(i) for i in df["id"]] == want
        sent = sb.counters()["requests"]
        assert sb.counters()["status_429"] == 0 and client.last_stats.requests == sent
        if order == "-id":
            assert 40 <= sent <= 40 + (in_flight - 1)
        # pages by position only where they are checked: ordered by the unique id
        log = [unquote(entry["target"]) for entry in sb.log]
        assert all("order[attribute]=id&" in t for t in log if "from=" in t)
        assert any("from=" in t for t in log)  # by -id, and a heavy value's read by id
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     progress=False, max_in_flight=8, **RATE) as client:
        df = client.read(table.replace("_", "-"), **options)
        assert [int(i) for i in df["id"]] == want
        assert client.last_stats.requests == 0 and client.last_stats.cache_hits == sent
