"""The ``sandbox`` command: serve the synthetic account until Ctrl-C.

``sandbox [--port N] [--seed S] [--purchases N] [--latency-ms M] [--jitter-ms J]
[--connect-ms C] [--max-limit K] [--rate off|default] [--drain N] [--qs 6.13|latest] [--strict]
[--token T ...]``

``sandbox-token`` is always accepted; each ``--token T`` accepts one more bearer token (the
sandbox never prints it).

The product CLI can mount it as a subcommand with :func:`add_arguments` and :func:`run`.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="sandbox")
>>> add_arguments(parser)
>>> parser.parse_args(["--rate", "off", "--qs", "latest"]).qs
'latest'
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Sequence

from ..settings import SANDBOX_TOKEN
from .collation import COLLATIONS
from .formats import NUMBERS, ZONES
from .server import Sandbox

__all__ = ["add_arguments", "main", "milliseconds", "run", "whole"]


def whole(least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number in ``[least, most]`` (a usage error otherwise).

    >>> whole(1)("3"), whole(0, 65535)("0")
    (3, 0)
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least or (most is not None and value > most):
            top = f" and <= {most}" if most is not None else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {least}{top}")
        return value
    return parse


def milliseconds(text: str) -> float:
    """An argparse ``type``: a finite number of milliseconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options to ``parser``."""
    parser.add_argument("--port", type=whole(0, 65535), default=0,
                        help="port (default: a free one)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    parser.add_argument("--purchases", type=whole(0), default=3000, help="number of purchases")
    parser.add_argument("--latency-ms", type=milliseconds, default=0,
                        help="delay before answering")
    parser.add_argument("--jitter-ms", type=milliseconds, default=0,
                        help="extra random delay, half of it before the rate limit counts")
    parser.add_argument("--connect-ms", type=milliseconds, default=0,
                        help="delay of each connection's first request (a TLS handshake)")
    parser.add_argument("--max-limit", type=whole(1), default=100, help="silent cap on limit")
    parser.add_argument("--rate", choices=("default", "off"), default="default",
                        help="leaky-bucket rate limit (2 GET/s) or none")
    parser.add_argument("--drain", type=float, default=0.0, metavar="N",
                        help="another integration of the account using N GET/s of the bucket")
    parser.add_argument("--qs", choices=("6.13", "latest"), default="6.13",
                        help="query-string semantics of the imitated server")
    parser.add_argument("--strict", action="store_true",
                        help="answer 400 where the real server silently misbehaves")
    parser.add_argument("--zones", choices=ZONES, default="utc",
                        help="date-times at +00:00, or each record's at another offset")
    parser.add_argument("--numbers", choices=NUMBERS, default="json",
                        help="numbers as JSON numbers, or as text (\"404.64\")")
    parser.add_argument("--collation", choices=COLLATIONS, default="natural",
                        help="strings and enums ordered as a language collation and enum "
                             "types order them, or by code point")
    parser.add_argument("--token", action="append", default=[], metavar="T",
                        help=f"accept this bearer token too (repeatable; {SANDBOX_TOKEN} is "
                             "always accepted)")


def run(args: argparse.Namespace, *, stop: threading.Event | None = None) -> int:
    """Start a sandbox from parsed ``args``, print how to reach it, serve until Ctrl-C."""
    sandbox = Sandbox(seed=args.seed, purchases=args.purchases, latency_ms=args.latency_ms,
                      jitter_ms=args.jitter_ms, connect_ms=args.connect_ms,
                      max_limit=args.max_limit, rate=args.rate, drain=args.drain,
                      qs_version=args.qs, strict=args.strict, zones=args.zones,
                      numbers=args.numbers, collation=args.collation, port=args.port,
                      tokens=(SANDBOX_TOKEN, *args.token))
    sandbox.start()
    example = "purchases.json?limit=2&include%5B0%5D%5Bmodel%5D=PurchaseStatus"
    print(f"Jetti sandbox at {sandbox.base_url} (started in {sandbox.startup_seconds:.2f} s)")
    more = len(set(args.token) - {SANDBOX_TOKEN})
    print(f"token: {SANDBOX_TOKEN}" + (f" (and {more} given with --token)" if more else ""))
    print(f'try:   curl -H "Authorization: Bearer {SANDBOX_TOKEN}" "{sandbox.base_url}{example}"')
    print("Ctrl-C stops it.", flush=True)
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jetti_frames.sandbox``."""
    parser = argparse.ArgumentParser(prog="sandbox", description="Serve a synthetic Jetti account.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
