"""Warm reads: answers served from the cache file, parsed once, exactly as the server's.

Real sockets, real SQLite files: a fresh entry is read straight from the file (no request, no
allowance), an expired one or a refresh goes to the server, an entry naming ``Vary`` is left
to requests-cache, and the body of a cached answer equals the body the server sent.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from jetti_frames import JettiClient
from jetti_frames._cache import CachedAnswer, load_entry
from jetti_frames._wire import encode, encode_checked
from jetti_frames.errors import JettiQueryError
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import Settings
from jetti_frames.transport import Transport

TOKEN = "tok-Warm-31-secret"
PAGE = "purchases.json"
QUERY = "limit=20&order%5Battribute%5D=id"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(purchases=250, rate="off", tokens=(TOKEN,)) as sb:
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


def requests_seen(sb: Sandbox) -> int:
    return int(sb.counters(TOKEN)["requests"])


def test_a_warm_read_sends_nothing_and_spends_no_allowance(sandbox: Sandbox,
                                                           tmp_path: Path) -> None:
    frames = []
    for _ in range(2):
        with JettiClient(TOKEN, base_url=sandbox.base_url, cache=tmp_path / "c.sqlite",
                         progress=False, page_size=40) as client:
            frames.append(client.read("purchases"))
            stats = client.last_stats
            waited = client._transport.stats.limiter_wait
    pages = stats.cache_hits
    assert pages >= 250 // 40 and stats.requests == 0 and waited == 0
    assert requests_seen(sandbox) == pages  # the cold read's only
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_a_cached_answer_is_the_body_the_server_sent(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path / "c.sqlite") as cold:
        sent = cold.get(PAGE, QUERY)
    with make(sandbox, tmp_path / "c.sqlite") as warm:
        again = warm.get(PAGE, QUERY)
        answer = warm.session.get(warm.url(PAGE) + "?" + QUERY)
        assert warm.stats.cache_hits == 1 and warm.stats.network == 0
    assert again == sent and len(sent) == 20
    assert isinstance(answer, CachedAnswer) and answer.from_cache
    assert answer.jetti_body == sent  # parsed once, with the entry
    assert json.loads(answer.content) == sent and answer.json() == sent  # bytes on demand
    assert requests_seen(sandbox) == 1


def test_an_expired_entry_is_asked_for_again(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path / "c.sqlite", cache_expire=1) as t:
        t.get(PAGE, QUERY)
        t.get(PAGE, QUERY)
        assert t.stats.network == 1 and t.stats.cache_hits == 1
        time.sleep(1.2)
        t.get(PAGE, QUERY)
        assert t.stats.network == 2 and t.stats.cache_hits == 1
    assert requests_seen(sandbox) == 2


def test_a_refresh_never_reads_the_cache(sandbox: Sandbox, tmp_path: Path) -> None:
    with make(sandbox, tmp_path / "c.sqlite") as t:
        t.get(PAGE, QUERY)
        t.get(PAGE, QUERY, refresh=True)
        assert t.stats.network == 2 and t.stats.cache_hits == 0
        t.get(PAGE, QUERY)
        assert t.stats.cache_hits == 1
    assert requests_seen(sandbox) == 2


@pytest.mark.parametrize(("vary", "hit"), [("Accept", True), ("*", False)])
def test_an_entry_naming_vary_is_left_to_requests_cache(sandbox: Sandbox, tmp_path: Path,
                                                        vary: str, hit: bool) -> None:
    path = tmp_path / "c.sqlite"
    with make(sandbox, path) as t:
        sent = t.get(PAGE, QUERY)
    with sqlite3.connect(path) as con:  # the answer as a server that names Vary stores it
        [(key, value)] = con.execute("SELECT key, value FROM responses").fetchall()
        entry = json.loads(value)
        entry["headers"]["Vary"] = vary
        con.execute("UPDATE responses SET value = ? WHERE key = ?", (json.dumps(entry), key))
    with make(sandbox, path) as t:
        assert t.get(PAGE, QUERY) == sent
        assert (t.stats.cache_hits, t.stats.network) == ((1, 0) if hit else (0, 1))


def test_a_page_is_encoded_once_and_checked_for_the_server_limits() -> None:
    params = {"where": {"id": {"$gt": 7}}, "attributes": ["id", "reference"], "limit": 50}
    assert encode_checked(params) == encode(params)
    with pytest.raises(JettiQueryError, match="16 KiB"):
        encode_checked({"where": {"reference": "x" * (16 * 1024)}})
    with pytest.raises(JettiQueryError, match="bracket levels"):
        encode_checked({"where": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=20)


@hyp_settings(max_examples=200, deadline=None)
@given(value=_JSON, ascii_only=st.booleans())
def test_an_entry_parses_as_json_parses_it(value: Any, ascii_only: bool) -> None:
    """Integers beyond 64 bits, lone surrogates and every float come back as :mod:`json` reads
    them (orjson alone would turn the first into floats and refuse the second)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert load_entry(text) == json.loads(text)
    assert load_entry(text.encode("utf-8", "surrogatepass")) == json.loads(text)


def test_values_orjson_cannot_read_are_read_by_json() -> None:
    big = [2**64, -(2**63) - 1, 10**30]
    assert load_entry(json.dumps(big)) == big
    assert all(type(v) is int for v in load_entry(json.dumps(big)))
    nan, inf = load_entry("[NaN, 1e400]")
    assert math.isnan(nan) and inf == math.inf
    assert load_entry('{"a": "\\ud800"}') == {"a": "\ud800"}
