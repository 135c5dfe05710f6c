"""What an incremental refresh rewrites, and what it carries over from the previous version.

Rows are replaced by record id. A partition is rewritten when it holds a row being replaced (a
record changed, moved to another partition, or no longer matching the query) or receives a
re-fetched row; the files of every other partition join the new version as they are (see
:func:`.store._carry`), so a refresh costs what the change touches, not what the snapshot holds.
An unpartitioned snapshot is one partition.

Finding the rows being replaced opens only the files whose recorded id range (``ids`` in the
manifest's file list) holds a re-fetched id, and reads only their ``id`` and ``updatedAt``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from .columns import _Partition
from .common import _versions
from .store import _check_footers, _culprit, _damaged, _join, _Target
from .writing import _id_range


@dataclass
class _Plan:
    """The files a refresh rewrites, those it carries over, and the rows it replaces."""

    rewrite: list[dict[str, Any]] = field(default_factory=list)
    carry: list[dict[str, Any]] = field(default_factory=list)
    #: ``id -> updatedAt`` (UTC nanoseconds) of the replaced rows found in the snapshot.
    before: dict[int, int | None] = field(default_factory=dict)


def _plan(target: _Target, root: str, manifest: Mapping[str, Any],
          partition: _Partition | None, replaced: Sequence[int],
          changed: Sequence[pd.DataFrame]) -> _Plan:
    """Split the snapshot's files into those to rewrite and those to carry over.

    ``replaced`` are the sorted ids whose rows are replaced (re-fetched or dropped), ``changed``
    the re-fetched pages.
    """
    entries: list[dict[str, Any]] = [dict(e) for e in manifest["files"]]
    partitioning = (pads.partitioning(partition.arrow_schema(manifest["columns"]),
                                      flavor="hive") if partition else None)
    keys = [_key(entry, partition, partitioning) for entry in entries]
    if partition is not None:
        for entry, key in zip(entries, keys, strict=True):
            entry["partition"] = key
    candidates = [e for e in entries if e["rows"] and _may_hold(e, replaced)]
    before, holding = _scan(target, root, manifest, candidates, replaced, partitioning)
    touched = {k for k, e in zip(keys, entries, strict=True) if e["path"] in holding}
    touched |= _new_keys(changed, partition, manifest["columns"])
    plan = _Plan(before=before)
    for key, entry in zip(keys, entries, strict=True):
        if key in touched:
            plan.rewrite.append(entry)
        elif entry["rows"]:  # an empty file holds nothing worth carrying
            plan.carry.append(entry)
    return plan


def _key(entry: Mapping[str, Any], partition: _Partition | None, partitioning: Any) -> Any:
    """The partition a listed file belongs to (``None`` for an unpartitioned snapshot)."""
    if partition is None:
        return None
    if "partition" in entry:
        return entry["partition"]
    parsed = pads.get_partition_keys(partitioning.parse(entry["path"]))  # an older manifest
    return parsed.get(partition.name)


def _may_hold(entry: Mapping[str, Any], replaced: Sequence[int]) -> bool:
    """Whether a file's recorded id range holds one of the sorted ``replaced`` ids."""
    bounds = entry.get("ids")
    if not (isinstance(bounds, list) and len(bounds) == 2
            and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)):
        return bool(replaced)  # no range recorded: the file must be read
    low, high = bounds
    at = bisect.bisect_left(replaced, low)
    return at < len(replaced) and replaced[at] <= high


def _scan(target: _Target, root: str, manifest: Mapping[str, Any],
          candidates: Sequence[dict[str, Any]], replaced: Sequence[int],
          partitioning: Any) -> tuple[dict[int, int | None], set[str]]:
    """``id -> updatedAt`` of the rows being replaced, and the files (paths) holding them.

    Entries of an older manifest get the id range their footer gives.
    """
    if not candidates or not replaced:
        return {}, set()
    names = {_join(root, e["path"]): e["path"] for e in candidates}
    dataset = pads.dataset(list(names), format="parquet", filesystem=target.fs,
                           partitioning=partitioning,
                           partition_base_dir=root if partitioning else None)
    _check_footers(target, root, manifest, dataset)
    by_path = {_join(root, e["path"]): e for e in candidates}
    for fragment in dataset.get_fragments():  # an older manifest: record the ranges now
        entry = by_path[fragment.path]
        if "ids" not in entry and (bounds := _id_range(fragment.metadata)) is not None:
            entry["ids"] = bounds
    wanted = pc.field("id").cast(pa.int64()).isin(pa.array(replaced, type=pa.int64()))
    before: dict[int, int | None] = {}
    holding: set[str] = set()
    try:
        for tagged in dataset.scanner(columns=["id", "updatedAt"], filter=wanted).scan_batches():
            batch = tagged.record_batch
            if batch.num_rows:
                holding.add(names[tagged.fragment.path])
                before.update(_versions(batch.column("id").to_pylist(),
                                        batch.column("updatedAt").to_pylist()))
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(target, root, _culprit(dataset, root, manifest, ["id", "updatedAt"]),
                       exc) from None
    return before, holding


def _new_keys(changed: Sequence[pd.DataFrame], partition: _Partition | None,
              specs: Mapping[str, Any]) -> set[Any]:
    """The partitions the re-fetched rows go to, as the manifest records them."""
    rows = [frame for frame in changed if len(frame)]
    if partition is None:
        return {None} if rows else set()
    arrow_type = partition.arrow_type(specs)
    return {key for frame in rows
            for key in pa.array(partition.keys(frame).tolist(), type=arrow_type).to_pylist()}


def _replaced_rows(table: pa.Table, entry: Mapping[str, Any], ids: pa.Array) -> pa.Array:
    """Which rows of a file's ``table`` belong to the replaced ``ids`` (a boolean mask).

    A snapshot partitioned by ``id`` keeps it in the folder name, not in the file.
    """
    if "id" in table.column_names:
        column = pc.cast(table.column("id"), pa.int64())
        return pc.fill_null(pc.is_in(column, value_set=ids), False)
    value = entry.get("partition")
    hit = isinstance(value, int) and value in set(ids.to_pylist())
    return pa.array([hit] * table.num_rows, type=pa.bool_())
