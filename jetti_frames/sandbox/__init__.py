"""A real HTTP server on 127.0.0.1 that speaks the Jetti API over a synthetic account.

Use it in tests and demos instead of the live service::

    from jetti_frames.sandbox import Sandbox, serve

    with serve(rate="off") as base_url:          # "http://127.0.0.1:PORT/api/"
        ...

    with Sandbox(seed=1, purchases=500, latency_ms=20) as sb:
        sb.configure(max_limit=30)               # change knobs live
        sb.counters()                            # requests, rows, 429s, ... (per token too)
        sb.query("SELECT count(*) FROM purchases")   # the truth, in SQL
        sb.after_requests(3, lambda s: s.insert("purchases", 10))
        sb.touch("purchases", 30); sb.delete("purchases", 5)   # updates, deletes

Modules: :mod:`.data` (seeded SQLite generator), :mod:`.qs` (Node qs decoding),
:mod:`.sql` (query language to SQL), :mod:`.limits` (leaky bucket, faults),
:mod:`.server` (HTTP), :mod:`.cli` (the ``sandbox`` command).
The accepted token defaults to ``jetti_frames.settings.SANDBOX_TOKEN``.
"""

from .cli import add_arguments, main, run
from .limits import FaultPlan
from .qs import decode_query
from .server import Sandbox, serve

__all__ = ["FaultPlan", "Sandbox", "add_arguments", "decode_query", "main", "run",
           "serve"]
