"""The package stays lint-clean, type-clean, and exports exactly what it documents."""

from __future__ import annotations

import re
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
    assert set(names) - {"__version__"} == public - {"annotations", "Any", "TYPE_CHECKING"}


#: Built-in raises that never reach a user: each is caught a few lines away and turned into a
#: JettiError (schema's value coercers feed ``wire_array``, which names the column).
_CAUGHT_LOCALLY = {
    ("schema.py", "raise ValueError(v)"),
    ("schema.py", "raise TypeError(v)"),
}
_BUILTIN_RAISE = re.compile(
    r"raise (ValueError|TypeError|KeyError|RuntimeError|LookupError|IndexError|OSError"
    r"|AssertionError|NotImplementedError|Exception)\b.*")


def test_no_bare_builtin_raise_in_the_package() -> None:
    package = Path(jetti_frames.__file__).parent
    found = [(path.relative_to(package).as_posix(), match.group(0).strip())
             for path in sorted(package.rglob("*.py")) if "sandbox" not in path.parts
             for match in _BUILTIN_RAISE.finditer(path.read_text())]
    assert found, "the pattern finds the allowed raises: it is not blind"
    assert [f for f in found if f not in _CAUGHT_LOCALLY] == []
