"""Position pages (``from``) that continue a keyset stream only where they overlap the page
before: exact rows whatever happens between the requests.

The pure pagers are driven against an in-memory server that deletes rows while the read goes
on, ignores ``from`` or caps ``limit``; the read over a socket deletes a row of the first page
between that page and the position pages, which then no longer overlap.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from jetti_frames import JettiClient
from jetti_frames._bounded import BoundedPager
from jetti_frames._hold import Hold
from jetti_frames._pages import PageRequest
from jetti_frames.paging import Pager
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN


class Server:
    """Ids only; ``mode``: ``"from"`` honoured, ``"ignore"`` (every position page is page 0)."""

    def __init__(self, ids: list[int], cap: int | None, mode: str) -> None:
        self.rows = set(ids)
        self.cap, self.mode = cap, mode

    def answer(self, req: PageRequest) -> list[dict[str, int]]:
        limit = min(req.limit, self.cap or req.limit)
        ids = sorted((i for i in self.rows
                      if (req.gt is None or i > req.gt) and (req.lte is None or i <= req.lte)
                      and (req.lt is None or i < req.lt) and (req.gte is None or i >= req.gte)),
                     reverse=req.descending)
        start = (req.page or 0) * limit if self.mode == "from" else 0
        return [{"id": i} for i in ids[start:start + limit]]


def drive(pager: Pager | BoundedPager, server: Server, rng: random.Random,
          deletes: float) -> tuple[list[int], set[int], int]:
    """Answers in random order, a row among the first deleted now and then; the ids handed
    out, the ids ever deleted, and how many position pages the read needed (a held page the
    first page turned down is withdrawn, as the transport does, when still unanswered)."""
    pending: list[PageRequest] = []
    got: list[int] = []
    deleted: set[int] = set()
    sent: list[PageRequest] = []
    while not pager.done:
        pending += pager.next_requests()
        assert pending, "the pager stalled"
        req = pending.pop(rng.randrange(len(pending)))
        if req.hold is not None and req.hold.withdrawn:
            pager.on_withdrawn(req)
            continue
        sent.append(req)
        got += [int(r["id"]) for r in pager.on_records(req, server.answer(req))]
        if server.rows and rng.random() < deletes:
            gone = rng.choice(sorted(server.rows)[:150])  # where positions shift
            server.rows.discard(gone)
            deleted.add(gone)
    positions = sum(r.page is not None and not (r.hold and r.hold.withdrawn) for r in sent)
    return got, deleted, positions


#: Id sets of any size up to 15 pages, dense or sparse (hypothesis' own sets stay small).
IDS = st.tuples(st.integers(0, 1500), st.integers(1, 4), st.integers(0, 99)).map(
    lambda t: set(random.Random(t[2]).sample(range(1, t[0] * t[1] + 2), t[0])))


@settings(max_examples=80, deadline=None)
@given(ids=IDS, cap=st.sampled_from([None, 37]),
       mode=st.sampled_from(["from", "ignore"]), deletes=st.sampled_from([0.0, 0.3]),
       seed=st.integers(0, 1000))
def test_a_full_pull_reads_every_lasting_row_once(ids: set[int], cap: int | None, mode: str,
                                                   deletes: float, seed: int) -> None:
    server = Server(sorted(ids), cap, mode)
    got, deleted, positions = drive(Pager(100, parallel=4, ahead=True), server,
                                    random.Random(seed), deletes)
    assert len(got) == len(set(got))  # nothing twice
    assert set(got) <= ids  # nothing made up
    assert ids - deleted <= set(got)  # every row that lasted the whole read
    # after a full first page that the probe does not reach into (rows deleted meanwhile may
    # make the read smaller; at 200 rows the gap between them may be empty or not)
    if cap is not None or (not deletes and len(ids) < 200):
        assert positions == 0
    elif not deletes and len(ids) > 200:
        assert positions == 2


@settings(max_examples=80, deadline=None)
@given(ids=IDS, n=st.integers(0, 1200),
       cap=st.sampled_from([None, 37]), mode=st.sampled_from(["from", "ignore"]),
       deletes=st.sampled_from([0.0, 0.3]), descending=st.booleans(),
       seed=st.integers(0, 1000), hold=st.booleans())
def test_the_first_n_have_no_gap_whatever_is_deleted(ids: set[int], n: int, cap: int | None,
                                                     mode: str, deletes: float,
                                                     descending: bool, seed: int,
                                                     hold: bool) -> None:
    server = Server(sorted(ids), cap, mode)
    pager = BoundedPager(100, n, parallel=4, descending=descending, ahead=True, hold=hold)
    got, deleted, positions = drive(pager, server, random.Random(seed), deletes)
    if hold and not deletes and (len(ids) < 100 or cap is not None):
        assert positions == 0  # a first page that is not full withdraws them
    sign = -1 if descending else 1
    assert len(got) == len(set(got)) and set(got) <= ids  # once each, nothing made up
    got.sort(key=lambda i: sign * i)
    lasting = sorted((i for i in ids - deleted), key=lambda i: sign * i)
    if got:  # no lasting row skipped before the last one handed out
        assert [i for i in lasting if sign * i <= sign * got[-1]] == [i for i in got
                                                                     if i not in deleted]
    if len(lasting) >= n:
        assert len(got) == n
    if not deletes:
        assert got == sorted(ids, key=lambda i: sign * i)[:n]


def test_a_row_deleted_before_the_position_pages_breaks_the_chain_not_the_read(
        make_sandbox: Any) -> None:
    """The first page is answered, one of its rows is deleted, then the position pages are
    computed: they start one row later, do not overlap, and are dropped; the read goes on by
    keyset and returns the first 450 ids (the deleted one included: it was read before)."""
    sb: Sandbox = make_sandbox(purchases=600, latency_ms=100, max_limit=100)
    first = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id LIMIT 450")]
    sb.after_requests(1, lambda s: s.delete("purchases", [first[5]]))
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False) as c:
        got = [int(i) for i in c.read("purchases", attributes=["id"], limit=450)["id"]]
    later = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id LIMIT 450")]
    assert first[5] not in later and got == sorted({first[5], *later})[:450]
    log = [unquote(e["target"]) for e in sb.log]
    positions = [t for t in log if "from=" in t]
    assert len(positions) == 2 and sb.counters()["status_429"] == 0
    # the first window was read by keyset from the first page's last id
    assert any(f"where[id][$gt]={first[99]}&" in t for t in log)


def test_position_pages_cost_a_small_read_nothing(make_sandbox: Any) -> None:
    """Held position pages wait for the first answers and are withdrawn when the read turns out
    small: 150 rows cost the first page and the probe; the first 1000 of 60 rows cost a page
    and one more that tells the end of the data from a server's cap of 60 rows."""
    sb: Sandbox = make_sandbox(purchases=150, max_limit=100)
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False) as c:
        assert len(c.read("purchases", attributes=["id"])) == 150
        assert c.last_stats.requests == 2
        ids = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id LIMIT 60")]
        where = {"id": {"$lte": ids[-1]}}
        assert list(c.read("purchases", attributes=["id"], where=where, limit=1000)["id"]) == ids
        assert c.last_stats.requests == 2
        assert len(c.read("purchases", attributes=["id"], where=where, order="-id",
                          limit=1000)) == 60
        assert c.last_stats.requests == 2
    assert not any("from=" in unquote(e["target"]) for e in sb.log)


def test_a_slow_reader_sends_nothing_on_speculation(make_sandbox: Any) -> None:
    """Held pages wait for the server, not for the reader: a consumer that dawdles over each
    page (here, over the probe's empty page while the first page is already in) does not let
    them go out.  Five reads, each with fresh ties, so that the probe is read first in some."""
    sb: Sandbox = make_sandbox(purchases=300, max_limit=100, jitter_ms=300, rate="off")
    cut = sb.query("SELECT total FROM purchases ORDER BY total DESC LIMIT 1 OFFSET 7")[0]["total"]
    where = {"total": {"$gte": cut}}
    # no pacing: the probe goes with the first page, and either may be answered first
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                     get_rate=1000) as c:
        for _ in range(5):
            sb.reset_counters()
            rows = 0
            for page in c.iter_pages("purchases", attributes=["id", "total"], where=where):
                rows += len(page)
                time.sleep(0.7)  # longer than a held page waits for a slow server
            assert rows == 8
            assert sb.counters()["requests"] == 2, [unquote(e["target"]) for e in sb.log]


def test_a_hold_waits_for_the_reader_once_the_answer_is_in() -> None:
    """The hold's clock runs while the deciding request is at the server: once its answer is
    in, the held request waits for the decision however long it takes; with no answer, it
    goes out when the clock runs out; before the deciding request has its slot, it waits."""
    def go_later(hold: Hold) -> tuple[threading.Thread, list[bool]]:
        out: list[bool] = []
        thread = threading.Thread(target=lambda: out.append(hold.go()))
        thread.start()
        thread.join(0.2)
        return thread, out

    answered = Hold(seconds=0.01)
    answered.expect()
    answered.begin()
    answered.arrived()
    thread, waiting = go_later(answered)
    assert waiting == []  # 0.2 s past the clock: still waiting for the reader
    answered.decide(False)
    thread.join()
    assert waiting == [False]

    unsent = Hold(seconds=0.01)
    thread, waiting = go_later(unsent)
    assert waiting == []  # the deciding request has no slot yet
    unsent.decide(True)
    thread.join()
    assert waiting == [True]

    slow = Hold(seconds=0.01)
    slow.expect()
    slow.begin()
    assert slow.go() is True  # no answer in time: the slot is worth taking


def test_on_a_slow_server_position_pages_go_before_the_first_answer(make_sandbox: Any) -> None:
    """The slots that pass while the first page and the probe are at a slow server carry the
    position pages: at 1.2 s, the server sees the first (a slot after the probe) before it
    answers the first page."""
    sb: Sandbox = make_sandbox(purchases=1000, max_limit=100, latency_ms=1200)
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False) as c:
        assert len(c.read("purchases", attributes=["id"])) == 1000
    log = [(unquote(e["target"]), e["time"] - e["seconds"], e["time"]) for e in sb.log]
    answered = min(end for target, _, end in log if "from=" not in target)
    early = [target for target, arrived, _ in log if arrived < answered]
    assert sum("from=" in target for target in early) == 1, early
