"""Scenario ``scale``: reading an aggregate of a large purchases mirror with pandas, DuckDB and
Dask distributed.

A mirror of purchases (partitioned by month) is synced from a sandbox with the rate limit off,
then one aggregate (total and count per provider) is read three ways, each in a process of its
own: ``read_snapshot`` + pandas ``groupby``, DuckDB through :func:`jetti_frames.connect`, and
Dask on a ``LocalCluster`` (two worker processes) over the current version's folder. Reported:
seconds and peak memory (resident, the reader's process and its children: Dask's workers).

The full run uses 1,000,000 purchases, ``--quick`` 20,000; ``BENCH_SCALE_ROWS`` sets another
size (generating and pulling 1M rows through HTTP takes a while on a small machine).

Run alone::

    python -m benchmarks --only scale [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Scale, fmt, markdown_table

FULL_ROWS, QUICK_ROWS = 1_000_000, 20_000
PAGE = 1000
QUERY = ("SELECT dropshipProviderId, sum(total) AS total, count(*) AS n FROM purchases "
         "GROUP BY 1")

READERS = {
    "pandas (read_snapshot)": """
from jetti_frames import read_snapshot
df = read_snapshot(root + "/purchases", columns=["dropshipProviderId", "total"])
out = df.groupby("dropshipProviderId", dropna=False)["total"].agg(["sum", "count"])
rows = int(out["count"].sum())
""",
    "DuckDB (connect)": """
from jetti_frames import connect
con = connect(root)
rows = int(sum(r[2] for r in con.execute(QUERY).fetchall()))
""",
    "Dask distributed (LocalCluster, 2 workers)": """
import dask.dataframe as dd
from dask.distributed import Client, LocalCluster
from jetti_frames import snapshot_info
path = snapshot_info(root + "/purchases").data_path
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                  dashboard_address=None) as cluster, Client(cluster):
    df = dd.read_parquet(path, columns=["dropshipProviderId", "total"])
    out = df.groupby("dropshipProviderId", dropna=False)["total"].agg(["sum", "count"])
    rows = int(out.compute()["count"].sum())
""",
}

HARNESS = """
import json, sys, threading, time
import psutil
root, QUERY, code = sys.argv[1], sys.argv[2], sys.argv[3]
me, peak, done = psutil.Process(), [0], threading.Event()

def sample():
    while not done.is_set():
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)
        time.sleep(0.02)

threading.Thread(target=sample, daemon=True).start()
began = time.perf_counter()
scope = {"root": root, "QUERY": QUERY}
exec(code, scope)
seconds = time.perf_counter() - began
done.set()
print(json.dumps({"seconds": seconds, "peak_mb": peak[0] / 2**20, "rows": scope["rows"]}))
"""


def rows_for(scale: Scale) -> int:
    if os.environ.get("BENCH_SCALE_ROWS"):
        return int(os.environ["BENCH_SCALE_ROWS"])
    return QUICK_ROWS if scale.name == "quick" else FULL_ROWS


def run(scale: Scale) -> dict[str, Any]:
    from jetti_frames import sync
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    rows = rows_for(scale)
    out: dict[str, Any] = {"purchases": rows}
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        with Sandbox(purchases=rows, rate="off", max_limit=PAGE) as sb:
            out["generate_seconds"] = round(time.perf_counter() - began, 1)
            file = Path(tmp) / "jetti.toml"
            file.write_text(f'root = "data"\n[accounts.main]\ntoken_env = "BENCH_TOKEN"\n'
                            f'base_url = "{sb.base_url}"\npage_size = {PAGE}\n'
                            f'get_rate = 1000\n[datasets.purchases]\nresource = "purchases"\n'
                            f'partition_by = ["dateOrdered", "month"]\n', encoding="utf-8")
            began = time.perf_counter()
            report = sync(file, environ={"BENCH_TOKEN": SANDBOX_TOKEN}, progress=False)
            out["sync_seconds"] = round(time.perf_counter() - began, 1)
            out["sync_ok"] = report.ok
        root = str(Path(tmp) / "data")
        size = sum(f.stat().st_size for f in (Path(root) / "purchases").rglob("*.parquet"))
        out["parquet_mb"] = round(size / 2**20, 1)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        for label, code in READERS.items():
            done = subprocess.run([sys.executable, "-c", HARNESS, root, QUERY, code], env=env,
                                  capture_output=True, text=True, timeout=3600, check=False)
            if done.returncode:
                out[label] = {"error": done.stderr.strip().splitlines()[-1:]}
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            out[label] = {"seconds": round(result["seconds"], 2),
                          "peak_mb": round(result["peak_mb"]), "ok": result["rows"] == rows}
    return out


def table(result: dict[str, Any]) -> str:
    rows = [[label, fmt(r.get("seconds"), 2), fmt(r.get("peak_mb"), 0),
             "yes" if r.get("ok") else r.get("error", "no")]
            for label, r in result.items() if isinstance(r, dict)]
    return (f"{result['purchases']:,} purchases ({result['parquet_mb']} MB of parquet, "
            f"partitioned by month; synced in {result['sync_seconds']} s), aggregate per "
            f"provider\n\n" + markdown_table(["reader", "seconds", "peak MB", "all rows"],
                                             rows, align="-rr-"))
