"""Scenario ``mirror``: how much of the allowance a sync of three datasets uses.

A mirror file of purchases (with status and provider), purchase items and providers is synced
from scratch against a sandbox at Jetti's allowance (2 GET/s, bucket of 2) and 300 ms latency:
the datasets one after another (``parallel=1``), at once on the account's shared limiter (the
default), and two accounts at once (two sandboxes). Reported: requests, 429s, seconds and
requests per second against the allowance (2/s per account: a use of 100% is the target).

Run alone::

    python -m benchmarks --only mirror [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PAGE_SIZE, Scale, fmt, markdown_table

LATENCY_MS = 300
RATE = 2.0
DATASETS = """
[datasets.purchases]
resource = "purchases"
include = ["PurchaseStatus", "DropshipProvider"]

[datasets.purchase_items]
resource = "purchase-items"
attributes = ["id", "purchaseId", "quantity", "price", "updatedAt"]

[datasets.providers]
resource = "dropship-providers"
"""


def _file(folder: Path, accounts: dict[str, str]) -> Path:
    text = ['root = "data"']
    for name, base_url in accounts.items():
        text.append(f'[accounts.{name}]\ntoken_env = "BENCH_TOKEN"\nbase_url = "{base_url}"\n'
                    f"page_size = {PAGE_SIZE}")
    path = folder / "jetti.toml"
    path.write_text("\n".join(text) + DATASETS, encoding="utf-8")
    return path


def run(scale: Scale) -> dict[str, Any]:
    from jetti_frames import sync
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    env = {"BENCH_TOKEN": SANDBOX_TOKEN}
    out: dict[str, Any] = {"purchases": scale.purchases, "latency_ms": LATENCY_MS}
    options = {"purchases": scale.purchases, "latency_ms": LATENCY_MS, "max_limit": PAGE_SIZE}
    with Sandbox(seed=1, **options) as a, Sandbox(seed=2, **options) as b:
        cases = [("datasets one after another", {"one": a.base_url}, 1),
                 ("datasets at once (default)", {"one": a.base_url}, None),
                 ("two accounts at once", {"one": a.base_url, "two": b.base_url}, None)]
        for label, accounts, parallel in cases:
            with tempfile.TemporaryDirectory() as tmp:
                a.reset_counters()
                b.reset_counters()
                began = time.perf_counter()
                report = sync(_file(Path(tmp), accounts), environ=env, progress=False,
                              parallel=parallel)
                seconds = time.perf_counter() - began
                requests = a.counters()["requests"] + b.counters()["requests"]
                out[label] = {
                    "ok": report.ok, "seconds": round(seconds, 3), "requests": requests,
                    "status_429": a.counters()["status_429"] + b.counters()["status_429"],
                    "per_second": round(requests / seconds, 3),
                    "use": round(requests / seconds / (RATE * len(accounts)), 3)}
    return out


def table(result: dict[str, Any]) -> str:
    rows = [[label, r["requests"], r["status_429"], fmt(r["seconds"], 1),
             fmt(r["per_second"], 2), f"{r['use']:.0%}", "100% of 2/s per account"]
            for label, r in result.items() if isinstance(r, dict)]
    return (f"{result['purchases']} purchases with their items and providers, "
            f"{result['latency_ms']} ms latency\n\n"
            + markdown_table(["sync", "requests", "429s", "seconds", "requests/s",
                              "use of allowance", "target"], rows, align="-rrrrr-"))
