"""What the commands of ``jetti-frames`` share: exit codes, usage errors, the client of a
command and the query its options describe, messages on stderr.

Examples
--------
>>> _split(" id, total ,,name"), _partition("dateOrdered:month"), _partition("purchaseType")
(['id', 'total', 'name'], ('dateOrdered', 'month'), 'purchaseType')
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import JettiClient

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A mistake in the command line (exit code 2)."""


def _warn_one_line(message: Warning | str, *_: Any, **__: Any) -> None:
    """A warning as one line on stderr (no source file and line, as the errors)."""
    print(f"jetti-frames: warning: {message}", file=sys.stderr)


def _first_line(text: str) -> str:
    return " ".join(text.split())


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
