"""A refresh of a partitioned snapshot rewrites only the partitions whose rows change.

Real snapshots from a real sandbox over 127.0.0.1. Which files a refresh wrote is counted on
disk: a file carried over from the previous version keeps its inode (a hard link), a rewritten
one is new. What should change is worked out from the data (the records the refresh window
covers, and the partitions their rows leave or join), never from the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from jetti_frames.client import JettiClient
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import (
    MANIFEST,
    read_snapshot,
    refresh_snapshot,
    snapshot,
    snapshot_info,
    writing,
)

TOKEN = "partrefresh-t0ken-77a1"
#: Two includes, a few columns each (the benchmark refreshes every column).
QUERY: dict[str, Any] = {
    "attributes": ["id", "updatedAt", "createdAt", "dateOrdered", "purchaseType", "total",
                   "notes"],
    "include": [{"model": "PurchaseStatus", "attributes": ["id", "name"]},
                {"model": "DropshipProvider", "attributes": ["id", "name"]}]}
BY_CREATED: dict[str, Any] = {**QUERY, "partition_by": ("createdAt", "month")}
BY_ORDERED: dict[str, Any] = {**QUERY, "where": {"purchaseType": "dropship"},
                              "partition_by": ("dateOrdered", "month")}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def own(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(purchases=300, rate="off", tokens=(TOKEN,))


def make_client(sb: Sandbox) -> JettiClient:
    return JettiClient(TOKEN, base_url=sb.base_url, cache=False, progress=False,
                       page_size=100, get_rate=1000.0)


def manifest_of(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / MANIFEST).read_text()))


def folder_value(name: str) -> str:
    """The partition value of a listed file, from its hive folder (``""`` for none)."""
    folder = name.rsplit("/", 1)[0] if "/" in name else ""
    return folder.split("=", 1)[1] if "=" in folder else ""


def layout(path: Path) -> dict[str, dict[str, int]]:
    """``partition -> {file: inode}`` of the files the manifest lists."""
    out: dict[str, dict[str, int]] = {}
    for entry in manifest_of(path)["files"]:
        out.setdefault(folder_value(entry["path"]), {})[entry["path"]] = \
            (path / entry["path"]).stat().st_ino
    return out


def rows_per_partition(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in manifest_of(path)["files"]:
        part = folder_value(entry["path"])
        out[part] = out.get(part, 0) + entry["rows"]
    return {part: rows for part, rows in out.items() if rows}


def changed_partitions(before: dict[str, dict[str, int]],
                       after: dict[str, dict[str, int]]) -> set[str]:
    """Partitions whose files differ (rewritten, new or gone)."""
    return {p for p in before.keys() | after.keys()
            if set(before.get(p, {}).values()) != set(after.get(p, {}).values())}


def carried_files(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> int:
    old = {ino for files in before.values() for ino in files.values()}
    return sum(ino in old for files in after.values() for ino in files.values())


def window_ids(sb: Sandbox, since: str) -> set[int]:
    """Ids of the purchases a refresh from ``since`` (overlap 0) reads again."""
    stamp = pd.Timestamp(since).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return {r["id"] for r in sb.query("SELECT id FROM purchases WHERE updatedAt >= ?", [stamp])}


def partitions_of(frame: pd.DataFrame, column: str, ids: set[int]) -> set[str]:
    """The partitions holding the rows of ``ids`` (as their folders name them)."""
    values = frame.loc[frame["id"].isin(ids), column]
    return set(values.astype(str).where(values.notna(), "__HIVE_DEFAULT_PARTITION__"))


def assert_equals_fresh(client: JettiClient, path: Path, fresh: Path,
                        query: dict[str, Any]) -> None:
    """The refreshed snapshot reads back as a fresh one: frame, dtypes, rows per partition."""
    snapshot("purchases", fresh, client=client, **query)
    pd.testing.assert_frame_equal(read_snapshot(path), read_snapshot(fresh))
    assert rows_per_partition(path) == rows_per_partition(fresh)
    assert snapshot_info(path).rows == snapshot_info(fresh).rows


def test_one_change_rewrites_only_the_partitions_it_touches(own: Sandbox,
                                                            tmp_path: Path) -> None:
    client = make_client(own)
    path = tmp_path / "p"
    first = snapshot("purchases", path, client=client, **BY_CREATED)
    assert first.files >= 60  # a month per folder over six and a half years
    old = read_snapshot(path, columns=["id", "createdAt_month"])
    before = layout(path)
    [touched] = own.touch("purchases", 1)
    info = refresh_snapshot(path, client=client, overlap=0)
    after = layout(path)
    window = window_ids(own, first.watermark or "")
    assert touched in window
    new = read_snapshot(path, columns=["id", "createdAt_month"])
    expected = (partitions_of(old, "createdAt_month", window)
                | partitions_of(new, "createdAt_month", window))
    assert 1 <= len(expected) <= 2  # the touched purchase's month, the newest purchase's month
    assert changed_partitions(before, after) == expected
    assert carried_files(before, after) == first.files - len(expected) == info.files - \
        len(expected)
    assert (info["files_written"], info["files_carried"]) == (len(expected),
                                                              info.files - len(expected))
    assert info.changed_records == 1
    assert_equals_fresh(client, path, tmp_path / "fresh", BY_CREATED)


def _pick(frame: pd.DataFrame, column: str, avoid: set[str], rows: int) -> str:
    """A partition outside ``avoid`` holding at least ``rows`` rows."""
    counts = frame[column].astype(str).value_counts()
    return str(next(p for p, n in counts.items() if n >= rows and p not in avoid))


def test_a_moved_and_a_dropped_record_rewrite_exactly_their_partitions(
        own: Sandbox, tmp_path: Path) -> None:
    client = make_client(own)
    path, column = tmp_path / "p", "dateOrdered_month"
    snapshot("purchases", path, client=client, **BY_ORDERED)
    con = own._connect()  # change values the partitions and the query use (no public knob)

    # a purchase moves from one month to another: both months are rewritten, nothing else
    frame = read_snapshot(path, columns=["id", column])
    watermark = snapshot_info(path).watermark or ""
    busy = partitions_of(frame, column, window_ids(own, watermark))
    leave = _pick(frame, column, busy, 2)
    join = _pick(frame, column, busy | {leave}, 1)
    moved = int(frame.loc[frame[column].astype(str) == leave, "id"].iloc[0])
    neighbour = int(frame.loc[frame[column].astype(str) == join, "id"].iloc[0])
    con.execute('UPDATE purchases SET "dateOrdered" = (SELECT "dateOrdered" FROM purchases '
                "WHERE id = ?) WHERE id = ?", [neighbour, moved])
    con.commit()
    own.touch("purchases", [moved])
    before = layout(path)
    info = refresh_snapshot(path, client=client, overlap=0)
    after = read_snapshot(path, columns=["id", column])
    assert after.loc[after["id"] == moved, column].astype(str).tolist() == [join]
    # beyond the months of the unchanged purchases the window reads again: exactly two
    assert changed_partitions(before, layout(path)) == busy | {leave, join}
    assert info.changed_records == 1
    assert carried_files(before, layout(path)) == info.files - info["files_written"]

    # a purchase stops matching the query: its rows leave its month, the only one rewritten
    watermark = info.watermark or ""
    busy = partitions_of(after, column, window_ids(own, watermark))
    gone_from = _pick(after, column, busy, 2)
    dropped = int(after.loc[after[column].astype(str) == gone_from, "id"].iloc[0])
    con.execute("UPDATE purchases SET \"purchaseType\" = 'replenishment' WHERE id = ?",
                [dropped])
    con.commit()
    own.touch("purchases", [dropped])
    before = layout(path)
    info = refresh_snapshot(path, client=client, overlap=0)
    assert dropped not in set(read_snapshot(path, columns=["id"])["id"])
    assert changed_partitions(before, layout(path)) == busy | {gone_from}
    assert info.changed_records == 1
    assert_equals_fresh(client, path, tmp_path / "fresh", BY_ORDERED)


def test_manifests_without_id_ranges_or_partition_values(own: Sandbox, tmp_path: Path) -> None:
    """Files listed by an older manifest are read to find the rows; the result is the same."""
    client = make_client(own)
    path = tmp_path / "p"
    first = snapshot("purchases", path, client=client, **BY_CREATED)
    manifest = manifest_of(path)
    for entry in manifest["files"]:
        del entry["ids"], entry["partition"]
    (path / MANIFEST).write_text(json.dumps(manifest))
    old = read_snapshot(path, columns=["id", "createdAt_month"])
    before = layout(path)
    own.touch("purchases", 2)
    refresh_snapshot(path, client=client, overlap=0)
    window = window_ids(own, first.watermark or "")
    new = read_snapshot(path, columns=["id", "createdAt_month"])
    assert changed_partitions(before, layout(path)) == (
        partitions_of(old, "createdAt_month", window)
        | partitions_of(new, "createdAt_month", window))
    assert all("ids" in e and "partition" in e for e in manifest_of(path)["files"])
    assert_equals_fresh(client, path, tmp_path / "fresh", BY_CREATED)


def test_unpartitioned_refresh_rewrites_its_one_file(own: Sandbox, tmp_path: Path) -> None:
    client = make_client(own)
    path = tmp_path / "p"
    snapshot("purchases", path, client=client, **QUERY)
    before = layout(path)
    own.touch("purchases", 1)
    info = refresh_snapshot(path, client=client)
    assert carried_files(before, layout(path)) == info["files_carried"] == 0
    assert info["files_written"] == info.files == 1
    assert_equals_fresh(client, path, tmp_path / "fresh", QUERY)


@pytest.mark.parametrize("by", ["purchaseType", "id"])
def test_partitions_by_a_plain_column(own: Sandbox, tmp_path: Path, by: str) -> None:
    """A plain column (an enum; or the id itself, which then lives in the folder names only)."""
    client = make_client(own)
    path, query = tmp_path / "p", {**QUERY, "partition_by": by}
    first = snapshot("purchases", path, client=client, **query)
    before = layout(path)
    touched = own.touch("purchases", 2)
    info = refresh_snapshot(path, client=client, overlap=0)
    window = window_ids(own, first.watermark or "")
    assert set(touched) <= window
    changed = changed_partitions(before, layout(path))
    assert 1 <= len(changed) <= len(window) < len(before)
    assert info["files_written"] == len(changed)
    assert_equals_fresh(client, path, tmp_path / "fresh", query)


def test_refresh_on_an_fsspec_filesystem_copies_untouched_files(own: Sandbox) -> None:
    fsspec = pytest.importorskip("fsspec")
    client = make_client(own)
    url = "memory://jetti-partrefresh/purchases"
    first = snapshot("purchases", url, client=client, **BY_CREATED)
    own.touch("purchases", 1)
    info = refresh_snapshot(url, client=client)
    assert info["files_written"] <= 2 < first.files
    assert info["files_carried"] == info.files - info["files_written"]
    fresh = "memory://jetti-partrefresh/fresh"
    snapshot("purchases", fresh, client=client, **BY_CREATED)
    pd.testing.assert_frame_equal(read_snapshot(url), read_snapshot(fresh))
    fsspec.filesystem("memory").rm("/jetti-partrefresh", recursive=True)


# ---------------------------------------------------------------------------------- interrupted

KILLED_REFRESH = textwrap.dedent("""
    import os, signal, sys
    from jetti_frames.client import JettiClient
    from jetti_frames.snapshot import refresh_snapshot, writing

    url, path, token, point = sys.argv[1:5]
    carry, write_json, carried = writing._carry, writing._write_json, []

    def carry_then_die(*args, **kwargs):
        carry(*args, **kwargs)
        carried.append(args)
        if point == "carrying" and len(carried) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    def die_before_marker(*args, **kwargs):
        if point == "marker":
            os.kill(os.getpid(), signal.SIGKILL)
        write_json(*args, **kwargs)

    writing._carry, writing._write_json = carry_then_die, die_before_marker
    client = JettiClient(token, base_url=url, cache=False, progress=False, get_rate=1000.0)
    refresh_snapshot(path, client=client)
""")


def file_bytes(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("point", ["carrying", "marker"])
def test_a_killed_refresh_leaves_the_previous_version(own: Sandbox, tmp_path: Path,
                                                      point: str) -> None:
    """SIGKILL while untouched files are being linked in, or just before the manifest."""
    client = make_client(own)
    path = tmp_path / "p"
    snapshot("purchases", path, client=client, **BY_CREATED)
    before, stored = read_snapshot(path), file_bytes(path)
    own.touch("purchases", 1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", KILLED_REFRESH, own.base_url, str(path), TOKEN,
                           point], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert file_bytes(path) == stored  # the previous version, byte for byte
    pd.testing.assert_frame_equal(read_snapshot(path), before)
    [leftover] = tmp_path.glob(".p.jetti-tmp-*")
    assert not (leftover / MANIFEST).exists()
    assert len(list(leftover.rglob("*.parquet"))) >= 3  # it died with files in place
    refresh_snapshot(path, client=client)
    assert list(tmp_path.glob(".p.jetti-*")) == []
    assert_equals_fresh(client, path, tmp_path / "fresh", BY_CREATED)


def test_an_interrupted_refresh_removes_its_links(own: Sandbox, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while carrying files over: the new version's folder goes, the old one stays."""
    client = make_client(own)
    path = tmp_path / "p"
    snapshot("purchases", path, client=client, **BY_CREATED)
    before, stored = read_snapshot(path), file_bytes(path)
    own.touch("purchases", 1)
    carry, calls = writing._carry, []

    def interrupted(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        carry(*args, **kwargs)

    monkeypatch.setattr(writing, "_carry", interrupted)
    with pytest.raises(KeyboardInterrupt):
        refresh_snapshot(path, client=client)
    assert list(tmp_path.glob(".p.jetti-*")) == []
    assert file_bytes(path) == stored
    pd.testing.assert_frame_equal(read_snapshot(path), before)
