"""The public functions: snapshot, read_snapshot, snapshot_info, refresh_snapshot."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import __version__
from ..catalog import CATALOG
from ..client import JettiClient, open_client
from ..drift import DriftLog, items_from_manifest
from ..errors import JettiQueryError, SnapshotError
from .columns import _column_specs, _compatible, _Partition, _snapshot_dtypes
from .common import _iso, _jsonable, _now, _public_url, _versions
from .info import SnapshotInfo
from .reading import _read_frame
from .refreshing import _plan, _replaced_rows
from .store import (
    DEFAULT_KEEP_VERSIONS,
    FORMAT,
    _check_files,
    _damaged,
    _file_tables,
    _join,
    _open_published,
    _recover,
    _Target,
)
from .writing import DEFAULT_ROW_GROUP_SIZE, Item, _write_version

DtypeBackend = Literal["numpy_nullable", "pyarrow"]

#: How far before the watermark a refresh starts looking (clock skew, writes during a pull).
DEFAULT_OVERLAP = dt.timedelta(minutes=5)


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
    storage_options: Mapping[str, Any] | None = None,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
) -> SnapshotInfo:
    """Write the result of a query as a parquet dataset, page by page, and publish it atomically.

    Parameters
    ----------
    resource, where, attributes, include, order
        The query, as for :func:`jetti_frames.read_jetti`.
    path
        A local directory or a URL (``s3://``, ``gs://``, ``abfs://``, ``file://``,
        ``memory://``: pyarrow or fsspec filesystems). Replaced as a whole when it already
        holds a snapshot; refused when it holds other files. On an object store each version
        goes under its own prefix (``path/v-<time>-<random>/``) and the manifest written last
        publishes it.
    partition_by
        A column name, or ``(datetime column, "year" | "month" | "day")`` to add a derived
        ``<column>_<unit>`` partition column (e.g. ``dateOrdered_month=2024-05``).
    client, token, base_url
        A :class:`~jetti_frames.JettiClient`, or what to build one from (``JETTI_*`` env otherwise).
    refresh
        Bypass the HTTP cache.
    filesystem
        A ``pyarrow.fs.FileSystem`` or fsspec filesystem; ``path`` is then a path inside it.
    storage_options
        Options of the URL's fsspec filesystem, as pandas takes them (e.g.
        ``{"endpoint_url": ..., "key": ..., "secret": ...}`` for ``s3://``).
    keep_versions
        On an object store, the versions kept after a publish (the current one included):
        readers still on the previous version finish their read.

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
    target = _Target.of(path, filesystem, storage_options)
    query = _query(where, attributes, include, order)
    options = {"dtype_backend": dtype_backend, "sep": sep}
    with open_client(client, token=token, base_url=base_url) as client:
        dtypes = dict(client.frame_dtypes(resource, attributes=attributes, include=include,
                                          dtype_backend=dtype_backend, sep=sep))
        partition = _Partition.of(partition_by, dtypes)
        started = _now()
        drift = DriftLog()
        frames = client.iter_frames(resource, where=where, attributes=attributes, include=include,
                                    order=order, page_size=page_size, refresh=refresh,
                                    dtype_backend=dtype_backend, sep=sep, progress=progress,
                                    drift=drift)
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

        def summary() -> dict[str, Any]:
            stats = _stats(client)
            return {"requests": stats.get("requests"), "cache_hits": stats.get("cache_hits"),
                    "drift": [item.to_json() for item in drift.items()]}

        return _write_version(target, dtypes, partition, manifest, frames, summary,
                              row_group_size=row_group_size, started=started, max_updated=None,
                              keep_versions=keep_versions)


def read_snapshot(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    filters: Any = None,
    *,
    filesystem: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Read a snapshot back as a DataFrame with the dtypes :func:`jetti_frames.read_jetti` gives.

    Parameters
    ----------
    path
        The directory (or URL) given to :func:`snapshot`; ``storage_options`` as there.
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

    Rows come in the snapshot's recorded ``order``, then by id, compared here: strings and
    enum values by code point, where ``read_jetti`` follows the server's collation and enum
    order (:mod:`jetti_frames._text_order`); a range filter on them compares the same way.

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
    target = _Target.of(path, filesystem, storage_options)
    root, manifest = _open_published(target)
    _check_files(target, root, manifest)
    return _read_frame(target, root, manifest, columns, filters)


def snapshot_info(path: str | os.PathLike[str], *, filesystem: Any = None,
                  storage_options: Mapping[str, Any] | None = None) -> SnapshotInfo:
    """A snapshot's summary and provenance, read from its manifest (no data file is opened).

    A :class:`SnapshotInfo`; as a mapping its keys are ``resource``, ``query`` (``where``,
    ``attributes``, ``include``, ``order``), ``partition_by``, ``base_url``, ``fetched_at``,
    ``watermark``, ``rows``, ``requests``, ``seconds``, ``toolkit_version``,
    ``catalog_digest``, ``files`` (count), ``columns`` (names) and ``path``;
    ``.data_path`` is the folder of the current version's files (what Dask or DuckDB list).

    Examples
    --------
    >>> snapshot_info("data/purchases")["watermark"]   # doctest: +SKIP
    '2024-05-04T09:42:00+00:00'
    """
    target = _Target.of(path, filesystem, storage_options)
    root, manifest = _open_published(target)
    _check_files(target, root, manifest)
    current = root == target.version_dir(manifest)
    return SnapshotInfo.from_manifest(manifest, target.url if current else target.display(root),
                                      target.display(root))


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
    storage_options: Mapping[str, Any] | None = None,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
) -> SnapshotInfo:
    """Bring a snapshot up to date, fetching only the records changed since its watermark.

    Asks for the recorded query ANDed with ``updatedAt >= watermark - overlap`` (the watermark is
    the newest ``updatedAt`` seen, capped at the time that fetch started), replaces every
    row of a re-fetched record (all exploded rows of a has-many include), keeps the rest, and
    publishes the result atomically with the new watermark. Requests are proportional to the
    records changed, not to the size of the snapshot, and so is the writing: only the
    partitions that lose or gain rows (a record changed, moved to another partition, or
    dropped) are rewritten; the files of the others join the new version as they are (hard
    links on a local disk, copies elsewhere), and the manifest counts ``files_written`` and
    ``files_carried``. When the query has a ``where`` filter, one
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
    storage_options, keep_versions
        As for :func:`snapshot`.

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
    target = _Target.of(path, filesystem, storage_options)
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
    with open_client(client, token=token, base_url=base_url) as client:
        if full:
            return snapshot(manifest["resource"], path, where=query.get("where"),
                            attributes=query.get("attributes"), include=query.get("include"),
                            order=query.get("order"), partition_by=partition_by, client=client,
                            dtype_backend=options.get("dtype_backend", "numpy_nullable"),
                            sep=options.get("sep", "_"), page_size=page_size, refresh=True,
                            progress=progress, filesystem=filesystem, row_group_size=row_group_size,
                            storage_options=storage_options, keep_versions=keep_versions)

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
        drift = DriftLog()
        changed = list(client.iter_frames(
            resource, where=where, attributes=query.get("attributes"), include=query.get("include"),
            page_size=page_size, refresh=True, dtype_backend=dtype_backend, sep=sep,
            progress=progress, drift=drift))
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

        plan = _plan(target, root, manifest, partition, sorted(replaced), changed)
        ids = pa.array(sorted(replaced), type=pa.int64())
        after: dict[int, int | None] = {}

        def items() -> Iterator[Item]:
            for entry in plan.rewrite:  # partitions that lose or gain rows; the others are carried
                try:
                    for table in _file_tables(target, root, entry, row_group_size):
                        kept = table.filter(pc.invert(_replaced_rows(table, entry, ids)))
                        if kept.num_rows:
                            yield kept, entry.get("partition")
                except (pa.ArrowException, OSError) as exc:
                    if isinstance(exc, SnapshotError):
                        raise
                    raise _damaged(target, root, entry["path"], exc) from None
            for frame in changed:
                yield frame
                after.update(_versions(frame["id"], frame["updatedAt"]))

        def summary() -> dict[str, Any]:
            before = plan.before
            differ = {i for i in before.keys() | after.keys()
                      if before.get(i, -1) != after.get(i, -1)}
            return {"requests": requests, "changed_records": len(differ),
                    "refetched_records": len(after),
                    "drift": [item.to_json() for item in
                              drift.merged(items_from_manifest(manifest.get("drift")))]}

        return _write_version(target, _recorded_dtypes(target, root, manifest), partition,
                              new_manifest, items(), summary,
                              row_group_size=row_group_size, started=started,
                              max_updated=manifest.get("max_updated_at"), carry=(root, plan.carry),
                              previous=manifest, keep_versions=keep_versions)


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
    from ..query import and_where

    return and_where(dict(where or {}), {"updatedAt": {"$gte": since}})


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _stats(client: JettiClient) -> dict[str, Any]:
    """What the client's last read cost (requests, cache hits, rows, ...)."""
    return asdict(client.last_stats)


def _query(where: Any, attributes: Any, include: Any, order: Any) -> dict[str, Any]:
    return {"where": _jsonable(where), "attributes": _jsonable(attributes),
            "include": _jsonable(include), "order": _jsonable(order)}


def _recorded_dtypes(target: _Target, root: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The dtypes of a snapshot's columns: its first file's pandas metadata, its manifest."""
    files = manifest["files"]
    schema = None
    if files:
        path = files[0]["path"]
        try:
            with target.fs.open_input_file(_join(root, path)) as handle:
                schema = pq.read_schema(handle)
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(target, root, path, exc) from None
    return _snapshot_dtypes(manifest["columns"], schema)
