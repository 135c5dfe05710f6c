"""A real browser drives the query form: notebook 03 served by Voila, headless Chromium.

Skipped locally when Chromium is missing; with ``CI`` set, a missing browser fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from browser_support import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    NOTEBOOKS,
    PAGE_SIZE,
    chromium_path,
    notebook_env,
    serve_voila,
)

from jetti_frames.sandbox import Sandbox

pytestmark = pytest.mark.browser

TOKEN = "browser-test-t0ken-77e0"
LIMIT = 12  # Max rows set in the form (the table shows up to 50)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        reason = ("Chromium is not installed (apt-get install chromium, or "
                  "python tests/browser_support.py install)")
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run the browser test")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(purchases=600, rate="off", max_limit=PAGE_SIZE, tokens=(TOKEN,)) as sb:
        yield sb


@pytest.fixture(scope="module")
def voila_url(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("voila")
    env = notebook_env(sandbox.base_url, TOKEN, tmp)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve_voila(NOTEBOOKS / "03-query-form.ipynb", env, log=ARTIFACTS / "voila.log") as url:
        yield url


@pytest.fixture
def page(chromium: str, voila_url: str) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 1600})
            tab.set_default_timeout(60_000)
            tab.goto(voila_url, wait_until="domcontentloaded")
            yield tab
        finally:
            browser.close()


def test_form_previews_filtered_rows_in_the_browser(page: Any, sandbox: Sandbox,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    form = page.locator(".jf-query-form")
    form.wait_for(state="visible")
    assert "Sandbox data" in page.locator(".jf-header").inner_text()
    code = page.locator(".jf-code textarea")

    # Pick a resource: the searchable combobox (another one first, then purchases).
    resource = page.locator(".jf-resource input")
    resource.fill("purchase-statuses")
    page.wait_for_function(
        "() => document.querySelector('.jf-code textarea').value.includes('purchase-statuses')")
    resource.fill("purchases")
    page.wait_for_function(
        "() => document.querySelector('.jf-code textarea').value.includes('\"purchases\"')")

    page.locator(".jf-attributes select").select_option(["reference", "total", "purchaseType"])
    # Add a filter: purchaseType = dropship (the value input becomes the enum's dropdown).
    page.locator("button.jf-add-filter").click()
    row = page.locator(".jf-filter").first
    row.locator("select").first.select_option("purchaseType")
    row.locator(".jf-filter-value select").select_option("dropship")
    page.wait_for_function(
        "() => document.querySelector('.jf-code textarea').value.includes(\"'dropship'\")")

    # Order by total, descending (the direction is disabled until a field is picked).
    direction = page.locator(".jf-query-form .widget-toggle-buttons button")
    assert direction.first.is_disabled()
    page.locator(".jf-order select").select_option("total")
    page.wait_for_function("() => document.querySelector('.jf-code textarea').value"
                           ".includes(\"order='total'\")")
    assert not direction.first.is_disabled()
    direction.filter(has_text="descending").click()
    page.wait_for_function("() => document.querySelector('.jf-code textarea').value"
                           ".includes(\"order='-total'\")")
    # Max rows: the code box says the same limit (0, the default, means no limit at all).
    assert "limit=" not in code.input_value()
    max_rows = page.locator(".jf-max-rows input")
    max_rows.fill(str(LIMIT))
    max_rows.press("Enter")
    page.wait_for_function(
        f"() => document.querySelector('.jf-code textarea').value.includes('limit={LIMIT},')")

    page.locator("button.jf-preview").click()
    page.locator(".jf-stats .jf-rows").wait_for(state="visible")

    truth = sandbox.query("SELECT reference, total FROM purchases "
                          "WHERE purchaseType = 'dropship' ORDER BY total DESC, id LIMIT ?",
                          [LIMIT])
    assert len(truth) == LIMIT
    assert f"{LIMIT:,} rows" in page.locator(".jf-stats").inner_text()
    cells = page.locator(".jf-table table tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.innerText))")
    # Columns come in the attribute picker's order: purchaseType, reference, total.
    assert {c[0] for c in cells} == {"dropship"}
    assert [c[1] for c in cells] == [r["reference"] for r in truth]
    assert [float(c[2]) for c in cells] == [r["total"] for r in truth]

    text = code.input_value()
    assert text == (
        "from jetti_frames import read_jetti\n\n"
        "df = read_jetti(\n"
        '    "purchases",\n'
        "    where={'purchaseType': 'dropship'},\n"
        "    attributes=['purchaseType', 'reference', 'total'],\n"
        "    order='-total',\n"
        f"    limit={LIMIT},\n"
        ")"
    )
    # The whole call is in view: a row per line, nothing scrolled out of sight.
    assert code.evaluate("t => t.scrollHeight <= t.clientHeight + 2")
    assert max_rows.input_value() == str(LIMIT)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "query-form.png"), full_page=True)

    # The code shown, run here against the same sandbox, gives the rows the table shows.
    monkeypatch.setenv("JETTI_API_TOKEN", TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(ARTIFACTS / "browser-cache.sqlite"))
    namespace: dict[str, Any] = {}
    exec(compile(text, "<form code>", "exec"), namespace)
    df: pd.DataFrame = namespace["df"]
    assert len(df) == LIMIT
    assert df["reference"].tolist() == [c[1] for c in cells]
    Path(ARTIFACTS / "browser-cache.sqlite").unlink(missing_ok=True)
