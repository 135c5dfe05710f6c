"""Date-times written at other offsets than UTC (the sandbox's ``zones="mixed"``): their text
order is not their time order, and the reads that compare dates (a user order read by
position pages, the local sort of a read in parts, an incremental refresh) still return the
exact rows, typed as UTC instants, in as many requests as with UTC texts."""

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
def zoned() -> Any:
    with Sandbox(purchases=1500, rate="off", zones="mixed") as sb:
        yield sb


def make_client(sb: Sandbox) -> JettiClient:
    return JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                       page_size=100, get_rate=1000.0)


def stored(sb: Sandbox, attribute: str) -> pd.DataFrame:
    """``id`` and ``attribute`` as the database holds them (UTC instants)."""
    frame = pd.DataFrame(sb.query(f"SELECT id, {attribute} FROM purchases"))
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


def test_the_sandbox_writes_instants_out_of_text_order(zoned: Sandbox,
                                                       auth: dict[str, str]) -> None:
    raw = requests.get(zoned.base_url + "purchases.json", headers=auth, timeout=10,
                       params={"attributes[0]": "id", "attributes[1]": "createdAt",
                               "limit": "20"}).json()
    offsets = {r["createdAt"][-6:] for r in raw}
    assert len(offsets) > 3 and "+00:00" in offsets
    texts = [r["createdAt"] for r in raw]
    instants = [pd.Timestamp(t) for t in texts]
    assert sorted(texts) != [t for _, t in sorted(zip(instants, texts, strict=True))]


@pytest.mark.parametrize(("order", "limit"), [("-dateOrdered", 1200), ("dateOrdered", 555),
                                              ("-createdAt", None), ("cancelledAt", 300)])
def test_ordered_reads_are_exact(zoned: Sandbox, order: str, limit: int | None) -> None:
    attribute = order.lstrip("-")
    client = make_client(zoned)
    zoned.reset_counters()
    got = client.read("purchases", attributes=["id", attribute], order=order, limit=limit)
    want = first_rows(stored(zoned, attribute), attribute, order.startswith("-"), limit)
    assert str(got[attribute].dtype).startswith("datetime64") and "UTC" in str(
        got[attribute].dtype)
    assert list(got["id"]) == list(want["id"])
    assert (got[attribute].to_numpy() == want[attribute].to_numpy()).sum() == want[
        attribute].notna().sum()
    if limit is not None:  # position pages answer the ranges (about 87 new rows each): the
        # instants compared, not the texts, which would give most of them up
        assert zoned.counters()["requests"] <= -(-limit // 87) + 1


def test_refresh_equals_a_fresh_snapshot(tmp_path: Path) -> None:
    with Sandbox(purchases=400, rate="off", zones="mixed") as sb:
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
