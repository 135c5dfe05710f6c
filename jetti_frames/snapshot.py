"""Parquet snapshots of a Jetti query: streaming write, atomic publish, provenance, refresh.

A snapshot is a directory holding a parquet dataset (hive-style folders when partitioned) and a
small manifest, ``_jetti_snapshot.json``, written last. The manifest is the completion marker:
a directory without it is never read. Layout::

    purchases/                          <- the path given to snapshot()
        _jetti_snapshot.json            <- provenance + file list (rows, size), written last
        part-00000.parquet              <- unpartitioned
        dateOrdered_month=2024-05/part-00000.parquet   <- partition_by=("dateOrdered", "month")
    .purchases.jetti-tmp-<host>-<pid>-<rand>/          <- a write in progress (sibling)
    .purchases.jetti-old-<rand>/                       <- the previous version, during a swap

Publishing renames ``path`` to the ``-old-`` sibling, the finished ``-tmp-`` sibling to ``path``,
then deletes the old version. A crash, kill or Ctrl-C at any point leaves the previous snapshot
readable: before the swap it is untouched; between the two renames :func:`read_snapshot` finds it
under its ``-old-`` name and the next write (a snapshot or a refresh) puts it back first. Temporary
siblings of dead writers are
removed by the next write. On a local filesystem each rename is atomic; on object stores (through
pyarrow or fsspec filesystems) a directory "rename" copies objects, and only the manifest makes a
dataset trusted.

The manifest lists every data file with its rows and size in bytes. :func:`snapshot_info` checks
that each listed file is there with its size, :func:`read_snapshot` and :func:`refresh_snapshot`
also that each file's rows are the recorded ones and that its pages decode; a manifest with a
missing key, a bad watermark or a file list that does not add up to its rows is refused too. Each
of these raises :class:`~jetti_frames.errors.SnapshotError` naming the file;
``refresh_snapshot(path, full=True)`` rewrites the snapshot from its recorded query. Files the
manifest does not list are ignored. Manifests written before sizes were recorded are read as
before, their files' footers checked instead of sizes.

Files carry pandas metadata, so categoricals, tz-aware datetimes and nullable integers come back
with the dtypes of :func:`jetti_frames.read_jetti`; free-form JSON and array columns of the
``numpy_nullable`` backend are stored as JSON text. DuckDB, ``pyarrow.dataset`` and Dask read the
folder directly (they skip names starting with ``_`` or ``.``).

Examples
--------
>>> from jetti_frames.snapshot import snapshot, read_snapshot, refresh_snapshot
>>> info = snapshot("purchases", "data/purchases", include=["PurchaseStatus"],
...                 partition_by=("dateOrdered", "month"))          # doctest: +SKIP
>>> df = read_snapshot("data/purchases")                             # doctest: +SKIP
>>> refresh_snapshot("data/purchases").changed_records             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import math
import operator
import os
import posixpath
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import __version__
from .catalog import CATALOG, Field
from .errors import JettiError, JettiQueryError, SnapshotError

if TYPE_CHECKING:
    from .client import JettiClient

DtypeBackend = Literal["numpy_nullable", "pyarrow"]

__all__ = [
    "MANIFEST",
    "SnapshotInfo",
    "read_snapshot",
    "refresh_snapshot",
    "snapshot",
    "snapshot_info",
]

#: Name of the manifest and completion marker inside a snapshot directory.
MANIFEST = "_jetti_snapshot.json"
#: Key of the provenance in each parquet file's key-value metadata.
METADATA_KEY = "jetti_frames.provenance"
FORMAT = "jetti-snapshot/1"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
#: How far before the watermark a refresh starts looking (clock skew, writes during a pull).
DEFAULT_OVERLAP = dt.timedelta(minutes=5)
#: Rows per row group; pages are buffered per output file until this many rows (or 16 MiB).
DEFAULT_ROW_GROUP_SIZE = 65_536
BUFFER_BYTES = 16 * 1024 * 1024
#: At most this many files are open at once when writing many partitions.
MAX_OPEN_FILES = 128
#: Temporary siblings older than this are removed even when their writer cannot be checked.
STALE_SECONDS = 24 * 3600
PARTITION_UNITS = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d"}


# --------------------------------------------------------------------------------------------
# what snapshot(), refresh_snapshot() and snapshot_info() return
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=True)
class SnapshotInfo(Mapping[str, Any]):
    """A snapshot's summary: where it is, what it holds, what writing it cost.

    Returned by :func:`snapshot`, :func:`refresh_snapshot` and :func:`snapshot_info`. Its repr
    (and its HTML in a notebook) is one short summary; the whole manifest, with every file and
    column type, is :attr:`manifest`. ``info["rows"]``, ``dict(info)`` and ``info.get(...)``
    still read it as the provenance mapping (``columns`` there is the list of names).

    Attributes
    ----------
    path, resource
        The snapshot folder (or URL) and the resource it holds.
    rows, files
        Rows and parquet files.
    columns
        Column names, in order (the repr shows their count).
    watermark
        The ``updatedAt`` the next refresh starts from (``None`` for an empty snapshot).
    requests, seconds
        Network requests the write sent and the seconds it took (``None`` when not recorded).
    fetched_at, refreshed_at
        When the data was read in full, and when it was last refreshed (``None`` if never).
    changed_records
        After an incremental refresh: records added, updated or dropped; otherwise ``None``.
    refetched_records
        After an incremental refresh: records read again (changed or in the overlap).

    Examples
    --------
    >>> info = SnapshotInfo.from_manifest(
    ...     {"resource": "purchases", "rows": 1200, "files": [{"path": "part-00000.parquet"}],
    ...      "columns": {"id": {}, "total": {}}, "watermark": "2024-05-04T09:42:00+00:00",
    ...      "requests": 13, "seconds": 6.5, "fetched_at": "2024-05-04T09:45:00+00:00"},
    ...     "data/purchases")
    >>> info
    SnapshotInfo(path='data/purchases', resource='purchases', rows=1200, columns=2, files=1, \
watermark='2024-05-04T09:42:00+00:00', requests=13, seconds=6.5, \
fetched_at='2024-05-04T09:45:00+00:00')
    >>> info["rows"], info.columns, info.manifest["files"][0]["path"]
    (1200, ('id', 'total'), 'part-00000.parquet')
    """

    path: str
    resource: str
    rows: int
    columns: tuple[str, ...]
    files: int
    watermark: str | None
    requests: int | None
    seconds: float | None
    fetched_at: str | None
    refreshed_at: str | None = None
    changed_records: int | None = None
    refetched_records: int | None = None
    manifest: Mapping[str, Any] = dataclass_field(default_factory=dict, repr=False)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], path: str) -> SnapshotInfo:
        """The summary of a manifest (as written into ``_jetti_snapshot.json``)."""
        return cls(path=path, resource=str(manifest.get("resource")),
                   rows=int(manifest.get("rows") or 0), columns=tuple(manifest["columns"]),
                   files=len(manifest["files"]), watermark=manifest.get("watermark"),
                   requests=manifest.get("requests"), seconds=manifest.get("seconds"),
                   fetched_at=manifest.get("fetched_at"),
                   refreshed_at=manifest.get("refreshed_at"),
                   changed_records=manifest.get("changed_records"),
                   refetched_records=manifest.get("refetched_records"), manifest=manifest)

    # -- the provenance mapping (what these functions returned as a dict) --------------------
    def _mapping(self) -> dict[str, Any]:
        out = {k: v for k, v in self.manifest.items() if k not in ("files", "columns")}
        out.update(files=self.files, columns=list(self.columns), path=self.path)
        return out

    def __getitem__(self, key: str) -> Any:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    # -- display ------------------------------------------------------------------------------
    def summary_pairs(self) -> list[tuple[str, Any]]:
        """``(name, value)`` pairs of the summary, leaving out what was not recorded."""
        pairs: list[tuple[str, Any]] = [
            ("path", self.path), ("resource", self.resource), ("rows", self.rows),
            ("columns", len(self.columns)), ("files", self.files),
            ("watermark", self.watermark), ("requests", self.requests),
            ("seconds", self.seconds), ("fetched_at", self.fetched_at),
            ("refreshed_at", self.refreshed_at), ("changed_records", self.changed_records)]
        return [(k, v) for k, v in pairs if v is not None or k in ("watermark",)]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.summary_pairs())
        return f"SnapshotInfo({inner})"

    def _repr_html_(self) -> str:
        import html

        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(_plain(v))}</td></tr>"
                       for k, v in self.summary_pairs())
        return f"<table><caption>SnapshotInfo</caption>{rows}</table>"

    def summary(self) -> str:
        """The summary as aligned ``name  value`` lines (what ``jetti-frames info`` prints)."""
        shown = self.summary_pairs()
        width = max(len(k) for k, _ in shown)
        return "\n".join(f"{k:<{width}}  {_plain(v)}" for k, v in shown)


def _plain(value: Any) -> str:
    """A value as a person reads it: thousands separated, nothing for a missing one."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def snapshot(
    resource: str,
    path: str | os.PathLike[str],
    *,
    where: Mapping[str, Any] | None = None,
    attributes: Sequence[str] | None = None,
    include: Any = None,
    order: Any = None,
    partition_by: str | tuple[str, str] | None = None,
    client: JettiClient | None = None,
    token: str | None = None,
    base_url: str | None = None,
    dtype_backend: DtypeBackend = "numpy_nullable",
    sep: str = "_",
    page_size: int | None = None,
    refresh: bool = False,
    progress: bool | None = None,
    filesystem: Any = None,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
) -> SnapshotInfo:
    """Write the result of a query as a parquet dataset, page by page, and publish it atomically.

    Parameters
    ----------
    resource, where, attributes, include, order
        The query, as for :func:`jetti_frames.read_jetti`.
    path
        A local directory or a URL (``s3://...``, ``memory://...``: pyarrow or fsspec filesystems).
        Replaced as a whole when it already holds a snapshot; refused when it holds other files.
    partition_by
        A column name, or ``(datetime column, "year" | "month" | "day")`` to add a derived
        ``<column>_<unit>`` partition column (e.g. ``dateOrdered_month=2024-05``).
    client, token, base_url
        A :class:`~jetti_frames.JettiClient`, or what to build one from (``JETTI_*`` env otherwise).
    refresh
        Bypass the HTTP cache.
    filesystem
        A ``pyarrow.fs.FileSystem`` or fsspec filesystem; ``path`` is then a path inside it.

    Returns
    -------
    SnapshotInfo
        Path, rows, columns, watermark, requests and seconds, as :func:`snapshot_info` returns
        them (``.manifest`` holds the whole manifest).

    Examples
    --------
    >>> info = snapshot("purchases", "data/purchases", where={"purchaseType": "dropship"},
    ...                 partition_by=("dateOrdered", "month"))   # doctest: +SKIP
    >>> info.rows, info.watermark                                # doctest: +SKIP
    (1200, '2024-05-04T09:42:00+00:00')
    """
    target = _Target.of(path, filesystem)
    query = _query(where, attributes, include, order)
    options = {"dtype_backend": dtype_backend, "sep": sep}
    client = _client(client, token, base_url)
    dtypes = dict(client.frame_dtypes(resource, attributes=attributes, include=include,
                                      dtype_backend=dtype_backend, sep=sep))
    partition = _Partition.of(partition_by, dtypes)
    started = _now()
    frames = client.iter_frames(resource, where=where, attributes=attributes, include=include,
                                order=order, page_size=page_size, refresh=refresh,
                                dtype_backend=dtype_backend, sep=sep, progress=progress)
    manifest = {
        "format": FORMAT,
        "resource": CATALOG.resource(resource).url,
        "query": query,
        "options": options,
        "partition_by": partition.to_json() if partition else None,
        "base_url": _public_url(client.base_url),
        "fetched_at": _iso(started),
        "toolkit_version": __version__,
        "catalog_digest": CATALOG.digest,
    }

    def fill(writer: _DatasetWriter) -> dict[str, Any]:
        for frame in frames:
            writer.write_frame(frame)
        stats = _stats(client)
        return {"requests": stats.get("requests"), "cache_hits": stats.get("cache_hits")}

    return _write_version(target, dtypes, partition, manifest, fill,
                          row_group_size=row_group_size, started=started, max_updated=None)


def read_snapshot(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    filters: Any = None,
    *,
    filesystem: Any = None,
) -> pd.DataFrame:
    """Read a snapshot back as a DataFrame with the dtypes :func:`jetti_frames.read_jetti` gives.

    Parameters
    ----------
    path
        The directory (or URL) given to :func:`snapshot`.
    columns
        Columns to read (default all; a derived partition column such as ``dateOrdered_month``
        can be asked for by name).
    filters
        Row filters in ``pyarrow.parquet`` form: ``(column, op, value)`` tuples ANDed in a list,
        or a list of such lists ORed (``op`` one of ``== = != < <= > >= in "not in"``), or a
        ``pyarrow.compute`` expression. Values are converted to the column's type by the rule
        ``read_jetti``'s ``where`` uses (date strings in ISO-8601 form, dates, ``"12"`` for an
        integer, an enum checked against its values); ``None`` with ``==``/``!=`` tests for
        null. Partition columns prune whole folders.

    Raises
    ------
    SnapshotError
        When ``path`` is missing or holds no completed snapshot (e.g. an interrupted write), or
        a listed file is missing or damaged (files the manifest does not list are ignored).
    JettiQueryError
        A filter on an unknown column, or a value that does not fit its column.

    Examples
    --------
    >>> df = read_snapshot("data/purchases", columns=["id", "total"],
    ...                    filters=[("total", ">", 100)])   # doctest: +SKIP
    """
    target = _Target.of(path, filesystem)
    root, manifest = _open_published(target)
    _check_files(target, root, manifest)
    specs: dict[str, Any] = manifest["columns"]
    partition = _Partition.from_json(manifest.get("partition_by"))
    files = [_join(root, f["path"]) for f in manifest["files"]]
    derived = partition.name if partition and partition.derived else None
    wanted = _column_order(manifest) if columns is None else list(columns)
    unknown = [c for c in wanted if c not in specs and c != derived]
    if unknown:
        raise SnapshotError(f"no such column in the snapshot: {', '.join(map(repr, unknown))}")
    file_schema = _arrow_schema(specs, partition)
    part_schema = partition.arrow_schema(specs) if partition else None
    schema = _dataset_schema(file_schema, part_schema)
    expression = _filter_expression(filters, specs, schema)
    if files:
        dataset = pads.dataset(
            files, schema=schema, format="parquet", filesystem=target.fs,
            partitioning=pads.partitioning(part_schema, flavor="hive") if part_schema else None,
            partition_base_dir=root if part_schema else None)
        sort_keys = _sort_columns(manifest, specs)
        read_cols = list(dict.fromkeys([*wanted, *[k for k in sort_keys if k in specs]]))
        _check_footers(target, root, manifest, dataset)
        try:
            table = dataset.to_table(columns=read_cols, filter=expression)
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(target, root, _culprit(dataset, root, manifest, read_cols),
                           exc) from None
    else:
        sort_keys = []
        read_cols = wanted
        table = file_schema.empty_table().select([c for c in wanted if c in file_schema.names])
    frame = _to_pandas(table, specs, file_schema)
    frame = _sort(frame, manifest, sort_keys)
    return frame[wanted].reset_index(drop=True)


def snapshot_info(path: str | os.PathLike[str], *, filesystem: Any = None) -> SnapshotInfo:
    """A snapshot's summary and provenance, read from its manifest (no data file is opened).

    A :class:`SnapshotInfo`; as a mapping its keys are ``resource``, ``query`` (``where``,
    ``attributes``, ``include``, ``order``), ``partition_by``, ``base_url``, ``fetched_at``,
    ``watermark``, ``rows``, ``requests``, ``seconds``, ``toolkit_version``,
    ``catalog_digest``, ``files`` (count), ``columns`` (names) and ``path``.

    Examples
    --------
    >>> snapshot_info("data/purchases")["watermark"]   # doctest: +SKIP
    '2024-05-04T09:42:00+00:00'
    """
    target = _Target.of(path, filesystem)
    root, manifest = _open_published(target)
    _check_files(target, root, manifest)
    return SnapshotInfo.from_manifest(manifest, target.display(root))


def refresh_snapshot(
    path: str | os.PathLike[str],
    *,
    full: bool = False,
    overlap: dt.timedelta | float = DEFAULT_OVERLAP,
    client: JettiClient | None = None,
    token: str | None = None,
    base_url: str | None = None,
    page_size: int | None = None,
    progress: bool | None = None,
    filesystem: Any = None,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
) -> SnapshotInfo:
    """Bring a snapshot up to date, fetching only the records changed since its watermark.

    Asks for the recorded query ANDed with ``updatedAt >= watermark - overlap`` (the watermark is
    the newest ``updatedAt`` seen, capped at the time that fetch started), replaces every
    row of a re-fetched record (all exploded rows of a has-many include), keeps the rest, and
    publishes the result atomically with the new watermark. Requests are proportional to the
    records changed, not to the size of the snapshot. When the query has a ``where`` filter, one
    more id-only query over the same time window finds records that no longer match it, and
    their rows are dropped. The :class:`SnapshotInfo` returned counts in ``changed_records``
    the records added, updated (a new ``updatedAt``) or dropped; records the overlap read again
    unchanged count only in ``refetched_records``.

    What an incremental refresh cannot see, and when to pass ``full=True`` (a complete re-pull):

    * records **deleted** on the server (they stop being listed; nothing marks them);
    * changes made only to **included** records (a renamed status or provider does not move the
      purchase's ``updatedAt``);
    * snapshots whose ``attributes`` leave out ``id`` or ``updatedAt``;
    * a new catalogue or toolkit version that changes the columns.

    Parameters
    ----------
    full
        Re-run the whole recorded query instead.
    overlap
        Safety margin subtracted from the watermark (server clock skew, records changed while
        the previous snapshot was being read): a ``timedelta`` or a number of **seconds**,
        never negative. Re-fetched unchanged records are harmless.

    Raises
    ------
    JettiQueryError
        A negative, NaN or infinite ``overlap``, or one that is not a duration; before any
        request.

    Examples
    --------
    >>> refresh_snapshot("data/purchases").changed_records    # doctest: +SKIP
    >>> refresh_snapshot("data/purchases", full=True)         # doctest: +SKIP
    """
    margin = _overlap(overlap)
    target = _Target.of(path, filesystem)
    _recover(target)
    root, manifest = _open_published(target, data=not full)
    if not full:
        _check_files(target, root, manifest)
    query = manifest["query"]
    options = manifest.get("options") or {}
    partition_json = manifest.get("partition_by")
    partition_by: Any = None
    if partition_json:
        partition_by = ((partition_json["column"], partition_json["unit"])
                        if partition_json.get("unit") else partition_json["column"])
    client = _client(client, token, base_url)
    if full:
        return snapshot(manifest["resource"], path, where=query.get("where"),
                        attributes=query.get("attributes"), include=query.get("include"),
                        order=query.get("order"), partition_by=partition_by, client=client,
                        dtype_backend=options.get("dtype_backend", "numpy_nullable"),
                        sep=options.get("sep", "_"), page_size=page_size, refresh=True,
                        progress=progress, filesystem=filesystem, row_group_size=row_group_size)

    specs = manifest["columns"]
    if "id" not in specs or "updatedAt" not in specs:
        raise SnapshotError("this snapshot has no 'id' and 'updatedAt' columns to refresh by; "
                            "use full=True")
    if manifest.get("watermark") is None:
        raise SnapshotError("this snapshot has no watermark (it was empty); use full=True")
    resource = manifest["resource"]
    dtype_backend = options.get("dtype_backend", "numpy_nullable")
    sep = options.get("sep", "_")
    dtypes = dict(client.frame_dtypes(resource, attributes=query.get("attributes"),
                                      include=query.get("include"),
                                      dtype_backend=dtype_backend, sep=sep))
    if not _compatible(_column_specs(dtypes), specs):
        raise SnapshotError("the columns of this query changed since the snapshot was taken "
                            "(new catalogue or toolkit version); use full=True")
    since = _window_start(manifest["watermark"], margin)
    where = _and_updated_since(query.get("where"), since)
    started = _now()
    changed = list(client.iter_frames(
        resource, where=where, attributes=query.get("attributes"), include=query.get("include"),
        page_size=page_size, refresh=True, dtype_backend=dtype_backend, sep=sep,
        progress=progress))
    requests = _stats(client).get("requests") or 0
    replaced: set[int] = set()
    for frame in changed:
        replaced.update(int(i) for i in frame["id"].dropna())
    if query.get("where"):
        for record in client.iter_records(resource, where={"updatedAt": {"$gte": since}},
                                          attributes=["id"], page_size=page_size,
                                          refresh=True, progress=progress):
            replaced.add(int(record["id"]))
        requests += _stats(client).get("requests") or 0
    partition = _Partition.from_json(partition_json)
    new_manifest = {k: v for k, v in manifest.items() if k not in ("files", "columns", "rows")}
    new_manifest.update({
        "base_url": _public_url(client.base_url),
        "refreshed_at": _iso(started),
        "toolkit_version": __version__,
        "catalog_digest": CATALOG.digest,
        "previous_watermark": manifest["watermark"],
    })

    def fill(writer: _DatasetWriter) -> dict[str, Any]:
        ids = pa.array(sorted(replaced), type=pa.int64())
        before: dict[int, int | None] = {}  # id -> updatedAt of the rows being replaced
        for entry in manifest["files"]:
            key = _partition_key(entry.get("partition"), partition)
            try:
                for table in _file_tables(target, root, entry, row_group_size):
                    ids_col = pc.cast(table.column("id"), pa.int64())
                    hit = pc.fill_null(pc.is_in(ids_col, value_set=ids), False)
                    old = table.filter(hit)
                    before.update(_versions(old.column("id").to_pylist(),
                                            old.column("updatedAt").to_pylist()))
                    writer.write_table(table.filter(pc.invert(hit)), key)
            except (pa.ArrowException, OSError) as exc:
                if isinstance(exc, SnapshotError):
                    raise
                raise _damaged(target, root, entry["path"], exc) from None
        after: dict[int, int | None] = {}
        for frame in changed:
            writer.write_frame(frame)
            after.update(_versions(frame["id"], frame["updatedAt"]))
        differ = {i for i in before.keys() | after.keys()
                  if before.get(i, -1) != after.get(i, -1)}
        return {"requests": requests, "changed_records": len(differ),
                "refetched_records": len(after)}

    return _write_version(target, _dtypes_from_specs(specs), partition, new_manifest, fill,
                          row_group_size=row_group_size, started=started,
                          max_updated=manifest.get("max_updated_at"))


# --------------------------------------------------------------------------------------------
# where the dataset lives
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A snapshot location: a pyarrow filesystem, the directory inside it and its siblings."""

    fs: pafs.FileSystem
    root: str
    url: str  # the root as the user wrote it (a URL or an absolute local path)

    @classmethod
    def of(cls, path: str | os.PathLike[str], filesystem: Any = None) -> _Target:
        if filesystem is not None:
            fs = filesystem if isinstance(filesystem, pafs.FileSystem) else \
                pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
            root = _strip(str(path))
            return cls(fs, root, root)
        text = os.fspath(path)
        if "://" not in text:
            root = _strip(os.path.abspath(os.path.expanduser(text)))
            return cls(pafs.LocalFileSystem(), root, root)
        try:
            fs, inner = pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            try:
                import fsspec
            except ImportError:  # pragma: no cover - fsspec is optional
                raise SnapshotError(f"unsupported URL {text!r}: install fsspec") from None
            try:
                ffs, inner = fsspec.core.url_to_fs(text)
            except (ValueError, ImportError) as exc:
                raise SnapshotError(f"unsupported URL {text!r}: {exc}") from None
            fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
        root = _strip(inner)
        return cls(fs, root, root if isinstance(fs, pafs.LocalFileSystem) else text.rstrip("/"))

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.root) or "/"

    @property
    def name(self) -> str:
        return posixpath.basename(self.root)

    def sibling(self, kind: str, tag: str) -> str:
        return _join(self.parent, f".{self.name}.jetti-{kind}-{tag}")

    def siblings(self, kind: str) -> list[str]:
        head = f".{self.name}.jetti-{kind}-"
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.parent, allow_not_found=True))
        except OSError:
            return []
        return sorted(i.path for i in infos
                      if i.type == pafs.FileType.Directory and i.base_name.startswith(head))

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def is_complete(self, path: str) -> bool:
        return bool(self.fs.get_file_info(_join(path, MANIFEST)).type == pafs.FileType.File)

    def display(self, path: str) -> str:
        """``path`` as the user would write it (siblings keep the URL's scheme)."""
        if path == self.root:
            return self.url
        if self.url == self.root:
            return path
        return f"{self.url.rsplit('/', 1)[0]}/{posixpath.basename(path)}"


def _strip(path: str) -> str:
    path = path.replace(os.sep, "/") if os.sep != "/" else path
    return path.rstrip("/") or "/"


def _join(*parts: str) -> str:
    return posixpath.join(*parts)


def _open_published(target: _Target, *, data: bool = True) -> tuple[str, dict[str, Any]]:
    """The directory of the published snapshot and its checked manifest.

    A publish killed between its two renames left the snapshot under its ``-old-`` name: it is
    read from there (a writer puts it back first, see :func:`_recover`).  ``data=False`` checks
    only what a full refresh needs (the query), not the file list and watermark.
    """
    root = target.root
    if not target.is_complete(root):
        old = [p for p in target.siblings("old") if target.is_complete(p)]
        if not target.exists(root) and old:
            root = old[-1]  # killed between the two renames of a publish
        elif target.exists(root):
            raise SnapshotError(f"{target.display(root)} is not a completed snapshot (no "
                                f"{MANIFEST}); an interrupted write leaves no marker")
        else:
            raise SnapshotError(f"no snapshot at {target.display(root)}")
    with target.fs.open_input_stream(_join(root, MANIFEST)) as handle:
        try:
            manifest = json.loads(handle.read().decode("utf-8"))
        except ValueError as exc:
            raise SnapshotError(f"unreadable {MANIFEST} in {target.display(root)}: {exc}; "
                                f"{_redo(target)}") from None
    if not isinstance(manifest, dict):
        raise SnapshotError(f"unreadable {MANIFEST} in {target.display(root)}: not a JSON "
                            f"object; {_redo(target)}")
    if "format" not in manifest:
        if data:
            raise SnapshotError(f"{target.display(root)}: damaged {MANIFEST} (no 'format'); "
                                f"{_redo(target)}")
    elif manifest["format"] != FORMAT:
        raise SnapshotError(f"{target.display(root)}: unknown snapshot format "
                            f"{manifest['format']!r} (this version reads {FORMAT!r})")
    _check_manifest(target, root, manifest, data=data)
    return root, manifest


# --------------------------------------------------------------------------------------------
# integrity: the manifest lists every data file with its rows and size
# --------------------------------------------------------------------------------------------


def _redo(target: _Target, *, query_lost: bool = False) -> str:
    """What to do about a damaged snapshot, as one clause."""
    if query_lost:
        return "re-run snapshot(...) for this path to replace it"
    path = target.display(target.root)
    return (f"rewrite it with refresh_snapshot({path!r}, full=True) (jetti-frames refresh "
            f"{path} --full) or re-run the snapshot")


def _check_manifest(target: _Target, root: str, manifest: Mapping[str, Any], *,
                    data: bool) -> None:
    """Refuse a manifest that lacks a key, or whose file list does not add up to its rows."""
    where = f"{target.display(root)}: damaged {MANIFEST}"
    partition = manifest.get("partition_by")
    if not isinstance(manifest.get("resource"), str) or \
            not isinstance(manifest.get("query"), dict) or \
            not isinstance(manifest.get("options") or {}, dict) or \
            not (partition is None or _good_partition(partition)):
        raise SnapshotError(f"{where} (no 'resource', 'query', or a bad 'options' or "
                            f"'partition_by'); {_redo(target, query_lost=True)}")
    if not data:
        return
    missing = [k for k in ("columns", "files", "rows", "watermark") if k not in manifest]
    if missing:
        raise SnapshotError(f"{where} (no {', '.join(map(repr, missing))}); {_redo(target)}")
    files, columns, rows = manifest["files"], manifest["columns"], manifest["rows"]
    try:
        _dtypes_from_specs(columns)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise SnapshotError(f"{where} (bad 'columns'); {_redo(target)}") from None
    if not isinstance(files, list) or not all(_good_entry(f) for f in files) \
            or not _whole(rows):
        raise SnapshotError(f"{where} (bad 'files' or 'rows'); {_redo(target)}")
    listed = sum(f["rows"] for f in files)
    if listed != rows:
        raise SnapshotError(f"{where}: its files hold {listed} rows, not the {rows} it "
                            f"records (a file is missing from the list); {_redo(target)}")
    watermark = manifest["watermark"]
    if watermark is not None and not _is_timestamp(watermark):
        raise SnapshotError(f"{where} (bad watermark {str(watermark)[:40]!r}); {_redo(target)}")


def _good_partition(raw: Any) -> bool:
    return (isinstance(raw, dict) and isinstance(raw.get("column"), str)
            and raw.get("unit") in (None, *PARTITION_UNITS))


def _good_entry(entry: Any) -> bool:
    """A file entry: a relative path inside the snapshot, a row count, maybe a size."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return False
    parts = entry["path"].split("/")
    return (bool(entry["path"]) and not entry["path"].startswith("/") and ".." not in parts
            and _whole(entry.get("rows")) and (entry.get("size") is None
                                               or _whole(entry["size"])))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return pd.Timestamp(value).tzinfo is not None
    except ValueError:
        return False


def _check_files(target: _Target, root: str, manifest: Mapping[str, Any]) -> None:
    """Every listed file exists with the size the manifest records (cheap: no file is opened).

    Manifests written before sizes were recorded have their files' footers read instead.
    Files the manifest does not list are ignored.
    """
    entries = manifest["files"]
    infos = target.fs.get_file_info([_join(root, e["path"]) for e in entries]) if entries else []
    for entry, info in zip(entries, infos, strict=True):
        if info.type != pafs.FileType.File:
            raise _damaged(target, root, entry["path"], "missing")
        size = entry.get("size")
        if size is not None and info.size != size:
            raise _damaged(target, root, entry["path"],
                           f"{info.size} bytes, the manifest records {size}")
        if size is None:
            try:
                with target.fs.open_input_file(info.path) as handle:
                    rows = pq.ParquetFile(handle).metadata.num_rows
            except (pa.ArrowException, OSError) as exc:
                raise _damaged(target, root, entry["path"], exc) from None
            _check_rows(target, root, entry, rows)


def _check_rows(target: _Target, root: str, entry: Mapping[str, Any], rows: int) -> None:
    if rows != entry["rows"]:
        raise _damaged(target, root, entry["path"],
                       f"{rows} rows, the manifest records {entry['rows']}")


def _check_footers(target: _Target, root: str, manifest: Mapping[str, Any],
                   dataset: pads.FileSystemDataset) -> None:
    """Each file's footer holds the rows the manifest records (the scan reuses the footers)."""
    entries = {_join(root, e["path"]): e for e in manifest["files"]}
    for fragment in dataset.get_fragments():
        entry = entries.get(fragment.path)
        if entry is None:  # pragma: no cover - the dataset is built from this list
            continue
        try:
            rows = fragment.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(target, root, entry["path"], exc) from None
        _check_rows(target, root, entry, rows)


def _culprit(dataset: pads.FileSystemDataset, root: str, manifest: Mapping[str, Any],
             columns: list[str]) -> str:
    """The listed file a failed scan could not read (each is read alone to find it)."""
    names = {_join(root, e["path"]): e["path"] for e in manifest["files"]}
    for fragment in dataset.get_fragments():
        try:
            fragment.to_table(columns=[c for c in columns
                                       if c in fragment.physical_schema.names])
        except (pa.ArrowException, OSError):
            return names.get(fragment.path, str(fragment.path))
    return "a data file"


def _file_tables(target: _Target, root: str, entry: Mapping[str, Any],
                 batch_size: int) -> Iterator[pa.Table]:
    """The rows of one listed file, batch by batch, after checking its footer's row count."""
    with target.fs.open_input_file(_join(root, entry["path"])) as handle:
        parquet = pq.ParquetFile(handle)
        _check_rows(target, root, entry, parquet.metadata.num_rows)
        for batch in parquet.iter_batches(batch_size=batch_size):
            yield pa.Table.from_batches([batch])


def _damaged(target: _Target, root: str, name: str, why: Any) -> SnapshotError:
    """The error for a listed data file that is missing or unreadable."""
    text = " ".join(str(why).split()) or type(why).__name__
    if len(text) > 160:
        text = text[:157] + "..."
    return SnapshotError(f"{target.display(root)}: data file {name} is damaged ({text}); "
                         f"{_redo(target)}")


# --------------------------------------------------------------------------------------------
# writing a version and publishing it
# --------------------------------------------------------------------------------------------


def _write_version(target: _Target, dtypes: Mapping[str, Any], partition: _Partition | None,
                   manifest: dict[str, Any], fill: Any, *, row_group_size: int,
                   started: dt.datetime, max_updated: str | None) -> SnapshotInfo:
    """Write a complete version into a temporary sibling, then publish it in place of the old.

    The watermark is the largest ``updatedAt`` in the data, but never later than the time the
    fetch started: a record dated in the future (or a server clock ahead of ours) must not push
    the next refresh's window past changes it has not seen yet.
    """
    _check_target(target)
    _clean_siblings(target)
    tmp = target.sibling("tmp", f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    target.fs.create_dir(tmp, recursive=True)
    try:
        writer = _DatasetWriter(target.fs, tmp, dtypes, partition, row_group_size=row_group_size,
                                metadata=manifest)
        try:
            extra = fill(writer)
        finally:
            writer.close()
        manifest = dict(manifest)
        manifest.update(extra)
        top = _max_iso(max_updated, writer.watermark)
        manifest["max_updated_at"] = top
        manifest["watermark"] = top and min(pd.Timestamp(top), pd.Timestamp(started)).isoformat()
        manifest["rows"] = writer.rows
        manifest["columns"] = writer.specs
        manifest["files"] = _with_sizes(target.fs, tmp, writer.files)
        manifest["seconds"] = round((_now() - started).total_seconds(), 3)
        _write_json(target.fs, _join(tmp, MANIFEST), manifest)  # last: the completion marker
        _publish(target, tmp)
    except BaseException:
        with contextlib.suppress(Exception):
            target.fs.delete_dir(tmp)
        raise
    return SnapshotInfo.from_manifest(manifest, target.display(target.root))


def _with_sizes(fs: pafs.FileSystem, root: str,
                files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The file list with each file's size in bytes (checked by every read)."""
    infos = fs.get_file_info([_join(root, f["path"]) for f in files]) if files else []
    return [{**f, "size": info.size} for f, info in zip(files, infos, strict=True)]


def _check_target(target: _Target) -> None:
    info = target.fs.get_file_info(target.root)
    if info.type == pafs.FileType.File:
        raise SnapshotError(f"{target.display(target.root)} is a file, not a snapshot directory")
    if info.type == pafs.FileType.Directory and not target.is_complete(target.root):
        inside = target.fs.get_file_info(pafs.FileSelector(target.root))
        if inside:
            raise SnapshotError(f"{target.display(target.root)} holds files but no snapshot; "
                                "refusing to replace it")


def _publish(target: _Target, tmp: str) -> None:
    root = target.root
    if target.exists(root):
        old = target.sibling("old", uuid.uuid4().hex[:8])
        target.fs.move(root, old)
        target.fs.move(tmp, root)
        with contextlib.suppress(OSError):
            target.fs.delete_dir(old)
    else:
        target.fs.create_dir(target.parent, recursive=True)
        target.fs.move(tmp, root)


def _recover(target: _Target) -> None:
    """Put back a version stranded by a publish killed between its two renames."""
    if not target.exists(target.root):
        old = [p for p in target.siblings("old") if target.is_complete(p)]
        if old:
            target.fs.move(old[-1], target.root)


def _clean_siblings(target: _Target) -> None:
    """Put back a version stranded by a killed publish; remove temp dirs of dead writers."""
    _recover(target)
    for path in target.siblings("old"):
        with contextlib.suppress(OSError):
            target.fs.delete_dir(path)
    for path in target.siblings("tmp"):
        if _is_stale(target, path):
            with contextlib.suppress(OSError):
                target.fs.delete_dir(path)


def _is_stale(target: _Target, path: str) -> bool:
    tag = posixpath.basename(path).split(".jetti-tmp-", 1)[-1]
    parts = tag.rsplit("-", 2)  # <host>-<pid>-<random>
    if isinstance(target.fs, pafs.LocalFileSystem) and len(parts) == 3 \
            and parts[0] == socket.gethostname() and parts[1].isdigit():
        return not _pid_alive(int(parts[1]))
    mtime = target.fs.get_file_info(path).mtime
    return mtime is None or (time.time() - mtime.timestamp()) > STALE_SECONDS


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json(fs: pafs.FileSystem, path: str, data: Mapping[str, Any]) -> None:
    with fs.open_output_stream(path) as handle:
        handle.write(json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))


# --------------------------------------------------------------------------------------------
# the streaming writer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Partition:
    """``partition_by``: a column, or a datetime column cut to a unit (derived column)."""

    column: str
    unit: str | None

    @property
    def name(self) -> str:
        return f"{self.column}_{self.unit}" if self.unit else self.column

    @property
    def derived(self) -> bool:
        return self.unit is not None

    @classmethod
    def of(cls, spec: str | tuple[str, str] | Sequence[str] | None,
           dtypes: Mapping[str, Any]) -> _Partition | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            column, unit = spec, None
        else:
            try:
                column, unit = spec
            except (TypeError, ValueError):
                raise _usage(f"partition_by must be a column or (column, unit), not "
                             f"{spec!r}") from None
        if column not in dtypes:
            raise _usage(f"cannot partition by {column!r}: not a column of this query")
        dtype = dtypes[column]
        is_datetime = _is_datetime(dtype)
        if unit is not None:
            if unit not in PARTITION_UNITS:
                raise _usage(f"partition unit must be one of {', '.join(PARTITION_UNITS)}, "
                             f"not {unit!r}")
            if not is_datetime:
                raise _usage(f"cannot cut {column!r} by {unit}: it is not a datetime column")
        elif is_datetime:
            raise _usage(f"partition a datetime column by a unit, e.g. ({column!r}, 'month')")
        elif _is_float(dtype) or pd.api.types.is_object_dtype(dtype):
            raise _usage(f"cannot partition by {column!r}: use an integer, boolean, enum or "
                         "string column, or a datetime cut to a unit")
        return cls(column, unit)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> _Partition | None:
        return cls(raw["column"], raw.get("unit")) if raw else None

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "unit": self.unit, "name": self.name}

    def keys(self, frame: pd.DataFrame) -> pd.Series:
        """The partition value of each row, as Python scalars (None for null)."""
        values = frame[self.column]
        if self.unit:
            out = values.dt.strftime(PARTITION_UNITS[self.unit]).astype(object)
        else:
            out = values.astype(object)
        return out.where(values.notna(), None)

    def arrow_type(self, specs: Mapping[str, Any]) -> pa.DataType:
        if self.unit:
            return pa.string()
        kind = specs[self.column]["type"]
        name = specs[self.column].get("name", "")
        if kind == "numpy" and "int" in name.lower():
            return pa.int64()
        if kind == "numpy" and name in ("boolean", "bool"):
            return pa.bool_()
        if kind == "arrow":
            arrow = specs[self.column]["arrow"]
            if "int" in arrow:
                return pa.int64()
            if arrow in ("bool", "boolean"):
                return pa.bool_()
        return pa.string()

    def arrow_schema(self, specs: Mapping[str, Any]) -> pa.Schema:
        return pa.schema([pa.field(self.name, self.arrow_type(specs))])


def _usage(message: str) -> JettiError:
    from .errors import JettiQueryError

    return JettiQueryError(message)


def _partition_dir(value: Any, name: str) -> str:
    if value is None:
        text = HIVE_NULL
    elif isinstance(value, (bool, np.bool_)):
        text = "true" if value else "false"
    else:
        text = quote(str(value), safe="-_.~ ")
    return f"{name}={text}"


def _partition_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return _scalar(value)


def _partition_key(value: Any, partition: _Partition | None) -> tuple[Any, ...]:
    return () if partition is None else (value,)


class _DatasetWriter:
    """One ``pq.ParquetWriter`` per output file with a fixed schema; bounded buffers.

    Columns a page adds (fields the catalogue does not know) extend the schema: the open files
    are closed and later rows go to new files; readers fill the missing column with nulls.
    Categories a page adds to an enum column are remembered for the manifest.
    """

    def __init__(self, fs: pafs.FileSystem, root: str, dtypes: Mapping[str, Any],
                 partition: _Partition | None, *, row_group_size: int,
                 metadata: Mapping[str, Any]) -> None:
        self.fs = fs
        self.root = root
        self.dtypes = {str(k): pd.api.types.pandas_dtype(v) for k, v in dtypes.items()}
        self.partition = partition
        self.row_group_size = row_group_size
        self.provenance = json.dumps(_provenance(metadata)).encode()
        self.rows = 0
        self.watermark: str | None = None
        self.files: list[dict[str, Any]] = []
        self._open: OrderedDict[tuple[Any, ...], _OpenFile] = OrderedDict()
        self._counts: dict[tuple[Any, ...], int] = {}
        self._set_schema()

    def _set_schema(self) -> None:
        self.specs = _column_specs(self.dtypes)
        self.json_columns = [c for c, s in self.specs.items() if s["type"] == "json"]
        schema = _arrow_schema(self.specs, self.partition, dtypes=self.dtypes)
        self.schema = schema.with_metadata({**(schema.metadata or {}),
                                            METADATA_KEY.encode(): self.provenance})

    def write_frame(self, frame: pd.DataFrame) -> None:
        """Write one typed page (columns and dtypes as ``frame_dtypes`` promised)."""
        new = [str(c) for c in frame.columns if c not in self.dtypes]
        if new:
            self.close()
            for name in new:
                self.dtypes[name] = frame[name].dtype
            self._set_schema()
        for column, dtype in frame.dtypes.items():
            known = self.dtypes[str(column)]
            if isinstance(dtype, pd.CategoricalDtype) and isinstance(known, pd.CategoricalDtype):
                extra = dtype.categories.difference(known.categories, sort=False)
                if len(extra):
                    self.dtypes[str(column)] = pd.CategoricalDtype(
                        known.categories.append(extra), ordered=known.ordered)
                    self.specs[str(column)] = _dtype_spec(self.dtypes[str(column)])
        if frame.empty:
            return
        if "updatedAt" in frame.columns:
            top = frame["updatedAt"].max()
            if top is not None and not pd.isna(top):
                self.watermark = _max_iso(self.watermark, pd.Timestamp(top).isoformat())
        table = self._conform(self._table(frame))
        if self.partition is None:
            self._append(table, ())
            return
        keys = self.partition.keys(frame)
        codes, uniques = pd.factorize(keys, use_na_sentinel=False)
        if len(uniques) == 1:
            self._append(table, (_partition_value(uniques[0]),))
            return
        for index, value in enumerate(uniques):
            rows = pa.array(np.flatnonzero(codes == index))
            self._append(table.take(rows), (_partition_value(value),))

    def _table(self, frame: pd.DataFrame) -> pa.Table:
        data = frame
        if self.json_columns:
            data = frame.copy(deep=False)
            for col in self.json_columns:
                if col in data.columns:
                    data[col] = frame[col].map(_json_text).astype(object)
        present = [c for c in self.schema.names if c in data.columns]
        schema = pa.schema([self.schema.field(c) for c in present])
        try:
            table = pa.Table.from_pandas(data[present], schema=schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise SnapshotError(f"a page does not fit the snapshot's columns: {exc}") from None
        return table

    def write_table(self, table: pa.Table, key: tuple[Any, ...]) -> None:
        """Append rows to the output file of a partition; missing columns become nulls."""
        self._append(self._conform(table), key)

    def _conform(self, table: pa.Table) -> pa.Table:
        """``table`` with exactly the file schema (missing columns as nulls)."""
        if table.schema.equals(self.schema, check_metadata=False):
            return table
        for field in self.schema:
            if field.name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        try:
            return table.select(self.schema.names).cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SnapshotError(f"rows do not fit the snapshot's columns: {exc}") from None

    def _append(self, table: pa.Table, key: tuple[Any, ...]) -> None:
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        handle = self._open.get(key)
        if handle is None:
            handle = self._start(key)
        self._open.move_to_end(key)
        handle.add(table)
        if handle.buffered_rows >= self.row_group_size or handle.buffered_bytes >= BUFFER_BYTES:
            handle.flush()

    def _start(self, key: tuple[Any, ...]) -> _OpenFile:
        while len(self._open) >= MAX_OPEN_FILES:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        number = self._counts.get(key, 0)
        self._counts[key] = number + 1
        name = f"part-{number:05d}.parquet"
        entry: dict[str, Any] = {"path": name, "rows": 0}
        if self.partition is not None:
            folder = _partition_dir(key[0], self.partition.name)
            self.fs.create_dir(_join(self.root, folder), recursive=True)
            entry = {"path": _join(folder, name), "rows": 0, "partition": key[0]}
        self.files.append(entry)
        handle = _OpenFile(self.fs, _join(self.root, entry["path"]), self.schema,
                           self.row_group_size, entry)
        self._open[key] = handle
        return handle

    def close(self) -> None:
        """Flush and close every open file (more rows may still come: they open new files)."""
        while self._open:
            _, handle = self._open.popitem(last=False)
            handle.close()


class _OpenFile:
    def __init__(self, fs: pafs.FileSystem, path: str, schema: pa.Schema, row_group_size: int,
                 entry: dict[str, Any]) -> None:
        self.stream = fs.open_output_stream(path)
        self.writer = pq.ParquetWriter(self.stream, schema, compression="zstd")
        self.row_group_size = row_group_size
        self.entry = entry
        self.buffer: list[pa.Table] = []
        self.buffered_rows = 0
        self.buffered_bytes = 0

    def add(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.buffered_rows += table.num_rows
        self.buffered_bytes += table.nbytes
        self.entry["rows"] += table.num_rows

    def flush(self) -> None:
        if self.buffer:
            table = pa.concat_tables(self.buffer).combine_chunks()
            self.buffer = []
            self.buffered_rows = self.buffered_bytes = 0
            self.writer.write_table(table, row_group_size=self.row_group_size)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.writer.close()
            self.stream.close()


# --------------------------------------------------------------------------------------------
# dtypes <-> JSON specs <-> arrow schema
# --------------------------------------------------------------------------------------------


def _column_specs(dtypes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A JSON description of each column's dtype, enough to restore it exactly."""
    return {str(name): _dtype_spec(dtype) for name, dtype in dtypes.items()}


def _dtype_spec(dtype: Any) -> dict[str, Any]:
    dtype = pd.api.types.pandas_dtype(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        categories = [_scalar(c) for c in dtype.categories] if dtype.categories is not None \
            else None
        return {"type": "category", "categories": categories, "ordered": bool(dtype.ordered)}
    if isinstance(dtype, pd.ArrowDtype):
        return {"type": "arrow", "arrow": str(dtype.pyarrow_dtype)}
    if isinstance(dtype, pd.StringDtype):
        na = "NA" if dtype.na_value is pd.NA else "nan"
        return {"type": "string", "storage": dtype.storage, "na": na}
    if dtype == np.dtype(object):
        return {"type": "json"}
    return {"type": "numpy", "name": str(dtype)}


def _dtype_from_spec(spec: Mapping[str, Any], arrow_type: pa.DataType | None = None) -> Any:
    kind = spec["type"]
    if kind == "category":
        return pd.CategoricalDtype(spec["categories"], ordered=spec["ordered"])
    if kind == "arrow":
        if arrow_type is None:
            raise SnapshotError("missing arrow type")  # pragma: no cover
        return pd.ArrowDtype(arrow_type)
    if kind == "string":
        return pd.StringDtype(spec["storage"], na_value=pd.NA if spec["na"] == "NA" else np.nan)
    if kind == "json":
        return np.dtype(object)
    return pd.api.types.pandas_dtype(spec["name"])


def _dtypes_from_specs(specs: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _dtype_from_spec(spec, _parse_arrow(spec["arrow"]) if spec["type"] == "arrow"
                                   else None)
            for name, spec in specs.items()}


def _compatible(query: Mapping[str, Any], recorded: Mapping[str, Any]) -> bool:
    """Whether the columns a query gives now still fit a recorded snapshot's columns."""
    for name, spec in query.items():
        old = recorded.get(name)
        if old is None or old["type"] != spec["type"]:
            return False
        if spec["type"] == "category":
            if old["categories"][:len(spec["categories"])] != spec["categories"]:
                return False
        elif spec != old:
            return False
    return True


def _arrow_schema(specs: Mapping[str, Any], partition: _Partition | None, *,
                  dtypes: Mapping[str, Any] | None = None) -> pa.Schema:
    """The schema of the files (with pandas metadata); JSON columns are text."""
    empty: dict[str, pd.Series] = {}
    for name, spec in specs.items():
        if partition is not None and not partition.derived and name == partition.column:
            continue
        if spec["type"] == "json":
            empty[name] = pd.Series([], dtype=object)
        elif dtypes is not None:
            empty[name] = pd.Series([], dtype=dtypes[name])
        elif spec["type"] == "arrow":
            empty[name] = pd.Series([], dtype=pd.ArrowDtype(_parse_arrow(spec["arrow"])))
        else:
            empty[name] = pd.Series([], dtype=_dtype_from_spec(spec))
    schema = pa.Schema.from_pandas(pd.DataFrame(empty), preserve_index=False)
    fields = []
    for f in schema:
        if specs[f.name]["type"] == "json":
            f = pa.field(f.name, pa.large_string())
        elif pa.types.is_dictionary(f.type):
            f = pa.field(f.name, pa.dictionary(pa.int32(), f.type.value_type))
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def _parse_arrow(text: str) -> pa.DataType:
    """An arrow type from its ``str()`` (the simple types the catalogue produces)."""
    simple = {"string": pa.string(), "large_string": pa.large_string(), "bool": pa.bool_(),
              "double": pa.float64(), "float": pa.float32(), "int64": pa.int64(),
              "int32": pa.int32(), "int16": pa.int16(), "int8": pa.int8()}
    if text in simple:
        return simple[text]
    if text.startswith("timestamp["):
        inner = text[len("timestamp["):-1]
        unit, _, zone = inner.partition(",")
        return pa.timestamp(unit.strip(), zone.strip().removeprefix("tz=") or None)
    try:
        return pa.type_for_alias(text)
    except ValueError:
        raise SnapshotError(f"cannot restore the arrow type {text!r}") from None


def _dataset_schema(file_schema: pa.Schema, part_schema: pa.Schema | None) -> pa.Schema:
    if part_schema is None:
        return file_schema
    return pa.schema([*file_schema, *part_schema], metadata=file_schema.metadata)


def _to_pandas(table: pa.Table, specs: Mapping[str, Any], file_schema: pa.Schema) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for name in table.column_names:
        column = table.column(name)
        spec = specs.get(name)
        if spec is None:  # a derived partition column
            columns[name] = pd.Series(column.to_pylist(), dtype=pd.StringDtype())
        elif spec["type"] == "json":
            columns[name] = pd.Series([_from_json_text(v) for v in column.to_pylist()],
                                      dtype=object)
        elif spec["type"] == "arrow":
            arrow_type = file_schema.field(name).type if name in file_schema.names \
                else _parse_arrow(spec["arrow"])
            columns[name] = pd.Series(pd.array(column.cast(arrow_type),
                                               dtype=pd.ArrowDtype(arrow_type)))
        else:
            dtype = _dtype_from_spec(spec)
            if spec["type"] == "category" and pa.types.is_dictionary(column.type):
                values = pd.Series(column.to_pandas(), copy=False)
                columns[name] = values.cat.set_categories(dtype.categories) \
                    .astype(dtype)
            else:
                columns[name] = pd.Series(column.to_pandas(types_mapper=_types_mapper(dtype)),
                                          copy=False).astype(dtype)
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def _types_mapper(dtype: Any) -> Any:
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and \
            not isinstance(dtype, pd.DatetimeTZDtype):
        return lambda _type: dtype
    return None


# --------------------------------------------------------------------------------------------
# order, filters, the refresh window
# --------------------------------------------------------------------------------------------


def _column_order(manifest: Mapping[str, Any]) -> list[str]:
    """The columns in the order ``read_jetti`` gives them.

    Pages may bring fields the catalogue lacks; a read places them after the catalogue fields of
    their model (sorted by name), before the columns of nested includes.
    """
    columns = list(manifest["columns"])
    try:
        groups = _column_groups(manifest)
    except JettiError:  # the recorded query no longer fits the catalogue: keep stored order
        return columns
    planned = {c for _, names in groups for c in names}
    extra: dict[str, list[str]] = {prefix: [] for prefix, _ in groups}
    for name in columns:
        if name not in planned:
            prefix = max((p for p, _ in groups if name.startswith(p)), key=len)
            extra[prefix].append(name)
    present = set(columns)
    ordered = [c for prefix, names in groups
               for c in [*[n for n in names if n in present], *sorted(extra[prefix])]]
    return ordered if len(ordered) == len(columns) else columns


def _column_groups(manifest: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """``(column prefix, planned columns)`` of the resource and each include, depth first."""
    from .client import frame_spec
    from .query import build_query
    from .schema import node_columns

    query = manifest["query"]
    sep = (manifest.get("options") or {}).get("sep", "_")
    spec = frame_spec(build_query(manifest["resource"], attributes=query.get("attributes"),
                                  include=query.get("include")))
    groups: list[tuple[str, list[str]]] = []

    def walk(node: Any, prefix: str, path: tuple[str, ...]) -> None:
        groups.append((prefix, [c.name for c in node_columns(node, prefix, path)]))
        for inc in node.includes:
            walk(inc, prefix + inc.key + sep, (*path, inc.key))

    walk(spec, "", ())
    return groups


def _sort_columns(manifest: Mapping[str, Any], specs: Mapping[str, Any]) -> list[str]:
    order = _order_spec(manifest["query"].get("order"))
    keys = [order[0]] if order and order[0] in specs else []
    if "id" in specs:
        keys.append("id")
    return keys


def _order_spec(order: Any) -> tuple[str, bool, bool] | None:
    """``(attribute, descending, nulls_first)`` of a recorded order, read as the client reads it."""
    from .query import parse_order

    parsed = parse_order(order) if order else None
    return (parsed.attribute, parsed.descending, parsed.nulls_first) if parsed else None


def _sort(frame: pd.DataFrame, manifest: Mapping[str, Any], keys: list[str]) -> pd.DataFrame:
    """Rows in the order ``read_jetti`` gives them: by the query's order, then by id."""
    if frame.empty or not keys:
        return frame
    order = _order_spec(manifest["query"].get("order"))
    if order and order[0] == keys[0]:
        attribute, descending, nulls_first = order
        frame = frame.sort_values(keys[1:], kind="stable") if len(keys) > 1 else frame
        return frame.sort_values(attribute, ascending=not descending, kind="stable",
                                 na_position="first" if nulls_first else "last", key=_by_value)
    return frame.sort_values(keys, kind="stable")


def _by_value(values: pd.Series) -> pd.Series:
    """Sort categoricals by their values, as the client sorts records (not by category order)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(object)
    return values


_FILTER_OPS = {"=": "$eq", "==": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt",
               ">=": "$gte", "in": "$in", "not in": "$notIn"}
_COMPARE = {"$eq": operator.eq, "$ne": operator.ne, "$lt": operator.lt, "$lte": operator.le,
            "$gt": operator.gt, "$gte": operator.ge}


def _filter_expression(filters: Any, specs: Mapping[str, Any],
                       schema: pa.Schema) -> pc.Expression | None:
    """pyarrow DNF filters as an expression, each value converted to its column's type.

    The values go through :func:`jetti_frames.query.convert_value`, the conversion of
    ``read_jetti``'s ``where``, with the column's kind taken from the manifest.
    """
    if filters is None or isinstance(filters, pc.Expression):
        return filters
    if not isinstance(filters, list | tuple):
        raise JettiQueryError(f"filters must be a list of (column, op, value) tuples or a list "
                              f"of such lists, got {filters!r}")
    if not filters:
        return None
    nested = all(isinstance(f, list) for f in filters)
    groups = filters if nested else [filters]
    expression: pc.Expression | None = None
    for i, group in enumerate(groups):
        terms = [_filter_term(term, specs, schema, f"filters[{i}][{j}]" if nested
                              else f"filters[{j}]")
                 for j, term in enumerate(group)]
        if not terms:
            raise JettiQueryError(f"filters[{i}] is empty")
        conjunction = terms[0]
        for term in terms[1:]:
            conjunction = conjunction & term
        expression = conjunction if expression is None else expression | conjunction
    return expression


def _filter_term(term: Any, specs: Mapping[str, Any], schema: pa.Schema,
                 where: str) -> pc.Expression:
    from .query import convert_value

    if not isinstance(term, tuple | list) or len(term) != 3:
        raise JettiQueryError(f"{where}: a filter is a (column, op, value) tuple, got {term!r}")
    column, op_text, value = term
    op = _FILTER_OPS.get(str(op_text).strip().lower())
    if op is None:
        raise JettiQueryError(f"{where}: unknown filter operator {op_text!r}; use one of "
                              f"{', '.join(_FILTER_OPS)}")
    fld = _column_field(column, specs, schema, where)
    converted = convert_value(fld, op, value, f"{where}[{column}]")
    field = pc.field(column)
    if converted is None:
        return field.is_null() if op == "$eq" else field.is_valid()
    if op in ("$in", "$notIn"):
        arrow_type = schema.field(column).type
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        found = field.isin(pa.array(converted, type=arrow_type))
        return found if op == "$in" else field.is_valid() & ~found
    return _COMPARE[op](field, pc.scalar(converted))


def _column_field(column: Any, specs: Mapping[str, Any], schema: pa.Schema,
                  where: str) -> Field:
    """A catalogue-style :class:`Field` for a snapshot column, its kind from the manifest."""
    if not isinstance(column, str) or column not in schema.names:
        close = difflib.get_close_matches(str(column), schema.names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise JettiQueryError(f"{where}: the snapshot has no column {column!r}{hint}")
    spec = specs.get(column) or {"type": "derived"}  # a derived partition column is text
    arrow_type = schema.field(column).type
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    kind = ("boolean" if pa.types.is_boolean(arrow_type) else
            "integer" if pa.types.is_integer(arrow_type) else
            "number" if pa.types.is_floating(arrow_type) else
            "datetime" if pa.types.is_timestamp(arrow_type) else
            "string" if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            else "json")
    if spec["type"] == "json" or kind == "json":
        raise JettiQueryError(f"{where}: cannot filter on {column!r}, a JSON or list column")
    if spec["type"] == "category" and kind == "string":
        return Field(column, "enum", enum=tuple(spec["categories"] or ()) or None)
    return Field(column, kind)


def _overlap(value: Any) -> dt.timedelta:
    """A refresh overlap as a ``timedelta``: a ``timedelta`` (or ``pd.Timedelta``,
    ``numpy.timedelta64``) or a number of seconds; negative, NaN and infinite ones are refused.

    >>> _overlap(5), _overlap(dt.timedelta(minutes=1))
    (datetime.timedelta(seconds=5), datetime.timedelta(seconds=60))
    """
    seconds: float
    if isinstance(value, np.timedelta64):
        value = pd.Timedelta(value)
    if isinstance(value, dt.timedelta) and value is not pd.NaT:
        seconds = value.total_seconds()
    elif isinstance(value, int | float | np.integer | np.floating) and \
            not isinstance(value, bool | np.bool_):
        seconds = float(value)
    else:
        raise JettiQueryError(f"overlap must be a timedelta or a number of seconds, "
                              f"got {value!r}")
    if not math.isfinite(seconds):
        raise JettiQueryError(f"overlap must be a finite duration, got {value!r}")
    if seconds < 0:
        raise JettiQueryError(f"overlap must not be negative, got {value!r}: a negative "
                              f"overlap would skip records changed just before the watermark")
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        raise JettiQueryError(f"overlap {value!r} is too long; use full=True") from None


def _window_start(watermark: str, overlap: dt.timedelta) -> dt.datetime:
    """``watermark - overlap``; an overlap reaching before year 1 starts at year 1."""
    moment = pd.Timestamp(watermark).to_pydatetime(warn=False)
    try:
        return moment - overlap
    except OverflowError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)


def _and_updated_since(where: Mapping[str, Any] | None, since: dt.datetime) -> dict[str, Any]:
    """The recorded ``where`` ANDed with ``updatedAt >= since`` (the stricter bound wins)."""
    from .query import and_where

    return and_where(dict(where or {}), {"updatedAt": {"$gte": since}})


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _client(client: JettiClient | None, token: str | None, base_url: str | None) -> Any:
    if client is not None:
        return client
    from .client import JettiClient

    return JettiClient(token, base_url=base_url)


def _stats(client: JettiClient) -> dict[str, Any]:
    """What the client's last read cost (requests, cache hits, rows, ...)."""
    return asdict(client.last_stats)


def _query(where: Any, attributes: Any, include: Any, order: Any) -> dict[str, Any]:
    return {"where": _jsonable(where), "attributes": _jsonable(attributes),
            "include": _jsonable(include), "order": _jsonable(order)}


def _jsonable(value: Any) -> Any:
    """JSON-safe copy of a query: datetimes as ISO strings, tuples/sets as lists."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)  # str() would record np.datetime64("2019") as "2019"
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [_jsonable(v) for v in sorted(value, key=repr)]
    if isinstance(value, (list, tuple, range, np.ndarray, pd.Index, pd.Series)):
        return [_jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def _provenance(manifest: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("format", "resource", "query", "options", "partition_by", "base_url", "fetched_at",
            "refreshed_at", "previous_watermark", "toolkit_version", "catalog_digest")
    return {k: manifest[k] for k in keys if k in manifest}


def _public_url(url: Any) -> str | None:
    """The base URL without credentials or query string (never a token)."""
    if url is None:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def _from_json_text(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _is_datetime(dtype: Any) -> bool:
    if isinstance(dtype, pd.ArrowDtype):
        return pa.types.is_timestamp(dtype.pyarrow_dtype)
    return bool(pd.api.types.is_datetime64_any_dtype(dtype))


def _is_float(dtype: Any) -> bool:
    if isinstance(dtype, pd.ArrowDtype):
        return pa.types.is_floating(dtype.pyarrow_dtype)
    return bool(pd.api.types.is_float_dtype(dtype))


def _versions(ids: Iterable[Any], stamps: Iterable[Any]) -> dict[int, int | None]:
    """``id -> updatedAt`` (as UTC nanoseconds, ``None`` when missing) of some rows.

    >>> _versions([1, 1, 2], ["2024-05-04T09:42:00+00:00"] * 2 + [None])
    {1: 1714815720000000000, 2: None}
    """
    out: dict[int, int | None] = {}
    for i, stamp in zip(ids, stamps, strict=True):
        if i is None or pd.isna(i):
            continue
        out[int(i)] = None if stamp is None or pd.isna(stamp) else int(pd.Timestamp(stamp).value)
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def _max_iso(*values: str | None) -> str | None:
    present = [pd.Timestamp(v) for v in values if v]
    return max(present).isoformat() if present else None
