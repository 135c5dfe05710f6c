"""How Python values in a query are read and sent, against a real sandbox over 127.0.0.1.

One rule for date-times (ISO-8601 strings, date, datetime, Timestamp, datetime64; nothing
guessed), the same conversion for ``read_jetti``'s ``where``, ``read_snapshot``'s ``filters``,
the query form and ``--where``, and refresh overlaps that never skip a change.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jetti_frames import query
from jetti_frames.cli import main
from jetti_frames.client import JettiClient
from jetti_frames.errors import JettiQueryError
from jetti_frames.query import build_query, to_iso
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import read_snapshot, refresh_snapshot, snapshot
from jetti_frames.widgets import QueryForm, parse_list

TOKEN = "values-test-t0ken-3b7d"
UTC = dt.UTC
JUNE_1 = "2025-06-01T00:00:00+00:00"  # as the sandbox stores it
JANUARY_6 = "2025-01-06T00:00:00+00:00"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """A read-only sandbox for this module (300 purchases, no rate limit, a private token)."""
    with Sandbox(purchases=300, rate="off", tokens=(TOKEN,)) as sandbox:
        yield sandbox


@pytest.fixture
def own(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A sandbox this test may change."""
    return make_sandbox(purchases=300, rate="off", tokens=(TOKEN,))


def make_client(sb: Sandbox) -> JettiClient:
    return JettiClient(TOKEN, base_url=sb.base_url, cache=False, progress=False, page_size=100,
                       get_rate=1000.0)


def count(sb: Sandbox, condition: str, *params: Any) -> int:
    return int(sb.query(f"SELECT count(*) AS n FROM purchases WHERE {condition}", params)[0]["n"])


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("jetti-frames: error: ") and "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ 1. one rule for date-times


def test_day_first_dates_are_refused_not_guessed_month_first(sb: Sandbox) -> None:
    """'01/06/2025' meant 1 June to a European analyst; read month-first it was 6 January."""
    june, january = count(sb, "dateOrdered >= ?", JUNE_1), count(sb, "dateOrdered >= ?", JANUARY_6)
    assert 0 < june < january  # the two readings select different rows
    client = make_client(sb)
    assert len(client.read("purchases", where={"dateOrdered": {"$gte": "2025-06-01"}})) == june
    for text in ("01/06/2025", "1.6.2025", "06-01-2025"):
        sb.reset_counters()
        with pytest.raises(JettiQueryError, match="ISO-8601") as info:
            client.read("purchases", where={"dateOrdered": {"$gte": text}})
        assert "dateOrdered" in str(info.value) and "2025-06-01" in str(info.value)
        assert sb.counters()["requests"] == 0


NOT_ISO = ["01/06/2025", "1.6.2025", "06-01-2025", "June 1 2025", "1 June 2025", "20250601",
           "2025-W22-1", "2025-152", "2025-06-01T10", "2025-06-01x10:00", "", "NaT", "nan",
           "now"]
REFUSED: list[Any] = [
    *NOT_ISO, "2025-02-30", "+010000-01-01T00:00:00.000Z", "2025-06-01T10:00+24:00",
    pd.NaT, np.datetime64("NaT"), pd.NA, float("nan"), 20250601, True,
    np.datetime64("10000-01-01"),
    dt.datetime.max.replace(tzinfo=dt.timezone(-dt.timedelta(hours=5))),
    dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=5))),
    "9999-12-31T23:00:00-05:00",
]


@pytest.mark.parametrize("value", REFUSED, ids=repr)
@pytest.mark.parametrize("shape", ["bare", "$gte", "$in"])
def test_refused_date_values_raise_before_any_request(sb: Sandbox, value: Any,
                                                      shape: str) -> None:
    condition = {"bare": value, "$gte": {"$gte": value}, "$in": [value]}[shape]
    client = make_client(sb)
    sb.reset_counters()
    with pytest.raises(JettiQueryError, match="dateOrdered") as info:
        client.read("purchases", where={"dateOrdered": condition})
    assert sb.counters()["requests"] == 0
    text = str(info.value)
    assert "\n" not in text
    if isinstance(value, str) and value in NOT_ISO:
        assert "ISO-8601" in text and "2025-06-01T14:30:00+02:00" in text  # the accepted forms
    if value is pd.NaT or (isinstance(value, np.datetime64) and np.isnat(value)):
        assert "None" in text  # says how to write NULL


JUNE_1_FORMS: list[Any] = [
    dt.date(2025, 6, 1), dt.datetime(2025, 6, 1), dt.datetime(2025, 6, 1, tzinfo=UTC),
    dt.datetime(2025, 6, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    pd.Timestamp("2025-06-01"), pd.Timestamp("2025-05-31 20:00", tz="America/New_York"),
    np.datetime64("2025-06-01"), np.datetime64("2025-06-01T00:00:00.000000001"),
    "2025-06-01", "2025-06-01T00:00", "2025-06-01 00:00:00", "2025-06-01T00:00:00.000Z",
    "2025-06-01T02:00:00+02:00", "2025-05-31T20:00:00.0009-0400", " 2025-06-01 ",
]


@pytest.mark.parametrize("value", JUNE_1_FORMS, ids=repr)
def test_accepted_forms_select_the_rows_sql_selects(sb: Sandbox, value: Any) -> None:
    client = make_client(sb)
    frame = client.read("purchases", where={"dateOrdered": {"$gte": value}}, attributes=["id"])
    assert len(frame) == count(sb, "dateOrdered >= ?", JUNE_1) > 0
    assert to_iso(value) == "2025-06-01T00:00:00.000Z"


def test_years_before_1000_are_zero_padded_as_javascript_writes_them(sb: Sandbox) -> None:
    client = make_client(sb)
    sb.reset_counters()
    frame = client.read("purchases", where={"dateOrdered": {"$gte": dt.datetime(5, 1, 2)}},
                        attributes=["id"])
    assert len(frame) == count(sb, "dateOrdered IS NOT NULL") == 300
    assert any("[$gte]=0005-01-02T00:00:00.000Z" in entry["target"] for entry in sb.log)
    early = client.read("purchases", where={"dateOrdered": {"$lt": "0999-12-31"}})
    assert len(early) == 0
    assert to_iso(np.datetime64("0001-01-01")) == "0001-01-01T00:00:00.000Z"
    assert to_iso(dt.datetime.max) == "9999-12-31T23:59:59.999Z"


def test_none_is_null_and_nat_is_refused(sb: Sandbox) -> None:
    client = make_client(sb)
    assert len(client.read("purchases", where={"cancelledAt": None})) == \
        count(sb, "cancelledAt IS NULL")
    assert len(client.read("purchases", where={"cancelledAt": {"$ne": None}})) == \
        count(sb, "cancelledAt IS NOT NULL")
    empty = pd.Series([], dtype="datetime64[us, UTC]").max()  # NaT: a bound that came out empty
    with pytest.raises(JettiQueryError, match="None is how to say NULL"):
        build_query("purchases", where={"updatedAt": empty})
    with pytest.raises(JettiQueryError, match="None is how to say NULL"):
        build_query("purchases", where={"saleId": pd.NaT})


def test_one_parser_for_every_date_string() -> None:
    assert query.to_instant("2025-06-01T14:30:00,1239Z") == \
        dt.datetime(2025, 6, 1, 14, 30, 0, 123000, tzinfo=UTC)
    assert query.to_instant("+002025-06-01T14:30Z") == dt.datetime(2025, 6, 1, 14, 30, tzinfo=UTC)
    assert query.to_instant("2025-06-01T14:30:00+0530") == dt.datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    stored = "2025-06-01T14:30:00.123456789+00:00"  # str() of a nanosecond Timestamp
    assert query.to_instant(stored) == dt.datetime(2025, 6, 1, 14, 30, 0, 123000, tzinfo=UTC)


# ------------------------------------------------------------------ 2. the same rules everywhere


@pytest.fixture(scope="module")
def snap(sb: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("values") / "p"
    snapshot("purchases", path, include=["PurchaseStatus"], client=make_client(sb),
             partition_by=("dateOrdered", "year"))
    return path


def test_snapshot_filters_take_the_values_where_takes(sb: Sandbox, snap: Path) -> None:
    where = {
        "dateOrdered": {"$gte": "2022-06-01", "$lt": dt.date(2025, 1, 1)},
        "purchaseType": {"$in": ["dropship", "automated_dropship", "replenishment"]},
        "cancelledAt": None,
        "purchaseStatusId": {"$notIn": ["3"]},
        "cancelled": "false",
        "total": {"$gt": "10"},
    }
    filters = [("dateOrdered", ">=", "2022-06-01"), ("dateOrdered", "<", dt.date(2025, 1, 1)),
               ("purchaseType", "in", ["dropship", "automated_dropship", "replenishment"]),
               ("cancelledAt", "==", None), ("purchaseStatusId", "not in", ["3"]),
               ("cancelled", "==", "false"), ("total", ">", "10")]
    expected = make_client(sb).read("purchases", include=["PurchaseStatus"], where=where)
    assert len(expected) > 10
    pd.testing.assert_frame_equal(read_snapshot(snap, filters=filters), expected)


def test_snapshot_filters_or_groups_and_timestamps(sb: Sandbox, snap: Path) -> None:
    stamp = pd.Timestamp("2024-03-01 01:00", tz="Europe/Berlin")
    where = {"$or": [{"dateOrdered": {"$lte": "2019-06-01T00:00:00Z"}},
                     {"dateOrdered": {"$gte": stamp}, "purchaseType": "dropship"}]}
    filters = [[("dateOrdered", "<=", "2019-06-01T00:00:00Z")],
               [("dateOrdered", ">=", stamp), ("purchaseType", "=", "dropship")]]
    expected = make_client(sb).read("purchases", include=["PurchaseStatus"], where=where)
    assert len(expected) > 10
    pd.testing.assert_frame_equal(read_snapshot(snap, filters=filters), expected)
    year = read_snapshot(snap, columns=["id"], filters=[("dateOrdered_year", "==", "2024")])
    assert len(year) == count(sb, "dateOrdered LIKE '2024-%'")


@pytest.mark.parametrize(("filters", "fragments"), [
    ([("dateOrdered", ">=", "01/06/2025")], ["filters[0][dateOrdered]", "ISO-8601"]),
    ([("dateOrdered", ">=", "")], ["dateOrdered", "ISO-8601"]),
    ([("dateOrdered", "==", pd.NaT)], ["dateOrdered", "None"]),
    ([("dateOrderd", ">=", "2025-06-01")], ["no column 'dateOrderd'", "'dateOrdered'"]),
    ([("purchaseType", "==", "dropshp")], ["purchaseType", "did you mean 'dropship'"]),
    ([("purchaseType", ">", "dropship")], ["purchaseType", "ordered field"]),
    ([("id", "in", [1, "x"])], ["'x' is not a valid integer for 'id'"]),
    ([("id", "in", [1, None])], ["cannot hold None"]),
    ([("tags", "==", "x")], ["cannot filter on 'tags'"]),
    ([("id", "~", 1)], ["unknown filter operator '~'"]),
    ([("id", 1)], ["(column, op, value)"]),
    ("id > 1", ["list of (column, op, value)"]),
])
def test_bad_snapshot_filters_name_the_column(snap: Path, filters: Any,
                                              fragments: list[str]) -> None:
    with pytest.raises(JettiQueryError) as info:
        read_snapshot(snap, filters=filters)
    assert all(f in str(info.value) for f in fragments), str(info.value)


def test_cli_where_goes_through_the_same_conversion(sb: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JETTI_API_TOKEN", TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", sb.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    for command in ("read", "explain", "snapshot"):
        sb.reset_counters()
        extra = ["--out", str(tmp_path / "s")] if command == "snapshot" else []
        assert main([command, "purchases", "--where", '{"dateOrdered": {"$gte": "01/06/2025"}}',
                     *extra]) == 2
        line = one_line_error(capsys.readouterr().err)
        assert "dateOrdered" in line and "ISO-8601" in line
        assert sb.counters()["requests"] == 0
    assert main(["read", "purchases", "--where", '{"dateOrdered": {"$gte": "2025-06-01"}}',
                 "--attributes", "id", "--format", "json", "-q"]) == 0
    rows = pd.read_json(io.StringIO(capsys.readouterr().out))
    assert len(rows) == count(sb, "dateOrdered >= ?", JUNE_1)


def test_query_form_converts_by_the_same_rule(sb: Sandbox) -> None:
    with pytest.raises(JettiQueryError, match="ISO-8601"):
        parse_list("datetime", "2025-06-01, 01/06/2025")
    assert parse_list("datetime", "2025-06-01") == ["2025-06-01T00:00:00.000Z"]
    with pytest.raises(JettiQueryError, match="not a valid boolean"):
        parse_list("boolean", "yes")  # read_jetti takes True/False or "true"/"false" only
    form = QueryForm(make_client(sb))
    form.add_filter("dateOrdered", "$gte", dt.date(2025, 6, 1))
    row = form.add_filter("purchaseStatusId", "$notIn")
    row.value.value = "3, 4"
    form.load.click()
    frame = form.wait(timeout=60)
    assert form.error.value == ""
    assert frame is not None
    assert len(frame) == count(sb, "dateOrdered >= ? AND purchaseStatusId NOT IN (3, 4)", JUNE_1)
    assert "'$gte': '2025-06-01T00:00:00.000Z'" in form.code.value


# ------------------------------------------------------------------ 3. refresh never skips


@pytest.mark.parametrize("overlap", [5, 5.0, np.int64(5), dt.timedelta(seconds=5),
                                     pd.Timedelta(seconds=5)], ids=repr)
def test_refresh_overlap_in_seconds_picks_up_a_change_inside_it(own: Sandbox, tmp_path: Path,
                                                                overlap: Any) -> None:
    client = make_client(own)
    before = snapshot("purchases", tmp_path / "p", client=client)
    watermark = dt.datetime.fromisoformat(before["watermark"])
    late = own.query("SELECT id FROM purchases WHERE updatedAt < ? ORDER BY id LIMIT 1",
                     [(watermark - dt.timedelta(hours=1)).isoformat()])[0]["id"]
    # A change committed after the snapshot but dated 3 s before its watermark (a server clock
    # behind ours, a long transaction): only the overlap can see it.
    own.touch("purchases", [late], at=watermark - dt.timedelta(seconds=3))
    info = refresh_snapshot(tmp_path / "p", client=client, overlap=overlap)
    since = (watermark - dt.timedelta(seconds=5)).isoformat()
    assert info["refetched_records"] == count(own, "updatedAt >= ?", since) >= 2
    assert info["changed_records"] == 1  # the late one; the rest of the overlap is unchanged
    got = read_snapshot(tmp_path / "p").set_index("id")
    assert got.loc[late, "notes"].startswith("updated at ")
    assert got.loc[late, "updatedAt"] == pd.Timestamp(watermark - dt.timedelta(seconds=3))


BAD_OVERLAPS: list[Any] = [-1, -0.5, dt.timedelta(-1), dt.timedelta(seconds=-1),
                           pd.Timedelta(-1), float("nan"), float("inf"), np.float64("nan"),
                           pd.NaT, "5", True, None, 1e300]


@pytest.mark.parametrize("overlap", BAD_OVERLAPS, ids=repr)
def test_bad_overlaps_raise_before_any_request(sb: Sandbox, snap: Path, overlap: Any) -> None:
    sb.reset_counters()
    with pytest.raises(JettiQueryError, match="overlap"):
        refresh_snapshot(snap, client=make_client(sb), overlap=overlap)
    assert sb.counters()["requests"] == 0


@pytest.mark.parametrize("text", ["nan", "-1", "inf", "-inf"])
def test_cli_refresh_bad_overlap_is_one_line_exit_2(sb: Sandbox, snap: Path, text: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    sb.reset_counters()
    argv = ["refresh", str(snap), f"--overlap={text}", "--token", TOKEN, "--base-url",
            sb.base_url, "--no-cache"]
    assert main(argv) == 2
    assert "overlap" in one_line_error(capsys.readouterr().err)
    assert sb.counters()["requests"] == 0
