"""Peak memory of a streaming snapshot: 20k vs 200k purchases.

For each size a sandbox (rate limit off) serves the synthetic account, and a fresh Python
process writes ``snapshot("purchases", ..., include=["PurchaseStatus", "DropshipProvider"])``
and reports its peak RSS (``resource.getrusage``). A streaming writer keeps one page and one
row-group buffer in memory whatever the size, so the ratio should stay close to 1 (<= 1.5).
``--with-read`` adds the peak of ``read_jetti`` (the whole frame in memory) for comparison.

Usage::

    python benchmarks/bench_snapshot_memory.py [--sizes 20000 200000] [--with-read]

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jetti_frames.sandbox import Sandbox  # noqa: E402
from jetti_frames.settings import SANDBOX_TOKEN  # noqa: E402

PAGE = 250
INCLUDE = ["PurchaseStatus", "DropshipProvider"]

# A child inherits the high-water mark of the process that starts it (ru_maxrss survives fork
# and exec on Linux): reset it first, then read VmHWM.
CHILD = textwrap.dedent("""
    import contextlib, json, resource, sys, time
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")
    from jetti_frames.client import JettiClient
    mode, base_url, token, out, page, include = sys.argv[1:7]
    include = json.loads(include)
    client = JettiClient(token, base_url=base_url, cache=False, progress=False,
                         page_size=int(page), get_rate=1000.0)  # the sandbox's limit is off
    began = time.perf_counter()
    if mode == "snapshot":
        from jetti_frames.snapshot import snapshot
        rows = snapshot("purchases", out, include=include, client=client)["rows"]
    else:
        rows = len(client.read("purchases", include=include))
    seconds = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        peak_kib = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mib": peak_kib / 1024}))
""")


def measure(mode: str, base_url: str, out: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", CHILD, mode, base_url, SANDBOX_TOKEN,
                             str(out), str(PAGE), json.dumps(INCLUDE)],
                            env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--with-read", action="store_true", help="also measure read_jetti")
    args = parser.parse_args(argv)
    rows: list[tuple[int, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            with Sandbox(purchases=size, rate="off", max_limit=PAGE) as sandbox:
                modes = ["snapshot", "read"] if args.with_read else ["snapshot"]
                for mode in modes:
                    result = measure(mode, sandbox.base_url, Path(tmp) / f"s{size}")
                    rows.append((size, mode, result))
                    print(f"{mode} {size}: {result}", file=sys.stderr)
    base = {mode: r["peak_mib"] for size, mode, r in rows if size == args.sizes[0]}
    print("| purchases | operation | rows | seconds | peak RSS (MiB) | ratio to smallest |")
    print("|---:|---|---:|---:|---:|---:|")
    for size, mode, r in rows:
        print(f"| {size:,} | {mode} | {int(r['rows']):,} | {r['seconds']:.1f} | "
              f"{r['peak_mib']:.0f} | {r['peak_mib'] / base[mode]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
