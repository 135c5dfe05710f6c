"""Requests sent on speculation, withdrawn when the answer they wait for makes them useless:
:class:`Hold` and :class:`Withdrawn`.

On a slow server a read's first answer takes longer than a slot of the allowance: the slots
that pass meanwhile are lost unless something is sent in them, and what to send depends on that
answer (a full first page is followed by more pages, a short one ends the read).  A page sent in
such a slot carries a :class:`Hold`.  Before it takes a slot of the rate limiter it waits until
the deciding answer is in or :attr:`Hold.seconds` have passed (the answer is slow: the slot is
worth taking), and it is withdrawn, without leaving the process, when that answer said it is not
needed, before or once it has its slot.  So a small read costs what it did on a fast server or
from the cache, and only a read
whose first answer is slower than :attr:`Hold.seconds` may send a page it then ignores.

Examples
--------
>>> hold = Hold(seconds=5.0)
>>> hold.decide(False)     # the first page came back short
>>> hold.go()              # at once: no need to wait out the 5 s
False
>>> slow = Hold(seconds=0.01)
>>> slow.go()              # nothing decided in time: sent on speculation
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
        How long the requests wait for the decision, from when the hold is made.
    """

    #: A first answer slower than this lets a held page take its slot anyway.  Jetti's
    #: allowance has a slot every half second: a faster answer loses none.
    SECONDS = 0.5

    def __init__(self, seconds: float = SECONDS) -> None:
        self.seconds = seconds
        self._until = time.monotonic() + seconds
        self._decided = threading.Event()
        self._wanted = True

    @property
    def decided(self) -> bool:
        return self._decided.is_set()

    @property
    def withdrawn(self) -> bool:
        """Decided: not wanted."""
        return self.decided and not self._wanted

    def decide(self, wanted: bool) -> None:
        """The deciding answer is in: the held requests are ``wanted`` or not."""
        self._wanted = wanted
        self._decided.set()

    def go(self) -> bool:
        """Wait for the decision (at most until :attr:`seconds` after the hold was made);
        whether the request goes out."""
        self._decided.wait(max(0.0, self._until - time.monotonic()))
        return not self.withdrawn
