"""Small helpers of the snapshot package: constants, JSON-safe values, times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

#: Key of the provenance in each parquet file's key-value metadata.
METADATA_KEY = "jetti_frames.provenance"




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
