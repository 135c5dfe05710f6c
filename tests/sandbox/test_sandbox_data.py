"""The sandbox's synthetic account has the structure a report needs, and serves it over HTTP.

Expected values are SQL over the sandbox's own database; the structure (seasonality, slow
providers, statuses following each purchase's history) is asserted as relations, not counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jetti_frames import JettiClient
from jetti_frames.sandbox import Sandbox
from jetti_frames.sandbox.data import FIRST, LAST, SLOW_RANKS
from jetti_frames.settings import SANDBOX_TOKEN

LATE = ("(d.createdAt > p.shippingExpectedAt OR (d.id IS NULL AND NOT p.cancelled "
        "AND p.shippingExpectedAt < (SELECT max(dateOrdered) FROM purchases)))")
SHIPPED = "FROM purchases p LEFT JOIN dropshipments d ON d.purchaseId = p.id"


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[JettiClient]:
    with JettiClient(SANDBOX_TOKEN, base_url=sandbox.base_url, cache=False, get_rate=1000.0,
                     progress=False) as c:
        yield c


def status_of(sandbox: Sandbox) -> dict[int, str]:
    return {r["id"]: r["name"] for r in sandbox.query("SELECT id, name FROM purchase_statuses")}


def test_full_names_are_names_not_json_objects(client: JettiClient) -> None:
    for resource in ("purchases", "sales"):
        df = client.read(resource, attributes=["id", "billingFullName", "shippingFullName"])
        for column in ("billingFullName", "shippingFullName"):
            names = df[column].dropna()
            assert len(names) > 0
            assert all(isinstance(v, str) and v.split(" ", 1)[0] in FIRST
                       and v.split(" ", 1)[1] in LAST for v in names), column


def test_dropshipments_are_served_one_per_shipped_dropship_purchase(
        sandbox: Sandbox, client: JettiClient) -> None:
    df = client.read("dropshipments", attributes=["id", "purchaseId", "createdAt"])
    rows = sandbox.query(f"SELECT p.id, p.isDropship, p.cancelled, p.purchaseStatusId, "
                         f"p.dateOrdered, d.createdAt AS shipped {SHIPPED}")
    shipped = [r for r in rows if r["shipped"] is not None]
    assert len(df) == len(shipped) > 0
    assert df["purchaseId"].is_unique
    assert set(df["purchaseId"].astype(int)) == {r["id"] for r in shipped}
    names = status_of(sandbox)
    assert all(r["isDropship"] and not r["cancelled"] and r["shipped"] > r["dateOrdered"]
               for r in shipped)
    assert {names.get(r["purchaseStatusId"]) for r in shipped} <= {"Shipped", "Received", None}
    cancelled = {names.get(r["purchaseStatusId"]) for r in rows if r["cancelled"]}
    assert cancelled <= {"Cancelled", None} and "Cancelled" in cancelled
    open_dropship = [r for r in rows if r["isDropship"] and not r["cancelled"]
                     and r["shipped"] is None and r["purchaseStatusId"] is not None]
    assert open_dropship
    assert not {names[r["purchaseStatusId"]] for r in open_dropship} & {
        "Shipped", "Received", "Cancelled"}


def test_orders_peak_before_the_holidays(sandbox: Sandbox) -> None:
    rows = sandbox.query("SELECT CAST(substr(dateOrdered, 6, 2) AS INTEGER) AS m, "
                         "count(*) AS n FROM purchases WHERE dateOrdered < '2025-01-01' "
                         "GROUP BY m")
    per_month = {r["m"]: r["n"] for r in rows}
    peak = (per_month[11] + per_month[12]) / 2
    assert peak > 1.4 * sum(per_month[m] for m in range(1, 10)) / 9


def test_a_few_large_providers_and_a_few_often_late(sandbox: Sandbox) -> None:
    ids = [r["id"] for r in sandbox.query("SELECT id FROM dropship_providers ORDER BY id")]
    slow = {ids[i] for i in SLOW_RANKS}
    rows = sandbox.query(f"SELECT p.dropshipProviderId AS provider, count(*) AS n, "
                         f"sum({LATE}) AS late {SHIPPED} WHERE p.isDropship "
                         f"AND p.dropshipProviderId IS NOT NULL GROUP BY provider")
    sizes = sorted((r["n"] for r in rows), reverse=True)
    assert sum(sizes[:5]) > 0.4 * sum(sizes) and sizes[-1] < sizes[0] / 10

    def share(group: list[dict]) -> float:
        return sum(r["late"] for r in group) / sum(r["n"] for r in group)

    slow_share = share([r for r in rows if r["provider"] in slow])
    other_share = share([r for r in rows if r["provider"] not in slow])
    assert slow_share > 3 * other_share and other_share > 0.02
