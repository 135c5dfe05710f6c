"""``jetti-frames sync [FILE]``: the command-line face of :func:`jetti_frames.mirror.sync`.

Exit codes: 0 every dataset synced, 1 one or more failed (the others are published), 2 a bad
mirror file or option (nothing was sent).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import JettiConfigError
from .config import DEFAULT_FILE

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, **parser_options: Any) -> argparse.ArgumentParser:
    """Register ``sync`` on an ``add_subparsers()`` object; returns its parser."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "sync", help="bring a mirror (jetti.toml) up to date",
        description="Snapshot each dataset of the mirror file the first time, refresh it "
                    "after; sweep deleted records when due; update <root>/jetti.duckdb. "
                    "Tokens come from the environment variables the file names.",
        **parser_options)
    parser.add_argument("file", nargs="?", default=DEFAULT_FILE,
                        help=f"the mirror file (default {DEFAULT_FILE})")
    parser.add_argument("--full", action="store_true", help="re-pull every dataset")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="sync only this dataset (repeat for several)")
    sweep = parser.add_mutually_exclusive_group()
    sweep.add_argument("--sweep", action="store_true", default=None,
                       help="sweep deleted records now (datasets with deletes = \"sweep\")")
    sweep.add_argument("--no-sweep", dest="sweep", action="store_false",
                       help="do not sweep this time")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan and the requests it expects; send nothing")
    parser.add_argument("--parallel", type=int, metavar="N",
                        help="datasets of one account at once (default: all)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``sync`` for parsed arguments; print the summary table; return the exit code."""
    from .sync import sync

    if args.parallel is not None and args.parallel < 1:
        print("jetti-frames: error: sync: --parallel must be at least 1", file=sys.stderr)
        return 2
    try:
        report = sync(args.file, full=args.full, only=args.only, sweep=args.sweep,
                      dry_run=args.dry_run, progress=not args.quiet, parallel=args.parallel)
    except JettiConfigError as exc:
        print(f"jetti-frames: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.ok else 1
