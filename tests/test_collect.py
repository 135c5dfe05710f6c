"""Page-by-page conversion gives the frame the whole-records path gives, value for value.

The reference is the record path: every page merged by id (:func:`merge`), sorted
(:func:`sort_records`), then one call of ``frame_from_records`` / ``frame_tables``.
Pages come from the sandbox over a real socket, then are reshaped here (duplicates with other
``updatedAt``, off-spec enum values, fields the catalogue lacks whose kind changes from page to
page) to reach every rule that depends on the whole result.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jetti_frames import JettiClient
from jetti_frames._build import Order, build_query
from jetti_frames._collect import Collector, merge, order_kind, sort_records
from jetti_frames.drift import DriftLog
from jetti_frames.flatten import frame_from_records, frame_tables
from jetti_frames.sandbox import Sandbox
from jetti_frames.schema import FrameSpec, empty_frame
from jetti_frames.settings import SANDBOX_TOKEN

FAST = {"get_rate": 1000.0, "progress": False}
Pages = list[list[dict[str, Any]]]


@pytest.fixture
def client(sandbox: Sandbox, tmp_path: Path) -> Iterator[JettiClient]:
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=tmp_path / "c.sqlite",
                     **FAST) as c:
        yield c


def record_path(pages: Pages, spec: FrameSpec, *, order: Order | None = None,
                limit: int | None = None, tables: bool = False,
                dtype_backend: Any = "numpy_nullable", sep: str = "_") -> Any:
    by_id: dict[Any, dict[str, Any]] = {}
    for page in pages:
        merge(by_id, copy.deepcopy(page))
    records = sort_records(list(by_id.values()), order, order_kind(spec.resource, order))[:limit]
    if tables:
        return frame_tables(records, spec, sep=sep, dtype_backend=dtype_backend)
    if not records:
        return empty_frame(spec, sep=sep, dtype_backend=dtype_backend)
    return frame_from_records(records, spec, sep=sep, dtype_backend=dtype_backend)


def collected(pages: Pages, spec: FrameSpec, *, order: Order | None = None,
              limit: int | None = None, tables: bool = False,
              dtype_backend: Any = "numpy_nullable", sep: str = "_", batch: int = 25,
              drift: bool = False) -> Any:
    c = Collector(spec, order=order, sep=sep, dtype_backend=dtype_backend, tables=tables,
                  batch=batch, drift=DriftLog() if drift else None)
    for page in pages:
        c.add(copy.deepcopy(page))
    return c.result(limit)


def assert_same(pages: Pages, spec: FrameSpec, *, batch: int = 25, **options: Any) -> Any:
    """The frame(s) of both paths are equal, converted in batches of ``batch`` records or in
    one batch."""
    want = record_path(pages, spec, **options)
    for size, drift in ((batch, False), (batch, True), (10**9, False)):
        got = collected(pages, spec, batch=size, drift=drift, **options)
        if isinstance(want, dict):
            assert list(got) == list(want)
            for name in want:
                pd.testing.assert_frame_equal(got[name], want[name])
        else:
            pd.testing.assert_frame_equal(got, want)
    return got


def pages_of(client: JettiClient, resource: str, **options: Any) -> Pages:
    return [list(p) for p in client.iter_pages(resource, page_size=40, **options)]


def ids(pages: Pages) -> set[int]:
    return {r["id"] for p in pages for r in p}


def spec_of(resource: str, **options: Any) -> FrameSpec:
    return build_query(resource, **options).spec


def order_of(order: Any) -> Order | None:
    return build_query("purchases", order=order).order


# -- shapes of a read -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy_nullable", "pyarrow"])
def test_every_column_of_purchases(client: JettiClient, backend: str) -> None:
    where = {"id": {"$lte": 100000 + 3 * 400}}
    pages = pages_of(client, "purchases", where=where)
    assert len(pages) > 5
    df = assert_same(pages, spec_of("purchases"), dtype_backend=backend)
    assert len(df) == len(ids(pages)) > 300 and df.shape[1] > 100


def test_joined_has_many_and_nested_belongs_to(client: JettiClient) -> None:
    include = [{"model": "PurchaseItem", "attributes": ["id", "quantity", "purchaseId"]},
               "PurchaseStatus", "DropshipProvider"]
    where = {"id": {"$lte": 100000 + 3 * 300}}
    pages = pages_of(client, "purchases", where=where, include=include)
    df = assert_same(pages, spec_of("purchases", include=include))
    assert len(df) > len(ids(pages))  # several rows for a purchase with several items
    nested = [{"model": "Sale", "include": ["Customer"]}]
    pages = pages_of(client, "purchases", where=where, include=nested,
                     attributes=["id", "saleId", "total"])
    assert_same(pages, spec_of("purchases", include=nested, attributes=["id", "saleId",
                                                                         "total"]))


def test_tables_mode(client: JettiClient) -> None:
    pages = pages_of(client, "purchases", where={"id": {"$lte": 100000 + 3 * 200}},
                     include=["PurchaseItem", "PurchaseStatus"])
    tables = assert_same(pages, spec_of("purchases", include=["PurchaseItem",
                                                              "PurchaseStatus"]), tables=True)
    assert set(tables) == {"purchases", "purchase_items", "purchase_statuses"}
    plain = pages_of(client, "purchase-statuses")
    assert_same(plain, spec_of("purchase-statuses"), tables=True)
    assert_same([], spec_of("purchase-statuses"), tables=True)
    assert_same([], spec_of("purchases", include="PurchaseItem"), tables=True)


@pytest.mark.parametrize("order", ["-total", "-dateOrdered", ("updatedAt", "desc"),
                                   "purchaseType", {"attribute": "total", "nullsFirst": True}])
def test_ordered_and_limited(client: JettiClient, order: Any) -> None:
    pages = pages_of(client, "purchases", where={"id": {"$lte": 100000 + 3 * 250}},
                     attributes=["id", "total", "dateOrdered", "updatedAt", "purchaseType"])
    spec = spec_of("purchases", attributes=["id", "total", "dateOrdered", "updatedAt",
                                            "purchaseType"])
    df = assert_same(pages, spec, order=order_of(order))
    assert df["id"].tolist() != sorted(df["id"].tolist())
    assert_same(pages, spec, order=order_of(order), limit=17)
    assert_same(pages, spec, limit=0)


def test_unknown_fields_of_included_records(client: JettiClient) -> None:
    pages = pages_of(client, "purchases", where={"id": {"$lte": 100000 + 3 * 120}},
                     include=["PurchaseStatus"], attributes=["id", "total"])
    assert any(r["purchase_status"] and "companyId" in r["purchase_status"]
               for p in pages for r in p)  # the server sends a field the catalogue lacks
    assert_same(pages, spec_of("purchases", include=["PurchaseStatus"],
                               attributes=["id", "total"]))


# -- what only the whole result decides --------------------------------------------------

def reshaped(pages: Pages, seed: int) -> Pages:
    """The same pages with hazards: later versions, odd enums, drifting unknown fields."""
    rnd = random.Random(seed)
    out = copy.deepcopy(pages)
    flat = [r for p in out for r in p]
    for i, page in enumerate(out):
        for r in page:
            pick = rnd.random()
            if pick < 0.1:
                r["purchaseType"] = f"odd-{rnd.randint(1, 3)}"  # an off-spec enum value
            if i == 2:
                r["extraInt"] = rnd.randint(0, 9)
            elif i == 4 and (pick < 0.5 or r is page[0]):
                # ints, then floats (at least one, however the read cut its pages): a number
                r["extraInt"] = 1.5 if r is page[0] else rnd.choice([1.5, 2])
            if i == 3:
                r["extraWhen"] = "2024-05-04T09:42:00+00:00"
            elif i == 5 and pick < 0.3:
                r["extraWhen"] = "not a date"  # dates, then text: a string column
            if i == 1:
                r["neverSet"] = None
    newer = []
    for r in rnd.sample(flat, 25):  # a later version in a later page, or an older one
        again = copy.deepcopy(r)
        again["total"] = -1.0
        again["purchaseType"] = "odd-late"
        again["updatedAt"] = "2099-01-01T00:00:00Z" if rnd.random() < 0.6 else \
            "1999-01-01T00:00:00Z"
        again["lateOnly"] = {"kept": rnd.random() < 0.5}
        newer.append(again)
    out.append(newer[:12])
    out.insert(3, newer[12:])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("backend", ["numpy_nullable", "pyarrow"])
def test_duplicates_enums_and_unknown_fields(client: JettiClient, seed: int,
                                             backend: str) -> None:
    where = {"id": {"$lte": 100000 + 3 * 300}}
    pages = reshaped(pages_of(client, "purchases", where=where), seed)
    spec = spec_of("purchases")
    df = assert_same(pages, spec, dtype_backend=backend)
    assert {"extraInt", "extraWhen"} <= set(df.columns) and "neverSet" not in df.columns
    assert str(df["extraWhen"].dtype) in ("string", "string[pyarrow]")
    assert str(df["extraInt"].dtype) in ("Float64", "double[pyarrow]")
    assert df["id"].is_unique and (df["total"] == -1).sum() > 0
    assert_same(pages, spec, order=order_of("-updatedAt"), limit=50, dtype_backend=backend)
    assert_same(pages, spec, tables=True, dtype_backend=backend)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_split_into_pages(data: st.DataObject) -> None:
    """Small records of every field kind, cut into pages anyhow, with repeated ids."""
    spec = FrameSpec.of("purchase-statuses", None, extra_kinds=None)
    values = st.one_of(st.none(), st.integers(-5, 5), st.floats(-2, 2, allow_nan=False),
                       st.sampled_from(["x", "2024-01-01T00:00:00Z"]), st.booleans())
    record = st.fixed_dictionaries(
        {"id": st.integers(1, 12), "name": st.one_of(st.none(), st.text("ab", max_size=2)),
         "level": st.sampled_from(["default", "danger", "zz", "aa", None]),
         "updatedAt": st.sampled_from([None, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"])},
        optional={"free": values, "more": values})
    records = data.draw(st.lists(record, max_size=30))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=5)))
    pages = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    order = data.draw(st.sampled_from([None, Order("name"), Order("updatedAt", True, True)]))
    limit = data.draw(st.one_of(st.none(), st.integers(0, 8)))
    assert_same(pages, spec, order=order, limit=limit, batch=data.draw(st.integers(1, 9)))


# -- through read() -------------------------------------------------------------------------

def test_read_equals_the_record_path(client: JettiClient) -> None:
    include = [{"model": "PurchaseItem", "attributes": ["quantity"]}, "PurchaseStatus"]
    where = {"purchaseType": "dropship", "total": {"$gte": 50}}
    df = client.read("purchases", where=where, include=include)
    pages = pages_of(client, "purchases", where=where, include=include)
    pd.testing.assert_frame_equal(df, record_path(pages, spec_of("purchases", where=where,
                                                                 include=include)))
    assert client.last_stats.rows == len(ids(pages))


def test_records_changed_while_paging_keep_their_last_version(
        make_sandbox: Any, tmp_path: Path) -> None:
    """Versions of a record in two pages (a page, then the consistency pass): the later wins,
    its item rows with it."""
    sb = make_sandbox(rate="off", purchases=1200, latency_ms=5)
    ids = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id")]
    sb.after_requests(4, lambda s: (s.touch("purchases", ids[:30] + ids[-30:]),
                                    s.insert("purchases", 20)))
    include = [{"model": "PurchaseItem", "attributes": ["id", "quantity"]}]
    options: dict[str, Any] = {"attributes": ["id", "notes", "updatedAt"], "include": include}
    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=tmp_path / "c.sqlite",
                     page_size=50, **FAST) as c:
        df = c.read("purchases", **options)
        assert c.last_stats.rows == 1220
        now = [list(p) for p in c.iter_pages("purchases", refresh=True, page_size=50,
                                             **options)]
    pd.testing.assert_frame_equal(df, record_path(now, spec_of("purchases", **options)))
    assert (df.drop_duplicates("id")["notes"].str.startswith("updated at")).sum() == 60
