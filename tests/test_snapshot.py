"""Parquet snapshots against a real sandbox over 127.0.0.1, with real files in tmp dirs."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from jetti_frames import __version__
from jetti_frames.catalog import CATALOG
from jetti_frames.client import JettiClient
from jetti_frames.errors import SnapshotError
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import (
    MANIFEST,
    METADATA_KEY,
    SnapshotInfo,
    _and_updated_since,
    _column_specs,
    _jsonable,
    _public_url,
    _snapshot_dtypes,
    read_snapshot,
    refresh_snapshot,
    snapshot,
    snapshot_info,
)

TOKEN = "snapshot-test-t0ken-5e1f"
INCLUDES = ["PurchaseStatus", "DropshipProvider"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    """A read-only sandbox for this module (300 purchases, no rate limit, a private token)."""
    with Sandbox(purchases=300, rate="off", tokens=(TOKEN,)) as sb:
        yield sb


def make_client(sb: Sandbox, **options: Any) -> JettiClient:
    options.setdefault("page_size", 100)
    options.setdefault("get_rate", 1000.0)  # the sandbox's rate limit is off: do not wait
    return JettiClient(TOKEN, base_url=sb.base_url, cache=False, progress=False, **options)


@pytest.fixture
def own(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A sandbox this test may change (touch, insert, latency)."""
    return make_sandbox(purchases=300, rate="off", tokens=(TOKEN,))


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected)


def all_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


# ---------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("include", [INCLUDES, ["PurchaseStatus", "PurchaseItem"]],
                         ids=["belongs-to", "has-many"])
def test_snapshot_reads_back_like_read_jetti(shared: Sandbox, tmp_path: Path,
                                             include: list[str]) -> None:
    client = make_client(shared)
    info = snapshot("purchases", tmp_path / "p", include=include, client=client)
    expected = client.read("purchases", include=include)
    got = read_snapshot(tmp_path / "p")
    assert_same(got, expected)
    assert info["rows"] == len(expected)
    if "PurchaseItem" in include:
        assert len(expected) > 300  # exploded: several rows per purchase
    assert isinstance(got["purchaseType"].dtype, pd.CategoricalDtype)
    assert str(got["dateOrdered"].dtype) == "datetime64[us, UTC]"
    assert str(got["id"].dtype) == "Int64"


def test_snapshot_with_where_order_and_pyarrow_backend(shared: Sandbox, tmp_path: Path) -> None:
    client = make_client(shared)
    query: dict[str, Any] = {
        "where": {"purchaseType": {"$in": ["dropship", "replenishment"]},
                  "dateOrdered": {"$gte": dt.datetime(2021, 1, 1, tzinfo=dt.UTC)}},
        "attributes": ["id", "reference", "dateOrdered", "total", "updatedAt", "tags",
                       "purchaseStatusId"],
        "include": ["PurchaseStatus"],
        "order": "-total",
    }
    snapshot("purchases", tmp_path / "p", client=client, dtype_backend="pyarrow", **query)
    expected = client.read("purchases", dtype_backend="pyarrow", **query)
    assert_same(read_snapshot(tmp_path / "p"), expected)
    info = snapshot_info(tmp_path / "p")
    assert info["query"]["where"]["dateOrdered"] == {"$gte": "2021-01-01T00:00:00+00:00"}
    assert info["query"]["order"] == "-total"


def test_columns_and_filters(shared: Sandbox, tmp_path: Path) -> None:
    client = make_client(shared)
    snapshot("purchases", tmp_path / "p", include=INCLUDES, client=client,
             partition_by="purchaseType")
    full = client.read("purchases", include=INCLUDES)
    got = read_snapshot(tmp_path / "p", columns=["id", "total", "purchaseType"],
                        filters=[("purchaseType", "==", "dropship"), ("total", ">", 50)])
    want = full.loc[(full["purchaseType"] == "dropship") & (full["total"] > 50),
                    ["id", "total", "purchaseType"]].reset_index(drop=True)
    assert_same(got, want)
    with pytest.raises(SnapshotError, match="no such column"):
        read_snapshot(tmp_path / "p", columns=["nope"])


# ---------------------------------------------------------------------------------- provenance


def test_provenance_in_manifest_and_parquet_metadata(shared: Sandbox, tmp_path: Path) -> None:
    client = make_client(shared)
    where = {"purchaseType": "dropship"}
    info = snapshot("purchases", tmp_path / "p", where=where, include=INCLUDES, client=client)
    truth = shared.query("SELECT count(*) AS n, max(updatedAt) AS w FROM purchases "
                         "WHERE purchaseType = 'dropship'")[0]
    assert info == snapshot_info(tmp_path / "p")
    assert info["resource"] == "purchases"
    assert info["query"] == {"where": where, "attributes": None, "include": INCLUDES,
                             "order": None}
    assert info["base_url"] == shared.base_url
    assert info["rows"] == truth["n"]
    assert pd.Timestamp(info["max_updated_at"]) == pd.Timestamp(truth["w"])
    assert info["watermark"] == min(info["max_updated_at"], info["fetched_at"])
    assert info["toolkit_version"] == __version__
    assert info["catalog_digest"] == CATALOG.digest
    assert pd.Timestamp(info["fetched_at"]).tzinfo is not None
    assert info["requests"] >= 1
    files = sorted((tmp_path / "p").rglob("*.parquet"))
    assert files
    for file in files:
        meta = pq.read_schema(file).metadata
        assert b"pandas" in meta
        provenance = json.loads(meta[METADATA_KEY.encode()])
        assert provenance["resource"] == "purchases"
        assert provenance["base_url"] == shared.base_url
        assert provenance["catalog_digest"] == CATALOG.digest
        assert provenance["toolkit_version"] == __version__


def test_info_is_a_short_summary_with_the_manifest_behind_it(shared: Sandbox,
                                                             tmp_path: Path) -> None:
    client = make_client(shared)
    info = snapshot("purchases", tmp_path / "p", include=INCLUDES, client=client)
    assert isinstance(info, SnapshotInfo) and info == snapshot_info(tmp_path / "p")
    text, page = repr(info), info._repr_html_()
    assert text.startswith(f"SnapshotInfo(path={str(tmp_path / 'p')!r}, resource='purchases', "
                           f"rows=300, columns={len(info.columns)}, files=1, ")
    for part in (f"watermark={info.watermark!r}", f"requests={info.requests}", "seconds="):
        assert part in text
    assert "purchase_status_name" not in text and len(text) < 400  # no column list
    assert "<table>" in page and "300" in page and "purchase_status_name" not in page
    # The manifest is all there, and the mapping view reads as before.
    assert "purchase_status_name" in info.columns
    assert info.manifest["columns"]["purchase_status_name"]["type"] == "string"
    assert info.manifest["files"][0]["rows"] == 300
    assert info["rows"] == info.rows == 300 and info["columns"] == list(info.columns)
    assert dict(info)["path"] == info.path and json.dumps(dict(info))
    assert info.seconds is not None and info.seconds >= 0 and info.changed_records is None
    with pytest.raises(AttributeError):
        info.rows = 1  # type: ignore[misc]


def test_token_never_written(shared: Sandbox, tmp_path: Path) -> None:
    client = make_client(shared)
    snapshot("purchases", tmp_path / "p", include=INCLUDES, client=client,
             partition_by=("dateOrdered", "year"))
    refresh_snapshot(tmp_path / "p", client=client)
    found = [p for p, data in all_bytes(tmp_path) if TOKEN.encode() in data]
    assert found == []
    assert len(list(all_bytes(tmp_path))) > 3


# ---------------------------------------------------------------------------------- refresh


def test_refresh_fetches_only_changes(own: Sandbox, tmp_path: Path) -> None:
    include = ["PurchaseStatus", "PurchaseItem"]  # has-many: refetched parents replace rows
    client = make_client(own)
    before = snapshot("purchases", tmp_path / "p", include=include, client=client)
    touched = own.touch("purchases", 25)
    added = own.insert("purchases", 5)
    own.reset_counters()
    info = refresh_snapshot(tmp_path / "p", client=client)
    assert own.counters(TOKEN)["requests"] <= 2
    since = pd.Timestamp(before["watermark"]) - pd.Timedelta(minutes=5)  # the default overlap
    window = own.query("SELECT count(*) AS n FROM purchases WHERE updatedAt >= ?",
                       [since.strftime("%Y-%m-%dT%H:%M:%S+00:00")])[0]["n"]
    assert info["refetched_records"] == window >= 30  # the overlap re-reads a few unchanged
    assert info["changed_records"] == len(set(touched) | set(added)) == 30
    assert pd.Timestamp(info["watermark"]) > pd.Timestamp(before["watermark"])
    fresh = snapshot("purchases", tmp_path / "fresh", include=include, client=make_client(own))
    got = read_snapshot(tmp_path / "p")
    pd.testing.assert_frame_equal(got, read_snapshot(tmp_path / "fresh"))
    assert info["rows"] == fresh["rows"] == len(got)
    assert set(added) <= set(got["id"])
    changed = got[got["id"].isin(touched)]
    assert (changed["updatedAt"] > pd.Timestamp(before["watermark"])).all()
    assert pd.Timestamp(info["watermark"]) <= pd.Timestamp(info["refreshed_at"])


def test_refresh_counts_only_records_that_changed(own: Sandbox, tmp_path: Path) -> None:
    """The overlap re-reads the newest records; unchanged ones are not counted as changed."""
    client = make_client(own)
    snapshot("purchases", tmp_path / "p", include=["PurchaseItem"], client=client)
    info = refresh_snapshot(tmp_path / "p", client=client)
    assert info.changed_records == info["changed_records"] == 0
    assert info.refetched_records >= 1  # the overlap: at least the record at the watermark
    touched = own.touch("purchases", 4)
    added = own.insert("purchases", 2)
    info = refresh_snapshot(tmp_path / "p", client=client)
    assert info.changed_records == len(set(touched) | set(added)) == 6
    assert info.refetched_records >= 6


def test_refresh_counts_records_that_stop_matching_the_query(own: Sandbox,
                                                              tmp_path: Path) -> None:
    client = make_client(own)
    snapshot("purchases", tmp_path / "p", where={"purchaseType": "dropship"}, client=client)
    gone = own.query("SELECT id FROM purchases WHERE purchaseType = 'dropship' "
                     "ORDER BY id LIMIT 3")
    con = own._connect()  # change a value the query filters on (no public knob for it)
    con.execute("UPDATE purchases SET purchaseType = 'replenishment' WHERE id IN (?, ?, ?)",
                [r["id"] for r in gone])
    con.commit()
    own.touch("purchases", [r["id"] for r in gone])
    info = refresh_snapshot(tmp_path / "p", client=client)
    assert info.changed_records == 3
    assert not set(read_snapshot(tmp_path / "p")["id"]) & {r["id"] for r in gone}


def test_refresh_with_where_and_partitions_equals_full(own: Sandbox, tmp_path: Path) -> None:
    client = make_client(own)
    query: dict[str, Any] = {"where": {"purchaseType": "dropship"}, "include": ["PurchaseStatus"]}
    snapshot("purchases", tmp_path / "p", client=client, partition_by=("dateOrdered", "month"),
             **query)
    own.touch("purchases", 30)
    own.reset_counters()
    info = refresh_snapshot(tmp_path / "p", client=client)
    assert own.counters(TOKEN)["requests"] <= 4  # the query + the id-only window query
    snapshot("purchases", tmp_path / "fresh", client=client,
             partition_by=("dateOrdered", "month"), **query)
    pd.testing.assert_frame_equal(read_snapshot(tmp_path / "p"),
                                  read_snapshot(tmp_path / "fresh"))
    assert info["partition_by"]["name"] == "dateOrdered_month"


def test_full_refresh_rereads_everything(own: Sandbox, tmp_path: Path) -> None:
    client = make_client(own)
    snapshot("purchases", tmp_path / "p", include=INCLUDES, client=client)
    own.insert("purchases", 3)
    own.reset_counters()
    info = refresh_snapshot(tmp_path / "p", full=True, client=client)
    assert own.counters(TOKEN)["requests"] >= 3  # 303 rows at 100 a page
    assert info["rows"] == 303
    assert_same(read_snapshot(tmp_path / "p"), client.read("purchases", include=INCLUDES))


def test_refresh_needs_id_and_updated_at(shared: Sandbox, tmp_path: Path) -> None:
    client = make_client(shared)
    snapshot("purchases", tmp_path / "p", attributes=["reference", "total"], client=client)
    if {"id", "updatedAt"} <= set(snapshot_info(tmp_path / "p")["columns"]):
        pytest.skip("the client adds id and updatedAt to every query")
    with pytest.raises(SnapshotError, match="full=True"):
        refresh_snapshot(tmp_path / "p", client=client)


# ---------------------------------------------------------------------------------- atomicity


SLOW_SNAPSHOT = textwrap.dedent("""
    import sys
    from jetti_frames.client import JettiClient
    from jetti_frames.snapshot import snapshot
    client = JettiClient(sys.argv[3], base_url=sys.argv[1], cache=False, progress=False,
                         page_size=10, get_rate=1000.0)
    snapshot("purchases", sys.argv[2], include=["PurchaseStatus"], client=client)
""")


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def temp_parquet(parent: Path) -> list[Path]:
    return [p for d in parent.glob(".p.jetti-tmp-*") for p in d.rglob("*.parquet")]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_write_keeps_previous_snapshot(own: Sandbox, tmp_path: Path,
                                                   sig: signal.Signals) -> None:
    client = make_client(own)
    snapshot("purchases", tmp_path / "p", include=["PurchaseStatus"], client=client)
    before = read_snapshot(tmp_path / "p")
    manifest = (tmp_path / "p" / MANIFEST).read_bytes()
    own.configure(latency_ms=150)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SNAPSHOT, own.base_url,
                             str(tmp_path / "p"), TOKEN], env=env, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: temp_parquet(tmp_path) or proc.poll() is not None, "a temp dir")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    own.configure(latency_ms=0)
    assert (tmp_path / "p" / MANIFEST).read_bytes() == manifest
    pd.testing.assert_frame_equal(read_snapshot(tmp_path / "p"), before)
    leftovers = list(tmp_path.glob(".p.jetti-tmp-*"))
    if sig == signal.SIGKILL:
        assert leftovers and not any((d / MANIFEST).exists() for d in leftovers)
    else:  # Ctrl-C: the writer removes its own temp dir
        assert leftovers == []
    snapshot("purchases", tmp_path / "p", include=["PurchaseStatus"], client=client)
    assert list(tmp_path.glob(".p.jetti-*")) == []


def test_crash_between_publish_renames_is_recovered(shared: Sandbox, tmp_path: Path) -> None:
    client = make_client(shared)
    snapshot("purchases", tmp_path / "p", client=client, attributes=["id", "updatedAt"])
    before = read_snapshot(tmp_path / "p")
    # what a kill between "path -> old" and "tmp -> path" leaves behind
    (tmp_path / "p").rename(tmp_path / ".p.jetti-old-0badc0de")
    (tmp_path / ".p.jetti-tmp-otherhost-1-00000000").mkdir()
    pd.testing.assert_frame_equal(read_snapshot(tmp_path / "p"), before)
    assert snapshot_info(tmp_path / "p")["rows"] == len(before)
    snapshot("purchases", tmp_path / "p", client=client, attributes=["id", "updatedAt"])
    assert not list(tmp_path.glob(".p.jetti-old-*"))
    pd.testing.assert_frame_equal(read_snapshot(tmp_path / "p"), before)


def test_incomplete_or_foreign_directories_are_refused(shared: Sandbox, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "part-00000.parquet").write_bytes(b"PAR1")
    with pytest.raises(SnapshotError, match="not a completed snapshot"):
        read_snapshot(partial)
    with pytest.raises(SnapshotError, match="refusing"):
        snapshot("purchases", partial, client=make_client(shared))
    assert (partial / "part-00000.parquet").read_bytes() == b"PAR1"
    with pytest.raises(SnapshotError, match="no snapshot"):
        snapshot_info(tmp_path / "missing")


# ---------------------------------------------------------------------------------- partitions


def test_partitions_read_by_duckdb_pyarrow_and_dask(shared: Sandbox, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    dd = pytest.importorskip("dask.dataframe")
    client = make_client(shared)
    path = tmp_path / "p"
    narrow: dict[str, Any] = {  # ~80 months of a few columns: keep the files small
        "attributes": ["id", "reference", "dateOrdered", "total", "updatedAt",
                       "purchaseStatusId", "dropshipProviderId"],
        "include": [{"model": "PurchaseStatus", "attributes": ["id", "name"]},
                    {"model": "DropshipProvider", "attributes": ["id", "name"]}]}
    info = snapshot("purchases", path, client=client, partition_by=("dateOrdered", "month"),
                    **narrow)
    frame = read_snapshot(path)
    assert_same(frame, client.read("purchases", **narrow))
    assert snapshot_info(path)["query"]["include"] == narrow["include"]
    months = {d.name for d in path.iterdir() if d.is_dir()}
    expected = frame["dateOrdered"].dt.strftime("%Y-%m").dropna()
    assert {m.removeprefix("dateOrdered_month=") for m in months} - {
        "__HIVE_DEFAULT_PARTITION__"} == set(expected)

    con = duckdb.connect()
    rows = con.execute(
        "SELECT dateOrdered_month, count(*), sum(total) FROM read_parquet(?, "
        "hive_partitioning = true) GROUP BY 1 ORDER BY 1",
        [str(path / "**" / "*.parquet")]).fetchall()
    by_month = frame.assign(m=frame["dateOrdered"].dt.strftime("%Y-%m")).groupby("m")
    assert [(m, n) for m, n, _ in rows if m is not None] == \
        [(m, len(g)) for m, g in by_month]
    assert sum(n for _, n, _ in rows) == info["rows"] == len(frame)

    dataset = pads.dataset(path, format="parquet", partitioning="hive")
    assert dataset.count_rows() == len(frame)
    assert "dateOrdered_month" in dataset.schema.names

    ddf = dd.read_parquet(str(path))
    assert len(ddf) == len(frame)
    assert float(ddf["total"].sum().compute()) == pytest.approx(float(frame["total"].sum()))
    again = read_snapshot(path, columns=["id", "dateOrdered_month"],
                          filters=[("dateOrdered_month", "==", rows[0][0])])
    assert len(again) == rows[0][1]


def test_partition_by_plain_column_restores_its_dtype(shared: Sandbox, tmp_path: Path) -> None:
    client = make_client(shared)
    for column in ("purchaseType", "purchaseStatusId"):
        snapshot("purchases", tmp_path / column, client=client, partition_by=column)
        assert_same(read_snapshot(tmp_path / column), client.read("purchases"))


def test_bad_partition_by(shared: Sandbox, tmp_path: Path) -> None:
    client = make_client(shared)
    with pytest.raises(ValueError, match="datetime"):
        snapshot("purchases", tmp_path / "p", client=client, partition_by="dateOrdered")
    with pytest.raises(ValueError, match="unit"):
        snapshot("purchases", tmp_path / "p", client=client, partition_by=("dateOrdered", "week"))
    with pytest.raises(ValueError, match="not a column"):
        snapshot("purchases", tmp_path / "p", client=client, partition_by="nope")
    assert not (tmp_path / "p").exists()


def test_fsspec_url(shared: Sandbox) -> None:
    pytest.importorskip("fsspec")
    client = make_client(shared)
    url = "memory://jetti-tests/purchases"
    snapshot("purchases", url, include=INCLUDES, client=client)
    assert_same(read_snapshot(url), client.read("purchases", include=INCLUDES))
    assert snapshot_info(url)["path"] == url


# ---------------------------------------------------------------------------------- pure helpers


def test_jsonable_query() -> None:
    query = {"dateOrdered": {"$gte": dt.date(2024, 1, 2)},
             "updatedAt": {"$lt": pd.Timestamp("2024-01-02T03:04:05Z")},
             "id": {"$in": range(1, 4)}, "purchaseType": ("dropship",)}
    assert _jsonable(query) == {"dateOrdered": {"$gte": "2024-01-02"},
                                "updatedAt": {"$lt": "2024-01-02T03:04:05+00:00"},
                                "id": {"$in": [1, 2, 3]}, "purchaseType": ["dropship"]}


def test_updated_since_is_anded_with_the_recorded_where() -> None:
    since = pd.Timestamp("2024-05-01T00:00:00Z")
    assert _and_updated_since(None, since) == {"updatedAt": {"$gte": since.to_pydatetime()}}
    merged = _and_updated_since({"purchaseType": "dropship",
                                 "updatedAt": {"$lte": "2030-01-01T00:00:00Z"}}, since)
    assert merged["purchaseType"] == "dropship"
    assert merged["updatedAt"]["$lte"] == "2030-01-01T00:00:00Z"
    assert pd.Timestamp(merged["updatedAt"]["$gte"]) == since


def test_public_url_drops_credentials() -> None:
    assert _public_url("https://user:pw@api.example.com:8443/api/?token=x#f") == \
        "https://api.example.com:8443/api/"


def test_dtype_specs_round_trip() -> None:
    dtypes = {"a": pd.Int64Dtype(), "b": pd.CategoricalDtype(["x", "y"]),
              "c": pd.DatetimeTZDtype("us", "UTC"), "d": pd.StringDtype("pyarrow"),
              "e": pd.api.types.pandas_dtype("object"), "f": pd.BooleanDtype(),
              "g": pd.ArrowDtype(__import__("pyarrow").timestamp("us", "UTC"))}
    schema = pa.Schema.from_pandas(pd.DataFrame({k: pd.Series([], dtype=v)
                                                  for k, v in dtypes.items()}))
    assert _snapshot_dtypes(_column_specs(dtypes), schema) == dtypes  # pandas metadata
    assert _snapshot_dtypes(_column_specs(dtypes), None) == dtypes  # manifest only
