"""Deleted records: read the ids that still exist and drop the other rows from a snapshot.

An incremental refresh cannot see a record deleted on the server: it simply stops being listed.
A sweep reads the ids the snapshot's query still matches (``attributes=["id"]``, the same
``where``: about one request per page of ids), keeps the rows of those ids and publishes the
result atomically as a new version, recording ``swept_at``, ``sweep_requests`` and
``deleted_records`` in the manifest. The watermark is left as it was: a sweep reads no changes.

Examples
--------
>>> from jetti_frames.snapshot.sweep import sweep_snapshot
>>> info = sweep_snapshot("data/purchases")          # doctest: +SKIP
>>> info.manifest["deleted_records"], info.manifest["sweep_requests"]   # doctest: +SKIP
(5, 4)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__
from ..catalog import CATALOG
from ..client import open_client
from ..errors import SnapshotError
from .api import _recorded_dtypes
from .columns import _Partition
from .common import _iso, _now, _public_url
from .info import SnapshotInfo
from .store import (
    DEFAULT_KEEP_VERSIONS,
    _check_files,
    _damaged,
    _file_tables,
    _open_published,
    _recover,
    _Target,
)
from .writing import DEFAULT_ROW_GROUP_SIZE, Item, _write_version

if TYPE_CHECKING:
    from ..client import JettiClient

__all__ = ["sweep_snapshot"]


def sweep_snapshot(
    path: str | os.PathLike[str],
    *,
    client: JettiClient | None = None,
    token: str | None = None,
    base_url: str | None = None,
    page_size: int | None = None,
    progress: bool | None = None,
    filesystem: Any = None,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    storage_options: Mapping[str, Any] | None = None,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
) -> SnapshotInfo:
    """Drop the rows of records the server no longer lists for the snapshot's query.

    Reads the ids the recorded query matches now (only ``id``, so about one request per 100
    records), keeps every row whose id is among them and publishes the result atomically. Rows
    of a record that stopped matching the ``where`` filter go too. ``snapshot_info(path)``
    then says when it was swept (``swept_at``, ``sweep_age``).

    ``path``, ``filesystem``, ``storage_options`` and ``keep_versions`` are as for
    :func:`~jetti_frames.snapshot`.

    Returns
    -------
    SnapshotInfo
        Its manifest holds ``swept_at``, ``sweep_requests`` and ``deleted_records`` (records
        whose rows were dropped).

    Raises
    ------
    SnapshotError
        No completed snapshot at ``path``, a damaged one, or one without an ``id`` column.

    Examples
    --------
    >>> sweep_snapshot("data/purchases").manifest["deleted_records"]   # doctest: +SKIP
    5
    """
    target = _Target.of(path, filesystem, storage_options)
    _recover(target)
    root, manifest = _open_published(target)
    _check_files(target, root, manifest)
    if "id" not in manifest["columns"]:
        raise SnapshotError("this snapshot has no 'id' column to sweep by; use "
                            "refresh_snapshot(path, full=True)")
    query = manifest["query"]
    started = _now()
    live: set[int] = set()
    with open_client(client, token=token, base_url=base_url) as client:
        for record in client.iter_records(manifest["resource"], where=query.get("where"),
                                          attributes=["id"], page_size=page_size, refresh=True,
                                          progress=progress):
            live.add(int(record["id"]))
        requests = client.last_stats.requests
        public_url = _public_url(client.base_url)
    ids = pa.array(sorted(live), type=pa.int64())
    dropped: set[int] = set()

    def items() -> Iterator[Item]:
        for entry in manifest["files"]:
            try:
                for table in _file_tables(target, root, entry, row_group_size):
                    keep = pc.fill_null(pc.is_in(pc.cast(table.column("id"), pa.int64()),
                                                 value_set=ids), False)
                    gone = table.filter(pc.invert(keep)).column("id").to_pylist()
                    dropped.update(int(i) for i in gone if i is not None)
                    yield table.filter(keep), entry.get("partition")
            except (pa.ArrowException, OSError) as exc:
                if isinstance(exc, SnapshotError):
                    raise
                raise _damaged(target, root, entry["path"], exc) from None

    new_manifest = {k: v for k, v in manifest.items() if k not in ("files", "columns", "rows")}
    new_manifest.update({
        "base_url": public_url,
        "swept_at": _iso(started),
        "toolkit_version": __version__,
        "catalog_digest": CATALOG.digest,
    })

    def summary() -> dict[str, Any]:
        return {"sweep_requests": requests, "deleted_records": len(dropped),
                "requests": requests}

    watermark = manifest.get("watermark")
    read_at = pd.Timestamp(watermark).to_pydatetime() if watermark else started
    return _write_version(target, _recorded_dtypes(target, root, manifest),
                          _Partition.from_json(manifest.get("partition_by")), new_manifest,
                          items(), summary, row_group_size=row_group_size, started=started,
                          max_updated=manifest.get("max_updated_at"), read_at=read_at,
                          previous=manifest, keep_versions=keep_versions)
