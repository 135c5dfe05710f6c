"""Scenarios 1 and 2: pull every purchase at Jetti's real allowance, ours against the others.

For each server latency a sandbox (bucket capacity 2, draining 2 GET/s per token) serves
``pages`` full pages of 100 purchases, and every contender of :mod:`benchmarks.contenders`
pulls them in its own process, with its own token, all started at the same instant.  The
sandbox counts what each token sent.  Reported per contender:

* ``requests``: answered 200 (our probe, tail and consistency requests included), ``429s``;
* ``wall``: from the first request to the last answer (plus the frame or parquet writing);
* ``floor = pages / 2 + one latency``: no client can be faster under the allowance;
* ``utilisation = (requests / wall) / 2.0``.

The dlt scenario pulls the same pages with ``dlt.sources.rest_api`` into parquet next to
``jetti_frames.snapshot`` and compares the columns each writes.

Run alone::

    python benchmarks/bench_pull.py [--quick] [--only utilisation|dlt]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    ALLOWANCE,
    PAGE_SIZE,
    Barrier,
    Scale,
    floor_seconds,
    fmt,
    markdown_table,
    ratio,
    run_child,
)

UTILISATION = ("ours", "requests", "bottleneck", "jetti-cli", "ratelimit")
DLT = ("ours-snapshot", "dlt")
#: A pull in which some columns hold no value at all (no cancelled purchase: no cancelledAt).
FILTER = {"purchaseType": "adjusted_dropship", "cancelled": False}
LABELS = {
    "ours": "jetti-frames `read()`",
    "ours-snapshot": "jetti-frames `snapshot()`",
    "requests": "plain `requests` loop",
    "bottleneck": "Bottleneck, Jetti docs (2 in flight, 1 s apart)",
    "jetti-cli": "Jetti CLI settings (1 in flight, 2 s apart)",
    "ratelimit": "`@sleep_and_retry @limits(2, 1)`",
    "dlt": "dlt `rest_api` -> parquet",
}


def plan(scale: Scale, scenarios: set[str]) -> dict[float, list[str]]:
    """Which contenders run at which latency."""
    out: dict[float, list[str]] = {}
    if "utilisation" in scenarios:
        for latency in scale.latencies_ms:
            out.setdefault(latency, []).extend(UTILISATION)
    if "dlt" in scenarios:
        for latency in scale.dlt_latencies_ms:
            out.setdefault(latency, []).extend(DLT)
    return out


def pull_matrix(scale: Scale, matrix: dict[float, list[str]]) -> dict[float, dict[str, Any]]:
    """Run every contender of every latency at once; their results and the server's counts."""
    from jetti_frames.sandbox import Sandbox

    sandboxes: dict[float, Any] = {}
    barrier = Barrier()
    try:
        for latency, names in matrix.items():
            sb = Sandbox(purchases=scale.purchases, latency_ms=latency, max_limit=PAGE_SIZE,
                         tokens=[f"bench-{n}" for n in names]).start()
            sandboxes[latency] = sb
            for name in names:
                barrier.spawn(f"{latency}/{name}",
                              ["-m", "benchmarks.contenders", name, sb.base_url,
                               "--page-size", str(PAGE_SIZE)],
                              env={"BENCH_TOKEN": f"bench-{name}"})
        barrier.go()
        raw = barrier.results()
        out: dict[float, dict[str, Any]] = {}
        for latency, names in matrix.items():
            sb = sandboxes[latency]
            out[latency] = {}
            for name in names:
                result = raw[f"{latency}/{name}"]
                counts = sb.counters(f"bench-{name}")
                out[latency][name] = measures(result, counts, scale.pages, latency)
        return out
    finally:
        barrier.kill()
        for sb in sandboxes.values():
            sb.stop()


def measures(result: dict[str, Any], counts: dict[str, int], pages: int,
             latency: float) -> dict[str, Any]:
    """The numbers of one contender at one latency."""
    seconds = result["seconds"]
    floor = floor_seconds(pages, latency)
    rps = counts["ok"] / seconds
    return {
        **result,
        "latency_ms": latency,
        "requests": counts["ok"],
        "requests_sent": counts["requests"],
        "status_429": counts["status_429"],
        "rows_served": counts["rows"],
        "floor_seconds": floor,
        "wall_vs_floor": ratio(seconds, floor),
        "requests_per_second": round(rps, 3),
        "utilisation": round(rps / ALLOWANCE, 3),
    }


def compare_columns(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """What dlt's parquet keeps of our columns: dropped (all null), nested away, retyped."""
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    naming = NamingConvention()
    their_cols: dict[str, str] = {c: t for c, t in theirs["columns"].items()
                                  if not c.startswith("_dlt_")}
    tables = set(theirs.get("tables", []))
    dropped, nested, flattened, retyped = [], [], [], []
    kept = 0
    for name, our_type in ours["columns"].items():
        norm = naming.normalize_identifier(name)
        if norm in their_cols:
            kept += 1
            if _plain(our_type) != _plain(their_cols[norm]):
                retyped.append({"column": name, "ours": our_type, "dlt": their_cols[norm]})
        elif f"purchases__{norm}" in tables:
            nested.append(name)
        elif any(c.startswith(norm + "__") for c in their_cols):
            flattened.append(name)
        else:
            dropped.append({"column": name, "all_null_in_pull": name in ours.get("all_null", []),
                            "ours": our_type})
    kinds: dict[str, int] = {}
    for r in retyped:
        key = f"{r['ours']} -> {r['dlt']}"
        kinds[key] = kinds.get(key, 0) + 1
    return {"ours_columns": len(ours["columns"]), "dlt_columns": len(their_cols),
            "dlt_tables": sorted(tables), "same_name_and_kept": kept, "dropped": dropped,
            "nested_into_child_tables": nested, "flattened": flattened, "retyped": retyped,
            "retyped_kinds": kinds}


def _plain(arrow_type: str) -> str:
    """Arrow types that hold the same values compare equal (``large_string`` is ``string``)."""
    return arrow_type.replace("large_", "")


def filtered_columns(scale: Scale) -> dict[str, Any]:
    """Columns of a filtered pull (:data:`FILTER`, some columns all null), ours vs dlt."""
    from jetti_frames.sandbox import Sandbox

    found: dict[str, Any] = {}
    with Sandbox(purchases=scale.purchases, rate="off", max_limit=PAGE_SIZE,
                 tokens=[f"bench-{n}" for n in DLT]) as sb:
        for name in DLT:
            found[name] = run_child(
                ["-m", "benchmarks.contenders", name, sb.base_url, "--no-wait",
                 "--page-size", str(PAGE_SIZE), "--where", json.dumps(FILTER)],
                env={"BENCH_TOKEN": f"bench-{name}"})
    return {"where": FILTER, "rows": found["ours-snapshot"]["rows"],
            **compare_columns(found["ours-snapshot"], found["dlt"])}


def run(scale: Scale, scenarios: set[str] | None = None) -> dict[str, Any]:
    """``{"utilisation": ..., "dlt": ...}`` for the scenarios asked (both by default)."""
    scenarios = scenarios or {"utilisation", "dlt"}
    matrix = pull_matrix(scale, plan(scale, scenarios))
    out: dict[str, Any] = {}
    if "utilisation" in scenarios:
        out["utilisation"] = {
            "pages": scale.pages, "page_size": PAGE_SIZE, "allowance": ALLOWANCE,
            "runs": [matrix[lat][name] | {"contender": name}
                     for lat in scale.latencies_ms for name in UTILISATION]}
    if "dlt" in scenarios:
        runs = [matrix[lat][name] | {"contender": name}
                for lat in scale.dlt_latencies_ms for name in DLT]
        first = scale.dlt_latencies_ms[0]
        columns = compare_columns(matrix[first]["ours-snapshot"], matrix[first]["dlt"])
        out["dlt"] = {"pages": scale.pages, "runs": runs, "columns": columns,
                      "filtered_columns": filtered_columns(scale)}
    for part in out.values():
        for r in part["runs"]:
            r.pop("columns", None)
            r.pop("all_null", None)
    return out


def utilisation_table(result: dict[str, Any]) -> str:
    rows = []
    for r in result["runs"]:
        rows.append([f"{r['latency_ms']:.0f}", LABELS[r["contender"]], r["requests"],
                     r["status_429"], f"{r['rows']:,}", fmt(r["seconds"]),
                     fmt(r["floor_seconds"]), fmt(r["wall_vs_floor"], 2),
                     fmt(r["requests_per_second"], 2), fmt(r["utilisation"], 2)])
    return markdown_table(
        ["latency ms", "client", "requests", "429s", "rows", "wall s", "floor s",
         "wall / floor", "req/s", "utilisation"], rows, align="r-rrrrrrrr")


def dlt_table(result: dict[str, Any]) -> str:
    rows = []
    for r in result["runs"]:
        extract = r.get("extract_seconds")
        rows.append([f"{r['latency_ms']:.0f}", LABELS[r["contender"]], r["requests"],
                     r["status_429"], f"{r['rows']:,}", fmt(r["seconds"]),
                     fmt(extract) if extract is not None else "-",
                     fmt(r["wall_vs_floor"], 2), fmt(r["utilisation"], 2)])
    text = markdown_table(
        ["latency ms", "tool", "requests", "429s", "rows", "wall s", "of which extract s",
         "wall / floor", "utilisation"], rows, align="r-rrrrrrr")
    text += "\n\n" + columns_text(result["columns"], f"the full pull ({result['pages']} pages)")
    filtered = result.get("filtered_columns")
    if filtered:
        where = ", ".join(f"{k}={v}" for k, v in filtered["where"].items())
        text += "\n\n" + columns_text(filtered, f"a filtered pull ({where}, "
                                                  f"{filtered['rows']:,} rows)")
    return text


def columns_text(c: dict[str, Any], what: str) -> str:
    """One paragraph: what dlt's parquet keeps of our columns."""
    null_dropped = [d["column"] for d in c["dropped"] if d["all_null_in_pull"]]
    other_dropped = [d["column"] for d in c["dropped"] if not d["all_null_in_pull"]]
    kinds = "; ".join(f"`{k}` ({n})" for k, n in sorted(c["retyped_kinds"].items()))
    names = ", ".join(f"`{n}`" for n in null_dropped[:10]) + (", ..." if len(null_dropped) > 10
                                                              else "")
    verb = "is" if len(null_dropped) == 1 else "are"
    others = f" (and {len(other_dropped)} others)" if other_dropped else ""
    return (
        f"Columns of {what}: jetti-frames writes {c['ours_columns']} typed columns, every one "
        f"kept even when empty; dlt writes {c['dlt_columns']} in `purchases` plus "
        f"{len(c['dlt_tables']) - 1} child tables. dlt leaves out "
        f"{_n(len(null_dropped), 'column')} that {verb} all null in this pull"
        f"{': ' + names if names else ''}{others}; moves "
        f"{_n(len(c['nested_into_child_tables']), 'list/JSON column')} into child tables; "
        f"flattens {_n(len(c['flattened']), 'JSON object')} into `<column>__<key>` columns; "
        f"stores {len(c['retyped'])} with another type: {kinds or 'none'}.")


def _n(count: int, noun: str) -> str:
    """``1 column``, ``2 columns``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def table(result: dict[str, Any]) -> str:
    parts = []
    if "utilisation" in result:
        parts.append(utilisation_table(result["utilisation"]))
    if "dlt" in result:
        parts.append(dlt_table(result["dlt"]))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("utilisation", "dlt"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    scale = Scale.quick() if args.quick else Scale.full()
    result = run(scale, {args.only} if args.only else None)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
