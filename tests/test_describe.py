"""``describe`` and ``resources`` against Jetti's OpenAPI document, the catalogue and real reads
from the sandbox; ``jetti-frames describe`` prints the same."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from cli_support import one_line_error

from jetti_frames import JettiClient, JettiQueryError, describe, resources
from jetti_frames.catalog import CATALOG
from jetti_frames.cli import main
from jetti_frames.sandbox import Sandbox
from jetti_frames.schema import FrameSpec, column_dtypes
from jetti_frames.settings import SANDBOX_TOKEN

SPEC = Path(__file__).resolve().parents[2] / "shared" / "jetti-openapi.yaml"
LIST_PATH = re.compile(r"^/([a-z0-9-]+)\.json$")


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    if not SPEC.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SPEC} is missing in CI")
        pytest.skip(f"{SPEC} not present beside the checkout")
    text = SPEC.read_bytes()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def endpoints(openapi: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """URL name -> (schema name, path item) of every GET that lists a schema."""
    out = {}
    for path, item in openapi["paths"].items():
        match = LIST_PATH.match(path)
        schema = (item.get("get") or {}).get("responses", {}).get("200", {}).get(
            "content", {}).get("application/json", {}).get("schema", {})
        if match and schema.get("type") == "array" and "$ref" in schema.get("items", {}):
            out[match[1]] = (schema["items"]["$ref"].rsplit("/", 1)[-1], item)
    return out


def words(text: str) -> str:
    return " ".join(str(text).split())


def test_resources_lists_every_list_endpoint_of_the_document(
        openapi: dict[str, Any], endpoints: dict[str, tuple[str, dict[str, Any]]]) -> None:
    frame = resources()
    assert frame.columns.tolist() == ["name", "url", "model", "fields", "relations",
                                      "description"]
    assert len(frame) == len(endpoints) == len(CATALOG)
    assert frame["url"].tolist() == sorted(endpoints)
    schemas = openapi["components"]["schemas"]
    for row in frame.itertuples():
        schema, item = endpoints[row.url]
        assert row.model == "".join(p.capitalize() for p in schema.split("-"))
        assert row.name == row.url.replace("-", "_")
        assert CATALOG.resource(row.name).url == row.url  # the name is accepted as such
        assert row.fields == len(schemas[schema].get("properties", {}))
        described = words(item.get("description") or "") or None
        assert (None if pd.isna(row.description) else row.description) == described
    res = CATALOG.resource("purchases")
    assert frame.set_index("url").loc["purchases", "relations"] == \
        len(res.belongs_to) + len(res.has_many)


def test_describe_gives_each_field_as_the_document_has_it(
        openapi: dict[str, Any], endpoints: dict[str, tuple[str, dict[str, Any]]]) -> None:
    schemas = openapi["components"]["schemas"]
    listed = {schema: url for url, (schema, _) in endpoints.items()}
    for url, (schema, _) in endpoints.items():
        props = schemas[schema].get("properties", {})
        frame = describe(url)
        assert frame["name"].tolist() == sorted(props), url
        dtypes = column_dtypes(FrameSpec.of(url, columns=list(props)))
        for row in frame.itertuples():
            prop = props[row.name]
            assert row.nullable == bool(prop.get("nullable", False))
            assert row.enum == (tuple(prop["enum"]) if "enum" in prop else None)
            assert row.dtype == ("category" if row.kind == "enum" else str(dtypes[row.name]))
            assert row.credential == CATALOG.resource(url).field(row.name).credential
            if not pd.isna(row.description):  # the document's text, at most shortened
                assert words(prop["description"]).startswith(
                    row.description.removesuffix(" ..."))
            target = (listed.get(re.sub(r"(?<!^)([A-Z])", r"-\1", row.name[:-2]).lower())
                      if row.name.endswith("Id") and row.kind == "integer" else None)
            expected = CATALOG.resource(target).model if target else None
            assert (None if pd.isna(row.relation) else row.relation) == expected, row.name


def test_describe_names_the_dtypes_a_read_gives(sandbox: Sandbox) -> None:
    client = JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False, progress=False)
    for backend in ("numpy_nullable", "pyarrow"):
        df = client.read("dropship-providers", dtype_backend=backend)
        fields = describe("dropship-providers", dtype_backend=backend).set_index("name")
        secret = fields.index[fields["credential"]].tolist()
        assert secret and not set(secret) & set(df.columns)  # credentials stay out of reads
        shown = fields.drop(index=secret)
        assert set(shown.index) <= set(df.columns)
        for name, row in shown.iterrows():
            want = "category" if isinstance(df[name].dtype, pd.CategoricalDtype) else \
                str(df[name].dtype)
            assert row["dtype"] == want, (backend, name)


def test_relations_join_as_the_included_records_do(sandbox: Sandbox) -> None:
    rel = describe("purchases", relations=True)
    res = CATALOG.resource("purchases")
    assert len(rel) == len(res.belongs_to) + len(res.has_many)
    assert rel["relation"].tolist() == ["belongs_to"] * len(res.belongs_to) + \
        ["has_many"] * len(res.has_many)
    by_model = rel[rel["model"].isin(["PurchaseStatus", "PurchaseItem"])].set_index("model")
    client = JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False, progress=False)
    tables = client.read("purchases", include=list(by_model.index), include_mode="tables",
                         limit=200)
    joined = client.read("purchases", include="PurchaseStatus", limit=200,
                         attributes=["id", "purchaseStatusId"])
    for model, row in by_model.iterrows():
        assert row["resource"] == CATALOG.model(str(model)).url
        left, right = (side.strip().split(".") for side in row["join"].split("="))
        frames = {r.url: tables[r.key_many] for r in (res, CATALOG.model(str(model)))}
        keys = frames[left[0]][left[1]].dropna()
        assert len(keys) and keys.isin(frames[right[0]][right[1]]).all()
        assert row["key"] in ("purchase_status", "purchase_items")
    assert any(c.startswith(by_model.loc["PurchaseStatus", "key"] + "_") for c in joined.columns)


def test_every_relation_of_the_catalogue_is_described_both_ways() -> None:
    for res in CATALOG:
        rel = describe(res.url, relations=True)
        for row in rel.itertuples():
            other = CATALOG.resource(row.resource)
            holder = res if row.relation == "belongs_to" else other
            assert holder.has_field(row.foreign_key)
            assert describe(holder.url).set_index("name").loc[row.foreign_key, "relation"] == \
                (other.model if holder is res else res.model)
            back = other.has_many if row.relation == "belongs_to" else other.belongs_to
            assert (res.model, row.foreign_key) in {(r.model, r.foreign_key) for r in back}


def test_unknown_names_and_bad_options_are_typed_errors() -> None:
    with pytest.raises(JettiQueryError, match="did you mean 'purchases'"):
        describe("purchse")
    with pytest.raises(JettiQueryError, match="relations"):
        describe("purchases", relations="yes")  # type: ignore[arg-type]
    with pytest.raises(JettiQueryError, match="dtype_backend"):
        describe("purchases", dtype_backend="arrow")  # type: ignore[arg-type]
    assert describe("PurchaseItem").equals(describe("purchase_items"))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["describe", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, frame in ((["purchases"], describe("purchases")),
                        (["purchases", "--relations"], describe("purchases", relations=True)),
                        ([], resources())):
        code, out, _ = cli(capsys, *argv)
        lines = out.splitlines()
        assert code == 0 and len(lines) == len(frame) + 1
        assert lines[0].split() == frame.columns.tolist()
        assert [line.split()[0] for line in lines[1:]] == frame.iloc[:, 0].tolist()
        code, out, _ = cli(capsys, *argv, "--json")
        records = json.loads(out)
        expected = [{k: None if v is None or v is pd.NA else list(v) if isinstance(v, tuple)
                     else v for k, v in record.items()} for record in frame.to_dict("records")]
        assert code == 0 and records == expected
    code, out, _ = cli(capsys, "purchase-statuses")
    assert "default, warning, danger" in out


def test_the_command_refuses_an_unknown_resource(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "purchse")
    assert code == 2 and out == ""
    assert "did you mean 'purchases'" in one_line_error(err)
    code, _, err = cli(capsys, "--relations")
    assert code == 2 and "needs a resource" in one_line_error(err)
    assert main(["describe", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: jetti-frames describe")

