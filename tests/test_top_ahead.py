"""The first N in a user order: a heavy value's read by id sends its position pages with its
first page (no round trip with one request in flight), with exact rows and the same requests
whatever the order of answers, the tie order of each answer or a row deleted mid-read.

The pure :class:`TopPager` is driven against an in-memory server that orders ties anew on
every request, honours or ignores ``from`` and may cap ``limit``; over a socket, the sandbox
shuffles ties per request and deletes a row of the heavy value's first page before the
position pages are answered.
"""

from __future__ import annotations

import operator
import random
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pager_support import run_top

from jetti_frames import JettiClient
from jetti_frames._pages import PageRequest
from jetti_frames._top import TopPager
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN

_OPS = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
        "$ne": operator.ne}


class Table:
    """Records ``{"id", "v"}``: by ``v`` with ties in a new order on every request, or by id;
    ``from`` honoured (``mode="from"``) or ignored; a silent ``limit`` cap."""

    def __init__(self, values: dict[int, Any], rng: random.Random, *, cap: int | None = None,
                 mode: str = "from") -> None:
        self.values, self.rng, self.cap, self.mode = dict(values), rng, cap, mode
        self.asked: list[tuple[str, int | None, int | None, int, int | None, bool]] = []

    def answer(self, req: PageRequest) -> list[dict[str, Any]]:
        self.asked.append((repr(req.where), req.gt, req.lte, req.limit, req.page, req.by_order))
        cond = (req.where or {}).get("v", {})
        rows = [{"id": i, "v": v} for i, v in self.values.items() if _match(v, cond)
                and (req.gt is None or i > req.gt) and (req.lte is None or i <= req.lte)]
        if req.by_order:
            self.rng.shuffle(rows)
            rows = sorted((r for r in rows if r["v"] is not None), key=lambda r: r["v"])
        else:
            rows.sort(key=lambda r: r["id"], reverse=req.descending)
        limit = min(req.limit, self.cap or req.limit)
        start = (req.page or 0) * limit if self.mode == "from" else 0
        return rows[start:start + limit]


def _match(value: Any, cond: Any) -> bool:
    if not isinstance(cond, dict):
        return value == cond
    return all(value is not None and _OPS[op](value, arg) for op, arg in cond.items())


def first_n(values: dict[int, Any], n: int) -> list[int]:
    present = sorted((i for i, v in values.items() if v is not None), key=lambda i: (values[i], i))
    return (present + sorted(i for i, v in values.items() if v is None))[:n]


def heavy_values() -> dict[int, int]:
    """The benchmark's shape: 8 rows of 10, 26 of 12, then 1242 of 13 and 1528 of 15."""
    rng = random.Random(7)
    values = [10] * 8 + [12] * 26 + [13] * 1242 + [15] * 1528
    rng.shuffle(values)
    return {100_000 + 3 * k + rng.randrange(3): v for k, v in enumerate(values)}


def test_the_heavy_values_first_page_goes_with_its_position_pages() -> None:
    """One range (its held position page withdrawn: the range page shows 13 heavy), then
    the value's first page and two position pages in one round; 12 requests in all, the
    same in every order of answers and ties."""
    values = heavy_values()
    asked = []
    for seed in range(3):
        rng = random.Random(seed)
        table = Table(values, rng)
        pager = TopPager("v", 1000, 100, parallel=4, few_values=True)
        first, position = pager.next_requests()
        assert (position.page, position.limit, position.hold is not None) == (1, 99, True)
        pager.on_page(first, table.answer(first))
        assert position.hold is not None and position.hold.withdrawn
        pager.on_withdrawn(position)
        heavy = pager.next_requests()
        assert [(r.where, r.page) for r in heavy] == [({"v": 13}, None), ({"v": 13}, 1),
                                                      ({"v": 13}, 2)]
        for req in heavy:
            pager.on_page(req, table.answer(req))
        assert run_top(pager, table, rng) == first_n(values, 1000)
        assert pager.stats.requests == len(table.asked) <= 12
        asked.append(sorted(table.asked, key=repr))
    assert asked[0] == asked[1] == asked[2]


def test_a_value_with_fewer_rows_than_needed_keeps_its_windows_within_its_ids() -> None:
    """The first 4000 of 8 + 26 + 2484 + 3056 rows: 13 holds fewer rows than needed, so its
    read asks for its highest id with its first page and cuts four windows below it, none
    empty; exact, and the same requests in any order of answers and ties."""
    rng = random.Random(7)
    values_list = [10] * 8 + [12] * 26 + [13] * 2484 + [15] * 3056
    rng.shuffle(values_list)
    values = {100_000 + 3 * k + rng.randrange(3): v for k, v in enumerate(values_list)}
    asked = []
    for seed in range(3):
        table = Table(values, random.Random(seed))
        pager = TopPager("v", 4000, 100, parallel=4)
        assert run_top(pager, table, random.Random(seed)) == first_n(values, 4000)
        probes = [a for a in table.asked if a[0] == "{'v': 13}" and a[3] == 1]
        assert len(probes) == 1  # the value's highest id, one row
        empty = [a for a in table.asked if a[0] == "{'v': 13}" and a[1] is not None
                 and not Table(values, random.Random(0)).answer(
                     PageRequest(0, a[3], gt=a[1], lte=a[2], where={"v": 13}))]
        assert not empty  # no window cut past the value's last id
        asked.append(sorted(table.asked, key=repr))
    assert asked[0] == asked[1] == asked[2]


def light_then_heavy() -> dict[int, int]:
    """The benchmark's shape at 6000 purchases, smaller: 65 rows of four light values, then
    900 of 13 and 1200 of 15."""
    rng = random.Random(11)
    values = [4] * 1 + [7] * 2 + [10] * 13 + [12] * 49 + [13] * 900 + [15] * 1200
    rng.shuffle(values)
    return {100_000 + 3 * k + rng.randrange(3): v for k, v in enumerate(values)}


@pytest.mark.parametrize("few_values", [True, False])
def test_the_first_ranges_position_page_shows_a_heavy_value_a_round_trip_sooner(
        few_values: bool) -> None:
    """The first range page ends with 35 rows of 13, which alone look light.  On an order
    of few values its position page (held until the range page is in) goes on with 13:
    13 is read by id at once.  Without it, a range at 13 comes first and shows the same."""
    values = light_then_heavy()
    table = Table(values, random.Random(1))
    pager = TopPager("v", 1500, 100, parallel=4, few_values=few_values)
    first, *position = pager.next_requests()
    pager.on_page(first, table.answer(first))
    if few_values:
        [page] = position
        assert page.hold is not None and page.hold.decided and not page.hold.withdrawn
        assert not pager.next_requests()  # 13's read waits for the position page
        pager.on_page(page, table.answer(page))
    else:
        assert not position
        [again] = pager.next_requests()
        assert again.where == {"v": {"$gte": 13}}
        pager.on_page(again, table.answer(again))
    heavy = pager.next_requests()
    assert heavy and all(r.where == {"v": 13} and not r.by_order for r in heavy)
    for req in heavy:
        pager.on_page(req, table.answer(req))
    assert run_top(pager, table, random.Random(1)) == first_n(values, 1500)
    ranges = [a[0] for a in table.asked if a[5] and a[4] is None]
    assert ranges == ["{'v': {'$ne': None}}", *([] if few_values else ["{'v': {'$gte': 13}}"]),
                      "{'v': {'$gt': 13}}"]


def test_the_next_heavy_value_starts_while_the_one_before_drains() -> None:
    """13 holds 900 of the 1435 rows needed after the light ones: its highest id says so
    with its first page, so the range after it goes out at once.  That range is all 15:
    15's first page goes out before 13's last answer is in, its windows only after (they
    are cut for the rows 13 leaves).  Answers in the order sent, like a server's."""
    values = light_then_heavy()
    table = Table(values, random.Random(2))
    pager = TopPager("v", 1500, 100, parallel=4, few_values=True)
    pending: list[PageRequest] = []
    events: list[tuple[str, PageRequest]] = []
    while not pager.done:
        sent = pager.next_requests()
        events += [("sent", r) for r in sent]
        pending += sent
        req = pending.pop(0)
        if req.hold is not None and req.hold.withdrawn:
            pager.on_withdrawn(req)
            continue
        pager.on_page(req, table.answer(req))
        events.append(("answered", req))
    assert [int(r["id"]) for r in pager.result()] == first_n(values, 1500)
    last_of_13 = max(k for k, (what, r) in enumerate(events)
                     if what == "answered" and r.where == {"v": 13})
    fifteen = [k for k, (what, r) in enumerate(events) if what == "sent" and r.where == {"v": 15}]
    after = next(k for k, (what, r) in enumerate(events)
                 if what == "sent" and r.where == {"v": {"$gt": 13}})
    assert after < last_of_13 and fifteen[0] < last_of_13
    windows = [k for k in fifteen if events[k][1].gt is not None]
    assert windows and min(windows) > last_of_13


def test_no_position_pages_after_a_range_page_shorter_than_asked() -> None:
    """A server capping ``limit`` at 37: the range page may be the end of the rows (its cap
    is not known yet), so the heavy value is read by id alone, exactly."""
    values = heavy_values()
    table = Table(values, random.Random(3), cap=37)
    pager = TopPager("v", 1000, 100, parallel=4)
    assert run_top(pager, table, random.Random(3)) == first_n(values, 1000)
    assert not any(a[4] is not None for a in table.asked)
    few = {i: 1 for i in range(5, 65)}  # 60 rows in all: one value, one range page
    table = Table(few, random.Random(3))
    pager = TopPager("v", 900, 100, parallel=4)
    assert run_top(pager, table, random.Random(3)) == first_n(few, 900)
    assert not any(a[4] is not None for a in table.asked)


@settings(max_examples=120, deadline=None)
@given(counts=st.lists(st.integers(1, 450), min_size=1, max_size=6),
       n=st.integers(1, 1500), cap=st.sampled_from([None, 37]),
       mode=st.sampled_from(["from", "ignore"]), seed=st.integers(0, 2**16),
       few_values=st.booleans())
def test_exact_and_the_same_requests_in_any_order(counts: list[int], n: int, cap: int | None,
                                                  mode: str, seed: int,
                                                  few_values: bool) -> None:
    """Values of any size (a heavy one may hold fewer rows than needed: the range after it
    is decided by its pages' contents), ``from`` honoured or ignored, a cap below the page."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, 4 * sum(counts) + 1), sum(counts))
    values = dict(zip(ids, [v for v, c in enumerate(counts) for _ in range(c)], strict=True))
    asked = []
    for run in range(2):
        table = Table(values, random.Random(seed + run), cap=cap, mode=mode)
        pager = TopPager("v", n, 100, parallel=4, few_values=few_values)
        assert run_top(pager, table, random.Random(seed + run)) == first_n(values, n)
        assert pager.stats.requests == len(table.asked)
        asked.append(sorted(table.asked, key=repr))
    assert asked[0] == asked[1]


def test_a_row_deleted_after_the_first_page_costs_requests_never_rows() -> None:
    """A row of the value's first page is deleted before its position pages are answered:
    they start a row later, no longer overlap and are dropped; the value is read on by id."""
    values = heavy_values()
    undisturbed = TopPager("v", 1000, 100, parallel=4)
    assert run_top(undisturbed, Table(values, random.Random(1)), random.Random(1)) == first_n(
        values, 1000)
    table = Table(values, random.Random(2))
    pager = TopPager("v", 1000, 100, parallel=4)
    [first] = pager.next_requests()
    pager.on_page(first, table.answer(first))
    page, *positions = pager.next_requests()
    rows = table.answer(page)
    pager.on_page(page, rows)
    del table.values[int(rows[5]["id"])]  # read already: it stays in the result
    for req in positions:
        pager.on_page(req, table.answer(req))
    assert run_top(pager, table, random.Random(2)) == first_n(values, 1000)
    assert any(a[1] == rows[-1]["id"] for a in table.asked)  # on by id from the first page
    assert len(table.asked) <= undisturbed.stats.requests + len(positions)


def test_over_a_socket_ties_shuffled_and_a_row_deleted(make_sandbox: Any) -> None:
    """1500 purchases by purchaseStatusId: 18 rows of light values, then 600 of 13.  The
    first 500 (13 holds the rest), then the first 720 (13 holds too few: the range after it),
    with a row of 13's first page deleted before its position pages are computed."""
    sb: Sandbox = make_sandbox(purchases=1500, max_limit=100, ties="shuffle")
    options: dict[str, Any] = {"attributes": ["id", "purchaseStatusId"],
                               "order": "purchaseStatusId", "page_size": 100}

    def want(limit: int) -> list[int]:
        return [r["id"] for r in sb.query(
            "SELECT id FROM purchases ORDER BY purchaseStatusId NULLS LAST, id LIMIT ?",
            (limit,))]

    def read(limit: int) -> tuple[list[int], list[str]]:
        before = len(sb.log)
        with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False,
                         progress=False) as c:
            got = [int(i) for i in c.read("purchases", limit=limit, **options)["id"]]
            assert c.last_stats.status_429 == 0
            assert c.last_stats.requests == len(sb.log) - before
        return got, [unquote(e["target"]) for e in list(sb.log)[before:]]

    def by_order(log: list[str]) -> list[str]:
        return [t for t in log if "order[attribute]=purchaseStatusId" in t]

    expected = want(500)
    got, log = read(500)
    assert got == expected
    assert len(by_order(log)) == 1 and len([t for t in log if "from=" in t]) == 2
    assert len(log) <= 1 + 5 + 1  # the range, 5 pages of 13 and one window boundary

    thirteen = [r["id"] for r in sb.query(
        "SELECT id FROM purchases WHERE purchaseStatusId = 13 ORDER BY id LIMIT 100")]
    expected = want(720)
    # the range, then 13's first page: its 6th row goes before the position pages are read
    sb.after_requests(2, lambda s: s.delete("purchases", [thirteen[5]]))
    got, log = read(720)
    assert thirteen[5] in got and got == expected  # read before it was deleted
    assert len(by_order(log)) == 2  # the range after 13 (600 rows, 702 needed)
    # 13's, and 15's: sized (before 13's count is known) for up to 702 - 82 rows
    assert len([t for t in log if "from=" in t]) == 2 + 2
    assert any(f"where[id][$gt]={thirteen[-1]}&" in t for t in log)  # on by id


def test_over_a_socket_light_values_then_two_heavy_ones(make_sandbox: Any,
                                                        tmp_path: Any) -> None:
    """6000 purchases by purchaseStatusId: 65 rows of four light values, then 2471 of 13 and
    3052 of 15.  The first 2600 are exact with no range at 13 (the position page shows it
    heavy), ties shuffled and answers jittered, and a repeated read is all cache hits."""
    sb: Sandbox = make_sandbox(purchases=6000, max_limit=100, ties="shuffle", jitter_ms=20,
                               rate="off")
    want = [r["id"] for r in sb.query(
        "SELECT id FROM purchases ORDER BY purchaseStatusId NULLS LAST, id LIMIT 2600")]
    options: dict[str, Any] = {"attributes": ["id", "purchaseStatusId"], "limit": 2600,
                               "order": "purchaseStatusId", "page_size": 100}
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     progress=False, get_rate=1000.0) as c:
        before = len(sb.log)
        assert [int(i) for i in c.read("purchases", **options)["id"]] == want
        log = [unquote(e["target"]) for e in list(sb.log)[before:]]
        sent = c.last_stats.requests
        assert c.last_stats.status_429 == 0 and sent == len(log)
        assert [c.read("purchases", **options)["id"].tolist()] == [want]
        assert c.last_stats.requests == 0 and c.last_stats.cache_hits == sent
    ranges = [t for t in log if "order[attribute]=purchaseStatusId" in t and "from=" not in t]
    assert len(ranges) == 2 and "[$gt]=13&" in ranges[1]  # none at 13 ($gte)
    # 26 pages of rows; the first range's position page, 13's probe, the range after 13 and
    # four window ends; 15's read sized from 13's highest id: no probe, no position pages
    assert sent <= 26 + 8
