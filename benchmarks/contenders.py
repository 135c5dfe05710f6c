"""The ways of pulling every purchase that the paging benchmarks compare, one per function.

Each contender pulls ``GET purchases.json`` page after page from a base URL with a bearer token
and returns what it saw (``seconds`` of wall time from its first request to its last answer and,
for the frame/parquet writers, the conversion too, ``rows``, client-side counts).  The server's
own counters (requests, 429s) are read by the caller, per token.

========================  =====================================================================
``ours``                  ``JettiClient.read("purchases")``: keyset windows in parallel at the
                          allowance, then the consistency pass; a typed DataFrame
``ours-snapshot``         ``jetti_frames.snapshot("purchases", dir)``: the same pull into parquet
``requests``              a plain ``requests`` loop over ``from=0,1,...``: sequential, no limiter,
                          sleeps ``Retry-After`` on a 429 and asks again
``bottleneck``            the Bottleneck settings of Jetti's documentation re-created:
                          ``maxConcurrent: 2, minTime: 1000`` (at most 2 in flight, starts >= 1 s
                          apart), two workers taking the next ``from`` page
``jetti-cli``             Jetti's own CLI settings: 1 in flight, starts >= 2 s apart
``ratelimit``             ``@sleep_and_retry @limits(calls=2, period=1)`` around ``requests.get``
                          (a fixed window: up to 4 starts within a few ms at a window edge)
``dlt``                   ``dlt.sources.rest_api`` (page-number paginator on ``from`` from 0,
                          ``limit`` 100, bearer auth) into parquet on a filesystem destination
========================  =====================================================================

Run one in a child process (the token comes from ``BENCH_TOKEN``)::

    BENCH_TOKEN=sandbox-token python -m benchmarks.contenders requests http://127.0.0.1:8000/api/

It prints ``ready``, waits for ``go`` on stdin (see :class:`benchmarks.common.Barrier`) and prints
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import PAGE_SIZE, child_ready

Result = dict[str, Any]
Where = dict[str, Any] | None


def wire_where(where: Where) -> dict[str, str]:
    """Simple equality filters as Jetti's query string spells them.

    >>> wire_where({"cancelled": False, "purchaseType": "dropship"})
    {'where[cancelled]': 'false', 'where[purchaseType]': 'dropship'}
    """
    return {f"where[{k}]": str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in (where or {}).items()}


class Bottleneck:
    """The two Bottleneck options that matter here: ``maxConcurrent`` and ``minTime`` (seconds).

    A job starts once fewer than ``max_concurrent`` run and ``min_time`` has passed since the
    previous start, as in the Node library.

    Examples
    --------
    >>> limiter = Bottleneck(max_concurrent=2, min_time=0.0)
    >>> limiter.schedule(lambda x: x + 1, 1)
    2
    """

    def __init__(self, max_concurrent: int, min_time: float) -> None:
        self.slots = threading.Semaphore(max_concurrent)
        self.min_time = min_time
        self.lock = threading.Lock()
        self.next_start = 0.0

    def schedule(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.slots:
            with self.lock:
                now = time.monotonic()
                start = max(now, self.next_start)
                self.next_start = start + self.min_time
            if start > now:
                time.sleep(start - now)
            return fn(*args)


class Pages:
    """``GET purchases.json?limit=..&from=N`` with a bearer token; a 429 waits ``Retry-After``.

    ``send`` is the function that sends one request (``requests.Session.get`` or a rate-limited
    wrapper of it); ``throttled`` counts the 429 answers seen.
    """

    def __init__(self, base_url: str, token: str, page_size: int = PAGE_SIZE,
                 send: Callable[..., requests.Response] | None = None) -> None:
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.url = base_url + "purchases.json"
        self.page_size = page_size
        self.send = send or self.session.get
        self.throttled = 0
        self.lock = threading.Lock()

    def get(self, page: int) -> list[dict[str, Any]]:
        params = {"limit": str(self.page_size), "from": str(page)}
        while True:
            response = self.send(self.url, params=params, timeout=60)
            if response.status_code == 429:
                with self.lock:
                    self.throttled += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            return response.json()


def sequential(pages: Pages, get: Callable[[int], list[dict[str, Any]]] | None = None) -> Result:
    """``from=0, 1, ...`` one after the other until a short page."""
    get = get or pages.get
    began = time.monotonic()
    rows, page = 0, 0
    while True:
        records = get(page)
        rows += len(records)
        page += 1
        if len(records) < pages.page_size:
            break
    return {"seconds": time.monotonic() - began, "rows": rows, "client_429": pages.throttled}


def with_bottleneck(pages: Pages, limiter: Bottleneck, workers: int) -> Result:
    """``workers`` threads take the next ``from`` page through ``limiter`` until a short page."""
    state = {"next": 0, "done": False, "rows": 0}
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if state["done"]:
                    return
                page = state["next"]
                state["next"] += 1
            records = limiter.schedule(pages.get, page)
            with lock:
                state["rows"] += len(records)
                if len(records) < pages.page_size:
                    state["done"] = True

    began = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.monotonic() - began, "rows": state["rows"],
            "client_429": pages.throttled}


# -- the contenders ----------------------------------------------------------------------------


def plain_requests(base_url: str, token: str, page_size: int) -> Result:
    return sequential(Pages(base_url, token, page_size))


def bottleneck_docs(base_url: str, token: str, page_size: int) -> Result:
    return with_bottleneck(Pages(base_url, token, page_size), Bottleneck(2, 1.0), workers=2)


def jetti_cli(base_url: str, token: str, page_size: int) -> Result:
    return with_bottleneck(Pages(base_url, token, page_size), Bottleneck(1, 2.0), workers=1)


def ratelimit_decorator(base_url: str, token: str, page_size: int) -> Result:
    from ratelimit import limits, sleep_and_retry

    session = requests.Session()

    @sleep_and_retry
    @limits(calls=2, period=1)
    def get(url: str, **kwargs: Any) -> requests.Response:
        return session.get(url, **kwargs)

    pages = Pages(base_url, token, page_size, send=get)
    session.headers.update(pages.session.headers)
    return sequential(pages)


def ours(base_url: str, token: str, page_size: int, where: Where = None) -> Result:
    from jetti_frames import JettiClient

    client = JettiClient(token, base_url=base_url, cache=False, progress=False,
                         page_size=page_size)
    began = time.monotonic()
    frame = client.read("purchases", where=where)
    seconds = time.monotonic() - began
    stats = client.last_stats
    return {"seconds": seconds, "rows": len(frame), "client_429": stats.status_429,
            "client_requests": stats.requests, "limiter_wait": stats.limiter_wait,
            "columns": {c: str(t) for c, t in frame.dtypes.items()},
            "all_null": [c for c in frame.columns if frame[c].isna().all()]}


def ours_snapshot(base_url: str, token: str, page_size: int, where: Where = None) -> Result:
    import pyarrow.parquet as pq

    from jetti_frames import JettiClient, snapshot

    client = JettiClient(token, base_url=base_url, cache=False, progress=False,
                         page_size=page_size)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.monotonic()
        info = snapshot("purchases", Path(tmp) / "purchases", where=where, client=client)
        seconds = time.monotonic() - began
        table = pq.read_table(Path(tmp) / "purchases")
    nulls = [name for name in table.column_names if table.column(name).null_count == len(table)]
    return {"seconds": seconds, "rows": info["rows"], "client_429": client.stats.status_429,
            "client_requests": client.stats.requests,
            "columns": {f.name: str(f.type) for f in table.schema}, "all_null": nulls,
            "tables": ["purchases"]}


def dlt_rest_api(base_url: str, token: str, page_size: int, where: Where = None) -> Result:
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt
    import pyarrow.dataset as pads
    from dlt.sources.rest_api import rest_api_source

    config: Any = {
        "client": {
            "base_url": base_url,
            "auth": {"type": "bearer", "token": token},
            "paginator": {"type": "page_number", "base_page": 0, "page_param": "from",
                          "total_path": None, "stop_after_empty_page": True},
        },
        "resources": [{"name": "purchases",
                       "endpoint": {"path": "purchases.json",
                                    "params": {"limit": page_size, **wire_where(where)}}}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = dlt.pipeline(
            pipeline_name="bench_purchases", pipelines_dir=str(Path(tmp) / "pipelines"),
            destination=dlt.destinations.filesystem(bucket_url=str(Path(tmp) / "lake")),
            dataset_name="jetti")
        began = time.monotonic()
        pipeline.extract(rest_api_source(config), loader_file_format="parquet")
        extracted = time.monotonic()
        pipeline.normalize()
        pipeline.load()
        seconds = time.monotonic() - began
        tables = sorted(pipeline.default_schema.data_table_names())
        dataset = pads.dataset(Path(tmp) / "lake" / "jetti" / "purchases", format="parquet")
        schema = dataset.schema
        rows = dataset.count_rows()
    return {"seconds": seconds, "extract_seconds": extracted - began, "rows": rows,
            "columns": {f.name: str(f.type) for f in schema}, "tables": tables}


CONTENDERS: dict[str, Callable[..., Result]] = {
    "ours": ours,
    "ours-snapshot": ours_snapshot,
    "requests": plain_requests,
    "bottleneck": bottleneck_docs,
    "jetti-cli": jetti_cli,
    "ratelimit": ratelimit_decorator,
    "dlt": dlt_rest_api,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pull every purchase one way; print JSON.")
    parser.add_argument("name", choices=sorted(CONTENDERS))
    parser.add_argument("base_url")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--no-wait", action="store_true", help="start without waiting for go")
    parser.add_argument("--where", type=json.loads, default=None,
                        help='equality filters as JSON, e.g. {"cancelled": false}')
    args = parser.parse_args(argv)
    token = os.environ["BENCH_TOKEN"]
    contender = CONTENDERS[args.name]
    if args.name == "dlt":  # its import costs seconds: keep it out of the barrier
        import dlt  # noqa: F401
        from dlt.sources.rest_api import rest_api_source  # noqa: F401
    elif args.name.startswith("ours"):
        import jetti_frames  # noqa: F401
    if not args.no_wait:
        child_ready()
    if args.where and args.name not in ("ours", "ours-snapshot", "dlt"):
        parser.error(f"{args.name} takes no --where")
    extra = {"where": args.where} if args.where else {}
    result = contender(args.base_url, token, args.page_size, **extra)
    print(json.dumps({"name": args.name, **result}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
