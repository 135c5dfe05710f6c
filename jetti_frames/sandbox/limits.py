"""Per-token leaky buckets (Jetti: 2 GET/s with capacity 2, 1 non-GET/s) and fault injection.

Examples
--------
>>> bucket = LeakyBucket(rate=2.0, capacity=2)
>>> [bucket.take(now=0.0)[0] for _ in range(3)]
[True, True, False]
>>> bucket.take(now=0.5)[0]
True
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
    """

    def __init__(self, rate: float, capacity: int) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = 0.0
        self.stamp: float | None = None
        self.lock = threading.Lock()

    def take(self, now: float | None = None) -> tuple[bool, int, float]:
        """``(allowed, remaining slots, seconds until one slot frees)``."""
        with self.lock:
            now = time.monotonic() if now is None else now
            if self.stamp is not None:
                self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
            self.stamp = now
            if self.level + 1 > self.capacity + 1e-9:
                wait = (self.level + 1 - self.capacity) / self.rate
                return False, 0, wait
            self.level += 1
            return True, max(0, int(self.capacity - self.level + 1e-9)), 0.0


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
