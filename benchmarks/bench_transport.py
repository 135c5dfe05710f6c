"""How much of Jetti's allowance the transport uses, against the sandbox at its real limit.

For each server latency, 60 distinct GETs (cache off) go through ``Transport.map`` under the
default allowance (2 GET/s, bucket of 2).  Prints a markdown table: achieved requests/s divided
by 2.0 (wall time from the first request to the last answer), and the 429s the sandbox sent.
``--compare`` adds a one-request-at-a-time client under the same limiter, for reference.

Run::

    python benchmarks/bench_transport.py [--requests 60] [--latencies 0,800,1500] [--compare]
"""

from __future__ import annotations

import argparse
import time

from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import GET_RATE, Settings
from jetti_frames.transport import Transport


def run(sb: Sandbox, token: str, n: int, *, sequential: bool) -> tuple[float, int, int]:
    sb.reset_counters()
    settings = Settings(base_url=sb.base_url, token=token, cache=False,
                        max_in_flight=1 if sequential else 8)
    items = [("purchases.json", f"limit=1&from={i}") for i in range(n)]
    with Transport(settings) as t:
        began = time.monotonic()
        if sequential:
            for url, query in items:
                t.get(url, query)
        else:
            for _ in t.map(items):
                pass
        seconds = time.monotonic() - began
    counts = sb.counters(token)
    return n / seconds / GET_RATE, counts["status_429"], counts["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--latencies", default="0,800,1500")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    latencies = [float(x) for x in args.latencies.split(",")]
    tokens = [f"bench-{i}" for i in range(2 * len(latencies))]
    header = "| latency (ms) | requests | used of 2 req/s | 429s |"
    rule = "|---:|---:|---:|---:|"
    if args.compare:
        header += " sequential client | sequential 429s |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    with Sandbox(purchases=200, tokens=tokens) as sb:
        for i, latency in enumerate(latencies):
            sb.configure(latency_ms=latency)
            used, throttled, served = run(sb, tokens[2 * i], args.requests, sequential=False)
            row = f"| {latency:.0f} | {served} | {used:.1%} | {throttled} |"
            if args.compare:
                s_used, s_429, _ = run(sb, tokens[2 * i + 1], args.requests, sequential=True)
                row += f" {s_used:.1%} | {s_429} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
