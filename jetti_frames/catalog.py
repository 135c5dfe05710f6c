"""The resource catalogue: every list endpoint of the Jetti API with its fields and relations.

Loaded from ``catalog.json``, which ``tools/generate_catalog.py`` derives from Jetti's OpenAPI
document.

Examples
--------
>>> from jetti_frames.catalog import CATALOG
>>> purchases = CATALOG.resource("purchase_items")
>>> purchases.url, purchases.model
('purchase-items', 'PurchaseItem')
>>> CATALOG.resource("purchases").field("purchaseType").enum[:2]
('replenishment', 'dropship')
>>> CATALOG.resource("dropship-providers").credentials
('authenticationSecret', 'authenticationToken', 'shippoToken', 'taxJarToken')
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cached_property
from importlib import resources as importlib_resources
from typing import Any

from .errors import JettiQueryError

#: Field kinds used by the catalogue (``Field.kind``).
KINDS = ("integer", "number", "boolean", "datetime", "enum", "string", "array", "json")


@dataclass(frozen=True)
class Field:
    """One field of a resource, as Jetti's OpenAPI document describes it.

    ``credential`` marks a secret of a connected service (``shippoToken``, ``clientSecret``,
    ``shipstationPassword``, ...): reads leave it out unless it is named in ``attributes``.
    """

    name: str
    kind: str
    nullable: bool = True
    format: str | None = None
    enum: tuple[str, ...] | None = None
    default: Any = None
    items: str | None = None
    credential: bool = False
    #: Jetti's description where it says more than the name (79 fields, mostly settings).
    description: str | None = dataclass_field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Field:
        enum = raw.get("enum")
        return cls(
            name=raw["name"],
            kind=raw["kind"],
            nullable=raw.get("nullable", True),
            format=raw.get("format"),
            enum=tuple(enum) if enum is not None else None,
            default=raw.get("default"),
            items=raw.get("items"),
            credential=raw.get("credential", False),
            description=raw.get("description"),
        )


@dataclass(frozen=True)
class Relation:
    """A link between two models through a foreign key.

    For ``belongs_to`` the foreign key is a field of the owning resource; for ``has_many`` it is a
    field of the related (child) model.
    """

    model: str
    foreign_key: str


@dataclass(frozen=True)
class Resource:
    """A list endpoint: ``GET /api/<url>.json``."""

    url: str
    schema: str
    model: str
    key_one: str
    key_many: str
    fields: tuple[Field, ...]
    belongs_to: tuple[Relation, ...]
    has_many: tuple[Relation, ...]

    @cached_property
    def fields_by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @cached_property
    def credentials(self) -> tuple[str, ...]:
        """Names of the credential fields (see :attr:`Field.credential`)."""
        return tuple(f.name for f in self.fields if f.credential)

    @property
    def default_field_names(self) -> list[str]:
        """The fields a read returns when ``attributes`` are not given: all but credentials."""
        return [f.name for f in self.fields if not f.credential]

    def field(self, name: str) -> Field:
        """The field called ``name``; :class:`JettiQueryError` with close matches otherwise."""
        try:
            return self.fields_by_name[name]
        except KeyError:
            raise JettiQueryError(
                f"{self.url} has no field {name!r}{_suggest(name, self.fields_by_name)}"
            ) from None

    def has_field(self, name: str) -> bool:
        return name in self.fields_by_name

    def relation_to(self, model: str) -> tuple[str, Relation] | None:
        """``("belongs_to" | "has_many", relation)`` linking this resource to ``model``."""
        for rel in self.belongs_to:
            if rel.model == model:
                return "belongs_to", rel
        for rel in self.has_many:
            if rel.model == model:
                return "has_many", rel
        return None

    @property
    def related_models(self) -> list[str]:
        return sorted({r.model for r in (*self.belongs_to, *self.has_many)})


class Catalog:
    """All resources, looked up by URL name, snake name, schema name or model name."""

    def __init__(self, raw: dict[str, Any], digest: str = "") -> None:
        self.source: dict[str, Any] = raw["source"]
        self.digest = digest
        self.resources: tuple[Resource, ...] = tuple(_resource(r) for r in raw["resources"])
        self._by_name: dict[str, Resource] = {}
        for res in self.resources:
            for alias in (res.url, res.key_many, res.schema, res.key_one, res.model):
                self._by_name.setdefault(alias, res)
        self._by_model = {res.model: res for res in self.resources}

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._by_name

    def resource(self, name: str) -> Resource:
        """The resource for ``purchases``, ``purchase-items``, ``purchase_items`` or ``Purchase``.

        Raises
        ------
        JettiQueryError
            For an unknown name, listing close matches.
        """
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            urls = {r.url: r for r in self.resources}
            guess = str(name).replace("_", "-").lower()
            raise JettiQueryError(f"unknown resource {name!r}{_suggest(guess, urls)}") from None

    def model(self, model: str) -> Resource:
        """The resource whose model name is ``model`` (e.g. ``PurchaseStatus``)."""
        try:
            return self._by_model[model]
        except (KeyError, TypeError):
            raise JettiQueryError(
                f"unknown model {model!r}{_suggest(str(model), self._by_model)}"
            ) from None


def _suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _resource(raw: dict[str, Any]) -> Resource:
    return Resource(
        url=raw["url"],
        schema=raw["schema"],
        model=raw["model"],
        key_one=raw["key_one"],
        key_many=raw["key_many"],
        fields=tuple(Field.from_json(f) for f in raw["fields"]),
        belongs_to=tuple(Relation(**r) for r in raw["belongs_to"]),
        has_many=tuple(Relation(**r) for r in raw["has_many"]),
    )


def load_catalog() -> Catalog:
    """Load the catalogue shipped with the package."""
    data = importlib_resources.files("jetti_frames").joinpath("catalog.json").read_bytes()
    return Catalog(json.loads(data), digest=hashlib.sha256(data).hexdigest())


CATALOG = load_catalog()
