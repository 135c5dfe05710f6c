"""The transport against the sandbox over real sockets: cache, rate limit, retries, errors."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import qs_codec
import requests

from jetti_frames import JettiClient
from jetti_frames.errors import (
    JettiAuthError,
    JettiConfigError,
    JettiConnectionError,
    JettiError,
    JettiHTTPError,
    JettiNotFoundError,
    JettiQueryError,
    JettiRateLimitError,
    JettiServerError,
    JettiTimeoutError,
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
    import jetti_frames._failures as failures
    import jetti_frames.transport as transport

    monkeypatch.setattr(transport, "MAX_THROTTLED", 1)
    monkeypatch.setattr(failures, "retry_after", lambda response: 0.01)
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


@contextlib.contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A one-off HTTP server on 127.0.0.1 answering with ``handler``; yields its API base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/"
    finally:
        server.shutdown()
        server.server_close()


def test_unreadable_json_is_retried_and_not_cached(tmp_path: Path) -> None:
    with serve_handler(_BadJSONOnce) as base:
        settings = Settings(base_url=base, token="t", cache_path=tmp_path / "c.sqlite",
                            get_rate=100.0, backoff=0.01)
        with Transport(settings) as t:
            assert t.get("purchases.json") == [{"id": 1}, {"id": 2}]
            assert t.stats.retries == 1
            assert t.get("purchases.json") == [{"id": 1}, {"id": 2}]
            assert t.stats.cache_hits == 1 and _BadJSONOnce.calls == 2


class _RedirectLoop(BaseHTTPRequestHandler):
    """Answers every request with a redirect to itself."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_other_request_failures_are_jetti_errors(tmp_path: Path) -> None:
    with serve_handler(_RedirectLoop) as base:
        settings = Settings(base_url=base, token=SECRET, cache_path=tmp_path / "c.sqlite",
                            get_rate=500.0)
        with Transport(settings) as t, pytest.raises(JettiServerError,
                                                     match="TooManyRedirects") as info:
            t.get("purchases.json")
        assert isinstance(info.value.__cause__, requests.TooManyRedirects)


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


# -- tokens and settings ----------------------------------------------------------------------
def test_surrounding_whitespace_of_the_token_is_stripped(sandbox: Sandbox,
                                                         tmp_path: Path) -> None:
    with make(sandbox, tmp_path, token=f" {SECRET}\r\n", cache=False) as t:
        assert len(t.get("purchases.json", "limit=2")) == 2
    assert sandbox.counters(SECRET)["requests"] == 1


@pytest.mark.parametrize("token", [f"{SECRET}\nx", f"{SECRET}\x00", f"{SECRET}\u20ac",
                                   f"{SECRET}\x85x"])
def test_a_token_no_header_can_carry_is_refused_without_its_value(token: str) -> None:
    with pytest.raises(JettiAuthError) as info:
        Settings.from_env(token=token)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.args)
    with pytest.raises(JettiAuthError):
        JettiClient(token, base_url="http://127.0.0.1:9/api/", cache=False)


@pytest.mark.parametrize(("token", "ok"), [(f"{SECRET}\n", True), (f"{SECRET}\nx", False)])
def test_cli_token_with_a_newline(sandbox: Sandbox, tmp_path: Path, token: str,
                                  ok: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETTI_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-m", "jetti_frames.cli", "read", "purchases", "--limit", "3",
         "--attributes", "id", "--format", "json", "--no-cache", "--quiet",
         "--base-url", sandbox.base_url, "--token", token],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert SECRET not in done.stderr and SECRET not in done.stdout
    if ok:
        assert done.returncode == 0, done.stderr
        assert len(json.loads(done.stdout)) == 3
    else:
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and "token" in lines[0]


@pytest.mark.parametrize("options", [
    {"base_url": "ftp://example.com/api/"}, {"base_url": "api.jetti.io/api/"},
    {"base_url": "http://127.0.0.1:port/api/"},
    {"get_rate": 0}, {"get_rate": -1.0}, {"write_rate": 0}, {"max_in_flight": 0},
    {"timeout": 0}, {"timeout": -5}, {"retries": -1}, {"page_size": 0},
    {"deadline": 0}, {"rate_limit_wait": -1}, {"timeout": "soon"},
])
def test_settings_that_cannot_work_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(JettiConfigError) as info:
        Settings.from_env(**options)
    assert isinstance(info.value, ValueError) and next(iter(options)) in str(info.value)
    with pytest.raises(JettiConfigError):
        JettiClient("t", cache=False, **options)


@pytest.mark.parametrize(("var", "value"), [("JETTI_CACHE_EXPIRE", "abc"),
                                            ("JETTI_PAGE_SIZE", "1.5x"),
                                            ("JETTI_DEADLINE", "soon")])
def test_non_numeric_environment_values_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                    var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(JettiConfigError, match=var):
        Settings.from_env(token="t")


# -- connection failures ----------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("base", "cause"), [
    (f"http://127.0.0.1:{_closed_port()}/api/", "refused"),
    ("http://jetti-frames-test.invalid/api/", "name resolution"),
])
def test_unreachable_hosts_fail_fast_and_name_the_cause(base: str, cause: str) -> None:
    settings = Settings(base_url=base, token=SECRET, cache=False, retries=5, backoff=0.01,
                        get_rate=200.0)
    with Transport(settings) as t, pytest.raises(JettiConnectionError) as info:
        t.get("purchases.json")
    err = info.value
    assert err.cause == cause and cause in str(err)
    assert isinstance(err, JettiServerError)
    assert isinstance(err.__cause__, requests.RequestException)
    assert t.stats.network == 2 and t.stats.retries == 1
    assert SECRET not in str(err)


@pytest.mark.parametrize("cause", ["TLS", "proxy"])
def test_tls_and_proxy_failures_name_the_cause(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                               cause: str) -> None:
    base = sandbox.base_url.replace("http://", "https://")  # the sandbox speaks plain HTTP
    if cause == "proxy":
        for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
        base = "http://jetti-frames-test.invalid/api/"
    settings = Settings(base_url=base, token=SECRET, cache=False, retries=1, backoff=0.01,
                        get_rate=200.0)
    with Transport(settings) as t, pytest.raises(JettiConnectionError) as info:
        t.get("purchases.json")
    assert info.value.cause == cause and info.value.__cause__ is not None
    assert t.stats.network == 2


def test_a_429_wait_past_the_deadline_raises_at_once(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.configure(faults={"rate": 1.0, "kinds": ["429"], "burst": 1})  # Retry-After: 1
    with make(sandbox, tmp_path, cache=False, deadline=0.5) as t, \
            pytest.raises(JettiTimeoutError):
        t.get("purchases.json")
    assert sandbox.counters(SECRET)["status_429"] == 1


def test_timeouts_keep_their_retries_and_name_the_cause(sandbox: Sandbox,
                                                        tmp_path: Path) -> None:
    sandbox.configure(latency_ms=400)
    with make(sandbox, tmp_path, cache=False, timeout=0.05, retries=2) as t, \
            pytest.raises(JettiConnectionError) as info:
        t.get("purchases.json", "limit=1")
    assert info.value.cause == "timeout" and "timeout" in str(info.value)
    assert isinstance(info.value.__cause__, requests.Timeout)
    assert t.stats.network == 3 and t.stats.retries == 2


# -- deadline and 429 storms --------------------------------------------------------------
def test_a_read_past_its_deadline_raises(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.configure(latency_ms=100)
    with JettiClient(SECRET, base_url=sandbox.base_url, cache=False, get_rate=200.0,
                     max_in_flight=2, page_size=10, deadline=0.4, progress=False) as client, \
            pytest.raises(JettiTimeoutError, match=r"deadline=0\.4") as info:
        client.read("purchases", attributes=["id"])
    assert isinstance(info.value, TimeoutError)
    assert sandbox.counters(SECRET)["requests"] < 40  # 400 rows in pages of 10


def test_the_wait_on_a_429_storm_is_bounded(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.configure(faults={"rate": 1.0, "kinds": ["429"], "burst": 1})  # Retry-After: 1
    with make(sandbox, tmp_path, cache=False, rate_limit_wait=0.5) as t, \
            pytest.raises(JettiRateLimitError, match="rate_limit_wait") as info:
        t.get("purchases.json")
    assert info.value.status == 429
    assert sandbox.counters(SECRET)["status_429"] == 1


# -- error classes --------------------------------------------------------------------------
def test_a_400_is_a_query_error_and_an_http_error(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path) as t:
        try:
            t.get("purchases.json", "attributes[0]=noSuchField")
        except JettiHTTPError as exc:
            assert isinstance(exc, JettiQueryError) and isinstance(exc, ValueError)
            assert exc.status == 400 and exc.problem.get("status") == 400
        else:
            pytest.fail("a 400 was not raised")


class _StalledPager:
    """A pager that asks for nothing while not done (a defect the transport must report)."""

    done = False
    max_rows = 1
    parallel = 1

    def next_requests(self) -> list[Any]:
        return []


def test_a_stalled_pager_is_a_jetti_error(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path) as t, pytest.raises(JettiError, match="stalled"):
        list(t.run_pager(_StalledPager(), _build))  # type: ignore[arg-type]
