"""``jetti-frames snapshot``, ``refresh``, ``info`` and ``demo``: parquet snapshots written,
brought up to date and described."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ._cli_common import EXIT_OK, _client, _partition, _query, _say, _stats, _warn_one_line

DEMO_OUT = Path("data") / "purchases-demo"
DEMO_INCLUDE = ["PurchaseStatus", "DropshipProvider"]


def cmd_snapshot(args: argparse.Namespace) -> int:
    from .snapshot import snapshot

    query = _query(args)
    client = _client(args)
    info = snapshot(args.resource, args.out, **query, partition_by=_partition(args.partition_by),
                    client=client, progress=not args.quiet)
    _say(args, f"{info['rows']} rows in {info['files']} files, {info['requests']} requests; "
               f"watermark {info['watermark']}; wrote {info['path']}")
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace) -> int:
    from .snapshot import refresh_snapshot

    client = _client(args)
    info = refresh_snapshot(args.path, full=args.full, client=client, overlap=args.overlap,
                            progress=not args.quiet)  # checks the overlap before any request
    what = "full re-read" if args.full else (
        f"{info.changed_records} changed records ({info.refetched_records} read again)")
    _say(args, f"{what}, {info['requests']} requests; now {info['rows']} rows, watermark "
               f"{info['watermark']}; wrote {info['path']}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .snapshot import snapshot_info

    info = snapshot_info(args.path)
    if args.json:
        print(json.dumps(dict(info), indent=2, ensure_ascii=False))
        return EXIT_OK
    print(info_text(info, columns=args.columns))
    for item in info.drift:  # schema drift the snapshot met: a warning, never an error
        _warn_one_line(str(item))
    return EXIT_OK


def info_text(info: Any, *, columns: bool = False) -> str:
    """``jetti-frames info``: the summary, the query and the source; column names only when
    ``columns`` (one a line, with its dtype)."""
    from .snapshot import _plain
    query = ", ".join(f"{k}={v!r}" for k, v in (info.get("query") or {}).items() if v)
    partition = (info.get("partition_by") or {}).get("name")
    pairs = [(k, _plain(v)) for k, v in info.summary_pairs()]
    pairs += [("query", query or "(everything)"), ("partition_by", partition or "-"),
              ("base_url", info.get("base_url") or "-"),
              ("last sweep", _sweep_text(info)),
              ("written by", f"jetti-frames {info.get('toolkit_version')}")]
    width = max(len(k) for k, _ in pairs)
    lines = []
    for key, value in pairs:
        if key == "columns" and not columns:
            value += " (list them with --columns)"
        if key == "drift":
            value += " schema changes (warnings below)"
        lines.append(f"{key:<{width}}  {value}")
    if columns:
        specs = info.manifest.get("columns") or {}
        name_width = max((len(c) for c in info.columns), default=0)
        lines += ["", "columns:"]
        lines += [f"  {c:<{name_width}}  {_dtype_name(specs.get(c) or {})}" for c in info.columns]
    return "\n".join(lines)


def _sweep_text(info: Any) -> str:
    """When deletions were last looked for (a sweep or a full read), and how long ago."""
    age = getattr(info, "sweep_age", None)
    if age is None:
        return "-"
    hours = age.total_seconds() / 3600
    ago = f"{hours * 60:.0f} min" if hours < 2 else (
        f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days")
    return f"{info.last_sweep} ({ago} ago; deletions since then are not in the data)"


def _dtype_name(spec: dict[str, Any]) -> str:
    """A column's dtype as pandas names it, from its manifest entry.

    >>> _dtype_name({"type": "numpy", "name": "Int64"}), _dtype_name({"type": "json"})
    ('Int64', 'object (JSON)')
    """
    kind = spec.get("type")
    if kind == "numpy":
        return str(spec.get("name"))
    if kind == "arrow":
        return f"{spec.get('arrow')}[pyarrow]"
    if kind == "json":
        return "object (JSON)"
    return str(kind or "?")


def cmd_demo(args: argparse.Namespace) -> int:
    """Sandbox -> snapshot -> summary.

    The sandbox keeps Jetti's real allowance (2 GET/s, which the client's limiter honours) unless
    ``--rate off``; 1000 purchases take about a dozen requests, a few seconds. The snapshot of the
    same query is then written from the HTTP cache (a temporary file, or ``--cache``).
    """
    import tempfile

    from .sandbox import Sandbox
    from .settings import SANDBOX_TOKEN
    from .snapshot import read_snapshot, snapshot

    began = time.perf_counter()
    _say(args, f"starting the sandbox ({args.purchases} purchases, rate limit "
               f"{'Jetti' + chr(39) + 's 2 GET/s' if args.rate == 'default' else 'off'}) ...")
    with tempfile.TemporaryDirectory(prefix="jetti-demo-") as tmp, \
            Sandbox(purchases=args.purchases, rate=args.rate) as sandbox:
        if not args.no_cache and not args.cache:
            args.cache = str(Path(tmp) / "http-cache.sqlite")
        client = _client(args, need_credentials=False, base_url=sandbox.base_url,
                         token=SANDBOX_TOKEN,
                         **({"get_rate": 1000.0} if args.rate == "off" else {}))
        client.read("purchases", include=DEMO_INCLUDE, progress=not args.quiet)
        pulled = _stats(client)
        seconds = time.perf_counter() - began
        again = time.perf_counter()
        info = snapshot("purchases", args.out, include=DEMO_INCLUDE, client=client,
                        progress=False)
        again = time.perf_counter() - again
        client.close()
    frame = read_snapshot(args.out)
    shown = [c for c in ("id", "reference", "dateOrdered", "total", "purchaseType",
                         "purchase_status_name", "dropship_provider_name") if c in frame.columns]
    lines = [
        f"Pulled {pulled.get('rows')} purchases with {' and '.join(DEMO_INCLUDE)} from the "
        f"sandbox in {seconds:.1f} s: {pulled.get('requests')} requests, "
        f"{pulled.get('status_429', 0)} answered 429",
        f"Wrote the same query as a parquet snapshot from the HTTP cache in {again:.1f} s: "
        f"{info.get('requests') or 0} requests, {info.get('cache_hits') or 0} cache hits",
        f"  rows: {len(frame)}   columns: {len(frame.columns)}",
        "",
        frame[shown].head(5).to_string(index=False, max_colwidth=28),
        "",
        f"Snapshot written to {info['path']}",
        f"  read it back:  jetti_frames.read_snapshot({str(args.out)!r})",
        f"  provenance:    jetti-frames info {args.out}",
    ]
    print("\n".join(lines))
    return EXIT_OK
