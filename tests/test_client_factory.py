"""One way to a client: arguments, then JETTI_* variables; what is made for a call is closed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jetti_frames import JettiClient, JettiConfigError, read_jetti, refresh_snapshot, snapshot
from jetti_frames.cli import main
from jetti_frames.client import open_client
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN
from jetti_frames.widgets import QueryForm, query_form

ROOT = Path(__file__).resolve().parent.parent


def transport_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("jetti-transport")}


def leaves_no_worker(call: Callable[[], Any]) -> Any:
    """Run ``call``; assert that it started transport workers and that none outlives it."""
    before = transport_threads()
    seen: set[threading.Thread] = set()
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("jetti-transport"):
            seen.add(thread)
        original(thread)

    threading.Thread.start = start  # type: ignore[method-assign]
    try:
        result = call()
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    assert seen, "the call read through a transport of its own"
    assert transport_threads() - before == set(), "a client made for the call was left open"
    return result


@pytest.fixture
def env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Sandbox:
    """JETTI_* variables pointing at the shared sandbox, the cache in a tmp dir."""
    monkeypatch.setenv("JETTI_API_TOKEN", SANDBOX_TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    return sandbox


def test_read_jetti_closes_the_client_it_made(env: Sandbox) -> None:
    df = leaves_no_worker(lambda: read_jetti("purchase-statuses", progress=False))
    assert len(df) > 0


def test_snapshot_and_refresh_close_the_client_they_made(env: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "statuses"
    info = leaves_no_worker(lambda: snapshot("purchase-statuses", path, progress=False))
    assert info.rows > 0
    again = leaves_no_worker(lambda: refresh_snapshot(path, progress=False))
    assert again.rows == info.rows


def test_arguments_win_over_the_environment(sandbox: Sandbox, make_sandbox: Callable[..., Sandbox],
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    other = make_sandbox(purchases=5, tokens=("other-t0ken",))
    monkeypatch.setenv("JETTI_API_TOKEN", "other-t0ken")
    monkeypatch.setenv("JETTI_BASE_URL", other.base_url)
    monkeypatch.setenv("JETTI_PAGE_SIZE", "7")
    with open_client(cache=False) as client:
        assert (client.base_url, client.settings.page_size) == (other.base_url, 7)
    with open_client(token=SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False,
                     page_size=None) as client:  # None: left to the variables
        assert (client.base_url, client.settings.page_size) == (sandbox.base_url, 7)
    df = read_jetti("purchases", token=SANDBOX_TOKEN, base_url=sandbox.base_url,
                    attributes=["id"], limit=3, progress=False)
    assert len(df) == 3


def test_a_given_client_is_used_as_it_is_and_left_open(sandbox: Sandbox) -> None:
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False,
                     progress=False) as client:
        with open_client(client) as same:
            assert same is client
        with pytest.raises(JettiConfigError, match="token only when no client"):
            read_jetti("purchase-statuses", client=client, token="t")
        assert len(read_jetti("purchase-statuses", client=client)) > 0  # still open


def test_the_command_line_reads_settings_through_the_factory_and_closes(
        env: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code = leaves_no_worker(lambda: main(["read", "purchase-statuses", "--quiet"]))
    assert code == 0 and "id" in capsys.readouterr().out.splitlines()[0]
    monkeypatch.setenv("JETTI_PAGE_SIZE", "0")  # read by Settings, refused before any request
    assert main(["read", "purchase-statuses"]) == 1
    assert "page_size must be a number >= 1" in capsys.readouterr().err


def test_a_form_closes_the_client_it_made_but_not_a_given_one(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JETTI_API_TOKEN", SANDBOX_TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", sandbox.base_url)
    form = query_form(cache=False)
    assert not form.started_sandbox and form.client.base_url == sandbox.base_url

    def preview_then_close() -> None:
        form.resource.value = "purchase-statuses"
        form.preview.click()
        assert form.wait(timeout=60) is not None, form.error.value
        form.close()

    leaves_no_worker(preview_then_close)
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False,
                     progress=False) as client:
        QueryForm(client).close()
        assert len(client.read("purchase-statuses")) > 0


def test_field_pickers_explain_the_picked_fields(sandbox: Sandbox) -> None:
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False,
                     progress=False) as client:
        form = QueryForm(client)
        form.resource.value = "dropship-providers"
        assert form.attributes.tooltip.startswith("dropship-providers fields to read")
        form.attributes.value = ("name", "commissionRate")
        assert form.attributes.tooltip == (
            "name: text\n\ncommissionRate: number, may be null\n"
            "This is the percentage or fixed amount of the price you will keep.")
        form.resource.value = "purchases"
        form.include.value = ("DropshipProvider",)
        picker = form.include_attributes["DropshipProvider"]
        assert "fields to read" in picker.tooltip
        picker.value = ("commissionRate",)
        assert "price you will keep" in picker.tooltip
        form.attributes.value = tuple(n for _, n in form.attributes.options[:20])
        assert form.attributes.tooltip.endswith("... and 8 more")


CALLER = '''\
from jetti_frames import JettiClient, get_jetti

client = JettiClient("t", base_url="http://127.0.0.1:9/api/", cache=False, retries=2)
reveal_type(client.get("purchases", 1))
reveal_type(client.get("purchases", 1, as_frame=True))
reveal_type(get_jetti("purchases", 1, as_frame=True))
JettiClient("t", retrys=2)
'''


def test_client_options_and_get_are_typed(tmp_path: Path) -> None:
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / ".mypy_cache"), "--no-error-summary", str(caller)],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": str(ROOT)}, capture_output=True,
        text=True, check=False)
    lines = result.stdout.splitlines()
    revealed = [m.group(1).replace("builtins.", "") for line in lines
                if (m := re.search(r"note: Revealed type is \"(.*)\"$", line))]
    assert revealed == ["dict[str, Any]", "pandas.core.frame.DataFrame",
                        "pandas.core.frame.DataFrame"], result.stdout
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 1 and 'Unexpected keyword argument "retrys"' in errors[0], lines
