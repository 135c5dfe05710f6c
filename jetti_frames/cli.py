"""The ``jetti-frames`` command: read, snapshot and inspect Jetti data from a shell.

Commands: ``demo``, ``read``, ``snapshot``, ``refresh``, ``info``, ``cache``, ``explain``,
``describe``, ``sandbox``; ``jetti-frames COMMAND --help`` describes each. Exit codes: 0 success,
1 runtime or API error, 2 usage error (bad option, bad query, no credentials), 130 interrupted.
Errors are one line on stderr; ``--debug`` shows the traceback. Progress goes to stderr, data to
stdout or ``--out``.

The connection comes from ``--token``/``--base-url`` or the ``JETTI_API_TOKEN``/``JETTI_BASE_URL``
environment variables; the token is never printed.

Examples
--------
>>> main(["read", "--help"])            # doctest: +SKIP
>>> main(["demo", "--out", "data/purchases-demo"])   # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd

from ._version import __version__
from .errors import JettiError, JettiQueryError

if TYPE_CHECKING:
    from .client import JettiClient

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEMO_OUT = Path("data") / "purchases-demo"
DEMO_INCLUDE = ["PurchaseStatus", "DropshipProvider"]


#: ``--out`` suffixes and the format each one means.
FORMATS = {"csv": "csv", "json": "json", "parquet": "parquet", "pq": "parquet"}


class UsageError(Exception):
    """A mistake in the command line (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"jetti-frames: error: {_first_line(message)} "
                              f"(see '{self.prog} --help')\n")


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------


def _common() -> _Parser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument("--token", help="API token (default: $JETTI_API_TOKEN); never printed")
    group.add_argument("--base-url", help="API base URL (default: $JETTI_BASE_URL or Jetti's)")
    group.add_argument("--cache", metavar="PATH", help="HTTP cache file (default: user cache dir)")
    group.add_argument("--no-cache", action="store_true", help="do not use the HTTP cache")
    group.add_argument("--quiet", "-q", action="store_true", help="no progress or summary")
    group.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return common


def _query_options(parser: argparse.ArgumentParser, *, limit: bool = True) -> None:
    group = parser.add_argument_group("query")
    group.add_argument("resource", help="resource name, e.g. purchases, purchase-items")
    group.add_argument("--where", metavar="JSON",
                       help='filter as JSON, e.g. \'{"purchaseType": "dropship"}\'')
    group.add_argument("--attributes", metavar="A,B", help="fields to fetch, comma separated")
    group.add_argument("--include", metavar="MODEL[,MODEL]",
                       help="related models to embed (PurchaseStatus,DropshipProvider) or JSON")
    group.add_argument("--order", metavar="[-]FIELD",
                       help="sort by FIELD; -FIELD for descending (--order -total)")
    if limit:
        group.add_argument("--limit", type=int, metavar="N", help="at most N rows")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jetti-frames`` (one subparser per command)."""
    common = _common()
    parser = _Parser(
        prog="jetti-frames",
        description="Typed tables and parquet snapshots from the Jetti (Onport) API.",
        epilog="Exit codes: 0 ok, 1 runtime/API error, 2 usage error. "
               "Run 'jetti-frames COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from .sandbox import add_arguments
    from .sandbox.cli import whole

    demo = sub.add_parser(
        "demo", parents=[common], help="pull purchases from a built-in sandbox into data/",
        description="Start the built-in sandbox (a synthetic Jetti account on 127.0.0.1), pull "
                    "its purchases with their status and dropship provider, write a parquet "
                    "snapshot and print a summary. No token needed.")
    demo.add_argument("--out", default=str(DEMO_OUT), help=f"snapshot path (default {DEMO_OUT})")
    demo.add_argument("--purchases", type=whole(1), default=1000,
                      help="sandbox size (default 1000)")
    demo.add_argument("--rate", choices=("default", "off"), default="default",
                      help="default: Jetti's real allowance, 2 GET/s; off: no limit at all")
    demo.set_defaults(func=cmd_demo)

    read = sub.add_parser("read", parents=[common],
                          help="read a resource into CSV, JSON or parquet",
                          description="Read a resource and write it as CSV/JSON (stdout unless "
                                      "--out) or parquet (--out required).")
    _query_options(read)
    read.add_argument("--format", choices=("csv", "json", "parquet"), default=None,
                      help="output format (default: from --out's suffix, else csv)")
    read.add_argument("--out", metavar="FILE", help="output file (default stdout for csv/json)")
    read.set_defaults(func=cmd_read)

    snap = sub.add_parser("snapshot", parents=[common], help="write a parquet snapshot",
                          description="Stream a query into a parquet dataset with provenance, "
                                      "published atomically.")
    _query_options(snap, limit=False)
    snap.add_argument("--out", required=True, metavar="PATH", help="dataset directory or URL")
    snap.add_argument("--partition-by", metavar="COLUMN[:UNIT]",
                      help="hive partitions by a column, or a datetime cut by year/month/day "
                           "(dateOrdered:month)")
    snap.set_defaults(func=cmd_snapshot)

    refresh = sub.add_parser("refresh", parents=[common], help="update a snapshot",
                             description="Fetch records changed since the snapshot's watermark "
                                         "and upsert them; --full re-reads everything (needed "
                                         "to drop records deleted on the server).")
    refresh.add_argument("path", help="snapshot directory or URL")
    refresh.add_argument("--full", action="store_true", help="re-run the whole query")
    refresh.add_argument("--overlap", type=float, default=300, metavar="SECONDS",
                         help="look this far before the watermark (default 300)")
    refresh.set_defaults(func=cmd_refresh)

    info = sub.add_parser("info", parents=[common], help="show a snapshot's summary",
                          description="Print a snapshot's summary: rows, columns (a count; "
                                      "--columns lists them), watermark, requests, the query "
                                      "and where the data came from.")
    info.add_argument("path", help="snapshot directory or URL")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--columns", action="store_true",
                      help="list the columns, one a line, with their dtypes")
    info.set_defaults(func=cmd_info)

    cache = sub.add_parser("cache", parents=[common], help="inspect or clear the HTTP cache",
                           description="Show where the HTTP cache is and how big, or clear it.")
    cache.add_argument("action", choices=("info", "clear"))
    cache.set_defaults(func=cmd_cache)

    explain = sub.add_parser("explain", parents=[common],
                             help="show the requests a read would send (sends nothing)",
                             description="Print the URLs a read would request and the estimated "
                                         "time; nothing is sent.")
    _query_options(explain)
    explain.set_defaults(func=cmd_explain)

    _add_describe(sub)

    sandbox = sub.add_parser("sandbox", help="serve a synthetic Jetti account",
                             description="Serve the sandbox (a synthetic Jetti account) on "
                                         "127.0.0.1 until Ctrl-C.")
    add_arguments(sandbox)
    sandbox.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sandbox.set_defaults(func=cmd_sandbox)

    from .mirror.cli import add_parser as add_sync
    add_sync(sub)
    return parser


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``jetti-frames`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(_join_order(list(sys.argv[1:] if argv is None else argv)))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with warnings.catch_warnings(), ExitStack() as args.clients:  # closes what _client made
            warnings.showwarning = _warn_one_line
            return func(args)
    except BrokenPipeError:  # the reader went away (``| head``): not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except UsageError as exc:
        return _fail(args, f"{args.command}: {exc}", EXIT_USAGE)
    except JettiQueryError as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    except (JettiError, OSError) as exc:
        return _fail(args, _one_line(exc), EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # a bug of ours: still one line; --debug shows where
        return _fail(args, f"unexpected {type(exc).__name__}: {_one_line(exc)} (--debug shows "
                           "the traceback)", EXIT_ERROR)


def _warn_one_line(message: Warning | str, *_: Any, **__: Any) -> None:
    """A warning as one line on stderr (no source file and line, as the errors)."""
    print(f"jetti-frames: warning: {message}", file=sys.stderr)


def _join_order(argv: list[str]) -> list[str]:
    """``--order -total`` as ``--order=-total`` (argparse would take ``-total`` for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--order" and i + 1 < len(argv) and argv[i + 1][:1] == "-" \
                and argv[i + 1][1:2].isalpha():
            out.append(f"--order={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(f"jetti-frames: error: {_first_line(message)}", file=sys.stderr)
    return code


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, JettiError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text


def _first_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _client(args: argparse.Namespace, *, need_credentials: bool = True,
            base_url: str | None = None, token: str | None = None, **extra: Any) -> JettiClient:
    """The command's client, from the options, then the ``JETTI_*`` variables; closed when the
    command ends."""
    from .client import open_client
    from .settings import DEFAULT_BASE_URL, Settings

    token = token or args.token or None
    base_url = base_url or args.base_url or None
    settings = Settings.from_env(token=token, base_url=base_url)
    if need_credentials and not settings.token and settings.base_url == DEFAULT_BASE_URL:
        raise UsageError("no Jetti connection configured: pass --token (or set JETTI_API_TOKEN), "
                         "and --base-url (or JETTI_BASE_URL) for another server; try "
                         "'jetti-frames demo' for a sandbox")
    options: dict[str, Any] = {"progress": not args.quiet, **extra}
    if args.no_cache:
        options["cache"] = False
    elif args.cache:
        options["cache"] = args.cache  # a trailing separator means a directory
    stack: ExitStack = args.clients
    return stack.enter_context(open_client(token=token, base_url=base_url, **options))


def _json_arg(text: str | None, name: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--{name} is not valid JSON ({exc.msg} at char {exc.pos})") from None


def _query(args: argparse.Namespace) -> dict[str, Any]:
    where = _json_arg(args.where, "where")
    if where is not None and not isinstance(where, dict):
        raise UsageError("--where must be a JSON object")
    include: Any = None
    if args.include:
        text = args.include.strip()
        include = _json_arg(text, "include") if text[:1] in "[{" else _split(text)
    attributes = _split(args.attributes) if args.attributes else None
    return {"where": where, "attributes": attributes, "include": include,
            "order": args.order or None}


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _partition(text: str | None) -> Any:
    if not text:
        return None
    column, _, unit = text.partition(":")
    return (column, unit) if unit else column


def _stats(client: Any) -> dict[str, Any]:
    return asdict(client.last_stats)


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


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


def cmd_explain(args: argparse.Namespace) -> int:
    query = _query(args)
    client = _client(args, need_credentials=False)
    explanation = client.explain(args.resource, **query, limit=args.limit)
    print(f"base URL: {client.base_url}")
    print(str(explanation))
    return EXIT_OK


def _add_describe(sub: Any) -> None:
    describe = sub.add_parser(
        "describe", help="show a resource's fields or relations (no request)",
        description="Print the fields of a resource from the catalogue (name, kind, dtype, "
                    "nullable, enum values, relation, credential, description), its related "
                    "models with --relations, or every resource when none is named.")
    describe.add_argument("resource", nargs="?", help="resource name, e.g. purchases")
    describe.add_argument("--relations", action="store_true",
                          help="the related models, their include keys and how they join")
    describe.add_argument("--json", action="store_true", help="print JSON records")
    describe.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    describe.set_defaults(func=cmd_describe)


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


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import run

    return int(run(args))


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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
