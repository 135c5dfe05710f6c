"""jetti-frames: typed pandas DataFrames and parquet datasets from the Jetti (Onport) API.

Examples
--------
>>> from jetti_frames import read_jetti                                  # doctest: +SKIP
>>> read_jetti("purchases", where={"purchaseType": "dropship"},        # doctest: +SKIP
...            include=["PurchaseStatus", "DropshipProvider"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__  # first: submodules record it

if TYPE_CHECKING:  # type checkers see the function; at run time the module is callable
    from .snapshot.api import snapshot as snapshot
else:
    from . import snapshot  # the module, callable as snapshot(...)
from .catalog import CATALOG
from .catalog_frames import describe, resources
from .client import Explanation, JettiClient, ReadStats, get_jetti, read_jetti
from .drift import JettiDriftWarning
from .errors import (
    JettiAuthError,
    JettiBadRequestError,
    JettiCacheError,
    JettiConfigError,
    JettiConnectionError,
    JettiDataError,
    JettiError,
    JettiHTTPError,
    JettiNotFoundError,
    JettiOrderError,
    JettiQueryError,
    JettiRateLimitError,
    JettiServerError,
    JettiTimeoutError,
    SnapshotError,
)
from .mirror import SyncReport, connect, sync
from .settings import SANDBOX_TOKEN, Settings
from .snapshot import SnapshotInfo, read_snapshot, refresh_snapshot, snapshot_info
from .transport import CacheInfo

__all__ = [
    "CATALOG",
    "SANDBOX_TOKEN",
    "CacheInfo",
    "Explanation",
    "JettiAuthError",
    "JettiBadRequestError",
    "JettiCacheError",
    "JettiClient",
    "JettiConfigError",
    "JettiConnectionError",
    "JettiDataError",
    "JettiDriftWarning",
    "JettiError",
    "JettiHTTPError",
    "JettiNotFoundError",
    "JettiOrderError",
    "JettiQueryError",
    "JettiRateLimitError",
    "JettiServerError",
    "JettiTimeoutError",
    "ReadStats",
    "Settings",
    "SnapshotError",
    "SnapshotInfo",
    "SyncReport",
    "__version__",
    "connect",
    "describe",
    "get_jetti",
    "query_form",
    "read_jetti",
    "read_snapshot",
    "refresh_snapshot",
    "resources",
    "snapshot",
    "snapshot_info",
    "sync",
]


def query_form(client: JettiClient | None = None, **options: Any) -> Any:
    """An ipywidgets query form; see :func:`jetti_frames.widgets.query_form`.

    ipywidgets is imported only when a form is made.
    """
    from .widgets import query_form as make_form

    return make_form(client, **options)
