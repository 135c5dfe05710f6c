"""Values whose text order is not their order: date-times at other offsets than UTC (the
sandbox's ``zones="mixed"``) and numbers as text (``numbers="text"``, as a PostgreSQL
``NUMERIC`` column reaches a Node server).  The reads that compare values (a user order read by
position pages, the local sort of a read in parts, an incremental refresh) still return the
exact rows in the exact order, typed as UTC instants and floats, in as many requests as with
JSON numbers and UTC texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from jetti_frames import JettiClient
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN
from jetti_frames.snapshot import read_snapshot, refresh_snapshot, snapshot


@pytest.fixture(scope="module")
def texts() -> Any:
    with Sandbox(purchases=1500, rate="off", zones="mixed", numbers="text") as sb:
        yield sb


def make_client(sb: Sandbox) -> JettiClient:
    return JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                       page_size=100, get_rate=1000.0)


def stored(sb: Sandbox, attribute: str) -> pd.DataFrame:
    """``id`` and ``attribute`` as the database holds them (UTC instants, numbers)."""
    frame = pd.DataFrame(sb.query(f"SELECT id, {attribute} FROM purchases"))
    if not pd.api.types.is_numeric_dtype(frame[attribute]):
        frame[attribute] = pd.to_datetime(frame[attribute], utc=True, format="ISO8601")
    return frame


def first_rows(frame: pd.DataFrame, attribute: str, descending: bool,
               limit: int | None) -> pd.DataFrame:
    """The rows in ``attribute`` order, nulls last, ties by id."""
    by_id = frame.sort_values("id")
    present = by_id[by_id[attribute].notna()].sort_values(attribute, ascending=not descending,
                                                          kind="stable")
    rows = pd.concat([present, by_id[by_id[attribute].isna()]])
    return rows if limit is None else rows.head(limit)


def test_the_sandbox_writes_values_out_of_text_order(texts: Sandbox,
                                                     auth: dict[str, str]) -> None:
    raw = requests.get(texts.base_url + "purchases.json", headers=auth, timeout=10,
                       params={"attributes[0]": "id", "attributes[1]": "createdAt",
                               "attributes[2]": "total", "limit": "20"}).json()
    totals = [r["total"] for r in raw]
    assert all(isinstance(t, str) for t in totals)
    assert sorted(totals) != [t for _, t in sorted((float(t), t) for t in totals)]
    offsets = {r["createdAt"][-6:] for r in raw}
    assert len(offsets) > 3 and "+00:00" in offsets
    texts = [r["createdAt"] for r in raw]
    instants = [pd.Timestamp(t) for t in texts]
    assert sorted(texts) != [t for _, t in sorted(zip(instants, texts, strict=True))]


@pytest.mark.parametrize(("order", "limit"), [("-dateOrdered", 1200), ("dateOrdered", 555),
                                              ("-createdAt", None), ("cancelledAt", 300),
                                              ("-total", 1000), ("-total", None), ("tax", 444)])
def test_ordered_reads_are_exact(texts: Sandbox, order: str, limit: int | None) -> None:
    attribute = order.lstrip("-")
    client = make_client(texts)
    texts.reset_counters()
    got = client.read("purchases", attributes=["id", attribute], order=order, limit=limit)
    want = first_rows(stored(texts, attribute), attribute, order.startswith("-"), limit)
    dtype = str(got[attribute].dtype)
    assert dtype == "Float64" or (dtype.startswith("datetime64") and "UTC" in dtype)
    assert list(got["id"]) == list(want["id"])
    assert (got[attribute].to_numpy() == want[attribute].to_numpy()).sum() == want[
        attribute].notna().sum()
    if limit is not None:  # position pages answer the ranges (about 87 new rows each): the
        # values compared, not their texts, which would give most of them up
        assert texts.counters()["requests"] <= -(-limit // 87) + 1


def test_a_read_in_parts_is_sorted_by_values(texts: Sandbox) -> None:
    """Ids past what one request carries: the parts' rows are merged and sorted locally."""
    ids = [int(i) for i in stored(texts, "total")["id"]][::3]
    got = make_client(texts).read("purchases", attributes=["id", "total"],
                                  where={"id": {"$in": ids}}, order="-total")
    want = first_rows(stored(texts, "total"), "total", True, None)
    assert list(got["id"]) == [i for i in want["id"] if i in set(ids)]


def test_refresh_equals_a_fresh_snapshot(tmp_path: Path) -> None:
    with Sandbox(purchases=400, rate="off", zones="mixed", numbers="text") as sb:
        client = make_client(sb)
        before = snapshot("purchases", tmp_path / "p", client=client)
        touched = sb.touch("purchases", 17)
        info = refresh_snapshot(tmp_path / "p", client=client)
        snapshot("purchases", tmp_path / "fresh", client=make_client(sb))
        got = read_snapshot(tmp_path / "p")
        pd.testing.assert_frame_equal(got, read_snapshot(tmp_path / "fresh"))
        assert info["changed_records"] == len(touched)
        assert pd.Timestamp(info["watermark"]) > pd.Timestamp(before["watermark"])
        assert (got[got["id"].isin(touched)]["updatedAt"]
                > pd.Timestamp(before["watermark"])).all()
