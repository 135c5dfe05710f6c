"""The HTTP cache's parts that know nothing of requests in flight: keys, the serializer, the
check of an answer before it is stored, and a damaged file.

Only well-formed 200 answers are stored, as JSON (never pickles), in SQLite at
``settings.resolved_cache_path``.  The key is :func:`cache_key`: the method, the URL exactly as
sent (query string byte for byte: ``where[saleId]=`` and no condition are two keys) and a
non-reversible account id (HMAC-SHA256 of the token), so two tokens never share an entry; the key
is versioned, so entries written by older versions are never served.  The ``Authorization``
header is redacted from stored requests, so the token never reaches the cache file.  Every 200
answer is checked before it is stored (:func:`answer_problem`: a list where a list is due,
records with an integer ``id``, ids in the requested order); a malformed one raises
:class:`~jetti_frames.errors.JettiServerError` and the next read asks the server again.  A cache
file that is not SQLite or is truncated is moved aside with a warning and started afresh.

Examples
--------
>>> url = "http://h/api/sales.json"
>>> cache_key("GET", url + "?where[saleId]=", "acc") == cache_key("GET", url, "acc")
False
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sqlite3
import time
import warnings
from collections.abc import MutableMapping
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import requests
from attrs import define
from requests_cache import CachedResponse, CachedSession
from requests_cache.backends.sqlite import SQLiteCache
from requests_cache.policy.settings import DEFAULT_IGNORED_PARAMS
from requests_cache.serializers import SerializerPipeline, Stage
from requests_cache.serializers.cattrs import CattrStage, _encode_content
from requests_cache.serializers.preconf import json_preconf_stage

__all__ = ["CACHE_KEY_VERSION", "JSON", "account_id", "answer_problem", "cache_damage",
           "cache_key", "drop_old_versions", "move_aside", "open_cache"]

log = logging.getLogger("jetti_frames.transport")

_SALT = b"jetti-frames/account-id/v1"
#: The version of :func:`cache_key`: entries under any other version are never served.  v3:
#: every entry was stripped of credentials before it was stored, so a hit is served as stored.
CACHE_KEY_VERSION = "v3"


@define(auto_attribs=False, repr=False, slots=False)
class CachedAnswer(CachedResponse):
    """A cached answer whose JSON body stays parsed (``jetti_body``) as the entry was read.

    requests-cache writes a body stored as JSON back to bytes on every read, for
    ``response.json()`` to parse it again; here the bytes are only made when ``content`` (or
    ``text``, ``json()``) is asked for.
    """

    jetti_body: Any = None

    @property
    def content(self) -> bytes:
        if self._content is None and self._decoded_content is not None:
            _encode_content(self)
        return super().content


class _ParsedStage(CattrStage):
    """requests-cache's JSON stage whose entries load as :class:`CachedAnswer`."""

    def copy(self) -> _ParsedStage:
        stage = _ParsedStage(decode_content=self.decode_content)
        stage.converter = self.converter
        return stage

    def loads(self, value: Any) -> Any:
        if not isinstance(value, MutableMapping):
            return value
        answer = self.converter.structure(value, cl=CachedAnswer)
        if answer._decoded_content is None:  # stored as bytes
            return answer
        if not isinstance(answer._decoded_content, (list, dict)):  # text, or a bare JSON value
            return _encode_content(answer)
        answer.jetti_body = answer._decoded_content
        return answer


def _json_stage() -> _ParsedStage:
    stage = _ParsedStage(decode_content=True)
    stage.converter = json_preconf_stage.converter  # base64 for binary bodies
    return stage


_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))  # digits -> "0"
_LONG_NUMBER = b"0" * 19  # an integer beyond 64 bits has at least 19 digits


def load_entry(text: str | bytes) -> Any:
    """A cache entry's JSON, parsed as :func:`json.loads` parses it, by orjson (3x faster).

    orjson reads integers beyond 64 bits as floats, and refuses ``NaN``, ``1e400`` and lone
    surrogates: a text with a run of 19 digits or more, or that orjson refuses, is read by
    :func:`json.loads`.

    Examples
    --------
    >>> load_entry('{"id": 7, "total": 2.5}')
    {'id': 7, 'total': 2.5}
    >>> load_entry('[18446744073709551616, NaN]')
    [18446744073709551616, nan]
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _LONG_NUMBER not in data.translate(_DIGITS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


#: requests-cache's JSON serializer, compact: the cache never holds pickles.  With the session's
#: ``decode_content=True`` JSON bodies are stored as JSON (not base64), so the file can be read;
#: a cached answer's body is parsed once, with the entry (:func:`load_entry`,
#: :class:`CachedAnswer`).
JSON = SerializerPipeline(
    [_json_stage(),
     Stage(dumps=partial(json.dumps, separators=(",", ":")), loads=load_entry)],
    name="json", is_binary=False)


def account_id(token: str | None, base_url: str = "") -> str:
    """A short, non-reversible id of an account: HMAC-SHA256 of the token with a fixed salt.

    Examples
    --------
    >>> a = account_id("secret-token")
    >>> len(a), a == account_id("secret-token"), a == account_id("other")
    (16, True, False)
    >>> "secret" in a
    False
    """
    digest = hmac.new(_SALT, f"{base_url}\0{token or ''}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def cache_key(method: str, url: str, account: str) -> str:
    """The HTTP cache key of a request: the method, the URL exactly as sent and the account.

    Nothing is normalised: two URLs that differ in any byte (``where[saleId]=`` against no
    condition, parameter order) are two keys.  The key starts with ``<account>-<version>-`` so
    an account's entries can be counted, and entries of older key versions never match.

    Examples
    --------
    >>> k = cache_key("GET", "http://h/api/sales.json?where[saleId][$ne]=", "0123abcd")
    >>> k.startswith("0123abcd-v3-"), len(k)
    (True, 76)
    >>> k == cache_key("get", "http://h/api/sales.json?where[saleId][$ne]=", "0123abcd")
    True
    >>> k == cache_key("GET", "http://h/api/sales.json", "0123abcd")
    False
    """
    raw = f"{method.upper()}\0{url}".encode("utf-8", "surrogatepass")
    return f"{account}-{CACHE_KEY_VERSION}-{hashlib.sha256(raw).hexdigest()}"


def drop_old_versions(session: CachedSession) -> int:
    """Delete every entry written under an older key scheme, and vacuum the file.

    They can never be served (their keys never match), and entries of versions before
    credential stripping may hold integration secrets: they must not stay on disk.
    """
    current = re.compile(rf"[0-9a-f]+-{CACHE_KEY_VERSION}-[0-9a-f]{{64}}\Z")
    cache = session.cache
    assert isinstance(cache, SQLiteCache)
    old = [k for k in cache.responses if not current.match(k)]
    if old:
        cache.delete(*old, vacuum=False)
        cache.responses.vacuum()  # deleted rows would stay in free pages otherwise
        log.info("dropped %d cache entries of older versions", len(old))
    return len(old)


def answer_problem(path: str, query: str, body: Any) -> str | None:
    """Why ``body``, a 200 answer to ``path?query``, cannot be right; None when it can.

    ``path`` is relative to the API root: ``purchases.json`` is a list endpoint (a JSON array
    of records, each with an integer ``id``), ``purchases/7.json`` answers one object.  Ids must
    ascend when the query has no ``order`` or orders by ``id``, and descend for
    ``order[attribute]=id&order[descending]=true``; other orders are not checked.

    Examples
    --------
    >>> answer_problem("sales.json", "", [{"id": 1}, {"id": 3}]) is None
    True
    >>> answer_problem("sales.json", "limit=2", {"id": 1})
    'a JSON object where a list was due'
    >>> answer_problem("sales.json", "", [{"id": 1}, {"total": 2}])
    'a record without an integer id'
    >>> answer_problem("sales.json", "", [{"id": 3}, {"id": 1}])
    'ids not in ascending order'
    >>> answer_problem("sales.json", "order[attribute]=id&order[descending]=true",
    ...                [{"id": 3}, {"id": 1}]) is None
    True
    >>> answer_problem("sales.json", "order[attribute]=total", [{"id": 3}, {"id": 1}]) is None
    True
    """
    if "/" in path.strip("/"):  # one record, or an action
        return None if isinstance(body, dict) else f"a JSON {_kind(body)} where an object was due"
    if not isinstance(body, list):
        return f"a JSON {_kind(body)} where a list was due"
    found = [r.get("id") if isinstance(r, dict) else None for r in body]
    ids = [i for i in found if isinstance(i, int) and not isinstance(i, bool)]
    if len(ids) != len(found):
        return "a record without an integer id"
    params = dict(parse_qsl(query, keep_blank_values=True))
    attribute = params.get("order[attribute]")
    if attribute not in (None, "id"):
        return None
    descending = attribute == "id" and params.get("order[descending]", "").lower() == "true"
    step = -1 if descending else 1
    if any((b - a) * step <= 0 for a, b in pairwise(ids)):
        return f"ids not in {'descending' if descending else 'ascending'} order"
    return None


def _kind(body: Any) -> str:
    names: dict[type, str] = {dict: "object", list: "list", str: "string"}
    return names.get(type(body), "value")


def cache_damage(path: Path) -> str | None:
    """What is wrong with the SQLite file at ``path`` seen from its header (``not an SQLite
    file``, ``truncated``), or None (also for a missing or empty file)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        return "not an SQLite file"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] == head[92:96] and pages * page_size > size:
        return f"truncated ({size} of {pages * page_size} bytes)"
    return None


def move_aside(path: Path) -> Path:
    """Rename a damaged cache file (and its side files) to ``<name>.damaged-<time>``."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            side.replace(Path(f"{aside}{suffix}"))
    return aside


def open_cache(path: Path, account: str, expire: float) -> CachedSession:
    """The cache session of ``account`` at ``path``; a file too damaged to open is moved aside
    with a warning and started afresh (:class:`sqlite3.DatabaseError` when even that fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    damage = cache_damage(path)
    if damage is None:
        try:
            return _session(path, account, expire)
        except sqlite3.DatabaseError as exc:
            damage = f"unreadable ({exc})"
    aside = move_aside(path)
    message = (f"the HTTP cache file {path} was {damage}: moved aside to {aside.name}, "
               "starting an empty cache")
    warnings.warn(message, RuntimeWarning, stacklevel=6)
    return _session(path, account, expire)


def _session(path: Path, account: str, expire: float) -> CachedSession:
    def key_fn(request: requests.PreparedRequest, **kwargs: Any) -> str:
        return cache_key(request.method or "GET", request.url or "", account)

    session = CachedSession(
        str(path), backend="sqlite", serializer=JSON, decode_content=True,
        expire_after=expire, allowable_codes=(200,),
        allowable_methods=("GET", "HEAD"), ignored_parameters=DEFAULT_IGNORED_PARAMS,
        key_fn=key_fn, stale_if_error=False,
    )
    try:
        drop_old_versions(session)
    except sqlite3.DatabaseError:
        session.close()
        raise
    return session
