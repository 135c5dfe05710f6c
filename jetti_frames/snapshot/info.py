"""What snapshot(), refresh_snapshot() and snapshot_info() return: :class:`SnapshotInfo`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from ..drift import DriftItem, items_from_manifest


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
    swept_at
        When deleted records were last swept out (``None`` if never); :attr:`last_sweep` and
        :attr:`sweep_age` also count a full read, which knows every deletion too.
    data_path
        The folder holding the current version's files, for readers that list files (Dask,
        DuckDB's glob): ``path`` itself on a local disk, ``path/v-...`` on an object store.
    drift
        Schema drift the snapshot's reads met (:class:`~jetti_frames.drift.DriftItem` s: new
        fields, fields that stopped arriving, values outside an enum); kept, never dropped.

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
    swept_at: str | None = None
    drift: tuple[DriftItem, ...] = ()
    data_path: str | None = dataclass_field(default=None, repr=False, compare=False)
    manifest: Mapping[str, Any] = dataclass_field(default_factory=dict, repr=False)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], path: str,
                      data_path: str | None = None) -> SnapshotInfo:
        """The summary of a manifest (as written into ``_jetti_snapshot.json``)."""
        return cls(path=path, resource=str(manifest.get("resource")),
                   rows=int(manifest.get("rows") or 0), columns=tuple(manifest["columns"]),
                   files=len(manifest["files"]), watermark=manifest.get("watermark"),
                   requests=manifest.get("requests"), seconds=manifest.get("seconds"),
                   fetched_at=manifest.get("fetched_at"),
                   refreshed_at=manifest.get("refreshed_at"),
                   changed_records=manifest.get("changed_records"),
                   refetched_records=manifest.get("refetched_records"),
                   swept_at=manifest.get("swept_at"),
                   drift=items_from_manifest(manifest.get("drift")),
                   data_path=data_path or path, manifest=manifest)

    @property
    def last_sweep(self) -> str | None:
        """When the snapshot last knew every deletion: its last sweep or full read."""
        stamps = [s for s in (self.swept_at, self.fetched_at) if isinstance(s, str)]
        return max(stamps, key=_instant) if stamps else None

    @property
    def sweep_age(self) -> dt.timedelta | None:
        """How long ago :attr:`last_sweep` was; deletions since then are not in the data."""
        stamp = self.last_sweep
        return None if stamp is None else dt.datetime.now(dt.UTC) - _instant(stamp)

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
            ("refreshed_at", self.refreshed_at), ("swept_at", self.swept_at),
            ("changed_records", self.changed_records), ("drift", len(self.drift) or None)]
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


def _instant(text: str) -> dt.datetime:
    """An ISO-8601 instant of a manifest as an aware datetime (UTC when it has no offset)."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
