"""Per-token leaky buckets (Jetti: 2 GET/s with capacity 2, 1 non-GET/s) and fault injection.

Examples
--------
>>> bucket = LeakyBucket(rate=2.0, capacity=2)
>>> [bucket.take(now=0.0)[0] for _ in range(3)]
[True, True, False]
>>> bucket.take(now=0.5)[0]
True

Another integration of the account sending 1 request/s takes its share of the same bucket, so
2 requests/s of ours no longer fit:

>>> shared = LeakyBucket(rate=2.0, capacity=2, drain=1.0)
>>> [shared.take(now=t / 2)[:2] for t in range(4)]
[(True, 0), (True, 0), (False, 0), (True, 0)]
>>> shared.other_requests, shared.other_refused
(2, 0)
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

__all__ = ["MALFORMED", "FaultPlan", "LeakyBucket"]

#: Fault kinds that answer 200 with a body of the wrong shape.
MALFORMED = ("object", "no-id", "unordered")


class LeakyBucket:
    """A leaky bucket: each request adds 1, the level drains at ``rate`` per second.

    A request that would lift the level above ``capacity`` is refused and not counted.

    ``drain`` simulates another integration of the same account: from the first request on, it
    sends ``drain`` requests per second at an even pace into the same bucket (refused, like any
    other, when the bucket is full).  ``other_requests`` and ``other_refused`` count them.
    """

    def __init__(self, rate: float, capacity: int, drain: float = 0.0) -> None:
        self.rate = rate
        self.capacity = capacity
        self.drain = drain
        self.level = 0.0
        self.stamp: float | None = None
        self.other_requests = 0
        self.other_refused = 0
        self._other_next: float | None = None
        self.lock = threading.Lock()

    def take(self, now: float | None = None) -> tuple[bool, int, float]:
        """``(allowed, remaining slots, seconds until one slot frees)``."""
        with self.lock:
            now = time.monotonic() if now is None else now
            self._others(now)
            return self._take(now)

    def _take(self, now: float) -> tuple[bool, int, float]:
        if self.stamp is not None:
            self.level = max(0.0, self.level - max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(now, self.stamp or now)
        if self.level + 1 > self.capacity + 1e-9:
            wait = (self.level + 1 - self.capacity) / self.rate
            return False, 0, wait
        self.level += 1
        return True, max(0, int(self.capacity - self.level + 1e-9)), 0.0

    def _others(self, now: float) -> None:
        """The other integration's requests due by ``now``, in time order."""
        if self.drain <= 0:
            return
        step = 1.0 / self.drain
        if self._other_next is None or now - self._other_next > 60:
            self._other_next = now  # from the first request on (or after a long pause)
        while self._other_next <= now:
            if self._take(self._other_next)[0]:
                self.other_requests += 1
            else:
                self.other_refused += 1
            self._other_next += step


@dataclass
class FaultPlan:
    """Inject faults into a fraction ``rate`` of requests, deterministically from ``seed``.

    ``kinds`` chooses among ``"503"`` (a problem document), ``"429"`` (a burst of ``burst``
    consecutive 429 answers) and ``"drop"`` (the connection is closed halfway through the body),
    and malformed 200 answers (:data:`MALFORMED`): ``"object"`` (a JSON object where a list is
    due), ``"no-id"`` (records without ``id``) and ``"unordered"`` (the page's ids reversed).
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ("503", "429", "drop")
    seed: int = 0
    burst: int = 3
    _rng: random.Random = field(init=False, repr=False)
    _pending_429: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - {"503", "429", "drop", *MALFORMED}
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_option(cls, value: FaultPlan | dict | float | None) -> FaultPlan:
        if value is None:
            return cls()
        if isinstance(value, FaultPlan):
            return value
        if isinstance(value, (int, float)):
            return cls(rate=float(value))
        options = dict(value)
        if "kinds" in options:
            options["kinds"] = tuple(options["kinds"])
        return cls(**options)

    def next(self) -> str | None:
        """The fault for the next request, or None."""
        with self._lock:
            if self._pending_429:
                self._pending_429 -= 1
                return "429"
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            if kind == "429":
                self._pending_429 = self.burst - 1
            return kind
