"""What a sync did, dataset by dataset: :class:`DatasetResult` and :class:`SyncReport`.

Examples
--------
>>> r = DatasetResult("default", "purchases", "refresh", ok=True, rows=300, added=10,
...                   changed=30, deleted=5, requests=9, status_429=0, seconds=1.25,
...                   swept=True, sweep_requests=3)
>>> print(SyncReport("2024-05-04T09:00:00+00:00", [r], 1.3).table())
dataset    action   rows  added  changed  deleted  requests  429s  seconds  status
purchases  refresh   300     10       30        5     9 (3)     0     1.25  ok
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from ..errors import JettiConfigError

__all__ = ["DatasetResult", "SyncReport"]


@dataclass
class DatasetResult:
    """One dataset of one account in one sync (or its plan, for a dry run).

    Attributes
    ----------
    account, dataset
        Which one.
    action
        ``"snapshot"`` (first run, a changed query or ``--full``) or ``"refresh"``.
    ok
        Whether it was published; ``error`` says why not.
    rows, added, changed, deleted
        Rows now, and records added, updated (a new ``updatedAt``) and deleted since the
        previous version (deleted: swept out, or gone from a full re-pull).
    requests, status_429
        Network requests the dataset sent (the sweep's included) and 429 answers met.
    swept, sweep_requests
        Whether deleted records were looked for (a sweep or a full read), and the sweep's cost.
    expected_requests
        For a dry run: the requests ``explain`` expects at least.
    warnings
        What the snapshot's manifest reports (e.g. schema drift).
    """

    account: str
    dataset: str
    action: str
    ok: bool = False
    rows: int | None = None
    added: int | None = None
    changed: int | None = None
    deleted: int | None = None
    requests: int | None = None
    status_429: int | None = None
    seconds: float | None = None
    swept: bool = False
    sweep_requests: int | None = None
    expected_requests: int | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "ok" if self.ok else f"FAILED: {self.error}"


@dataclass
class SyncReport:
    """The results of one :func:`~jetti_frames.mirror.sync` (or its plan, ``dry_run=True``).

    ``report.ok`` is True when every dataset was published; ``report.frame()`` is one row per
    dataset; ``print(report)`` shows the summary table.
    """

    started_at: str
    results: list[DatasetResult]
    seconds: float
    dry_run: bool = False
    database_error: str | None = None  # jetti.duckdb could not be updated

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and self.database_error is None

    @property
    def failed(self) -> list[DatasetResult]:
        return [r for r in self.results if not r.ok]

    def __iter__(self) -> Iterator[DatasetResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def result(self, dataset: str, account: str | None = None) -> DatasetResult:
        """The result of one dataset (of one account when there are several)."""
        for r in self.results:
            if r.dataset == dataset and (account is None or r.account == account):
                return r
        raise JettiConfigError(f"no dataset {dataset!r} in this sync")

    def frame(self) -> pd.DataFrame:
        """One row per dataset with every :class:`DatasetResult` field."""
        return pd.DataFrame([asdict(r) for r in self.results])

    def table(self) -> str:
        """The summary table ``jetti-frames sync`` prints."""
        multi = len({r.account for r in self.results}) > 1
        if self.dry_run:
            head = ["dataset", "action", "sweep", "requests (at least)"]
            rows = [[r.dataset, r.action, "yes" if r.swept else "no",
                     _n(r.expected_requests)] for r in self.results]
        else:
            head = ["dataset", "action", "rows", "added", "changed", "deleted", "requests",
                    "429s", "seconds", "status"]
            rows = [[r.dataset, r.action, _n(r.rows), _n(r.added), _n(r.changed),
                     _n(r.deleted), _requests(r), _n(r.status_429),
                     "-" if r.seconds is None else f"{r.seconds:.2f}", r.status]
                    for r in self.results]
        if multi:
            head = ["account", *head]
            rows = [[r.account, *row] for r, row in zip(self.results, rows, strict=True)]
        return _align(head, rows)

    def __str__(self) -> str:
        lines = [self.table()]
        if not self.dry_run:
            total = sum(r.requests or 0 for r in self.results)
            lines.append(f"{len(self.results) - len(self.failed)} of {len(self.results)} "
                         f"datasets synced, {total} requests, {self.seconds:.1f} s")
        lines += [f"warning: {r.account}/{r.dataset}: {w}" for r in self.results
                  for w in r.warnings]
        if self.database_error:
            lines.append(f"FAILED to update jetti.duckdb (the snapshots are published): "
                         f"{self.database_error}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _requests(r: DatasetResult) -> str:
    """Requests, with the sweep's share in brackets."""
    if r.requests is None:
        return "-"
    return f"{r.requests:,} ({r.sweep_requests:,})" if r.sweep_requests else f"{r.requests:,}"


def _align(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Text columns: names left-aligned, numbers right-aligned, the last column as is."""
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    numeric = [i > 0 and all(_numberish(row[i]) for row in rows) and i < len(head) - 1
               for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if numeric[i] else c.ljust(w)
               for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        out[-1] = cells[-1]
        return "  ".join(out).rstrip()

    return "\n".join([line(head), *(line(r) for r in rows)])


def _numberish(text: str) -> bool:
    return text == "-" or text.replace(",", "").replace(".", "").split(" ")[0].isdigit()
