"""What the command-line tests share: their token, running ``jetti-frames`` as a real
subprocess, and the rule that an error is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOKEN = "cli-test-t0ken-77aa"
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, module: str = "jetti_frames.cli",
            **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``python -m <module> *args`` with this checkout on the path; never raises on exit codes."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], env=full_env,
                          capture_output=True, text=True, timeout=120, check=False,
                          **kwargs)  # type: ignore[call-overload]


def one_line_error(err: str) -> str:
    """The one ``jetti-frames: error: ...`` line of ``err`` (asserting there is nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("jetti-frames: error: ")
    return lines[0]
