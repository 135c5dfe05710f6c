"""Shared helpers of the benchmark suite: sizes, child processes, tables, machine facts.

Every scenario module exposes ``run(scale) -> dict`` (machine-readable results) and
``table(result) -> str`` (a markdown table); :mod:`benchmarks.run` drives them.

Examples
--------
>>> markdown_table(["a", "b"], [[1, "x"]], align="r-")
'| a | b |\\n|---:|---|\\n| 1 | x |'
>>> ratio(3.0, 1.5)
2.0
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
#: Jetti's allowance: GET requests per second (the sandbox's default bucket drains at this rate).
ALLOWANCE = 2.0
#: Rows per page in the paging scenarios (the ``limit`` the live service is known to honour).
PAGE_SIZE = 100


@dataclass(frozen=True)
class Scale:
    """The sizes of one run; :meth:`full` goes into the README, :meth:`quick` is a smoke run."""

    name: str
    pages: int = 60
    latencies_ms: tuple[float, ...] = (0, 300, 800, 1500)
    dlt_latencies_ms: tuple[float, ...] = (0, 800, 1500)
    cache_latency_ms: float = 300
    refresh_latency_ms: float = 300
    changed_share: float = 0.01
    conversion_records: int = 100_000
    conversion_repeats: int = 2
    memory_sizes: tuple[int, ...] = (20_000, 200_000)
    transport_requests: int = 60
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def purchases(self) -> int:
        """Purchases in the paging sandboxes: exactly ``pages`` full pages."""
        return self.pages * PAGE_SIZE

    @classmethod
    def full(cls) -> Scale:
        return cls("full")

    @classmethod
    def quick(cls) -> Scale:
        return cls("quick", pages=8, latencies_ms=(0, 800), dlt_latencies_ms=(0, 800),
                   cache_latency_ms=0, refresh_latency_ms=0, changed_share=0.05,
                   conversion_records=10_000, conversion_repeats=1, memory_sizes=(2_000, 20_000),
                   transport_requests=12)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def floor_seconds(pages: int, latency_ms: float) -> float:
    """The shortest possible pull of ``pages`` pages: ``pages / 2`` s plus one latency.

    >>> floor_seconds(60, 800)
    30.8
    """
    return round(pages / ALLOWANCE + latency_ms / 1000, 3)


def ratio(a: float, b: float) -> float:
    """``a / b`` rounded to 3 digits (``inf`` when ``b`` is 0)."""
    return round(a / b, 3) if b else float("inf")


def child_env() -> dict[str, str]:
    """The environment of a child process: the repo importable, no telemetry, no network."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # dlt: never phone home
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_child(args: Sequence[str], *, env: dict[str, str] | None = None,
              timeout: float = 900) -> dict[str, Any]:
    """Run ``python <args>`` in a fresh process; its last stdout line is a JSON object."""
    done = subprocess.run([sys.executable, *args], env={**child_env(), **(env or {})},
                          capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"child {args!r} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Barrier:
    """Child processes that import, say ``ready``, wait for ``go`` and print one JSON line.

    Starting several contenders at the same instant keeps their interpreter start-up (which
    costs a second of CPU each on a small machine) out of each other's measurements.
    """

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def spawn(self, key: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.procs[key] = subprocess.Popen(
            [sys.executable, *args], env={**child_env(), **(env or {})}, cwd=REPO, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def go(self) -> None:
        """Wait until every child is ready, then release them all."""
        for key, proc in self.procs.items():
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"{key} did not start: {line!r}\n{err[-4000:]}")
        for proc in self.procs.values():
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def results(self, timeout: float = 900) -> dict[str, dict[str, Any]]:
        """Every child's JSON line (raises when one failed)."""
        out: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        for key, proc in self.procs.items():
            stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode != 0:
                raise RuntimeError(f"{key} failed ({proc.returncode}):\n{stderr[-4000:]}")
            out[key] = json.loads(stdout.strip().splitlines()[-1])
        return out

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def child_ready() -> None:
    """In a child started by :class:`Barrier`: announce readiness and wait for ``go``."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *,
                   align: str | None = None) -> str:
    """A markdown table; ``align`` holds ``r`` (right) or ``-`` (left) per column."""
    align = align or "-" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    """A number for a table cell (``-`` for None)."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import pandas
    import pyarrow

    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    return {
        "commit": commit or "unknown",
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
