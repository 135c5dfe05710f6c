"""Schema drift against a sandbox whose answers stop matching the catalogue (the ``drift`` knob):
kept, never dropped; reads warn once, snapshots record it, ``info`` reports it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jetti_frames import JettiClient, read_snapshot, refresh_snapshot, snapshot, snapshot_info
from jetti_frames.catalog import CATALOG
from jetti_frames.cli import main
from jetti_frames.drift import DriftItem, DriftLog, JettiDriftWarning
from jetti_frames.errors import JettiConfigError
from jetti_frames.sandbox import Sandbox
from jetti_frames.sandbox.data import RESOURCES
from jetti_frames.schema import FrameSpec
from jetti_frames.settings import SANDBOX_TOKEN
from jetti_frames.snapshot import MANIFEST

NEW = "fulfilmentChannel"
ODD = "consignment"
DRIFT = {"purchases": {"extra": {NEW: "web"}, "drop": ["notes"], "enum": {"purchaseType": ODD}},
         "purchase-statuses": {"enum": {"level": "critical"}}}
PURCHASE_TYPES = list(CATALOG.resource("purchases").field("purchaseType").enum or ())


def client_of(sb: Sandbox) -> JettiClient:
    return JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                       page_size=50)


def drift_warnings(caught: list[warnings.WarningMessage]) -> list[JettiDriftWarning]:
    return [w.message for w in caught if isinstance(w.message, JettiDriftWarning)]


def read_warned(call: Callable[[], Any]) -> tuple[Any, list[JettiDriftWarning]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, drift_warnings(caught)


def test_a_sandbox_without_drift_warns_about_nothing(make_sandbox: Callable[..., Sandbox]
                                                     ) -> None:
    """No false alarm: every served resource with its served relations, as catalogued (the
    ``companyId`` real answers carry beyond the OpenAPI document is not drift)."""
    sb = make_sandbox(rate="off", purchases=40)
    client = client_of(sb)
    with warnings.catch_warnings():
        warnings.simplefilter("error", JettiDriftWarning)
        for url in RESOURCES:
            res = CATALOG.resource(url)
            include = list(dict.fromkeys(r.model for r in (*res.belongs_to, *res.has_many)
                                         if CATALOG.model(r.model).url in RESOURCES))
            tables = client.read(url, include=include, include_mode="tables")
            assert len(tables[res.key_many]) == sb.query(
                f"SELECT count(*) AS n FROM {url.replace('-', '_')}")[0]["n"]
    assert "companyId" in tables[res.key_many].columns


def test_drift_is_kept_and_reported_once_per_read(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate="off", purchases=160, drift=DRIFT)
    df, warned = read_warned(lambda: client_of(sb).read("purchases", include="PurchaseStatus"))
    assert len(warned) == 1  # several pages, one warning
    assert {(i.kind, i.path, i.field) for i in warned[0].items} == {
        ("new_field", "", NEW), ("missing_field", "", "notes"),
        ("enum_value", "", "purchaseType"), ("enum_value", "purchase_status", "level")}
    truth = {r["id"]: r for r in sb.query('SELECT id, "purchaseType", notes, '
                                          '"purchaseStatusId" FROM purchases')}
    assert len(df) == len(truth)
    # an enum value outside the spec keeps its value: the categorical gains the category
    assert df["purchaseType"].cat.categories.tolist() == [*PURCHASE_TYPES, ODD]
    for ident, value in zip(df["id"], df["purchaseType"], strict=True):
        assert value == (ODD if ident % 2 == 0 else truth[ident]["purchaseType"])
    assert "critical" in df["purchase_status_level"].cat.categories
    assert df["purchase_status_level"].notna().sum() == sum(
        r["purchaseStatusId"] is not None for r in truth.values())
    # a new field becomes a typed column; a field that stopped arriving keeps its column
    assert str(df[NEW].dtype) == "string" and (df[NEW] == "web").all()
    assert any(r["notes"] for r in truth.values()) and df["notes"].isna().all()
    assert "nothing was dropped" in str(warned[0])


def test_an_attribute_list_gets_no_new_field_and_the_warning_points_at_the_caller(
        make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate="off", purchases=30, drift=DRIFT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = client_of(sb).read("purchases", attributes=["id", "purchaseType", "notes"])
    (warning,) = [w for w in caught if issubclass(w.category, JettiDriftWarning)]
    assert warning.filename == __file__
    items = warning.message.items  # type: ignore[union-attr]
    assert {(i.kind, i.field) for i in items} == {("missing_field", "notes"),
                                                  ("enum_value", "purchaseType")}
    assert df.columns.tolist() == ["id", "purchaseType", "notes"]


def test_a_snapshot_records_drift_and_info_reports_it(make_sandbox: Callable[..., Sandbox],
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    sb = make_sandbox(rate="off", purchases=120, drift=DRIFT)
    path = tmp_path / "purchases"
    info, warned = read_warned(lambda: snapshot("purchases", path, include=["PurchaseStatus"],
                                                client=client_of(sb)))
    assert len(warned) == 1 and set(warned[0].items) == set(info.drift)
    manifest = json.loads((path / MANIFEST).read_text())
    assert [DriftItem.from_json(d) for d in manifest["drift"]] == list(info.drift)
    assert snapshot_info(path).drift == info.drift and len(info.drift) == 4
    df = read_snapshot(path)
    even = df["id"] % 2 == 0
    assert (df.loc[even, "purchaseType"] == ODD).all() and df["purchaseType"].notna().all()
    assert (df[NEW] == "web").all() and "notes" in df.columns

    assert main(["info", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "drift" in out
    lines = err.splitlines()
    assert lines == [f"jetti-frames: warning: {item}" for item in info.drift]
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["drift"] == manifest["drift"]


def test_a_refresh_adds_new_drift_and_clears_what_came_back(make_sandbox: Callable[..., Sandbox],
                                                            tmp_path: Path) -> None:
    sb = make_sandbox(rate="off", purchases=120)
    client = client_of(sb)
    path = tmp_path / "purchases"
    info, warned = read_warned(lambda: snapshot("purchases", path, client=client))
    assert info.drift == () and warned == []

    sb.configure(drift={"purchases": {"drop": ["notes"], "enum": {"purchaseType": ODD}}})
    ids = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id")]
    even, odd = [i for i in ids if i % 2 == 0], [i for i in ids if i % 2]
    touched = sb.touch("purchases", [*even[:2], odd[0]])
    info, warned = read_warned(lambda: refresh_snapshot(path, client=client, overlap=0))
    assert len(warned) == 1
    assert {(i.kind, i.field) for i in info.drift} == {("missing_field", "notes"),
                                                       ("enum_value", "purchaseType")}
    df = read_snapshot(path).set_index("id")
    truth = {r["id"]: r["purchaseType"] for r in sb.query('SELECT id, "purchaseType" '
                                                          "FROM purchases")}
    for ident in touched:
        assert df.loc[ident, "purchaseType"] == (ODD if ident % 2 == 0 else truth[ident])
    assert df["purchaseType"].notna().all()

    sb.configure(drift=None)  # the field comes back; the off-enum rows are still there
    sb.touch("purchases", odd[1:2])
    info = refresh_snapshot(path, client=client, overlap=0)
    assert [(i.kind, i.field, i.values) for i in info.drift] == [
        ("enum_value", "purchaseType", (ODD,))]
    assert snapshot_info(path).drift == info.drift


def test_a_field_is_missing_only_when_no_page_carried_it() -> None:
    spec = FrameSpec.of("purchase-statuses", ["id", "name", "level"])
    log = DriftLog()
    log.observe([{"id": 1, "level": "default"}], spec)
    assert [i.field for i in log.items() if i.kind == "missing_field"] == ["name"]
    log.observe([{"id": 2, "name": "Open", "level": "danger", "extra": 2.5}], spec)
    log.observe([], spec)
    assert log.items() == (DriftItem("new_field", "purchase-statuses", "extra",
                                     inferred="number"),)


@pytest.mark.parametrize("bad", [
    {"nope": {"drop": ["id"]}},
    {"purchases": {"rename": {}}},
    {"purchases": {"drop": ["noSuchField"]}},
    {"purchases": {"extra": {"notes": "x"}}},
    {"purchases": {"enum": {"purchaseType": "dropship"}}},
    {"purchases": {"enum": {"notes": "x"}}},
])
def test_the_drift_knob_refuses_what_would_not_be_drift(bad: dict[str, Any]) -> None:
    with pytest.raises(JettiConfigError):
        Sandbox(drift=bad)


def test_a_single_record_drifts_too(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate="off", purchases=10, drift=DRIFT)
    even = next(r["id"] for r in sb.query("SELECT id FROM purchases") if r["id"] % 2 == 0)
    record = client_of(sb).get("purchases", even)
    assert record[NEW] == "web" and record["purchaseType"] == ODD and "notes" not in record
