"""Credential fields of connected services stay out of frames, the cache, snapshots and logs.

The sandbox fills every credential field with a fake secret (``fake-secret-<url>-<field>-<id>``),
so a leak anywhere is found by grepping bytes.  Everything runs over real sockets, with a real
requests-cache SQLite file and real parquet files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from jetti_frames import JettiClient
from jetti_frames.catalog import CATALOG
from jetti_frames.credentials import drop_exclude, strip_records
from jetti_frames.sandbox import Sandbox
from jetti_frames.sandbox.data import FAKE_SECRET
from jetti_frames.settings import SANDBOX_TOKEN
from jetti_frames.snapshot import read_snapshot, snapshot

SECRET = FAKE_SECRET.encode()
PROVIDER_SECRETS = ("authenticationSecret", "authenticationToken", "shippoToken", "taxJarToken")
#: Requests these reads cost before credentials were excluded (300 purchases, pages of 100).
BASELINE = {"dropship-providers": 2, "purchases+DropshipProvider": 5}


def make_client(sb: Sandbox, cache: Path | bool, **options: Any) -> JettiClient:
    options.setdefault("get_rate", 1000.0)  # the sandbox's rate limit is off: do not wait
    return JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=cache, progress=False,
                       page_size=100, **options)


def files_with_secrets(folder: Path) -> list[str]:
    """Every file under ``folder`` whose bytes hold a fake secret."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and SECRET in p.read_bytes())


def secret_columns(columns: Any) -> list[str]:
    return [c for c in columns if any(c.endswith(name) for name in PROVIDER_SECRETS)
            or c.endswith("shipstationPassword")]


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # every logger: ours, requests-cache, urllib3
    return caplog


# -- the catalogue ---------------------------------------------------------------------------


def test_catalogue_marks_credential_fields() -> None:
    marked = {(r.url, name) for r in CATALOG for name in r.credentials}
    assert len(marked) == 30
    assert len({url for url, _ in marked}) == 17
    assert CATALOG.resource("dropship-providers").credentials == PROVIDER_SECRETS
    assert CATALOG.resource("channels").credentials == ("shipstationPassword",)
    assert set(CATALOG.resource("shopify-stores").credentials) == {"accessToken", "apiKey",
                                                                    "password"}
    assert set(CATALOG.resource("woo-commerce-stores").credentials) == {"consumerKey",
                                                                         "consumerSecret"}
    assert CATALOG.resource("users").field("token").credential
    # deliberately not credentials: a public shipping code, a flag, a count, identifiers
    for url, name in [("shipping-rates", "serviceLevelToken"), ("users", "passwordSet"),
                      ("users", "credentialCycles"), ("big-commerce-stores", "storeHash"),
                      ("purchases", "orderSplittingKey"), ("channels", "shipstationUsername"),
                      ("big-commerce-stores", "clientId"), ("company-settings", "key")]:
        assert not CATALOG.resource(url).field(name).credential, name
    providers = CATALOG.resource("dropship-providers")
    assert "shippoToken" not in providers.default_field_names
    assert len(providers.default_field_names) == len(providers.fields) - 4


# -- the sandbox -----------------------------------------------------------------------------


def test_sandbox_fills_credentials_with_fake_secrets(sandbox: Sandbox) -> None:
    rows = sandbox.query("SELECT id, shippoToken FROM dropship_providers")
    assert rows and all(r["shippoToken"] == f"{FAKE_SECRET}dropship-providers-shippoToken-"
                        f"{r['id']}" for r in rows)
    assert sandbox.query("SELECT count(*) AS n FROM channels WHERE shipstationPassword "
                         "LIKE 'fake-secret-%'")[0]["n"] == 5


def _get(sb: Sandbox, query: str) -> requests.Response:
    return requests.get(f"{sb.base_url}{query}",
                        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)


def test_sandbox_reads_attributes_exclude_like_sequelize(
        make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate="off")
    top = _get(sb, "dropship-providers.json?limit=3&attributes[exclude][0]=shippoToken"
                   "&attributes[exclude][1]=taxJarToken")
    assert top.status_code == 200
    keys = set(top.json()[0])
    assert "shippoToken" not in keys and "taxJarToken" not in keys
    assert {"authenticationToken", "name", "companyId"} <= keys
    inc = _get(sb, "purchases.json?limit=3&where[dropshipProviderId][$ne]="
                   "&include[0][model]=DropshipProvider"
                   "&include[0][attributes][exclude][0]=shippoToken")
    provider = inc.json()[0]["dropship_provider"]
    assert "shippoToken" not in provider and "taxJarToken" in provider
    # too deep for qs: the exclude list arrives as an object, which Sequelize fails on
    deep = _get(sb, "purchases.json?limit=1&include[0][model]=Sale&include[0][include][0]"
                    "[model]=Channel&include[0][include][0][attributes][exclude][0]=name")
    assert deep.status_code == 500
    sb.configure(exclude="ignore")
    assert "shippoToken" in _get(sb, "dropship-providers.json?limit=1"
                                     "&attributes[exclude][0]=shippoToken").json()[0]
    sb.configure(exclude="refuse")
    assert _get(sb, "dropship-providers.json?limit=1"
                    "&attributes[exclude][0]=shippoToken").status_code == 400


# -- pure helpers ----------------------------------------------------------------------------


def test_strip_records_follows_the_include_keys_of_the_request() -> None:
    record = {"id": 1, "saleId": 2, "sale": {"id": 2, "channel": {"id": 3,
              "shipstationPassword": "s", "name": "c"}},
              "dropship_provider": {"id": 4, "shippoToken": "t", "taxJarToken": "x"},
              "purchase_items": [{"id": 5}]}
    query = ("include[0][model]=Sale&include[0][include][0][model]=Channel"
             "&include[1][model]=DropshipProvider&include[1][attributes][0]=id"
             "&include[1][attributes][1]=shippoToken&include[2]=PurchaseItem")
    assert strip_records("purchases", [record], query) == 2
    assert record["sale"]["channel"] == {"id": 3, "name": "c"}
    assert record["dropship_provider"] == {"id": 4, "shippoToken": "t"}
    providers = [{"id": 1, "shippoToken": "t", "taxJarToken": "x", "name": "p"}]
    assert strip_records("dropship-providers", providers, "attributes[0]=taxJarToken") == 1
    assert providers == [{"id": 1, "taxJarToken": "x", "name": "p"}]
    # the exclude form asks for everything it does not list
    providers = [{"id": 1, "shippoToken": "t", "taxJarToken": "x", "authenticationToken": "a"}]
    query = "attributes[exclude][0]=shippoToken&attributes[exclude][1]=authenticationToken"
    assert strip_records("dropship-providers", providers, query) == 2
    assert providers == [{"id": 1, "taxJarToken": "x"}]
    one = {"id": 1, "shipstationPassword": "p"}  # one record, and an exclude qs made an object
    assert strip_records("channels", one, "&".join(
        f"attributes[exclude][{i}]=name" for i in range(25))) == 1


def test_drop_exclude_keeps_every_other_parameter() -> None:
    url = ("http://h/api/purchases.json?where%5Bid%5D%5B%24gt%5D=1&attributes%5Bexclude%5D%5B0"
           "%5D=a&include[0][model]=DropshipProvider&include[0][attributes][exclude][0]=b&limit=9")
    assert drop_exclude(url) == ("http://h/api/purchases.json?where%5Bid%5D%5B%24gt%5D=1"
                                 "&include[0][model]=DropshipProvider&limit=9")


# -- reads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["honor", "ignore"])
def test_default_read_leaks_no_credential(make_sandbox: Callable[..., Sandbox], tmp_path: Path,
                                          debug_log: pytest.LogCaptureFixture,
                                          mode: str) -> None:
    sb = make_sandbox(rate="off", exclude=mode)
    cache = tmp_path / "cache" / "http.sqlite"
    with make_client(sb, cache) as client:
        df = client.read("dropship-providers")
        assert len(df) == 40 and "name" in df.columns
        assert secret_columns(df.columns) == []
        assert client.last_stats.requests == BASELINE["dropship-providers"]
        sent = [entry["target"] for entry in sb.log]
        assert all("attributes[exclude][0]=authenticationSecret" in t for t in sent)
        again = client.read("dropship-providers")  # from the cache
        assert client.last_stats.requests == 0 and len(again) == 40
        assert secret_columns(again.columns) == []
        records = [r for page in client.iter_pages("dropship-providers") for r in page]
        assert len(records) == 40 and not set(PROVIDER_SECRETS) & set().union(*records)
        one = client.get("dropship-providers", int(df["id"][0]))
        assert not set(PROVIDER_SECRETS) & set(one)
        assert secret_columns(client.frame_dtypes("dropship-providers")) == []
        empty = client.read("dropship-providers", where={"id": {"$lt": 0}})
        assert empty.empty and secret_columns(empty.columns) == []
        info = snapshot("dropship-providers", tmp_path / "snap", client=client)
        assert info["rows"] == 40
    assert secret_columns(read_snapshot(tmp_path / "snap").columns) == []
    assert files_with_secrets(tmp_path) == []
    assert FAKE_SECRET not in debug_log.text and "dropship-providers.json" in debug_log.text


@pytest.mark.parametrize("mode", ["honor", "ignore"])
def test_included_credentials_stay_out(make_sandbox: Callable[..., Sandbox], tmp_path: Path,
                                       debug_log: pytest.LogCaptureFixture, mode: str) -> None:
    sb = make_sandbox(rate="off", exclude=mode)
    with make_client(sb, tmp_path / "http.sqlite") as client:
        df = client.read("purchases", include=["DropshipProvider"])
        assert client.last_stats.requests == BASELINE["purchases+DropshipProvider"]
        assert "dropship_provider_name" in df.columns and secret_columns(df.columns) == []
        # a nested include is too deep for an exclude list: only stripping protects it
        nested = client.read("purchases", include=[{"model": "Sale", "include": ["Channel"]}])
        assert "sale_channel_name" in nested.columns and secret_columns(nested.columns) == []
        snapshot("purchases", tmp_path / "snap", include=["DropshipProvider"], client=client)
    assert files_with_secrets(tmp_path) == []
    assert FAKE_SECRET not in debug_log.text


def test_naming_a_credential_returns_it(make_sandbox: Callable[..., Sandbox],
                                        tmp_path: Path) -> None:
    sb = make_sandbox(rate="off")
    with make_client(sb, tmp_path / "http.sqlite") as client:
        df = client.read("dropship-providers", attributes=["id", "shippoToken"])
        assert client.last_stats.requests == BASELINE["dropship-providers"]
        assert df.columns.tolist() == ["id", "shippoToken"]
        assert df["shippoToken"].str.startswith(FAKE_SECRET).all()
        inc = client.read("purchases", include=[
            {"model": "DropshipProvider", "attributes": ["id", "taxJarToken"]}])
        assert "dropship_provider_taxJarToken" in inc.columns
        assert "dropship_provider_shippoToken" not in inc.columns
        assert inc["dropship_provider_taxJarToken"].dropna().str.startswith(FAKE_SECRET).all()
    # named, it is cached like any other field (the documented price of asking for it)
    assert files_with_secrets(tmp_path) == ["http.sqlite"]


@pytest.mark.parametrize("mode", ["honor", "ignore"])
def test_a_credential_named_among_many_attributes_is_returned(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, mode: str) -> None:
    sb = make_sandbox(rate="off", exclude=mode)
    wanted = [*CATALOG.resource("dropship-providers").default_field_names[:24], "shippoToken"]
    with make_client(sb, tmp_path / "http.sqlite") as client:
        df = client.read("dropship-providers", attributes=wanted)  # too many to send: local
        assert client.last_stats.requests == BASELINE["dropship-providers"]
    assert df.columns.tolist() == wanted
    assert df["shippoToken"].str.startswith(FAKE_SECRET).all()
    assert "attributes[exclude][0]=authenticationSecret" in sb.log[0]["target"]
    assert "shippoToken" not in sb.log[0]["target"]


def test_a_server_refusing_exclude_is_read_without_it(make_sandbox: Callable[..., Sandbox],
                                                      tmp_path: Path) -> None:
    sb = make_sandbox(rate="off", exclude="refuse")
    with make_client(sb, tmp_path / "a.sqlite") as client:
        df = client.read("dropship-providers")
        assert len(df) == 40 and secret_columns(df.columns) == []
        refused = sb.counters()["status_4xx"]
        assert 1 <= refused <= 2  # the requests in flight before the first refusal came back
        assert client.last_stats.requests == BASELINE["dropship-providers"] + refused
        df = client.read("purchases", include=["DropshipProvider"])
        assert client.last_stats.requests == BASELINE["purchases+DropshipProvider"]
        assert secret_columns(df.columns) == []
    with make_client(sb, tmp_path / "b.sqlite") as other:  # the account is remembered
        other.read("dropship-providers")
        assert other.last_stats.requests == BASELINE["dropship-providers"]
    assert sb.counters()["status_4xx"] == refused
    assert files_with_secrets(tmp_path) == []


def test_without_a_cache_the_client_sees_no_credential(
        make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate="off", exclude="ignore")
    with make_client(sb, False) as client:
        records = [r for page in client.iter_pages("purchases", include="DropshipProvider")
                   for r in page]
    providers = [r["dropship_provider"] for r in records if r["dropship_provider"]]
    assert providers and not any(set(PROVIDER_SECRETS) & set(p) for p in providers)


def test_the_query_form_marks_credentials(sandbox: Sandbox) -> None:
    from jetti_frames.widgets import QueryForm

    form = QueryForm(make_client(sandbox, False))
    form.resource.value = "dropship-providers"
    marked = {name for label, name in form.attributes.options if "(credential)" in label}
    assert marked == set(PROVIDER_SECRETS)
    form.resource.value = "purchases"
    form.include.value = ("DropshipProvider",)
    picker = form.include_attributes["DropshipProvider"]
    assert {name for label, name in picker.options if label.startswith("🔒")} == marked
    picker.value = ("id", "shippoToken")
    assert form.options()["include"] == [{"model": "DropshipProvider",
                                          "attributes": ["id", "shippoToken"]}]


def test_a_local_condition_on_a_credential_needs_it_named(sandbox: Sandbox) -> None:
    from jetti_frames.errors import JettiQueryError

    with make_client(sandbox, False) as client:
        before = sandbox.counters()["requests"]
        with pytest.raises(JettiQueryError, match="credential field 'shippoToken'"):
            client.read("dropship-providers", where={"shippoToken": None})  # IS NULL: local
        assert sandbox.counters()["requests"] == before
        named = client.read("dropship-providers", where={"shippoToken": {"$ne": None}},
                            attributes=["id", "shippoToken"])
        assert len(named) == 40
