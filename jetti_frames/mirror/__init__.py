"""Keep a mirror of a Jetti account: a file of named queries, one command, parquet + DuckDB.

``jetti.toml`` names the datasets (each a :func:`jetti_frames.read_jetti` query with its
policies) and the accounts; :func:`sync` snapshots each dataset the first time and refreshes it
incrementally after, sweeping deleted records when asked; :func:`connect` opens
``<root>/jetti.duckdb``, one SQL view per dataset over its parquet files.

Modules: :mod:`.config` (the file), :mod:`.sync` (running datasets and accounts at once),
:mod:`.report` (what a sync did), :mod:`.duck` (the DuckDB views and ``sync_runs``).

Examples
--------
>>> from jetti_frames import connect, sync
>>> report = sync("jetti.toml")                              # doctest: +SKIP
>>> connect("data/jetti").execute("SELECT count(*) FROM purchases").fetchone()  # doctest: +SKIP
(3000,)
"""

from .config import Account, Dataset, MirrorConfig, load_config, parse_config
from .duck import DATABASE, connect
from .report import DatasetResult, SyncReport
from .sync import sync

__all__ = ["DATABASE", "Account", "Dataset", "DatasetResult", "MirrorConfig", "SyncReport",
           "connect", "load_config", "parse_config", "sync"]
