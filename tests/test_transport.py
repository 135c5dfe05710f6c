"""The transport against the sandbox over real sockets: cache, rate limit, retries, errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import qs_codec

from jetti_frames.errors import (
    JettiAuthError,
    JettiNotFoundError,
    JettiQueryError,
    JettiRateLimitError,
    JettiServerError,
)
from jetti_frames.paging import Pager
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN, Settings
from jetti_frames.transport import Transport, account_id, explain_seconds

SECRET = "tok-Zq81-secret-value"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(purchases=400, rate="off", tokens=(SANDBOX_TOKEN, SECRET, "other-token")) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _fresh(sandbox: Sandbox) -> None:
    sandbox.configure(rate="off", faults=None, latency_ms=0, max_limit=100)
    sandbox.reset_counters()


def make(sb: Sandbox, tmp_path: Path, token: str = SECRET, **kw: object) -> Transport:
    """A fast transport: the sandbox's allowance is off, so the client may go fast too."""
    options: dict[str, object] = {"base_url": sb.base_url, "token": token,
                                  "cache_path": tmp_path / "cache" / "http.sqlite",
                                  "get_rate": 200.0, "backoff": 0.01}
    options.update(kw)
    return Transport(Settings.from_env(**options))


# -- rate limit -------------------------------------------------------------------------------
def test_burst_of_20_at_the_real_allowance_gets_no_429(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.configure(rate="default")  # 2 GET/s, bucket of 2
    with Transport(Settings(base_url=sandbox.base_url, token=SECRET, cache=False,
                            max_in_flight=8)) as t:
        items = [("purchases.json", f"limit=1&from={i}") for i in range(20)]
        pages = list(t.map(items))
    assert len(pages) == 20 and all(len(p) == 1 for p in pages)
    counts = sandbox.counters(SECRET)
    assert counts["requests"] == 20 and counts["status_429"] == 0
    assert t.stats.network == 20 and t.stats.throttled == 0


def test_limiter_is_shared_per_account(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path) as a, make(sandbox, tmp_path / "b") as b, \
            make(sandbox, tmp_path, token="other-token") as c:
        assert a._get_limiter is b._get_limiter
        assert a._get_limiter is not c._get_limiter
        assert a._get_limiter is not a._write_limiter


def test_429_waits_for_retry_after_and_sends_again(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.configure(faults={"rate": 1.0, "kinds": ["429"], "burst": 1})
    sandbox.after_requests(1, lambda sb: sb.configure(faults=None))
    with make(sandbox, tmp_path, cache=False) as t:
        assert len(t.get("purchases.json", "limit=2")) == 2
    assert sandbox.counters(SECRET)["status_429"] == 1
    assert (t.stats.throttled, t.stats.retries, t.stats.errors) == (1, 0, 0)
    assert t.stats.network == 2


def test_429_that_never_ends_raises(sandbox: Sandbox, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import jetti_frames.transport as transport

    monkeypatch.setattr(transport, "MAX_THROTTLED", 1)
    monkeypatch.setattr(transport, "_retry_after", lambda response: 0.01)
    sandbox.configure(faults={"rate": 1.0, "kinds": ["429"], "burst": 1})
    with make(sandbox, tmp_path, cache=False) as t, pytest.raises(JettiRateLimitError):
        t.get("purchases.json")
    assert sandbox.counters(SECRET)["status_429"] == 2


# -- retries --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["503", "drop"])
def test_server_errors_and_dropped_connections_are_retried(sandbox: Sandbox, tmp_path: Path,
                                                           kind: str) -> None:
    sandbox.configure(faults={"rate": 1.0, "kinds": [kind]})
    sandbox.after_requests(2, lambda sb: sb.configure(faults=None))
    with make(sandbox, tmp_path) as t:
        page = t.get("purchases.json", "limit=5")
        assert len(page) == 5  # never a short page from a half-read body
        assert t.stats.retries == 2 and t.stats.errors == 0
        assert sandbox.counters(SECRET)["faults"] == 2
        # only the 200 was cached: the same request is now a hit
        assert t.get("purchases.json", "limit=5") == page
        assert t.stats.cache_hits == 1 and sandbox.counters(SECRET)["requests"] == 3


def test_retries_are_bounded(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.configure(faults={"rate": 1.0, "kinds": ["503"]})
    with make(sandbox, tmp_path, retries=2) as t, pytest.raises(JettiServerError) as info:
        t.get("purchases.json")
    assert info.value.status == 503
    assert sandbox.counters(SECRET)["requests"] == 3
    assert t.cache_info()["entries"] == 0


def test_dropped_connections_every_time_raise_server_error(sandbox: Sandbox,
                                                           tmp_path: Path) -> None:
    sandbox.configure(faults={"rate": 1.0, "kinds": ["drop"]})
    with make(sandbox, tmp_path, retries=1) as t, pytest.raises(JettiServerError):
        t.get("purchases.json")
    assert sandbox.counters(SECRET)["requests"] == 2


class _BadJSONOnce(BaseHTTPRequestHandler):
    """Answers 200 with a syntactically broken body first, then a good one."""

    protocol_version = "HTTP/1.1"
    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        body = b'[{"id": 1}, {"id": 2' if type(self).calls == 1 else b'[{"id": 1}, {"id": 2}]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_unreadable_json_is_retried_and_not_cached(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BadJSONOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/api/"
        settings = Settings(base_url=base, token="t", cache_path=tmp_path / "c.sqlite",
                            get_rate=100.0, backoff=0.01)
        with Transport(settings) as t:
            assert t.get("purchases.json") == [{"id": 1}, {"id": 2}]
            assert t.stats.retries == 1
            assert t.get("purchases.json") == [{"id": 1}, {"id": 2}]
            assert t.stats.cache_hits == 1 and _BadJSONOnce.calls == 2
    finally:
        server.shutdown()
        server.server_close()


# -- errors -----------------------------------------------------------------------------------
def test_401_is_an_auth_error_without_the_token(sandbox: Sandbox, tmp_path: Path) -> None:
    bad = "wrong-" + SECRET
    with make(sandbox, tmp_path, token=bad) as t, pytest.raises(JettiAuthError) as info:
        t.get("purchases.json")
    err = info.value
    assert err.status == 401 and isinstance(err, PermissionError)
    for text in (str(err), repr(err), repr(err.args), str(err.problem), repr(t)):
        assert bad not in text and SECRET not in text


def test_400_and_404_map_to_typed_errors(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path) as t:
        with pytest.raises(JettiQueryError) as info:
            t.get("purchases.json", "attributes[0]=noSuchField")
        assert info.value.status == 400 and info.value.detail
        assert info.value.detail in str(info.value)
        with pytest.raises(JettiNotFoundError):
            t.get("no-such-things.json")
        with pytest.raises(JettiNotFoundError):
            t.get("purchases/99999999.json")
    assert t.stats.retries == 0 and t.stats.errors == 3


# -- cache ------------------------------------------------------------------------------------
def test_second_identical_get_is_a_cache_hit(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path) as t:
        first = t.get("purchases.json", "limit=3")
        served = sandbox.counters()["requests"]
        assert t.get("purchases.json", "limit=3") == first
        assert sandbox.counters()["requests"] == served == 1
        assert (t.stats.network, t.stats.cache_hits) == (1, 1)
        t.get("purchases.json", "limit=3", refresh=True)  # bypasses the cache read
        assert sandbox.counters()["requests"] == 2 and t.stats.cache_hits == 1
        info = t.cache_info()
        assert info["enabled"] and info["entries"] == 1 and info["size"] > 0
        assert Path(info["path"]).exists()
        assert t.clear_cache() == 1 and t.cache_info()["entries"] == 0
        t.get("purchases.json", "limit=3")
        assert sandbox.counters()["requests"] == 3


def test_cache_can_be_disabled(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path, cache=False) as t:
        t.get("purchases.json", "limit=1")
        t.get("purchases.json", "limit=1")
        assert t.cache_info()["enabled"] is False
    assert sandbox.counters()["requests"] == 2
    assert not (tmp_path / "cache").exists()


def test_tokens_never_share_entries_nor_reach_the_file_or_logs(
        sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jetti_frames")
    with make(sandbox, tmp_path) as a, make(sandbox, tmp_path, token="other-token") as b:
        a.get("purchases.json", "limit=2")
        b.get("purchases.json", "limit=2")  # same URL, other account: goes to the network
        assert sandbox.counters(SECRET)["requests"] == 1
        assert sandbox.counters("other-token")["requests"] == 1
        assert b.stats.cache_hits == 0
        b.get("purchases.json", "limit=2")
        assert b.stats.cache_hits == 1
        assert a.cache_info()["entries"] == 1 and a.cache_info()["entries_total"] == 2
    assert "limit=2" in caplog.text and "cache_hit=True" in caplog.text
    files = list((tmp_path / "cache").iterdir())
    assert files
    for path in files:
        data = path.read_bytes()
        for token in (SECRET, "other-token"):
            assert token.encode() not in data
    assert SECRET not in caplog.text and "other-token" not in caplog.text
    assert account_id(SECRET, sandbox.base_url) != account_id("other-token", sandbox.base_url)


# -- concurrency and paging -----------------------------------------------------------------
def test_in_flight_target_follows_latency(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.configure(latency_ms=600)
    with make(sandbox, tmp_path, get_rate=2.0, cache=False, max_in_flight=8) as t:
        t.get("purchases.json", "limit=1")
        assert t.latency is not None and t.latency >= 0.6
        assert t.in_flight_target >= 3  # ceil(2 x 0.6) + 1
    with make(sandbox, tmp_path, get_rate=2.0, cache=False, max_in_flight=2) as t:
        t.get("purchases.json", "limit=1")
        assert t.in_flight_target == 2


def test_map_keeps_input_order(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path, cache=False) as t:
        got = list(t.map([("purchases.json", f"limit=1&from={i}") for i in range(12)]))
    ids = [page[0]["id"] for page in got]
    assert ids == sorted(ids) and len(set(ids)) == 12


def _build(req):  # type: ignore[no-untyped-def]
    return "purchases.json", qs_codec.encode({**req.params(), "attributes": ["id"]})


@pytest.mark.parametrize("cap", [37, 100])
def test_run_pager_reads_every_row_once(sandbox: Sandbox, tmp_path: Path, cap: int) -> None:
    sandbox.configure(max_limit=cap)
    with make(sandbox, tmp_path, max_in_flight=4) as t:
        pager = Pager(100, parallel=4)
        ids = [r["id"] for _, recs in t.run_pager(pager, _build) for r in recs]
    expected = [r["id"] for r in sandbox.query("SELECT id FROM purchases ORDER BY id")]
    assert sorted(ids) == expected and len(ids) == len(set(ids))
    assert sandbox.counters()["requests"] == pager.stats.requests == t.stats.network


def test_explain_seconds() -> None:
    assert explain_seconds(60, rate=2.0, latency=1.5) == 31.5
    assert explain_seconds(10, cached=10) == 0.0
