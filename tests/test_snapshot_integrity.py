"""Damaged snapshots are refused with one clear SnapshotError; an interrupted publish recovers.

Real snapshots written from a real sandbox into tmp dirs, then damaged the way disks, copies and
hands damage them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from jetti_frames.client import JettiClient
from jetti_frames.errors import JettiError, SnapshotError
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import (
    MANIFEST,
    read_snapshot,
    refresh_snapshot,
    snapshot,
    snapshot_info,
)

TOKEN = "integrity-t0ken-9c1d"
QUERY: dict[str, Any] = {"attributes": ["id", "updatedAt", "dateOrdered", "total"],
                         "partition_by": ("dateOrdered", "year")}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(purchases=300, rate="off", tokens=(TOKEN,)) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb: Sandbox) -> JettiClient:
    return JettiClient(TOKEN, base_url=sb.base_url, cache=False, progress=False, get_rate=1000.0)


@pytest.fixture
def snap(client: JettiClient, tmp_path: Path) -> Path:
    """A partitioned snapshot of 300 purchases (several files)."""
    path = tmp_path / "p"
    snapshot("purchases", path, client=client, **QUERY)
    return path


def manifest_of(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / MANIFEST).read_text()))


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    (path / MANIFEST).write_text(json.dumps(manifest))


def first_file(path: Path) -> tuple[str, Path]:
    name = sorted(f["path"] for f in manifest_of(path)["files"])[0]
    return name, path / name


def truncate(path: Path) -> str:
    name, file = first_file(path)
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    return name


def garbage(path: Path) -> str:
    name, file = first_file(path)
    file.write_bytes(b"garbage")
    return name


def corrupt_pages(path: Path) -> str:
    """Same size, a damaged page header (only reading the data can tell)."""
    name, file = first_file(path)
    data = bytearray(file.read_bytes())
    data[4:60] = b"\xff" * 56
    file.write_bytes(bytes(data))
    return name


def delete(path: Path) -> str:
    name, file = first_file(path)
    file.unlink()
    return name


def unlist(path: Path) -> str:
    """A manifest that no longer lists one of the files (the rows total stays)."""
    manifest = manifest_of(path)
    manifest["files"] = manifest["files"][1:]
    write_manifest(path, manifest)
    return "missing from the list"


def drop_key(key: str) -> Callable[[Path], str]:
    def damage(path: Path) -> str:
        manifest = manifest_of(path)
        del manifest[key]
        write_manifest(path, manifest)
        return repr(key)
    return damage


def bad_watermark(path: Path) -> str:
    manifest = manifest_of(path)
    manifest["watermark"] = "garbage"
    write_manifest(path, manifest)
    return "watermark 'garbage'"


def bad_column(path: Path) -> str:
    manifest = manifest_of(path)
    manifest["columns"]["total"] = {"type": "numpy"}
    write_manifest(path, manifest)
    return "'columns'"


DAMAGE = {"truncated": truncate, "garbage": garbage, "deleted": delete, "unlisted": unlist,
          "no-files": drop_key("files"), "no-rows": drop_key("rows"),
          "no-columns": drop_key("columns"), "no-watermark": drop_key("watermark"),
          "no-format": drop_key("format"), "bad-watermark": bad_watermark,
          "bad-column": bad_column}


@pytest.mark.parametrize("damage", list(DAMAGE.values()), ids=list(DAMAGE))
def test_damage_is_one_snapshot_error_then_full_refresh_repairs(
        damage: Callable[[Path], str], snap: Path, client: JettiClient) -> None:
    before = read_snapshot(snap)
    named = damage(snap)
    for call in (read_snapshot, snapshot_info, lambda p: refresh_snapshot(p, client=client)):
        with pytest.raises(SnapshotError) as info:
            call(snap)
        message = str(info.value)
        assert isinstance(info.value, JettiError) and isinstance(info.value, OSError)
        assert "\n" not in message and named in message, message
        assert f"refresh_snapshot({str(snap)!r}, full=True)" in message
    refresh_snapshot(snap, full=True, client=client)
    pd.testing.assert_frame_equal(read_snapshot(snap), before)


def test_damaged_pages_are_named_by_read_and_refresh(snap: Path, client: JettiClient,
                                                     sb: Sandbox) -> None:
    ids = pq.read_table(first_file(snap)[1], columns=["id"]).column("id").to_pylist()
    named = corrupt_pages(snap)
    assert snapshot_info(snap)["rows"] == 300  # sizes match: info opens no data file
    with pytest.raises(SnapshotError, match=f"data file {named} is damaged"):
        read_snapshot(snap)
    sb.touch("purchases", ids[:1])  # the refresh must rewrite the damaged file's partition
    with pytest.raises(SnapshotError, match=f"data file {named} is damaged"):
        refresh_snapshot(snap, client=client)


def test_a_refresh_carries_damage_it_does_not_read(snap: Path, client: JettiClient) -> None:
    """Files of partitions a refresh leaves alone are carried over as they are, unread: their
    damage is still named by the next read."""
    manifest = manifest_of(snap)
    since = pd.Timestamp(manifest["watermark"]) - pd.Timedelta(minutes=5)
    recent = read_snapshot(snap, filters=[("updatedAt", ">=", since)],
                           columns=["dateOrdered_year"])
    untouched = sorted(e["path"] for e in manifest["files"]
                       if e["partition"] not in set(recent["dateOrdered_year"]))
    file = snap / untouched[0]
    data = bytearray(file.read_bytes())
    data[4:60] = b"\xff" * 56
    file.write_bytes(bytes(data))
    info = refresh_snapshot(snap, client=client)
    assert info["files_carried"] >= 1
    assert (snap / untouched[0]).read_bytes() == bytes(data)
    with pytest.raises(SnapshotError, match=f"data file {untouched[0]} is damaged"):
        read_snapshot(snap)


@pytest.mark.parametrize(("key", "value"), [("query", None), ("resource", 3),
                                            ("partition_by", "dateOrdered"),
                                            ("options", ["x"])])
def test_a_lost_query_asks_for_a_new_snapshot(snap: Path, client: JettiClient, key: str,
                                              value: Any) -> None:
    manifest = manifest_of(snap)
    manifest[key] = value
    write_manifest(snap, manifest)
    for call in (read_snapshot, lambda p: refresh_snapshot(p, full=True, client=client)):
        with pytest.raises(SnapshotError, match=r"damaged .*re-run snapshot"):
            call(snap)


def test_files_the_manifest_does_not_list_are_ignored(snap: Path) -> None:
    before = read_snapshot(snap)
    (snap / "dateOrdered_year=2024" / "part-00099.parquet").write_bytes(b"stray")
    pd.testing.assert_frame_equal(read_snapshot(snap), before)


def test_manifests_without_sizes_are_checked_by_their_footers(snap: Path) -> None:
    before = read_snapshot(snap)
    manifest = manifest_of(snap)
    for entry in manifest["files"]:
        del entry["size"]
    write_manifest(snap, manifest)
    pd.testing.assert_frame_equal(read_snapshot(snap), before)
    assert snapshot_info(snap)["rows"] == 300
    named = truncate(snap)
    with pytest.raises(SnapshotError, match=f"data file {named} is damaged"):
        snapshot_info(snap)


def test_the_manifest_records_each_file_size(snap: Path) -> None:
    files = manifest_of(snap)["files"]
    assert len(files) > 1
    for entry in files:
        assert entry["size"] == (snap / entry["path"]).stat().st_size
    assert sum(entry["rows"] for entry in files) == 300


@pytest.mark.parametrize("full", [False, True], ids=["incremental", "full"])
def test_refresh_after_a_crash_between_the_publish_renames(snap: Path, client: JettiClient,
                                                           full: bool) -> None:
    before = read_snapshot(snap)
    # what a kill between "path -> old" and "tmp -> path" of _publish leaves behind
    snap.rename(snap.parent / ".p.jetti-old-0badc0de")
    info = refresh_snapshot(snap, full=full, client=client)
    assert info["rows"] == 300
    pd.testing.assert_frame_equal(read_snapshot(snap), before)
    assert list(snap.parent.glob(".p.jetti-*")) == []
