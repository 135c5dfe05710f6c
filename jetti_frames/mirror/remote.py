"""A mirror whose root is a URL (``s3://``, ``gs://``, ``abfs://``): the database and views.

DuckDB keeps no database file on an object store, so a sync updates a local copy of
``<root>/jetti.duckdb`` and uploads it when done, and :func:`connect` reads its ``sync_runs``
into an in-memory database. The views name the files of each dataset's current version, as its
manifest lists them (a glob over the root would also find the versions kept for readers still
on them), and read them through the fsspec filesystem registered on the connection. They are
made again at every sync and every connect, so they follow each publish.

Examples
--------
>>> con = connect("s3://bucket/jetti", storage_options={"anon": False})   # doctest: +SKIP
>>> con.sql("SELECT count(*) FROM purchases").fetchone()                 # doctest: +SKIP
(3000,)
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SnapshotError
from ..snapshot import snapshot_info

if TYPE_CHECKING:
    import duckdb

DATABASE = "jetti.duckdb"


def is_url(root: Any) -> bool:
    """Whether a mirror root is a URL of an object store (``file://`` is a local folder)."""
    text = str(root)
    return "://" in text and not text.startswith("file://")


def filesystem(root: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem of ``root`` and the root's path inside it."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(root, **dict(storage_options or {}))
    except (ImportError, ValueError, TypeError) as exc:
        raise SnapshotError(f"cannot open {root!r}: {exc}") from None


@contextlib.contextmanager
def local_copy(root: str, storage_options: Mapping[str, Any] | None, *,
               upload: bool) -> Iterator[Path]:
    """A local copy of ``<root>/jetti.duckdb`` (a new file when there is none yet), uploaded
    back on a clean exit when ``upload``."""
    fs, inner = filesystem(root, storage_options)
    remote = f"{inner.rstrip('/')}/{DATABASE}"
    with tempfile.TemporaryDirectory(prefix="jetti-mirror-") as folder:
        local = Path(folder) / DATABASE
        if fs.exists(remote):
            fs.get(remote, str(local))
        yield local
        if upload and local.is_file():
            fs.put(str(local), remote)


def views(con: duckdb.DuckDBPyConnection, root: str, accounts: list[str],
          datasets: list[str], storage_options: Mapping[str, Any] | None, *,
          record: bool = True) -> None:
    """(Re)create a view per dataset over the files its current manifest lists, and record
    the accounts and datasets (in ``jetti_layout``) for :func:`connect` to do the same."""
    from .duck import view_sql

    multi = len(accounts) > 1
    for dataset in datasets:
        found: dict[str, tuple[list[str], bool]] = {}
        for account in accounts:
            try:
                info = snapshot_info(f"{root}/{account}/{dataset}" if multi
                                     else f"{root}/{dataset}", storage_options=storage_options)
            except SnapshotError:
                continue
            base = info.data_path or info.path
            files = [f"{base}/{entry['path']}" for entry in info.manifest["files"]]
            if files:
                found[account] = (files, bool(info.manifest.get("partition_by")))
        if found:
            con.execute(view_sql(dataset, found, multi=multi))
    if not record:
        return
    con.execute("CREATE OR REPLACE TABLE jetti_layout (key VARCHAR, value VARCHAR)")
    con.execute("INSERT INTO jetti_layout VALUES ('mirror', ?)",
                [json.dumps({"accounts": accounts, "datasets": datasets})])


def register(con: duckdb.DuckDBPyConnection, root: str,
             storage_options: Mapping[str, Any] | None) -> None:
    """Let DuckDB read the root's URLs through its fsspec filesystem."""
    fs, _ = filesystem(root, storage_options)
    con.register_filesystem(fs)


def connect(root: str, storage_options: Mapping[str, Any] | None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection: the mirror's ``sync_runs`` and a view per dataset over
    the files of its current version."""
    from . import duck

    duckdb = duck._duckdb()
    con = duckdb.connect()
    register(con, root, storage_options)
    with local_copy(root, storage_options, upload=False) as local:
        if not local.is_file():
            raise SnapshotError(f"no {DATABASE} in {root}: run 'jetti-frames sync' first")
        con.execute(f"ATTACH {duck._literal(str(local))} AS stored (READ_ONLY)")
        con.execute("CREATE TABLE sync_runs AS SELECT * FROM stored.sync_runs")
        try:
            layout = con.execute("SELECT value FROM stored.jetti_layout WHERE key = "
                                 "'mirror'").fetchone()
        except duckdb.CatalogException:
            layout = None
        con.execute("DETACH stored")
    if layout:  # the accounts and datasets the last sync wrote
        recorded = json.loads(layout[0])
        views(con, root, recorded["accounts"], recorded["datasets"], storage_options,
              record=False)
    return con
