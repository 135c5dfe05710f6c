"""Position pages answer the ranges of a read in a user order when, and only when, they hold
exactly what the range would: pure checks of the plan and of the rule against every range,
the pager against a server that ignores ``from`` or caps ``limit``, and over a socket a slow
server whose first round trip carries the position pages, with ties shuffled and a row deleted
mid-read."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pager_support import run_top
from test_top_ahead import Table, first_n

from jetti_frames import JettiClient
from jetti_frames._positions import OVERLAP, behind, continuation, plan
from jetti_frames._top import TopPager
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 120), rows=st.integers(0, 3000))
def test_each_page_starts_within_the_one_before_and_the_last_reaches_the_row(
        size: int, rows: int) -> None:
    """Pages of 15 rows or fewer may find no page that moves on: ranges read the rest."""
    end = size - 1
    for frm, limit in plan(size, rows):
        start = frm * limit
        assert 1 <= limit <= size and start <= end - OVERLAP + 1 and start + limit - 1 > end
        end = start + limit - 1
    assert end >= rows or size <= 15


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(0, 30), min_size=1, max_size=80),
       offset=st.integers(0, 80), limit=st.integers(1, 40), start=st.integers(-1, 31),
       inclusive=st.booleans(), descending=st.booleans(), seed=st.integers(0, 2**16))
def test_a_page_taken_holds_what_the_range_would_return(
        values: list[int], offset: int, limit: int, start: int, inclusive: bool,
        descending: bool, seed: int) -> None:
    """Ties in a new order for the page and for the range: whatever the page's position,
    the rows it gives are the range's first rows (the last value's rows as many, as a set
    only when the range's answer holds all of them)."""
    rng = random.Random(seed)
    rows = [{"id": i, "v": v} for i, v in enumerate(values)]

    def ordered() -> list[dict[str, Any]]:
        out = rows[:]
        rng.shuffle(out)
        return sorted(out, key=lambda r: r["v"], reverse=descending)

    page = ordered()[offset:offset + limit]
    got = continuation(page, "v", start, inclusive=inclusive, descending=descending,
                       kind="integer")
    if got is None:
        return

    def after(v: int) -> bool:
        return (v < start if descending else v > start) or (inclusive and v == start)

    answer = [r for r in ordered() if after(r["v"])][:len(got)]
    assert [r["v"] for r in got] == [r["v"] for r in answer]
    last = got[-1]["v"]
    assert ({r["id"] for r in got if r["v"] != last}
            == {r["id"] for r in answer if r["v"] != last})
    assert len({r["id"] for r in got}) == len(got)


def test_from_ignored_or_limit_capped_costs_a_few_requests_never_rows() -> None:
    rng = random.Random(4)
    values = {i: rng.randrange(100_000) for i in range(1, 2001)}
    plain = TopPager("v", 1200, 100, parallel=4)
    assert run_top(plain, Table(values, random.Random(1)), random.Random(1)) == first_n(
        values, 1200)
    for mode, cap in (("ignore", None), ("from", 37), ("ignore", 37)):
        table = Table(values, random.Random(2), mode=mode, cap=cap)
        pager = TopPager("v", 1200, 100, parallel=4, positions=True)
        assert run_top(pager, table, random.Random(2)) == first_n(values, 1200)
        ranges = [a for a in table.asked if a[4] is None]
        assert len(table.asked) - len(ranges) <= 4 + 2, (mode, cap)  # then by ranges
    table = Table(values, random.Random(3))
    pager = TopPager("v", 1200, 100, parallel=4, positions=True)
    assert run_top(pager, table, random.Random(3)) == first_n(values, 1200)
    assert len([a for a in table.asked if a[4] is None]) == 1  # every later range answered


def test_over_a_socket_a_slow_server_sees_the_position_pages_before_it_answers(
        make_sandbox: Any) -> None:
    """1000 purchases by ``-total`` at 1200 ms, ties shuffled: the round trip of the first
    range carries position pages; a purchase not yet read is deleted mid-read (every later
    position moves up a row): the rows are exact, the cost at most a range."""
    sb: Sandbox = make_sandbox(purchases=3000, max_limit=100, latency_ms=1200,
                               ties="shuffle")
    query = "SELECT id FROM purchases ORDER BY total IS NULL, total DESC, id LIMIT 1000"
    doomed = sb.query(query)[600]["id"]
    sb.after_requests(3, lambda s: s.delete("purchases", [doomed]))
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                     page_size=100) as c:
        got = [int(i) for i in c.read("purchases", attributes=["id", "total"],
                                      order="-total", limit=1000)["id"]]
        assert c.last_stats.status_429 == 0
    assert doomed not in got and got == [r["id"] for r in sb.query(query)]
    log = sorted(sb.log, key=lambda e: e["time"] - e["seconds"])
    first = log[0]
    assert "from=" not in first["target"]
    early = [e for e in log if e["time"] - e["seconds"] < first["time"]]
    assert ["from=" in e["target"] for e in early[1:]] == [True] * (len(early) - 1)
    assert len(early) >= 2
    pages = len(list(plan(100, 1000)))
    assert len(log) <= 1 + pages + 1 + 1  # the first range, the plan, one range after the
    # deletion moved the positions, and one that finds the last value's end


def test_values_compare_as_their_kind_reads_them() -> None:
    """A page whose strings sort one way and whose instants sort the other is read by its
    instants (as the server orders them), numeric text by its numbers; a value its kind
    cannot read is never taken."""
    page = [{"id": 1, "v": "2024-05-01T10:00:00+02:00"}, {"id": 2, "v": "2024-05-01T09:00:00Z"},
            {"id": 3, "v": "2024-05-01T09:30:00.500Z"}]
    got = continuation(page, "v", "2024-05-01T08:30:00Z", inclusive=True, descending=False,
                       kind="datetime")
    assert got is not None and [r["id"] for r in got] == [2, 3]
    # by strings the first row ("...T10...") would not come before the start: never taken
    assert continuation(page, "v", "2024-05-01T09:00:00Z", inclusive=False,
                        descending=False, kind="datetime") == [page[2]]
    assert continuation(page, "v", 5, inclusive=True, descending=False, kind="datetime") is None
    assert behind(page, "v", 5, descending=False, kind="datetime")
    assert continuation([{"id": 1, "v": 1}, {"id": 2, "v": "x"}], "v", 0, inclusive=True,
                        descending=False, kind="number") is None
    money = [{"id": 1, "v": "1000.00"}, {"id": 2, "v": "404.64"}, {"id": 3, "v": "99.50"}]
    assert continuation(money, "v", "500", inclusive=False, descending=True,
                        kind="number") == money[1:]
    assert continuation(money, "v", "500", inclusive=False, descending=False,
                        kind="number") is None  # as numbers, not in ascending order
