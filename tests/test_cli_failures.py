"""Every failure of ``jetti-frames`` is one line on stderr with exit code 1 or 2; ``--out``
formats, ``sandbox --token`` and ``python -m jetti_frames``. Real sandbox, real files, and real
subprocesses where the process boundary matters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import REPO, one_line_error, run_cli

from jetti_frames.cli import main
from jetti_frames.client import JettiClient
from jetti_frames.errors import JettiAuthError
from jetti_frames.sandbox import Sandbox
from jetti_frames.snapshot import MANIFEST


def test_python_m_jetti_frames() -> None:
    result = run_cli("--help", module="jetti_frames")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: jetti-frames")
    assert all(c in result.stdout for c in ("read", "snapshot", "refresh", "sandbox"))
    result = run_cli("info", "/nonexistent/snapshot", module="jetti_frames")
    assert result.returncode == 1
    assert "no snapshot" in one_line_error(result.stderr)


@pytest.mark.parametrize("name", ["out.xlsx", "out.txt", "out.parquett"])
def test_unknown_out_suffix_is_a_usage_error(cli_env: Sandbox, tmp_path: Path, name: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.reset_counters()
    out = tmp_path / name
    assert main(["read", "purchases", "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert all(f".{f}" in line for f in ("csv", "json", "parquet")), line
    assert not out.exists()
    assert cli_env.counters()["requests"] == 0
    assert main(["read", "purchase-statuses", "--out", str(out), "--format", "csv", "-q"]) == 0
    assert out.read_text().startswith("createdAt,id,")


def test_argparse_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["bogus"], ["read"], ["read", "purchases", "--limit", "x"], []):
        assert main(argv) == 2
        one_line_error(capsys.readouterr().err)


def test_sandbox_token_is_accepted_and_never_printed() -> None:
    secret = "my-secret-5f0e"
    full_env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "jetti_frames", "sandbox", "--rate", "off",
                             "--purchases", "40", "--token", secret], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(4)]
        base_url = banner[0].split(" at ")[1].split()[0]
        with JettiClient(secret, base_url=base_url, cache=False, progress=False) as client:
            assert len(client.read("purchases", attributes=["id"])) == 40
        with JettiClient("sandbox-token", base_url=base_url, cache=False,
                         progress=False) as client:
            assert len(client.read("purchases", attributes=["id"], limit=3)) == 3
        with (JettiClient("not-this-one", base_url=base_url, cache=False,
                          progress=False) as client, pytest.raises(JettiAuthError)):
            client.read("purchases", limit=1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        out, err = proc.communicate(timeout=30)
        assert secret not in "".join(banner) + out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sandbox_help_has_no_connection_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--token" in out and "--base-url" not in out and "--no-cache" not in out


def truncate_a_file(path: Path) -> str:
    entry = json.loads((path / MANIFEST).read_text())["files"][0]
    file = path / entry["path"]
    file.write_bytes(file.read_bytes()[:100])
    return str(entry["path"])


def garbage_watermark(path: Path) -> str:
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["watermark"] = "garbage"
    (path / MANIFEST).write_text(json.dumps(manifest))
    return "watermark"


def drop_files_key(path: Path) -> str:
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["files"]
    (path / MANIFEST).write_text(json.dumps(manifest))
    return "'files'"


@pytest.mark.parametrize("damage", [truncate_a_file, garbage_watermark, drop_files_key],
                         ids=["truncated", "watermark", "no-files"])
def test_damaged_snapshot_through_info_and_refresh(cli_env: Sandbox, tmp_path: Path, damage: object,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap"
    assert main(["snapshot", "purchases", "--out", str(path), "-q"]) == 0
    named = damage(path)  # type: ignore[operator]
    for argv in (["info", str(path)], ["refresh", str(path), "-q"]):
        assert main(argv) == 1
        line = one_line_error(capsys.readouterr().err)
        assert named in line and "--full" in line, line
    assert main(["refresh", str(path), "--full", "-q"]) == 0
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 120


def test_damaged_snapshot_subprocess(cli_env: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "snap"
    assert main(["snapshot", "purchases", "--out", str(path), "-q"]) == 0
    named = truncate_a_file(path)
    for command in ("info", "refresh"):
        result = run_cli(command, str(path), module="jetti_frames")
        assert result.returncode == 1
        assert named in one_line_error(result.stderr)


@pytest.mark.parametrize("argv", [["sandbox", "--purchases", "-5"],
                                  ["sandbox", "--port", "70000"],
                                  ["sandbox", "--latency-ms", "nan"],
                                  ["sandbox", "--max-limit", "0"],
                                  ["demo", "--purchases", "0"]], ids=" ".join)
def test_bad_sandbox_sizes_are_usage_errors(argv: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert argv[1] in one_line_error(capsys.readouterr().err)
