"""A validated :class:`Query` built from a user's arguments, and one request's parameters.

:func:`build_query` checks ``where``, ``attributes``, ``include`` and ``order`` against the
catalogue; :func:`request_params` assembles one request in Jetti's wire form.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ._predicates import compile_where
from ._split import split_where
from ._tree import FrameSpec, Include, IncludeKind
from ._where import _WHERE_OPS, _norm_where, _wire_where
from ._wire import QS_DEPTH, _as_list, _check_arrays, _check_params, _dedupe, _is_list_like, encode
from .catalog import CATALOG, Relation, Resource
from .errors import JettiQueryError
from .settings import MAX_ARRAY

#: Include levels that survive ``QS_DEPTH``: ``include[0][include][0][attributes][0]``.
MAX_INCLUDE_LEVELS = 2
_INCLUDE_KEYS = ("model", "attributes", "include", "where")


@dataclass(frozen=True)
class Order:
    """One sort order, Jetti's ``order`` object.

    Examples
    --------
    >>> Order("dateOrdered", descending=True).to_wire()
    {'attribute': 'dateOrdered', 'descending': True, 'nullsFirst': False}
    >>> Order("id").to_wire()
    {'attribute': 'id', 'descending': False}
    """

    attribute: str
    descending: bool = False
    nulls_first: bool = False

    def to_wire(self) -> dict[str, Any]:
        """``{"attribute", "descending", "nullsFirst"}`` as sent in ``order[...]``.

        ``nullsFirst`` is left out only for ascending, nulls-last order, which every SQL
        database does by default; descending order states it, as databases differ there.
        """
        out: dict[str, Any] = {"attribute": self.attribute, "descending": self.descending}
        if self.descending or self.nulls_first:
            out["nullsFirst"] = self.nulls_first
        return out


@dataclass(frozen=True)
class Query:
    """A validated query on one resource.

    Attributes
    ----------
    resource, where, attributes, include, order
        The normalised request; ``where`` is the full condition (Python values, dates as aware
        UTC datetimes) and ``attributes`` the columns asked for (None: all).
    wire_where
        What is sent: ``where`` minus what is applied locally; still unsplit, see
        :func:`split_where`.
    post_filter
        A where dict that records must also satisfy (:meth:`keep`); ``{}`` when none.
    sent_attributes, added_attributes
        The wire ``attributes`` (None: not sent, every field comes back) and the columns added
        to it for paging, ordering, includes or the post-filter.  When ``attributes`` is set
        but ``sent_attributes`` is None (more than ``MAX_ARRAY``), select ``attributes`` locally.
    is_empty
        The answer is known to be empty (e.g. ``$in: []``): make no request.
    exclude
        Credential fields not named in ``attributes``, sent as ``attributes[exclude]`` when no
        ``attributes`` are sent (at most ``MAX_ARRAY``; the response hook strips them anyway).
    """

    resource: Resource
    where: dict[str, Any]
    attributes: tuple[str, ...] | None
    include: tuple[Include, ...]
    order: Order | None
    wire_where: dict[str, Any] = field(default_factory=dict)
    post_filter: dict[str, Any] = field(default_factory=dict)
    sent_attributes: tuple[str, ...] | None = None
    added_attributes: tuple[str, ...] = ()
    is_empty: bool = False
    exclude: tuple[str, ...] = ()

    def __repr__(self) -> str:
        parts = [f"resource={self.resource.url!r}", f"where={self.where!r}"]
        for name in ("attributes", "include", "order", "post_filter", "sent_attributes",
                     "added_attributes", "is_empty", "exclude"):
            value = getattr(self, name)
            if value not in (None, (), {}, False):
                parts.append(f"{name}={value!r}")
        return f"Query({', '.join(parts)})"

    @property
    def spec(self) -> FrameSpec:
        """The frame this query yields: the asked columns (added keys left out), its includes."""
        return FrameSpec(self.resource, self.attributes, self.include)

    @property
    def select_locally(self) -> bool:
        """True when the asked ``attributes`` are not sent and must be selected locally."""
        return self.attributes is not None and self.sent_attributes is None

    @cached_property
    def _post_predicate(self) -> Callable[[Mapping[str, Any]], bool]:
        return compile_where(self.post_filter)

    def keep(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` passes the local post-filter (always True when there is none)."""
        return self._post_predicate(record)


def _norm_attributes(res: Resource, attributes: Any, path: str) -> tuple[str, ...] | None:
    if attributes is None:
        return None
    names = [attributes] if isinstance(attributes, str) else (
        _as_list(attributes) if _is_list_like(attributes) else None)
    if names is None:
        raise JettiQueryError(f"{path} must be a list of field names, got {attributes!r}")
    if not names:
        raise JettiQueryError(f"{path} is empty; pass None for every field")
    for name in names:
        if not isinstance(name, str):
            raise JettiQueryError(f"{path}: field names are strings, got {name!r}")
        res.field(name)
    return tuple(_dedupe(names))


def _with_needed(res: Resource, attrs: tuple[str, ...] | None,
                 needed: Iterable[str]) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """(sent attributes, added attributes); not sent at all when longer than ``MAX_ARRAY``."""
    if attrs is None:
        return None, ()
    added = tuple(n for n in _dedupe(needed) if n not in attrs and res.has_field(n))
    sent = attrs + added
    if len(sent) > MAX_ARRAY:
        return None, ()
    return sent, added


def _exclude(res: Resource, attrs: tuple[str, ...] | None,
             sent: tuple[str, ...] | None) -> tuple[str, ...]:
    """Credential fields to send as ``attributes[exclude]``: those not named, when no
    ``attributes`` list is sent and they fit in one array.

    >>> _exclude(CATALOG.resource("channels"), None, None)
    ('shipstationPassword',)
    >>> _exclude(CATALOG.resource("channels"), ("id", "shipstationPassword"), None)
    ()
    """
    if sent is not None:
        return ()
    names = tuple(n for n in res.credentials if attrs is None or n not in attrs)
    return names if len(names) <= MAX_ARRAY else ()


def parse_order(order: Any) -> Order | None:
    """Read an order given as ``"field"``, ``"-field"``, ``("field", "desc")``,
    ``("field", "desc", "nulls first")``, ``{"attribute", "descending", "nullsFirst"}`` or an
    :class:`Order` (no catalogue check; :func:`build_query` does that).

    Examples
    --------
    >>> parse_order("-dateOrdered")
    Order(attribute='dateOrdered', descending=True, nulls_first=False)
    >>> parse_order(("total", "ASC", "first"))
    Order(attribute='total', descending=False, nulls_first=True)
    >>> parse_order({"attribute": "id", "descending": True, "nullsFirst": True}).nulls_first
    True
    """
    if order is None or isinstance(order, Order):
        return order
    if isinstance(order, str):
        name = order[1:] if order[:1] in "-+" else order
        if not name:
            raise JettiQueryError(f"order {order!r} names no attribute")
        return Order(name, descending=order.startswith("-"))
    if isinstance(order, Mapping):
        unknown = set(order) - {"attribute", "descending", "nullsFirst", "nulls_first"}
        if unknown or "attribute" not in order:
            raise JettiQueryError(
                f"order dict takes 'attribute', 'descending', 'nullsFirst'; got {dict(order)!r}")
        nulls = order.get("nullsFirst", order.get("nulls_first", False))
        return Order(str(order["attribute"]), _flag(order.get("descending", False), "descending"),
                     _flag(nulls, "nullsFirst"))
    if isinstance(order, list | tuple):
        if len(order) == 1 and not isinstance(order[0], str):
            return parse_order(order[0])  # Sequelize style [["field", "DESC"]]
        if order and isinstance(order[0], str) and 1 <= len(order) <= 3:
            direction = order[1] if len(order) > 1 else "asc"
            if isinstance(direction, str) and direction.lower() in ("asc", "desc"):
                descending = direction.lower() == "desc"
            elif isinstance(direction, bool):
                descending = direction
            else:
                raise JettiQueryError(f"order direction must be 'asc' or 'desc', got {direction!r}")
            nulls_first = False
            if len(order) == 3:
                nulls = order[2]
                text = (nulls.lower().removeprefix("nulls").strip() if isinstance(nulls, str)
                        else nulls)
                if text not in ("first", "last", True, False):
                    raise JettiQueryError(f"order nulls must be 'first' or 'last', got {nulls!r}")
                nulls_first = text in ("first", True)
            return Order(order[0], descending, nulls_first)
    raise JettiQueryError(f"Jetti takes one order: 'field', '-field', ('field', 'desc') or "
                          f"{{'attribute': ..., 'descending': ..., 'nullsFirst': ...}}; "
                          f"got {order!r}")


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise JettiQueryError(f"order {name} must be True or False, got {value!r}")


def _related(parent: Resource, name: Any, path: str) -> tuple[Resource, IncludeKind, Relation]:
    res = CATALOG.resource(name) if isinstance(name, str) and name in CATALOG else None
    link = parent.relation_to(res.model) if res is not None else None
    if res is None or link is None:
        aliases: dict[str, str] = {}
        for model in parent.related_models:
            rel_res = CATALOG.model(model)
            for alias in (model, rel_res.url, rel_res.key_one, rel_res.key_many):
                aliases.setdefault(alias, model)
        close = difflib.get_close_matches(str(name), list(aliases), n=6, cutoff=0.6)
        models = _dedupe(aliases[c] for c in close)[:3]
        hint = f"; did you mean {', '.join(repr(m) for m in models)}?" if models else "."
        related = parent.related_models
        listed = ", ".join(related[:40]) + (", ..." if len(related) > 40 else "")
        raise JettiQueryError(f"{path}: {parent.url} ({parent.model}) has no relation to "
                              f"{name!r}{hint} Related models: {listed}")
    return res, "belongs_to" if link[0] == "belongs_to" else "has_many", link[1]


def _norm_includes(parent: Resource, spec: Any, level: int, path: str) -> tuple[Include, ...]:
    if spec is None:
        return ()
    items = [spec] if isinstance(spec, str | Mapping | Include) else (
        _as_list(spec) if _is_list_like(spec) else None)
    if items is None:
        raise JettiQueryError(f"{path} must be a model name, a dict or a list of them")
    out: list[Include] = []
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        if isinstance(item, Include):
            item = {"model": item.model, "attributes": item.attributes,
                    "include": list(item.include) or None, "where": item.where or None}
        if isinstance(item, str):
            item = {"model": item}
        if not isinstance(item, Mapping) or "model" not in item:
            raise JettiQueryError(f"{here}: an include is a model name or a dict with 'model'")
        unknown = [k for k in item if k not in _INCLUDE_KEYS]
        if unknown:
            raise JettiQueryError(f"{here}: unknown include key(s) {unknown}; "
                                  f"allowed: {list(_INCLUDE_KEYS)}")
        res, kind, rel = _related(parent, item["model"], here)
        if any(inc.model == res.model for inc in out):
            raise JettiQueryError(f"{here}: {res.model} is included twice")
        nested_spec = item.get("include")
        if nested_spec and level >= MAX_INCLUDE_LEVELS:
            raise JettiQueryError(
                f"{here}[include]: includes nest at most {MAX_INCLUDE_LEVELS} levels; the "
                f"server's qs parser reads only {QS_DEPTH} bracket levels, so a third level "
                f"would arrive garbled. Query {res.url} separately and join locally.")
        nested = _norm_includes(res, nested_spec, level + 1, f"{here}[include]")
        attrs = _norm_attributes(res, item.get("attributes"), f"{here}[attributes]")
        needed = ["id"] + ([rel.foreign_key] if kind == "has_many" else [])
        needed += [c.relation.foreign_key for c in nested if c.kind == "belongs_to"]
        sent, added = _with_needed(res, attrs, needed)
        where = _norm_where(res, item.get("where"), f"{here}[where]")
        wire = _wire_where(res, where, None, f"{here}[where]")
        if wire is None:
            raise JettiQueryError(f"{here}[where] can match nothing (empty $in or $or); drop the "
                                  f"include or the condition")
        _check_arrays(wire, f"{here}[where]", "an include where cannot be split into several "
                      "requests; query the included resource separately instead")
        exclude = _exclude(res, attrs, sent) if level == 1 else ()
        out.append(Include(res.model, res, kind, rel, attrs, nested, wire, sent, added,
                           exclude))
    return tuple(out)


def _where_fields(where: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, cond in where.items():
        if key in _WHERE_OPS:
            for branch in cond:
                out += _where_fields(branch)
        else:
            out.append(key)
    return out


def _long_lists(where: Mapping[str, Any]) -> list[str]:
    """Fields with an ``$in`` list longer than one array.

    >>> _long_lists({"id": {"$in": list(range(30))}, "total": {"$in": [1, 2]}})
    ['id']
    """
    return [k for k, v in where.items() if isinstance(v, Mapping)
            and isinstance(v.get("$in"), list) and len(v["$in"]) > MAX_ARRAY]


def _check_local_credentials(res: Resource, attrs: tuple[str, ...] | None,
                             fields: Iterable[str]) -> None:
    """A condition applied locally needs the field's values: a credential must be named.

    >>> _check_local_credentials(CATALOG.resource("channels"), None, ["shipstationPassword"])
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiQueryError: where on credential field 'shipstationPassword' is \
applied locally and needs its values: name it in attributes (it is then read and cached like \
any field)
    """
    for name in _dedupe(fields):
        fld = res.fields_by_name.get(name)
        if fld is not None and fld.credential and (attrs is None or name not in attrs):
            raise JettiQueryError(
                f"where on credential field {name!r} is applied locally and needs its values: "
                f"name it in attributes (it is then read and cached like any field)")


def build_query(resource: str | Resource, *, where: Mapping[str, Any] | None = None,
                attributes: Any = None, include: Any = None, order: Any = None) -> Query:
    """Validate a query against the catalogue and normalise it.

    Parameters
    ----------
    resource
        Any catalogue alias (``"purchases"``, ``"purchase_items"``, ``"PurchaseItem"``) or a
        :class:`~jetti_frames.catalog.Resource`.
    where
        ``{field: value}`` (equality; None is SQL NULL), ``{field: [values]}`` (``$in``; any
        list, tuple, set, numpy array or pandas Series/Index), ``{field: {op: value}}`` with
        ``$eq $ne $in $notIn $gt $gte $lt $lte $like $notLike $between``, and
        ``{"$or"|"$and": [where, ...]}``.  Dates may be datetime, date, pandas Timestamp or ISO
        strings (naive means UTC).
    attributes
        Field names to return (None: all).
    include
        A model name or alias (``"PurchaseStatus"``, ``"purchase-statuses"``), a dict
        ``{"model", "attributes", "include", "where"}`` or a list of them; two levels at most.
    order
        ``"field"``, ``"-field"``, ``("field", "desc")`` or
        ``{"attribute", "descending", "nullsFirst"}``.

    Raises
    ------
    JettiQueryError
        For anything unknown or impossible, naming close matches where there are some.

    Examples
    --------
    >>> q = build_query("purchases", where={"purchaseStatusId": [3, 3, 4], "cancelledAt": None},
    ...                 attributes=["reference"], include="purchase_status")
    >>> q.where, q.include[0].kind, q.sent_attributes
    ({'purchaseStatusId': {'$in': [3, 4]}, 'cancelledAt': None}, 'belongs_to', \
('reference', 'id', 'purchaseStatusId'))
    >>> build_query("purchases", where={"purchaseTyp": "dropship"})
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiQueryError: purchases has no field 'purchaseTyp'; did you mean \
'purchaseType', 'purchaseId'?
    """
    res = resource if isinstance(resource, Resource) else CATALOG.resource(resource)
    full = _norm_where(res, where, "where")
    residual: list[dict[str, Any]] = []
    wire = _wire_where(res, full, residual, "where")
    post = residual[0] if len(residual) == 1 else ({"$and": residual} if residual else {})
    attrs = _norm_attributes(res, attributes, "attributes")
    parsed_order = parse_order(order)
    if parsed_order is not None:
        fld = res.fields_by_name.get(parsed_order.attribute)
        if fld is None:
            res.field(parsed_order.attribute)  # raises with suggestions
        elif fld.kind in ("json", "array"):
            raise JettiQueryError(f"order: cannot sort by {fld.kind} field {fld.name!r}")
    includes = _norm_includes(res, include, 1, "include")
    needed = ["id"]
    if parsed_order is not None:
        needed.append(parsed_order.attribute)
    needed += [inc.relation.foreign_key for inc in includes if inc.kind == "belongs_to"]
    needed += _where_fields(post)
    needed += _long_lists(wire or {})  # to check the answers to packed requests
    _check_local_credentials(res, attrs, _where_fields(post))
    sent, added = _with_needed(res, attrs, needed)
    query = Query(res, full, attrs, includes, parsed_order, wire or {}, post, sent, added,
                  is_empty=wire is None, exclude=_exclude(res, attrs, sent))
    for part in split_where(query):  # surface depth and size problems before any request
        request_params(part, sent, includes, parsed_order, limit=1, from_=0,
                       exclude=query.exclude)
    return query


def request_params(query_where: Mapping[str, Any] | None,
                   attributes: Sequence[str] | None = None,
                   include: Sequence[Include | Mapping[str, Any]] | None = (),
                   order: Any = None, limit: int | None = None,
                   from_: int | None = None, *,
                   exclude: Sequence[str] = (), check: bool = True) -> dict[str, Any]:
    """One request's parameters in Jetti's wire form, checked for qs limits.

    ``query_where`` is one of :func:`split_where`'s dicts (possibly with keyset constraints from
    :func:`and_where`); ``attributes`` normally ``Query.sent_attributes``, and without them
    ``exclude`` (normally ``Query.exclude``) is sent as ``attributes[exclude]``.  Values stay
    Python values; :func:`encode` formats them.  ``check=False`` leaves the check of the qs
    limits to the caller (:func:`~jetti_frames._wire.encode_checked`).

    Raises
    ------
    JettiQueryError
        An array longer than ``MAX_ARRAY``, nesting deeper than qs reads, or an oversized query.

    Examples
    --------
    >>> request_params({"id": {"$gt": 10}}, ["id"], (), "id", limit=100, from_=0)
    {'where': {'id': {'$gt': 10}}, 'attributes': ['id'], 'order': {'attribute': 'id', \
'descending': False}, 'limit': 100, 'from': 0}
    """
    params: dict[str, Any] = {}
    if query_where:
        params["where"] = dict(query_where)
    if attributes:
        params["attributes"] = list(attributes)
    elif exclude:
        params["attributes"] = {"exclude": list(exclude)}
    if include:
        params["include"] = [inc.to_wire() if isinstance(inc, Include) else dict(inc)
                             for inc in include]
    parsed = parse_order(order)
    if parsed is not None:
        params["order"] = parsed.to_wire()
    if limit is not None:
        params["limit"] = int(limit)
    if from_ is not None:
        params["from"] = int(from_)
    if check:
        _check_params(params)
    return params


def query_urls(query: Query, *, limit: int | None = None, readable: bool = False,
               parts: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """``<url>.json?<qs>`` of each request of the first page, for display.

    ``parts`` are the where dicts to send (default :func:`split_where`'s).

    Examples
    --------
    >>> query_urls(build_query("purchase-statuses", where={"name": "open"}), readable=True)
    ['purchase-statuses.json?where[name]=open']
    """
    urls = []
    for part in split_where(query) if parts is None else parts:
        params = request_params(part, query.sent_attributes, query.include, query.order, limit,
                                exclude=query.exclude)
        text = encode(params, readable=readable)
        urls.append(f"{query.resource.url}.json" + (f"?{text}" if text else ""))
    return urls


def explain_query(query: Query, *, limit: int | None = None, readable: bool = True,
                  parts: Sequence[Mapping[str, Any]] | None = None) -> str:
    """A human-readable account of the requests a query makes and what is done locally.

    Examples
    --------
    >>> print(explain_query(build_query("purchases", where={"id": []})))
    GET purchases: no request, the answer is known to be empty
    """
    if query.is_empty:
        return f"GET {query.resource.url}: no request, the answer is known to be empty"
    urls = query_urls(query, limit=limit, readable=readable, parts=parts)
    lines = [f"GET {query.resource.url}: {len(urls)} request stream(s)"]
    lines += [f"  {u}" for u in urls]
    if query.post_filter:
        lines.append(f"  then keep records matching {query.post_filter!r} locally")
    if query.select_locally:
        lines.append(f"  attributes not sent (more than {MAX_ARRAY}); "
                     f"{len(query.attributes or ())} columns selected locally")
    if query.added_attributes:
        lines.append(f"  added for paging/ordering/joins: {', '.join(query.added_attributes)}")
    return "\n".join(lines)
