"""sweep_snapshot: deleted records leave a snapshot atomically, against a real sandbox."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from jetti_frames import JettiClient, SnapshotError, read_snapshot, snapshot, snapshot_info
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import refresh_snapshot, sweep_snapshot

TOKEN = "sweep-test-t0ken-9c2d"
WHERE = {"purchaseType": "dropship"}


@pytest.fixture
def own(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(purchases=400, rate="off", tokens=(TOKEN,))


def client(sb: Sandbox) -> JettiClient:
    return JettiClient(TOKEN, base_url=sb.base_url, cache=False, progress=False,
                       get_rate=1000.0, page_size=100)


def test_sweep_drops_deleted_records_of_a_filtered_partitioned_snapshot(own: Sandbox,
                                                                        tmp_path: Path) -> None:
    path = tmp_path / "p"
    c = client(own)
    snapshot("purchases", path, where=WHERE, include=["PurchaseItem"],
             partition_by=("dateOrdered", "year"), client=c)
    before = read_snapshot(path)
    info_before = snapshot_info(path)
    assert info_before.swept_at is None and info_before.last_sweep == info_before.fetched_at
    matching = sorted(int(i) for i in before["id"].unique())
    gone = matching[::40]
    other = own.query("SELECT id FROM purchases WHERE purchaseType != 'dropship' LIMIT 2")
    own.delete("purchases", [*gone, *(r["id"] for r in other)])
    own.reset_counters()

    info = sweep_snapshot(path, client=c)

    left = len(matching) - len(gone)
    assert info.manifest["deleted_records"] == len(gone)
    pages = math.ceil(left / 100)
    assert pages <= info.manifest["sweep_requests"] == own.counters()["requests"] <= pages + 1
    assert info.watermark == info_before.watermark  # a sweep reads no changes
    after = read_snapshot(path)
    expected = before[~before["id"].isin(gone)].sort_values(["id", "purchase_items_id"])
    pd.testing.assert_frame_equal(
        after.sort_values(["id", "purchase_items_id"]).reset_index(drop=True),
        expected.reset_index(drop=True))
    assert len(after) < len(before) and after["id"].nunique() == left
    swept = snapshot_info(path)
    assert swept.swept_at is not None and swept.last_sweep == swept.swept_at
    assert swept.sweep_age is not None and swept.sweep_age.total_seconds() >= 0
    # a refresh after the sweep keeps its record of the sweep
    own.touch("purchases", [matching[1]])
    refreshed = refresh_snapshot(path, client=c)
    assert refreshed.swept_at == swept.swept_at and refreshed.rows == len(after)


def test_sweep_needs_an_id_column_and_a_snapshot(own: Sandbox, tmp_path: Path) -> None:
    c = client(own)
    with pytest.raises(SnapshotError, match="no snapshot"):
        sweep_snapshot(tmp_path / "missing", client=c)
    snapshot("purchase-statuses", tmp_path / "s", attributes=["name"], client=c)
    own.reset_counters()
    with pytest.raises(SnapshotError, match="no 'id' column"):
        sweep_snapshot(tmp_path / "s", client=c)
    assert own.counters()["requests"] == 0
