"""``encode`` against outputs of the real Node ``qs.stringify`` (qs-vectors.json).

Each vector holds a JSON input and what ``qs.stringify(input)`` wrote.  Inputs whose JavaScript
source held ``Date`` objects are also encoded from the matching Python datetimes.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from jetti_frames.query import encode

#: What Node's own qs (6.13.0, 6.14.0 and the latest) makes of Jetti-style queries.
VECTORS = Path(__file__).resolve().parent / "data" / "qs-vectors.json"

CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["encode_cases"]


def _has_undefined(value: Any) -> bool:
    if isinstance(value, dict):
        return value == {"$undefined": True} or any(_has_undefined(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_undefined(v) for v in value)
    return False


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return isinstance(value, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _skip_reason(case: dict[str, Any]) -> str | None:
    if _has_undefined(case["input"]):
        return "JavaScript undefined has no Python counterpart (None is null)"
    if _has_lone_surrogate(case["input"]):
        return ("a lone UTF-16 surrogate is not valid text; qs versions disagree on it "
                "(U+FFFD vs consuming the next character)")
    return None


def _check(encoded: str, case: dict[str, Any]) -> None:
    truncated = case.get("truncated", {}).get("encoded_default")
    if truncated:
        assert len(encoded) == truncated["length"]
        assert hashlib.sha256(encoded.encode("utf-8")).hexdigest() == truncated["sha256"]
        assert encoded.startswith(case["encoded_default"])
    else:
        assert encoded == case["encoded_default"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_encode_matches_node_qs(case: dict[str, Any]) -> None:
    reason = _skip_reason(case)
    if reason:
        pytest.skip(reason)
    _check(encode(case["input"]), case)


_DATE_CALL = re.compile(r'new Date\("([^"]+)"\)')


def _with_datetimes(value: Any, as_timestamp: bool) -> Any:
    """The input with every toISOString-shaped string an aware datetime, as JS had a Date."""
    if isinstance(value, dict):
        return {k: _with_datetimes(v, as_timestamp) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_datetimes(v, as_timestamp) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value):
        stamp = pd.Timestamp(value)
        return stamp if as_timestamp else stamp.to_pydatetime()
    return value


DATE_CASES = [c for c in CASES if "new Date(" in c.get("input_js", "")]


def test_date_cases_are_present() -> None:
    assert len(DATE_CASES) >= 5


@pytest.mark.parametrize("as_timestamp", [False, True], ids=["datetime", "Timestamp"])
@pytest.mark.parametrize("case", DATE_CASES, ids=[c["name"] for c in DATE_CASES])
def test_python_datetimes_encode_like_js_dates(case: dict[str, Any], as_timestamp: bool) -> None:
    converted = _with_datetimes(case["input"], as_timestamp)
    dates = _DATE_CALL.findall(case["input_js"])
    found = [v for v in _iter_leaves(converted) if isinstance(v, datetime.datetime)]
    assert len(found) == len(dates)  # every Date of the JS source became a Python datetime
    _check(encode(converted), case)


def test_naive_datetime_and_date_are_utc() -> None:
    case = next(c for c in CASES if c["name"] == "date_object_gte")
    naive = {"where": {"createdAt": {"$gte": datetime.datetime(2018, 1, 1)}}}
    day = {"where": {"createdAt": {"$gte": datetime.date(2018, 1, 1)}}}
    assert encode(naive) == encode(day) == case["encoded_default"]


def _iter_leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _iter_leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _iter_leaves(v)]
    return [value]
