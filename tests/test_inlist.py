"""Long ``$in`` / ``$notIn`` lists in few requests, against the sandbox over a real socket.

Expected rows come from the sandbox's SQLite database; request counts and request lines from
the sandbox's own counters and log.  The sandbox's ``logic`` knob plays a server that ignores
``$or``/``$and`` (drops them) or refuses them (400).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from jetti_frames import JettiClient
from jetti_frames.sandbox import Sandbox
from jetti_frames.sandbox.qs import decode_query
from jetti_frames.settings import MAX_ARRAY, SANDBOX_TOKEN

FAST = {"get_rate": 1000.0, "progress": False}
#: Node refuses a request head over 16 KiB.
HEAD_LIMIT = 16 * 1024


def all_ids(sb: Sandbox, table: str = "purchases") -> list[int]:
    return [r["id"] for r in sb.query(f"SELECT id FROM {table} ORDER BY id")]


def sql_ids(sb: Sandbox, where: str) -> list[int]:
    return [r["id"] for r in sb.query(f"SELECT id FROM purchases WHERE {where} ORDER BY id")]


def arrays_ok(value: Any) -> bool:
    """No array longer than qs reads as one, none turned into an object by qs."""
    if isinstance(value, dict):
        if value and all(k.isdigit() for k in value):
            return False
        return all(arrays_ok(v) for v in value.values())
    if isinstance(value, list):
        return len(value) <= MAX_ARRAY and all(arrays_ok(v) for v in value)
    return True


def check_requests(sb: Sandbox) -> None:
    """Every logged request line fits in 16 KiB and decodes with every array intact."""
    for entry in sb.log:
        assert entry["status"] != 431
        assert len(entry["target"]) < HEAD_LIMIT
        assert arrays_ok(decode_query(urlsplit(entry["target"]).query))


def with_or(sb: Sandbox) -> int:
    return sum("$or" in e["target"] for e in sb.log)


def client_for(sb: Sandbox, **options: Any) -> JettiClient:
    options.setdefault("cache", False)
    return JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, **FAST, **options)


# -- packed $in ----------------------------------------------------------------------------


def test_1500_ids_in_at_most_20_requests_with_exact_rows(sandbox: Sandbox) -> None:
    ids = all_ids(sandbox)
    wanted = random.Random(3).sample(ids, 1500)
    sandbox.reset_counters()
    with client_for(sandbox) as client:
        df = client.read("purchases", where={"id": wanted}, attributes=["id", "total"])
        stats = client.last_stats
    assert df["id"].tolist() == sorted(wanted)
    totals = {r["id"]: r["total"] for r in sandbox.query("SELECT id, total FROM purchases")}
    assert df["total"].tolist() == [totals[i] for i in sorted(wanted)]
    assert sandbox.counters()["requests"] == stats.requests <= 20
    assert with_or(sandbox) == math.ceil(1500 / 100)  # one request per page of ids
    check_requests(sandbox)


def test_repeated_read_is_answered_by_the_cache_alone(sandbox: Sandbox, tmp_path: Path) -> None:
    wanted = all_ids(sandbox)[::2][:1500]
    cache = tmp_path / "http.sqlite"
    with client_for(sandbox, cache=cache) as client:
        first = client.read("purchases", where={"id": wanted}, attributes=["id"])
    sandbox.reset_counters()
    with client_for(sandbox, cache=cache) as client:  # a new session, the same cache file
        again = client.read("purchases", where={"id": wanted}, attributes=["id"])
        assert client.last_stats.requests == 0 and client.last_stats.cache_hits > 0
    assert sandbox.counters()["requests"] == 0
    assert first["id"].tolist() == again["id"].tolist() == sorted(wanted)


@pytest.mark.parametrize("seed", range(3))
def test_a_part_with_missing_ids_asks_the_same_pages_whichever_answer_comes_first(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, seed: int) -> None:
    """The first part's page comes back short (40 of its ids do not exist): the end of the
    part, or the server's cap?  The other parts' first pages tell, in any order of answers
    (the jitter shuffles them), so the read always sends the same 4 requests and a repeated
    read is answered by the cache alone."""
    sb = make_sandbox(rate="off", purchases=600, latency_ms=20, jitter_ms=80)
    ids = all_ids(sb)
    wanted = [*range(1, 41), *random.Random(seed).sample(ids, 360)]  # 4 parts of 100 ids
    cache = tmp_path / "http.sqlite"
    calls: list[tuple[int, int]] = []
    with client_for(sb, cache=cache) as client:
        first = client.read("purchases", where={"id": wanted}, attributes=["id"],
                            on_page=lambda pages, rows: calls.append((pages, rows)))
        assert client.last_stats.requests == 4
    assert [pages for pages, _ in calls] == [1, 2, 3, 4]  # once per answer, waiting or not
    assert calls[-1][1] == len(first)
    sb.reset_counters()
    with client_for(sb, cache=cache) as client:
        again = client.read("purchases", where={"id": wanted}, attributes=["id"])
        assert client.last_stats.requests == 0 and client.last_stats.cache_hits == 4
    assert first["id"].tolist() == again["id"].tolist() == sorted(set(wanted) & set(ids))


def test_other_conditions_order_limit_and_include_stay_exact(sandbox: Sandbox) -> None:
    ids = all_ids(sandbox)
    wanted = random.Random(5).sample(ids, 1200)
    listed = ", ".join(map(str, wanted))
    with client_for(sandbox) as client:
        sandbox.reset_counters()
        df = client.read("purchases", where={"id": wanted, "purchaseType": "dropship",
                                             "total": {"$gte": 50}},
                         attributes=["id", "purchaseStatusId"], include="PurchaseStatus")
        assert sandbox.counters()["requests"] <= 20
        want = sql_ids(sandbox, f"id IN ({listed}) AND purchaseType = 'dropship' "
                                f"AND total >= 50")
        assert df["id"].tolist() == want
        assert (df["purchase_status_name"].notna() == df["purchaseStatusId"].notna()).all()

        sandbox.reset_counters()
        top = client.read("purchases", where={"id": wanted}, order="-total", limit=40,
                          attributes=["id", "total"])
        assert sandbox.counters()["requests"] <= 20  # 60 value-range reads before
        rows = sandbox.query(f"SELECT id FROM purchases WHERE id IN ({listed}) "
                             f"ORDER BY total DESC, id LIMIT 40")
        assert top["id"].tolist() == [r["id"] for r in rows]

        first = client.read("purchases", where={"id": wanted}, limit=30, attributes=["id"])
        assert first["id"].tolist() == sorted(wanted)[:30]
    check_requests(sandbox)


def test_in_on_another_field_packs_up_to_400_values_per_request(sandbox: Sandbox) -> None:
    refs = [r["reference"] for r in sandbox.query(
        "SELECT reference FROM purchases ORDER BY id LIMIT 700")]
    sandbox.reset_counters()
    with client_for(sandbox) as client:
        df = client.read("purchases", where={"reference": refs}, attributes=["id", "total"])
    assert df["id"].tolist() == all_ids(sandbox)[:700]
    assert list(df.columns) == ["id", "total"]  # the field added to check answers is dropped
    # two requests streams (400 + 300 values) of a few pages each; 35 streams in chunks of 20
    assert sandbox.counters()["requests"] <= 15
    check_requests(sandbox)


def test_long_not_in_sends_most_values_and_filters_the_rest_locally(sandbox: Sandbox) -> None:
    ids = all_ids(sandbox)
    dropped = random.Random(7).sample(ids, 300)
    sandbox.reset_counters()
    with client_for(sandbox) as client:
        df = client.read("purchases", where={"id": {"$notIn": dropped}}, attributes=["id"])
    assert df["id"].tolist() == sorted(set(ids) - set(dropped))
    # more than 20 excluded ids went to the server: it sent fewer rows than 3000 - 20
    first_pages = [e for e in sandbox.log if "$and" in e["target"]]
    assert first_pages
    served = sandbox.counters()["rows"]
    assert served < len(ids) - 200
    check_requests(sandbox)


# -- a server that ignores or refuses $or --------------------------------------------------


@pytest.mark.parametrize("mode", ["ignore", "refuse"])
def test_fallback_to_plain_chunks_is_remembered(make_sandbox: Callable[..., Sandbox],
                                                mode: str) -> None:
    sb = make_sandbox(rate="off", logic=mode, purchases=600)
    ids = all_ids(sb)
    wanted = random.Random(11).sample(ids, 150)
    with client_for(sb) as client:
        df = client.read("purchases", where={"id": wanted}, attributes=["id", "total"])
        assert df["id"].tolist() == sorted(wanted)
        tried = with_or(sb)
        assert 1 <= tried <= 4  # the packed requests sent before the answer showed it
        if mode == "refuse":
            assert sb.counters()["status_4xx"] == tried
        sb.reset_counters()
        again = client.read("purchases", where={"id": wanted}, attributes=["id", "total"])
        assert again["id"].tolist() == sorted(wanted)
        assert with_or(sb) == 0 and sb.counters()["status_4xx"] == 0  # not tried again
        assert sb.counters()["requests"] <= math.ceil(150 / MAX_ARRAY) + 2
    with client_for(sb) as other:  # another client does not know: it finds out again
        sb.reset_counters()
        assert other.read("purchases", where={"id": wanted}, attributes=["id"])[
            "id"].tolist() == sorted(wanted)
        assert with_or(sb) >= 1
    check_requests(sb)


def test_ignored_or_never_leaks_rows_into_an_iteration(
        make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate="off", logic="ignore", purchases=600)
    wanted = all_ids(sb)[300:420]
    with client_for(sb) as client:
        got = [r["id"] for r in client.iter_records("purchases", where={"id": wanted},
                                                     attributes=["id"])]
    assert sorted(got) == wanted and len(got) == len(set(got))


def test_dense_id_range_is_read_whole_when_lists_cannot_be_packed(
        make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate="off", logic="ignore", purchases=1200)
    ids = all_ids(sb)
    with client_for(sb) as client:
        client.read("purchases", where={"id": ids[900:930]}, attributes=["id"])  # learns: no $or
        wanted = ids[200:800]  # every record of an id range: listing them costs 30 requests
        sb.reset_counters()
        df = client.read("purchases", where={"id": wanted, "purchaseType": {"$ne": "dropship"}},
                         attributes=["id"])
    want = [i for i in sql_ids(sb, "purchaseType != 'dropship'") if i in set(wanted)]
    assert df["id"].tolist() == want
    assert with_or(sb) == 0
    assert sb.counters()["requests"] < math.ceil(len(wanted) / MAX_ARRAY)
    assert all("$in" not in e["target"] for e in sb.log)


# -- the sandbox plays the harsher server --------------------------------------------------


def test_sandbox_logic_knob(make_sandbox: Callable[..., Sandbox],
                            auth: dict[str, str]) -> None:
    sb = make_sandbox(rate="off", purchases=50)
    one, two = all_ids(sb)[:2]
    url = (f"{sb.base_url}purchases.json?attributes[0]=id&where[$or][0][id][$in][0]={one}"
           f"&where[$or][1][id][$in][0]={two}")
    assert [r["id"] for r in requests.get(url, headers=auth).json()] == [one, two]
    sb.configure(logic="ignore")
    assert len(requests.get(url, headers=auth).json()) == 50  # as if there were no $or
    sb.configure(logic="refuse")
    answer = requests.get(url, headers=auth)
    assert answer.status_code == 400 and "$or" in answer.json()["detail"]
    with pytest.raises(ValueError, match="logic"):
        sb.configure(logic="maybe")


def test_sandbox_or_longer_than_an_array_fails(sandbox: Sandbox,
                                               auth: dict[str, str]) -> None:
    branches = "&".join(f"where[$or][{i}][id]={i}" for i in range(MAX_ARRAY + 2))
    answer = requests.get(f"{sandbox.base_url}purchases.json?{branches}", headers=auth)
    assert answer.status_code == 500  # qs made it an object: Sequelize reads keys as columns


@pytest.mark.parametrize("length", [HEAD_LIMIT + 1, 70_000])
def test_sandbox_request_line_over_16_kib_is_431(make_sandbox: Callable[..., Sandbox],
                                                 auth: dict[str, str], length: int) -> None:
    sandbox = make_sandbox(purchases=10)  # its own log: the shared one must hold no 431
    answer = requests.get(f"{sandbox.base_url}purchases.json?x={'a' * length}", headers=auth)
    assert answer.status_code == 431
