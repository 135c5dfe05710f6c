"""Driving a pure :class:`~jetti_frames._top.TopPager` against an in-memory table in tests."""

from __future__ import annotations

import random
from typing import Any, Protocol

from jetti_frames._pages import PageRequest
from jetti_frames._top import TopPager


class Answers(Protocol):
    def answer(self, req: PageRequest) -> list[dict[str, Any]]: ...


def run_top(pager: TopPager, table: Answers, rng: random.Random) -> list[int]:
    """Answers in random order; the ids of the result."""
    pending: list[PageRequest] = []
    while not pager.done:
        pending += pager.next_requests()
        assert pending, "the pager stalled"
        req = pending.pop(rng.randrange(len(pending)))
        pager.on_page(req, table.answer(req))
    return [int(r["id"]) for r in pager.result()]
