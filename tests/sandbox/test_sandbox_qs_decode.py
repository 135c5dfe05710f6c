"""The sandbox decodes query strings exactly as Node ``qs`` does (qs-vectors.json).

Every decode case and the ``decoded_613`` of every encode case (both its ``encoded_default`` and
``encoded_raw_brackets`` strings) must match; ``decoded_latest`` with ``qs_version="latest"``.
Entries marked truncated/summarised cannot be compared and are skipped.

One exception, asserted below rather than skipped silently: ``order_sequelize_nested_array``
(``order[0][0]=createdAt&order[0][1]=DESC``, arrays nested in arrays). qs-codec merges the inner
arrays as separate elements, and the wrapper cannot fix that without re-implementing qs's merge.
The Jetti API never nests arrays in arrays (``order`` is one object), so the sandbox keeps it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jetti_frames.sandbox.qs import decode_query

#: What Node's own qs (6.13.0, 6.14.0 and the latest) makes of Jetti-style queries.
VECTORS = Path(__file__).resolve().parents[1] / "data" / "qs-vectors.json"

DATA = json.loads(VECTORS.read_text(encoding="utf-8"))
NESTED_ARRAYS = {"order_sequelize_nested_array"}


def _skipped(case: dict[str, Any]) -> bool:
    return bool(case.get("truncated") or case.get("summarised"))


def _cases() -> list[Any]:
    out = []
    for c in DATA["decode_cases"]:
        if not _skipped(c):
            out.append(pytest.param(c["query"], c["decoded_613"], "6.13", id=f"{c['name']}-613"))
            out.append(pytest.param(c["query"], c["decoded_latest"], "latest",
                                    id=f"{c['name']}-latest"))
    for c in DATA["encode_cases"]:
        if _skipped(c) or c["name"] in NESTED_ARRAYS:
            continue
        out.append(pytest.param(c["encoded_default"], c["decoded_613"], "6.13",
                                id=f"{c['name']}-default-613"))
        out.append(pytest.param(c["encoded_raw_brackets"],
                                c.get("decoded_raw_brackets_613", c["decoded_613"]), "6.13",
                                id=f"{c['name']}-raw-613"))
        out.append(pytest.param(c["encoded_default"], c["decoded_latest"], "latest",
                                id=f"{c['name']}-default-latest"))
    return out


@pytest.mark.parametrize(("query", "expected", "version"), _cases())
def test_decode_matches_node_qs(query: str, expected: Any, version: str) -> None:
    assert decode_query(query, qs_version=version) == expected


def test_every_case_is_checked() -> None:
    skipped = [c["name"] for c in DATA["decode_cases"] + DATA["encode_cases"] if _skipped(c)]
    compared = len(DATA["decode_cases"]) + len(DATA["encode_cases"]) - len(skipped)
    assert compared > 150
    assert len(skipped) <= 3


def test_nested_arrays_are_the_one_known_difference() -> None:
    case = next(c for c in DATA["encode_cases"] if c["name"] in NESTED_ARRAYS)
    got = decode_query(case["encoded_default"])
    assert got != case["decoded_613"]
    assert got == {"order": [["createdAt"], ["DESC"], ["id"], ["ASC"]]}


def test_array_limits_by_version() -> None:
    indexed = "&".join(f"a[{i}]={i}" for i in range(22))
    pushed = "&".join(f"a[]={i}" for i in range(30))
    assert isinstance(decode_query(indexed.rsplit("&", 1)[0])["a"], list)  # 21 elements
    assert isinstance(decode_query(indexed)["a"], dict)  # 22 elements
    assert isinstance(decode_query(pushed)["a"], list)  # no limit in 6.13
    assert isinstance(decode_query(pushed, qs_version="latest")["a"], dict)


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="qs_version"):
        decode_query("a=1", qs_version="5")
