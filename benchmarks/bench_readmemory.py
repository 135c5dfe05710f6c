"""Peak memory of ``read()``: every column of 60k and 200k purchases into one frame.

For each size a sandbox (rate limit off) serves the synthetic account and a fresh Python
process reads ``client.read("purchases")`` (108 columns, pages of 100) with the HTTP cache off.
It reports the frame's memory (``memory_usage(deep=True)``) and the peak RSS growth of the read
(the peak RSS after it, ``VmHWM`` reset before the read, minus the RSS before it).
Target: growth <= 3 x frame + 150 MiB.

``records`` is the whole-records path for comparison: every record held as JSON until the end,
then one ``frame_from_records`` (what a read did before pages were converted as they came).

Usage::

    python benchmarks/bench_readmemory.py [--sizes 60000 200000] [--records]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Scale, fmt, markdown_table, run_child

SIZES = {"full": (60_000, 200_000), "quick": (6_000,)}
MODES = ("read", "records")
MIB = 2**20


def target_mib(frame_mib: float) -> float:
    """The allowed peak RSS growth for a frame of ``frame_mib``."""
    return 3 * frame_mib + 150


def _reset_peak() -> None:
    """Forget the peak RSS so far: a child started by a large process inherits its high-water
    mark (``ru_maxrss`` survives fork and exec on Linux)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss() -> int:
    """Peak RSS in bytes since :func:`_reset_peak` (``VmHWM``), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(mode: str, base_url: str) -> dict[str, Any]:
    """One read in this (fresh) process: rows, frame MiB, peak RSS growth, seconds."""
    import psutil

    from jetti_frames import JettiClient
    from jetti_frames._collect import sort_records
    from jetti_frames.flatten import frame_from_records
    from jetti_frames.query import build_query
    from jetti_frames.settings import SANDBOX_TOKEN

    client = JettiClient(SANDBOX_TOKEN, base_url=base_url, cache=False, progress=False,
                         get_rate=1000.0)
    client.read("purchase-statuses")  # warm every import and the connection
    _reset_peak()
    before = psutil.Process().memory_info().rss
    began = time.perf_counter()
    if mode == "read":
        df = client.read("purchases")
    else:
        records = sort_records(list(client.iter_records("purchases")), None)
        df = frame_from_records(records, build_query("purchases").spec)
        del records
    seconds = time.perf_counter() - began
    peak = _peak_rss()
    return {"rows": len(df), "columns": df.shape[1], "seconds": round(seconds, 2),
            "frame_mib": round(int(df.memory_usage(deep=True).sum()) / MIB, 1),
            "growth_mib": round((peak - before) / MIB, 1),
            "requests": client.last_stats.requests}


def run(scale: Scale, sizes: tuple[int, ...] | None = None,
        modes: tuple[str, ...] = ("read",)) -> dict[str, Any]:
    from jetti_frames.sandbox import Sandbox

    script = str(Path(__file__).resolve())
    runs = []
    for size in sizes or SIZES.get(scale.name, SIZES["full"]):
        with Sandbox(purchases=size, rate="off") as sandbox:
            for mode in modes:
                r = run_child([script, "--child", mode, sandbox.base_url])
                r.update(size=size, mode=mode, target_mib=round(target_mib(r["frame_mib"]), 1))
                r["met"] = r["growth_mib"] <= r["target_mib"]
                runs.append(r)
                print(f"readmemory {mode} {size}: {r}", file=sys.stderr, flush=True)
    return {"runs": runs, "met": all(r["met"] for r in runs if r["mode"] == "read")}


def table(result: dict[str, Any]) -> str:
    rows = [[f"{r['size']:,}", "`read()`" if r["mode"] == "read" else "whole records",
             f"{r['rows']:,} x {r['columns']}", fmt(r["frame_mib"], 0), fmt(r["growth_mib"], 0),
             f"<= {r['target_mib']:,.0f}", "yes" if r["met"] else "**no**",
             fmt(r["seconds"], 1)]
            for r in result["runs"]]
    return markdown_table(["purchases", "path", "frame", "frame MiB", "peak RSS growth MiB",
                           "target (3 x frame + 150)", "met", "seconds"], rows,
                          align="r-rrrr-r")


def readmemory_scenario() -> tuple[Any, ...]:
    """The fields of this scenario's ``Scenario`` in :mod:`benchmarks.run`."""
    return ("readmemory", "read() memory: 60k and 200k purchases x 108 columns", run, table,
            ("psutil",))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", action="store_true",
                        help="also measure the whole-records path")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    scale = Scale.quick() if args.quick else Scale.full()
    sizes = tuple(args.sizes) if args.sizes else None
    print(table(run(scale, sizes, MODES if args.records else ("read",))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
