"""The snapshot package: its import, the write_dataset stream, old manifests, empty snapshots."""

from __future__ import annotations

import importlib
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import jetti_frames
from jetti_frames.client import JettiClient
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import MANIFEST, read_snapshot, refresh_snapshot, snapshot_info, writing
from jetti_frames.snapshot.store import _Target
from jetti_frames.snapshot.writing import _write_version

TOKEN = "snapshot-package-t0ken-77"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(purchases=120, rate="off", tokens=(TOKEN,)) as sandbox:
        yield sandbox


def make_client(sb: Sandbox) -> JettiClient:
    return JettiClient(TOKEN, base_url=sb.base_url, cache=False, progress=False, page_size=50,
                       get_rate=1000.0)


def test_import_gives_the_module_and_the_module_writes_snapshots(sb: Sandbox,
                                                                 tmp_path: Path) -> None:
    module = importlib.import_module("jetti_frames.snapshot")
    import jetti_frames.snapshot as aliased
    from jetti_frames import snapshot

    assert isinstance(module, types.ModuleType)
    assert aliased is module and jetti_frames.snapshot is module and snapshot is module
    assert module.snapshot is not module and callable(module.snapshot)
    info = snapshot("purchases", tmp_path / "p", client=make_client(sb))  # the README's call
    assert info == module.snapshot_info(tmp_path / "p")
    assert info.rows == 120


def test_partitions_are_hive_folders_the_manifest_lists(sb: Sandbox, tmp_path: Path) -> None:
    client = make_client(sb)
    info = jetti_frames.snapshot("purchases", tmp_path / "p", client=client,
                                 partition_by=("dateOrdered", "month"), row_group_size=7)
    on_disk = sorted(p.relative_to(tmp_path / "p").as_posix()
                     for p in (tmp_path / "p").rglob("*.parquet"))
    files = info.manifest["files"]
    assert [f["path"] for f in files] == on_disk
    assert all(f["path"].split("/")[0] == f"dateOrdered_month={f['partition']}"
               for f in files if f["partition"] is not None)
    assert sum(f["rows"] for f in files) == info.rows == 120
    fragment = next(pads.dataset(str(tmp_path / "p" / files[0]["path"])).get_fragments())
    assert max(rg.num_rows for rg in fragment.row_groups) <= 7  # max_rows_per_group
    refreshed = refresh_snapshot(tmp_path / "p", client=client)
    assert refreshed.rows == 120 and refreshed.changed_records == 0
    assert refreshed.manifest["files"] != [] and all(
        f["partition"] is not None or f["path"].startswith("dateOrdered_month=__HIVE")
        for f in refreshed.manifest["files"])


def test_empty_snapshot_keeps_every_dtype(sb: Sandbox, tmp_path: Path) -> None:
    client = make_client(sb)
    where = {"id": {"$lt": 0}}
    include = ["PurchaseStatus", "PurchaseItem"]
    jetti_frames.snapshot("purchases", tmp_path / "p", where=where, include=include,
                          client=client)
    expected = client.read("purchases", where=where, include=include)
    got = read_snapshot(tmp_path / "p")
    assert got.empty
    pd.testing.assert_series_equal(got.dtypes, expected.dtypes)


def test_an_old_manifest_without_files_still_reads(sb: Sandbox, tmp_path: Path) -> None:
    """Before empty snapshots kept an empty file, their manifests listed no file at all."""
    client = make_client(sb)
    where = {"id": {"$lt": 0}}
    jetti_frames.snapshot("purchases", tmp_path / "p", where=where, client=client)
    expected = read_snapshot(tmp_path / "p")
    manifest = json.loads((tmp_path / "p" / MANIFEST).read_text())
    for entry in manifest["files"]:
        (tmp_path / "p" / entry["path"]).unlink()
    manifest["files"] = []
    (tmp_path / "p" / MANIFEST).write_text(json.dumps(manifest))
    assert snapshot_info(tmp_path / "p").files == 0
    pd.testing.assert_frame_equal(read_snapshot(tmp_path / "p"), expected)


def test_a_page_with_new_columns_starts_files_of_the_wider_schema(tmp_path: Path) -> None:
    pages = [pd.DataFrame({"id": pd.array([1, 2], dtype="Int64")}),
             pd.DataFrame({"id": pd.array([3], dtype="Int64"),
                           "extra": pd.array(["x"], dtype="string")})]
    manifest: dict[str, Any] = {"format": "jetti-snapshot/1", "resource": "purchases",
                                "query": {"attributes": ["id"]}, "options": {},
                                "partition_by": None}
    started = pd.Timestamp("2024-05-04T09:42:00+00:00").to_pydatetime()
    info = _write_version(_Target.of(tmp_path / "p"), {"id": pd.Int64Dtype()}, None,
                          manifest, pages, dict, row_group_size=100, started=started,
                          max_updated=None)
    assert info.files == 2 and info.columns == ("id", "extra")
    got = read_snapshot(tmp_path / "p")
    expected = pd.DataFrame({"id": pd.array([1, 2, 3], dtype="Int64"),
                             "extra": pd.array([None, None, "x"], dtype="string")})
    pd.testing.assert_frame_equal(got, expected)


def test_row_groups_hold_a_bounded_amount_of_data_not_row_group_size_rows(
        sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write_dataset holds a file's rows until a row group is full: wide rows (two includes,
    hundreds of columns) make smaller groups, so what is held never grows with the read."""
    client = make_client(sb)
    include = ["PurchaseStatus", "DropshipProvider"]
    jetti_frames.snapshot("purchases", tmp_path / "whole", include=include, client=client)
    budget = 64 * 1024
    monkeypatch.setattr(writing, "BUFFER_BYTES", budget)
    info = jetti_frames.snapshot("purchases", tmp_path / "p", include=include, client=client)
    groups = []  # (rows, bytes) of every row group written
    for entry in info.manifest["files"]:
        parquet = pq.ParquetFile(tmp_path / "p" / entry["path"])
        groups += [(parquet.metadata.row_group(i).num_rows, parquet.read_row_group(i).nbytes)
                   for i in range(parquet.metadata.num_row_groups)]
    assert sum(rows for rows, _ in groups) == info.rows == 120
    assert len(groups) >= 120 * 2000 // budget  # rows are over 2 KB wide
    assert all(size <= 2 * budget for _, size in groups)
    pd.testing.assert_frame_equal(read_snapshot(tmp_path / "p"),
                                  read_snapshot(tmp_path / "whole"))
