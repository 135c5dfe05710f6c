"""The catalogue as DataFrames: :func:`describe` a resource's fields or relations, list
:func:`resources`.

Nothing is requested: everything comes from the catalogue the package ships (derived from Jetti's
OpenAPI document), and the dtypes are those :func:`~jetti_frames.read_jetti` gives.

Examples
--------
>>> fields = describe("purchase-statuses")
>>> fields[["name", "dtype", "enum"]].iloc[2:4].to_dict("records")
[{'name': 'level', 'dtype': 'category', 'enum': ('default', 'warning', 'danger')}, \
{'name': 'name', 'dtype': 'string', 'enum': None}]
>>> describe("purchases", relations=True).set_index("model").loc["PurchaseStatus", "join"]
'purchases.purchaseStatusId = purchase-statuses.id'
>>> len(resources())
169
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .catalog import CATALOG, Resource
from .errors import JettiQueryError
from .schema import DtypeBackend, kind_dtype

__all__ = ["describe", "resources"]

_STRING = pd.StringDtype("pyarrow")
_FIELD_COLUMNS = {"name": _STRING, "kind": _STRING, "dtype": _STRING,
                  "nullable": pd.BooleanDtype(), "enum": object, "relation": _STRING,
                  "credential": pd.BooleanDtype(), "description": _STRING}
_RELATION_COLUMNS = ("model", "resource", "relation", "foreign_key", "key", "join")


def describe(resource: str, *, relations: bool = False,
             dtype_backend: DtypeBackend = "numpy_nullable") -> pd.DataFrame:
    """The fields of ``resource``, or with ``relations=True`` its related models.

    Parameters
    ----------
    resource
        Any name the catalogue accepts: ``"purchases"``, ``"purchase-items"``,
        ``"purchase_items"``, ``"PurchaseItem"``.
    relations
        Describe the related models instead of the fields.
    dtype_backend
        The backend whose dtypes the ``dtype`` column names, as in :func:`read_jetti`.

    Returns
    -------
    pandas.DataFrame
        Fields, one row each in catalogue order: ``name``; ``kind`` (the catalogue's word:
        integer, number, boolean, datetime, enum, string, array, json); ``dtype`` (the column's
        dtype in a frame); ``nullable``; ``enum`` (the documented values, a tuple, or ``None``);
        ``relation`` (the model a foreign key points to); ``credential`` (a secret, left out of
        reads that do not name it); ``description`` (Jetti's, where it says more than the name).

        Relations, one row each (belongs-to first): ``model`` (what ``include=`` takes);
        ``resource`` (its URL name); ``relation`` (``"belongs_to"``: this resource holds the
        foreign key, one related record or none; ``"has_many"``: the related records hold it);
        ``foreign_key``; ``key`` (the key the included records come under, and the prefix of
        their columns in a joined read); ``join`` (the condition, in URL names).

    Raises
    ------
    JettiQueryError
        An unknown resource (with close matches), a ``relations`` that is not a bool or an
        unknown ``dtype_backend``.

    Examples
    --------
    >>> describe("dropship-providers").query("credential")["name"].tolist()
    ['authenticationSecret', 'authenticationToken', 'shippoToken', 'taxJarToken']
    >>> describe("purchases").set_index("name").loc["purchaseStatusId", "relation"]
    'PurchaseStatus'
    >>> describe("purchases", relations=True).set_index("model").loc["PurchaseItem"].tolist()
    ['purchase-items', 'has_many', 'purchaseId', 'purchase_items', \
'purchase-items.purchaseId = purchases.id']
    """
    res = CATALOG.resource(resource)
    if not isinstance(relations, bool):
        raise JettiQueryError(f"relations must be True or False, not {relations!r}")
    kind_dtype("integer", dtype_backend=dtype_backend)  # checks the backend
    if relations:
        return _relations(res)
    targets = {rel.foreign_key: rel.model for rel in res.belongs_to}
    rows = [{"name": f.name, "kind": f.kind,
             "dtype": _dtype_name(kind_dtype(f.kind, f.enum, dtype_backend)),
             "nullable": f.nullable, "enum": f.enum, "relation": targets.get(f.name),
             "credential": f.credential, "description": f.description} for f in res.fields]
    return _frame(rows, _FIELD_COLUMNS)


def _relations(res: Resource) -> pd.DataFrame:
    rows = []
    for rel in res.belongs_to:
        other = CATALOG.model(rel.model)
        rows.append({"model": rel.model, "resource": other.url, "relation": "belongs_to",
                     "foreign_key": rel.foreign_key, "key": other.key_one,
                     "join": f"{res.url}.{rel.foreign_key} = {other.url}.id"})
    for rel in res.has_many:
        other = CATALOG.model(rel.model)
        rows.append({"model": rel.model, "resource": other.url, "relation": "has_many",
                     "foreign_key": rel.foreign_key, "key": other.key_many,
                     "join": f"{other.url}.{rel.foreign_key} = {res.url}.id"})
    return _frame(rows, dict.fromkeys(_RELATION_COLUMNS, _STRING))


def resources() -> pd.DataFrame:
    """Every list endpoint of the catalogue, one row each, by URL name.

    Columns: ``name`` (the snake-case name, also the key of its frame in
    ``include_mode="tables"``), ``url`` (the name in the API's paths), ``model``, ``fields``
    (how many), ``relations`` (how many related models) and ``description`` (Jetti's, where
    its OpenAPI document gives one).

    Examples
    --------
    >>> resources().set_index("url").loc["purchase-items", ["name", "model"]].tolist()
    ['purchase_items', 'PurchaseItem']
    """
    rows = [{"name": r.key_many, "url": r.url, "model": r.model, "fields": len(r.fields),
             "relations": len(r.belongs_to) + len(r.has_many),
             "description": getattr(r, "description", None)} for r in CATALOG]
    columns = {"name": _STRING, "url": _STRING, "model": _STRING, "fields": pd.Int64Dtype(),
               "relations": pd.Int64Dtype(), "description": _STRING}
    return _frame(rows, columns)


def _frame(rows: list[dict[str, Any]], columns: dict[str, Any]) -> pd.DataFrame:
    data = {name: pd.Series([r[name] for r in rows], dtype=dtype, index=range(len(rows)))
            for name, dtype in columns.items()}
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def _dtype_name(dtype: Any) -> str:
    return "category" if isinstance(dtype, pd.CategoricalDtype) else str(dtype)
