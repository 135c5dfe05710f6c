"""Shared fixtures: a real sandbox server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox with default data (seed 0, 3000 purchases) and no rate limit.

    Shared by the whole session: tests must not mutate its data; use ``make_sandbox`` for that.
    """
    with Sandbox(rate="off") as sb:
        yield sb


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Factory for function-scoped sandboxes with their own knobs (stopped after the test)."""
    started: list[Sandbox] = []

    def factory(**options: Any) -> Sandbox:
        options.setdefault("purchases", 300)
        sb = Sandbox(**options).start()
        started.append(sb)
        return sb

    yield factory
    for sb in started:
        sb.stop()


@pytest.fixture(scope="session")
def auth() -> dict[str, str]:
    """Headers carrying the sandbox token."""
    return {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
