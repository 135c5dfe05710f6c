"""The README's Python examples run as written, against a sandbox standing in for the account."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from jetti_frames.sandbox import Sandbox
from jetti_frames.settings import SANDBOX_TOKEN

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


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
