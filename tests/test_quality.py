"""The package stays lint-clean, type-clean, and exports exactly what it documents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jetti_frames

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_package() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_is_exported() -> None:
    names = jetti_frames.__all__  # ruff (RUF022) keeps it sorted
    modules = {n for n in dir(jetti_frames)  # submodules, but not the callable snapshot module
               if isinstance(getattr(jetti_frames, n), type(jetti_frames))
               and not callable(getattr(jetti_frames, n))}
    public = {n for n in dir(jetti_frames) if not n.startswith("_")} - modules
    assert set(names) - {"__version__"} == public - {"annotations", "Any"}
