"""Wrong arguments to read/iter_*/explain/frame_dtypes/get are refused before any request.

A real sandbox over 127.0.0.1 with a token of this module only: its counters prove that nothing
was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jetti_frames.client import JettiClient
from jetti_frames.errors import JettiQueryError
from jetti_frames.options import check_options, record_id
from jetti_frames.sandbox import Sandbox

TOKEN = "arguments-t0ken-4b2e"

BAD_OPTIONS: dict[str, dict[str, Any]] = {
    "sep-empty": {"sep": ""},
    "sep-int": {"sep": 5},
    "sep-slash": {"sep": "/"},
    "sep-space": {"sep": " "},
    "sep-letters": {"sep": "x"},
    "on_page-int": {"on_page": 3},
    "include_mode": {"include_mode": "nested"},
    "dtype_backend": {"dtype_backend": "arrow"},
    "progress-str": {"progress": "no"},
    "limit-negative": {"limit": -1},
    "limit-float": {"limit": 2.5},
    "limit-bool": {"limit": True},
    "page_size-zero": {"page_size": 0},
    "page_size-str": {"page_size": "100"},
    "refresh-str": {"refresh": "yes"},
}
ENTRY_POINTS: dict[str, Callable[[JettiClient, dict[str, Any]], Any]] = {
    "read": lambda c, o: c.read("purchases", **o),
    "explain": lambda c, o: c.explain("purchases", **o),
    "iter_frames": lambda c, o: next(c.iter_frames("purchases", **o), None),
    "iter_pages": lambda c, o: next(c.iter_pages("purchases", **o), None),
    "iter_records": lambda c, o: next(c.iter_records("purchases", **o), None),
}
#: The options each entry point takes (iter_pages/iter_records have no frame options).
TAKES = {"iter_pages": {"limit", "page_size", "refresh", "progress"},
         "iter_records": {"limit", "page_size", "refresh", "progress"},
         "iter_frames": {"limit", "page_size", "refresh", "progress", "sep", "dtype_backend"}}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(purchases=120, rate="off", tokens=(TOKEN,)) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb: Sandbox) -> Iterator[JettiClient]:
    with JettiClient(TOKEN, base_url=sb.base_url, cache=False, progress=False,
                     get_rate=1000.0) as c:
        yield c


def sent(sb: Sandbox) -> int:
    return sb.counters(TOKEN)["requests"]


CASES = [pytest.param(entry, options, id=f"{entry}-{case}")
         for entry in ENTRY_POINTS for case, options in BAD_OPTIONS.items()
         if entry not in TAKES or next(iter(options)) in TAKES[entry]]


@pytest.mark.parametrize(("entry", "options"), CASES)
def test_bad_option_is_refused_before_any_request(sb: Sandbox, client: JettiClient, entry: str,
                                                  options: dict[str, Any]) -> None:
    name = next(iter(options))
    before = sent(sb)
    with pytest.raises(JettiQueryError, match=name):
        ENTRY_POINTS[entry](client, options)
    assert sent(sb) == before


def test_good_options_still_read(sb: Sandbox, client: JettiClient) -> None:
    seen: list[int] = []
    tables = client.read("purchases", include="PurchaseItem", include_mode="tables", sep=".",
                         dtype_backend="pyarrow", on_page=lambda pages, rows: seen.append(rows),
                         progress=None, limit=30, page_size=10)
    assert len(tables["purchases"]) == 30 and seen
    assert sent(sb) > 0
    frame = client.read("purchases", include="PurchaseStatus", sep="__", limit=3)
    assert "purchase_status__name" in frame.columns


@pytest.mark.parametrize("bad", ["../../x", "1/../2", " 12", "12abc", "", "-3", "١٢", 1.5,
                                 True, -1, None, [1]],
                         ids=repr)
def test_get_refuses_a_bad_id_before_any_request(sb: Sandbox, client: JettiClient,
                                                 bad: Any) -> None:
    before = sent(sb)
    with pytest.raises(JettiQueryError, match="id must be"):
        client.get("purchases", bad)
    assert sent(sb) == before


def test_get_takes_an_int_or_a_string_of_digits(sb: Sandbox, client: JettiClient) -> None:
    import numpy as np

    pid = int(sb.query("SELECT id FROM purchases LIMIT 1")[0]["id"])
    assert client.get("purchases", str(pid))["id"] == pid
    assert client.get("purchases", np.int64(pid))["id"] == pid


def test_check_options_leaves_unset_arguments_alone() -> None:
    check_options()
    check_options(limit=0, page_size=1, progress=None, on_page=print)
    assert record_id("007") == 7
