"""Keep credential fields of connected services out of everything a read produces.

Resources that describe connected services (dropship providers, stores, channels, ...) carry their
credentials as ordinary fields; the catalogue marks them (:attr:`Field.credential
<jetti_frames.catalog.Field.credential>`).  Two rules keep them out of frames, the HTTP cache,
snapshots and logs unless the user names them in ``attributes``:

* a read that does not name them asks the server to leave them out with Sequelize's
  ``attributes[exclude][i]=...`` form (built by :mod:`jetti_frames.query`);
* whatever the server answers, :func:`strip_response` (a ``requests`` response hook, run before
  requests-cache stores an answer) removes every credential field that the request's own
  ``attributes`` did not name, in the records and in their included records.  In the exclude
  form a credential the list leaves out counts as named: the client sends that form with a
  named credential only when more than 20 attributes are selected locally.

A server that refuses the exclude form (400) is asked again without it (:func:`drop_exclude`);
the transport remembers that per account.

Examples
--------
>>> records = [{"id": 1, "name": "Acme", "shippoToken": "s3cr3t"}]
>>> strip_records("dropship-providers", records, "attributes[exclude][0]=shippoToken")
1
>>> records
[{'id': 1, 'name': 'Acme'}]
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import qs_codec
import requests

from .catalog import CATALOG, Resource

__all__ = ["drop_exclude", "has_exclude", "strip_records", "strip_response"]

_NAMES = sorted({name for res in CATALOG for name in res.credentials})
#: Any credential field name as a JSON key: only bodies that match are parsed.
_ANY_CREDENTIAL = re.compile(
    rb'"(?:' + b"|".join(re.escape(n.encode()) for n in _NAMES) + rb')"\s*:')
#: ``attributes[exclude][i]`` at the top level or inside an include, decoded.
_EXCLUDE_KEY = re.compile(r"(?:^|\])(?:\[)?attributes\]?\[exclude\]")


@dataclass
class _Level:
    """What one level of a request (the resource, or an include) named and included.

    ``named`` is the ``attributes`` list, or None for the exclude form, whose ``excluded``
    fields are the only ones not asked for.
    """

    named: frozenset[str] | None = frozenset()
    excluded: frozenset[str] = frozenset()
    includes: dict[str, _Level] = field(default_factory=dict)

    def keeps(self, name: str) -> bool:
        return name not in self.excluded if self.named is None else name in self.named


def _names(raw: Any) -> frozenset[str]:
    if isinstance(raw, str):
        return frozenset((raw,))
    if isinstance(raw, list):
        return frozenset(a for a in raw if isinstance(a, str))
    return frozenset()


def _attributes(raw: Any) -> _Level:
    """The attributes of one level: a list, the exclude form, or nothing named."""
    if isinstance(raw, Mapping) and isinstance(raw.get("exclude"), list | str):
        return _Level(None, _names(raw["exclude"]))
    return _Level(_names(raw))


def _entries(raw: Any) -> list[Any]:
    if isinstance(raw, list):
        return raw
    if isinstance(raw, Mapping):
        return list(raw.values()) if all(str(k).isdigit() for k in raw) else [raw]
    return [] if raw in (None, "") else [raw]


def _level(params: Mapping[str, Any]) -> _Level:
    """The named attributes and includes of one level of decoded query parameters."""
    out = _attributes(params.get("attributes"))
    for entry in _entries(params.get("include")):
        item = {"model": entry} if isinstance(entry, str) else entry
        model = item.get("model") if isinstance(item, Mapping) else None
        if not isinstance(model, str) or model not in CATALOG:
            continue
        res = CATALOG.resource(model)
        sub = _level(item)
        out.includes[res.key_one] = out.includes[res.key_many] = sub
    return out


def _strip(records: list[Any], res: Resource, level: _Level) -> int:
    drop = [n for n in res.credentials if not level.keeps(n)]
    removed = 0
    for record in records:
        if not isinstance(record, dict):
            continue
        for name in drop:
            if name in record:
                del record[name]
                removed += 1
        for key, value in record.items():
            children = [value] if isinstance(value, dict) else value
            if not isinstance(children, list) or not children or key not in CATALOG:
                continue
            sub = level.includes.get(key, _Level())
            removed += _strip(children, CATALOG.resource(key), sub)
    return removed


def strip_records(resource: str | Resource, records: Any, query: str) -> int:
    """Remove, in place, the credential fields ``query`` did not name; return how many.

    ``records`` is a list endpoint's array or one record; ``query`` the request's query string,
    read as Node's ``qs`` reads it.  Included records (``dropship_provider``, ``sale_items``,
    ...) are stripped too, by the model their key names, keeping what their include's
    ``attributes`` named.
    """
    res = resource if isinstance(resource, Resource) else CATALOG.resource(resource)
    level = _level(qs_codec.decode(query or ""))
    return _strip(records if isinstance(records, list) else [records], res, level)


def _resource_of(path: str) -> Resource | None:
    """``/api/<url>.json`` or ``/api/<url>/<id>.json`` -> the resource; None otherwise."""
    parts = path.rsplit("/", 2)
    if not parts[-1].endswith(".json"):
        return None
    for name in (parts[-1][:-len(".json")], parts[-2] if len(parts) > 1 else ""):
        if name in CATALOG:
            return CATALOG.resource(name)
    return None


def strip_response(response: requests.Response, *args: Any,
                   **kwargs: Any) -> requests.Response:
    """A ``requests`` response hook: strip unnamed credential fields from a JSON answer.

    Runs before requests-cache stores the answer, so the cache file never holds them; an
    answer read from the cache was stripped when it was stored (for the same URL) and is left
    as it is.  A body without any credential key is left untouched (not even parsed).
    """
    if (response.status_code != 200 or getattr(response, "from_cache", False)
            or "json" not in response.headers.get("Content-Type", "")):
        return response
    content = response.content
    if not content or not _ANY_CREDENTIAL.search(content):
        return response
    url = urlsplit(response.request.url or response.url)
    res = _resource_of(unquote(url.path))
    if res is None:
        return response
    try:
        body = json.loads(content)
    except ValueError:
        return response
    if strip_records(res, body, url.query):
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        response._content = text
        response.headers["Content-Length"] = str(len(text))
    return response


def _pairs(query: str) -> list[str]:
    return [p for p in query.split("&") if p]


def has_exclude(url: str) -> bool:
    """Whether a URL carries ``attributes[exclude]`` (top level or in an include)."""
    return any(_EXCLUDE_KEY.search(unquote(p.partition("=")[0]))
               for p in _pairs(urlsplit(url).query))


def drop_exclude(url: str) -> str:
    """The URL without its ``attributes[exclude]`` parameters (for a server that refuses them).

    Examples
    --------
    >>> drop_exclude("x.json?limit=5&attributes%5Bexclude%5D%5B0%5D=shippoToken")
    'x.json?limit=5'
    """
    parts = urlsplit(url)
    kept = [p for p in _pairs(parts.query)
            if not _EXCLUDE_KEY.search(unquote(p.partition("=")[0]))]
    return urlunsplit(parts._replace(query="&".join(kept)))
