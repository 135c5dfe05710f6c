"""Query-string decoding with Node ``qs`` semantics, as the Jetti server (Express) sees it.

The heavy lifting is done by ``qs_codec.decode``; this module is a thin wrapper that closes the
gaps between qs-codec and the Node versions the sandbox imitates:

``qs_version="6.13"`` (default, what Express 4.21 bundles)
    * an indexed key ``a[i]`` builds an array for ``i <= 20`` and an object key beyond that;
      ``a[]=`` and repeated keys build arrays of any length;
    * keys are split the 6.13 way (``a[b=1`` is the literal key ``"a[b"``);
``qs_version="latest"`` (qs >= 6.14.3)
    * every array form is limited to 20 elements (qs-codec's own semantics).

Both versions drop keys that name ``Object.prototype`` members (``__proto__``, ``constructor``,
``toString``, ...) as qs's default parse does, return undecodable percent sequences verbatim (as
``decodeURIComponent`` failing inside qs does), and stop at a nesting depth of 5: deeper bracket
groups survive as one literal key such as ``"[model]"``.

Examples
--------
>>> decode_query("where[id][$in][0]=1&where%5Bid%5D%5B%24in%5D%5B1%5D=2")
{'where': {'id': {'$in': ['1', '2']}}}
>>> decode_query("a[20]=x"), decode_query("a[20]=x", qs_version="latest")
({'a': ['x']}, {'a': {'20': 'x'}})
>>> decode_query("b=100%&toString=1")
{'b': '100%'}
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from qs_codec import DecodeOptions, decode
from qs_codec.enums.decode_kind import DecodeKind

__all__ = ["QS_VERSIONS", "decode_query"]

#: Supported ``qs_version`` values.
QS_VERSIONS = ("6.13", "latest")

#: qs's default ``arrayLimit`` and ``depth``.
ARRAY_LIMIT = 20
DEPTH = 5

#: Own properties of ``Object.prototype``: qs's default parse drops keys naming them.
PROTO_KEYS = frozenset({
    "__proto__", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__",
    "constructor", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable", "toLocaleString",
    "toString", "valueOf",
})

# Private markers used while qs-codec folds the keys, removed afterwards.
_BIG = "\x00"  # an index beyond the array limit: an object key, not a list index
_LB, _RB = "\x01", "\x02"  # literal brackets inside one key segment

_BRACKETS = re.compile(r"(\[[^[\]]*])")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _uri_decode(text: str) -> str:
    """``+`` to space, then ``decodeURIComponent``; undecodable input is returned as is."""
    text = text.replace("+", " ")
    if "%" not in text:
        return text
    if _BAD_PERCENT.search(text):
        return text
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return text


def _split(key: str) -> tuple[str, list[str], str | None]:
    """Split ``key`` like qs 6.13's ``parseKeys``: parent, up to 5 groups, literal remainder."""
    first = _BRACKETS.search(key)
    if first is None:
        return key, [], None
    children: list[str] = []
    for match in _BRACKETS.finditer(key, first.start()):
        if len(children) == DEPTH:
            return key[: first.start()], children, "[" + key[match.start():] + "]"
        children.append(match.group(1)[1:-1])
    return key[: first.start()], children, None


def _is_proto(parent: str, children: list[str]) -> bool:
    return parent in PROTO_KEYS or any(c in PROTO_KEYS for c in children)


def _escape(name: str) -> str:
    return name.replace("[", _LB).replace("]", _RB)


def _canonical_613(key: str) -> str | None:
    """Re-spell ``key`` so that qs-codec folds it the way qs 6.13 does, or None to drop it."""
    parent, children, remainder = _split(key)
    if _is_proto(parent, children):
        return None
    out = [_escape(parent)]
    for name in children:
        if name.isdigit() and str(int(name)) == name and int(name) > ARRAY_LIMIT:
            name = _BIG + name
        out.append("[" + _escape(name) + "]")
    if remainder is not None:
        out.append("[" + _escape(remainder[1:-1]) + "]")
    return "".join(out)


def _decoder_613(text: str | None, charset: Any = None, kind: Any = DecodeKind.VALUE) -> Any:
    if text is None:
        return None
    decoded = _uri_decode(text)
    if kind == DecodeKind.KEY:
        return _canonical_613(decoded) or None
    return decoded


def _decoder_latest(text: str | None, charset: Any = None, kind: Any = DecodeKind.VALUE) -> Any:
    if text is None:
        return None
    decoded = _uri_decode(text)
    if kind == DecodeKind.KEY:
        parent, children, _ = _split(decoded)
        if _is_proto(parent, children):
            return None
    return decoded


_OPTIONS = {
    # depth is applied by _canonical_613 itself; qs-codec must not cut again
    "6.13": DecodeOptions(list_limit=10**9, depth=10**6, decoder=_decoder_613),
    "latest": DecodeOptions(list_limit=ARRAY_LIMIT, decoder=_decoder_latest),
}


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k.replace(_BIG, "").replace(_LB, "[").replace(_RB, "]"): _restore(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def decode_query(query: str, *, qs_version: str = "6.13") -> dict[str, Any]:
    """Decode a raw query string (without the ``?``) as Node ``qs.parse`` does by default.

    Parameters
    ----------
    query
        The raw query string; brackets may be percent-encoded or not.
    qs_version
        ``"6.13"`` (Express 4.21) or ``"latest"``.

    Examples
    --------
    >>> decode_query("include[0][model]=Sale&limit=5")
    {'include': [{'model': 'Sale'}], 'limit': '5'}
    """
    try:
        options = _OPTIONS[qs_version]
    except KeyError:
        raise ValueError(f"qs_version must be one of {QS_VERSIONS}, not {qs_version!r}") from None
    if not query:
        return {}
    return _restore(decode(query, options))
