"""The sandbox's synthetic Jetti account: SQLite tables generated from a seed.

Every table has one column per catalogue field (same camelCase name) plus a few fields the
catalogue does not list, as real responses do (``companyId`` on every resource). Values are
produced by SQL expressions over a seeded integer hash, so generation runs inside SQLite and
200 000 purchases take seconds. Storage conventions:

* booleans are 0/1, datetimes are UTC text ``YYYY-MM-DDTHH:MM:SS+00:00`` (compares as instants),
* ``array`` and ``json`` fields are JSON text,
* ids are increasing but not contiguous and do not start at 1; ``updatedAt >= createdAt``,
* every credential field holds a fake secret ``fake-secret-<url>-<field>-<id>`` (never NULL),
  so that a leak into a frame, cache file, snapshot or log is found by grepping bytes for
  :data:`FAKE_SECRET`.

The account is synthetic, but shaped so that a report over it has something to say (see
:func:`_shipping`): purchases are seasonal (more orders in October to December), a few
dropship providers take most of the orders, a handful of providers (:func:`slow_providers`) ship
late and cancel more often, every purchase has an expected ship date (``shippingExpectedAt``)
and a status consistent with its history, and each shipped dropship purchase has a
``dropshipments`` record created when it shipped.

Examples
--------
>>> import sqlite3
>>> con = sqlite3.connect(":memory:")
>>> counts = generate(con, seed=1, purchases=50)
>>> counts["purchases"], con.execute("SELECT min(id) > 1 FROM purchases").fetchone()[0]
(50, 1)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import CATALOG, Field, Resource

__all__ = [
    "EXTRA_FIELDS",
    "FAKE_SECRET",
    "RESOURCES",
    "cached_database",
    "generate",
    "insert_rows",
    "table_name",
]

#: Resources the sandbox serves, in generation order (parents first).
RESOURCES = (
    "purchase-statuses", "dropship-providers", "products", "variants", "channels", "customers",
    "warehouses", "sales", "sale-items", "purchases", "purchase-items", "dropshipments",
)
#: Fields real responses carry that the catalogue does not list: name -> SQL type.
EXTRA_FIELDS = {"companyId": "INTEGER"}
COMPANY_ID = 4821
GENERATOR_VERSION = "4"
#: The prefix of every fake secret in credential fields.
FAKE_SECRET = "fake-secret-"

_P = 2147483647
_START = 1546300800  # 2019-01-01T00:00:00Z
_SPAN = 1751241600 - _START  # until 2025-06-30
_ISO = "'%Y-%m-%dT%H:%M:%S+00:00'"
_DAY = 86400
_YEAR = 365.25 * _DAY
#: Relative order volume per calendar month (January first): a peak before the holidays.
SEASON = (0.85, 0.8, 0.9, 0.9, 0.95, 0.9, 0.9, 0.95, 1.0, 1.15, 1.5, 1.7)
#: Positions, by size, of the providers that are often late (see :func:`slow_providers`).
SLOW_RANKS = (2, 4, 9, 14)

_SQL_TYPES = {"integer": "INTEGER", "number": "REAL", "boolean": "INTEGER"}


def table_name(url: str) -> str:
    """SQLite table of a resource: ``purchase-items`` -> ``purchase_items``."""
    return url.replace("-", "_")


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pick(values: list[str] | tuple[str, ...], expr: str, quote: bool = True) -> str:
    if len(values) == 1:
        return _q(values[0]) if quote else values[0]
    whens = " ".join(
        f"WHEN {i} THEN {_q(v) if quote else v}" for i, v in enumerate(values)
    )
    return f"(CASE ({expr}) % {len(values)} {whens} END)"


def _weighted(choices: list[tuple[str, int]], expr: str) -> str:
    total = sum(w for _, w in choices)
    parts, acc = [], 0
    for value, weight in choices[:-1]:
        acc += weight
        parts.append(f"WHEN ({expr}) % {total} < {acc} THEN {_q(value)}")
    return f"(CASE {' '.join(parts)} ELSE {_q(choices[-1][0])} END)"


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2s(text.encode(), digest_size=4).digest(), "big")


FIRST = ["Ava", "Liam", "Mia", "Noah", "Zoe", "Omar", "Ines", "Kai", "Lena", "Ravi", "Sofia",
         "Jonas", "Chloe", "Mateo", "Yuki", "Amara"]
#: Names and places whose order depends on the collation: lower-case particles, accents,
#: apostrophes and spaces (see :mod:`.collation`).
LAST = ["Smith", "Garcia", "Müller", "Nguyen", "Kowalski", "Rossi", "du Bois", "Okafor", "Silva",
        "Jensen", "O'Brien", "Tanaka", "van Dijk", "Haddad"]
CITIES = ["Portland", "Austin", "London", "Berlin", "Évian", "Toronto", "Sydney", "Denver",
          "Leeds", "Munich", "Boston", "St. Louis"]
COUNTRIES = ["US", "US", "US", "GB", "DE", "FR", "CA", "AU", "IE"]
STATES = ["OR", "TX", "CA", "NY", "CO", "MA", "WA", "ON", "NSW"]
WORDS = ["Oak", "Linen", "Stone", "Copper", "Field", "Harbor", "Cedar", "Atlas", "Nova", "Birch",
         "Ember", "Lumen"]
ITEMS = ["Mug", "Lamp", "Blanket", "Chair", "Poster", "Vase", "Tote", "Candle", "Rug", "Shelf"]
TAGS = ['[]', '["vip"]', '["wholesale","priority"]', '["b2b"]', '["gift","sale","priority"]',
        '[]', '["fragile"]']
JSONS = ['{}', '{"source":"api"}', '[{"name":"invoice.pdf","url":"https://files.example.com/i.pdf"}]',
         '{"code":"E42","message":"address incomplete"}', '[]']
STATUSES = [("Draft", "default"), ("Pending", "default"), ("Sent", "default"),
            ("Acknowledged", "default"), ("Backordered", "warning"), ("Shipped", "default"),
            ("Received", "default"), ("Cancelled", "danger"), ("Problem", "danger")]


@dataclass
class Plan:
    """How one table is generated: row count, id layout, parent and per-field overrides."""

    url: str
    count: Callable[[int], int]
    base_id: int
    step: int
    overrides: dict[str, str] = field(default_factory=dict)
    #: child tables: (parent table, max children per parent); rows then come from the parents
    parent: tuple[str, int] | None = None
    null_rate: int = 60  # % of NULLs in nullable fields without an override
    #: parent tables: creation times follow :data:`SEASON` instead of being evenly spread
    seasonal: bool = False
    #: child tables: SQL over the parent row ``p``, (child creation time, which parents have one)
    from_parent: Callable[[sqlite3.Connection], tuple[str, str]] | None = None
    #: run on the new rows (ids from the given one on) once inserted
    after: Callable[[sqlite3.Connection, int], None] | None = None


def _lookup(table: str, expr: str) -> str:
    """SQL picking an existing row's id of ``table`` (an index seek into the id range)."""
    return (f"(SELECT id FROM {table} WHERE id >= (SELECT min(id) FROM {table}) + ({expr}) % "
            f"(SELECT max(id) - min(id) + 1 FROM {table}) ORDER BY id LIMIT 1)")


def _skewed_lookup(table: str, expr: str) -> str:
    """Like :func:`_lookup`, but the first ids are picked far more often (a few large, many
    small): the position in the id range is the cube of a uniform fraction."""
    x = f"(({expr}) % 1000)"
    return (f"(SELECT id FROM {table} WHERE id >= (SELECT min(id) FROM {table}) + "
            f"({x} * {x} * {x} * (SELECT max(id) - min(id) + 1 FROM {table})) / 1000000000 "
            f"ORDER BY id LIMIT 1)")


def slow_providers(con: sqlite3.Connection) -> list[int]:
    """Ids of the dropship providers that are often late (by position in id order, which is
    their order by size: see :func:`_skewed_lookup`)."""
    ids = [r[0] for r in con.execute("SELECT id FROM dropship_providers ORDER BY id")]
    return [ids[i] for i in SLOW_RANKS if i < len(ids)]


def _seasonal_time(n: int) -> str:
    """SQL of the creation time of row ``n`` of ``n``: increasing with ``n``, from
    :data:`_START` to the end of the span, denser in the months :data:`SEASON` weighs more."""
    total = sum(SEASON)
    bounds = [sum(SEASON[:m]) / total for m in range(13)]
    months = _SPAN / (_YEAR / 12)
    whole, rest = divmod(months, 12)
    m = int(rest)
    end = whole + bounds[m] + (rest - m) * (bounds[m + 1] - bounds[m])  # in weighted years
    u = f"(((n - 1) + (r5 % 1000) / 1000.0) * {end!r} / {n})"
    f = f"({u} - CAST({u} AS INTEGER))"
    whens = " ".join(f"WHEN {f} < {bounds[m + 1]!r} THEN {m} + ({f} - {bounds[m]!r}) / "
                     f"{bounds[m + 1] - bounds[m]!r}" for m in range(11))
    month = f"(CASE {whens} ELSE 11 + ({f} - {bounds[11]!r}) / {1 - bounds[11]!r} END)"
    return f"{_START} + CAST((CAST({u} AS INTEGER) * 12 + {month}) * {_YEAR / 12!r} AS INTEGER)"


def _h(a: str, j: int, modulo: int) -> str:
    """A seeded-free hash of the row id ``{a}id`` in ``[0, modulo)``, one stream per ``j``."""
    return f"({_hash(f'{a}id', 20 + j, 0)} % {modulo})"


def _shipping(con: sqlite3.Connection, a: str) -> dict[str, str]:
    """SQL over a purchase row (column prefix ``a``) telling how its order went.

    Every purchase is expected to ship 2-4 days after it was ordered. It ships on time, or late
    (1-9 days after the expected date) with a chance of 5%, plus 35 points at a slow provider,
    plus 12 points in November and December. 3% are cancelled (8% at slow providers); 1% never
    ship and stay open (4% at slow providers). The data ends at the last creation time.
    """
    slow = slow_providers(con)
    is_slow = f"coalesce({a}dropshipProviderId IN ({', '.join(map(str, slow)) or 'NULL'}), 0)"
    ordered = f"unixepoch({a}dateOrdered)"
    expected = f"(2 + {_h(a, 1, 3)})"
    peak = f"(CAST(strftime('%m', {a}dateOrdered) AS INTEGER) >= 11)"
    late = f"({_h(a, 2, 100)} < 5 + 35 * {is_slow} + 12 * {peak})"
    days = f"iif({late}, {expected} + 1 + {_h(a, 3, 9)}, 1 + {_h(a, 3, 1000)} % {expected})"
    cancelled = f"({_h(a, 4, 100)} < 3 + 5 * {is_slow})"
    stuck = f"({_h(a, 5, 100)} < 1 + 3 * {is_slow})"
    ship_at = f"({ordered} + {days} * {_DAY} - {_h(a, 6, _DAY // 2)})"
    as_of = f"max({_START + _SPAN}, unixepoch({a}createdAt))"
    return {
        "ordered": ordered, "expected_at": f"({ordered} + {expected} * {_DAY})", "late": late,
        "cancelled": cancelled, "stuck": stuck, "ship_at": ship_at, "as_of": as_of,
        "shipped": f"(NOT {cancelled} AND NOT {stuck} AND {ship_at} <= {as_of})",
    }


def _purchase_history(con: sqlite3.Connection, first_id: int) -> None:
    """Give purchases from ``first_id`` on an expected ship date, a cancellation and a status
    consistent with :func:`_shipping` (3% have no status)."""
    s = _shipping(con, "")
    ids = dict(con.execute("SELECT name, id FROM purchase_statuses").fetchall())

    def status(name: str) -> str:
        return str(ids.get(name, "NULL"))

    age = f"({s['as_of']} - {s['ordered']})"
    stuck_status = _pick([status(n) for n in ("Backordered", "Backordered", "Backordered",
                                              "Problem", "Acknowledged")], _h("", 8, 1000), False)
    received = f"({s['as_of']} - {s['ship_at']} > 7 * {_DAY} AND {_h('', 9, 100)} < 55)"
    case = (f"CASE WHEN {_h('', 7, 33)} = 0 THEN NULL "
            f"WHEN {s['cancelled']} THEN {status('Cancelled')} "
            f"WHEN {s['shipped']} THEN iif({received}, {status('Received')}, {status('Shipped')}) "
            f"WHEN {s['stuck']} THEN {stuck_status} "
            f"WHEN {age} < {_DAY // 4} THEN {status('Draft')} "
            f"WHEN {age} < {_DAY} THEN {status('Pending')} "
            f"WHEN {age} < 2 * {_DAY} THEN {status('Sent')} "
            f"WHEN {s['late']} AND {s['as_of']} > {s['expected_at']} THEN {status('Backordered')} "
            f"ELSE {status('Acknowledged')} END")
    cancelled_at = f"{s['ordered']} + 3600 + {_h('', 10, 3 * _DAY)}"
    con.execute(
        f"UPDATE purchases SET "
        f"shippingExpectedAt = strftime({_ISO}, {s['expected_at']}, 'unixepoch'), "
        f"cancelled = {s['cancelled']}, "
        f"cancelledAt = iif({s['cancelled']}, strftime({_ISO}, {cancelled_at}, 'unixepoch'), "
        f"NULL), "
        f"cancellationStatus = iif({s['cancelled']}, 'full', 'none'), "
        f"purchaseStatusId = {case} WHERE id >= ?", (first_id,))


def _shipments(con: sqlite3.Connection) -> tuple[str, str]:
    """Dropshipments: one per shipped dropship purchase, created when it shipped."""
    s = _shipping(con, "p.")
    return f"{s['ship_at']}", f"p.isDropship = 1 AND {s['shipped']}"


def _plans() -> dict[str, Plan]:
    money = "round(({r} % 40000) / 100.0 + 5, 2)"
    provider = _lookup("dropship_providers", "{r2}")
    status = _lookup("purchase_statuses", "{r2}")
    plans = [
        Plan("purchase-statuses", lambda p: len(STATUSES), 3, 2, {
            "name": _pick([s for s, _ in STATUSES], "n - 1"),
            "level": _pick([lv for _, lv in STATUSES], "n - 1"),
        }),
        Plan("dropship-providers", lambda p: 40, 201, 7, {
            "name": f"{_pick(WORDS, '{r}')} || ' ' || "
                    f"{_pick(['Supply', 'Goods', 'Trading', 'Works'], '{r2}')} || ' ' || n",
            "status": _weighted([("accepted", 80), ("pending", 8), ("away", 4), ("disabled", 4),
                                 ("archived", 4)], "{r}"),
        }),
        Plan("products", lambda p: max(50, p // 10), 5001, 4, {
            "name": f"{_pick(WORDS, '{r}')} || ' ' || {_pick(ITEMS, '{r2}')}",
            "handle": "lower(" + _pick(WORDS, "{r}") + ") || '-' || n",
            "vendor": f"iif({{r}} % 10 < 2, NULL, {_pick(WORDS, '{r2}')} || ' Co')",
        }),
        Plan("variants", lambda p: 3 * max(50, p // 10), 30001, 3, {
            "productId": _lookup("products", "{r}"),
            "dropshipProviderId": f"iif({{r}} % 10 < 2, NULL, {provider})",
            "sku": "printf('SKU-%06d', n)",
            "name": _pick(["Small", "Medium", "Large", "Red", "Blue", "Default Title"], "{r}"),
            "costPrice": money,
        }),
        Plan("channels", lambda p: 5, 11, 5, {
            "name": _pick(["Shopify US", "Shopify EU", "Amazon", "Wholesale", "Retail POS"],
                          "n - 1"),
            "purchaseStatusId": _lookup("purchase_statuses", "{r}"),
            "warehouseId": "(SELECT min(id) FROM warehouses)",
            "dropshipProviderId": "NULL",
        }),
        Plan("customers", lambda p: max(100, p // 3), 70001, 9, {
            "email": "lower(" + _pick(FIRST, "{r}") + ") || '.' || n || '@example.com'",
            "firstName": _pick(FIRST, "{r}"),
            "lastName": _pick(LAST, "{r2}"),
            "name": f"{_pick(FIRST, '{r}')} || ' ' || {_pick(LAST, '{r2}')}",
            "status": _weighted([("active", 90), ("disabled", 10)], "{r}"),
        }),
        Plan("warehouses", lambda p: 4, 301, 11, {
            "name": _pick(["Main", "East Coast", "EU Hub", "Returns"], "n - 1"),
            "skipOnlineInventory": "0",
        }),
        Plan("sales", lambda p: max(100, int(p * 0.8)), 500001, 3, {
            "channelId": _lookup("channels", "{r}"),
            "customerId": f"iif({{r}} % 20 = 0, NULL, {_lookup('customers', '{r2}')})",
            "warehouseId": _lookup("warehouses", "{r}"),
            "reference": "printf('#%d', 1000 + n)",
            "dateOrdered": f"strftime({_ISO}, c - {{r}} % 3600, 'unixepoch')",
            "subtotal": money, "total": money, "tax": "round(({r} % 2000) / 100.0, 2)",
            "status": _weighted([("finalized", 80), ("pending", 12), ("draft", 8)], "{r}"),
            "saleId": "NULL",
        }),
        Plan("sale-items", lambda p: 0, 800001, 2, {
            "saleId": "parent_id",
            "variantId": f"iif({{r}} % 25 = 0, NULL, {_lookup('variants', '{r2}')})",
            "warehouseId": "(SELECT warehouseId FROM sales WHERE id = parent_id)",
            "dropshipProviderId": f"iif({{r}} % 5 = 0, NULL, {provider})",
            "name": f"{_pick(WORDS, '{r}')} || ' ' || {_pick(ITEMS, '{r2}')}",
            "price": money, "quantity": "1 + {r} % 4",
        }, parent=("sales", 4)),
        Plan("purchases", lambda p: p, 100003, 3, {
            "purchaseType": _weighted([("dropship", 45), ("replenishment", 25),
                                       ("automated_dropship", 15), ("automated_replenishment", 10),
                                       ("adjusted_dropship", 5)], "r1"),
            "isDropship": "iif(r1 % 100 < 45 OR (r1 % 100 >= 70 AND r1 % 100 < 85) "
                          "OR r1 % 100 >= 95, 1, 0)",
            "dropshipProviderId": f"iif({{r}} % 10 = 0, NULL, "
                                  f"{_skewed_lookup('dropship_providers', '{r2}')})",
            "purchaseStatusId": f"iif({{r}} % 30 = 0, NULL, {status})",
            "saleId": f"iif({{r}} % 5 = 0, NULL, {_lookup('sales', '{r2}')})",
            "warehouseId": f"iif({{r}} % 3 = 0, NULL, {_lookup('warehouses', '{r2}')})",
            "reference": "printf('PO-%d', 10000 + n)",
            "dateOrdered": f"strftime({_ISO}, c - {{r}} % 7200, 'unixepoch')",
            "cancelled": "iif(r2 % 20 = 0, 1, 0)",
            "cancelledAt": f"iif(r2 % 20 = 0, "
                           f"strftime({_ISO}, c + {{r}} % 864000, 'unixepoch'), NULL)",
            "cancellationStatus": "iif(r2 % 20 = 0, 'full', 'none')",
            "subtotal": money, "total": money, "tax": "round(({r} % 2000) / 100.0, 2)",
            "quantity": "1 + {r} % 12",
            "files": f"iif({{r}} % 4 = 0, {_pick(JSONS, '{r2}')}, NULL)",
        }, seasonal=True, after=_purchase_history),
        Plan("purchase-items", lambda p: 0, 2000001, 2, {
            "purchaseId": "parent_id",
            "variantId": f"iif({{r}} % 25 = 0, NULL, {_lookup('variants', '{r2}')})",
            "saleItemId": "(SELECT min(si.id) FROM sale_items si WHERE si.saleId = "
                          "(SELECT saleId FROM purchases WHERE id = parent_id))",
            "name": f"{_pick(WORDS, '{r}')} || ' ' || {_pick(ITEMS, '{r2}')}",
            "price": money, "quantity": "1 + {r} % 4",
        }, parent=("purchases", 4)),
        Plan("dropshipments", lambda p: 0, 3000001, 3, {
            "purchaseId": "parent_id",
            "saleId": "(SELECT saleId FROM purchases WHERE id = parent_id)",
            "inventoryStatus": "'shipped'",
            "source": "'sale'",
            "trackingCompany": _pick(["UPS", "USPS", "FedEx", "DHL", "Royal Mail"], "{r}"),
            "trackingNumber": "printf('1Z%010d', {r} % 10000000000)",
            "trackingStatus": _weighted([("delivered", 85), ("transit", 10), ("failure", 2),
                                         ("returned", 3)], "{r}"),
        }, parent=("purchases", 1), from_parent=_shipments),
    ]
    return {p.url: p for p in plans}


PLANS = _plans()

_GENERIC_STRINGS: list[tuple[tuple[str, ...], str]] = [
    (("email",), "'contact' || n || '@example.com'"),
    (("city",), _pick(CITIES, "{r}")),
    (("country",), _pick(COUNTRIES, "{r}")),
    (("state",), _pick(STATES, "{r}")),
    (("zip",), "printf('%05d', {r} % 100000)"),
    (("phone",), "printf('+1-555-%04d', {r} % 10000)"),
    (("firstname",), _pick(FIRST, "{r}")),
    (("lastname",), _pick(LAST, "{r}")),
    (("url", "endpoint"), "'https://example.com/' || n"),
    (("externalid", "reference", "stripeid", "xeroid", "quickbooksid"), "printf('ext-%d', {r})"),
    (("fullname",), f"'\"' || {_pick(FIRST, '{r}')} || ' ' || {_pick(LAST, '{r2}')} || '\"'"),
    (("name",), f"{_pick(FIRST, '{r}')} || ' ' || {_pick(LAST, '{r2}')}"),
    (("addressline",), "(1 + {r} % 900) || ' ' || " + _pick(WORDS, "{r2}") + " || ' St'"),
    (("notes", "message"), "'note ' || ({r} % 1000)"),
]


def _generic(res: Resource, f: Field, plan: Plan, idx: int) -> str:
    """SQL for a field without an override: a value of the spec's type, NULL at a fixed rate."""
    low = f.name.lower()
    if f.kind == "integer":
        expr = "1 + {r} % 5000" if low.endswith("id") else "{r} % 100"
    elif f.kind == "number":
        expr = ("round(({r} % 3000) / 10000.0, 4)" if "rate" in low
                else "round(({r} % 5000) / 10.0, 1)" if ("weight" in low or "grams" in low)
                else "round(({r} % 20000) / 100.0, 2)")
    elif f.kind == "boolean":
        expr = "iif({r} % 10 < 3, 1, 0)"
    elif f.kind == "datetime":
        expr = f"strftime({_ISO}, c + {{r}} % 2592000, 'unixepoch')"
    elif f.kind == "enum":
        expr = _pick(list(f.enum or ("",)), "{r}")
    elif f.kind == "array":
        expr = _pick(TAGS, "{r}")
    elif f.kind == "json" and not low.endswith("fullname"):
        expr = _pick(JSONS, "{r}")
    else:
        expr = "lower(" + _q(f.name) + ") || '-' || ({r} % 1000)"
        for keys, sql in _GENERIC_STRINGS:
            if any(k in low for k in keys):
                expr = sql
                break
    if f.nullable:
        rate = plan.null_rate + _digest(res.url + f.name) % 35
        if f.kind in ("json",) or low.endswith("id"):
            rate = max(rate, 75)
        expr = f"iif({{r3}} % 100 < {min(rate, 97)}, NULL, {expr})"
    return expr


def _columns(res: Resource) -> list[str]:
    return [*res.field_names, *EXTRA_FIELDS]


def _field_exprs(res: Resource, plan: Plan, seed: int, *, fresh: bool = False) -> list[str]:
    """SQL expressions of every column; ``fresh`` rows are created and last updated now."""
    exprs = []
    for i, f in enumerate(res.fields):
        if f.name == "id":
            expr = "base_id"
        elif f.name == "createdAt":
            expr = f"strftime({_ISO}, c, 'unixepoch')"
        elif f.name == "updatedAt":
            later = "0" if fresh else "iif(r4 % 3 = 0, 0, r4 % 15552000)"
            expr = f"strftime({_ISO}, c + {later}, 'unixepoch')"
        elif f.credential:
            expr = f"'{FAKE_SECRET}{res.url}-{f.name}-' || base_id"
        elif f.name in plan.overrides:
            expr = plan.overrides[f.name]
        else:
            expr = _generic(res, f, plan, i)
        salt = 16807 + 2 * _digest(f"{seed}:{res.url}:{f.name}") % 100000
        salt2 = 48271 + 2 * _digest(f"{seed}:{res.url}:{f.name}:2") % 100000
        j = 1 + i % 8
        j2 = 1 + (i + 3) % 8
        j3 = 1 + (i + 5) % 8
        salt3 = 69621 + 2 * (i % 5000)
        expr = (expr.replace("{r}", f"((r{j} * {salt}) % {_P})")
                .replace("{r2}", f"((r{j2} * {salt2}) % {_P})")
                .replace("{r3}", f"((r{j3} * {salt3}) % {_P})"))
        exprs.append(expr)
    exprs.append(str(COMPANY_ID))
    return exprs


def _hash(key: str, j: int, seed: int) -> str:
    x = f"(({key}) * 1103515245 + {j * 2654435 + (seed % 1000003) * 362437 + 12345}) % {_P}"
    return f"(((({x}) * ({x})) % {_P}) * 48271 + {j}) % {_P}"


def create_tables(con: sqlite3.Connection) -> None:
    """Create the empty tables (indexes come after the data, see :func:`create_indexes`)."""
    for url in RESOURCES:
        res = CATALOG.resource(url)
        cols = [f'"{f.name}" {_SQL_TYPES.get(f.kind, "TEXT")}'
                for f in res.fields if f.name != "id"]
        cols += [f'"{k}" {t}' for k, t in EXTRA_FIELDS.items()]
        table = table_name(url)
        con.execute(f'CREATE TABLE {table} (id INTEGER PRIMARY KEY, {", ".join(cols)})')


def create_indexes(con: sqlite3.Connection, url: str) -> None:
    """Index the foreign keys (used by includes) and the dates of one table."""
    res = CATALOG.resource(url)
    table = table_name(url)
    keys = [r.foreign_key for r in res.belongs_to if res.has_field(r.foreign_key)]
    for key in [*keys, "createdAt", "updatedAt"]:
        if key != "id":
            con.execute(f'CREATE INDEX IF NOT EXISTS {table}_{key} ON {table}("{key}")')


def insert_rows(con: sqlite3.Connection, url: str, count: int | None, *, seed: int,
                purchases: int = 0, now: float | None = None, after_id: int = 0) -> int:
    """Generate and insert rows of one resource; returns the number of rows inserted.

    With ``now`` (epoch seconds) the rows are new records created at that time, with ids above the
    current maximum and above ``after_id`` (ids of deleted records are never reused); ``count``
    is then the number of rows (or of parents for item tables).
    """
    res = CATALOG.resource(url)
    plan = PLANS[url]
    table = table_name(url)
    max_id = con.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
    first_id = max(plan.base_id, max_id + 1, after_id + 1)
    offset = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    hashes = ", ".join(f"{_hash('k', j, seed)} AS r{j}" for j in range(1, 9))
    if plan.parent is None:
        n = plan.count(purchases) if count is None else count
        if now is None and plan.seasonal:
            created = _seasonal_time(max(n, 1))
        elif now is None:
            gap = max(_SPAN // max(n, 1), 1)
            created = f"{_START} + (n - 1) * {gap} + r5 % {gap}"
        else:
            created = str(int(now))
        source = (f"seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n}), "
                  f"keys AS (SELECT n, n + {offset} AS k, NULL AS parent_id, NULL AS pc FROM seq)")
    else:
        ptable, most = plan.parent
        parent_time, has_children = (plan.from_parent(con) if plan.from_parent
                                     else ("unixepoch(p.createdAt)", "1"))
        newest = ("1" if count is None
                  else f"p.id IN (SELECT id FROM {ptable} ORDER BY id DESC LIMIT {count})")
        source = (f"kk(j) AS (VALUES {', '.join(f'({j})' for j in range(1, most + 1))}), "
                  f"keys AS (SELECT row_number() OVER (ORDER BY p.id, kk.j) AS n, "
                  f"p.id * 8 + kk.j AS k, p.id AS parent_id, {parent_time} AS pc "
                  f"FROM {ptable} p JOIN kk ON kk.j <= 1 + (({_hash('p.id', 9, seed)}) % {most}) "
                  f"WHERE {newest} AND {has_children})")
        created = ("pc + r5 % 600" if now is None else str(int(now)))
    base = (f"base AS MATERIALIZED (SELECT n, k, parent_id, pc, {hashes} FROM keys), "
            f"rows AS MATERIALIZED (SELECT *, {created} AS c, "
            f"{first_id} + (n - 1) * {plan.step} + r6 % {plan.step} AS base_id FROM base)")
    cols = ", ".join(f'"{c}"' for c in _columns(res))
    exprs = ", ".join(_field_exprs(res, plan, seed, fresh=now is not None))
    sql = f"WITH RECURSIVE {source}, {base} INSERT INTO {table} ({cols}) SELECT {exprs} FROM rows"
    before = con.total_changes
    con.execute(sql)
    inserted = con.total_changes - before
    if plan.after is not None:
        plan.after(con, first_id)
    return inserted


def generate(con: sqlite3.Connection, *, seed: int = 0, purchases: int = 3000) -> dict[str, int]:
    """Create and fill every table; returns row counts per resource URL."""
    create_tables(con)
    counts = {}
    for url in RESOURCES:
        counts[url] = insert_rows(con, url, None, seed=seed, purchases=purchases)
        create_indexes(con, url)  # after the bulk insert: faster than maintaining them
    con.commit()
    return counts


def cache_dir() -> Path:
    """Where generated databases are kept between runs (``$JETTI_SANDBOX_CACHE`` or a temp dir)."""
    return Path(os.environ.get("JETTI_SANDBOX_CACHE")
                or Path(tempfile.gettempdir()) / "jetti-frames-sandbox")


def cached_database(seed: int, purchases: int, target: Path) -> Path:
    """Copy a generated database for ``seed`` and ``purchases`` to ``target``.

    The first call generates it into :func:`cache_dir` (keyed by seed, size, generator and
    catalogue versions); later calls only copy the file.
    """
    key = hashlib.sha256(
        f"{seed}:{purchases}:{GENERATOR_VERSION}:{CATALOG.digest}:{sqlite3.sqlite_version}".encode()
    ).hexdigest()[:16]
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    cached = folder / f"sandbox-{seed}-{purchases}-{key}.sqlite"
    if not cached.exists():
        tmp = folder / f".{cached.name}.{os.getpid()}.{time.monotonic_ns()}"
        con = sqlite3.connect(tmp)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            generate(con, seed=seed, purchases=purchases)
        finally:
            con.close()
        os.replace(tmp, cached)
    shutil.copyfile(cached, target)
    return target
