"""The public API is typed for callers: mypy knows what a read returns and refuses a typo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jetti_frames import CacheInfo, JettiClient

ROOT = Path(__file__).resolve().parent.parent

CALLER = '''\
from jetti_frames import JettiClient, read_jetti, snapshot_info

client = JettiClient("t", base_url="http://127.0.0.1:9/api/", cache=False)
reveal_type(read_jetti("purchases"))
reveal_type(read_jetti("purchases", include_mode="tables"))
reveal_type(read_jetti("purchases", explain=True))
reveal_type(client.read("purchases", where={"id": 1}, progress=False))
reveal_type(client.read("purchases", include_mode="tables"))
reveal_type(client.read("purchases", explain=True))
reveal_type(client.explain("purchases", limit=5))
reveal_type(client.iter_frames("purchases", page_size=50))
reveal_type(client.iter_records("purchases", order="-total"))
reveal_type(client.iter_pages("purchases", limit=3))
reveal_type(client.cache_info())
reveal_type(client.cache_info().entries)
reveal_type(snapshot_info("data/purchases"))
read_jetti("purchases", wher={})
client.iter_frames("purchases", limt=3)
client.read("purchases", include_mode="table")
'''

EXPECTED = [
    "pandas.core.frame.DataFrame",
    "builtins.dict[builtins.str, pandas.core.frame.DataFrame]",
    "jetti_frames.client.Explanation",
    "pandas.core.frame.DataFrame",
    "builtins.dict[builtins.str, pandas.core.frame.DataFrame]",
    "jetti_frames.client.Explanation",
    "jetti_frames.client.Explanation",
    "typing.Iterator[pandas.core.frame.DataFrame]",
    "typing.Iterator[builtins.dict[builtins.str, Any]]",
    "typing.Iterator[builtins.list[builtins.dict[builtins.str, Any]]]",
    "jetti_frames.transport.CacheInfo",
    "builtins.int",
    "jetti_frames.snapshot.info.SnapshotInfo",
]


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """mypy's lines on a caller file, checked against the package with the repo's config."""
    where = tmp_path_factory.mktemp("caller")
    caller = where / "caller.py"
    caller.write_text(CALLER)
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(where / ".mypy_cache"), "--no-error-summary", str(caller)],
        cwd=where, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stdout + result.stderr  # errors expected, no crash
    return result.stdout.splitlines()


def test_reads_have_the_type_their_arguments_ask_for(mypy_report: list[str]) -> None:
    revealed = [m.group(1).strip('"').replace("builtins.", "") for line in mypy_report
                if (m := re.search(r"note: Revealed type is (.*)$", line))]
    assert revealed == [t.replace("builtins.", "") for t in EXPECTED], "\n".join(mypy_report)


def test_a_misspelt_keyword_is_a_type_error(mypy_report: list[str]) -> None:
    errors: dict[int, str] = {}
    for line in mypy_report:
        if m := re.match(r"caller\.py:(\d+): error: (.*)$", line):
            errors[int(m.group(1))] = errors.get(int(m.group(1)), "") + m.group(2)
    assert sorted(errors) == [17, 18, 19], "\n".join(mypy_report)  # the last three lines only
    assert 'Unexpected keyword argument "wher"' in errors[17]
    assert 'Unexpected keyword argument "limt"' in errors[18]
    assert 'No overload variant of "read"' in errors[19]  # include_mode="table"


def test_cache_info_is_a_typed_record_that_still_reads_as_a_mapping(tmp_path: Path) -> None:
    with JettiClient("t", base_url="http://127.0.0.1:9/api/", cache=tmp_path / "c.sqlite",
                     progress=False) as client:
        info = client.cache_info()
    assert isinstance(info, CacheInfo)
    assert (info.entries, info["entries"], info.get("entries_total")) == (0, 0, 0)
    assert dict(info) == {"enabled": True, "path": str(tmp_path / "c.sqlite"), "entries": 0,
                          "entries_total": 0, "size": info.size}
    assert repr(info).startswith("CacheInfo(path=") and "\n" not in repr(info)
    with pytest.raises(KeyError):
        info["nope"]
    with pytest.raises(AttributeError):
        info.entries = 3  # type: ignore[misc]
