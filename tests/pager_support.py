"""Driving a pure :class:`~jetti_frames._top.TopPager` against an in-memory table in tests."""

from __future__ import annotations

import random
from typing import Any, Protocol

from jetti_frames._pages import PageRequest
from jetti_frames._top import TopPager


class Answers(Protocol):
    def answer(self, req: PageRequest) -> list[dict[str, Any]]: ...


def run_top(pager: TopPager, table: Answers, rng: random.Random) -> list[int]:
    """Answers in random order, a held request once its hold is decided (withdrawn when
    not wanted, as the transport does); the ids of the result."""
    pending: list[PageRequest] = []
    while not pager.done:
        pending += pager.next_requests()
        assert pending, "the pager stalled"
        ready = [k for k, r in enumerate(pending) if r.hold is None or r.hold.decided]
        req = pending.pop(rng.choice(ready or range(len(pending))))
        if req.hold is not None and req.hold.withdrawn:
            pager.on_withdrawn(req)
            continue
        pager.on_page(req, table.answer(req))
    return [int(r["id"]) for r in pager.result()]
