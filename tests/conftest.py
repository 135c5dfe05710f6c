"""Shared fixtures: a real sandbox server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import TOKEN as CLI_TOKEN

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


@pytest.fixture(scope="module")
def cli_sandbox() -> Iterator[Sandbox]:
    """A sandbox of 120 purchases for the command-line tests, accepting their token."""
    with Sandbox(purchases=120, rate="off", tokens=(CLI_TOKEN,)) as sb:
        yield sb


@pytest.fixture
def cli_env(cli_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Sandbox:
    """JETTI_* variables pointing at ``cli_sandbox``; the HTTP cache in a tmp dir."""
    monkeypatch.setenv("JETTI_API_TOKEN", CLI_TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", cli_sandbox.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    return cli_sandbox
