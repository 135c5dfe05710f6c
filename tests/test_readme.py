"""The README's Python examples run as written, against a sandbox standing in for the account."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from jetti_frames import JettiClient, JettiError
from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)
CONNECT = TEXT.split("## Connect to your Jetti account", 1)[1].split("\n## ", 1)[0]


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 5


def test_readme_python_examples_run(make_sandbox: Callable[..., Sandbox], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sb = make_sandbox(rate="off", purchases=400, max_limit=1000)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JETTI_API_TOKEN", SANDBOX_TOKEN)
    monkeypatch.setenv("JETTI_BASE_URL", sb.base_url)
    monkeypatch.setenv("JETTI_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("JETTI_PAGE_SIZE", "1000")  # few requests at the real 2/s allowance
    for mirror in re.findall(r"```toml\n(# jetti.toml\n.*?)```", TEXT, re.S):
        (tmp_path / "jetti.toml").write_text(mirror, encoding="utf-8")  # the mirror section's
    namespace: dict[str, object] = {}
    for number, block in enumerate(BLOCKS, 1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message names the block
            pytest.fail(f"README python block {number} failed: {exc!r}\n{block}")
    df = namespace["df"]  # the last one: read back from the snapshot
    assert {"purchase_status_name", "dropship_provider_name"} <= set(df.columns)  # type: ignore[attr-defined]
    assert (df["purchaseType"] == "dropship").all()  # type: ignore[index]
    assert (tmp_path / "data" / "purchases" / "_jetti_snapshot.json").exists()
    assert len(namespace["by_provider"]) > 0  # type: ignore[arg-type]


def test_connect_section_commands_run_against_a_sandbox(make_sandbox: Callable[..., Sandbox],
                                                        tmp_path: Path) -> None:
    """The section's shell commands, with the sandbox's token and base URL swapped in (the
    install command is left out: it needs the package index)."""
    sb = make_sandbox(rate="off", purchases=20)
    shell = [b for b in re.findall(r"```bash\n(.*?)```", CONNECT, re.S) if "pip install" not in b]
    assert len(shell) == 1 and "export JETTI_API_TOKEN=" in shell[0]
    script = re.sub(r"export JETTI_API_TOKEN=\S+", f"export JETTI_API_TOKEN={SANDBOX_TOKEN}",
                    shell[0])
    script = re.sub(r"export JETTI_BASE_URL=\S+", f"export JETTI_BASE_URL={sb.base_url}", script)
    assert script.count(sb.base_url) == 1 and script.count(SANDBOX_TOKEN) == 1
    bin_dir = tmp_path / "bin"  # the installed command, as pip would make it
    bin_dir.mkdir()
    command = bin_dir / "jetti-frames"
    command.write_text(f"#!/bin/sh\nexec {sys.executable} -m jetti_frames \"$@\"\n")
    command.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO), "JETTI_CACHE_PATH": str(tmp_path / "cache.sqlite")}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    statuses = sb.query("SELECT id, name, level FROM purchase_statuses ORDER BY id")
    assert lines == ["id,name,level", *(f"{r['id']},{r['name']},{r['level']}" for r in statuses)]


def quoted(kind: str) -> str:
    """The error line the section quotes for ``kind`` (its ``text`` blocks)."""
    lines = [b.strip() for b in re.findall(r"```text\n(.*?)```", CONNECT, re.S)]
    return next(line for line in lines if f".{kind}: " in line)


def error_line(exc: JettiError) -> str:
    return f"{type(exc).__module__}.{type(exc).__name__}: {exc}"


def without_query(line: str) -> str:
    """The query string of a URL in an error line depends on which request failed first."""
    return re.sub(r"\?\S*: ", "?...: ", line)


def test_connect_section_quotes_the_real_errors(make_sandbox: Callable[..., Sandbox],
                                                tmp_path: Path) -> None:
    sb = make_sandbox(rate="off", purchases=20)
    def client(token: str, base_url: str) -> JettiClient:
        return JettiClient(token, base_url=base_url, cache=tmp_path / "c.sqlite", progress=False)

    attributes = ["id", "name", "level"]
    with pytest.raises(JettiError) as wrong:
        client("wrong-token", sb.base_url).read("purchase-statuses", attributes=attributes)
    got = error_line(wrong.value).replace(sb.base_url, "http://127.0.0.1:8000/api/")
    assert without_query(got) == without_query(quoted("JettiAuthError"))
    assert "wrong-token" not in got
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(JettiError) as unreachable:
        client("t0ken", f"http://127.0.0.1:{port}/api/").read("purchase-statuses",
                                                               attributes=attributes)
    got = error_line(unreachable.value).replace(f"127.0.0.1:{port}", "127.0.0.1:9")
    assert got == quoted("JettiConnectionError")
