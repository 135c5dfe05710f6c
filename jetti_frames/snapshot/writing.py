"""Writing a version: pages and kept rows as record batches into ``pyarrow.dataset``.

The rows stream through :func:`pyarrow.dataset.write_dataset` (hive folders for a partition
column, at most ``MAX_OPEN_FILES`` files open, row groups of ``row_group_size`` rows); its
``file_visitor`` collects the file list of the manifest. Memory stays flat: one page, or one
batch of kept rows, at a time, plus the row groups being filled. ``write_dataset`` holds a
file's rows until a row group is full, so a row group holds at most ``row_group_size`` rows
and about ``BUFFER_BYTES`` of data (the width of a row is taken from the first page): wide
rows (a query with includes has hundreds of columns) make smaller groups, not a larger buffer.

A page may bring columns the catalogue does not know. The stream then ends, and a new one
starts with the wider schema; readers fill the missing columns of earlier files with nulls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import SnapshotError
from .columns import _column_specs, _dtype_spec, _file_schema, _json_text, _Partition
from .common import METADATA_KEY, _max_iso, _now, _provenance
from .info import SnapshotInfo
from .store import (
    DEFAULT_KEEP_VERSIONS,
    MANIFEST,
    _carry,
    _check_target,
    _checksum,
    _clean_siblings,
    _join,
    _manifest_path,
    _new_version,
    _publish,
    _stamp_version,
    _Target,
    _write_json,
)

#: Rows per row group.
DEFAULT_ROW_GROUP_SIZE = 65_536
#: About the most data a row group holds (and a file being written buffers) before it is written.
BUFFER_BYTES = 16 * 1024 * 1024
#: At most this many files are open at once when writing many partitions.
MAX_OPEN_FILES = 128

#: What a version is written from: typed pages, or kept rows with their partition value.
Item = pd.DataFrame | tuple[pa.Table, Any]


def _write_version(target: _Target, dtypes: Mapping[str, Any], partition: _Partition | None,
                   manifest: dict[str, Any], items: Iterable[Item],
                   summary: Callable[[], dict[str, Any]], *, row_group_size: int,
                   started: dt.datetime, max_updated: str | None,
                   read_at: dt.datetime | None = None,
                   carry: tuple[str, Sequence[Mapping[str, Any]]] | None = None,
                   previous: Mapping[str, Any] | None = None,
                   keep_versions: int = DEFAULT_KEEP_VERSIONS) -> SnapshotInfo:
    """Write a complete version into a temporary sibling (a new version prefix on an object
    store), then publish it in place of the old.

    ``summary()`` is called once ``items`` are written; what it returns joins the manifest.
    ``carry`` is ``(root, entries)``: files of the version in ``root`` that join the new one as
    they are (a refresh's untouched partitions); the manifest then counts ``files_written``
    and ``files_carried``.
    The watermark is the largest ``updatedAt`` in the data, but never later than the time the
    fetch started: a record dated in the future (or a server clock ahead of ours) must not push
    the next refresh's window past changes it has not seen yet. ``read_at`` is that time when
    it is not ``started`` (a rewrite that reads no changes keeps its source's watermark).
    ``previous`` is the manifest being replaced, when known (the versions it keeps);
    ``keep_versions`` the versions an object store keeps after the publish.
    """
    if isinstance(keep_versions, bool) or not isinstance(keep_versions, int) \
            or keep_versions < 1:
        raise SnapshotError(f"keep_versions must be a whole number >= 1, not {keep_versions!r}")
    _check_target(target)
    _clean_siblings(target)
    if previous is None and target.versioned and target.is_complete(target.root):
        with contextlib.suppress(Exception), \
                target.fs.open_input_stream(_join(target.root, MANIFEST)) as f:
            previous = json.loads(f.read())
    tmp = _new_version(target)
    target.fs.create_dir(tmp, recursive=True)
    try:
        stream = _Stream(dtypes, partition, manifest)
        files = stream.write(target.fs, tmp, iter(items), row_group_size=row_group_size,
                             empty_file=not (carry and carry[1]))
        manifest = dict(manifest)
        manifest.update(summary())
        if carry is not None:
            source, carried = carry
            manifest["files_written"], manifest["files_carried"] = len(files), len(carried)
            for entry in carried:
                _carry(target, source, tmp, entry)
            files = sorted([*files, *map(dict, carried)], key=lambda f: f["path"])
        top = _max_iso(max_updated, stream.watermark)
        manifest["max_updated_at"] = top
        cap = pd.Timestamp(started if read_at is None else read_at)  # when the data was read
        manifest["watermark"] = top and min(pd.Timestamp(top), cap).isoformat()
        manifest["rows"] = sum(f["rows"] for f in files)
        manifest["columns"] = stream.specs
        manifest["files"] = files
        manifest["seconds"] = round((_now() - started).total_seconds(), 3)
        _stamp_version(target, tmp, manifest, previous, keep_versions)
        # last: the completion marker (on an object store, the publish itself)
        _write_json(target.fs, _manifest_path(target, tmp), manifest)
        _publish(target, tmp, manifest, previous)
    except BaseException:
        with contextlib.suppress(Exception):
            target.fs.delete_dir(tmp)
        raise
    return SnapshotInfo.from_manifest(manifest, target.display(target.root),
                                      target.display(target.version_dir(manifest)))


class _Stream:
    """Pages and kept rows as record batches, one schema per ``write_dataset`` call."""

    def __init__(self, dtypes: Mapping[str, Any], partition: _Partition | None,
                 manifest: Mapping[str, Any]) -> None:
        self.dtypes = {str(k): pd.api.types.pandas_dtype(v) for k, v in dtypes.items()}
        self.partition = partition
        self.provenance = json.dumps(_provenance(manifest)).encode()
        self.watermark: str | None = None
        self.held: Item | None = None  # the item that starts the next call
        self.specs = _column_specs(self.dtypes)
        self.fresh = False  # whether the schema below is that of the current dtypes

    def _set_schema(self) -> None:
        self.fresh = True
        self.specs = _column_specs(self.dtypes)
        part = self.partition
        skip = part.column if part is not None and not part.derived else None
        schema = _file_schema(self.dtypes, skip)
        self.file_schema = schema.with_metadata({**(schema.metadata or {}),
                                                 METADATA_KEY.encode(): self.provenance})
        fields = list(self.file_schema)
        self.part_field = pa.field(part.name, part.arrow_type(self.specs)) if part else None
        if self.part_field is not None:
            fields.append(self.part_field)
        self.schema = pa.schema(fields, metadata=self.file_schema.metadata)

    def write(self, fs: Any, root: str, items: Iterator[Item], *, row_group_size: int,
              empty_file: bool = True) -> list[dict[str, Any]]:
        """Write every item below ``root``; the manifest's file list (path, rows, size,
        checksum, id range, partition). Without rows, one empty file keeps the columns
        (``empty_file``).
        """
        files: list[dict[str, Any]] = []
        calls = 0
        self.held = next(items, None)
        while self.held is not None:
            if isinstance(self.held, pd.DataFrame):
                self._widen(self.held)
            if not self.fresh:
                self._set_schema()
            partitioning = pads.partitioning(pa.schema([self.part_field]), flavor="hive") \
                if self.part_field is not None else None
            first = self._table(self.held)
            group = _group_rows(first, row_group_size)
            pads.write_dataset(
                pa.RecordBatchReader.from_batches(self.schema, self._batches(first, items)), root,
                format="parquet", filesystem=fs, partitioning=partitioning,
                basename_template=f"part-{calls}-{{i}}.parquet",
                existing_data_behavior="overwrite_or_ignore", max_open_files=MAX_OPEN_FILES,
                max_rows_per_group=group, min_rows_per_group=group,
                file_options=pads.ParquetFileFormat().make_write_options(compression="zstd"),
                file_visitor=lambda written, p=partitioning: files.append(
                    self._entry(root, written, p)))
            calls += 1
        if not files and empty_file:  # an empty snapshot keeps its dtypes in one empty file
            if not self.fresh:
                self._set_schema()
            name = "part-0-0.parquet"
            with fs.open_output_stream(_join(root, name)) as handle:
                pq.write_table(self.file_schema.empty_table(), handle, compression="zstd")
            files.append({"path": name, "rows": 0, "size": fs.get_file_info(
                _join(root, name)).size})
        for entry in files:
            entry["checksum"] = _checksum(fs, _join(root, entry["path"]))
        return sorted(files, key=lambda f: f["path"])

    def _entry(self, root: str, written: Any, partitioning: Any) -> dict[str, Any]:
        path = written.path[len(root):].lstrip("/")
        entry: dict[str, Any] = {"path": path, "rows": written.metadata.num_rows,
                                 "size": written.size}
        ids = _id_range(written.metadata)
        if ids is not None:
            entry["ids"] = ids
        if partitioning is not None and self.part_field is not None:
            keys = pads.get_partition_keys(partitioning.parse(path))  # None: a null value
            entry["partition"] = keys.get(self.part_field.name)
        return entry

    def _batches(self, first: pa.Table, items: Iterator[Item]) -> Iterator[pa.RecordBatch]:
        """Batches of the current schema from ``first`` on, until an item needs a wider one
        (kept in ``held``)."""
        self.held = None
        yield from first.to_batches()
        for item in items:
            if isinstance(item, pd.DataFrame) and \
                    any(str(c) not in self.dtypes for c in item.columns):
                self.held = item
                return
            yield from self._table(item).to_batches()

    def _table(self, item: Item) -> pa.Table:
        """An item as a table of the current schema."""
        return self._page(item) if isinstance(item, pd.DataFrame) else self._kept(*item)

    def _widen(self, frame: pd.DataFrame) -> None:
        """Add the columns a page brings that the schema lacks."""
        new = [str(c) for c in frame.columns if str(c) not in self.dtypes]
        for name in new:
            self.dtypes[name] = frame[name].dtype
        self.fresh = self.fresh and not new

    def _page(self, frame: pd.DataFrame) -> pa.Table:
        """One typed page as a table of the schema; categories it adds join the manifest."""
        for column, dtype in frame.dtypes.items():
            known = self.dtypes[str(column)]
            if isinstance(dtype, pd.CategoricalDtype) and isinstance(known, pd.CategoricalDtype):
                extra = dtype.categories.difference(known.categories, sort=False)
                if len(extra):
                    self.dtypes[str(column)] = pd.CategoricalDtype(
                        known.categories.append(extra), ordered=known.ordered)
                    self.specs[str(column)] = _dtype_spec(self.dtypes[str(column)])
        if "updatedAt" in frame.columns and not frame.empty:
            top = frame["updatedAt"].max()
            if top is not None and not pd.isna(top):
                self.watermark = _max_iso(self.watermark, pd.Timestamp(top).isoformat())
        data = frame.copy(deep=False)
        for col, dtype in self.dtypes.items():
            if dtype == np.dtype(object) and col in data.columns:
                data[col] = frame[col].map(_json_text).astype(object)
        present = [c for c in self.file_schema.names if c in data.columns]
        schema = pa.schema([self.file_schema.field(c) for c in present])
        try:
            table = pa.Table.from_pandas(data[present], schema=schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise SnapshotError(f"a page does not fit the snapshot's columns: {exc}") from None
        keys = None
        if self.partition is not None:
            keys = pa.array(self.partition.keys(frame).tolist(), type=self.part_field.type
                            if self.part_field is not None else None)
        return self._conform(table, keys)

    def _kept(self, table: pa.Table, partition: Any) -> pa.Table:
        """Rows kept from a file of the previous version, with their partition value."""
        keys = None
        if self.part_field is not None:
            keys = pa.array([partition] * table.num_rows, type=self.part_field.type)
        return self._conform(table, keys)

    def _conform(self, table: pa.Table, keys: pa.Array | None) -> pa.Table:
        """``table`` with exactly the schema (missing columns as nulls, the partition last)."""
        if not table.schema.equals(self.file_schema, check_metadata=False):
            present = set(table.column_names)
            for field in self.file_schema:
                if field.name not in present:
                    table = table.append_column(field, pa.nulls(table.num_rows, field.type))
            try:
                table = table.select(self.file_schema.names).cast(self.file_schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SnapshotError(f"rows do not fit the snapshot's columns: {exc}") from None
        if keys is not None and self.part_field is not None:
            table = table.append_column(self.part_field, keys)
        return table.replace_schema_metadata(self.schema.metadata)


def _group_rows(sample: pa.Table, row_group_size: int) -> int:
    """Rows per row group: ``row_group_size``, or fewer when that many rows of the width of
    ``sample`` would hold more than ``BUFFER_BYTES``.

    >>> table = pa.table({"x": pa.array(range(1000), pa.int64())})   # 8 bytes a row
    >>> _group_rows(table, 65_536), _group_rows(table, 100)
    (65536, 100)
    >>> _group_rows(pa.table({"x": pa.array([b"x" * 1024] * 10)}), 65_536)  # ~1 KiB a row
    16320
    """
    if not sample.num_rows or not sample.nbytes:
        return row_group_size
    return max(1, min(row_group_size, BUFFER_BYTES * sample.num_rows // sample.nbytes))


def _id_range(metadata: pq.FileMetaData) -> list[int] | None:
    """``[lowest, highest]`` id of a written file from its statistics (``None``: unknown).

    A refresh opens only the files whose range holds a re-fetched id.
    """
    column = next((i for i in range(metadata.num_columns)
                   if metadata.schema.column(i).path == "id"), None)
    if column is None:
        return None
    lows, highs = [], []
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group)
        stats = rows.column(column).statistics
        if stats is not None and stats.has_min_max:
            lows.append(stats.min)
            highs.append(stats.max)
        elif stats is None or stats.null_count != rows.num_rows:
            return None  # values without statistics: the range is unknown
    if not lows or not all(isinstance(v, int) for v in (*lows, *highs)):
        return None
    return [int(min(lows)), int(max(highs))]
