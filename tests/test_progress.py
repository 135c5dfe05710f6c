"""What a read tells while it runs and before: the progress bar and ``explain``.

The bar is drawn on a stand-in terminal (a text buffer that says it is one), so every redraw
can be read back; counts are asserted, never times.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from jetti_frames import JettiClient
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN

FAST = {"get_rate": 1000.0}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """Standard error as a terminal (set in the test itself: pytest's capture would replace
    it after the fixtures)."""
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    return screen


def redraws(screen: Terminal) -> list[str]:
    return [s for s in re.split(r"[\r\n]", screen.getvalue()) if s.strip()]


def test_the_bar_gets_a_total_and_ends_at_the_true_counts(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_terminal(monkeypatch)
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=tmp_path / "c.sqlite",
                     progress=True, **FAST) as client:
        df = client.read("purchases", attributes=["id", "total"])
    stats = client.last_stats
    lines = redraws(terminal)
    last = lines[-1]
    assert f"{stats.pages}/{stats.pages} [" in last
    assert (f"{len(df):,} rows, {stats.requests} requests, {stats.cache_hits} cache hits, "
            f"{stats.status_429} x 429, ") in last
    assert len(df) == stats.rows == 3000
    totals = [int(m.group(2)) for line in lines[:-1]
              if (m := re.search(r"(\d+)/(\d+) \[", line))]
    assert totals, "no total was shown before the end"
    assert 0.75 * stats.pages <= totals[0] <= 1.5 * stats.pages
    shown = [int(m.group(1)) for line in lines if (m := re.search(r"rows=(\d+)", line))]
    assert shown == sorted(shown) and max(shown) <= 3000
    assert terminal.getvalue().endswith("\n")  # the summary line stays


def test_a_limited_read_knows_its_total_and_a_quiet_read_draws_nothing(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_terminal(monkeypatch)
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False,
                     **FAST) as client:
        client.read("purchases", attributes=["id"], limit=450, progress=False)
        assert terminal.getvalue() == ""
        client.read("purchases", attributes=["id"], limit=450, progress=True)
    last = redraws(terminal)[-1]
    assert "5/5 [" in last and "450 rows, 5 requests" in last


@pytest.mark.parametrize("where", [None, {"purchaseType": "dropship"}])
def test_explain_probes_with_two_requests_and_estimates_the_pages(
        sandbox: Sandbox, tmp_path: Path, where: dict[str, str] | None) -> None:
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=tmp_path / "c.sqlite",
                     progress=False, **FAST) as client:
        sent = sandbox.counters(SANDBOX_TOKEN)["requests"]
        blind = client.explain("purchases", where=where)
        assert sandbox.counters(SANDBOX_TOKEN)["requests"] == sent
        assert blind.estimated_requests is None and blind.estimated_seconds is None
        assert "unknown" in str(blind) and "probe=True" in str(blind)
        probed = client.explain("purchases", where=where, probe=True)
        assert sandbox.counters(SANDBOX_TOKEN)["requests"] - sent <= 2
        assert probed.probed and probed.estimated_seconds is not None
        client.read("purchases", where=where)
        stats = client.last_stats
    assert stats.cache_hits == 2  # the read starts with the two requests of the probe
    assert probed.estimated_requests is not None
    assert abs(probed.estimated_requests - stats.pages) <= max(3, 0.2 * stats.pages)
    assert f"about {probed.estimated_requests} request(s)" in str(probed)


def test_explain_knows_the_total_of_bounded_reads(sandbox: Sandbox) -> None:
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False, progress=False,
                     **FAST) as client:
        ids = [r["id"] for r in sandbox.query("SELECT id FROM purchases LIMIT 45")]
        for options in ({"limit": 450}, {"where": {"id": ids}}):
            plan = client.explain("purchases", **options)
            client.read("purchases", **options)
            assert plan.estimated_requests == client.last_stats.requests
