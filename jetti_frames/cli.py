"""The ``jetti-frames`` command: read, snapshot and inspect Jetti data from a shell.

Commands: ``demo``, ``read``, ``snapshot``, ``refresh``, ``info``, ``cache``, ``explain``,
``describe``, ``sandbox``; ``jetti-frames COMMAND --help`` describes each. Exit codes: 0 success,
1 runtime or API error, 2 usage error (bad option, bad query, no credentials), 130 interrupted.
Errors are one line on stderr; ``--debug`` shows the traceback. Progress goes to stderr, data to
stdout or ``--out``.

The connection comes from ``--token``/``--base-url`` or the ``JETTI_API_TOKEN``/``JETTI_BASE_URL``
environment variables; the token is never printed.

This module builds the parser and runs a command; the commands themselves are in
``_cli_read`` (read, explain, describe, cache), ``_cli_snapshot`` (snapshot, refresh, info,
demo) and :mod:`jetti_frames.mirror.cli` (sync), what they share in ``_cli_common``.

Examples
--------
>>> main(["read", "--help"])            # doctest: +SKIP
>>> main(["demo", "--out", "data/purchases-demo"])   # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, NoReturn

from ._cli_common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    _first_line,
    _warn_one_line,
)
from ._cli_read import cmd_cache, cmd_describe, cmd_explain, cmd_read
from ._cli_snapshot import DEMO_OUT, cmd_demo, cmd_info, cmd_refresh, cmd_snapshot
from ._version import __version__
from .errors import JettiError, JettiQueryError

__all__ = ["main"]


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


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import run

    return int(run(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
