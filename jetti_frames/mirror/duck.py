"""``<root>/jetti.duckdb``: one view per dataset over its parquet files, and ``sync_runs``.

The views read the snapshot folders in place (no data is copied) by paths relative to the root,
so the folder can be moved or copied to another machine: :func:`connect` points DuckDB's
``file_search_path`` at the root wherever it now is. (Opened by hand, run DuckDB from inside
the root, or ``SET file_search_path`` to it.) Each view globs ``<dataset>/**/*.parquet``: a
published snapshot folder holds exactly its version's files, so the views need no change
after a sync. With several accounts a view is the union of their snapshots with an
``account`` column first. A root that is a URL keeps its database and views as
:mod:`.remote` says.

Examples
--------
>>> con = connect("data/jetti")                                   # doctest: +SKIP
>>> con.execute("SELECT count(*) FROM purchases").fetchone()          # doctest: +SKIP
(3000,)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import JettiConfigError, JettiError, SnapshotError
from ..snapshot import MANIFEST
from . import remote

if TYPE_CHECKING:
    import duckdb

    from .config import MirrorConfig
    from .report import DatasetResult

__all__ = ["DATABASE", "connect"]

DATABASE = "jetti.duckdb"

_RUNS = """CREATE TABLE IF NOT EXISTS sync_runs (
    run_id VARCHAR, started_at TIMESTAMPTZ, account VARCHAR, dataset VARCHAR, action VARCHAR,
    ok BOOLEAN, rows BIGINT, added BIGINT, changed BIGINT, deleted BIGINT, requests BIGINT,
    status_429 BIGINT, swept BOOLEAN, sweep_requests BIGINT, seconds DOUBLE, error VARCHAR,
    warnings VARCHAR[])"""
_COLUMNS = ("run_id", "started_at", "account", "dataset", "action", "ok", "rows", "added",
            "changed", "deleted", "requests", "status_429", "swept", "sweep_requests",
            "seconds", "error", "warnings")


class DatabaseError(JettiError):
    """``jetti.duckdb`` could not be opened or updated (e.g. another process holds it)."""


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - a dependency
        raise JettiConfigError("the mirror's database needs duckdb: pip install duckdb") from None
    return duckdb


def connect(root: str | os.PathLike[str], *, read_only: bool = True,
            storage_options: Mapping[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to a mirror's ``jetti.duckdb``, its views resolving under ``root``.

    Parameters
    ----------
    root
        The mirror's root folder (``root`` in ``jetti.toml``), wherever it is now, or its URL
        (``s3://...``): then an in-memory database holding ``sync_runs``, with views over the
        files each dataset's manifest lists now (read through fsspec).
    read_only
        Open without taking the write lock a running sync needs (default).
    storage_options
        For a URL root: the options of its fsspec filesystem, as pandas takes them.

    Raises
    ------
    SnapshotError
        No ``jetti.duckdb`` in ``root`` (run ``jetti-frames sync`` first).

    Examples
    --------
    >>> con = connect("data/jetti")                                            # doctest: +SKIP
    >>> con.sql("SELECT dataset, rows, requests FROM sync_runs").df()          # doctest: +SKIP
    """
    if remote.is_url(root):
        return remote.connect(str(root), storage_options)
    if str(root).startswith("file://"):
        root = str(root)[len("file://"):]
    folder = Path(root).expanduser().resolve()
    path = folder / DATABASE
    if not path.is_file():
        raise SnapshotError(f"no {DATABASE} in {folder}: run 'jetti-frames sync' first")
    con = _duckdb().connect(str(path), read_only=read_only)
    _search_here(con, folder)
    return con


def _search_here(con: Any, folder: Path) -> None:
    con.execute(f"SET file_search_path = {_literal(str(folder))}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_sql(name: str, parts: Mapping[str, tuple[str | list[str], bool]], *,
             multi: bool) -> str:
    """``CREATE OR REPLACE VIEW`` over each account's folder (relative path, hive or not), or
    over a list of files.

    >>> print(view_sql("p", {"default": ("p", False)}, multi=False))
    CREATE OR REPLACE VIEW "p" AS SELECT * FROM read_parquet('p/**/*.parquet', \
hive_partitioning = false, union_by_name = true)
    """
    selects = []
    for account, (folder, hive) in parts.items():
        files = _literal(folder + "/**/*.parquet") if isinstance(folder, str) else \
            "[" + ", ".join(map(_literal, folder)) + "]"
        source = (f"read_parquet({files}, hive_partitioning = "
                  f"{str(hive).lower()}, union_by_name = true)")
        head = f"{_literal(account)} AS account, *" if multi else "*"
        selects.append(f"SELECT {head} FROM {source}")
    return f"CREATE OR REPLACE VIEW {_ident(name)} AS " + " UNION ALL BY NAME ".join(selects)


def runs_since_sweep(config: MirrorConfig) -> dict[tuple[str, str], int]:
    """Per (account, dataset): successful syncs since the last one that swept (or full read)."""
    if isinstance(config.root, str):
        with remote.local_copy(config.root, config.options, upload=False) as local:
            return _runs_since_sweep(local)
    return _runs_since_sweep(config.root / DATABASE)


def _runs_since_sweep(path: Path) -> dict[tuple[str, str], int]:
    # runs are counted in the order they were recorded (rowid), which no clock step (nor a
    # database written before stamps had microseconds) can reorder
    if not path.is_file():
        return {}
    duckdb = _duckdb()
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:  # held by another writer: no history to go by this time
        return {}
    try:
        try:
            rows = con.execute(
                "SELECT account, dataset, count(*) FILTER (WHERE r.rowid > coalesce("
                "(SELECT max(s.rowid) FROM sync_runs s WHERE s.ok AND s.swept AND "
                "s.account = r.account AND s.dataset = r.dataset), -1)) "
                "FROM sync_runs r WHERE ok GROUP BY account, dataset").fetchall()
        except duckdb.CatalogException:  # no sync_runs table yet
            return {}
    finally:
        con.close()
    return {(a, d): int(n) for a, d, n in rows}


def record(config: MirrorConfig, run_id: str, started_at: str,
           results: Iterable[DatasetResult]) -> None:
    """Add the run's rows to ``sync_runs`` and (re)create the view of every dataset that has a
    published snapshot."""
    root = config.root
    if isinstance(root, str):
        with remote.local_copy(root, config.options, upload=True) as local:
            _record(config, local, run_id, started_at, results)
        return
    root.mkdir(parents=True, exist_ok=True)
    _record(config, root / DATABASE, run_id, started_at, results)


def _record(config: MirrorConfig, path: Path, run_id: str, started_at: str,
            results: Iterable[DatasetResult]) -> None:
    duckdb = _duckdb()
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise DatabaseError(str(exc)) from exc
    try:
        con.execute(_RUNS)
        rows = [(run_id, started_at, r.account, r.dataset, r.action, r.ok, r.rows, r.added,
                 r.changed, r.deleted, r.requests, r.status_429, r.swept, r.sweep_requests,
                 r.seconds, r.error, list(r.warnings)) for r in results]
        if rows:
            con.executemany(f"INSERT INTO sync_runs ({', '.join(_COLUMNS)}) VALUES "
                            f"({', '.join('?' * len(_COLUMNS))})", rows)
        if isinstance(config.root, str):
            remote.register(con, config.root, config.options)
            remote.views(con, config.root, [a.name for a in config.accounts],
                         [d.name for d in config.datasets], config.options)
            return
        _search_here(con, path.parent)
        for dataset in config.datasets:
            parts: dict[str, tuple[str | list[str], bool]] = {}
            for account in config.accounts:
                folder = Path(config.folder(account, dataset))
                if (folder / MANIFEST).is_file():
                    parts[account.name] = (config.relative(account, dataset),
                                           _partitioned(folder))
            if parts:
                con.execute(view_sql(dataset.name, parts, multi=config.multi_account))
    except duckdb.Error as exc:
        raise DatabaseError(str(exc)) from exc
    finally:
        con.close()


def _partitioned(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(manifest.get("partition_by"))
