"""The include tree: a listed resource, its selected fields and the models included in it.

One tree serves the whole data path: :func:`jetti_frames.query.build_query` builds it from a
user's ``include`` (with what goes on the wire), and the frame builders read it to plan columns,
explode has-many includes and link tables.  :func:`walk` is the one walk over it: every node,
depth first, with its column prefix and the include keys leading to it.

Examples
--------
>>> spec = FrameSpec.of("purchases", ["id"],
...     [Include.of("purchases", "Sale", ["id"], [Include.of("sales", "Customer", ["email"])])])
>>> [(step.prefix, step.path) for step in walk(spec)]
[('', ()), ('sale_', ('sale',)), ('sale_customer_', ('sale', 'customer'))]
>>> [c.name for c in column_plan(spec)]
['id', 'sale_id', 'sale_customer_email']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from .catalog import CATALOG, Relation, Resource
from .errors import JettiQueryError

IncludeKind = Literal["belongs_to", "has_many"]

#: Separator between an include's key and its fields in column names (``purchase_status_name``).
DEFAULT_SEP = "_"

#: Field kinds a column can have (``enum`` as well, with its values).
KINDS = ("array", "boolean", "datetime", "integer", "json", "number", "string")


@dataclass(frozen=True)
class Include:
    """A related model embedded in each record of its parent.

    Attributes
    ----------
    model, resource
        The included model and its resource.
    kind
        ``"belongs_to"``: one object (or null) under :attr:`key`; ``"has_many"``: a list under
        :attr:`key`.  ``relation.foreign_key`` is a field of the parent for belongs-to and of
        this model for has-many.
    attributes
        The fields asked for, in order; ``None`` = every catalogue field but credentials, then
        unknown fields found in the records.
    include
        Includes nested inside this one.
    where, sent_attributes, added_attributes, exclude
        What goes on the wire (set by :func:`~jetti_frames.query.build_query`): ``where`` in
        wire form, the ``attributes`` sent (``added_attributes``: keys added for the join,
        left out of the frame unless asked for) and the credential fields sent as
        ``attributes[exclude]`` when no attributes are sent (first include level only: a
        deeper one would pass the 5 bracket levels qs reads).
    extra_kinds
        ``(field, kind)`` pairs for fields the catalogue lacks; see :class:`FrameSpec`.

    Examples
    --------
    >>> inc = Include.of("purchases", "PurchaseItem", ("id", "quantity"))
    >>> inc.kind, inc.key, inc.relation.foreign_key
    ('has_many', 'purchase_items', 'purchaseId')
    """

    model: str
    resource: Resource = field(repr=False)
    kind: IncludeKind
    relation: Relation
    attributes: tuple[str, ...] | None = None
    include: tuple[Include, ...] = ()
    where: dict[str, Any] = field(default_factory=dict)
    sent_attributes: tuple[str, ...] | None = None
    added_attributes: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    extra_kinds: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """The record key the server puts this include under (``purchase_status``, ...)."""
        return self.resource.key_one if self.kind == "belongs_to" else self.resource.key_many

    def to_wire(self) -> dict[str, Any]:
        """``{"model", "attributes", "include", "where"}`` with empty parts left out."""
        out: dict[str, Any] = {"model": self.model}
        if self.sent_attributes:
            out["attributes"] = list(self.sent_attributes)
        elif self.exclude:
            out["attributes"] = {"exclude": list(self.exclude)}
        if self.include:
            out["include"] = [inc.to_wire() for inc in self.include]
        if self.where:
            out["where"] = self.where
        return out

    @classmethod
    def of(cls, parent: str | Resource, model: str, columns: Sequence[str] | None = None,
           includes: Sequence[Include] = (),
           extra_kinds: Mapping[str, str] | None = None) -> Include:
        """The include of ``model`` (e.g. ``"PurchaseStatus"``) inside ``parent``, for building
        frames (nothing checked but the relation; :func:`~jetti_frames.query.build_query`
        validates a user's include).

        Raises
        ------
        JettiQueryError
            When ``parent`` has no relation to ``model``.
        """
        par = parent if isinstance(parent, Resource) else CATALOG.resource(parent)
        child = CATALOG.model(model)
        link = par.relation_to(child.model)
        if link is None:
            raise JettiQueryError(f"{par.url} has no relation to {model!r}")
        kind: IncludeKind = "belongs_to" if link[0] == "belongs_to" else "has_many"
        return cls(child.model, child, kind, link[1], _opt_tuple(columns), tuple(includes),
                   extra_kinds=tuple((extra_kinds or {}).items()))


@dataclass(frozen=True)
class FrameSpec:
    """The root of the tree: the listed resource, its selected fields and its includes.

    Attributes
    ----------
    resource
        The listed resource.
    attributes
        The selected fields in order; ``None`` = every catalogue field in catalogue order, then
        the unknown fields found in the records (sorted by name).  An explicit selection is exact:
        unknown fields the server sends anyway are left out.
    include
        Included models (:class:`Include`).
    extra_kinds
        ``(field, kind)`` pairs for fields the catalogue lacks.  With ``attributes=None`` each
        listed field always gets a column of that kind (after the catalogue fields), so that every
        page has it even where no record carries it.

    Examples
    --------
    >>> spec = FrameSpec.of("purchases", columns=["id", "reference"])
    >>> spec.resource.url, spec.attributes
    ('purchases', ('id', 'reference'))
    """

    resource: Resource
    attributes: tuple[str, ...] | None = None
    include: tuple[Include, ...] = ()
    extra_kinds: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, resource: str | Resource, columns: Sequence[str] | None = None,
           includes: Sequence[Include] = (),
           extra_kinds: Mapping[str, str] | None = None) -> FrameSpec:
        """A spec from a resource name (any alias the catalogue accepts) and plain sequences."""
        res = resource if isinstance(resource, Resource) else CATALOG.resource(resource)
        return cls(res, _opt_tuple(columns), tuple(includes), tuple((extra_kinds or {}).items()))


Node = FrameSpec | Include


def _opt_tuple(columns: Sequence[str] | None) -> tuple[str, ...] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        return (columns,)
    return tuple(columns)


class Step(NamedTuple):
    """One node of the tree as :func:`walk` meets it: the node, the prefix of its columns and the
    include keys leading to its records (``()`` for the listed resource; the parent's path is
    ``path[:-1]``)."""

    node: Node
    prefix: str
    path: tuple[str, ...]


def walk(spec: FrameSpec, sep: str = DEFAULT_SEP) -> list[Step]:
    """Every node of the tree, depth first, parents before their includes.

    Examples
    --------
    >>> spec = FrameSpec.of("purchases", includes=[Include.of("purchases", "PurchaseItem")])
    >>> [(type(s.node).__name__, s.prefix) for s in walk(spec, sep=".")]
    [('FrameSpec', ''), ('Include', 'purchase_items.')]
    """
    out: list[Step] = []
    pending: list[Step] = [Step(spec, "", ())]
    while pending:
        step = pending.pop()
        out.append(step)
        pending.extend(Step(inc, step.prefix + inc.key + sep, (*step.path, inc.key))
                       for inc in reversed(step.node.include))
    return out


@dataclass(frozen=True)
class Column:
    """One planned output column.

    ``name`` is the column name, ``field`` the record key it is read from, ``path`` the include keys
    leading to the record (empty for the listed resource), ``kind`` the catalogue kind (``None``:
    inferred from the values) and ``enum`` the categories of an enum.
    """

    name: str
    field: str
    path: tuple[str, ...]
    kind: str | None
    enum: tuple[str, ...] | None = None


def node_columns(node: Node, prefix: str = "", path: tuple[str, ...] = ()) -> list[Column]:
    """The planned columns of one node itself (not of its includes), in order.

    With ``attributes=None`` these are the catalogue fields but credentials (which only a
    selection naming them brings) followed by ``extra_kinds``; unknown fields found in records
    come on top of these (see :func:`jetti_frames.flatten.frame_from_records`).
    """
    res = node.resource
    extra = dict(node.extra_kinds)
    for kind in extra.values():
        check_kind(kind)
    names: Iterable[str]
    if node.attributes is None:
        names = [*res.default_field_names, *(n for n in extra if not res.has_field(n))]
    else:
        names = node.attributes
    out = []
    for name in names:
        fld = res.fields_by_name.get(name)
        if fld is not None:
            out.append(Column(prefix + name, name, path, fld.kind, fld.enum))
        else:
            out.append(Column(prefix + name, name, path, extra.get(name)))
    return out


def column_plan(spec: FrameSpec, *, sep: str = DEFAULT_SEP) -> list[Column]:
    """Every planned column of a joined frame: the resource's, then each include's (prefixed).

    Unknown fields are not planned (they depend on the records).
    """
    return [col for step in walk(spec, sep) for col in node_columns(*step)]


def check_kind(kind: str) -> None:
    """Raise :class:`JettiQueryError` unless ``kind`` is a field kind."""
    if kind not in KINDS and kind != "enum":
        raise JettiQueryError(f"unknown field kind {kind!r}; use one of {list(KINDS)}")
