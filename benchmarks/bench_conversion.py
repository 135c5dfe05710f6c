"""Scenario 5: records with two includes -> typed DataFrame, ours against json_normalize.

The records are pulled once from a sandbox (rate limit off) with
``include=["PurchaseStatus", "DropshipProvider"]`` and kept in
``benchmarks/results/records-<n>.json``.  Each method then runs in a fresh process that loads
the file, converts a small slice to warm up, and converts all records ``repeats`` times:

* ours: :func:`jetti_frames.flatten.frame_from_records` with the spec the client builds
  (``build_query("purchases", include=[...]).spec``);
* baseline: ``pd.json_normalize(records, sep="_")``, the same columns, then ``astype`` to the
  same dtypes (``pd.to_datetime(..., utc=True, format="ISO8601")`` for datetimes).

Peak memory is the process's peak RSS during the first full conversion minus its RSS just
before it (the peak is reset through ``/proc/self/clear_refs``; elsewhere a 2 ms sampler).

Run alone::

    python benchmarks/bench_conversion.py [--quick] [--records N]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, Scale, fmt, markdown_table, ratio, run_child

INCLUDE = ["PurchaseStatus", "DropshipProvider"]
METHODS = ("ours", "json_normalize")
#: Records compared value by value in the check.
CHECK_RECORDS = 20_000


def records_file(n: int, seed: int = 0) -> Path:
    """``results/records-<n>.json``: ``n`` purchases with their includes, pulled once."""
    path = RESULTS / f"records-{n}-seed{seed}.json"
    if path.exists():
        return path
    from jetti_frames import JettiClient
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    path.parent.mkdir(parents=True, exist_ok=True)
    with Sandbox(seed=seed, purchases=n, rate="off", max_limit=1000) as sb:
        client = JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                             page_size=1000, get_rate=1000.0)
        records = [r for page in client.iter_pages("purchases", include=INCLUDE) for r in page]
        client.close()
    records.sort(key=lambda r: r["id"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, separators=(",", ":")))
    tmp.replace(path)
    return path


# -- the two conversions ----------------------------------------------------------------------


def converters() -> dict[str, Callable[[list[dict[str, Any]]], Any]]:
    """``{"ours": ..., "json_normalize": ...}``: records -> typed DataFrame."""
    import pandas as pd

    from jetti_frames.flatten import frame_from_records
    from jetti_frames.query import build_query
    from jetti_frames.schema import column_dtypes

    spec = build_query("purchases", include=INCLUDE).spec
    dtypes = column_dtypes(spec)

    def ours(records: list[dict[str, Any]]) -> Any:
        return frame_from_records(records, spec)

    def baseline(records: list[dict[str, Any]]) -> Any:
        df = pd.json_normalize(records, sep="_").reindex(columns=list(dtypes))
        converted = {}
        for name, dtype in dtypes.items():
            if str(dtype).startswith("datetime"):
                converted[name] = pd.to_datetime(df[name], utc=True,
                                                 format="ISO8601").dt.as_unit("us")
            else:
                converted[name] = df[name].astype(dtype)
        return pd.DataFrame(converted)

    return {"ours": ours, "json_normalize": baseline}


class PeakRSS:
    """Peak resident memory while a block runs, in MiB above the RSS at its start."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = 0
        self.before = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def _hwm(self) -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.before = self.process.memory_info().rss
        self.peak = self.before
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM)
            self.exact = True
        except OSError:
            self.exact = False
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        hwm = self._hwm() if self.exact else None
        self.peak = max(self.peak, hwm or 0, self.process.memory_info().rss)

    @property
    def delta_mib(self) -> float:
        return (self.peak - self.before) / 2**20


def child(method: str, path: Path, repeats: int) -> dict[str, Any]:
    """In a fresh process: time and peak memory of one method over every record."""
    convert = converters()[method]
    records = json.loads(path.read_text())
    convert(records[:1000])  # warm up: imports, caches
    with PeakRSS() as mem:
        began = time.perf_counter()
        frame = convert(records)
        first = time.perf_counter() - began
    times = [first]
    shape = frame.shape
    frame_mib = frame.memory_usage(deep=True).sum() / 2**20
    del frame
    for _ in range(repeats - 1):
        gc.collect()
        began = time.perf_counter()
        convert(records)
        times.append(time.perf_counter() - began)
    best = min(times)
    checked = check(records[:CHECK_RECORDS]) if method == "ours" else None
    return {"check": checked, "method": method, "records": len(records), "rows": shape[0],
            "columns": shape[1],
            "seconds": round(best, 4), "all_seconds": [round(t, 4) for t in times],
            "rows_per_second": round(len(records) / best), "peak_mib": round(mem.delta_mib, 1),
            "rss_before_mib": round(mem.before / 2**20, 1), "peak_exact": mem.exact,
            "frame_mib": round(frame_mib, 1)}


def check(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Do both methods give the same columns, dtypes and values?"""
    import pandas as pd

    conv = converters()
    ours, theirs = conv["ours"](records), conv["json_normalize"](records)
    common = [c for c in ours.columns if c in theirs.columns]
    out: dict[str, Any] = {
        "records": len(records), "common_columns": len(common),
        "only_ours": [c for c in ours.columns if c not in theirs.columns],  # undocumented fields
        "only_baseline": [c for c in theirs.columns if c not in ours.columns],
        "same_dtypes": bool((ours[common].dtypes == theirs[common].dtypes).all())}
    json_cols = [c for c in common if ours[c].dtype == object]
    try:
        pd.testing.assert_frame_equal(ours[common].drop(columns=json_cols),
                                      theirs[common].drop(columns=json_cols))
        out["same_values"] = True
    except AssertionError as exc:
        out["same_values"] = False
        out["difference"] = str(exc)[:500]
    return out


def run(scale: Scale) -> dict[str, Any]:
    path = records_file(scale.conversion_records)
    script = str(Path(__file__).resolve())
    out: dict[str, Any] = {"records": scale.conversion_records, "include": INCLUDE,
                           "file_mib": round(path.stat().st_size / 2**20, 1)}
    for method in METHODS:
        out[method] = run_child([script, "--child", method, str(path),
                                 "--repeats", str(scale.conversion_repeats)])
    out["check"] = out["ours"].pop("check")
    out["json_normalize"].pop("check")
    out["speedup"] = ratio(out["json_normalize"]["seconds"], out["ours"]["seconds"])
    out["memory_ratio"] = ratio(out["json_normalize"]["peak_mib"], out["ours"]["peak_mib"])
    return out


def table(result: dict[str, Any]) -> str:
    rows = []
    for method, label in (("ours", "jetti-frames `frame_from_records`"),
                          ("json_normalize", "`pd.json_normalize` + `astype`")):
        r = result[method]
        rows.append([label, f"{r['rows']:,} x {r['columns']}", fmt(r["seconds"], 2),
                     f"{r['rows_per_second']:,}", fmt(r["peak_mib"], 0), fmt(r["frame_mib"], 0)])
    text = markdown_table(["conversion", "frame", "best s", "records/s", "peak extra RSS MiB",
                           "frame MiB"], rows, align="-rrrrr")
    c = result["check"]
    same = (f"the {c['common_columns']} catalogue columns have the same dtypes and values"
            if c["same_dtypes"] and c["same_values"] and not c["only_baseline"]
            else f"DIFFERENT: {c}")
    if c["only_ours"]:
        same += (f"; ours also keeps {len(c['only_ours'])} fields the OpenAPI document does "
                 f"not list ({', '.join(f'`{n}`' for n in c['only_ours'])}), the baseline "
                 f"drops them")
    return (text + f"\n\n{result['records']:,} purchases with two belongs-to includes "
            f"({result['file_mib']:,.0f} MiB of JSON): ours is {result['speedup']:.1f}x faster "
            f"and peaks at {1 / result['memory_ratio']:.2f}x the memory of the baseline; "
            f"checked on the first {c['records']:,} records: {same}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("file", nargs="?", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.file, args.repeats)))
        return 0
    scale = Scale.quick() if args.quick else Scale.full()
    if args.records:
        from dataclasses import replace

        scale = replace(scale, conversion_records=args.records)
    print(table(run(scale)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
