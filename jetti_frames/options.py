"""The rules for the arguments of a read, checked before any request.

:meth:`~jetti_frames.JettiClient.read`, ``iter_pages``/``iter_records``/``iter_frames``,
``explain``, ``frame_dtypes`` and ``get`` call :func:`check_options` (and ``get``
:func:`record_id`) first, so a wrong argument is a :class:`~jetti_frames.errors.JettiQueryError`
before anything is sent, never an error after a long read.

Examples
--------
>>> check_options(include_mode="tables", sep=".", limit=10)
>>> check_options(dtype_backend="arrow")
Traceback (most recent call last):
...
jetti_frames.errors.JettiQueryError: dtype_backend must be ... not 'arrow'
>>> record_id("123"), record_id(7)
(123, 7)
"""

from __future__ import annotations

import numbers
from typing import Any

from .errors import JettiQueryError

__all__ = ["check_options", "record_id"]

DTYPE_BACKENDS = ("numpy_nullable", "pyarrow")
INCLUDE_MODES = ("joined", "tables")
#: Characters a separator may not hold: they break paths, hive folders or reading a name back.
SEP_FORBIDDEN = frozenset("/\\=")

_UNSET: Any = object()


def check_options(*, limit: Any = None, page_size: Any = None, dtype_backend: Any = _UNSET,
                  include_mode: Any = _UNSET, sep: Any = _UNSET, progress: Any = None,
                  on_page: Any = None, refresh: Any = False, consistent: Any = True,
                  explain: Any = False) -> None:
    """Refuse a read option of the wrong type or value (arguments left out are not checked).

    Raises
    ------
    JettiQueryError
        Naming the option, what it must be and what it was.
    """
    _whole("limit", limit, 0)
    _whole("page_size", page_size, 1)
    if dtype_backend is not _UNSET:
        _one_of("dtype_backend", dtype_backend, DTYPE_BACKENDS)
    if include_mode is not _UNSET:
        _one_of("include_mode", include_mode, INCLUDE_MODES)
    if sep is not _UNSET:
        _check_sep(sep)
    for name, value, optional in (("progress", progress, True), ("refresh", refresh, False),
                                  ("consistent", consistent, False),
                                  ("explain", explain, False)):
        if not (isinstance(value, bool) or (optional and value is None)):
            raise JettiQueryError(f"{name} must be True or False"
                                  f"{' or None' if optional else ''}, not {value!r}")
    if on_page is not None and not callable(on_page):
        raise JettiQueryError(f"on_page must be a function on_page(pages, rows) or None, "
                              f"not {on_page!r}")


def record_id(value: Any) -> int:
    """The id of one record: a whole number >= 0, or a string of its digits.

    Anything else (``"../../x"``, ``1.5``, ``True``, ``" 12"``) would address another URL or
    another record than the one meant.
    """
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    number = _integer(value)
    if number is not None and number >= 0:
        return number
    raise JettiQueryError(f"an id must be a whole number >= 0 or a string of digits, "
                          f"not {_short(value)}")


def _whole(name: str, value: Any, least: int) -> None:
    if value is None:
        return
    number = _integer(value)
    if number is None or number < least:
        raise JettiQueryError(f"{name} must be a whole number >= {least} or None, "
                              f"not {_short(value)}")


def _integer(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (numpy included), not a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        choices = " or ".join(repr(a) for a in allowed)
        raise JettiQueryError(f"{name} must be {choices}, not {_short(value)}")


def _check_sep(sep: Any) -> None:
    good = (isinstance(sep, str) and sep != "" and all(
        c.isprintable() and not c.isspace() and not c.isalnum() and c not in SEP_FORBIDDEN
        for c in sep))
    if not good:
        raise JettiQueryError(f"sep must be a non-empty string of punctuation (not / \\ =), "
                              f"e.g. '_', '.' or '__', not {_short(sep)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
