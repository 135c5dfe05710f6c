"""Snapshots and a mirror on S3: moto's standalone server over HTTP on 127.0.0.1, read back
with pandas, pyarrow.dataset, Dask and DuckDB through s3fs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as pads
import pytest

from jetti_frames import connect, sync
from jetti_frames.client import JettiClient
from jetti_frames.errors import JettiConfigError, SnapshotError
from jetti_frames.mirror import parse_config
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import (
    MANIFEST,
    read_snapshot,
    refresh_snapshot,
    snapshot,
    snapshot_info,
    sweep_snapshot,
)

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto")

TOKEN = "object-store-t0ken-9c2d"
REPO = Path(__file__).resolve().parents[1]
BY_YEAR = {"partition_by": ("dateOrdered", "year")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, Any]]:
    """moto's S3 server in its own process; the fsspec options that reach it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def bucket(s3_server: dict[str, Any]) -> Iterator[str]:
    """A new bucket for one test."""
    name = f"jetti-{uuid.uuid4().hex[:10]}"
    fs = s3fs.S3FileSystem(**s3_server)
    fs.mkdir(name)
    yield name
    fs.rm(name, recursive=True)


@pytest.fixture
def own(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(purchases=300, rate="off", tokens=(TOKEN,))


def make_client(sb: Sandbox) -> JettiClient:
    return JettiClient(TOKEN, base_url=sb.base_url, cache=False, progress=False,
                       page_size=100, get_rate=1000.0)


def s3(options: dict[str, Any]) -> Any:
    fs = s3fs.S3FileSystem(**options)
    fs.invalidate_cache()
    return fs


def versions(fs: Any, url: str) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(url, refresh=True)
                  if p.rsplit("/", 1)[-1].startswith("v-"))


def assert_equals_fresh(client: JettiClient, url: str, options: dict[str, Any]) -> None:
    fresh = url + "-fresh"
    snapshot("purchases", fresh, client=client, storage_options=options, **BY_YEAR)
    pd.testing.assert_frame_equal(read_snapshot(url, storage_options=options),
                                  read_snapshot(fresh, storage_options=options))


def test_snapshot_refresh_and_read_on_s3(own: Sandbox, s3_server: dict[str, Any],
                                         bucket: str) -> None:
    client = make_client(own)
    url = f"s3://{bucket}/jetti/purchases"
    options = s3_server
    info = snapshot("purchases", url, client=client, storage_options=options, **BY_YEAR)
    expected = client.read("purchases")
    pd.testing.assert_frame_equal(read_snapshot(url, storage_options=options), expected)
    assert snapshot_info(url, storage_options=options).rows == len(expected) == info.rows

    # the layout: one version prefix, the manifest at the root naming it and each file's sum
    fs = s3(options)
    [first] = versions(fs, url)
    assert info.data_path == f"{url}/{first}"
    manifest = json.loads(fs.cat(f"{url}/{MANIFEST}"))
    assert manifest["version"] == first and manifest["versions"] == [first]
    import hashlib
    for entry in manifest["files"]:
        data = fs.cat(f"{url}/{first}/{entry['path']}")
        assert entry["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)

    # readers that list files, pointed at the current version's folder
    pandas_frame = pd.read_parquet(info.data_path, storage_options=options)
    assert len(pandas_frame) == info.rows
    dataset = pads.dataset(f"{bucket}/jetti/purchases/{first}", filesystem=fs,
                           format="parquet", partitioning="hive")
    assert dataset.count_rows() == info.rows
    import dask.dataframe as dd
    frame = dd.read_parquet(info.data_path, storage_options=options)
    assert int(frame["id"].count().compute()) == info.rows
    assert sorted(frame["id"].compute().tolist()) == sorted(expected["id"].tolist())

    # two refreshes: each publishes a new prefix, two versions are kept, the oldest goes
    own.touch("purchases", 5)
    second = refresh_snapshot(url, client=client, storage_options=options)
    assert second["files_written"] >= 1 and second["files_carried"] >= 1
    kept = versions(s3(options), url)
    assert len(kept) == 2 and first in kept
    own.touch("purchases", 5)
    refresh_snapshot(url, client=client, storage_options=options)
    kept = versions(s3(options), url)
    assert len(kept) == 2 and first not in kept
    assert_equals_fresh(client, url, options)

    own.delete("purchases", 3)
    swept = sweep_snapshot(url, client=client, storage_options=options, keep_versions=1)
    assert swept.manifest["deleted_records"] == 3
    assert versions(s3(options), url) == [swept.manifest["version"]]
    assert len(read_snapshot(url, storage_options=options)) == len(client.read("purchases"))


KILLED = textwrap.dedent("""
    import json, os, signal, sys
    from jetti_frames.client import JettiClient
    from jetti_frames.snapshot import refresh_snapshot, writing

    base_url, url, token, options = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    write_json = writing._write_json

    def die_before_manifest(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    writing._write_json = die_before_manifest
    client = JettiClient(token, base_url=base_url, cache=False, progress=False, get_rate=1000.0)
    refresh_snapshot(url, client=client, storage_options=json.loads(options))
""")


def test_sigkill_during_an_s3_publish_leaves_the_previous_version(
        own: Sandbox, s3_server: dict[str, Any], bucket: str) -> None:
    client = make_client(own)
    url = f"s3://{bucket}/jetti/purchases"
    options = s3_server
    snapshot("purchases", url, client=client, storage_options=options, **BY_YEAR)
    before = read_snapshot(url, storage_options=options)
    manifest = s3(options).cat(f"{url}/{MANIFEST}")
    own.touch("purchases", 10)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", KILLED, own.base_url, url, TOKEN,
                           json.dumps(options)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    fs = s3(options)
    assert fs.cat(f"{url}/{MANIFEST}") == manifest  # untouched: nothing was published
    assert len(versions(fs, url)) == 2  # the killed write's prefix, with its files, unnamed
    pd.testing.assert_frame_equal(read_snapshot(url, storage_options=options), before)
    info = refresh_snapshot(url, client=client, storage_options=options)
    assert info.changed_records == 10
    assert_equals_fresh(client, url, options)


def test_local_paths_refuse_storage_options(tmp_path: Path, own: Sandbox) -> None:
    with pytest.raises(SnapshotError, match="storage_options"):
        snapshot("purchases", tmp_path / "p", client=make_client(own),
                 storage_options={"anon": True})
    assert not (tmp_path / "p").exists()


def test_the_mirror_file_keeps_credentials_out() -> None:
    env = {"JETTI_API_TOKEN": "t"}
    text = 'root = "s3://b/jetti"\n[storage_options]\nsecret = "x"\n[datasets.p]\n' \
           'resource = "purchases"\n'
    with pytest.raises(JettiConfigError, match=r"storage_options\.secret"):
        parse_config(text, environ=env)
    config = parse_config(text.replace('secret = "x"', 'anon = false'), environ=env)
    assert config.root == "s3://b/jetti" and config.options == {"anon": False}


MIRROR = """
root = "s3://{bucket}/jetti"
keep_versions = 2

[storage_options]
endpoint_url = "{endpoint}"

[accounts.main]
token_env = "S3_MIRROR_TOKEN"
base_url = "{base_url}"
get_rate = 1000

[datasets.purchases]
resource = "purchases"
include = ["PurchaseStatus", "DropshipProvider"]
partition_by = ["dateOrdered", "year"]
deletes = "sweep"

[datasets.providers]
resource = "dropship-providers"
"""


def test_two_dataset_mirror_syncs_to_s3(own: Sandbox, s3_server: dict[str, Any], bucket: str,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])  # credentials: the environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    file = tmp_path / "jetti.toml"
    file.write_text(MIRROR.format(bucket=bucket, endpoint=s3_server["endpoint_url"],
                                  base_url=own.base_url), encoding="utf-8")
    env = {"S3_MIRROR_TOKEN": TOKEN}
    root = f"s3://{bucket}/jetti"
    options = {"endpoint_url": s3_server["endpoint_url"]}

    def check() -> None:
        client = make_client(own)
        purchases = client.read("purchases")
        providers = client.read("dropship-providers")
        con = connect(root, storage_options=options)
        try:
            got = con.sql("SELECT id FROM purchases ORDER BY id").df()["id"].tolist()
            assert got == sorted(purchases["id"].tolist())  # the current version only
            assert con.execute("SELECT count(*) FROM providers").fetchone() == (len(providers),)
            assert con.execute("SELECT count(*) FROM sync_runs WHERE ok").fetchone()[0] >= 2
        finally:
            con.close()
        stored = read_snapshot(f"{root}/purchases", storage_options=options)
        assert sorted(stored["id"].tolist()) == sorted(purchases["id"].tolist())

    report = sync(file, environ=env, progress=False)
    assert report.ok, report
    assert [r.action for r in report.results] == ["snapshot", "snapshot"]
    assert not (tmp_path / "data").exists()  # nothing local: data and database in the bucket
    check()
    own.touch("purchases", 12)
    own.delete("purchases", 2)
    report = sync(file, environ=env, progress=False)
    assert report.ok, report
    assert [r.action for r in report.results] == ["refresh", "refresh"]
    result = next(r for r in report.results if r.dataset == "purchases")
    assert result.deleted == 2 and result.changed == 12
    assert len(versions(s3(s3_server), f"{root}/purchases")) == 2
    check()


def test_readme_s3_example_runs(own: Sandbox, s3_server: dict[str, Any], bucket: str,
                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Snapshots section's S3 block, with the moto server as the bucket's endpoint."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```py\n(.*?)```", text, re.S) if "s3://" in b]
    block = block.replace("s3://my-bucket", f"s3://{bucket}")
    block = re.sub(r'"endpoint_url": "[^"]*"', f'"endpoint_url": "{s3_server["endpoint_url"]}"',
                   block)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("JETTI_API_TOKEN", TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", own.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("JETTI_GET_RATE", "1000")
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md s3 block", "exec"), namespace)
    rows = snapshot_info(f"s3://{bucket}/jetti/purchases",
                         storage_options={"endpoint_url": s3_server["endpoint_url"]}).rows
    assert len(namespace["by_provider"]) > 0
    assert namespace["n"] == rows
