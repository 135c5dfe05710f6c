"""Translate a decoded Jetti query (``where``, ``attributes``, ``include``, ``order``, ``limit``,
``from``) into SQL over the sandbox tables, and run it.

Values arrive as strings (qs decodes nothing else) and are converted by column type: integers,
numbers, ``"true"``/``"false"`` for booleans, ISO-8601 instants with ``Z`` or an offset for dates.
An empty value means NULL for every non-string column. Behaviour the real server shows after qs
turned a long array into an object (see the API notes) is reproduced: an ``$in`` object matches
nothing, a ``$notIn`` object is dropped, an ``attributes`` object is ignored; with
``strict=True`` these answer 400 instead.

The ``logic`` knob makes the server treat ``$or`` and ``$and`` (at the where level) as a server
that does not know them would: ``"ignore"`` drops them (rows come back as if the condition were
absent, as from a server that drops unknown operators) and ``"refuse"`` answers 400. A ``$or``
or ``$and`` that qs turned into an object (more than 20 branches) fails as Sequelize does (500;
400 with ``strict=True``).

``attributes`` may also be Sequelize's object form ``{"exclude": [...]}`` (every field but
those), at the top level and in an include; the ``exclude`` knob makes the server ``"ignore"``
that form (every field comes back) or ``"refuse"`` it (400). An ``exclude`` that qs turned into
an object fails as it does in Sequelize (500).

An include with a ``where`` is *required* (as in Sequelize): records without a matching related
record are left out.

Examples
--------
>>> import sqlite3
>>> from jetti_frames.sandbox.data import generate
>>> con = sqlite3.connect(":memory:"); _ = generate(con, purchases=20)
>>> plan = QueryPlan.build("purchases", {"where": {"purchaseType": "dropship"}, "limit": "2"})
>>> [r["purchaseType"] for r in plan.run(con)]
['dropship', 'dropship']
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from ..catalog import CATALOG, Resource
from .collation import comparable, sort_expression
from .data import EXTRA_FIELDS, RESOURCES, table_name

__all__ = ["EXCLUDE_MODES", "LOGIC_MODES", "MAX_INCLUDE_DEPTH", "Problem", "QueryPlan", "coerce",
           "serialize_rows"]

#: Include levels a default qs depth lets a query string carry.
MAX_INCLUDE_DEPTH = 2
#: The modulus of the tie order (a prime above every id, so that ``id * m + s`` is a permutation).
TIE_PRIME = 2_147_483_647
SERVED_MODELS = {CATALOG.resource(u).model: u for u in RESOURCES}
OPERATORS = ("$eq", "$ne", "$in", "$notIn", "$gt", "$gte", "$lt", "$lte", "$like", "$between",
             "$or", "$and", "$not")


class Problem(Exception):
    """An error answered as an RFC 7807 problem document."""

    TITLES: ClassVar[dict[int, str]] = {
        400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
        429: "Too Many Requests", 431: "Request Header Fields Too Large",
        500: "Internal Server Error", 503: "Service Unavailable",
    }

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def document(self) -> dict[str, Any]:
        title = self.TITLES.get(self.status, "Error")
        return {"type": f"https://httpstatuses.io/{self.status}", "title": title,
                "status": self.status, "detail": self.detail}


def _bad(detail: str) -> Problem:
    return Problem(400, detail)


#: What JavaScript's ``Date`` reads as ISO (its Date Time String Format): what toISOString writes,
#: shorter forms of it, and an offset instead of ``Z``. Anything else is an Invalid Date.
_JS_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?",
                     re.ASCII)


def _instant(text: str) -> str:
    """An ISO-8601 instant as the stored UTC text (fractions only when non-zero).

    Only the forms JavaScript's ``Date`` parses as ISO are read (``2019-01-01T00:00:00.000Z``,
    ``2019-01-01``, ``2019-01-01T02:00+02:00``); ``20190101``, ``2019-W01-1``, a year written
    with fewer than four digits and other loose forms are invalid, as they are to the server.
    """
    if not _JS_ISO.fullmatch(text):
        raise ValueError(text)
    raw = text[:-1] + "+00:00" if text.endswith("Z") else text
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "+00:00"  # years zero-padded


def coerce(res: Resource, name: str, value: Any) -> Any:
    """Convert one query-string value for column ``name`` (None for NULL).

    >>> coerce(CATALOG.resource("purchases"), "createdAt", "2019-01-01T02:00:00.000+02:00")
    '2019-01-01T00:00:00+00:00'
    """
    if not isinstance(value, str):
        raise _bad(f"value for {name!r} must be a single value, not {type(value).__name__}")
    kind = _kind(res, name)
    if value == "" and kind not in ("string", "enum"):
        return None
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            low = value.lower()
            if low in ("true", "1"):
                return 1
            if low in ("false", "0"):
                return 0
            raise ValueError(value)
        if kind == "datetime":
            return _instant(value)
    except ValueError:
        raise _bad(f"invalid {kind} value {value!r} for {name!r}") from None
    return value


def _kind(res: Resource, name: str) -> str:
    if name in EXTRA_FIELDS:
        return "integer"
    return res.fields_by_name[name].kind


def _check_field(res: Resource, name: str) -> str:
    if not (res.has_field(name) or name in EXTRA_FIELDS):
        raise _bad(f"unknown field {name!r} of {res.model}")
    return f'"{name}"'


def _as_list(value: Any) -> list[Any] | None:
    """A decoded array; None when qs turned it into an object."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return None
    return [value]


#: How the server treats ``$or`` / ``$and`` at the where level.
LOGIC_MODES = ("honor", "ignore", "refuse")


@dataclass
class Where:
    """Builds a SQL condition for one table alias."""

    res: Resource
    alias: str
    strict: bool
    params: list[Any] = field(default_factory=list)
    logic: str = "honor"
    #: How strings and enum values compare (see :mod:`.collation`).
    collation: str = "natural"

    def build(self, where: Any) -> str:
        if where in (None, ""):
            return "1"
        if isinstance(where, list):
            return self._join([self.build(w) for w in where], "AND")
        if not isinstance(where, dict):
            raise _bad("where must be an object")
        parts = []
        for key, value in where.items():
            if key in ("$or", "$and"):
                if self.logic == "ignore":
                    continue
                if self.logic == "refuse":
                    raise _bad(f"unknown operator {key!r} in where")
                if isinstance(value, dict) and value and all(k.isdigit() for k in value):
                    if self.strict:
                        raise _bad(f"{key} arrived as an object (array too long)")
                    raise Problem(500, f'column "{next(iter(value))}" does not exist')
                items = value
                if isinstance(items, dict):
                    subs = [self.build({k: v}) for k, v in items.items()]
                elif isinstance(items, list):
                    subs = [self.build(v) for v in items]
                else:
                    raise _bad(f"{key} needs a list of conditions")
                parts.append(self._join(subs, "OR" if key == "$or" else "AND"))
            elif key.startswith("$"):
                raise _bad(f"unknown operator {key!r} in where")
            else:
                parts.append(self._field(key, value))
        return self._join(parts, "AND")

    @staticmethod
    def _join(parts: list[str], op: str) -> str:
        if not parts:
            return "1" if op == "AND" else "0"
        return "(" + f" {op} ".join(parts) + ")"

    def _field(self, name: str, value: Any) -> str:
        if name.startswith("["):
            raise _bad(f"where nested too deep: {name!r}")
        col = f"{self.alias}.{_check_field(self.res, name)}"
        if isinstance(value, dict):
            if value and all(k.isdigit() for k in value):  # a long array turned object
                return self._op(name, col, "$in", value)
            return self._join([self._op(name, col, op, v) for op, v in value.items()], "AND")
        if isinstance(value, list):
            return self._op(name, col, "$in", value)
        return self._op(name, col, "$eq", value)

    def _value(self, name: str, value: Any) -> Any:
        return coerce(self.res, name, value)

    def _sortable(self, name: str, col: str) -> str:
        return sort_expression(self.res, name, col, self.collation)

    def _comparable(self, name: str, value: Any) -> Any:
        try:
            return comparable(self.res, name, value, self.collation)
        except ValueError as exc:
            raise _bad(str(exc)) from None

    def _op(self, name: str, col: str, op: str, value: Any) -> str:
        if op not in OPERATORS:
            raise _bad(f"unknown operator {op!r} for {name!r}")
        if op in ("$eq", "$ne"):
            v = self._value(name, value)
            if v is None:
                return f"{col} IS {'NOT ' if op == '$ne' else ''}NULL"
            self.params.append(v)
            return f"{col} {'=' if op == '$eq' else '!='} ?"
        if op in ("$in", "$notIn"):
            items = _as_list(value)
            if items is None:
                if self.strict:
                    raise _bad(f"{op} for {name!r} arrived as an object (array too long)")
                return "0" if op == "$in" else "1"
            values = [self._value(name, v) for v in items]
            present = [v for v in values if v is not None]
            if op == "$notIn" and len(present) < len(values):
                return "0"  # as SQL: NOT IN (.., NULL) is never true
            conds = []
            if present:
                self.params.extend(present)
                marks = ", ".join("?" * len(present))
                conds.append(f"{col} {'IN' if op == '$in' else 'NOT IN'} ({marks})")
            if len(present) < len(values):
                conds.append(f"{col} IS NULL")
            if not conds:
                return "0" if op == "$in" else "1"
            return self._join(conds, "OR" if op == "$in" else "AND")
        if op in ("$gt", "$gte", "$lt", "$lte"):
            v = self._value(name, value)
            if v is None:
                raise _bad(f"{op} for {name!r} needs a value")
            self.params.append(self._comparable(name, v))
            sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
            return f"{self._sortable(name, col)} {sign} ?"
        if op == "$like":
            if not isinstance(value, str):
                raise _bad(f"$like for {name!r} needs a string")
            self.params.append(value)
            return f"{col} LIKE ?"
        if op == "$between":
            items = _as_list(value)
            if items is None or len(items) != 2:
                raise _bad(f"$between for {name!r} needs two values")
            self.params.extend(self._comparable(name, self._value(name, v)) for v in items)
            return f"{self._sortable(name, col)} BETWEEN ? AND ?"
        if op == "$not":
            v = self._value(name, value)
            if v is None:
                return f"{col} IS NOT NULL"
            self.params.append(v)
            return f"{col} IS NOT ?"
        # $or / $and on one field: {"$or": [v1, {"$gt": v2}]}
        items = (_as_list(value) if not isinstance(value, dict)
                 else [{k: v} for k, v in value.items()])
        if items is None:
            raise _bad(f"{op} for {name!r} needs a list")
        subs = [self._field(name, v) for v in items]
        return self._join(subs, "OR" if op == "$or" else "AND")


@dataclass
class Include:
    """One ``include`` entry resolved against the parent resource."""

    res: Resource
    kind: str  # "belongs_to" | "has_many"
    foreign_key: str
    attributes: list[str] | None
    where: Any
    children: list[Include]

    def records_in(self, parents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The included records under ``parents`` (answered records), each once: an included
        record shared by several parents is one object."""
        key = self.res.key_one if self.kind == "belongs_to" else self.res.key_many
        found: dict[int, dict[str, Any]] = {}
        for rec in parents:
            value = rec.get(key)
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, dict):
                    found[id(child)] = child
        return list(found.values())


#: How the server treats ``attributes[exclude]``: Sequelize's meaning, or not at all.
EXCLUDE_MODES = ("honor", "ignore", "refuse")


def _attributes(res: Resource, raw: Any, strict: bool,
                exclude: str = "honor") -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, dict) and "exclude" in raw:
        return _excluding(res, raw["exclude"], strict, exclude)
    if isinstance(raw, dict):
        if strict and raw and all(k.isdigit() for k in raw):
            raise _bad("attributes arrived as an object (array too long)")
        return None
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise _bad("attributes must be a list of field names")
    for name in raw:
        _check_field(res, name)
    return list(dict.fromkeys(raw))


def _excluding(res: Resource, raw: Any, strict: bool, mode: str) -> list[str] | None:
    """Every column but ``raw`` (``attributes[exclude]``), as the ``exclude`` mode has it."""
    if mode == "refuse":
        raise _bad("attributes must be an array of field names")
    if mode == "ignore":
        return None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        if strict:
            raise _bad("attributes[exclude] arrived as an object (array too long)")
        raise Problem(500, "options.attributes.exclude.includes is not a function")
    for name in raw:
        if not isinstance(name, str):
            raise _bad("attributes[exclude] must be a list of field names")
        _check_field(res, name)
    return [n for n in (*res.field_names, *EXTRA_FIELDS) if n not in raw]


def _includes(parent: Resource, raw: Any, strict: bool, depth: int,
              exclude: str = "honor") -> list[Include]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, (str, dict)) and not (isinstance(raw, dict) and all(
            k.isdigit() for k in raw)):
        raw = [raw]
    elif isinstance(raw, dict):
        raw = list(raw.values())
    out = []
    for item in raw:
        if isinstance(item, str):
            item = {"model": item}
        if not isinstance(item, dict):
            raise _bad("include entries must be a model name or an object")
        deep = [k for k in item if k.startswith("[")]
        if deep or depth > MAX_INCLUDE_DEPTH:
            raise _bad(f"include nested deeper than {MAX_INCLUDE_DEPTH} levels "
                       f"(unparsed key {deep[0] if deep else 'include'!r})")
        unknown = set(item) - {"model", "attributes", "include", "where", "required", "as"}
        if unknown:
            raise _bad(f"unknown include option {sorted(unknown)[0]!r}")
        model = item.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("include needs a model")
        if model not in SERVED_MODELS:
            if any(r.model == model for r in CATALOG):
                raise _bad(f"model {model!r} is not related to {parent.model}")
            raise _bad(f"unknown model {model!r}")
        rel = parent.relation_to(model)
        if rel is None:
            raise _bad(f"model {model!r} is not related to {parent.model}")
        kind, relation = rel
        child = CATALOG.model(model)
        out.append(Include(
            res=child, kind=kind, foreign_key=relation.foreign_key,
            attributes=_attributes(child, item.get("attributes"), strict, exclude),
            where=item.get("where"),
            children=_includes(child, item.get("include"), strict, depth + 1, exclude),
        ))
    return out


def _int(raw: Any, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str):
        raise _bad(f"{name} must be a number")
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{name} must be an integer, not {raw!r}") from None
    if value < 0:
        raise _bad(f"{name} must not be negative")
    return value


@dataclass
class QueryPlan:
    """A validated list query, ready to run on a connection."""

    res: Resource
    where: Any
    attributes: list[str] | None
    includes: list[Include]
    order: tuple[str, bool, bool] | None  # attribute, descending, nullsFirst
    limit: int
    offset: int
    strict: bool = False
    quirks: bool = True
    #: ``(multiplier, shift)`` of the order rows tying on the order attribute come back in
    #: (``(id * m + s) mod p``); None: by id.
    ties: tuple[int, int] | None = None
    #: ``$or`` / ``$and``: ``"honor"``, ``"ignore"`` or ``"refuse"`` (see LOGIC_MODES).
    logic: str = "honor"
    #: How strings and enum values are ordered and compared (see :mod:`.collation`).
    collation: str = "natural"

    @classmethod
    def build(cls, url: str, query: dict[str, Any], *, default_limit: int = 50,
              max_limit: int = 100, strict: bool = False, quirks: bool = True,
              exclude: str = "honor",
              ties: tuple[int, int] | None = None, logic: str = "honor",
              collation: str = "natural") -> QueryPlan:
        """Validate a decoded query; :class:`Problem` (400) names what is wrong.

        ``ties`` orders rows that tie on the order attribute by ``(id * m + s) mod p``, a
        permutation of the ids that differs per ``(m, s)``: as PostgreSQL, which returns
        ties in whatever order its plan produces, the server gives no tie order.
        """
        res = CATALOG.resource(url)
        attributes = _attributes(res, query.get("attributes"), strict, exclude)
        includes = _includes(res, query.get("include"), strict, 1, exclude)
        order = None
        raw_order = query.get("order")
        if raw_order not in (None, ""):
            if not isinstance(raw_order, dict) or not isinstance(raw_order.get("attribute"), str):
                raise _bad("order must be an object with an attribute")
            unknown = set(raw_order) - {"attribute", "descending", "nullsFirst"}
            if unknown:
                raise _bad(f"unknown order option {sorted(unknown)[0]!r}")
            _check_field(res, raw_order["attribute"])
            order = (raw_order["attribute"], _flag(raw_order.get("descending"), "descending"),
                     _flag(raw_order.get("nullsFirst"), "nullsFirst"))
        limit = min(_int(query.get("limit"), "limit", default_limit), max_limit)
        page = _int(query.get("from"), "from", 0)
        plan = cls(res, query.get("where"), attributes, includes, order, limit, page * limit,
                   strict, quirks, ties, logic, collation)
        # validate the where clauses now (a 400 before any work)
        plan._conditions()
        return plan

    def _conditions(self) -> tuple[str, list[Any]]:
        builder = Where(self.res, "t", self.strict, logic=self.logic, collation=self.collation)
        sql = builder.build(self.where)
        parts = [sql]
        for inc in self.includes:
            if inc.where not in (None, ""):
                sub = Where(inc.res, "i", self.strict, builder.params, self.logic,
                            self.collation)
                cond = sub.build(inc.where)
                if inc.kind == "belongs_to":
                    link = f'i.id = t."{inc.foreign_key}"'
                else:
                    link = f'i."{inc.foreign_key}" = t.id'
                parts.append(f"EXISTS (SELECT 1 FROM {table_name(inc.res.url)} i "
                             f"WHERE {link} AND {cond})")
        return " AND ".join(parts), builder.params

    def _check_quirks(self) -> None:
        """Failures a Sequelize-style server shows (see the API notes) answered as 500."""
        if not self.quirks or self.attributes is None or not self.includes:
            return
        for inc in self.includes:
            if inc.kind == "belongs_to" and inc.foreign_key not in self.attributes:
                raise Problem(500, f"column {inc.foreign_key!r} needed by the include of "
                                   f"{inc.res.model} is not in attributes")
            if inc.kind == "has_many":
                if "id" not in self.attributes:
                    raise Problem(500, "column 'id' needed by the include of "
                                       f"{inc.res.model} is not in attributes")
                if self.order and self.order[0] not in self.attributes:
                    raise Problem(500, f"order attribute {self.order[0]!r} is not in attributes")

    def sql(self) -> tuple[str, list[Any]]:
        """The SELECT for the page of parent records."""
        cond, params = self._conditions()
        cols = _select_columns(self.res, self.attributes, self.includes)
        order = 't.id ASC'
        if self.order:
            attr, desc, nulls_first = self.order
            direction = "DESC" if desc else "ASC"
            nulls = "FIRST" if nulls_first else "LAST"
            tie = "t.id ASC"
            if self.ties is not None and attr != "id":
                m, s = self.ties
                tie = f"(t.id * {int(m)} + {int(s)}) % {TIE_PRIME}"
            column = sort_expression(self.res, attr, f't."{attr}"', self.collation)
            order = f"{column} {direction} NULLS {nulls}, {tie}"
        sql = (f"SELECT {', '.join('t.' + c for c in cols)} FROM {table_name(self.res.url)} t "
               f"WHERE {cond} ORDER BY {order} LIMIT {self.limit} OFFSET {self.offset}")
        return sql, params

    def run(self, con: sqlite3.Connection) -> list[dict[str, Any]]:
        """The page of records with their includes, as JSON-ready dicts."""
        self._check_quirks()
        sql, params = self.sql()
        cols = _select_columns(self.res, self.attributes, self.includes)
        rows = con.execute(sql, params).fetchall()
        records = serialize_rows(self.res, [c.strip('"') for c in cols], rows)
        _attach(con, self.res, records, self.includes, self.strict)
        _trim(records, self.attributes, self.includes)
        return records


def _flag(value: Any, name: str) -> bool:
    if value in (None, "", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise _bad(f"order {name} must be true or false, not {value!r}")


def _select_columns(res: Resource, attributes: list[str] | None,
                    includes: list[Include]) -> list[str]:
    if attributes is None:
        names = [*res.field_names, *EXTRA_FIELDS]
    else:
        names = list(attributes)
        # keys the includes need are read even when not asked for (then removed)
        for inc in includes:
            key = inc.foreign_key if inc.kind == "belongs_to" else "id"
            if key not in names:
                names.append(key)
    return [f'"{n}"' for n in names]


def _trim(records: list[dict[str, Any]], attributes: list[str] | None,
          includes: list[Include]) -> None:
    if attributes is None:
        return
    extra = {(inc.foreign_key if inc.kind == "belongs_to" else "id") for inc in includes}
    extra -= set(attributes)
    for rec in records:
        for key in extra:
            rec.pop(key, None)


def serialize_rows(res: Resource, names: list[str],
                   rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows of ``names`` -> dicts with booleans as bool and JSON columns parsed."""
    convs: list[tuple[int, Callable[[Any], Any]]] = []
    for i, name in enumerate(names):
        kind = _kind(res, name)
        if kind == "boolean":
            convs.append((i, bool))
        elif kind in ("array", "json"):
            convs.append((i, json.loads))
    out = []
    for row in rows:
        values = list(row)
        for i, conv in convs:
            value = values[i]
            if value is not None:
                values[i] = conv(value)
        out.append(dict(zip(names, values, strict=True)))
    return out


def _attach(con: sqlite3.Connection, parent: Resource, records: list[dict[str, Any]],
            includes: list[Include], strict: bool) -> None:
    for inc in includes:
        table = table_name(inc.res.url)
        cols = _select_columns(inc.res, inc.attributes, inc.children)
        key = "id" if inc.kind == "belongs_to" else inc.foreign_key
        if f'"{key}"' not in cols:
            cols.append(f'"{key}"')
        if inc.kind == "belongs_to":
            wanted = {r[inc.foreign_key] for r in records if r.get(inc.foreign_key) is not None}
        else:
            wanted = {r["id"] for r in records}
        target = inc.res.key_one if inc.kind == "belongs_to" else inc.res.key_many
        if not wanted:
            for rec in records:
                rec[target] = None if inc.kind == "belongs_to" else []
            continue
        builder = Where(inc.res, "t", strict)
        cond = builder.build(inc.where)
        marks = ", ".join("?" * len(wanted))
        sql = (f"SELECT {', '.join('t.' + c for c in cols)} FROM {table} t "
               f'WHERE t."{key}" IN ({marks}) AND {cond} ORDER BY t.id')
        rows = con.execute(sql, [*sorted(wanted), *builder.params]).fetchall()
        names = [c.strip('"') for c in cols]
        children = serialize_rows(inc.res, names, rows)
        _attach(con, inc.res, children, inc.children, strict)
        groups: dict[Any, list[dict[str, Any]]] = {}
        for child in children:
            groups.setdefault(child[key], []).append(child)
        keep_key = inc.attributes is None or key in inc.attributes
        _trim(children, inc.attributes, inc.children)
        if not keep_key:
            for child in children:
                child.pop(key, None)
        for rec in records:
            if inc.kind == "belongs_to":
                found = groups.get(rec.get(inc.foreign_key))
                rec[target] = found[0] if found else None
            else:
                rec[target] = groups.get(rec["id"], [])
