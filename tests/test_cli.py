"""The ``jetti-frames`` command, run in-process (``main([...])``) and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import requests
from cli_support import REPO, TOKEN, one_line_error, run_cli

from jetti_frames.cli import build_parser, main
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import read_snapshot, snapshot_info

COMMANDS = ["demo", "read", "snapshot", "refresh", "info", "cache", "explain", "sandbox"]


# ---------------------------------------------------------------------------------- help, usage


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: jetti-frames {command}")


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in COMMANDS)
    assert "jetti_frames.cli:main" in (REPO / "pyproject.toml").read_text()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bogus"]) == 2
    assert main(["read"]) == 2  # missing resource
    assert main(["read", "purchases", "--limit", "x"]) == 2
    capsys.readouterr()


def test_no_connection_configured(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("JETTI_API_TOKEN", raising=False)
    monkeypatch.delenv("JETTI_BASE_URL", raising=False)
    for argv in (["read", "purchases"], ["snapshot", "purchases", "--out", "x"],
                 ["refresh", "x"]):
        assert main(argv) == 2
        line = one_line_error(capsys.readouterr().err)
        assert "JETTI_API_TOKEN" in line and "--token" in line


def test_bad_where_json_and_unknown_names(cli_env: Sandbox,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.reset_counters()
    assert main(["read", "purchases", "--where", "{bad"]) == 2
    assert "--where is not valid JSON" in one_line_error(capsys.readouterr().err)
    assert main(["read", "purchases", "--where", "[1]"]) == 2
    one_line_error(capsys.readouterr().err)
    assert main(["read", "purchasez"]) == 2
    assert "purchases" in one_line_error(capsys.readouterr().err)  # the suggestion
    assert main(["read", "purchases", "--attributes", "id,totl"]) == 2
    one_line_error(capsys.readouterr().err)
    assert main(["read", "purchases", "--format", "parquet"]) == 2
    one_line_error(capsys.readouterr().err)
    assert cli_env.counters()["requests"] == 0


def test_api_error_is_one_line_and_debug_shows_traceback(
        cli_env: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "purchases", "--token", "wrong-token", "--no-cache"]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "wrong-token" not in line
    assert main(["read", "purchases", "--token", "wrong-token", "--no-cache", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "wrong-token" not in err


# ---------------------------------------------------------------------------------- read


def test_read_csv_to_stdout(cli_env: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["read", "purchases", "--where", '{"purchaseType": "dropship"}',
                 "--attributes", "id,reference,total", "--include", "PurchaseStatus",
                 "--order", "-total", "--limit", "7", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    frame = pd.read_csv(io.StringIO(captured.out))
    assert len(frame) == 7
    assert {"id", "reference", "total", "purchase_status_name"} <= set(frame.columns)
    assert frame["total"].is_monotonic_decreasing
    ids = cli_env.query("SELECT id FROM purchases WHERE purchaseType = 'dropship' "
                    "ORDER BY total DESC LIMIT 7")
    assert frame["id"].tolist() == [r["id"] for r in ids]


def test_read_json_and_parquet_files(cli_env: Sandbox, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "purchase-statuses", "--format", "json"]) == 0
    captured = capsys.readouterr()
    records = json.loads(captured.out)
    assert len(records) == cli_env.query("SELECT count(*) AS n FROM purchase_statuses")[0]["n"]
    assert "rows" in captured.err  # the summary goes to stderr
    out = tmp_path / "p.parquet"
    assert main(["read", "purchases", "--include", "DropshipProvider", "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 120 and "dropship_provider_name" in frame.columns
    assert str(frame["dateOrdered"].dtype) == "datetime64[us, UTC]"
    capsys.readouterr()


# ---------------------------------------------------------------------------------- snapshots


def test_snapshot_info_refresh(cli_env: Sandbox, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap"
    assert main(["snapshot", "purchases", "--out", str(path), "--include",
                 "PurchaseStatus,DropshipProvider", "--partition-by", "dateOrdered:year"]) == 0
    assert "120 rows" in capsys.readouterr().err
    assert len(read_snapshot(path)) == 120
    assert any(p.name.startswith("dateOrdered_year=") for p in path.iterdir())

    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == 120 and info["query"]["include"] == ["PurchaseStatus",
                                                                 "DropshipProvider"]
    assert main(["info", str(path)]) == 0
    assert "watermark" in capsys.readouterr().out

    cli_env.reset_counters()
    assert main(["refresh", str(path)]) == 0
    assert "changed records" in capsys.readouterr().err
    assert cli_env.counters()["rows"] <= 2  # only the newest record(s), at the watermark
    assert main(["refresh", str(path), "--full", "--quiet"]) == 0
    assert capsys.readouterr().err == ""

    assert main(["info", str(tmp_path / "nothing")]) == 1
    assert "no snapshot" in one_line_error(capsys.readouterr().err)


def test_info_is_a_readable_summary(cli_env: Sandbox, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap"
    assert main(["snapshot", "purchases", "--out", str(path), "--include", "PurchaseStatus",
                 "--where", '{"purchaseType": "dropship"}', "-q"]) == 0
    info = snapshot_info(path)
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= 20  # not one line per column
    assert "purchase_status_name" not in out and "reference" not in out
    assert f"{len(info.columns)} (list them with --columns)" in out
    assert any(line.split() == ["rows", f"{info.rows:,}"] for line in lines)
    assert "where={'purchaseType': 'dropship'}" in out and "include=['PurchaseStatus']" in out
    assert main(["info", str(path), "--columns"]) == 0
    listed = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in listed if line.startswith("  ")]
    assert [r[0] for r in rows] == list(info.columns)  # one per line, in order, with dtypes
    assert ["purchase_status_name", "string"] in rows and ["id", "Int64"] in rows


def test_cache_info_explains_its_numbers(make_sandbox: Callable[..., Sandbox],
                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    other = "cli-second-account-t0ken"
    sb = make_sandbox(purchases=50, rate="off", tokens=(TOKEN, other))
    monkeypatch.setenv("JETTI_BASE_URL", sb.base_url)
    cache = tmp_path / "c.sqlite"
    for token, resource in ((TOKEN, "purchase-statuses"), (other, "channels"),
                            (other, "purchase-statuses")):
        assert main(["read", resource, "--cache", str(cache), "-q", "--token", token]) == 0
    mine, theirs = sb.counters(TOKEN)["requests"], sb.counters(other)["requests"]
    assert mine >= 1 and theirs >= 2  # every answer is stored
    capsys.readouterr()
    assert main(["cache", "info", "--cache", str(cache), "--token", TOKEN]) == 0
    out = capsys.readouterr().out
    assert f"cache file     {cache}" in out
    assert f"this account   {mine} cached answers (this token at {sb.base_url})" in out
    assert f"all accounts   {mine + theirs} entries in the file" in out
    size = sum(f.stat().st_size for f in tmp_path.glob("c.sqlite*"))  # with -wal, -shm
    assert f"file size      {size / 1e6:.2f} MB" in out
    assert "expire after   3600 s" in out
    assert main(["cache", "info", "--cache", str(cache), "--token", other]) == 0
    assert f"this account   {theirs} cached answers" in capsys.readouterr().out
    assert main(["cache", "info", "--no-cache"]) == 0
    assert "off" in capsys.readouterr().out


def test_cache_info_and_clear(cli_env: Sandbox, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "c.sqlite"
    assert main(["read", "purchase-statuses", "--cache", str(cache), "-q"]) == 0
    capsys.readouterr()
    assert main(["cache", "info", "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out
    assert main(["cache", "clear", "--cache", str(cache)]) == 0
    capsys.readouterr()


def test_explain_sends_nothing(cli_env: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.reset_counters()
    assert main(["explain", "purchases", "--where", '{"id": {"$in": [1, 2, 3]}}',
                 "--include", "PurchaseStatus"]) == 0
    out = capsys.readouterr().out
    assert cli_env.base_url in out and "purchases.json" in out
    assert cli_env.counters()["requests"] == 0


# ---------------------------------------------------------------------------------- subprocesses


def test_demo_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", str(out), "--purchases", "200",
                     env={"JETTI_API_TOKEN": "", "JETTI_BASE_URL": "",
                          "JETTI_CACHE_PATH": str(tmp_path / "cache.sqlite")})
    assert result.returncode == 0, result.stderr
    assert "rows: 200" in result.stdout
    assert "0 answered 429" in result.stdout
    assert "from the HTTP cache" in result.stdout and " 0 requests" in result.stdout
    assert str(out) in result.stdout
    frame = read_snapshot(out)
    assert {"purchase_status_name", "dropship_provider_name"} <= set(frame.columns)


def test_module_error_exit_codes_subprocess(tmp_path: Path) -> None:
    result = run_cli("info", str(tmp_path / "none"))
    assert result.returncode == 1
    one_line_error(result.stderr)
    result = run_cli("read", "purchases", "--where", "nope",
                     env={"JETTI_API_TOKEN": "x", "JETTI_BASE_URL": "http://127.0.0.1:9/api/"})
    assert result.returncode == 2
    one_line_error(result.stderr)


def test_sandbox_subcommand_serves_until_ctrl_c() -> None:
    full_env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "jetti_frames.cli", "sandbox", "--rate", "off",
                             "--purchases", "50"], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        base_url = first.split(" at ")[1].split()[0]
        answer = requests.get(f"{base_url}purchases.json?limit=3",
                              headers={"Authorization": "Bearer sandbox-token"}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()) == 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_parser_builds() -> None:
    parser = build_parser()
    args = parser.parse_args(["snapshot", "purchases", "--out", "x", "--partition-by",
                              "dateOrdered:month"])
    assert args.partition_by == "dateOrdered:month"
