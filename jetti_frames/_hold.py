"""Requests sent on speculation, withdrawn when the answer they wait for makes them useless:
:class:`Hold` and :class:`Withdrawn`.

On a slow server a read's first answer takes longer than a slot of the allowance: the slots
that pass meanwhile are lost unless something is sent in them, and what to send depends on that
answer (a full first page is followed by more pages, a short one ends the read).  A page sent in
such a slot carries a :class:`Hold`.  Before it takes a slot of the rate limiter it waits for
the decision, and it is withdrawn, without leaving the process, when the decision says it is
not needed, before or once it has its slot.

It stops waiting only when the *server* is slow: :attr:`Hold.seconds` after the deciding
request took its slot, with no answer in.  Once the answer is in, the held page waits for the
reader to decide, however long the reader takes (a busy machine, a slow consumer of the pages).
So how many requests a read sends depends on the server's answers and its speed, never on the
client's: a small read costs what it did on a fast server or from the cache.

Examples
--------
>>> hold = Hold(seconds=5.0)
>>> hold.decide(False)     # the first page came back short
>>> hold.go()              # at once: no need to wait out the 5 s
False
>>> slow = Hold(seconds=0.01)
>>> slow.expect()          # the deciding request is submitted,
>>> slow.begin()           # has its slot ...
>>> slow.go()              # ... and no answer after 0.01 s: sent on speculation
True
"""

from __future__ import annotations

import threading
import time

__all__ = ["Hold", "Withdrawn"]


class Withdrawn(Exception):
    """A held request was not sent: the answer it waited for made it useless."""


class Hold:
    """Whether a request sent on speculation still goes out (shared by the requests of one
    speculation, decided once).

    Parameters
    ----------
    seconds : float
        How long the held requests wait for the deciding answer, from when the deciding
        request has its slot (:meth:`begin`).
    """

    #: A first answer slower than this lets a held page take its slot anyway.  Jetti's
    #: allowance has a slot every half second: a faster answer loses none.
    SECONDS = 0.5
    #: The longest a held request waits in any case (a reader that never decides).
    LIMIT = 60.0

    def __init__(self, seconds: float = SECONDS) -> None:
        self.seconds = seconds
        self._cond = threading.Condition()
        self._until: float | None = None  # set when a deciding request has its slot
        self._awaited = 0  # deciding requests sent and not answered
        self._expected = False
        self._decided = False
        self._wanted = True

    @property
    def decided(self) -> bool:
        return self._decided

    @property
    def withdrawn(self) -> bool:
        """Decided: not wanted."""
        return self._decided and not self._wanted

    def expect(self) -> None:
        """A deciding request is submitted (a hold may wait for two answers)."""
        with self._cond:
            self._awaited += 1
            self._expected = True

    def begin(self) -> None:
        """A deciding request has its slot: the server's time starts now (once)."""
        with self._cond:
            if self._until is None:
                self._until = time.monotonic() + self.seconds
                self._cond.notify_all()

    def arrived(self) -> None:
        """A deciding answer is in (or failed): once all are, only the reader's decision is
        awaited."""
        with self._cond:
            self._awaited -= 1
            self._cond.notify_all()

    @property
    def _answered(self) -> bool:
        return self._expected and self._awaited <= 0

    def decide(self, wanted: bool) -> None:
        """The deciding answer is read: the held requests are ``wanted`` or not."""
        with self._cond:
            if not self._decided:
                self._wanted, self._decided = wanted, True
                self._cond.notify_all()

    def go(self) -> bool:
        """Wait for the decision, or until the server has taken :attr:`seconds` without
        answering; whether the request goes out."""
        limit = time.monotonic() + self.LIMIT
        with self._cond:
            while not self._decided:
                now = time.monotonic()
                if now >= limit:
                    break
                if self._until is not None and not self._answered:
                    if now >= self._until:
                        break  # the server is slow: the slot is worth taking
                    self._cond.wait(min(self._until, limit) - now)
                else:
                    self._cond.wait(limit - now)
            return not self.withdrawn
