"""The first N records in a user order, several requests at once (position pages over numbers
and dates, value windows over integers): exact whatever the values (ties, nulls, either
direction, a page cap), the same requests in any order of answers, and far fewer round trips
than one range after another."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pager_support import run_top
from test_paging import SimTable, expected_top

from jetti_frames import JettiClient
from jetti_frames._top import TopPager
from jetti_frames._windows import ValueWindows
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN


def rounds(pager: Any, table: SimTable) -> int:
    """Round trips when every request out is answered in each: a slow server's view."""
    n = 0
    while not pager.done:
        out = pager.next_requests()
        assert out, "the pager stalled"
        n += 1
        for req in out:
            pager.on_page(req, table.answer(req))
    return n


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(0, 3).map(float),
                                 st.integers(0, 5000).map(float),
                                 # -0.0 ties with 0.0 and asks for itself as "-0"
                                 st.floats(-50, 50, allow_nan=False, allow_subnormal=False)
                                 .map(lambda v: v + 0.0)),
                       max_size=600),
       n=st.integers(0, 700), page=st.sampled_from([10, 30, 100]),
       cap=st.sampled_from([None, 7]), descending=st.booleans(), nulls_first=st.booleans(),
       seed=st.integers(0, 2**16), kind=st.sampled_from(["number", "integer"]))
def test_exact_and_the_same_requests_in_any_order(values: list[Any], n: int, page: int,
                                                  cap: int | None, descending: bool,
                                                  nulls_first: bool, seed: int,
                                                  kind: str) -> None:
    table = {i: v if v is None or kind == "number" else int(v)
             for i, v in enumerate(values, start=1)}
    asked = []
    for run in range(2):
        rng = random.Random(seed + run)
        sim = SimTable(table, descending=descending, cap=cap, rng=rng)
        pager = ValueWindows("v", n, page, kind=kind, descending=descending,
                             nulls_first=nulls_first, parallel=4)
        assert run_top(pager, sim, rng) == expected_top(table, n, descending, nulls_first)
        assert pager.stats.requests == len(sim.asked)
        asked.append(sorted(sim.asked, key=repr))
    assert asked[0] == asked[1]


def test_distinct_values_in_a_few_round_trips() -> None:
    """4000 of 6000 distinct totals: one range after another takes 41 round trips; position
    pages take 12, for five requests more (a page starts at a multiple of its size and repeats
    three rows of the one before, so it adds about 87 rows of 100)."""
    rng = random.Random(3)
    totals = {i: round(rng.uniform(0, 900), 2) for i in range(1, 6001)}
    got = {}
    for name, pager in (("one", TopPager("v", 4000, 100, descending=True)),
                        ("windows", ValueWindows("v", 4000, 100, kind="number",
                                                 descending=True, parallel=4))):
        sim = SimTable(totals, descending=True, cap=None, rng=random.Random(1))
        got[name] = (rounds(pager, sim), len(sim.asked))
        assert [int(r["id"]) for r in pager.result()] == expected_top(totals, 4000, True, False)
    assert got["one"][0] >= 40 and got["windows"][0] <= 14
    assert got["windows"][1] <= got["one"][1] + 5
    assert ValueWindows("v", 900, 100, kind="string").lanes == 1


def test_dates_are_read_with_position_pages() -> None:
    """ISO date-times with a zone, and nulls: exact, and the ranges after the first are
    answered by position pages (the values seldom tie)."""
    rng = random.Random(5)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    when = {i: (start + timedelta(minutes=rng.randrange(500_000))).isoformat(
        timespec="milliseconds").replace("+00:00", "Z") for i in range(1, 3001)}
    when.update({i: None for i in range(3001, 3101)})
    sim = SimTable(when, descending=False, cap=None, rng=random.Random(2))
    pager = ValueWindows("v", 3050, 100, kind="datetime", parallel=4)
    assert run_top(pager, sim, random.Random(2)) == expected_top(when, 3050, False, False)
    ranges = [a for a in sim.asked if a[4] is None and a[5]]
    assert pager.lanes == 1 and len(ranges) <= 3, ranges  # the first, the one that finds
    # the end of the values, and one a tie may take
    assert len(sim.asked) <= len(ranges) + 3000 / 87 + 1  # and the nulls by id


def test_integers_are_cut_into_windows() -> None:
    """Integers tie in runs: their values are cut into windows read at once."""
    rng = random.Random(5)
    quantity = {i: rng.randrange(3000) for i in range(1, 3001)}
    sim = SimTable(quantity, descending=False, cap=None, rng=random.Random(2))
    pager = ValueWindows("v", 2500, 100, kind="integer", parallel=4, few_values=True)
    assert run_top(pager, sim, random.Random(2)) == expected_top(quantity, 2500, False, False)
    assert pager.lanes >= 4
    ends = [a[0] for a in sim.asked if "$lte" in a[0]]
    assert ends and all(isinstance(eval(e)["v"]["$lte"], int) for e in ends)


def test_over_a_socket_by_total_descending(make_sandbox: Any, tmp_path: Path) -> None:
    """The first 1000 purchases by ``-total`` (nulls first, as PostgreSQL puts them for a
    descending order) are exact with ties shuffled and answers jittered; a repeated read is
    all cache hits."""
    sb: Sandbox = make_sandbox(purchases=3000, max_limit=100, rate="off", jitter_ms=20)
    want = [r["id"] for r in sb.query(
        "SELECT id FROM purchases ORDER BY total DESC NULLS FIRST, id LIMIT 1000")]
    options: dict[str, Any] = {"attributes": ["id", "total"], "limit": 1000,
                               "order": {"attribute": "total", "descending": True,
                                         "nullsFirst": True}, "page_size": 100}
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     progress=False, get_rate=1000.0) as c:
        assert [int(i) for i in c.read("purchases", **options)["id"]] == want
        sent = c.last_stats.requests
        assert c.last_stats.status_429 == 0 and sent <= 10 + 4
        assert [int(i) for i in c.read("purchases", **options)["id"]] == want
        assert c.last_stats.requests == 0 and c.last_stats.cache_hits == sent


@pytest.mark.parametrize("seed", [2, 3, 98, 199, 262])
def test_heavy_integer_values_send_the_same_requests_in_any_order(seed: int) -> None:
    """Tables where a heavy value's read by id once sent a position page more, or sized the
    range after it differently, as answers came in one order or another."""
    g = random.Random(seed)
    size, mode = g.randrange(600), g.randrange(3)
    values = [None if g.random() < 0.05 else
              (g.randrange(4) if mode == 0 else g.randrange(5000) if mode == 1
               else g.choice([g.randrange(4), g.randrange(60)])) for _ in range(size)]
    table = dict(enumerate(values, start=1))
    n, page, cap = g.randrange(700), g.choice([10, 30, 100]), g.choice([None, 7])
    descending, nulls_first, base = g.random() < .5, g.random() < .5, g.randrange(2**16)
    asked = []
    for run in range(4):
        rng = random.Random(base + run)
        sim = SimTable(table, descending=descending, cap=cap, rng=rng)
        pager = ValueWindows("v", n, page, kind="integer", descending=descending,
                             nulls_first=nulls_first, parallel=4)
        assert run_top(pager, sim, rng) == expected_top(table, n, descending, nulls_first)
        asked.append(sorted(sim.asked, key=repr))
    assert all(a == asked[0] for a in asked)
