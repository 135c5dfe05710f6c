"""Parquet snapshots of a Jetti query: streaming write, atomic publish, provenance, refresh.

A snapshot is a directory holding a parquet dataset (hive-style folders when partitioned) and a
small manifest, ``_jetti_snapshot.json``, written last. The manifest is the completion marker:
a directory without it is never read. Layout::

    purchases/                          <- the path given to snapshot()
        _jetti_snapshot.json            <- provenance + file list (rows, size), written last
        part-0-0.parquet                <- unpartitioned (an empty snapshot: one empty file)
        dateOrdered_month=2024-05/part-0-0.parquet     <- partition_by=("dateOrdered", "month")
    .purchases.jetti-tmp-<host>-<pid>-<rand>/          <- a write in progress (sibling)
    .purchases.jetti-old-<rand>/                       <- the previous version, during a swap

Publishing renames ``path`` to the ``-old-`` sibling, the finished ``-tmp-`` sibling to ``path``,
then deletes the old version. A crash, kill or Ctrl-C at any point leaves the previous snapshot
readable: before the swap it is untouched; between the two renames :func:`read_snapshot` finds it
under its ``-old-`` name and the next write (a snapshot or a refresh) puts it back first.
Temporary siblings of dead writers are removed by the next write. On a local filesystem each
rename is atomic. Object stores (``s3://``, ``gs://``, ``abfs://``: any filesystem but the local
one) have no atomic rename, so there each version lives under its own prefix and the manifest,
written last as one object, publishes it::

    s3://bucket/jetti/purchases/
        _jetti_snapshot.json            <- names the current version ("version") and its files
        v-20240504T094200123456Z-1a2b3c4d/part-0-0.parquet   <- the current version
        v-20240503T094100654321Z-5e6f7a8b/part-0-0.parquet   <- the one before (keep_versions)

A write killed before its manifest leaves a prefix nothing names (never read, removed by a
later publish once a day old); after each publish the versions beyond ``keep_versions`` go.
``read_snapshot`` follows the manifest; readers that list files (Dask, DuckDB's glob) are given
the current version's folder, :attr:`SnapshotInfo.data_path`.

A refresh rewrites only the partitions whose rows change; the files of the others are hard
linked (copied on other filesystems) into the new version before the same publish, so the
previous version stays whole until the swap.

The manifest lists every data file with its rows, size in bytes, id range and partition.
:func:`snapshot_info` checks that each listed file is there with its size, :func:`read_snapshot`
also that each file's rows are the recorded ones and that its pages decode;
:func:`refresh_snapshot` checks sizes and decodes the files it rewrites (a file it carries over
unread keeps any damage, which the next read names). A manifest with a
missing key, a bad watermark or a file list that does not add up to its rows is refused too. Each
of these raises :class:`~jetti_frames.errors.SnapshotError` naming the file;
``refresh_snapshot(path, full=True)`` rewrites the snapshot from its recorded query. Files the
manifest does not list are ignored. Manifests written before sizes were recorded are read as
before, their files' footers checked instead of sizes.

Files carry pandas metadata, so tz-aware datetimes, nullable integers and Arrow types come back
with the dtypes of :func:`jetti_frames.read_jetti` (categoricals with the categories, and string
columns with the flavour, the manifest records); free-form JSON and array columns of the
``numpy_nullable`` backend are stored as JSON text. DuckDB, ``pyarrow.dataset`` and Dask read the
folder directly (they skip names starting with ``_`` or ``.``).

The package has one module per job: :mod:`.api` (the public functions), :mod:`.store`
(location, integrity checks, atomic publish and recovery), :mod:`.writing` (the stream of
record batches into ``pyarrow.dataset.write_dataset``), :mod:`.refreshing` (which partitions
a refresh rewrites and which it carries over), :mod:`.reading`, :mod:`.columns`.
``import jetti_frames.snapshot`` gives this module; it is callable as :func:`snapshot`, so
``from jetti_frames import snapshot`` followed by ``snapshot("purchases", ...)`` writes one.

Examples
--------
>>> from jetti_frames.snapshot import snapshot, read_snapshot, refresh_snapshot
>>> info = snapshot("purchases", "data/purchases", include=["PurchaseStatus"],
...                 partition_by=("dateOrdered", "month"))          # doctest: +SKIP
>>> df = read_snapshot("data/purchases")                             # doctest: +SKIP
>>> refresh_snapshot("data/purchases").changed_records             # doctest: +SKIP
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import (
    DEFAULT_OVERLAP,
    DtypeBackend,
    _and_updated_since,
    read_snapshot,
    refresh_snapshot,
    snapshot,
    snapshot_info,
)
from .columns import _column_specs, _json_text, _snapshot_dtypes
from .common import METADATA_KEY, _jsonable, _public_url
from .info import SnapshotInfo, _plain
from .store import DEFAULT_KEEP_VERSIONS, FORMAT, MANIFEST
from .sweep import sweep_snapshot
from .writing import DEFAULT_ROW_GROUP_SIZE, MAX_OPEN_FILES

# private names other modules and tests of the toolkit use
_internal = (_and_updated_since, _column_specs, _json_text, _jsonable, _plain, _public_url,
             _snapshot_dtypes)

__all__ = [
    "DEFAULT_KEEP_VERSIONS",
    "DEFAULT_OVERLAP",
    "DEFAULT_ROW_GROUP_SIZE",
    "FORMAT",
    "MANIFEST",
    "MAX_OPEN_FILES",
    "METADATA_KEY",
    "DtypeBackend",
    "SnapshotInfo",
    "read_snapshot",
    "refresh_snapshot",
    "snapshot",
    "snapshot_info",
    "sweep_snapshot",
]


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`snapshot` (``from jetti_frames import snapshot``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> SnapshotInfo:
        return snapshot(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
