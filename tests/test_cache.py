"""The HTTP cache over real sockets and real SQLite files: exact keys, JSON, checked answers,
damaged files, cache directories."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from requests_cache import CachedSession
from requests_cache.cache_keys import create_key
from requests_cache.policy.settings import DEFAULT_IGNORED_PARAMS

from jetti_frames import JettiClient
from jetti_frames.cli import main
from jetti_frames.errors import JettiCacheError, JettiServerError
from jetti_frames.query import encode
from jetti_frames.sandbox import Sandbox
from jetti_frames.sandbox.data import FAKE_SECRET
from jetti_frames.settings import CACHE_FILE, Settings
from jetti_frames.transport import Transport, answer_problem, cache_key

TOKEN = "tok-Cache-77-secret"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(purchases=300, rate="off", tokens=(TOKEN,)) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _fresh(sandbox: Sandbox) -> None:
    sandbox.configure(faults=None, latency_ms=0)
    sandbox.reset_counters()


def make(sb: Sandbox, path: Path, **kw: Any) -> Transport:
    options: dict[str, Any] = {"base_url": sb.base_url, "token": TOKEN, "cache_path": path,
                               "get_rate": 200.0, "backoff": 0.01}
    options.update(kw)
    return Transport(Settings.from_env(**options))


def ids(sb: Sandbox, where: str = "") -> set[int]:
    return {r["id"] for r in sb.query(f"SELECT id FROM purchases {where}")}


# -- keys: the exact request ---------------------------------------------------------------
def test_null_not_null_and_unfiltered_reads_share_one_cache_file(sandbox: Sandbox,
                                                                 tmp_path: Path) -> None:
    client = JettiClient(TOKEN, base_url=sandbox.base_url, cache=tmp_path / "c.sqlite",
                         get_rate=200.0, progress=False)
    with client:
        not_null = client.read("purchases", where={"saleId": {"$ne": None}}, attributes=["id"])
        null = client.read("purchases", where={"saleId": None}, attributes=["id"])
        every = client.read("purchases", attributes=["id"])
        again = client.read("purchases", where={"saleId": None}, attributes=["id"])
    assert set(not_null["id"]) == ids(sandbox, "WHERE saleId IS NOT NULL")
    assert set(null["id"]) == ids(sandbox, "WHERE saleId IS NULL") != set()
    assert set(every["id"]) == ids(sandbox)
    assert set(again["id"]) == set(null["id"]) and client.last_stats.requests == 0


_VALUES = st.one_of(st.none(), st.just(""), st.integers(-2, 2), st.sampled_from(["a", "b", " "]))
_CONDITIONS = st.one_of(_VALUES, st.dictionaries(st.sampled_from(["$ne", "$in", "$gte"]),
                                                 st.one_of(_VALUES, st.lists(_VALUES,
                                                                             max_size=3)),
                                                 max_size=2))
_WHERE = st.dictionaries(st.sampled_from(["saleId", "notes", "x"]), _CONDITIONS, max_size=3)


def test_reads_whose_query_strings_differ_never_share_a_key(tmp_path: Path) -> None:
    with Transport(Settings(base_url="http://127.0.0.1:9/api/", token=TOKEN,
                            cache_path=tmp_path / "c.sqlite")) as t:

        def key(where: dict[str, Any]) -> tuple[str, str]:
            query = encode({"where": where, "limit": 100})
            prepared = t.session.prepare_request(
                requests.Request("GET", t.url("purchases.json") + "?" + query))
            assert isinstance(t.session, CachedSession)
            return query, t.session.cache.create_key(prepared)

        @hyp_settings(max_examples=300, derandomize=True, deadline=None)
        @given(_WHERE, _WHERE)
        def differ(a: dict[str, Any], b: dict[str, Any]) -> None:
            (qa, ka), (qb, kb) = key(a), key(b)
            assert (qa == qb) == (ka == kb)

        differ()


def test_the_same_read_in_a_new_process_is_a_hit(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    query = encode({"where": {"saleId": None}, "limit": 7})
    with make(sandbox, path) as t:
        first = t.get("purchases.json", query)
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from jetti_frames.settings import Settings\n"
        "from jetti_frames.transport import Transport\n"
        "s = Settings(base_url=sys.argv[1], token=sys.argv[2], cache_path=Path(sys.argv[3]))\n"
        "with Transport(s) as t:\n"
        "    rows = t.get('purchases.json', sys.argv[4])\n"
        "print(json.dumps([t.stats.cache_hits, t.stats.network, rows]))\n")
    out = subprocess.run([sys.executable, "-c", script, sandbox.base_url, TOKEN, str(path), query],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    hits, network, rows = json.loads(out)
    assert (hits, network) == (1, 0) and rows == first
    assert sandbox.counters()["requests"] == 1


def test_entries_of_the_old_key_scheme_are_never_served(sandbox: Sandbox,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with make(sandbox, path) as t:
        account = t.account
    url = sandbox.base_url + "purchases.json?where%5BsaleId%5D=&limit=3"

    def old_key(request: Any, **kwargs: Any) -> str:  # the scheme of earlier versions
        return f"{account}-{create_key(request, **kwargs)}"

    old = CachedSession(str(path), backend="sqlite", allowable_codes=(200,), key_fn=old_key,
                        ignored_parameters=DEFAULT_IGNORED_PARAMS)
    with old:
        old.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert len(old.cache.responses) == 1
    with make(sandbox, path) as t:
        assert t.cache_info()["entries_total"] == 0  # dropped: this version can serve nothing
        rows = t.get("purchases.json", "where%5BsaleId%5D=&limit=3")
        assert t.stats.cache_hits == 0 and t.stats.network == 1
        assert {r["id"] for r in rows} <= ids(sandbox, "WHERE saleId IS NULL")
        # the old entry was dropped when the cache opened
        assert t.cache_info()["entries"] == 1 and t.cache_info()["entries_total"] == 1
        assert t.clear_cache() == 1
        assert t.cache_info()["entries_total"] == 0
    assert sandbox.counters()["requests"] == 2


def test_cache_key_is_the_exact_request() -> None:
    base = "http://h/api/purchases.json"
    keys = {cache_key("GET", base + q, "acc") for q in
            ("", "?where[saleId]=", "?where[saleId][$ne]=", "?where[notes]=", "?a=1&b=2",
             "?b=2&a=1")}
    assert len(keys) == 6
    assert cache_key("GET", base, "acc") != cache_key("GET", base, "acc2")
    assert cache_key("GET", base, "acc") != cache_key("HEAD", base, "acc")


# -- what is stored ------------------------------------------------------------------------
def test_the_cache_stores_json_without_the_token(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with make(sandbox, path) as t:
        t.get("purchases.json", "limit=2")
        t.get(f"purchases/{min(ids(sandbox))}.json")
    con = sqlite3.connect(path)
    blobs = [row[0] for row in con.execute("SELECT value FROM responses")]
    con.close()
    assert len(blobs) == 2
    stored = [json.loads(blob) for blob in blobs]  # a pickle would not parse
    assert {s["status_code"] for s in stored} == {200}
    assert all("/api/purchases" in s["url"] for s in stored)
    data = path.read_bytes()
    assert TOKEN.encode() not in data and b"Bearer" not in data


@pytest.mark.parametrize("kind", ["object", "no-id", "unordered"])
def test_a_malformed_answer_raises_and_is_never_stored(sandbox: Sandbox, tmp_path: Path,
                                                       kind: str) -> None:
    sandbox.configure(faults={"rate": 1.0, "kinds": [kind]})
    sandbox.after_requests(1, lambda sb: sb.configure(faults=None))
    with make(sandbox, tmp_path / "c.sqlite") as t:
        with pytest.raises(JettiServerError) as info:
            t.get("purchases.json", "limit=5")
        assert info.value.status == 200 and "malformed" in str(info.value)
        assert t.cache_info()["entries"] == 0
        rows = t.get("purchases.json", "limit=5")  # the server is asked again
        assert [r["id"] for r in rows] == sorted(ids(sandbox))[:5]
    assert sandbox.counters()["requests"] == 2


def test_a_read_over_a_malformed_page_raises_a_jetti_error(sandbox: Sandbox,
                                                           tmp_path: Path) -> None:
    sandbox.configure(faults={"rate": 1.0, "kinds": ["no-id"]})
    with JettiClient(TOKEN, base_url=sandbox.base_url, cache=tmp_path / "c.sqlite",
                     get_rate=200.0, progress=False) as client, \
            pytest.raises(JettiServerError, match="without an integer id"):
        client.read("purchases", attributes=["id", "total"])
    with Transport(Settings(base_url=sandbox.base_url, token=TOKEN,
                            cache_path=tmp_path / "c.sqlite")) as t:
        assert t.cache_info()["entries_total"] == 0


@pytest.mark.parametrize(("query", "body", "bad"), [
    ("", [{"id": 2}, {"id": 2}], True),
    ("order%5Battribute%5D=id&order%5Bdescending%5D=true", [{"id": 1}, {"id": 2}], True),
    ("order%5Battribute%5D=id&order%5Bdescending%5D=true", [{"id": 2}, {"id": 1}], False),
    ("order%5Battribute%5D=id", [{"id": 1}, {"id": 2}], False),
    ("order%5Battribute%5D=total", [{"id": 2}, {"id": 1}], False),
    ("", [{"id": "1"}], True),
    ("", [{"id": True}], True),
    ("", [1, 2], True),
    ("", [], False),
])
def test_answer_problem_rules(query: str, body: Any, bad: bool) -> None:
    assert (answer_problem("purchases.json", query, body) is not None) is bad


# -- damaged files and directories ---------------------------------------------------------
def _filled(sb: Sandbox, path: Path) -> None:
    with make(sb, path) as t:
        for i in range(30):
            t.get("purchases.json", f"limit=50&from={i % 6}&x={i}")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_cache_file_is_moved_aside(sandbox: Sandbox, tmp_path: Path,
                                             damage: str) -> None:
    path = tmp_path / "c.sqlite"
    _filled(sandbox, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated"
                     else bytes(range(256)) * (len(data) // 256))
    sandbox.reset_counters()
    with pytest.warns(RuntimeWarning, match="moved aside"), make(sandbox, path) as t:
        assert len(t.get("purchases.json", "limit=3")) == 3
        assert t.get("purchases.json", "limit=3") and t.stats.cache_hits == 1
    assert sandbox.counters()["requests"] == 1
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("c.sqlite.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() != path.read_bytes()


def _garble_pages(path: Path) -> None:
    """Overwrite the start of every page but the header's: SQLite opens it, then fails."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(page, len(data), page):
        data[offset:offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def test_damage_found_when_opening_moves_the_file_aside(sandbox: Sandbox,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    _filled(sandbox, path)
    _garble_pages(path)
    with pytest.warns(RuntimeWarning, match="unreadable.*moved aside"), make(sandbox, path) as t:
        assert len(t.get("purchases.json", "limit=50&from=0&x=0")) == 50
        assert t.stats.network == 1 and t.stats.cache_hits == 0
    assert [p.name.split(".damaged-")[0] for p in tmp_path.glob("*.damaged-*")
            if not p.name.endswith(("-wal", "-shm"))] == ["c.sqlite"]


def test_damage_found_later_says_how_to_clear_and_the_advice_works(
        sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.sqlite"
    _filled(sandbox, path)
    with make(sandbox, path) as t:  # opened while the file was sound
        _garble_pages(path)
        with pytest.raises(JettiCacheError) as info:
            t.get("purchases.json", "limit=50&from=0&x=0")
    message = str(info.value)
    assert str(path) in message and "jetti-frames cache clear" in message
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    code = main(["cache", "clear", "--cache", str(path), "--token", TOKEN,
                 "--base-url", sandbox.base_url])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.startswith("jetti-frames: warning: the HTTP cache file") and "moved aside" in err
    with make(sandbox, path) as t:
        assert len(t.get("purchases.json", "limit=50&from=0&x=0")) == 50
        assert t.stats.network == 1


def test_cache_given_as_a_directory_holds_the_file(sandbox: Sandbox, tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    new = tmp_path / "new"
    for cache, where in ((existing, existing), (str(existing), existing),
                         (f"{new}/", new)):
        with JettiClient(TOKEN, base_url=sandbox.base_url, cache=cache, get_rate=200.0,
                         progress=False) as client:
            client.get("purchases", min(ids(sandbox)))
            assert client.cache_info()["path"] == str(where / CACHE_FILE)
        assert (where / CACHE_FILE).is_file()


def test_cache_path_setting_resolves_directories(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        s = Settings(cache_path=Path(d))
        assert s.resolved_cache_path == Path(d) / CACHE_FILE
        assert Settings.from_env(cache_path=f"{tmp_path}/x/").cache_path == \
            tmp_path / "x" / CACHE_FILE


def test_entries_of_older_versions_leave_the_file(make_sandbox: Any, tmp_path: Path) -> None:
    """Entries written before credential stripping hold secrets: opening the cache drops them."""
    sb = make_sandbox(rate="off", purchases=50, tokens=(TOKEN,))
    path = tmp_path / "c.sqlite"
    with make(sb, path) as t:
        account = t.account

    def old_key(request: Any, **kwargs: Any) -> str:  # the scheme of earlier versions
        return f"{account}-{create_key(request, **kwargs)}"

    old = CachedSession(str(path), backend="sqlite", allowable_codes=(200,), key_fn=old_key,
                        ignored_parameters=DEFAULT_IGNORED_PARAMS)
    with old:  # a pickled answer with every credential field, as earlier versions stored it
        for query in ("limit=5", "limit=6"):
            old.get(f"{sb.base_url}dropship-providers.json?{query}",
                    headers={"Authorization": f"Bearer {TOKEN}"})
    secret = FAKE_SECRET.encode()
    assert any(secret in p.read_bytes() for p in tmp_path.iterdir())
    with make(sb, path) as t:
        assert t.cache_info()["entries_total"] == 0
        t.get("dropship-providers.json", "limit=5")
    assert not any(secret in p.read_bytes() for p in tmp_path.iterdir())
