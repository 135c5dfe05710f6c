"""Auth, rate limit, faults, live knobs, mutations while paging, counters, log, CLI, determinism."""

from __future__ import annotations

import argparse
import sqlite3
import threading
import time
from typing import Any

import pytest
import requests

from jetti_frames.sandbox import Sandbox, add_arguments, run, serve
from jetti_frames.sandbox.data import generate
from jetti_frames.sandbox.server import token_hash
from jetti_frames.settings import SANDBOX_TOKEN

AUTH = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}


def status(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> int:
    return requests.request(method, url, headers=AUTH if headers is None else headers,
                            timeout=30).status_code


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {SANDBOX_TOKEN}"},
                                     {"Authorization": "Bearer"}])
def test_auth_required(sandbox: Sandbox, headers: dict[str, str]) -> None:
    r = requests.get(sandbox.base_url + "purchases.json", headers=headers, timeout=30)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["status"] == 401 and SANDBOX_TOKEN not in r.text


def test_rate_limit_burst_draws_429(make_sandbox: Any) -> None:
    sb = make_sandbox()
    url = sb.base_url + "purchase-statuses.json"
    with requests.Session() as s:
        answers = [s.get(url, headers=AUTH, timeout=30) for _ in range(5)]
    codes = [a.status_code for a in answers]
    assert codes[:2] == [200, 200]
    assert codes.count(429) >= 1
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert 0 < float(refused.headers["X-RateLimit-Reset"]) <= 0.5
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert answers[0].headers["X-RateLimit-Remaining"] == "1"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert sb.counters(SANDBOX_TOKEN)["status_429"] == codes.count(429)
    # refused requests are not counted into the bucket: one slot frees after the reset time
    time.sleep(float(refused.headers["X-RateLimit-Reset"]) + 0.05)
    assert status(url) == 200


def test_long_request_line_is_431(sandbox: Sandbox) -> None:
    query = "&".join(f"where[id][$in][]={100000 + i}" for i in range(900))
    r = requests.get(sandbox.base_url + "purchases.json?" + query, headers=AUTH, timeout=30)
    assert r.status_code == 431 and r.json()["status"] == 431
    assert "X-RateLimit-Limit" not in r.headers  # the rate limit is off in this sandbox


def test_spaced_gets_are_never_limited(make_sandbox: Any) -> None:
    sb = make_sandbox()
    codes = []
    for _ in range(4):
        codes.append(status(sb.base_url + "warehouses.json"))
        time.sleep(0.5)
    assert codes == [200] * 4


def test_writes_have_their_own_bucket(make_sandbox: Any) -> None:
    sb = make_sandbox()
    url = sb.base_url + "purchases.json"
    assert [status(url, method="POST") for _ in range(2)] == [405, 429]
    assert status(url) == 200  # the GET bucket is untouched
    sb.configure(rate="off")
    assert [status(url, method="POST") for _ in range(3)] == [405] * 3


def test_buckets_are_per_token(make_sandbox: Any) -> None:
    sb = make_sandbox(tokens=("alpha", "beta"))
    url = sb.base_url + "warehouses.json"
    a = [status(url, {"Authorization": "Bearer alpha"}) for _ in range(3)]
    b = [status(url, {"Authorization": "Bearer beta"}) for _ in range(2)]
    assert a[:2] == [200, 200] and b == [200, 200]
    assert sb.counters("beta")["ok"] == 2 and sb.counters("beta")["status_429"] == 0
    assert sb.counters()["requests"] == 5
    assert status(url) == 401  # the default token is not configured here


def _fault_run(sb: Sandbox, n: int) -> list[str]:
    out = []
    for _ in range(n):
        try:
            r = requests.get(sb.base_url + "channels.json", headers=AUTH, timeout=30)
            r.json()
            out.append(str(r.status_code))
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, ValueError):
            out.append("drop")
    return out


def test_faults_are_deterministic(make_sandbox: Any) -> None:
    faults = {"rate": 0.3, "seed": 0, "burst": 2}
    first = _fault_run(make_sandbox(rate="off", faults=faults), 40)
    second = _fault_run(make_sandbox(rate="off", faults=faults), 40)
    assert first == second
    assert {"200", "503", "429", "drop"} <= set(first)
    assert "429,429" in ",".join(first)  # 429s come in bursts


def test_latency_knob_is_live_and_logged(make_sandbox: Any) -> None:
    sb = make_sandbox(rate="off")
    sb.configure(latency_ms=50)
    threads = [threading.Thread(target=status, args=(sb.base_url + "warehouses.json",))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = list(sb.log)
    assert len(log) == 6 and all(e["status"] == 200 for e in log)
    # served on threads: the requests were in flight at the same time
    first_end = min(e["time"] for e in log)
    starts = [e["time"] - e["seconds"] for e in log]
    assert sum(s < first_end for s in starts) >= 2


def test_counters_and_log_never_hold_the_token(sandbox: Sandbox) -> None:
    before = sandbox.counters(SANDBOX_TOKEN)
    requests.get(sandbox.base_url + "purchases.json?limit=7", headers=AUTH, timeout=30)
    after = sandbox.counters(SANDBOX_TOKEN)
    assert after["requests"] == before["requests"] + 1
    assert after["rows"] == before["rows"] + 7
    entry = sandbox.log[-1]
    assert entry["target"] == "/api/purchases.json?limit=7" and entry["method"] == "GET"
    assert entry["token"] == token_hash(SANDBOX_TOKEN)
    assert SANDBOX_TOKEN not in repr(list(sandbox.log)) + repr(sandbox.counters())


def test_inserts_and_touches_while_paging(make_sandbox: Any) -> None:
    sb = make_sandbox(rate="off")
    before = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id")]
    inserted: list[int] = []
    touched: list[int] = []

    def mutate(s: Sandbox) -> None:
        inserted.extend(s.insert("purchases", 5))
        touched.extend(s.touch("purchases", [before[0], before[1]]))

    sb.after_requests(2, mutate)
    seen: list[int] = []
    last = 0
    with requests.Session() as s:
        while True:
            page = s.get(sb.base_url + f"purchases.json?where[id][$gt]={last}&limit=100",
                         headers=AUTH, timeout=30).json()
            if not page:
                break
            seen += [r["id"] for r in page]
            last = page[-1]["id"]
    assert len(inserted) == 5 and min(inserted) > before[-1]
    assert seen == before + inserted
    fresh = sb.query("SELECT id, createdAt, updatedAt FROM purchases WHERE id IN (?, ?, ?)",
                     (before[0], before[1], inserted[0]))
    assert all(r["updatedAt"] > "2025-07" for r in fresh)
    assert touched == before[:2]
    items = sb.insert("purchase-items", 2)  # items of the two newest purchases
    parents = {r["purchaseId"] for r in sb.query(
        f"SELECT purchaseId FROM purchase_items WHERE id >= {min(items)}")}
    assert parents == set(inserted[-2:])
    assert len(sb.touch("sales", 3)) == 3


def test_same_seed_same_data() -> None:
    def dump(seed: int) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(":memory:")
        generate(con, seed=seed, purchases=200)
        return [row for t in ("purchases", "purchase_items", "sales", "customers")
                for row in con.execute(f"SELECT * FROM {t} ORDER BY id")]

    assert dump(3) == dump(3)
    assert dump(3) != dump(4)


def test_scaled_counts(make_sandbox: Any) -> None:
    sb = make_sandbox(purchases=123, seed=5)
    assert sb.query("SELECT count(*) AS n FROM purchases") == [{"n": 123}]
    orphans = sb.query("SELECT count(*) AS n FROM purchases p WHERE saleId IS NOT NULL AND "
                       "NOT EXISTS (SELECT 1 FROM sales s WHERE s.id = p.saleId)")
    assert orphans == [{"n": 0}]


def test_query_is_read_only(sandbox: Sandbox) -> None:
    with pytest.raises(sqlite3.OperationalError):
        sandbox.query("DELETE FROM purchases")


def test_serve_context_manager() -> None:
    with serve(purchases=40, rate="off") as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/")
        assert status(base_url + "purchases.json") == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + "purchases.json", headers=AUTH, timeout=5)


def test_unknown_knob_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(TypeError, match="latency"):
        sandbox.configure(latencyms=1)
    with pytest.raises(ValueError, match="rate"):
        sandbox.configure(rate="fast")


def test_cli_runs_until_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--purchases", "30", "--rate", "off", "--qs", "latest"])
    stop = threading.Event()
    worker = threading.Thread(target=run, args=(args,), kwargs={"stop": stop})
    worker.start()
    try:
        for _ in range(200):
            out = capsys.readouterr().out
            if "sandbox at" in out:
                break
            time.sleep(0.02)
        base_url = out.split(" at ")[1].split()[0]
        assert f"token: {SANDBOX_TOKEN}" in out and "curl -H" in out
        assert status(base_url + "purchases.json") == 200
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
