"""Run the benchmark suite: print markdown tables, write JSON under ``benchmarks/results/``.

Usage::

    pip install -e '.[bench]'
    python -m benchmarks                      # the full run (about 30 minutes on 2 cores)
    python -m benchmarks --quick              # a smoke run at small sizes (about 1 minute)
    python -m benchmarks --only cache,refresh # some scenarios (names below)
    python -m benchmarks --render benchmarks/results/latest.json   # tables of an earlier run

Scenarios, all against the embedded sandbox (a real HTTP server on 127.0.0.1):

===============  ==============================================================================
``utilisation``  pull 60 pages at Jetti's allowance (2 GET/s, bucket of 2) at 0/300/800/1500 ms
                 latency: ours vs a plain loop, the documented Bottleneck settings, Jetti's CLI
                 settings and the ``ratelimit`` decorator (:mod:`benchmarks.bench_pull`)
``dlt``          the same pull with dlt's ``rest_api`` source into parquet, and its columns
``transport``    the transport alone: 60 GETs per latency through ``Transport.map``
``cache``        the same query again from the HTTP cache (:mod:`benchmarks.bench_cache`)
``refresh``      incremental snapshot refresh vs full re-pull after 1% changed
``conversion``   100k records with two includes -> typed frame vs ``pd.json_normalize``
``memory``       peak RSS of 20k- vs 200k-row streaming snapshots
``readmemory``   peak RSS growth of ``read()`` at 60k and 200k purchases vs 3 x frame + 150 MiB
``partrefresh``  refresh of a month-partitioned snapshot after one change vs unpartitioned
``inlist``       1500 and 3000 ids in ``where``: chunks of 20 vs packed ``$or`` (bench_inlist)
``twoprocs``     two processes of one account pulling at once (:mod:`benchmarks.bench_twoprocs`)
``bounded``      ``limit=`` reads (id order and user orders) and a 30-page pull at 800/1500 ms
``mirror``       a three-dataset mirror sync: datasets one after another, at once, two accounts
``scale``        a large purchases mirror read with pandas, DuckDB and Dask distributed
===============  ==============================================================================

Results: ``benchmarks/results/<UTC time>-<full|quick>.json`` plus ``latest.json`` and
``latest.md`` (git-ignored).  Nothing here is part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    bench_bounded,
    bench_cache,
    bench_conversion,
    bench_inlist,
    bench_mirror,
    bench_partrefresh,
    bench_pull,
    bench_refresh,
    bench_scale,
    bench_twoprocs,
    wrapped,
)
from benchmarks.bench_readmemory import readmemory_scenario
from benchmarks.common import RESULTS, Scale, machine, markdown_table


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Scale], dict[str, Any]]
    table: Callable[[dict[str, Any]], str]
    needs: tuple[str, ...] = ()


SCENARIOS = [
    Scenario("utilisation", "1. Use of the allowance (2 GET/s, bucket of 2)",
             lambda s: bench_pull.run(s, {"utilisation"})["utilisation"],
             bench_pull.utilisation_table),
    Scenario("dlt", "2. dlt `rest_api` into parquet, same pull",
             lambda s: bench_pull.run(s, {"dlt"})["dlt"], bench_pull.dlt_table, ("dlt",)),
    Scenario("transport", "Transport alone (`Transport.map`, distinct GETs)",
             wrapped.run_transport, wrapped.transport_table),
    Scenario("cache", "3. Warm cache: the same query again", bench_cache.run, bench_cache.table),
    Scenario("refresh", "4. Incremental refresh vs full re-pull",
             bench_refresh.run, bench_refresh.table),
    Scenario("conversion", "5. Records -> typed DataFrame (two includes)",
             bench_conversion.run, bench_conversion.table, ("psutil",)),
    Scenario("memory", "6. Streaming snapshot memory", wrapped.run_memory, wrapped.memory_table),
    Scenario(*readmemory_scenario()),
    Scenario("mirror", "Mirror sync: use of the allowance", bench_mirror.run, bench_mirror.table),
    Scenario("partrefresh", "Partitioned refresh after one change",
             bench_partrefresh.run, bench_partrefresh.table),
    Scenario("inlist", "Big `$in` lists", bench_inlist.run, bench_inlist.table),
    Scenario("twoprocs", "Two processes, one account (300 ms)", bench_twoprocs.run,
             bench_twoprocs.table),
    Scenario("bounded", "Bounded reads and a short pull on a slow server", bench_bounded.run,
             bench_bounded.table),
    Scenario("scale", "Reading a large mirror: pandas, DuckDB, Dask distributed",
             bench_scale.run, bench_scale.table, ("psutil", "distributed")),
]
NAMES = [s.name for s in SCENARIOS]


def missing_modules(names: tuple[str, ...]) -> list[str]:
    import importlib.util

    return [n for n in names if importlib.util.find_spec(n) is None]


def run_scenarios(scale: Scale, names: list[str]) -> dict[str, Any]:
    """Every asked scenario's results; the paging ones share one run of their contenders."""
    results: dict[str, Any] = {}
    pull = [n for n in ("utilisation", "dlt") if n in names and not _skip(n, results)]
    if len(pull) == 2:  # both at once: every contender of every latency starts together
        began = time.monotonic()
        both = bench_pull.run(scale, set(pull))
        for name in pull:
            both[name]["elapsed_seconds"] = round(time.monotonic() - began, 1)
            results[name] = both[name]
            print(_section(name, results[name]), flush=True)
    for scenario in SCENARIOS:
        if scenario.name not in names or scenario.name in results:
            continue
        if _skip(scenario.name, results):
            print(_section(scenario.name, results[scenario.name]), flush=True)
            continue
        print(f"... {scenario.name}", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            result = scenario.run(scale)
        except Exception as exc:
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["elapsed_seconds"] = round(time.monotonic() - began, 1)
        results[scenario.name] = result
        print(_section(scenario.name, result), flush=True)
    return results


def _skip(name: str, results: dict[str, Any]) -> bool:
    scenario = next(s for s in SCENARIOS if s.name == name)
    missing = missing_modules(scenario.needs)
    if missing:
        results[name] = {"skipped": f"not installed: {', '.join(missing)} "
                                    f"(pip install -e '.[bench]')"}
    return bool(missing)


def _section(name: str, result: dict[str, Any]) -> str:
    scenario = next(s for s in SCENARIOS if s.name == name)
    if "skipped" in result:
        body = f"Skipped: {result['skipped']}"
    elif "error" in result:
        body = f"Failed: {result['error']}"
    else:
        body = scenario.table(result)
    return f"\n### {scenario.title}\n\n{body}\n"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, what was measured, and whether each was met."""
    out: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool) -> None:
        out.append({"target": target, "measured": measured, "met": met})

    def ok(name: str) -> dict[str, Any] | None:
        r = results.get(name)
        return r if r and "error" not in r and "skipped" not in r else None

    if (u := ok("utilisation")) is not None:
        mine = [r for r in u["runs"] if r["contender"] == "ours"]
        low = min(r["utilisation"] for r in mine)
        throttled = sum(r["status_429"] for r in mine)
        add("utilisation >= 0.95 at every latency, zero 429s",
            f"lowest {low:.3f}, {throttled} 429s", low >= 0.95 and throttled == 0)
        worst = max(r["wall_vs_floor"] for r in mine)
        add("wall time within 5% of the floor (pages / 2 + one latency)",
            f"worst {worst:.3f}x the floor", worst <= 1.05)
    if (c := ok("cache")) is not None:
        add("warm cache >= 50x faster, zero requests",
            f"{c['speedup']:,.0f}x, {c['warm']['requests']} requests",
            c["speedup"] >= 50 and c["warm"]["requests"] == 0)
    if (r := ok("refresh")) is not None:
        add("incremental refresh: fewer requests than a full re-pull, same data",
            f"{r['incremental']['requests']} vs {r['full']['requests']} requests, "
            f"{'same' if r['same_data'] else 'different'} data",
            r["incremental"]["requests"] < r["full"]["requests"] and r["same_data"])
    if (v := ok("conversion")) is not None:
        add("conversion >= 3x json_normalize + astype", f"{v['speedup']:.1f}x",
            v["speedup"] >= 3)
    if (m := ok("memory")) is not None:
        add("memory ratio (largest / smallest snapshot) <= 1.5", f"{m['memory_ratio']:.2f}",
            m["memory_ratio"] <= 1.5)
    if (p := ok("partrefresh")) is not None:
        add("partitioned refresh after one change <= 2x unpartitioned, same data",
            f"{p['ratio']:.2f}x, {p['partitioned']['files_written']} of "
            f"{p['partitioned']['files']} files written", p["met"])
    if (i := ok("inlist")) is not None:
        for size in (s for s in i["sizes"] if s["ids"] == 1500):
            now, before = size["now"], size["before"]
            add("1500 ids in <= 20 requests, exact rows",
                f"{now['requests']} requests (before {before['requests']}), "
                f"{now['seconds']:.1f} s (before {before['seconds']:.1f} s)",
                now["requests"] <= 20 and now["exact"])
    return out


def targets_table(rows: list[dict[str, Any]]) -> str:
    return markdown_table(["target", "measured", "met"],
                          [[t["target"], t["measured"], "yes" if t["met"] else "**no**"]
                           for t in rows])


def render(document: dict[str, Any]) -> str:
    """The markdown of a results file: machine, every scenario's table, the targets."""
    info, scale = document["machine"], document["scale"]
    results = document["results"]
    head = (f"Measured {info['date']} on {info['cpus']} x {info['cpu_model']}, Python "
            f"{info['python']}, pandas {info['pandas']}, pyarrow {info['pyarrow']} "
            f"(commit {info.get('commit', '?')}, {scale['name']} run, "
            f"{document['elapsed_seconds']:.0f} s).\n")
    body = "".join(_section(s.name, results[s.name]) for s in SCENARIOS if s.name in results)
    goals = targets(results)
    tail = f"\n### Targets\n\n{targets_table(goals)}\n" if goals else ""
    return head + body + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", help=f"comma-separated scenarios among {', '.join(NAMES)}")
    parser.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="print the tables of an earlier run's results file; run nothing")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    names = args.only.split(",") if args.only else list(NAMES)
    names = [n for n in names if n not in args.skip.split(",")]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose among {NAMES}")
    scale = Scale.quick() if args.quick else Scale.full()
    began = time.monotonic()
    info = machine()
    print(f"## jetti-frames benchmarks ({scale.name}): {info['cpus']} x {info['cpu_model']}, "
          f"Python {info['python']}, {info['date']}", flush=True)
    results = run_scenarios(scale, names)
    goals = targets(results)
    if goals:
        print(f"\n### Targets\n\n{targets_table(goals)}\n")
    elapsed = round(time.monotonic() - began, 1)
    print(f"Total time {elapsed:.0f} s.")
    document = {"scale": scale.to_json(), "machine": info, "elapsed_seconds": elapsed,
                "results": results, "targets": goals}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = json.dumps(document, indent=2, default=str)
    for name in (f"{stamp}-{scale.name}.json", "latest.json"):
        (args.out / name).write_text(text)
    (args.out / "latest.md").write_text(render(document))
    print(f"Results: {args.out / (stamp + '-' + scale.name + '.json')}", file=sys.stderr)
    failed = [n for n, r in results.items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
