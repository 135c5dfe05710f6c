"""The account's allowance shared by separate processes, and by other integrations of the account.

Two real Python processes, each with its own transport, pull from one rate-limited sandbox
(2 GET/s, bucket of 2) through the same cache directory; another integration is the sandbox's
``drain`` knob.  Counts come from the sandbox's counters.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from jetti_frames.sandbox import Sandbox
from jetti_frames.sandbox.limits import LeakyBucket
from jetti_frames.settings import SANDBOX_TOKEN, Settings
from jetti_frames.transport import Transport, account_id

REPO = Path(__file__).resolve().parents[1]
#: One process: wait for "go" on stdin, pull distinct pages, print one JSON line of its counts.
CHILD = """
import json, sys
from jetti_frames.settings import Settings
from jetti_frames.transport import Transport

base_url, cache, first, pages = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with Transport(Settings.from_env(base_url=base_url, cache_path=cache)) as t:
    items = [("purchases.json", f"limit=10&from={i}") for i in range(first, first + pages)]
    print("ready", flush=True)
    sys.stdin.readline()
    got = sum(len(page) for page in t.map(items))
print(json.dumps({"rows": got, "network": t.stats.network, "throttled": t.stats.throttled}))
"""


def pull_in_processes(sb: Sandbox, cache: Path, processes: int, pages: int) -> list[dict]:
    """``processes`` separate Python processes pull ``pages`` distinct pages each, at once."""
    env = {**os.environ, "JETTI_API_TOKEN": SANDBOX_TOKEN,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, sb.base_url, str(cache),
                               str(i * pages), str(pages)], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(processes)]
    try:
        for proc in procs:  # every child has imported and opened its transport
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.communicate()[1][-2000:]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outs]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def schedule_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("ratelimit-"))


def test_two_processes_share_the_allowance_and_draw_no_429(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(purchases=200, max_limit=10, latency_ms=300)  # 2 GET/s, bucket of 2
    results = pull_in_processes(sb, tmp_path / "http-cache.sqlite", processes=2, pages=8)
    assert [r["rows"] for r in results] == [80, 80]
    counts = sb.counters(SANDBOX_TOKEN)
    assert counts["status_429"] == 0 and counts["requests"] == 16
    assert sum(r["throttled"] for r in results) == 0
    # every start of both processes was taken from the one schedule of the account
    account = account_id(SANDBOX_TOKEN, sb.base_url)
    state = json.loads((tmp_path / f"ratelimit-{account}-get.json").read_text())
    assert state["sent"] == 16


def test_the_schedule_file_holds_no_token(make_sandbox: Callable[..., Sandbox],
                                          tmp_path: Path) -> None:
    token = "tok-7Hq2-shared-secret"
    sb = make_sandbox(tokens=(token,))
    with Transport(Settings(base_url=sb.base_url, token=token,
                            cache_path=tmp_path / "http-cache.sqlite")) as t:
        t.get("purchases.json", "limit=2")
        t.get("purchases.json", "limit=3")
    files = schedule_files(tmp_path)
    account = account_id(token, sb.base_url)
    assert [p.name for p in files if p.suffix == ".json"] == [f"ratelimit-{account}-get.json"]
    for path in files:
        assert token not in path.name and token.encode() not in path.read_bytes()
    assert json.loads(files[0].read_text())["sent"] == 2


@pytest.mark.parametrize(("jitter_ms", "latency_ms"), [(0, 0), (10, 0), (40, 300)])
def test_another_integration_of_the_account_draws_no_429(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path,
        caplog: pytest.LogCaptureFixture, jitter_ms: float, latency_ms: float) -> None:
    caplog.set_level(logging.DEBUG, logger="jetti_frames.transport")
    sb = make_sandbox(purchases=300, max_limit=10, drain=0.5,  # it uses 0.5 of the 2 GET/s
                      jitter_ms=jitter_ms, latency_ms=latency_ms, connect_ms=20)
    with Transport(Settings(base_url=sb.base_url, token=SANDBOX_TOKEN,
                            cache_path=tmp_path / "http-cache.sqlite")) as t:
        pages = list(t.map([("purchases.json", f"limit=10&from={i}") for i in range(16)]))
    assert sum(len(p) for p in pages) == 160
    counts, other = sb.counters(SANDBOX_TOKEN), sb.other_counters(SANDBOX_TOKEN)
    assert counts["status_429"] == 0 and counts["requests"] == 16 and t.stats.throttled == 0
    assert other["requests"] >= 3 and other["status_429"] == 0  # it kept its share too
    # the client saw the bucket full (X-RateLimit-Remaining: 0) and gave way
    assert "in use elsewhere" in caplog.text


def test_alone_on_the_account_the_client_never_gives_way(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jetti_frames.transport")
    sb = make_sandbox(purchases=100, max_limit=10)
    with Transport(Settings(base_url=sb.base_url, token=SANDBOX_TOKEN,
                            cache_path=tmp_path / "http-cache.sqlite")) as t:
        list(t.map([("purchases.json", f"limit=10&from={i}") for i in range(6)]))
    assert sb.counters(SANDBOX_TOKEN)["status_429"] == 0
    assert sb.other_counters(SANDBOX_TOKEN) == {"requests": 0, "status_429": 0}
    assert "in use elsewhere" not in caplog.text


def test_network_jitter_alone_on_the_account_is_not_another_integration(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Starts at the steady pace leave one slot, which 0.5 ms of jitter take at 20 GET/s (a
    tenth of Jetti's intervals keeps the run short): the client must not take that for someone
    else and give way, as it did twice in a row."""
    caplog.set_level(logging.DEBUG, logger="jetti_frames.transport")
    sb = make_sandbox(purchases=300, max_limit=10, get_rate=20.0, jitter_ms=10,
                      latency_ms=100)
    with Transport(Settings(base_url=sb.base_url, token=SANDBOX_TOKEN, get_rate=20.0,
                            cache_path=tmp_path / "http-cache.sqlite")) as t:
        pages = list(t.map([("purchases.json", f"limit=10&from={i % 30}&n={i}")
                            for i in range(120)]))
    assert sum(len(p) for p in pages) == 1200
    assert sb.counters(SANDBOX_TOKEN)["status_429"] == 0 and t.stats.throttled == 0
    assert "fuller than expected" in caplog.text  # the jitter did take slots
    assert "in use elsewhere" not in caplog.text


def test_cache_hits_spend_nothing_of_the_schedule(make_sandbox: Callable[..., Sandbox],
                                                  tmp_path: Path) -> None:
    sb = make_sandbox(purchases=50)
    settings = Settings(base_url=sb.base_url, token=SANDBOX_TOKEN,
                        cache_path=tmp_path / "http-cache.sqlite")
    for _ in range(2):
        with Transport(settings) as t:
            t.get("purchases.json", "limit=2")
    assert t.stats.cache_hits == 1 and sb.counters()["requests"] == 1
    state = json.loads(next(p for p in schedule_files(tmp_path) if p.suffix == ".json")
                       .read_text())
    assert state["sent"] == 1


def test_without_a_cache_the_schedule_stays_in_the_process(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jetti_frames.transport")
    sb = make_sandbox(purchases=50, tokens=("no-cache-token",))
    with Transport(Settings(base_url=sb.base_url, token="no-cache-token", cache=False)) as t:
        assert len(t.get("purchases.json", "limit=2")) == 2
        assert not t._get_limiter.schedule.shared
    assert "shared in this process only" in caplog.text
    assert sb.counters()["status_429"] == 0


def test_an_unwritable_schedule_falls_back_to_the_process(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jetti_frames.transport")
    token = "unwritable-token"
    sb = make_sandbox(purchases=50, tokens=(token,))
    account = account_id(token, sb.base_url)
    (tmp_path / f"ratelimit-{account}-get.json").mkdir()  # the state file cannot be written
    with Transport(Settings(base_url=sb.base_url, token=token,
                            cache_path=tmp_path / "http-cache.sqlite")) as t:
        assert [len(t.get("purchases.json", f"limit={n}")) for n in (2, 3)] == [2, 3]
        assert not t._get_limiter.schedule.shared
    assert "shared in this process only" in caplog.text
    assert sb.counters()["requests"] == 2 and sb.counters()["status_429"] == 0


def test_a_damaged_schedule_file_starts_afresh(make_sandbox: Callable[..., Sandbox],
                                               tmp_path: Path) -> None:
    token = "damaged-token"
    sb = make_sandbox(purchases=50, tokens=(token,))
    path = tmp_path / f"ratelimit-{account_id(token, sb.base_url)}-get.json"
    path.write_bytes(b'{"next": 1e300, "sent": "x", "interval": ')
    with Transport(Settings(base_url=sb.base_url, token=token,
                            cache_path=tmp_path / "http-cache.sqlite")) as t:
        assert len(t.get("purchases.json", "limit=2")) == 2
        assert t._get_limiter.schedule.shared
    assert json.loads(path.read_text())["sent"] == 1


def test_the_sandbox_drain_takes_its_share_of_the_bucket(
        make_sandbox: Callable[..., Sandbox]) -> None:
    bucket = LeakyBucket(rate=2.0, capacity=2, drain=1.0)
    answers = [bucket.take(now=t / 4) for t in range(16)]  # ours at 4/s over 3.75 s
    assert (bucket.other_requests, bucket.other_refused) == (4, 0)  # at 0, 1, 2 and 3 s
    # 2 slots at first and 2/s drained: 9.5 slots, of which the other integration took 4
    assert sum(ok for ok, _, _ in answers) == 5
    sb = make_sandbox(purchases=20, drain=1.0)
    auth = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
    first = requests.get(f"{sb.base_url}purchases.json", headers=auth, timeout=10)
    assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "0"
    assert sb.other_counters(SANDBOX_TOKEN) == {"requests": 1, "status_429": 0}
    assert sb.counters(SANDBOX_TOKEN)["requests"] == 1
    with pytest.raises(ValueError, match="drain"):
        sb.configure(drain=2.0)


@pytest.mark.parametrize(("burst", "before_any_answer"), [(2, 2), (1, 1)])
def test_an_account_seen_alone_uses_the_second_slot_of_the_bucket(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, burst: int,
        before_any_answer: int) -> None:
    sb = make_sandbox(purchases=100, max_limit=10, latency_ms=400)  # bucket of 2, 2 GET/s
    with Transport(Settings(base_url=sb.base_url, token=SANDBOX_TOKEN, get_burst=burst,
                            cache_path=tmp_path / "http-cache.sqlite")) as t:
        t.get("purchases.json", "limit=1")  # its answer shows the bucket as ours alone
        time.sleep(1.0)  # idle: the bucket drains
        sb.reset_counters()
        pages = list(t.map([("purchases.json", f"limit=10&from={i}") for i in range(6)]))
    assert sum(len(p) for p in pages) == 60
    log = list(sb.log)
    first_answer = min(e["time"] for e in log)
    # the bucket's second slot is used at once, the third start waits for the steady pace
    assert sum(e["time"] - e["seconds"] < first_answer for e in log) == before_any_answer
    counts = sb.counters(SANDBOX_TOKEN)
    assert counts["status_429"] == 0 and counts["requests"] == 6 and t.stats.throttled == 0


def test_a_process_that_has_seen_no_answer_never_bursts(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    """Another integration may hold a slot of the bucket when the first request goes out; and
    the first request on a connection arrives late (a TLS handshake), closer to the next one."""
    sb = make_sandbox(purchases=100, max_limit=10, latency_ms=300, drain=0.5, connect_ms=60)
    with Transport(Settings(base_url=sb.base_url, token=SANDBOX_TOKEN,
                            cache_path=tmp_path / "http-cache.sqlite")) as t:
        pages = list(t.map([("purchases.json", f"limit=10&from={i}") for i in range(6)]))
    assert sum(len(p) for p in pages) == 60
    counts, other = sb.counters(SANDBOX_TOKEN), sb.other_counters(SANDBOX_TOKEN)
    assert counts["status_429"] == 0 and counts["requests"] == 6 and t.stats.throttled == 0
    assert other["status_429"] == 0
