"""``sync``: bring every dataset of a mirror file up to date, account by account, at once.

For each account and dataset: the first run (or ``full=True``, or a query changed in the file)
writes a snapshot, later runs refresh it from its ``updatedAt`` watermark; datasets with
``deletes = "sweep"`` then drop the records the server no longer lists, every ``sweep_every``
syncs or when ``sweep=True``. Each dataset publishes atomically, so a failure (or a kill) in
one leaves every other dataset at its previous or new version.

Concurrency. The datasets of one account run at once, each on its own
:class:`~jetti_frames.JettiClient` (own counters); the clients of one account share that
account's rate limiter (limiters are per token and base URL in the process), so together they
keep the allowance busy without exceeding it: one dataset's serial steps (the first page that
plans a read, the id-only reads of a refresh) overlap another's pages. Accounts run at once too,
each within its own allowance.

Examples
--------
>>> report = sync("jetti.toml")                  # doctest: +SKIP
>>> print(report)                                # doctest: +SKIP
dataset         action   rows  added  changed  deleted  requests  429s  seconds  status
purchases       refresh  3000     10       30        5    41 (31)     0    21.30  ok
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import pandas as pd

from ..client import JettiClient, open_client
from ..errors import JettiConfigError, JettiError, SnapshotError
from ..snapshot import read_snapshot, refresh_snapshot, snapshot, snapshot_info
from ..snapshot.api import DEFAULT_OVERLAP, _and_updated_since, _query, _window_start
from ..snapshot.info import SnapshotInfo
from ..snapshot.sweep import sweep_snapshot
from . import duck
from .config import DEFAULT_FILE, Account, Dataset, MirrorConfig, load_config
from .report import DatasetResult, SyncReport

__all__ = ["sync"]

Echo = Callable[[str], Any]


def sync(path: str | os.PathLike[str] = DEFAULT_FILE, *, full: bool = False,
         only: str | Sequence[str] | None = None, sweep: bool | None = None,
         dry_run: bool = False, progress: bool | Echo = True, parallel: int | None = None,
         environ: Mapping[str, str] | None = None,
         storage_options: Mapping[str, Any] | None = None) -> SyncReport:
    """Sync a mirror file: snapshot or refresh each dataset, sweep deletions, update DuckDB.

    Parameters
    ----------
    path
        The mirror file (default ``jetti.toml``); checked whole before any request.
    full
        Re-pull every dataset instead of refreshing it (this also finds every deletion).
    only
        A dataset name, or several: sync only those.
    sweep
        ``True``: sweep every ``deletes = "sweep"`` dataset now; ``False``: sweep none;
        ``None`` (default): those due (every ``sweep_every`` syncs).
    dry_run
        Send nothing: the report holds the plan (action, sweep, requests ``explain`` expects).
    progress
        Print a line per dataset to stderr (or pass a function taking each line).
    parallel
        Datasets of one account run at once (default: all of them).
    environ
        Where the tokens are read (default ``os.environ``).
    storage_options
        For a root that is a URL: fsspec options joined to the file's ``[storage_options]``
        (credentials belong here or in the environment, never in the file).

    Returns
    -------
    SyncReport
        One :class:`DatasetResult` per account and dataset; ``report.ok`` is False when any
        dataset failed (the others are published regardless).

    Raises
    ------
    JettiConfigError
        A bad mirror file or an unknown ``only`` name, before any request.
    """
    config = load_config(path, environ=environ)
    if storage_options:
        if not config.remote:
            raise JettiConfigError("storage_options are for a mirror whose root is a URL")
        config = dataclasses.replace(config, storage_options={**config.storage_options,
                                                              **storage_options})
    env = os.environ if environ is None else environ
    datasets = _select(config, only)
    echo = _echo(progress)
    since_sweep = duck.runs_since_sweep(config)
    jobs = [(a, d) for a in config.accounts for d in datasets]
    started, began = _now_iso(), time.monotonic()
    plans = {(a.name, d.name): _plan(config, a, d, full=full, sweep=sweep,
                                     since_sweep=since_sweep.get((a.name, d.name), 0))
             for a, d in jobs}
    if dry_run:
        results = [_expect(config, a, d, plans[a.name, d.name], env) for a, d in jobs]
        return SyncReport(started, results, round(time.monotonic() - began, 3), dry_run=True)

    def run_account(account: Account) -> list[DatasetResult]:
        width = parallel or len(datasets)
        with ThreadPoolExecutor(max_workers=max(1, width),
                                thread_name_prefix=f"jetti-sync-{account.name}") as pool:
            futures = [pool.submit(_run_one, config, account, d, plans[account.name, d.name],
                                   env, echo) for d in datasets]
            return [f.result() for f in futures]

    with ThreadPoolExecutor(max_workers=len(config.accounts),
                            thread_name_prefix="jetti-sync") as accounts:
        per_account = list(accounts.map(run_account, config.accounts))
    results = [r for rs in per_account for r in rs]
    report = SyncReport(started, results, round(time.monotonic() - began, 3))
    try:
        duck.record(config, uuid.uuid4().hex[:12], started, results)
    except (duck.DatabaseError, OSError) as exc:  # e.g. another process holds jetti.duckdb
        report.database_error = " ".join(str(exc).split())[:300] + (
            " (close other connections to it and sync again)")
    return report


def _select(config: MirrorConfig, only: str | Sequence[str] | None) -> list[Dataset]:
    if only is None:
        return list(config.datasets)
    names = [only] if isinstance(only, str) else list(only)
    known = {d.name for d in config.datasets}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise JettiConfigError(f"no dataset {', '.join(map(repr, unknown))} in "
                               f"{config.path.name}; it has {', '.join(sorted(known))}")
    return [d for d in config.datasets if d.name in names]


def _echo(progress: bool | Echo) -> Echo:
    if callable(progress):
        return progress
    if progress:
        return lambda line: print(line, file=sys.stderr, flush=True)
    return lambda line: None


# --------------------------------------------------------------------------------------------
# one dataset
# --------------------------------------------------------------------------------------------


class _Plan:
    """What a dataset's sync will do: its action, whether it sweeps, the snapshot there now."""

    def __init__(self, action: str, sweep: bool, info: SnapshotInfo | None) -> None:
        self.action, self.sweep, self.info = action, sweep, info


def _plan(config: MirrorConfig, account: Account, dataset: Dataset, *, full: bool,
          sweep: bool | None, since_sweep: int) -> _Plan:
    info = _current(config, account, dataset)
    fresh = (full or info is None or info.watermark is None
             or not _same_query(info, dataset))
    action = "snapshot" if fresh else "refresh"
    sweeps = dataset.deletes == "sweep" and not fresh and (
        sweep if sweep is not None else since_sweep + 1 >= dataset.sweep_every)
    return _Plan(action, sweeps, info)


def _current(config: MirrorConfig, account: Account, dataset: Dataset) -> SnapshotInfo | None:
    """The published snapshot of a dataset, or None when there is none or it is damaged."""
    try:
        return snapshot_info(config.folder(account, dataset), storage_options=config.options)
    except SnapshotError:
        return None


def _same_query(info: SnapshotInfo, dataset: Dataset) -> bool:
    """Whether the snapshot holds this dataset's query (a changed file means a re-pull)."""
    from ..catalog import CATALOG

    query = dataset.query
    recorded = info.get("query") or {}
    wanted = _query(query["where"], query["attributes"], query["include"], None)
    recorded_partition = info.get("partition_by") or {}
    wanted_partition: tuple[str | None, str | None] = (None, None)
    if isinstance(dataset.partition_by, str):
        wanted_partition = (dataset.partition_by, None)
    elif dataset.partition_by is not None:
        wanted_partition = dataset.partition_by
    return (info.resource == CATALOG.resource(dataset.resource).url
            and all(recorded.get(k) == wanted[k] for k in ("where", "attributes", "include"))
            and (recorded_partition.get("column"), recorded_partition.get("unit"))
            == wanted_partition)


def _client(account: Account, env: Mapping[str, str]) -> AbstractContextManager[JettiClient]:
    """The account's client for one dataset, through the package's one factory (closed after)."""
    return open_client(token=account.token(env) or None, base_url=account.base_url,
                       cache=False, progress=False, **dict(account.options))


def _expect(config: MirrorConfig, account: Account, dataset: Dataset, plan: _Plan,
            env: Mapping[str, str]) -> DatasetResult:
    """A dry run's line: the requests ``explain`` expects (at least) for the dataset."""
    with _client(account, env) as client:
        query = dataset.query
        if plan.action == "refresh" and plan.info is not None and plan.info.watermark:
            since = _window_start(plan.info.watermark, DEFAULT_OVERLAP)
            query["where"] = _and_updated_since(query["where"], since)
        n = client.explain(dataset.resource, **query).min_requests
        if plan.sweep and plan.info is not None:
            n += max(1, -(-plan.info.rows // client.settings.page_size))
    return DatasetResult(account.name, dataset.name, plan.action, ok=True,
                         rows=plan.info.rows if plan.info else None, swept=plan.sweep,
                         expected_requests=n)


def _run_one(config: MirrorConfig, account: Account, dataset: Dataset, plan: _Plan,
             env: Mapping[str, str], echo: Echo) -> DatasetResult:
    """Snapshot or refresh one dataset, then sweep it when due; never raises a JettiError."""
    label = f"{account.name}/{dataset.name}" if config.multi_account else dataset.name
    result = DatasetResult(account.name, dataset.name, plan.action)
    folder = config.folder(account, dataset)
    began = time.monotonic()
    echo(f"{label}: {plan.action}{' + sweep' if plan.sweep else ''} ...")
    opened = ExitStack()
    client = opened.enter_context(_client(account, env))
    where: dict[str, Any] = {"storage_options": config.options,
                             "keep_versions": config.keep_versions}
    try:
        before = _versions(folder, config.options) if plan.info is not None else {}
        if plan.action == "snapshot":
            info = snapshot(dataset.resource, folder, **dataset.query,
                            partition_by=dataset.partition_by, client=client, refresh=True,
                            **where)
            result.swept = True  # a full read knows every deletion
        else:
            info = refresh_snapshot(folder, client=client, **where)
        if plan.sweep:
            start = client.stats.requests
            info = sweep_snapshot(folder, client=client, **where)
            result.swept, result.sweep_requests = True, client.stats.requests - start
        after = _versions(folder, config.options)
        result.added = len(after.keys() - before.keys())
        result.deleted = len(before.keys() - after.keys())
        result.changed = sum(1 for i in after.keys() & before.keys() if after[i] != before[i])
        result.rows, result.ok = info.rows, True
        result.warnings = [str(item) for item in info.drift]
    except JettiError as exc:
        result.error = " ".join(str(exc).split()) or type(exc).__name__
    except OSError as exc:
        result.error = f"{exc.strerror or exc}: {exc.filename or folder}"
    finally:
        result.requests = client.stats.requests
        result.status_429 = client.stats.status_429
        result.seconds = round(time.monotonic() - began, 3)
        opened.close()
    if result.ok:
        echo(f"{label}: {result.rows:,} rows (+{result.added} ~{result.changed} "
             f"-{result.deleted}), {result.requests} requests, {result.seconds:.1f} s")
    else:
        echo(f"{label}: FAILED: {result.error}")
    return result


def _versions(folder: str | os.PathLike[str],
              storage_options: Mapping[str, Any] | None = None) -> dict[int, Any]:
    """``id -> updatedAt`` of a published snapshot (empty without one)."""
    try:
        info = snapshot_info(folder, storage_options=storage_options)
        columns = [c for c in ("id", "updatedAt") if c in info.columns]
        if "id" not in columns:
            return {}
        frame = read_snapshot(folder, columns=columns, storage_options=storage_options)
    except SnapshotError:
        return {}
    stamps = frame["updatedAt"] if "updatedAt" in frame else pd.Series(None, index=frame.index)
    return {int(i): (None if pd.isna(s) else pd.Timestamp(s).value)
            for i, s in zip(frame["id"], stamps, strict=True) if not pd.isna(i)}


def _now_iso() -> str:
    """Now, to the microsecond: two syncs in one second still sort in the order they ran."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
