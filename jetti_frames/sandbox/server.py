"""The sandbox HTTP server: the Jetti REST API over a synthetic SQLite account on 127.0.0.1.

``GET /api/<url>.json`` answers a bare JSON array, ``GET /api/<url>/<id>.json`` a bare object.
Errors are problem documents (``application/problem+json``); a request line plus headers over
16 KiB gets 431, as from Node. While the rate limit is on, every authenticated response carries
``X-RateLimit-Limit`` (bucket capacity) and ``X-RateLimit-Remaining``; a 429 also carries
``Retry-After`` rounded **up** to whole seconds (at least 1, as HTTP wants an integer) and
``X-RateLimit-Reset``, the exact fractional seconds until one slot frees.

Examples
--------
>>> import requests
>>> with Sandbox(purchases=100, rate="off") as sb:
...     r = requests.get(sb.base_url + "purchases.json", params={"limit": "2"},
...                      headers={"Authorization": "Bearer sandbox-token"})
>>> r.status_code, len(r.json())
(200, 2)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..catalog import CATALOG
from ..settings import GET_BURST, GET_RATE, SANDBOX_TOKEN, WRITE_RATE
from .collation import COLLATIONS, sort_expression
from .collation import register as register_collation
from .data import RESOURCES, cached_database, insert_rows, table_name
from .drift import DriftPlan
from .formats import NUMBERS, ZONES, write_values
from .limits import MALFORMED, FaultPlan, LeakyBucket
from .qs import QS_VERSIONS, decode_query
from .sql import EXCLUDE_MODES, LOGIC_MODES, TIE_PRIME, Problem, QueryPlan

__all__ = ["Sandbox", "serve"]

_PATH = re.compile(r"^/api/([a-z][a-z0-9-]*)(?:/([^/]+))?\.json$")
#: Node's default limit on the request line plus headers; longer requests get 431.
MAX_HEADER_BYTES = 16 * 1024
_LIVE_KNOBS = ("latency_ms", "jitter_ms", "connect_ms", "max_limit", "default_limit", "rate",
               "get_rate", "get_burst", "write_rate", "drain", "faults", "strict", "qs_version",
               "tokens", "quirks", "exclude", "ties", "ties_seed", "drift", "logic", "zones",
               "numbers", "collation")


def token_hash(token: str) -> str:
    """A short, stable fingerprint of a token for logs and counters (never the token)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer is normal here; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


#: The knobs that take one of a few values, and those values.
_CHOICES: dict[str, tuple[str, ...]] = {
    "rate": ("default", "off"), "qs_version": QS_VERSIONS, "exclude": EXCLUDE_MODES,
    "logic": LOGIC_MODES, "zones": ZONES, "numbers": NUMBERS, "collation": COLLATIONS,
    "ties": ("id", "shuffle"),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    #: No request has come on this connection yet (one handler per connection).
    fresh = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.sandbox._handle(self)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Node answers 431 to any request head over 16 KiB, also to a line too long for
        Python's parser (which would say 414)."""
        if code == 414:
            code, message = 431, f"request line over {MAX_HEADER_BYTES} bytes"
        super().send_error(code, message, explain)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET


class Sandbox:
    """A real HTTP server speaking the Jetti API over a deterministic synthetic account.

    Parameters (keyword-only)
    -------------------------
    seed, purchases
        The generated data (same seed and size, same data); other tables scale with purchases.
    latency_ms, jitter_ms
        Sleep before answering, plus up to ``jitter_ms`` at random: half of it on the way in,
        before the rate limiter counts the request (so two requests sent 0.5 s apart may arrive
        closer, as on a real network), half on the way out.  Requests are served on threads,
        so concurrent requests overlap.
    connect_ms
        The first request of each connection arrives this much later, as after the TLS
        handshake of a real server: the rate limiter counts it then, closer to the request
        sent after it on a connection already open.
    max_limit, default_limit
        ``limit`` is capped silently at ``max_limit``; without ``limit`` a page has
        ``default_limit`` records.
    rate, get_rate, get_burst, write_rate
        ``rate="off"`` disables the per-token leaky buckets.
    drain
        Another integration of every account: it sends ``drain`` GET requests per second into
        the account's bucket (counted by :meth:`other_counters`, not by :meth:`counters`), so
        the account's clients see ``X-RateLimit-Remaining`` fall and must slow down.
    tokens
        Accepted bearer tokens.
    qs_version
        ``"6.13"`` (Express 4.21) or ``"latest"`` query-string semantics.
    strict
        Answer 400 where the real server silently misbehaves (long arrays turned objects).
    quirks
        Reproduce the Sequelize failures of the API notes (500 when attributes lack a key an
        include needs, or the order attribute while a has-many include is present).
    exclude
        How ``attributes[exclude][i]=...`` (Sequelize's "every field but these") is treated:
        ``"honor"`` (default), ``"ignore"`` (every field comes back) or ``"refuse"`` (400).
    logic
        How ``$or`` and ``$and`` in a ``where`` are treated: ``"honor"`` (default),
        ``"ignore"`` (dropped: rows come back as if the condition were absent, as from a server
        that drops unknown operators) or ``"refuse"`` (400).
    faults
        ``{"rate": 0.1, "kinds": ("503", "429", "drop"), "seed": 0, "burst": 3}`` or a rate;
        the kinds ``"object"``, ``"no-id"`` and ``"unordered"`` answer 200 with a malformed body.
    drift
        Answers that no longer match the catalogue: per resource, new fields (``extra``),
        fields no longer sent (``drop``) and values outside an enum (``enum``); see
        :mod:`.drift`.
    ties, ties_seed
        ``ties="shuffle"`` (default): rows that tie on the ``order`` attribute come back in a
        different order on every request, as from PostgreSQL, so offset pages (``from``) on a
        non-unique attribute overlap; ``ties_seed`` makes that sequence of orders repeatable.
        ``ties="id"``: ties by id (a tie-breaker the real server does not have).
    port
        0 picks a free port. The server binds 127.0.0.1 only.

    Examples
    --------
    >>> sb = Sandbox(purchases=50).start()
    >>> sb.base_url.startswith("http://127.0.0.1:") and sb.base_url.endswith("/api/")
    True
    >>> sb.query("SELECT count(*) AS n FROM purchases")
    [{'n': 50}]
    >>> sb.stop()
    """

    def __init__(self, *, seed: int = 0, purchases: int = 3000, latency_ms: float = 0,
                 jitter_ms: float = 0, connect_ms: float = 0, max_limit: int = 100,
                 default_limit: int = 50,
                 rate: str = "default", get_rate: float = GET_RATE, get_burst: int = GET_BURST,
                 write_rate: float = WRITE_RATE, drain: float = 0.0,
                 tokens: Sequence[str] = (SANDBOX_TOKEN,),
                 qs_version: str = "6.13", strict: bool = False, quirks: bool = True,
                 exclude: str = "honor", logic: str = "honor",
                 faults: FaultPlan | dict | float | None = None, ties: str = "shuffle",
                 ties_seed: int | None = None, drift: Mapping[str, Any] | None = None,
                 zones: str = "utc", numbers: str = "json", collation: str = "natural",
                 port: int = 0,
                 log_size: int = 100_000) -> None:
        self.seed = seed
        self.purchases = purchases
        self.port = port
        self._lock = threading.RLock()
        self._local = threading.local()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None
        self._db: Path | None = None
        self._jitter = random.Random(seed)
        self._hooks: list[tuple[int, Callable[[Sandbox], Any]]] = []
        self._deleted_top: dict[str, int] = {}  # table -> highest id deleted
        self.log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self.startup_seconds: float | None = None
        self._knobs: dict[str, Any] = {}
        self.configure(latency_ms=latency_ms, jitter_ms=jitter_ms, connect_ms=connect_ms,
                       max_limit=max_limit,
                       default_limit=default_limit, rate=rate, get_rate=get_rate,
                       get_burst=get_burst, write_rate=write_rate, drain=drain,
                       tokens=tokens,
                       qs_version=qs_version, strict=strict, quirks=quirks, faults=faults,
                       exclude=exclude, ties=ties, ties_seed=ties_seed, drift=drift,
                       logic=logic, zones=zones, numbers=numbers, collation=collation)
        self.reset_counters()

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> Sandbox:
        """Build the database (from the cache when possible) and start serving; returns self."""
        if self._server is not None:
            return self
        began = time.perf_counter()
        self._dir = Path(tempfile.mkdtemp(prefix="jetti-sandbox-"))
        self._db = cached_database(self.seed, self.purchases, self._dir / "account.sqlite")
        con = self._connect()
        con.execute("PRAGMA journal_mode=WAL")
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"jetti-sandbox-{self.port}", daemon=True)
        self._thread.start()
        self.startup_seconds = time.perf_counter() - began
        return self

    def stop(self) -> None:
        """Stop serving and remove the database copy."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def order_sql(self, resource: str, name: str) -> str:
        """The SQL this server orders field ``name`` of ``resource`` by (its ``collation``),
        for truth queries over :meth:`query`: ``f"ORDER BY {sb.order_sql('purchases', 'x')}"``.
        """
        return sort_expression(CATALOG.resource(resource), name, f'"{name}"',
                               self._knobs["collation"])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``."""
        return f"http://127.0.0.1:{self.port}/api/"

    def __repr__(self) -> str:
        state = "running" if self._server else "stopped"
        return f"Sandbox(seed={self.seed}, purchases={self.purchases}, port={self.port}, {state})"

    # ----------------------------------------------------------------- knobs
    def configure(self, **knobs: Any) -> None:
        """Change knobs live: latency_ms, jitter_ms, connect_ms, max_limit, default_limit, rate,
        get_rate, get_burst, write_rate, drain, faults, strict, quirks, qs_version, tokens,
        exclude, ties, ties_seed, drift, logic, zones, numbers, collation."""
        unknown = set(knobs) - set(_LIVE_KNOBS)
        if unknown:
            raise TypeError(f"unknown sandbox options {sorted(unknown)}")
        for name, choices in _CHOICES.items():
            if name in knobs and knobs[name] not in choices:
                raise ValueError(f"{name} must be one of {choices}")
        if not 0 <= knobs.get("drain", 0) < knobs.get("get_rate", self._knobs.get("get_rate", 1)):
            raise ValueError("drain must be >= 0 and below get_rate")
        with self._lock:
            if "faults" in knobs:
                knobs["faults"] = FaultPlan.from_option(knobs["faults"])
            if "tokens" in knobs:
                knobs["tokens"] = frozenset(knobs["tokens"])
            if "drift" in knobs:
                knobs["drift"] = DriftPlan.from_option(knobs["drift"])
            self._knobs.update(knobs)
            if {"rate", "get_rate", "get_burst", "write_rate", "drain"} & set(knobs):
                self._buckets: dict[tuple[str, bool], LeakyBucket] = {}
            if "ties_seed" in knobs:
                seed = knobs["ties_seed"]
                self._ties_rng = random.Random() if seed is None else random.Random(seed)

    def _tie_order(self) -> tuple[int, int] | None:
        """A fresh tie order for one request (None: by id)."""
        with self._lock:
            if self._knobs["ties"] != "shuffle":
                return None
            return self._ties_rng.randrange(1, TIE_PRIME), self._ties_rng.randrange(TIE_PRIME)

    # ----------------------------------------------------------------- counters and log
    def reset_counters(self) -> None:
        """Zero every counter and clear the request log."""
        with self._lock:
            self._counters: dict[str, dict[str, int]] = {}
            self._requests = 0
            self.log.clear()

    def counters(self, token: str | None = None) -> dict[str, int]:
        """``requests``, ``ok``, ``rows``, ``status_429``, ``status_4xx``, ``status_5xx``,
        ``faults``: totals, or for one token."""
        with self._lock:
            if token is not None:
                return dict(self._counters.get(token_hash(token), _zero()))
            total = _zero()
            for c in self._counters.values():
                for k, v in c.items():
                    total[k] += v
            return total

    def other_counters(self, token: str | None = None) -> dict[str, int]:
        """The ``drain`` integration's ``requests`` (served) and ``status_429`` (refused), in the
        buckets of one token's account or of all accounts (since the knobs last changed)."""
        with self._lock:
            buckets = [b for (t, is_get), b in self._buckets.items()
                       if is_get and token in (None, t)]
        return {"requests": sum(b.other_requests for b in buckets),
                "status_429": sum(b.other_refused for b in buckets)}

    def after_requests(self, n: int, callback: Callable[[Sandbox], Any]) -> None:
        """Call ``callback(sandbox)`` once the ``n``-th request from now has been answered."""
        with self._lock:
            self._hooks.append((self._requests + n, callback))

    # ----------------------------------------------------------------- data
    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if self._db is None:
                raise RuntimeError("the sandbox is not started")
            con = sqlite3.connect(self._db, check_same_thread=False, timeout=30)
            con.execute("PRAGMA case_sensitive_like=ON")
            register_collation(con)
            self._local.con = con
        return con

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run read-only SQL over the sandbox database; rows as dicts (raw stored values)."""
        if self._db is None:
            raise RuntimeError("the sandbox is not started")
        con = sqlite3.connect(f"file:{self._db}?mode=ro", uri=True)
        register_collation(con)  # SQL may say COLLATE natural_text
        try:
            cur = con.execute(sql, tuple(params))
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            con.close()

    def insert(self, resource: str, n: int) -> list[int]:
        """Insert ``n`` new records (for item tables: items of the ``n`` newest parents, or of
        new ones); returns the new ids. They are created and updated now."""
        url = CATALOG.resource(resource).url
        table = table_name(url)
        with self._lock:
            con = self._connect()
            before = con.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            before = max(before, self._deleted_top.get(table, 0))
            insert_rows(con, url, n, seed=self.seed + 1 + before, now=time.time(),
                        after_id=before)
            con.commit()
            ids = [r[0] for r in con.execute(f"SELECT id FROM {table} WHERE id > ? ORDER BY id",
                                             (before,))]
        return ids

    def touch(self, resource: str, ids_or_n: int | Sequence[int], *,
              at: datetime | None = None) -> list[int]:
        """Update the given ids, or ``n`` seeded-random records: ``updatedAt`` becomes now and,
        where the resource has ``notes``, the notes say so (a value a reader can see change).

        ``at`` (an aware datetime) dates the change earlier or later instead, as a server whose
        clock is off, or a transaction committed late, would.
        """
        url = CATALOG.resource(resource).url
        table = table_name(url)
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()) if at is None else \
            at.astimezone(UTC).replace(microsecond=0).isoformat()
        with self._lock:
            con = self._connect()
            if isinstance(ids_or_n, int):
                all_ids = [r[0] for r in con.execute(f"SELECT id FROM {table} ORDER BY id")]
                ids = sorted(random.Random(self.seed + ids_or_n).sample(
                    all_ids, min(ids_or_n, len(all_ids))))
            else:
                ids = [int(i) for i in ids_or_n]
            sets = '"updatedAt" = ?1'
            if CATALOG.resource(url).has_field("notes"):
                sets += ", \"notes\" = 'updated at ' || ?1"
            con.executemany(f"UPDATE {table} SET {sets} WHERE id = ?2", [(now, i) for i in ids])
            con.commit()
        return ids

    def delete(self, resource: str, ids_or_n: int | Sequence[int]) -> list[int]:
        """Delete the given ids, or ``n`` seeded-random records; returns the deleted ids.

        Nothing marks a deleted record: it stops being listed, as on the real server (its
        items or children are left as they are).
        """
        table = table_name(CATALOG.resource(resource).url)
        with self._lock:
            con = self._connect()
            if isinstance(ids_or_n, int):
                all_ids = [r[0] for r in con.execute(f"SELECT id FROM {table} ORDER BY id")]
                ids = sorted(random.Random(self.seed - ids_or_n).sample(
                    all_ids, min(ids_or_n, len(all_ids))))
            else:
                ids = [int(i) for i in ids_or_n]
            con.executemany(f"DELETE FROM {table} WHERE id = ?", [(i,) for i in ids])
            if ids:  # like a database sequence, never hand a deleted id out again
                self._deleted_top[table] = max(self._deleted_top.get(table, 0), max(ids))
            con.commit()
        return ids

    # ----------------------------------------------------------------- HTTP
    def _bucket(self, token: str, is_get: bool) -> LeakyBucket:
        key = (token, is_get)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                k = self._knobs
                bucket = (LeakyBucket(k["get_rate"], k["get_burst"], k["drain"]) if is_get
                          else LeakyBucket(k["write_rate"], 1))
                self._buckets[key] = bucket
            return bucket

    def _handle(self, req: _Handler) -> None:
        started = time.monotonic()
        path, _, raw_query = req.path.partition("?")
        headers: dict[str, str] = {}
        status, body, rows, fault, way_in = 500, b"", 0, None, 0.0
        token = _bearer(req.headers.get("Authorization"))
        is_get = req.command in ("GET", "HEAD")
        length = int(req.headers.get("Content-Length") or 0)
        if length:
            req.rfile.read(length)
        try:
            head = len(req.requestline) + sum(len(k) + len(v) + 4 for k, v in req.headers.items())
            if head > MAX_HEADER_BYTES:
                raise Problem(431, f"request line and headers over {MAX_HEADER_BYTES} bytes")
            if token is None or token not in self._knobs["tokens"]:
                raise Problem(401, "missing or invalid bearer token")
            way_in = self._travel(self._knobs["jitter_ms"]) + self._handshake(req)
            if self._knobs["rate"] != "off":
                bucket = self._bucket(token, is_get)
                allowed, remaining, wait = bucket.take()
                headers["X-RateLimit-Limit"] = str(bucket.capacity)
                headers["X-RateLimit-Remaining"] = str(remaining)
                if not allowed:
                    headers["Retry-After"] = str(max(1, -int(-wait // 1)))
                    headers["X-RateLimit-Reset"] = f"{wait:.3f}"
                    raise Problem(429, f"rate limit exceeded; retry in {wait:.3f} s")
            fault = self._knobs["faults"].next()
            if fault == "503":
                raise Problem(503, "service temporarily unavailable (injected)")
            if fault == "429":
                headers["Retry-After"] = "1"
                headers["X-RateLimit-Reset"] = "1.000"
                raise Problem(429, "rate limit exceeded (injected)")
            payload = self._answer(req.command, path, raw_query)
            if fault in MALFORMED:
                payload = _malform(payload, fault)
            rows = len(payload) if isinstance(payload, list) else 1
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            status = 200
            headers["Content-Type"] = "application/json; charset=utf-8"
        except Problem as problem:
            status = problem.status
            body = json.dumps(problem.document()).encode()
            headers["Content-Type"] = "application/problem+json"
        except Exception as exc:  # an unexpected server error is still a problem document
            status = 500
            body = json.dumps(Problem(500, f"internal error: {type(exc).__name__}").document()
                              ).encode()
            headers["Content-Type"] = "application/problem+json"
        self._sleep(started, way_in)
        self._record(req.command, req.path, status, token, rows if status == 200 else 0, fault,
                     started)
        try:
            req.send_response(status)
            for name, value in headers.items():
                req.send_header(name, value)
            req.send_header("Content-Length", str(len(body)))
            if fault == "drop":
                req.send_header("Connection", "close")
                req.end_headers()
                req.wfile.write(body[: len(body) // 2])
                req.wfile.flush()
                with contextlib.suppress(OSError):
                    req.connection.shutdown(socket.SHUT_RDWR)
                req.close_connection = True
            else:
                req.end_headers()
                if req.command != "HEAD":
                    req.wfile.write(body)
        except OSError:
            req.close_connection = True
        self._run_hooks()

    def _handshake(self, req: _Handler) -> float:
        """Sleep ``connect_ms`` before the first request of a connection; the seconds."""
        seconds = self._knobs["connect_ms"] / 1000 if req.fresh else 0.0
        req.fresh = False
        if seconds > 0:
            time.sleep(seconds)
        return seconds

    def _travel(self, jitter_ms: float) -> float:
        """Sleep the way in's share of the jitter (up to half of ``jitter_ms``); the seconds."""
        if jitter_ms <= 0:
            return 0.0
        with self._lock:
            seconds = self._jitter.uniform(0, jitter_ms / 2) / 1000
        time.sleep(seconds)
        return seconds

    def _sleep(self, started: float, way_in: float) -> None:
        latency = self._knobs["latency_ms"]
        jitter = self._knobs["jitter_ms"]
        if latency <= 0 and jitter <= 0:
            return
        with self._lock:
            extra = self._jitter.uniform(0, jitter / 2) if jitter > 0 else 0.0
        delay = (latency + extra) / 1000 + way_in - (time.monotonic() - started)
        if delay > 0:
            time.sleep(delay)

    def _record(self, method: str, target: str, status: int, token: str | None, rows: int,
                fault: str | None, started: float) -> None:
        key = token_hash(token) if token else "-"
        with self._lock:
            c = self._counters.setdefault(key, _zero())
            c["requests"] += 1
            c["rows"] += rows
            c["ok"] += status == 200
            c["status_429"] += status == 429
            c["status_4xx"] += 400 <= status < 500
            c["status_5xx"] += status >= 500
            c["faults"] += fault is not None
            self._requests += 1
            self.log.append({"method": method, "target": unquote(target), "status": status,
                             "token": key, "rows": rows, "time": time.time(),
                             "seconds": time.monotonic() - started, "fault": fault})

    def _run_hooks(self) -> None:
        due: list[tuple[int, Callable[[Sandbox], Any]]] = []
        with self._lock:
            keep: list[tuple[int, Callable[[Sandbox], Any]]] = []
            for at, callback in self._hooks:
                (due if self._requests >= at else keep).append((at, callback))
            self._hooks = keep
        for _, callback in due:
            callback(self)

    def _answer(self, method: str, path: str, raw_query: str) -> Any:
        match = _PATH.match(path)
        if not match:
            raise Problem(404, f"no such endpoint {path!r}")
        url, ident = match.groups()
        if url not in RESOURCES:
            raise Problem(404, f"unknown resource {url!r}")
        if method not in ("GET", "HEAD"):
            raise Problem(405, f"{method} is not available in the sandbox")
        res = CATALOG.resource(url)
        con = self._connect()
        if ident is not None:
            try:
                key = int(ident)
            except ValueError:
                raise Problem(404, f"no {res.model} with id {ident!r}") from None
        k = self._knobs
        query = decode_query(raw_query, qs_version=k["qs_version"])
        if ident is not None:  # one record: the same query language (include, attributes)
            one = {**query, "where": {"id": str(key)}, "limit": "1"}
            one.pop("from", None)
            single = QueryPlan.build(url, one, default_limit=1, max_limit=1, strict=k["strict"],
                                     quirks=k["quirks"], exclude=k["exclude"],
                                     logic=k["logic"], collation=k["collation"])
            rows = single.run(con)
            if not rows:
                raise Problem(404, f"no {res.model} with id {key}")
            k["drift"].apply(rows, single)
            write_values(rows, url, single.includes, zones=k["zones"], numbers=k["numbers"])
            return rows[0]
        plan = QueryPlan.build(url, query, default_limit=k["default_limit"],
                               max_limit=k["max_limit"], strict=k["strict"], quirks=k["quirks"],
                               exclude=k["exclude"], ties=self._tie_order(),
                               logic=k["logic"], collation=k["collation"])
        rows = plan.run(con)
        k["drift"].apply(rows, plan)
        write_values(rows, url, plan.includes, zones=k["zones"], numbers=k["numbers"])
        return rows


def _malform(payload: Any, kind: str) -> Any:
    """A well-formed answer made wrong: ``object``, ``no-id`` or ``unordered`` (see FaultPlan).

    >>> _malform([{"id": 1}, {"id": 2}], "unordered"), _malform([{"id": 1}], "no-id")
    ([{'id': 2}, {'id': 1}], [{}])
    >>> _malform([{"id": 1}], "object")
    {'data': [{'id': 1}]}
    """
    if kind == "object":
        return {"data": payload}
    records = payload if isinstance(payload, list) else [payload]
    if kind == "no-id":
        records = [{k: v for k, v in r.items() if k != "id"} for r in records]
    else:
        records = records[::-1] if len(records) > 1 else [*records, *records]
    return records if isinstance(payload, list) else records[0]


def _zero() -> dict[str, int]:
    return dict.fromkeys(("requests", "ok", "rows", "status_429", "status_4xx", "status_5xx",
                          "faults"), 0)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@contextlib.contextmanager
def serve(**options: Any) -> Iterator[str]:
    """Run a :class:`Sandbox` in a background thread; yields its base URL.

    >>> with serve(purchases=20) as base_url:
    ...     base_url.endswith("/api/")
    True
    """
    with Sandbox(**options) as sandbox:
        yield sandbox.base_url
