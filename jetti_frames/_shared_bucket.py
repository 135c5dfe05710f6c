"""One account's request schedule, shared by every process of the user through the cache dir.

Jetti meters the account, not the process: two notebooks reading at once share 2 GET/s.  Every
:class:`Schedule` of one account and kind of method keeps its state in one small JSON file,
``<cache dir>/ratelimit-<account id>-<kind>.json``, read and written under the lock file beside
it (:mod:`filelock`).  The account id is :func:`~jetti_frames.transport.account_id`, an HMAC of
the base URL and the token: the files never hold the token.

State
    ``tat``: the theoretical time of the next start at the steady pace (the generic cell rate
    algorithm); ``interval``: that pace, ``(1 + MARGIN) / rate`` unless widened after a 429;
    ``next``: a time before which no request starts at all (after a 429, or while another
    integration uses the bucket); ``calm``: the time from which starts may come early again;
    ``clear``: when an answer last showed the bucket as our own starts left it (0: in doubt);
    ``level`` and ``stamp``: the bucket as our own starts fill it
    (draining at ``rate``), to tell what ``X-RateLimit-Remaining`` should say; ``sent``: starts
    so far; ``full``: answers in a row that found the bucket fuller than our starts explain.

The server's bucket. Jetti's bucket holds ``burst`` = 2 requests and drains 2 per second. A start
may come up to ``(burst - 1) / rate - RESERVE`` seconds before ``tat``: an account seen to be alone
on its bucket starts two requests 0.11 s apart after a pause (a read's first page and its probe, the
windows planned from an answer), then one per ``interval``, and whatever the network does to the
arrival times within ``RESERVE`` seconds, the bucket never overflows. Starts late by a few
milliseconds (threads, the lock file) are caught up, so a long read keeps the pace. ``X-RateLimit-
Remaining`` lower than our own starts explain says a slot was taken when the request arrived: by
another integration of the account, or by two of our starts that the network brought closer
together (at the steady pace, 5 ms of jitter do). The next start then settles the doubt: it waits
until even an arrival :data:`JITTER` + :data:`SETTLE` seconds early would find a slot free. When
its answer, too, finds the bucket full, it is someone else: the next start then waits until the
bucket, full at worst, has drained the starts made since and two slots more (one for that start,
one spare), so each request of another integration costs the account's clients one slot and nobody
draws 429; and for :data:`QUIET` seconds the pace leaves room for one of their requests between two
of ours that the network brings :data:`JITTER` seconds closer (``1 / rate + JITTER``). Jitter
costs a few milliseconds instead. A burst is only for a bucket seen to be ours alone: a start
comes early only within :data:`QUIET` seconds of an answer that found the bucket as our own starts
left it, and none since found it fuller than :data:`JITTER` seconds of network jitter explain
(nor for :data:`QUIET` seconds after another integration showed itself, or a 429). A process that
has seen no answer yet never bursts: another integration may be using the bucket. A 429 pauses the
whole account for its ``Retry-After`` and widens ``interval`` by a quarter, which narrows back by
2 % with every answer that leaves a slot free.

Without a cache directory, or when it cannot be written, the schedule lives in the process only
(logged at DEBUG).

Examples
--------
>>> import json, tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> one, two = (Schedule(2.0, folder, "0123abcd", "get") for _ in range(2))  # two processes
>>> state = lambda: json.loads(one.path.read_text())
>>> first = one.acquire()
>>> round(state()["tat"] - first.at, 3)  # the account's steady pace, for every process
0.505
>>> first.expected  # our starts leave one slot of the bucket
1
>>> one.observe(first, remaining=1)
>>> second = two.acquire()  # the bucket's second slot: 0.1 s later, not 0.505
>>> second.number, round(second.at - first.at, 1), second.expected
(2, 0.1, 0)
>>> two.observe(second, remaining=0)  # as expected: nothing learnt
>>> third = one.acquire()  # back to the steady pace
>>> round(third.at - first.at, 1), third.expected
(0.6, 0)
>>> one.observe(third, remaining=0)
>>> fourth = two.acquire()
>>> round(fourth.at - first.at, 1), fourth.expected
(1.1, 0)
>>> sorted(p.name for p in folder.iterdir())
['ratelimit-0123abcd-get.json', 'ratelimit-0123abcd-get.lock']

When the bucket is fuller than our starts explain twice in a row, the second time beyond what
jitter explains, another integration is using it, and the account's next start waits until the
bucket, full at worst, has drained:

>>> alone = Schedule(2.0, None, "0123abcd", "get")
>>> a = alone.acquire()
>>> alone.observe(a, remaining=0)  # one slot should have been left: jitter, or someone else?
>>> time.sleep(0.6)  # (a start right on the steady pace may find a slot taken: jitter)
>>> b = alone.acquire()  # no early start while in doubt
>>> b.expected
1
>>> alone.observe(b, remaining=0)  # twice in a row: someone else
>>> round(alone._memory["next"] - b.at, 3)
1.0

At the steady pace a start is expected to leave a slot, and 5 ms of jitter take it; the start
after such an answer waits 80 ms more, and its answer tells:

>>> steady = Schedule(2.0, None, "0123abcd", "get")
>>> steady._memory.update(level=1.0, stamp=time.time() - 0.6)  # (one slot used a while ago)
>>> c = steady.acquire()
>>> d = steady.acquire()  # the steady pace: a slot left unless the network bunches c and d
>>> 0.505 <= d.at - c.at < 0.52, d.expected, d.surely
(True, 1, 0)
>>> steady.observe(d, remaining=0)  # jitter, or someone else?
>>> e = steady.acquire()  # 80 ms later than the pace: jitter cannot take its slot
>>> 0.58 <= e.at - d.at < 0.6, e.surely
(True, 1)
>>> steady.observe(e, remaining=1)  # it was jitter: back to the steady pace
>>> steady._memory["full"], "next" in steady._memory
(0, False)
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout

__all__ = ["Schedule", "Ticket"]

log = logging.getLogger("jetti_frames.transport")

#: The share of each interval left unused, so that the bucket drains a little faster than it fills.
MARGIN = 0.01
#: Seconds of network jitter the schedule leaves room for in the bucket after an early start.
RESERVE = 0.1
#: Seconds by which the network may bring two arrivals closer than their starts: what an
#: answer's ``X-RateLimit-Remaining`` is expected to be allows for it.
JITTER = 0.03
#: Seconds without early starts once another integration showed itself (or after a 429); and
#: how long an answer that showed the bucket ours alone allows them.
QUIET = 60.0
#: Answers in a row finding the bucket full that mean another integration is using it, when
#: the network's jitter cannot explain the last one.
FULL_IN_A_ROW = 2
#: Seconds beyond :data:`JITTER` by which the start after a full bucket settles the doubt: a
#: request that opens a connection on a busy machine arrives tens of milliseconds late.
SETTLE = 0.05
#: How ``interval`` widens after a 429, and narrows back with every answer that leaves a slot.
WIDEN, NARROW = 1.25, 0.98
#: The widest ``interval``, in multiples of ``1 / rate``.
WIDEST = 8.0
#: A ``next`` further ahead than this (seconds) is a clock jump or a stale file: ignored.
HORIZON = 180.0
#: Seconds between two tries of a lock file held by another process (held for microseconds).
POLL = 0.001
#: Seconds to wait for the lock file before the schedule falls back to the process.
LOCK_TIMEOUT = 10.0

_FIELDS = ("next", "tat", "calm", "clear", "interval", "level", "stamp", "sent", "full")
T = TypeVar("T")


@dataclass
class Ticket:
    """One start granted by :meth:`Schedule.acquire`.

    ``at`` is its wall-clock time, ``number`` its rank among the account's starts, ``expected``
    the ``X-RateLimit-Remaining`` our own starts leave (when nobody else uses the bucket),
    ``waited`` the seconds the caller waited.
    """

    at: float
    number: int
    expected: int = 1
    waited: float = 0.0
    #: The least ``X-RateLimit-Remaining`` the network's jitter explains.
    surely: int = 1


class Schedule:
    """The start times of one account's requests of one kind, shared through ``folder``.

    Parameters
    ----------
    rate : float
        Requests per second the account may start.
    burst : int
        The capacity of the server's bucket (2 for Jetti); 1 never starts early.
    folder : Path or None
        Where the state file lives (the cache directory); None keeps it in the process.
    account : str
        The account id (never the token).
    kind : str
        ``"get"`` or ``"write"``: one schedule each.
    """

    def __init__(self, rate: float, folder: Path | None, account: str, kind: str, *,
                 burst: int = 2) -> None:
        self.rate = rate
        self.burst = burst
        #: How early (seconds before ``tat``) a start may come when the bucket is ours alone.
        self.tolerance = max(0.0, (burst - 1) / rate - RESERVE)
        self.path: Path | None = None
        self._file_lock: FileLock | None = None
        self._lock = threading.Lock()
        self._memory: dict[str, float] = {}
        self._made = False
        if folder is None:
            log.debug("no cache directory: the %s rate limit of account %s is shared in this "
                      "process only", kind, account)
        else:
            self.path = Path(folder) / f"ratelimit-{account}-{kind}.json"
            self._file_lock = FileLock(self.path.with_suffix(".lock"), timeout=LOCK_TIMEOUT)

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "this process"
        return f"Schedule(rate={self.rate:g}, burst={self.burst}, shared through {where})"

    @property
    def shared(self) -> bool:
        """True while the state lives in the file, shared with the user's other processes."""
        return self.path is not None

    # -- the three operations ------------------------------------------------------------
    def acquire(self) -> Ticket:
        """Block until the account's next request may start; the start's :class:`Ticket`."""
        began = time.monotonic()
        while True:
            granted = self._update(self._start)
            if isinstance(granted, Ticket):
                granted.waited = time.monotonic() - began
                return granted
            time.sleep(min(granted, 1.0))  # then look again: an answer may have moved `next`

    def observe(self, ticket: Ticket, remaining: int) -> None:
        """Learn from the ``X-RateLimit-Remaining`` of the answer to ``ticket``'s request."""

        def change(state: dict[str, float]) -> tuple[str, float] | None:
            if remaining >= ticket.expected:
                if remaining > 0:  # a slot was left: nobody else, and the pace may narrow
                    state.update(full=0, clear=time.time())
                    state["interval"] = max(self._base(), self._interval(state) * NARROW)
                return None  # (the bucket full as our own starts fill it: nothing learnt)
            if remaining < ticket.surely:  # not the network's doing: no early start for now
                state["clear"] = 0.0
            state["full"] = full = state.get("full", 0) + 1
            if full < FULL_IN_A_ROW or remaining >= ticket.surely:
                if full > 1:
                    return None  # (a start made before the doubt: the settling one will tell)
                self._settle(state)
                return "doubt", state["tat"]
            # at worst the bucket was full after this request: wait until it has drained the
            # account's starts since and two slots more, one for the next start and one spare
            later = max(0.0, state.get("sent", ticket.number) - ticket.number)
            self._hold(state, ticket.at + (2 + later) / self.rate)
            return "elsewhere", state["next"]

        learnt = self._update(change)
        if learnt is None:
            return
        kind, when = learnt  # logged once the lock is released
        if kind == "doubt":
            log.debug("the account's bucket was fuller than expected after request %d: the "
                      "next start, in %.3f s, settles whether someone else uses it",
                      ticket.number, when - time.time())
        else:
            log.debug("the account's bucket is in use elsewhere (full after request %d): next "
                      "start in %.3f s", ticket.number, when - time.time())

    def pause(self, seconds: float) -> None:
        """No request of the account starts in the next ``seconds`` (after a 429)."""

        def change(state: dict[str, float]) -> None:
            self._hold(state, time.time() + seconds)
            state["interval"] = min(self._interval(state) * WIDEN, WIDEST / self.rate)

        self._update(change)

    # -- state ---------------------------------------------------------------------------
    def _base(self) -> float:
        return (1 + MARGIN) / self.rate

    def _interval(self, state: dict[str, float]) -> float:
        return min(max(state.get("interval", 0.0), self._base()), WIDEST / self.rate)

    def _settle(self, state: dict[str, float]) -> None:
        """The next start waits until even an arrival :data:`JITTER` seconds early finds a slot
        free: the network cannot explain a full bucket in its answer."""
        level, stamp = state.get("level", 0.0), state.get("stamp", 0.0)
        state["tat"] = max(state.get("tat", 0.0), stamp + level / self.rate + JITTER + SETTLE)

    @staticmethod
    def _hold(state: dict[str, float], until: float) -> None:
        """No start before ``until``, and none early for :data:`QUIET` seconds: someone else
        uses the bucket."""
        state["next"] = max(state.get("next", 0.0), until)
        state["calm"] = max(state.get("calm", 0.0), time.time() + QUIET)
        state["clear"] = 0.0

    def _start(self, state: dict[str, float]) -> Ticket | float:
        """Start now (a :class:`Ticket`) or the seconds to wait before asking again."""
        now = time.time()
        nxt = state.get("next", 0.0)
        if now < nxt <= now + HORIZON:
            return nxt - now
        tat = state.get("tat", 0.0)
        if tat > now + HORIZON:
            tat = 0.0  # a clock jump or a stale file
        calm, clear = state.get("calm", 0.0), state.get("clear", 0.0)
        ours = state.get("full", 0) == 0 and now - QUIET <= clear <= now
        shared = now < calm <= now + HORIZON  # someone else showed itself lately
        early = self.tolerance if ours and not shared else 0.0
        if now < tat - early:
            return tat - early - now
        interval = self._interval(state)
        # while someone else uses the bucket, a request of theirs between two of ours must
        # find room even when the network brings ours JITTER seconds closer together
        pace = max(interval, 1 / self.rate + JITTER) if shared else interval
        stamp = min(state.get("stamp", now), now)
        before = state.get("level", 0.0)
        level = max(0.0, before - (now - stamp) * self.rate) + 1
        # the server counts arrivals, which the network moves by a few milliseconds: as full
        # as a start JITTER seconds closer to the one before would leave it, no fuller
        worst = max(0.0, before - max(0.0, now - stamp - JITTER) * self.rate) + 1
        number = int(state.get("sent", 0)) + 1
        state.update(tat=max(tat, now) + pace, interval=interval, level=level, stamp=now,
                     sent=number)
        return Ticket(at=now, number=number, expected=max(0, int(self.burst - level + 1e-9)),
                      surely=max(0, int(self.burst - worst + 1e-9)))

    def _update(self, change: Callable[[dict[str, float]], T]) -> T:
        """Apply ``change`` to the state under the locks; the file's, while it can be used."""
        with self._lock:
            if self._file_lock is not None and self.path is not None:
                try:
                    if not self._made:
                        self.path.parent.mkdir(parents=True, exist_ok=True)
                        self._made = True
                    with self._file_lock.acquire(poll_interval=POLL):
                        state = self._read(self.path)
                        result = change(state)
                        self.path.write_text(json.dumps(state, separators=(",", ":")))
                    return result
                except (OSError, Timeout) as exc:
                    log.debug("cannot use %s (%s): the rate limit is shared in this process "
                              "only", self.path, type(exc).__name__)
                    self._file_lock = None
                    self.path = None
            return change(self._memory)

    @staticmethod
    def _read(path: Path) -> dict[str, float]:
        """The state in ``path``; a missing, damaged or odd file reads as a fresh state."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError):
            log.debug("ignoring the damaged rate-limit state in %s", path)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {k: float(v) for k, v in raw.items() if k in _FIELDS
                and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
