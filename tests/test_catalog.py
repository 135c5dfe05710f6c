"""The committed catalogue pins facts from Jetti's OpenAPI document and regenerates exactly."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from jetti_frames.catalog import CATALOG
from jetti_frames.errors import JettiQueryError

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT.parent / "shared" / "jetti-openapi.yaml"


def test_every_list_endpoint_is_catalogued():
    assert len(CATALOG) == 169
    assert len({r.url for r in CATALOG}) == 169


def test_purchase_facts():
    purchases = CATALOG.resource("purchases")
    assert purchases.model == "Purchase"
    assert purchases.key_one == "purchase" and purchases.key_many == "purchases"
    assert len(purchases.fields) == 107
    purchase_type = purchases.field("purchaseType")
    assert purchase_type.kind == "enum"
    assert purchase_type.enum == (
        "replenishment", "dropship", "automated_dropship", "automated_replenishment",
        "adjusted_dropship",
    )
    assert purchase_type.default == "replenishment"
    assert purchases.field("createdAt").kind == "datetime"
    assert purchases.field("id").kind == "integer"
    assert purchases.field("total").kind == "number"
    assert purchases.field("tags").kind == "array"
    assert purchases.field("files").kind == "json"
    assert purchases.field("cancelledAt").nullable


def test_purchase_relations():
    purchases = CATALOG.resource("purchases")
    belongs = {r.model: r.foreign_key for r in purchases.belongs_to}
    assert belongs["PurchaseStatus"] == "purchaseStatusId"
    assert belongs["DropshipProvider"] == "dropshipProviderId"
    assert belongs["Sale"] == "saleId"
    has_many = {r.model: r.foreign_key for r in purchases.has_many}
    assert has_many["PurchaseItem"] == "purchaseId"
    assert purchases.relation_to("PurchaseItem")[0] == "has_many"
    assert purchases.relation_to("PurchaseStatus")[0] == "belongs_to"


@pytest.mark.parametrize("alias", ["purchase-items", "purchase_items", "purchase-item",
                                   "purchase_item", "PurchaseItem"])
def test_resource_aliases(alias):
    assert CATALOG.resource(alias).url == "purchase-items"


def test_unknown_resource_suggests_close_matches():
    with pytest.raises(JettiQueryError, match="did you mean 'purchases'"):
        CATALOG.resource("purchse")
    with pytest.raises(JettiQueryError, match="purchaseType"):
        CATALOG.resource("purchases").field("purchaseTyp")


def test_regenerating_reproduces_the_committed_file_byte_for_byte():
    if not SPEC.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SPEC} is missing in CI")
        pytest.skip(f"{SPEC} not present beside the checkout")
    spec = importlib.util.spec_from_file_location("generate_catalog",
                                                  ROOT / "tools" / "generate_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "jetti_frames" / "catalog.json").read_text(encoding="utf-8")
    assert module.generate(SPEC) == committed
