"""``jetti-frames read``, ``explain``, ``describe`` and ``cache``: a query's rows, its requests,
a resource's fields, the HTTP cache."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ._cli_common import EXIT_OK, UsageError, _client, _query, _say, _stats

#: ``--out`` suffixes and the format each one means.
FORMATS = {"csv": "csv", "json": "json", "parquet": "parquet", "pq": "parquet"}


def cmd_read(args: argparse.Namespace) -> int:
    fmt = args.format or _format_from_suffix(args.out)
    if fmt == "parquet" and not args.out:
        raise UsageError("--format parquet needs --out FILE")
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be >= 0")
    query = _query(args)
    client = _client(args)
    frame = client.read(args.resource, **query, limit=args.limit)
    _write_frame(frame, fmt, args.out)
    stats = _stats(client)
    _say(args, f"{len(frame)} rows, {len(frame.columns)} columns; "
               f"{stats.get('requests', 0)} requests, {stats.get('cache_hits', 0)} cache hits"
               + (f"; wrote {args.out}" if args.out else ""))
    return EXIT_OK


def _format_from_suffix(out: str | None) -> str:
    """The format an ``--out`` file's suffix names (csv without one); others are refused.

    >>> _format_from_suffix("x.PQ"), _format_from_suffix(None), _format_from_suffix("x")
    ('parquet', 'csv', 'csv')
    """
    suffix = Path(out).suffix.lower().lstrip(".") if out else ""
    if not suffix:
        return "csv"
    if suffix not in FORMATS:
        known = ", ".join(f".{s}" for s in FORMATS)
        raise UsageError(f"cannot write {out}: unknown format .{suffix} (known: {known}); "
                         "or pass --format csv|json|parquet")
    return FORMATS[suffix]


def _write_frame(frame: pd.DataFrame, fmt: str, out: str | None) -> None:
    if fmt == "parquet":
        from .snapshot import _json_text

        assert out is not None
        frame = frame.copy()
        for name in frame.select_dtypes(include="object").columns:  # JSON: stored as text
            frame[name] = frame[name].map(_json_text).astype(object)
        frame.to_parquet(out, index=False)
        return
    if fmt == "json":
        text = frame.to_json(orient="records", date_format="iso", date_unit="s",
                             force_ascii=False)
        text = (text or "[]") + "\n"
    else:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        text = buffer.getvalue()
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def cmd_explain(args: argparse.Namespace) -> int:
    query = _query(args)
    client = _client(args, need_credentials=False)
    explanation = client.explain(args.resource, **query, limit=args.limit)
    print(f"base URL: {client.base_url}")
    print(str(explanation))
    return EXIT_OK


def cmd_describe(args: argparse.Namespace) -> int:
    from .catalog_frames import describe, resources

    if args.resource is None and args.relations:
        raise UsageError("--relations needs a resource")
    frame = resources() if args.resource is None else describe(args.resource,
                                                               relations=args.relations)
    if args.json:
        text = frame.astype(object).where(frame.notna(), None).to_dict("records")
        print(json.dumps(text, indent=1, ensure_ascii=False, default=list))
        return EXIT_OK
    print(table_text(frame))
    return EXIT_OK


def table_text(frame: pd.DataFrame, *, width: int = 60) -> str:
    """A frame as left-aligned text columns; tuples comma-joined, nulls blank, cells cut at
    ``width`` characters.

    >>> print(table_text(pd.DataFrame({"name": ["level"], "enum": [("a", "b")]})))
    name   enum
    level  a, b
    """
    def cell(value: Any) -> str:
        text = ", ".join(map(str, value)) if isinstance(value, tuple) else (
            "" if value is None or value is pd.NA else str(value))
        return text if len(text) <= width else text[:width - 3] + "..."

    columns = [[str(name), *map(cell, frame[name])] for name in frame.columns]
    sizes = [max(map(len, column)) for column in columns]
    return "\n".join("  ".join(c.ljust(n) for c, n in zip(row, sizes, strict=True)).rstrip()
                     for row in zip(*columns, strict=True))


def cmd_cache(args: argparse.Namespace) -> int:
    client = _client(args, need_credentials=False)
    if args.action == "clear":
        removed = client.clear_cache()
        _say(args, f"cache cleared: {removed} answers of this account removed")
        return EXIT_OK
    print(cache_text(client.cache_info(), client))
    return EXIT_OK


def cache_text(info: Mapping[str, Any], client: Any) -> str:
    """``jetti-frames cache info``: what each number counts."""
    if not info.get("enabled"):
        return "HTTP cache is off (--no-cache or cache=False): every read goes to the network"
    who = (f"this token at {client.base_url}" if client.settings.token
           else "no token given: pass --token or set JETTI_API_TOKEN to count your account's")
    return "\n".join([
        f"cache file     {info['path']}",
        f"this account   {info['entries']:,} cached answers ({who})",
        f"all accounts   {info['entries_total']:,} entries in the file (every token and base "
        "URL, older key versions too)",
        f"file size      {info['size'] / 1e6:.2f} MB (with SQLite's -wal and -shm files)",
        f"expire after   {client.settings.cache_expire:g} s (refresh=True or --no-cache to "
        "read fresh; 'jetti-frames cache clear' removes this account's answers)",
    ])
