"""The query form, driven as a user would: set widget values, click buttons, read ``form.df``.

Every read goes to a real sandbox over 127.0.0.1; background jobs are joined with ``form.wait()``.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
import pytest

from jetti_frames import transport
from jetti_frames.catalog import CATALOG
from jetti_frames.client import JettiClient
from jetti_frames.errors import JettiQueryError
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN
from jetti_frames.snapshot import read_snapshot
from jetti_frames.widgets import (
    ANALYTICS_RESOURCES,
    QueryForm,
    build_where,
    parse_list,
    query_form,
    resource_options,
)

TOKEN = "widget-test-t0ken-91c2"
PAGE = 50


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """A read-only sandbox for this module: 300 purchases, no rate limit, a private token."""
    with Sandbox(purchases=300, rate="off", tokens=(TOKEN, SANDBOX_TOKEN)) as sandbox:
        yield sandbox


def make_client(sb: Sandbox, **options: Any) -> JettiClient:
    options.setdefault("page_size", PAGE)
    options.setdefault("get_rate", 1000.0)
    return JettiClient(options.pop("token", TOKEN), base_url=sb.base_url, cache=False,
                       progress=False, **options)


@pytest.fixture
def form(sb: Sandbox) -> QueryForm:
    return QueryForm(make_client(sb))


def run(form: QueryForm, button: w.Button) -> pd.DataFrame | None:
    button.click()
    return form.wait(timeout=60)


def exec_code(code: str) -> pd.DataFrame:
    """Run the form's code in a fresh namespace; return the ``df`` it defines."""
    namespace: dict[str, Any] = {}
    exec(compile(code, "<form code>", "exec"), namespace)
    return namespace["df"]


# -- pure helpers ---------------------------------------------------------------------------


def test_resource_options_put_analytics_first_and_list_everything() -> None:
    options = resource_options()
    assert options[:5] == ["purchases", "purchase-items", "purchase-statuses", "sales",
                           "sale-items"]
    assert sorted(options) == sorted(r.url for r in CATALOG)
    assert len(options) == len(set(options))
    rest = options[len([r for r in ANALYTICS_RESOURCES if r in CATALOG]):]
    assert rest == sorted(rest)


def test_build_where_merges_and_rejects_conflicts() -> None:
    where = build_where([("total", "$gte", 10.0), ("saleId", "is null", None),
                         ("total", "$lt", 50.0), ("purchaseType", "=", "dropship"),
                         ("vendorId", "is not null", None)])
    assert where == {"total": {"$gte": 10.0, "$lt": 50.0}, "saleId": None,
                     "purchaseType": "dropship", "vendorId": {"$ne": None}}
    with pytest.raises(JettiQueryError, match="cannot be combined"):
        build_where([("total", "$gte", 1.0), ("total", "=", 2.0)])
    with pytest.raises(JettiQueryError):
        build_where([("total", "$gte", 1.0), ("total", "$gte", 2.0)])


def test_parse_list_types_values_and_reports_bad_ones() -> None:
    assert parse_list("integer", "3, 1,,2 ") == [3, 1, 2]
    assert parse_list("number", "1.5,2") == [1.5, 2.0]
    assert parse_list("enum", "dropship, replenishment") == ["dropship", "replenishment"]
    with pytest.raises(JettiQueryError, match="'x' is not a valid integer"):
        parse_list("integer", "1, x")


# -- the widgets ----------------------------------------------------------------------------


def test_value_input_fits_the_field_kind(form: QueryForm) -> None:
    form.resource.value = "purchases"
    row = form.add_filter()
    expected = {"createdAt": w.DatePicker, "total": w.FloatText, "quantity": w.IntText,
                "approved": w.Checkbox, "reference": w.Text, "purchaseType": w.Dropdown}
    for field, kind in expected.items():
        row.field.value = field
        assert type(row.value) is kind, field
    assert row.value.options == CATALOG.resource("purchases").field("purchaseType").enum
    row.value.index = 1  # what a browser sends: the code box follows
    assert "where={'purchaseType': 'dropship'}" in form.code.value
    row.op.value = "$in"
    assert type(row.value) is w.Text
    row.value.value = "dropship, automated_dropship"
    assert row.condition() == ("purchaseType", "$in", ["dropship", "automated_dropship"])
    row.op.value = "is null"
    assert row.condition() == ("purchaseType", "is null", None)
    row.field.value = "tags"  # array: only null tests
    assert list(row.op.options) == ["is null", "is not null"]
    row.field.value = "createdAt"
    row.op.value = "$gte"
    row.value.value = dt.date(2024, 2, 29)
    assert row.condition() == ("createdAt", "$gte", "2024-02-29T00:00:00.000Z")
    assert row.box in form.filter_box.children
    row.remove.click()
    assert form.filters == [] and form.filter_box.children == ()


def test_include_picker_lists_only_related_models(form: QueryForm) -> None:
    for name in ("purchases", "purchase-statuses", "sale-items"):
        form.resource.value = name
        res = CATALOG.resource(name)
        related = {r.model for r in (*res.belongs_to, *res.has_many) if r.model in CATALOG}
        assert {model for _, model in form.include.options} == related
    form.resource.value = "purchases"
    form.include.value = ("PurchaseStatus", "DropshipProvider")
    picker = form.include_attributes["PurchaseStatus"]
    assert {name for _, name in picker.options} == set(CATALOG.model("PurchaseStatus").field_names)
    picker.value = ("name",)
    assert form.options()["include"] == [{"model": "PurchaseStatus", "attributes": ["name"]},
                                         "DropshipProvider"]
    form.resource.value = "sales"  # a new resource starts clean
    assert form.include.value == () and form.include_attributes == {} and form.filters == []


def test_preview_reads_the_first_page_only(form: QueryForm, sb: Sandbox) -> None:
    form.resource.value = "purchases"
    form.attributes.value = ("reference", "total", "purchaseType")
    form.add_filter("purchaseType", "=", "dropship")
    df = run(form, form.preview)
    truth = sb.query("SELECT reference FROM purchases WHERE purchaseType = 'dropship' "
                     "ORDER BY id")
    assert len(truth) > PAGE
    assert df is not None and df["reference"].tolist() == [r["reference"] for r in truth[:PAGE]]
    assert list(df.columns) == ["reference", "total", "purchaseType"]
    assert form.client.last_stats.requests == 1
    assert f"<b>{PAGE}</b> rows" in form.stats.value and "1 request sent" in form.stats.value
    assert truth[0]["reference"] in form.table.value
    assert "limit=" not in form.code.value  # the code says what Max rows says: every row
    assert form.error.value == ""


def test_load_reads_everything_and_code_reproduces_it(form: QueryForm, sb: Sandbox,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    form.resource.value = "purchases"
    form.attributes.value = ("reference", "total", "dateOrdered")
    row = form.add_filter("purchaseType", "$in")
    row.value.value = "dropship, automated_dropship"
    form.add_filter("dateOrdered", "$gte", dt.date(2021, 1, 1))
    form.include.value = ("PurchaseStatus",)
    form.include_attributes["PurchaseStatus"].value = ("name",)
    form.order_field.value = "total"
    form.order_direction.value = "descending"
    df = run(form, form.load)
    assert form.error.value == "" and form.status.value == "load done"
    truth = sb.query(
        "SELECT p.reference, s.name FROM purchases p LEFT JOIN purchase_statuses s "
        "ON s.id = p.purchaseStatusId WHERE p.purchaseType IN ('dropship', 'automated_dropship') "
        "AND p.dateOrdered >= '2021-01-01T00:00:00+00:00' ORDER BY p.total DESC, p.id")
    assert df is not None and len(df) == len(truth) > PAGE
    assert df["reference"].tolist() == [r["reference"] for r in truth]
    assert df["purchase_status_name"].fillna("-").tolist() == [r["name"] or "-" for r in truth]
    assert form.progress.value == form.progress.max >= 2
    # The code box holds the exact call: run in a fresh namespace, it returns the same frame.
    monkeypatch.setenv("JETTI_API_TOKEN", TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", sb.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    code = form.code.value
    assert code.startswith("from jetti_frames import read_jetti\n")
    assert "order='-total'" in code and "'$in': ['dropship', 'automated_dropship']" in code
    pd.testing.assert_frame_equal(exec_code(code), df)


def test_max_rows_limits_the_load(form: QueryForm, sb: Sandbox) -> None:
    form.max_rows.value = 7
    form.order_field.value = "dateOrdered"
    df = run(form, form.load)
    assert df is not None and len(df) == 7
    truth = sb.query("SELECT id FROM purchases WHERE dateOrdered IS NOT NULL "
                     "ORDER BY dateOrdered LIMIT 7")
    assert df["id"].tolist() == [r["id"] for r in truth]
    assert "limit=7," in form.code.value


def code_limit(code: str) -> int | None:
    """The ``limit=`` of the ``read_jetti(...)`` call in the form's code (None: no limit)."""
    call = next(node for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Call))
    found = [k.value for k in call.keywords if k.arg == "limit"]
    return ast.literal_eval(found[0]) if found else None


@pytest.mark.parametrize("max_rows", [0, 7, 120])
def test_code_box_limit_equals_max_rows(form: QueryForm, max_rows: int) -> None:
    form.resource.value = "purchase-statuses"
    form.max_rows.value = max_rows
    assert code_limit(form.code.value) == (max_rows or None)
    df = run(form, form.preview)  # a preview reads one page, the code still says the form's
    assert df is not None and form.error.value == ""
    assert code_limit(form.code.value) == (max_rows or None)
    run(form, form.load)
    assert code_limit(form.code.value) == (max_rows or None)


def test_order_direction_is_disabled_without_an_order(form: QueryForm) -> None:
    assert form.order_field.value == "" and form.order_direction.disabled
    form.order_field.value = "total"
    assert not form.order_direction.disabled
    form.order_direction.value = "descending"
    assert "order='-total'" in form.code.value
    form.order_field.value = ""
    assert form.order_direction.disabled and "order=" not in form.code.value
    form.resource.value = "sales"  # a new resource starts in server order
    assert form.order_direction.disabled


def test_fields_and_includes_explain_themselves(form: QueryForm) -> None:
    row = form.add_filter("purchaseType")
    assert row.field.tooltip == ("purchaseType: one of replenishment, dropship, "
                                 "automated_dropship, automated_replenishment, "
                                 "adjusted_dropship (default replenishment)")
    assert row.value.tooltip == row.field.tooltip
    row.field.value = "cancelledAt"
    assert row.field.tooltip == "cancelledAt: date-time (UTC), may be null"
    form.order_field.value = "total"
    assert form.order_field.tooltip == "total: number"
    form.resource.value = "dropship-providers"
    row = form.add_filter("commissionRate")
    assert row.field.tooltip.startswith("commissionRate: number")
    assert "\nThis is the percentage or fixed amount of the price you will keep." in (
        row.field.tooltip)
    form.resource.value = "purchases"
    labels = [label for label, _ in form.include.options]
    assert labels and all(label in form.include.tooltip for label in labels)
    assert form.code.layout.width == "100%"


def test_exported_notebook_shows_the_result_without_widget_state(form: QueryForm) -> None:
    """nbconvert shows text/html when a notebook holds no widget state (the usual export)."""
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    form.resource.value = "purchase-statuses"
    form.attributes.value = ("id", "name")
    before = form._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in before
    assert "read_jetti(" in before["text/html"] and "purchase-statuses" in before["text/html"]
    assert len(before["text/plain"]) < 200  # not the repr of every child widget
    df = run(form, form.preview)
    assert df is not None
    bundle = form._repr_mimebundle_()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("form")
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    nb.cells = [cell]
    html_text, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert f"<b>{len(df)}</b> rows" in html_text and "preview done" in html_text
    assert df["name"].iloc[0] in html_text and "read_jetti(" in html_text
    assert "VBox(" not in html_text


def test_a_run_notebook_keeps_the_result_in_the_form_output(sb: Sandbox, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """In a real kernel the form's output is updated when a job ends, so the saved notebook
    (and its HTML export, which has no widget state) shows the result, not an empty widget."""
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("JETTI_API_TOKEN", TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", sb.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from jetti_frames import query_form\n"
                                          "form = query_form()\nform"),
                nbformat.v4.new_code_cell("form.resource.value = 'purchase-statuses'\n"
                                          "form.preview.click(); _ = form.wait(60)")]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    shown = nb.cells[0].outputs[0]["data"]
    statuses = sb.query("SELECT name FROM purchase_statuses ORDER BY id")
    assert "preview done" in shown["text/html"] and statuses[0]["name"] in shown["text/html"]
    assert f"rows={len(statuses)}" in shown["text/plain"]
    nb.metadata.pop("widgets", None)  # saved without widget state (JupyterLab's default)
    html_text, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert f"<b>{len(statuses)}</b> rows" in html_text


def test_cancel_stops_requesting_between_pages(sb: Sandbox) -> None:
    client = make_client(sb, page_size=10, max_in_flight=1)
    form = QueryForm(client)
    sb.reset_counters()
    sb.after_requests(2, lambda _: form.cancel.click())  # the user clicks Cancel
    assert run(form, form.load) is None
    assert form.status.value == "load cancelled"
    assert form.df is None and not form.running
    assert form.load.disabled is False and form.cancel.disabled is True
    # 300 purchases at 10 a page take 30+ requests; cancelling after the 2nd stops the pager.
    assert sb.counters(TOKEN)["requests"] <= 4


def test_bad_values_are_reported_in_the_form(form: QueryForm) -> None:
    row = form.add_filter("purchaseType", "$in")
    row.value.value = "dropship, bogus"
    form.preview.click()
    assert not form.running and form.df is None
    assert "JettiQueryError" in form.error.value and "bogus" in form.error.value
    assert "Traceback" not in form.error.value
    row.value.value = "dropship"
    assert form.error.value == ""  # fixed: the message goes away
    form.add_filter("id", "$in", "1, x")
    assert "not a valid integer" in form.error.value


def test_wrong_token_is_a_readable_401(sb: Sandbox) -> None:
    form = QueryForm(make_client(sb, token="not-the-token"))
    run(form, form.preview)
    assert "JettiAuthError" in form.error.value and "HTTP 401" in form.error.value
    assert "not-the-token" not in form.error.value
    assert form.status.value == "preview failed" and form.df is None


def test_exhausted_429_retries_are_a_readable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MAX_THROTTLED", 1)  # give up after one 1-second wait
    with Sandbox(purchases=30, rate="off", tokens=(TOKEN,),
                 faults={"rate": 1.0, "kinds": ("429",)}) as sandbox:
        form = QueryForm(make_client(sandbox, retries=1, backoff=0.0))
        run(form, form.preview)
    assert "JettiRateLimitError" in form.error.value and "HTTP 429" in form.error.value


def test_snapshot_button_writes_a_readable_snapshot(form: QueryForm, tmp_path: Path) -> None:
    form.resource.value = "purchase-statuses"
    form.snapshot_path.value = str(tmp_path / "statuses")
    df = run(form, form.snapshot)
    assert form.error.value == ""
    assert df is not None and len(df) == 9 and form.info["rows"] == 9
    pd.testing.assert_frame_equal(df, read_snapshot(tmp_path / "statuses"))
    assert form.code.value.startswith("from jetti_frames.snapshot import snapshot\n")
    assert repr(str(tmp_path / "statuses")) in form.code.value


def test_display_delegates_to_the_box(form: QueryForm) -> None:
    bundle = form._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == form.box.model_id
    assert "Sandbox data" in form.header.value  # a 127.0.0.1 server is labelled as sandbox


def test_without_a_token_the_form_runs_on_its_own_sandbox(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.delenv("JETTI_API_TOKEN", raising=False)
    monkeypatch.delenv("JETTI_BASE_URL", raising=False)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    form = query_form()
    assert form.started_sandbox and form.client.is_sandbox
    assert "Sandbox data" in form.header.value
    form.resource.value = "purchase-statuses"
    form.attributes.value = ("id", "name")
    df = run(form, form.preview)
    assert df is not None and form.error.value == ""
    code = form.code.value
    assert "token=SANDBOX_TOKEN" in code and SANDBOX_TOKEN not in code.replace(
        "SANDBOX_TOKEN", "")
    pd.testing.assert_frame_equal(exec_code(code), df)
    assert query_form().client.base_url == form.client.base_url  # one sandbox per kernel
