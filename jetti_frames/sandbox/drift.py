"""The sandbox's ``drift`` knob: answers that no longer match the catalogue.

A live server changes under its clients: a column is added, one is removed, an enum gains a
value the OpenAPI document does not list. The knob maps a resource to what its records get::

    {"purchases": {"extra": {"fulfilmentChannel": "web"},     # a new field, on every record
                   "drop": ["notes"],                         # a field no longer sent
                   "enum": {"purchaseType": "consignment"}}}  # on records with an even id

wherever they appear: listed, or included in another resource's records. A new field comes
only where the server sends every column (no ``attributes`` list, or Sequelize's ``exclude``
form), as a new database column would; filters still see the stored values.

Examples
--------
>>> plan = DriftPlan.from_option({"purchase_statuses": {"enum": {"level": "critical"},
...                                                    "extra": {"colour": "red"}}})
>>> records = [{"id": 1, "level": "default"}, {"id": 2, "level": "warning"}]
>>> plan.apply_to(records, "purchase-statuses")
>>> records
[{'id': 1, 'level': 'default', 'colour': 'red'}, {'id': 2, 'level': 'critical', 'colour': 'red'}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalog import CATALOG
from ..errors import JettiConfigError, JettiQueryError
from .data import EXTRA_FIELDS

__all__ = ["DriftPlan"]

_RULE_KEYS = frozenset({"extra", "drop", "enum"})


@dataclass(frozen=True)
class _Rule:
    extra: Mapping[str, Any] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()
    enum: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftPlan:
    """What each resource's records get (see the module); empty = answers as catalogued."""

    rules: Mapping[str, _Rule] = field(default_factory=dict)

    @classmethod
    def from_option(cls, raw: Mapping[str, Any] | DriftPlan | None) -> DriftPlan:
        """The plan of a ``drift`` knob; :class:`JettiConfigError` names what is wrong."""
        if raw is None:
            return cls()
        if isinstance(raw, DriftPlan):
            return raw
        if not isinstance(raw, Mapping):
            raise JettiConfigError("drift must map resource names to {'extra', 'drop', 'enum'}")
        rules = {}
        for name, rule in raw.items():
            try:
                res = CATALOG.resource(name)
            except JettiQueryError as exc:
                raise JettiConfigError(f"drift: {exc}") from None
            if not isinstance(rule, Mapping) or not set(rule) <= _RULE_KEYS:
                raise JettiConfigError(f"drift[{name!r}] takes only {sorted(_RULE_KEYS)}")
            extra = dict(rule.get("extra") or {})
            drop = frozenset(rule.get("drop") or ())
            enum = dict(rule.get("enum") or {})
            known = [n for n in extra if res.has_field(n) or n in EXTRA_FIELDS]
            if known:
                raise JettiConfigError(f"drift[{name!r}]: {known[0]!r} is not a new field")
            for n in [*drop, *enum]:
                if not res.has_field(n):
                    raise JettiConfigError(f"drift[{name!r}]: {res.url} has no field {n!r}")
            for n, value in enum.items():
                spec = res.field(n)
                if spec.kind != "enum" or not isinstance(value, str) or value in (spec.enum or ()):
                    raise JettiConfigError(f"drift[{name!r}]: {value!r} is not a value outside "
                                           f"the enum of {n!r}")
            rules[res.url] = _Rule(extra, drop, enum)
        return cls(rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, records: Sequence[dict[str, Any]], plan: Any) -> None:
        """Change the records of a query plan (a ``QueryPlan``) in place, includes too."""
        self._walk(records, plan.res.url, plan.attributes, plan.includes)

    def apply_to(self, records: Sequence[dict[str, Any]], url: str, *,
                 every_column: bool = True) -> None:
        """Change records of resource ``url`` in place (not their includes)."""
        rule = self.rules.get(url)
        if rule is None:
            return
        for rec in records:
            if every_column:
                for name, value in rule.extra.items():
                    rec.setdefault(name, value)
            for name in rule.drop:
                rec.pop(name, None)
            ident = rec.get("id")
            if ident is None or (isinstance(ident, int) and ident % 2 == 0):
                for name, value in rule.enum.items():
                    if name in rec:
                        rec[name] = value

    def _walk(self, records: Sequence[dict[str, Any]], url: str,
              attributes: Sequence[str] | None, includes: Sequence[Any]) -> None:
        every = attributes is None or set(EXTRA_FIELDS) <= set(attributes)
        self.apply_to(records, url, every_column=every)
        for inc in includes:  # a shared included record changes once
            self._walk(inc.records_in(records), inc.res.url, inc.attributes, inc.children)
