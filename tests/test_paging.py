"""The pager against a simulated in-memory server: caps, inserts, updates, deletes, windows."""

from __future__ import annotations

import itertools
import math
import operator
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pager_support import run_top

from jetti_frames._bounded import BoundedPager
from jetti_frames._fanout import Fanout, Stream, open_streams
from jetti_frames._top import TopPager
from jetti_frames.errors import JettiConfigError, JettiDataError
from jetti_frames.paging import Pager, PageRequest


class SimServer:
    """Answers a PageRequest the way the Jetti list endpoint would (ids only)."""

    def __init__(self, ids: list[int], cap: int | None = None) -> None:
        self.rows: dict[int, int] = {i: 0 for i in ids}  # id -> version
        self.cap = cap
        self.served = 0

    def insert(self, n: int) -> list[int]:
        top = max(self.rows, default=0)
        new = list(range(top + 1, top + 1 + n))
        self.rows.update(dict.fromkeys(new, 0))
        return new

    def update(self, i: int) -> None:
        self.rows[i] += 1

    def answer(self, req: PageRequest) -> list[int]:
        self.served += 1
        limit = min(req.limit, self.cap or req.limit)
        sel = sorted((i for i in self.rows if (req.gt is None or i > req.gt)
                      and (req.lte is None or i <= req.lte)), reverse=req.descending)
        start = (req.page or 0) * limit  # a position page: from x limit
        return sel[start:start + limit]


def check_windows(pager: Pager, got: list[int]) -> None:
    """Pending windows never overlap and never cover an id already delivered."""
    wins = pager.windows()
    for (_, hi), (lo, _) in itertools.pairwise(wins):
        assert hi is not None and lo is not None and hi <= lo, wins
    for i in got:
        for lo, hi in wins:
            assert not ((lo is None or i > lo) and (hi is None or i <= hi)), (i, wins)


def drive(pager: Pager, server: SimServer, *, rng: random.Random | None = None,
          between: Callable[[int], None] | None = None, peak: list[int] | None = None,
          ) -> list[int]:
    """Run a pull; pages are answered in random order when ``rng`` is given."""
    pending: list[PageRequest] = []
    got: list[int] = []
    step = 0
    asked: set[tuple[object, ...]] = set()
    while not pager.done:
        for req in pager.next_requests():
            shape = (req.gt, req.lte, req.descending, req.limit)
            assert shape not in asked, req  # a repeat could be answered from a cache
            asked.add(shape)
            pending.append(req)
        assert pending, "the pager stalled"
        assert len(pending) == pager.in_flight <= pager.parallel
        if peak is not None:
            peak.append(len(pending))
        req = pending.pop(rng.randrange(len(pending)) if rng else 0)
        if between:
            between(step)
        ids = server.answer(req)
        keep = pager.on_page(req, ids)
        assert 0 <= keep <= len(ids)
        got += ids[:keep]
        check_windows(pager, got)
        step += 1
        assert step < 10_000
    assert not pending
    return got


# -- keyset --------------------------------------------------------------------------------
@pytest.mark.parametrize("parallel", [1, 2, 4, 8])
@pytest.mark.parametrize("cap", [None, 37, 100, 1])
def test_cap_under_page_size_loses_nothing(parallel: int, cap: int | None) -> None:
    server = SimServer(list(range(1, 1001)), cap=cap)
    pager = Pager(100, parallel=parallel)
    got = drive(pager, server, rng=random.Random(parallel))
    assert sorted(got) == list(range(1, 1001))
    assert len(got) == len(set(got))
    assert pager.stats.requests == server.served
    assert pager.cap == (cap or 100)


def test_cap_37_sequential_requests_count() -> None:
    server = SimServer(list(range(1, 1001)), cap=37)
    pager = Pager(100)
    got = drive(pager, server)
    assert got == list(range(1, 1001))
    # 27 full pages of 37 and a short one of 1: the short page ends it, no empty request
    assert pager.stats.requests == math.ceil(1000 / 37)
    assert pager.stats.wasted == 0


def test_exact_multiple_of_page_size() -> None:
    server = SimServer(list(range(1, 301)))
    pager = Pager(100)
    assert drive(pager, server) == list(range(1, 301))
    assert pager.stats.requests == 4  # three full pages and the empty one that proves the end
    assert pager.stats.wasted == 1


def test_short_first_page_is_not_taken_as_the_end() -> None:
    # 37 rows under limit 100: maybe a cap, maybe the end; one more request decides
    server = SimServer(list(range(1, 38)))
    pager = Pager(100)
    assert drive(pager, server) == list(range(1, 38))
    assert pager.stats.requests == 2


@pytest.mark.parametrize("parallel", [1, 4])
def test_empty_result(parallel: int) -> None:
    server = SimServer([])
    pager = Pager(100, parallel=parallel)
    assert drive(pager, server) == []
    assert pager.stats.requests == (1 if parallel == 1 else 2)


@pytest.mark.parametrize("parallel", [1, 4])
def test_single_row(parallel: int) -> None:
    server = SimServer([42])
    pager = Pager(100, parallel=parallel)
    assert drive(pager, server, rng=random.Random(1)) == [42]
    assert pager.stats.requests <= 3


@pytest.mark.parametrize("parallel", [1, 4])
def test_sparse_and_clustered_ids(parallel: int) -> None:
    rng = random.Random(7)
    ids = sorted(set(rng.sample(range(1, 10**7), 800) + list(range(5000, 5600))))
    server = SimServer(ids, cap=37)
    pager = Pager(100, parallel=parallel)
    got = drive(pager, server, rng=rng)
    assert sorted(got) == ids and len(got) == len(ids)


def test_parallel_keeps_requests_in_flight_with_little_waste() -> None:
    server = SimServer(list(range(1, 5001)))
    pager = Pager(100, parallel=4)
    peak: list[int] = []
    got = drive(pager, server, rng=random.Random(3), peak=peak)
    assert sorted(got) == list(range(1, 5001))
    assert pager.stats.requests <= 50 + 2
    assert sum(peak) / len(peak) >= 3.3  # on average, at least 3.3 of 4 slots busy


@pytest.mark.parametrize("parallel", [1, 4])
def test_inserts_while_paging_are_read_once(parallel: int) -> None:
    server = SimServer(list(range(1, 1001)), cap=37)
    before = set(server.rows)
    inserted: list[int] = []

    def between(step: int) -> None:
        if step in (0, 3, 10):
            inserted.extend(server.insert(25))

    pager = Pager(100, parallel=parallel)
    got = drive(pager, server, rng=random.Random(5), between=between)
    assert len(got) == len(set(got))
    assert before <= set(got)
    assert set(got) <= before | set(inserted)
    if parallel == 1:  # one open-ended stream reads what was inserted before its last page
        assert set(inserted) <= set(got)


def test_updates_while_paging_change_nothing_in_the_id_set() -> None:
    server = SimServer(list(range(1, 501)), cap=37)
    versions: dict[int, int] = {}
    pager = Pager(100, parallel=4)
    rng = random.Random(11)
    pending: list[PageRequest] = []
    while not pager.done:
        pending += pager.next_requests()
        req = pending.pop(rng.randrange(len(pending)))
        for i in rng.sample(sorted(server.rows), 30):
            server.update(i)
        ids = server.answer(req)
        for i in ids[:pager.on_page(req, ids)]:
            assert i not in versions
            versions[i] = server.rows[i]  # value as of this page's fetch
    assert sorted(versions) == list(range(1, 501))
    assert any(v > 0 for v in versions.values())


def test_deletes_while_paging_never_duplicate() -> None:
    server = SimServer(list(range(1, 801)), cap=37)
    deleted: set[int] = set()

    def between(step: int) -> None:
        for i in range(step * 17 % 800 + 1, step * 17 % 800 + 4):
            if server.rows.pop(i, None) is not None:
                deleted.add(i)

    got = drive(Pager(100, parallel=4), server, rng=random.Random(2), between=between)
    assert len(got) == len(set(got))
    assert set(range(1, 801)) - deleted <= set(got)


@pytest.mark.parametrize("cap", [None, 37])
@pytest.mark.parametrize("n", [0, 1, 36, 37, 38, 99, 100, 101, 200, 999, 1000, 1001, 5000])
def test_max_rows_boundaries(n: int, cap: int | None) -> None:
    server = SimServer(list(range(1, 1001)), cap=cap)
    pager = Pager(100, max_rows=n, parallel=8)
    got = drive(pager, server)
    assert got == list(range(1, min(n, 1000) + 1))
    effective = cap or 100
    if n <= 1000:
        assert pager.stats.requests == math.ceil(n / effective)
    else:
        assert pager.stats.requests <= math.ceil(1000 / effective) + 1
    assert pager.in_flight == 0


def test_max_rows_asks_only_for_what_is_left() -> None:
    pager = Pager(100, max_rows=130)
    [r] = pager.next_requests()
    pager.on_page(r, list(range(1, 101)))
    [r] = pager.next_requests()
    assert (r.gt, r.limit) == (100, 30)


def test_windows_stay_disjoint_after_the_probe() -> None:
    pager = Pager(100, parallel=4)
    first, probe = pager.next_requests()
    assert probe.descending and first.gt is None and first.lte is None
    assert pager.on_page(probe, list(range(10_000, 9_900, -1))) == 100
    assert pager.on_page(first, list(range(1, 101))) == 100
    reqs = pager.next_requests()
    assert len(reqs) == 4 and pager.stats.splits == 1
    wins = pager.windows()
    assert wins[0][0] == 100 and wins[-1][1] == 9_900  # from the first page to the probe
    for (_, hi), (lo, _) in itertools.pairwise(wins):
        assert hi == lo  # contiguous: no gap, no overlap
    # windows of whole pages: 98 pages between the first page and the probe, about 8 windows
    assert [(r.gt, r.lte) for r in reqs] == [(100, 1400), (1400, 2700), (2700, 4000),
                                             (4000, 5300)]


@pytest.mark.parametrize("cap", [None, 37])
def test_the_same_data_gives_the_same_requests_whatever_the_answer_order(
        cap: int | None) -> None:
    rng = random.Random(4)
    ids = sorted(set(rng.sample(range(1, 40_000), 3000) + list(range(20_000, 21_500))))
    shapes = []
    for seed in range(6):
        server = SimServer(ids, cap=cap)
        pager = Pager(100, parallel=2 + seed % 4)
        asked: list[tuple[object, ...]] = []
        pending: list[PageRequest] = []
        order = random.Random(seed)
        while not pager.done:
            for req in pager.next_requests():
                asked.append((req.gt, req.lte, req.descending, req.limit))
                pending.append(req)
            req = pending.pop(order.randrange(len(pending)))
            answer = server.answer(req)
            pager.on_page(req, answer)
        shapes.append(sorted(asked, key=repr))
    assert all(s == shapes[0] for s in shapes)  # a repeated pull can be served from a cache


def test_unordered_page_is_refused() -> None:
    pager = Pager(10)
    [r] = pager.next_requests()
    with pytest.raises(ValueError, match="ordered"):
        pager.on_page(r, [3, 2, 1])


@settings(max_examples=150, deadline=None)
@given(ids=st.sets(st.integers(1, 3000), max_size=400),
       cap=st.one_of(st.none(), st.integers(1, 60)),
       page=st.integers(1, 50), parallel=st.integers(1, 6),
       max_rows=st.one_of(st.none(), st.integers(0, 450)),
       seed=st.integers(0, 2**16), inserts=st.lists(st.integers(0, 30), max_size=5))
def test_property_nothing_lost_nothing_twice(ids: set[int], cap: int | None, page: int,
                                             parallel: int, max_rows: int | None, seed: int,
                                             inserts: list[int]) -> None:
    server = SimServer(sorted(ids), cap=cap)
    before = sorted(ids)
    added: list[int] = []

    def between(step: int) -> None:
        if step < len(inserts):
            added.extend(server.insert(inserts[step]))

    pager = Pager(page, max_rows=max_rows, parallel=parallel)
    got = drive(pager, server, rng=random.Random(seed), between=between)
    assert len(got) == len(set(got))
    assert set(got) <= set(before) | set(added)
    if max_rows is None:
        assert set(before) <= set(got)
    else:
        assert got == sorted(set(before) | set(added))[:max_rows][:len(got)]
        assert len(got) == min(max_rows, len(server.rows))


# -- ordered (value ranges) -----------------------------------------------------------------
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
    "$ne": operator.ne}


class SimTable:
    """Records ``{"id", "v"}`` answered like a PostgreSQL-backed list endpoint: ordered by
    ``v`` with ties in a new random order on every request, a silent ``limit`` cap, ``from``
    (a page index: offset = ``from`` x the rows a page holds)."""

    def __init__(self, values: dict[int, Any], *, descending: bool, cap: int | None,
                 rng: random.Random) -> None:
        self.values, self.descending, self.cap, self.rng = values, descending, cap, rng
        self.asked: list[tuple[object, ...]] = []

    def matches(self, value: Any, cond: Any) -> bool:
        if not isinstance(cond, dict):
            return value == cond  # None: IS NULL
        return all(value is not None and (arg is None or _OPS[op](value, arg))
                   for op, arg in cond.items())

    def answer(self, req: PageRequest) -> list[dict[str, Any]]:
        self.asked.append((repr(req.where), req.gt, req.lte, req.limit, req.page, req.by_order))
        cond = (req.where or {}).get("v", {})
        rows = [{"id": i, "v": v} for i, v in self.values.items()
                if self.matches(v, cond) and (req.gt is None or i > req.gt)
                and (req.lte is None or i <= req.lte)]
        if req.by_order:
            self.rng.shuffle(rows)
            present = sorted((r for r in rows if r["v"] is not None), key=lambda r: r["v"],
                             reverse=self.descending)
            rows = present + [r for r in rows if r["v"] is None]
        else:
            rows.sort(key=lambda r: r["id"], reverse=req.descending)
        limit = min(req.limit, self.cap or req.limit)
        start = (req.page or 0) * limit
        return rows[start:start + limit]


def expected_top(values: dict[int, Any], n: int, descending: bool, nulls_first: bool,
                 keep: Callable[[int], bool] = lambda i: True) -> list[int]:
    present = sorted((i for i, v in values.items() if v is not None and keep(i)),
                     key=lambda i: (values[i] if not descending else -values[i], i))
    nulls = sorted(i for i, v in values.items() if v is None and keep(i))
    return ((nulls + present) if nulls_first else (present + nulls))[:n]


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(0, 6), st.integers(0, 400)),
                       max_size=400),
       n=st.integers(0, 450), page=st.sampled_from([1, 3, 10, 100]),
       cap=st.sampled_from([None, 2, 7]), descending=st.booleans(), nulls_first=st.booleans(),
       seed=st.integers(0, 2**16), filtered=st.booleans(), positions=st.booleans(),
       parallel=st.sampled_from([1, 4]))
def test_top_pager_is_exact_and_deterministic(values: list[Any], n: int, page: int,
                                              cap: int | None, descending: bool,
                                              nulls_first: bool, seed: int,
                                              filtered: bool, positions: bool,
                                              parallel: int) -> None:
    table = dict(enumerate(values, start=1))

    def keep(i: int) -> bool:
        return not filtered or i % 3 != 0

    asked = []
    for run in range(2):  # other tie orders and answer orders: the same requests
        rng = random.Random(seed + run)
        sim = SimTable(table, descending=descending, cap=cap, rng=rng)
        pager = TopPager("v", n, page, descending=descending, nulls_first=nulls_first,
                         keep=(lambda r: keep(r["id"])) if filtered else None,
                         positions="number" if positions else None, parallel=parallel)
        got = run_top(pager, sim, rng)
        assert got == expected_top(table, n, descending, nulls_first, keep)
        asked.append(sorted(sim.asked, key=repr))
        assert pager.stats.requests == len(sim.asked)
    assert asked[0] == asked[1]


@pytest.mark.parametrize(("n", "page", "requests"), [
    (50, 100, 1),      # 51 distinct values: the 51st proves the 50th final
    (130, 50, 3),      # 50 + 49 + 31: each page repeats its last value's one row
    (1000, 100, 11),
])
def test_top_pager_on_distinct_values_costs_about_n_over_page(n: int, page: int,
                                                             requests: int) -> None:
    values = {i: (i * 7919) % 3001 for i in range(1, 3001)}  # distinct, unrelated to id
    rng = random.Random(1)
    pager = TopPager("v", n, page, descending=True)
    got = run_top(pager, SimTable(values, descending=True, cap=None, rng=rng), rng)
    assert got == expected_top(values, n, True, False)
    assert pager.stats.requests == requests


def test_top_pager_reads_a_heavy_value_by_id() -> None:
    values = {i: i % 3 for i in range(1, 601)}  # three values of 200 rows
    rng = random.Random(2)
    sim = SimTable(values, descending=False, cap=None, rng=rng)
    pager = TopPager("v", 250, 100)
    assert run_top(pager, sim, rng) == expected_top(values, 250, False, False)
    keysets = [a for a in sim.asked if not a[-1]]
    # 200 rows of 0: the first page and two position pages (the last one short proves the
    # end), then 50 of 1, whose read starts before 0's count is known: sized for up to 150
    # rows (250 less the 100 of 0 in the range page), it asks one position page
    assert sorted(((a[0], a[1], a[4]) for a in keysets), key=repr) == sorted([
        ("{'v': 0}", None, None), ("{'v': 0}", None, 1), ("{'v': 0}", None, 2),
        ("{'v': 1}", None, None), ("{'v': 1}", None, 1)], key=repr)


def test_top_pager_sends_the_range_after_a_heavy_value_once_the_value_ends() -> None:
    """150 rows of 0 among 1000 of 1: the range after 0 goes out as soon as the unbounded
    window of 0's keyset read comes back short, while its other window is still read; over
    a value that holds every row needed, no range after it is ever sent."""
    values = {i: 0 if i % 7 == 0 else 1 for i in range(1, 1051)}
    sim = SimTable(values, descending=False, cap=None, rng=random.Random(4))
    pager = TopPager("v", 600, 100, parallel=4)
    pending = pager.next_requests()
    while not any(r.gt is not None for r in pending):  # until 0's windows are planned
        req = pending.pop(0)
        pager.on_page(req, sim.answer(req))
        pending += pager.next_requests()
    [unbounded] = [r for r in pending if r.where == {"v": 0} and r.gt is not None]
    assert unbounded.lte is None and sim.answer(unbounded) == []  # 0 ends in the bounded one
    pager.on_page(unbounded, [])
    [after] = pager.next_requests()
    assert after.by_order and after.where == {"v": {"$gt": 0}}
    # 0's bounded window (its first pages: the position pages sent with 0's first page) is
    # not answered yet
    pending = [r for r in pending if r is not unbounded]
    assert [r.page for r in pending if r.where == {"v": 0}] == [1, 2]
    pending.append(after)
    while pending:
        req = pending.pop()
        pager.on_page(req, sim.answer(req))
        pending += pager.next_requests()
    assert [r["id"] for r in pager.result()] == expected_top(values, 600, False, False)
    over = TopPager("v", 140, 100)
    assert run_top(over, SimTable(values, descending=False, cap=None, rng=random.Random(5)),
                   random.Random(5)) == expected_top(values, 140, False, False)
    assert over.stats.requests == 1 + 2  # 0's first two pages (the last one short: 0 ends
    # with 150 rows, more than needed): nothing after 0


def test_top_pager_by_id_needs_no_keyset_reads() -> None:
    values = {i: i for i in range(1, 501)}
    rng = random.Random(3)
    sim = SimTable(values, descending=True, cap=37, rng=rng)
    pager = TopPager("v", 120, 100, descending=True, unique=True)
    assert run_top(pager, sim, rng) == list(range(500, 380, -1))
    assert all(by_order for *_, by_order in sim.asked) and len(sim.asked) == 4


# -- request parameters ---------------------------------------------------------------------
def test_params_and_where_merging() -> None:
    assert PageRequest(0, 100).params() == {
        "order": {"attribute": "id", "descending": False}, "limit": 100}
    p = PageRequest(0, 50, gt=10, lte=20, descending=True).params({"id": {"$lte": 15}})
    assert p["where"] == {"id": {"$lte": 15, "$gt": 10}}
    assert p["order"]["descending"] is True
    assert PageRequest(0, 9, lte=5).params({"id": [1, 2]})["where"] == {
        "id": {"$in": [1, 2], "$lte": 5}}
    assert PageRequest(0, 9).params({"x": 1})["where"] == {"x": 1}
    ranged = PageRequest(3, 37, where={"a": {"$gt": 4}}, by_order=True)
    assert ranged.params({"a": {"$in": [1, 5, 9]}}) == {
        "where": {"a": {"$in": [1, 5, 9], "$gt": 4}}, "limit": 37}
    assert PageRequest(0, 9, gt=7, where={"a": None}).params({"b": 1})["where"] == {
        "b": 1, "a": None, "id": {"$gt": 7}}


def test_parallel_may_be_raised_after_construction() -> None:
    server = SimServer(list(range(1, 2001)))
    pager = Pager(100)
    [first] = pager.next_requests()
    pager.parallel = 4  # the transport learned the latency
    assert pager.next_requests() == []  # no probe before the first page shows more rows
    ids = server.answer(first)
    got = ids[:pager.on_page(first, ids)]
    pending = pager.next_requests()
    assert [r.descending for r in pending] == [True]  # the first window waits for the plan
    while pending:
        req = pending.pop(0)
        ids = server.answer(req)
        got += ids[:pager.on_page(req, ids)]
        pending += pager.next_requests()
    assert pager.done and sorted(got) == list(range(1, 2001)) and pager.stats.splits >= 1


def test_a_stream_raised_to_parallel_that_ends_on_its_first_page_sends_no_probe() -> None:
    pager = Pager(100)
    [first] = pager.next_requests()
    pager.parallel = 4
    pager.cap = 100  # known from another stream of the same pull
    assert pager.on_page(first, [5, 9, 12]) == 3
    assert pager.done and pager.next_requests() == [] and pager.stats.requests == 1


def test_top_pager_requests_do_not_depend_on_which_ties_come_back() -> None:
    """With a post-filter, how many rows of a heavy page it keeps is chance: not used."""
    values = {i: i % 2 for i in range(1, 601)}
    asked = set()
    for seed in range(20):
        rng = random.Random(seed)
        sim = SimTable(values, descending=False, cap=None, rng=rng)
        pager = TopPager("v", 66, 100, keep=lambda r: r["id"] % 3 != 0)
        got = run_top(pager, sim, rng)
        assert got == expected_top(values, 66, False, False, lambda i: i % 3 != 0)
        asked.add(tuple(sorted(sim.asked, key=repr)))
    assert len(asked) == 1


@pytest.mark.parametrize("make", [lambda: Pager(0), lambda: Pager(10, max_rows=-1),
                                  lambda: Pager(10, parallel=0), lambda: TopPager("id", 5, 0),
                                  lambda: TopPager("id", -1)])
def test_impossible_pager_arguments_are_config_errors(make: Callable[[], Any]) -> None:
    with pytest.raises(JettiConfigError):
        make()


def test_an_unordered_page_is_a_data_error() -> None:
    pager = Pager(10)
    [r] = pager.next_requests()
    with pytest.raises(JettiDataError, match="ordered"):
        pager.on_page(r, [3, 2, 1])


# -- fan-out -------------------------------------------------------------------------------
def _drive_fanout(fanout: Fanout, servers: dict[int, SimServer], rng: random.Random,
                  budgets: list[int]) -> tuple[list[tuple[int, int]], set[tuple[object, ...]]]:
    """Run a fan-out whose parts are ``{"s": n}``; answers in random order.

    Returns the ``(part, id)`` pairs read and the request shapes sent per part.
    """
    pending: list[PageRequest] = []
    got: list[tuple[int, int]] = []
    sent: list[tuple[int, PageRequest]] = []
    while not fanout.done:
        before = len(pending)
        pending += fanout.next_requests()
        assert pending, "the fan-out stalled"
        assert len(pending) <= max(before, budgets[-1])  # new requests only within the budget
        req = pending.pop(rng.randrange(len(pending)))
        stream, inner = fanout.stream_of(req)
        if withdrawn(req):  # as the transport does
            fanout.on_withdrawn(req)
            continue
        sent.append((stream.part["s"], inner))
        ids = servers[stream.part["s"]].answer(inner)
        final = fanout.on_records(req, [{"id": i} for i in ids])
        assert fanout.answered(req) == (stream, inner)
        got += [(stream.part["s"], r["id"]) for r in final]
        got += [(s.part["s"], r["id"]) for s, records in fanout.released() for r in records]
        budgets.append(rng.choice([1, 2, 3, 5, 8]) if len(budgets) > 1 else budgets[-1])
    asked = {(s, r.gt, r.lte, r.descending, r.limit) for s, r in sent if not withdrawn(r)}
    return got, asked


def withdrawn(request: PageRequest) -> bool:
    """A held request the answer it waited for turned down: the read never needs it (sent
    only when that answer was slower than a slot)."""
    return request.hold is not None and request.hold.withdrawn


@pytest.mark.parametrize("seed", range(6))
def test_a_fanout_keeps_within_a_moving_budget_and_reads_every_row_once(seed: int) -> None:
    """The budget (the transport's in-flight target) moves every round."""
    rng = random.Random(seed)
    sizes = {0: 1000, 1: 37, 2: 0, 3: 450}
    servers = {s: SimServer(list(range(1, n + 1)), cap=37) for s, n in sizes.items()}
    budgets = [4, 4]
    fanout = Fanout(open_streams([{"s": s} for s in sizes], 100, budget=4),
                    lambda: budgets[-1])
    got, asked = _drive_fanout(fanout, servers, rng, budgets)
    assert sorted(got) == [(s, i) for s, n in sizes.items() for i in range(1, n + 1)]
    assert any(shape[3] for shape in asked)  # the probes went out: windows in parallel


@pytest.mark.parametrize("seed", range(6))
def test_a_fanout_reads_the_same_pages_whatever_its_budget_does(seed: int) -> None:
    """The budget bounds what is in flight, never which pages are read, so a repeated read
    is answered from the cache (several parts: the next test)."""
    rng = random.Random(seed)
    servers = {0: SimServer(rng.sample(range(1, 5000), 1200), cap=37)}
    runs = []
    for budgets in ([4], [4, 4], [2, 2], [8, 8]):  # fixed; moving from 4, 2 and 8
        fanout = Fanout(open_streams([{"s": 0}], 100, budget=budgets[0]),
                        lambda b=budgets: b[-1])
        got, asked = _drive_fanout(fanout, servers, rng, budgets)
        assert sorted(i for _, i in got) == sorted(servers[0].rows)
        runs.append(asked)
    assert runs[0] == runs[1] == runs[2] == runs[3]
    assert len([shape for shape in runs[0] if shape[2] is not None]) > 2  # windows


@pytest.mark.parametrize("max_rows", [None, 300])
def test_parts_read_the_same_pages_whatever_the_order_of_answers(max_rows: int | None) -> None:
    """Parts learn the server's cap from each other's first answers only, once all are in: a
    part's short page waits for them, instead of asking once more when it comes first."""
    sizes = {0: 1000, 1: 37, 2: 80, 3: 450, 4: 100}
    servers = {s: SimServer(list(range(1, n + 1))) for s, n in sizes.items()}
    runs = set()
    for seed in range(12):
        rng = random.Random(seed)
        budgets = [4, 4] if seed % 2 else [4]  # moving, or fixed
        fanout = Fanout(open_streams([{"s": s} for s in sizes], 100, budget=4,
                                     max_rows=max_rows), lambda b=budgets: b[-1])
        got, asked = _drive_fanout(fanout, servers, rng, budgets)
        want = sizes if max_rows is None else {s: min(n, max_rows) for s, n in sizes.items()}
        assert sorted(got) == [(s, i) for s, n in want.items() for i in range(1, n + 1)]
        runs.add(frozenset(asked))
    assert len(runs) == 1
    # the short parts (37 and 80 rows) ended on their first page: the others showed 100 rows
    assert sum(1 for s, *_ in next(iter(runs)) if s in (1, 2)) <= 4


def test_the_late_streams_answers_never_wait_for_the_opening() -> None:
    """The consistency pass joins while a part's first answer is still out: its short answer
    is its own (with its ``member``), never held for the parts' opening."""
    servers = {0: SimServer(list(range(1, 1001))), 1: SimServer(list(range(1, 38))),
               2: SimServer(list(range(1, 11)))}
    fanout = Fanout(open_streams([{"s": 0}, {"s": 1}], 100, budget=4, max_rows=300),
                    lambda: 8, lambda: open_streams([{"s": 2}], 100, budget=4, sequential=True))
    pending = fanout.next_requests()
    [slow] = [r for r in pending if fanout.stream_of(r)[0].part == {"s": 1}]
    pending.remove(slow)  # part 1's first answer comes last
    got: dict[int, list[int]] = {0: [], 1: [], 2: []}
    while pending or slow is not None:
        req = pending.pop(0) if pending else slow
        slow = None if req is slow else slow
        stream, inner = fanout.stream_of(req)
        final = fanout.on_records(req, [{"id": i} for i in servers[stream.part["s"]].answer(inner)])
        got[stream.part["s"]] += [r["id"] for r in final]
        for other, records in fanout.released():
            got[other.part["s"]] += [r["id"] for r in records]
        if stream.part["s"] == 2:
            assert got[2] == list(range(1, 11)) and slow is not None  # at once, on its own
        fanout.answered(req)
        pending += fanout.next_requests()
    assert fanout.done and got == {0: list(range(1, 301)), 1: list(range(1, 38)),
                                   2: list(range(1, 11))}


def test_a_fanout_sends_the_late_streams_once_every_other_request_is_out() -> None:
    servers = {0: SimServer(list(range(1, 1001))), 1: SimServer(list(range(1, 11)))}
    late_calls: list[int] = []

    def late() -> list[Stream]:
        late_calls.append(len(asked_before))
        return open_streams([{"s": 1}], 100, budget=4, sequential=True)

    asked_before: list[PageRequest] = []
    fanout = Fanout(open_streams([{"s": 0}], 100, budget=4), lambda: 4, late)
    pending: list[PageRequest] = []
    saw_late_while_busy = False
    while not fanout.done:
        new = fanout.next_requests()
        pending += new
        parts = [fanout.stream_of(req)[0].part["s"] for req in pending]
        if 1 in parts and 0 in parts:  # the pass went out while the read was still going
            saw_late_while_busy = True
        asked_before += [req for req in new if fanout.stream_of(req)[0].part["s"] == 0]
        req = pending.pop(0)
        stream, inner = fanout.stream_of(req)
        fanout.on_records(req, [{"id": i} for i in servers[stream.part["s"]].answer(inner)])
        fanout.answered(req)
    assert len(late_calls) == 1 and saw_late_while_busy  # not after the last answer
    assert [s.part for s in fanout.streams] == [{"s": 0}, {"s": 1}]


def test_open_streams_owns_parallel_and_limits_by_listed_ids() -> None:
    [seq] = open_streams([{"id": {"$in": [3, 5]}}], 100, budget=4, max_rows=10)
    assert isinstance(seq.pager, BoundedPager)  # limit=N: the first N in id order
    assert seq.pager.max_rows == 2 and seq.pager.parallel == 4
    assert [r.limit for r in seq.pager.next_requests()] == [2]  # the first page alone
    [par, few] = (open_streams([{"a": 1}], 100, budget=4, cap=37)
                  + open_streams([{"a": 2}], 100, budget=4, sequential=True))
    # first page + probe, then position pages held until the first page says they are needed
    assert par.pager.cap == 37
    assert [r.hold is not None for r in par.pager.next_requests()] == [False, False, True, True]
    assert len(few.pager.next_requests()) == 1  # no probe for a small answer


# -- the page sent ahead of the plan ---------------------------------------------------------
def _drive_ahead(pager: Pager, server: SimServer,
                 rng: random.Random) -> tuple[list[int], list[tuple[object, ...]]]:
    """Answers in random order, through ``on_records``; the ids kept and the requests sent."""
    pending: list[PageRequest] = []
    got: list[int] = []
    sent: list[tuple[object, ...]] = []
    answered: list[PageRequest] = []
    while not pager.done:
        pending += pager.next_requests()
        assert pending, "the pager stalled"
        req = pending.pop(rng.randrange(len(pending)))
        if withdrawn(req):
            pager.on_withdrawn(req)
            continue
        answered.append(req)
        got += [r["id"] for r in pager.on_records(req, [{"id": i} for i in server.answer(req)])]
    sent = [(r.gt, r.lte, r.descending, r.limit) for r in answered if not withdrawn(r)]
    return got, sent


@settings(max_examples=80, deadline=None)
@given(ids=st.sets(st.integers(1, 4000), max_size=1200), cap=st.sampled_from([None, 37, 100]),
       seed=st.integers(0, 1000))
def test_the_page_sent_ahead_reads_the_same_pages_in_any_order(ids: set[int], cap: int | None,
                                                              seed: int) -> None:
    """Small reads (the probe reaching into the first page) and large ones, answers in any
    order and any budget: every row once, the same requests."""
    server = SimServer(sorted(ids), cap=cap)
    runs = []
    for k, parallel in enumerate((2, 4, 8)):
        pager = Pager(100, parallel=parallel, ahead=True)
        got, sent = _drive_ahead(pager, server, random.Random(seed + k))
        assert sorted(got) == sorted(ids) and len(got) == len(set(got))
        runs.append(sorted(sent, key=repr))
    assert runs[0] == runs[1] == runs[2]
    first_full = len(ids) >= 100 and cap != 37
    assert first_full == any(gt is not None and lte is None and not desc
                             for gt, lte, desc, _ in runs[0])


def test_a_full_first_page_sends_position_pages_before_the_probe_is_back() -> None:
    server = SimServer(list(range(1, 3001)))
    pager = Pager(100, parallel=4, ahead=True)
    first, probe, *chained = pager.next_requests()
    assert [(r.page, r.limit, r.gt) for r in chained] == [(1, 99, None), (2, 98, None)]
    hold = chained[0].hold  # sent only once the first page is slower than a slot of the allowance
    assert hold is not None and hold is chained[1].hold and not hold.decided
    assert pager.one_round
    assert pager.on_records(first, [{"id": i} for i in server.answer(first)])
    assert not hold.decided  # a full first page: are there more than two pages of rows?
    assert pager.next_requests() == []  # the first window waits for the plan
    for req in chained:  # kept until the plan bounds the first window
        assert pager.on_records(req, [{"id": i} for i in server.answer(req)]) == []
    rows = pager.on_records(probe, [{"id": i} for i in server.answer(probe)])
    assert hold.decided and not hold.withdrawn  # the probe is far above: both are needed
    assert sorted(r["id"] for r in rows) == list(range(101, 295)) + list(range(2901, 3001))
    assert not pager.one_round  # rows of pages that went on after the first answer
    assert len(pager.next_requests()) == 4 and pager.stats.windows > 2
    assert min(gt for gt, _ in pager.windows() if gt is not None) == 294  # after the chain


def test_a_short_first_page_withdraws_the_held_position_pages() -> None:
    """A small read costs its first page and its probe: the position pages still held are
    withdrawn, one already sent is answered and ignored, and the read stays one round."""
    server = SimServer(list(range(1, 61)))
    pager = Pager(100, parallel=4, ahead=True)
    first, probe, sent, held = pager.next_requests()
    assert pager.on_records(sent, [{"id": i} for i in server.answer(sent)]) == []  # slow first
    rows = pager.on_records(first, [{"id": i} for i in server.answer(first)])
    assert [r["id"] for r in rows] == list(range(1, 61))
    assert withdrawn(held) and not pager.done
    pager.on_withdrawn(held)
    assert pager.on_records(probe, [{"id": i} for i in server.answer(probe)]) == []
    assert pager.done and pager.one_round and pager.next_requests() == []
    assert (pager.stats.requests, pager.stats.pages) == (3, 3)


@pytest.mark.parametrize("rows", [150, 199])
def test_a_probe_reaching_into_a_full_first_page_withdraws_the_position_pages(rows: int) -> None:
    """Up to two pages of rows cost the first page and the probe, in either order."""
    server = SimServer(list(range(1, rows + 1)))
    for order in ((0, 1), (1, 0)):
        pager = Pager(100, parallel=4, ahead=True)
        reqs = pager.next_requests()
        got = []
        for k in order:
            got += pager.on_records(reqs[k], [{"id": i} for i in server.answer(reqs[k])])
        assert sorted(r["id"] for r in got) == list(range(1, rows + 1))
        assert all(withdrawn(r) for r in reqs[2:])
        for r in reqs[2:]:
            pager.on_withdrawn(r)
        assert pager.done and pager.one_round and pager.stats.requests == 2


def test_the_page_sent_ahead_is_held_until_the_plan_is_known() -> None:
    """Irregular ids: a plan made after the page sent ahead would cut other windows."""
    rows = sorted(random.Random(1).sample(range(1, 4000), 1200))
    runs = set()
    for seed in range(12):
        got, sent = _drive_ahead(Pager(100, parallel=4, ahead=True), SimServer(rows),
                                 random.Random(seed))
        assert sorted(got) == rows
        runs.add(tuple(sorted(sent, key=repr)))
    assert len(runs) == 1
