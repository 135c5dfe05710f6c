"""The account mirror: jetti.toml, sync, sweep and DuckDB, against real sandboxes on 127.0.0.1."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_support import REPO, run_cli

from jetti_frames import (
    JettiConfigError,
    JettiDriftWarning,
    connect,
    read_snapshot,
    snapshot_info,
    sync,
)
from jetti_frames.mirror import load_config, parse_config
from jetti_frames.sandbox import Sandbox

TOKEN_A = "mirror-test-t0ken-a1"
TOKEN_B = "mirror-test-t0ken-b2"
FAST = "get_rate = 1000"  # the sandbox's limit is off: the client need not wait

#: Each view as SQL over the sandbox's database, in the view's column names.
TRUTH = {
    "purchases": """SELECT p.id, p.updatedAt, p.total, s.name AS purchase_status_name,
                           d.name AS dropship_provider_name
                    FROM purchases p LEFT JOIN purchase_statuses s ON s.id = p.purchaseStatusId
                    LEFT JOIN dropship_providers d ON d.id = p.dropshipProviderId""",
    "purchase_items": "SELECT id, purchaseId, quantity, updatedAt FROM purchase_items",
    "providers": "SELECT id, name, updatedAt FROM dropship_providers",
}


def mirror_file(folder: Path, accounts: dict[str, tuple[str, str]], *, extra: str = "",
                sweep_every: int = 1) -> Path:
    """The acceptance file: purchases (with status and provider), items, providers."""
    blocks = [f'root = "data/jetti"\nsweep_every = {sweep_every}\n']
    for name, (env, base_url) in accounts.items():
        blocks.append(f'[accounts.{name}]\ntoken_env = "{env}"\nbase_url = "{base_url}"\n'
                      f'{extra}\n')
    blocks.append("""
[datasets.purchases]
resource = "purchases"
include = ["PurchaseStatus", "DropshipProvider"]
deletes = "sweep"

[datasets.purchase_items]
resource = "purchase-items"
attributes = ["id", "purchaseId", "quantity", "updatedAt"]
deletes = "sweep"

[datasets.providers]
resource = "dropship-providers"
deletes = "sweep"
""")
    path = folder / "jetti.toml"
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def truth(sb: Sandbox, view: str) -> pd.DataFrame:
    frame = pd.DataFrame(sb.query(TRUTH[view]))
    return normalise(frame)


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["updatedAt"] = pd.to_datetime(frame["updatedAt"], utc=True, format="ISO8601")
    for col in frame.columns:
        if col != "updatedAt":
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame.sort_values("id").reset_index(drop=True)


def view(con: Any, name: str, account: str | None = None) -> pd.DataFrame:
    columns = ", ".join(f'"{c}"' for c in TRUTH_COLUMNS[name])
    where = f" WHERE account = '{account}'" if account else ""
    return normalise(con.sql(f"SELECT {columns} FROM {name}{where}").df())


TRUTH_COLUMNS = {
    "purchases": ["id", "updatedAt", "total", "purchase_status_name", "dropship_provider_name"],
    "purchase_items": ["id", "purchaseId", "quantity", "updatedAt"],
    "providers": ["id", "name", "updatedAt"],
}


def assert_views_equal_sql(root: Path, sb: Sandbox, account: str | None = None) -> None:
    con = connect(root)
    try:
        for name in TRUTH:
            got, want = view(con, name, account), truth(sb, name)
            assert len(got) == len(want), name
            pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=name)
    finally:
        con.close()


@pytest.fixture
def one(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> tuple[Sandbox, Path, dict]:
    sb = make_sandbox(purchases=300, rate="off", tokens=(TOKEN_A,))
    env = {"MIRROR_TOKEN": TOKEN_A}
    return sb, mirror_file(tmp_path, {"main": ("MIRROR_TOKEN", sb.base_url)}, extra=FAST), env


# ------------------------------------------------------------------------------- the file


@pytest.mark.parametrize(("text", "line", "key"), [
    ('[datasets.p]\nresource = "purchases"\ndeletes = "always"\n', 3, "datasets.p.deletes"),
    ('[datasets.p]\nresource = "purchases"\ntoken = "abc"\n', 3, "datasets.p.token"),
    ('[datasets.p]\nresource = "purchasez"\n', 1, "datasets.p"),
    ('[datasets.p]\nresource = "purchases"\n\n[datasets.q]\nresource = "purchases"\n'
     'attributes = ["id", "total"]\n', 6, "datasets.q.attributes"),
    ('[datasets.p]\nresource = "purchases"\nwhere = { nope = 1 }\n', 1, "datasets.p"),
    ('[accounts.eu]\ntoken_env = "UNSET_VARIABLE"\n[datasets.p]\nresource = "purchases"\n',
     2, "accounts.eu.token_env"),
    ('root = "x"\nsweep_every = 0\n[datasets.p]\nresource = "purchases"\n', 2, "sweep_every"),
    ('[datasets.p]\nresource = "purchases"\nsweep_everyy = 2\n', 3, "datasets.p.sweep_everyy"),
    ('[datasets.sync_runs]\nresource = "purchases"\n', 1, "datasets.sync_runs"),
])
def test_bad_files_name_the_line_and_key(text: str, line: int, key: str) -> None:
    with pytest.raises(JettiConfigError) as caught:
        parse_config(text, environ={"JETTI_API_TOKEN": "t"})
    assert str(caught.value).startswith(f"jetti.toml:{line}: {key}: ")


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(JettiConfigError, match=r"not valid TOML.*line 2"):
        parse_config('[datasets.p]\nresource = "purchases\n', environ={})
    with pytest.raises(JettiConfigError, match="cannot read the mirror file"):
        load_config(tmp_path / "missing.toml")


def test_whole_file_is_checked_before_any_request(one: tuple, tmp_path: Path) -> None:
    sb, path, env = one
    path.write_text(path.read_text() + '\n[datasets.bad]\nresource = "purchases"\n'
                    'include = ["NoSuchModel"]\n')
    with pytest.raises(JettiConfigError, match=r"jetti.toml:\d+: datasets.bad"):
        sync(path, environ=env, progress=False)
    assert sb.counters()["requests"] == 0
    assert not (tmp_path / "data").exists()


def test_token_never_on_disk(one: tuple, tmp_path: Path) -> None:
    _sb, path, env = one
    assert sync(path, environ=env, progress=False).ok
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert TOKEN_A.encode() not in file.read_bytes(), file


# ------------------------------------------------------------------------------- acceptance


def test_first_sync_equals_sql_and_a_sweeping_sync_catches_up(one: tuple,
                                                              tmp_path: Path) -> None:
    sb, path, env = one
    root = tmp_path / "data" / "jetti"
    first = sync(path, environ=env, progress=False)
    assert first.ok and [r.action for r in first] == ["snapshot"] * 3
    assert sum(r.requests or 0 for r in first) == sb.counters()["requests"]
    assert first.result("purchases").added == 300
    assert_views_equal_sql(root, sb)

    sb.reset_counters()
    live = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id")]
    sb.touch("purchases", live[:30])
    sb.delete("purchases", live[-5:])
    new = sb.insert("purchases", 10)
    items = [r["id"] for r in sb.query("SELECT id FROM purchase_items ORDER BY id")]
    sb.delete("purchase-items", items[:5])

    second = sync(path, environ=env, progress=False, sweep=True)
    assert second.ok and [r.action for r in second] == ["refresh"] * 3
    purchases = second.result("purchases")
    assert (purchases.added, purchases.changed, purchases.deleted) == (10, 30, 5)
    assert second.result("purchase_items").deleted == 5
    assert all(r.swept for r in second)
    # every request is reported, and the sweep costs one request per page of ids (plus, at
    # most, the page that plans the read)
    assert sum(r.requests or 0 for r in second) == sb.counters()["requests"]
    for name, table in (("purchases", "purchases"), ("purchase_items", "purchase_items"),
                        ("providers", "dropship_providers")):
        pages = math.ceil(sb.query(f"SELECT count(*) AS n FROM {table}")[0]["n"] / 100)
        assert pages <= (second.result(name).sweep_requests or 0) <= pages + 1, name
    assert len(new) == 10
    assert purchases.requests - purchases.sweep_requests <= 2  # 40 changed records: one page
    assert sb.counters()["status_429"] == 0
    assert_views_equal_sql(root, sb)

    con = connect(root)
    runs = con.sql("SELECT dataset, swept, deleted, requests FROM sync_runs "
                   "ORDER BY started_at, dataset").df()
    con.close()
    assert len(runs) == 6 and runs["deleted"].iloc[3:].tolist() == [0, 5, 5]
    assert snapshot_info(root / "purchases").swept_at is not None


def test_sync_without_sweep_costs_requests_in_proportion_to_changes(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(purchases=1000, rate="off", tokens=(TOKEN_A,))
    env = {"MIRROR_TOKEN": TOKEN_A}
    path = mirror_file(tmp_path, {"main": ("MIRROR_TOKEN", sb.base_url)}, extra=FAST)
    first = sync(path, environ=env, progress=False)
    full = {r.dataset: r.requests for r in first}
    assert full["purchase_items"] >= 20  # the size a full re-read would cost
    sb.reset_counters()
    sb.touch("purchases", 7)
    sb.delete("purchases", 3)
    again = sync(path, environ=env, progress=False, sweep=False)
    assert again.ok and not any(r.swept for r in again)
    # one page of changes (plus the page that plans the read), whatever the size
    assert all((r.requests or 0) <= 2 for r in again), again.frame()
    assert again.result("purchases").changed == 7
    assert again.result("purchases").deleted == 0  # unseen until a sweep
    assert sb.counters()["requests"] == sum(r.requests or 0 for r in again)
    assert snapshot_info(tmp_path / "data/jetti/purchases").rows == 1000
    # updatedAt has whole seconds: dated two seconds on, the 250 differ from their last
    # version even where the 7 above were touched in the same second
    sb.touch("purchases", 250, at=datetime.now(UTC) + timedelta(seconds=2))
    more = sync(path, environ=env, progress=False, sweep=False)
    assert more.result("purchases").changed == 250
    assert 3 <= (more.result("purchases").requests or 0) <= 3 + 1 < full["purchases"]


def test_sweep_every_n_syncs(one: tuple) -> None:
    _sb, path, env = one
    path.write_text(path.read_text().replace("sweep_every = 1", "sweep_every = 2"))
    swept = []
    for _ in range(4):
        report = sync(path, environ=env, progress=False)
        swept.append(report.result("purchases").swept)
    assert swept == [True, False, True, False]  # the first (full) read counts as a sweep


def test_syncs_in_the_same_second_count_towards_the_next_sweep(tmp_path: Path) -> None:
    # the count of runs since a sweep goes by the order they were recorded, so syncs stamped
    # alike (a clock step, or whole-second stamps of older databases) are still counted
    from jetti_frames.mirror import duck
    from jetti_frames.mirror.report import DatasetResult

    config = parse_config('root = "data"\n[datasets.p]\nresource = "purchases"\n'
                          'deletes = "sweep"\n', path=tmp_path / "jetti.toml",
                          environ={"JETTI_API_TOKEN": "x"})
    stamp = "2026-12-05T01:00:00+00:00"
    for swept in (True, False, False, True, False):
        duck.record(config, "run", stamp, [DatasetResult("default", "p", "refresh", ok=True,
                                                         swept=swept)])
    assert duck.runs_since_sweep(config)[("default", "p")] == 1
    duck.record(config, "run", stamp, [DatasetResult("default", "p", "refresh", ok=False)])
    assert duck.runs_since_sweep(config)[("default", "p")] == 1  # a failed sync is no sync


def test_two_accounts_sync_at_once_each_within_its_allowance(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    a = make_sandbox(purchases=120, seed=1, tokens=(TOKEN_A,))  # Jetti's real allowance
    b = make_sandbox(purchases=150, seed=2, tokens=(TOKEN_B,))
    env = {"TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B}
    path = mirror_file(tmp_path, {"shop_a": ("TOKEN_A", a.base_url),
                                  "shop_b": ("TOKEN_B", b.base_url)})
    report = sync(path, environ=env, progress=False)
    assert report.ok and len(report) == 6
    for sb, token in ((a, TOKEN_A), (b, TOKEN_B)):
        counters = sb.counters(token)
        assert counters["status_429"] == 0 and counters["requests"] > 0
    assert {r.account for r in report} == {"shop_a", "shop_b"}
    # the two accounts' requests interleave: each started before the other finished
    times_a = [e["time"] for e in a.log]
    times_b = [e["time"] for e in b.log]
    assert min(times_a) < max(times_b) and min(times_b) < max(times_a)
    root = tmp_path / "data" / "jetti"
    assert (root / "shop_a" / "purchases").is_dir() and (root / "shop_b" / "purchases").is_dir()
    assert_views_equal_sql(root, a, "shop_a")
    assert_views_equal_sql(root, b, "shop_b")
    con = connect(root)
    counts = dict(con.sql("SELECT account, count(*) FROM purchases GROUP BY 1").fetchall())
    con.close()
    assert counts == {"shop_a": 120, "shop_b": 150}
    assert "account" in report.table().splitlines()[0]


def test_moved_root_gives_the_same_answers(one: tuple, tmp_path: Path) -> None:
    sb, path, env = one
    assert sync(path, environ=env, progress=False).ok
    report_sql = """SELECT pr.name, count(DISTINCT p.id) AS purchases, sum(i.quantity) AS units
                    FROM purchases p JOIN purchase_items i ON i.purchaseId = p.id
                    JOIN providers pr ON pr.id = p.dropshipProviderId
                    GROUP BY pr.name ORDER BY pr.name"""
    con = connect(tmp_path / "data" / "jetti")
    before = con.sql(report_sql).df()
    con.close()
    moved = tmp_path / "elsewhere" / "copy"
    moved.parent.mkdir()
    shutil.move(tmp_path / "data" / "jetti", moved)
    assert not (tmp_path / "data" / "jetti").exists()
    con = connect(moved)
    after = con.sql(report_sql).df()
    con.close()
    assert len(before) > 3
    pd.testing.assert_frame_equal(before, after)
    assert_views_equal_sql(moved, sb)


def test_one_failing_dataset_keeps_the_others(one: tuple, tmp_path: Path) -> None:
    sb, path, env = one
    root = tmp_path / "data" / "jetti"
    root.mkdir(parents=True)
    (root / "providers").write_text("not a snapshot")  # a file where the folder should be
    report = sync(path, environ=env, progress=False)
    assert not report.ok
    assert [r.dataset for r in report.failed] == ["providers"]
    assert "is a file" in (report.result("providers").error or "")
    assert read_snapshot(root / "purchases")["id"].nunique() == 300
    con = connect(root)
    assert con.execute("SELECT count(*) FROM purchase_items").fetchone() == (
        sb.query("SELECT count(*) AS n FROM purchase_items")[0]["n"],)
    assert con.execute("SELECT count(*) FROM sync_runs WHERE NOT ok").fetchone() == (1,)
    con.close()


def test_killed_sync_leaves_every_dataset_readable(make_sandbox: Callable[..., Sandbox],
                                                    tmp_path: Path) -> None:
    sb = make_sandbox(purchases=300, rate="off", tokens=(TOKEN_A,), latency_ms=60)
    env = {"MIRROR_TOKEN": TOKEN_A}
    path = mirror_file(tmp_path, {"main": ("MIRROR_TOKEN", sb.base_url)}, extra=FAST)
    root = tmp_path / "data" / "jetti"
    assert sync(path, environ=env, progress=False).ok
    sb.touch("purchases", 30)
    sb.delete("purchases", 5)
    sb.insert("purchases", 10)
    sb.reset_counters()
    child = subprocess.Popen(
        [sys.executable, "-m", "jetti_frames.cli", "sync", str(path), "--full", "--quiet"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while sb.counters()["requests"] < 6 and time.monotonic() < deadline \
                and child.poll() is None:
            time.sleep(0.01)
        assert child.poll() is None, "the sync ended before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    for name in TRUTH:
        frame = read_snapshot(root / name)  # the previous version or the new one
        assert len(frame) > 0
    report = sync(path, environ=env, progress=False, sweep=True)
    assert report.ok
    assert_views_equal_sql(root, sb)
    assert not [p for p in root.iterdir() if ".jetti-" in p.name]  # no stranded versions


# ------------------------------------------------------------------------------- command


def test_sync_command(one: tuple, tmp_path: Path) -> None:
    sb, path, env = one
    plan = run_cli("sync", str(path), "--dry-run", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "snapshot" in plan.stdout and "requests (at least)" in plan.stdout
    assert sb.counters()["requests"] == 0
    done = run_cli("sync", str(path), "--only", "providers", env=env)
    assert done.returncode == 0, done.stderr
    assert "providers" in done.stderr and "1 of 1 datasets synced" in done.stdout
    assert TOKEN_A not in done.stdout + done.stderr
    again = run_cli("sync", str(path), "--only", "providers", "--dry-run", env=env)
    assert "refresh" in again.stdout
    info = run_cli("info", str(tmp_path / "data/jetti/providers"))
    assert "last sweep" in info.stdout and "ago" in info.stdout
    bad = run_cli("sync", str(path), "--only", "nope", env=env)
    assert bad.returncode == 2 and "no dataset 'nope'" in bad.stderr
    unset = run_cli("sync", str(path), env={"MIRROR_TOKEN": ""})
    assert unset.returncode == 2 and "MIRROR_TOKEN" in unset.stderr
    (tmp_path / "data/jetti/purchases").mkdir(parents=True)
    (tmp_path / "data/jetti/purchases/stray.txt").write_text("x")  # refused: not a snapshot
    failed = run_cli("sync", str(path), env=env)
    assert failed.returncode == 1 and "FAILED" in failed.stdout
    assert "2 of 3 datasets synced" in failed.stdout


def test_a_held_database_fails_the_sync_but_keeps_the_snapshots(one: tuple,
                                                                 tmp_path: Path) -> None:
    sb, path, env = one
    root = tmp_path / "data" / "jetti"
    assert sync(path, environ=env, progress=False, only="providers").ok
    reader = connect(root)  # read-only: the sync cannot open the file for writing meanwhile
    try:
        sb.touch("purchases", 3)
        report = sync(path, environ=env, progress=False)
    finally:
        reader.close()
    assert not report.ok and report.database_error
    assert all(r.ok for r in report)
    assert "FAILED to update jetti.duckdb" in str(report)
    assert read_snapshot(root / "purchases")["id"].nunique() == 300
    assert sync(path, environ=env, progress=False).ok  # the next one catches up
    con = connect(root)
    assert con.execute("SELECT count(DISTINCT id) FROM purchases").fetchone() == (300,)
    con.close()


def test_drift_is_reported_by_sync_and_kept_in_the_views(make_sandbox: Callable[..., Sandbox],
                                                        tmp_path: Path) -> None:
    """A field the catalogue lacks and a value outside an enum reach the report, sync_runs
    and the view, as the snapshot's manifest records them."""
    odd = "consignment"
    sb = make_sandbox(purchases=60, rate="off", tokens=(TOKEN_A,),
                      drift={"purchases": {"extra": {"salesChannel": "web"},
                                           "enum": {"purchaseType": odd}}})
    path = tmp_path / "jetti.toml"
    path.write_text(f'root = "data"\n[accounts.main]\ntoken_env = "T"\nbase_url = '
                    f'"{sb.base_url}"\n{FAST}\n[datasets.purchases]\nresource = "purchases"\n',
                    encoding="utf-8")
    with pytest.warns(JettiDriftWarning, match="salesChannel"):  # the read warns as well
        report = sync(path, environ={"T": TOKEN_A}, progress=False)
    assert report.ok
    warned = report.result("purchases").warnings
    assert any("salesChannel" in w for w in warned)
    assert any(odd in w and "purchaseType" in w for w in warned)
    con = connect(tmp_path / "data")
    try:
        kept = con.execute("SELECT count(*) FROM purchases WHERE purchaseType = "
                       f"'{odd}' AND salesChannel = 'web'").fetchone()
        runs = con.execute("SELECT warnings FROM sync_runs WHERE dataset = 'purchases'").fetchone()
    finally:
        con.close()
    even = sb.query("SELECT count(*) AS n FROM purchases WHERE id % 2 = 0")[0]["n"]
    assert kept == (even,)
    assert runs is not None and list(runs[0]) == warned
