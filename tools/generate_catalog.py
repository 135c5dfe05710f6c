"""Generate ``jetti_frames/catalog.json`` from Jetti's OpenAPI document.

The package never reads the OpenAPI YAML at run time; it loads the compact catalogue this script
writes.  Regenerating from the same YAML reproduces the committed file byte for byte.

Usage
-----
    python tools/generate_catalog.py [../shared/jetti-openapi.yaml] [jetti_frames/catalog.json]
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT.parent / "shared" / "jetti-openapi.yaml"
DEFAULT_OUT = ROOT / "jetti_frames" / "catalog.json"
LIST_PATH = re.compile(r"^/(?P<url>[a-z0-9-]+)\.json$")
ANY_JSON = {"object", "array", "boolean", "integer", "number", "string"}

#: A field is a credential when its last word (camelCase split) is one of these ...
SECRET_NOUNS = frozenset({"token", "secret", "password", "passwd", "passphrase", "credential",
                          "credentials", "apikey"})
#: ... or its last two words are one of these (``apiKey``, ``consumerKey``, ``s3Key``, ...).
SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"),
                          ("secret", "key"), ("consumer", "key"), ("signing", "key"),
                          ("s3", "key"), ("client", "secret"), ("refresh", "token")})
#: Matching names that are not secrets: Shippo's service-level token is a public code
#: (``usps_priority``) naming a shipping service.
NOT_SECRET = frozenset({"serviceLevelToken"})
#: Only values that can hold a secret: a flag (``passwordSet``) or a count is not one.
SECRET_KINDS = frozenset({"string", "json"})
_WORD = re.compile(r"[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*(?![a-z])|[0-9]+[a-z]*")


def pascal(kebab: str) -> str:
    """``purchase-status`` -> ``PurchaseStatus``."""
    return "".join(part.capitalize() for part in kebab.split("-"))


def kebab_from_camel(camel: str) -> str:
    """``dropshipProvider`` -> ``dropship-provider``."""
    return re.sub(r"(?<!^)([A-Z])", r"-\1", camel).lower()


def field_kind(prop: dict[str, Any]) -> str:
    """The catalogue's own type vocabulary, one word per field."""
    if "anyOf" in prop:
        types = {alt.get("type") for alt in prop["anyOf"]}
        return "json" if types >= ANY_JSON or len(types) > 1 else str(types.pop())
    kind = prop.get("type", "json")
    if kind == "string" and prop.get("format") == "date-time":
        return "datetime"
    if kind == "string" and "enum" in prop:
        return "enum"
    return str(kind)


def words(text: str) -> list[str]:
    """Lower-case words of a camelCase name or a phrase.

    >>> words("taxJarToken"), words("s3Secret"), words("Api key"), words("passwordResetAt")
    (['tax', 'jar', 'token'], ['s3', 'secret'], ['api', 'key'], ['password', 'reset', 'at'])
    """
    return [w.lower() for part in re.split(r"[^A-Za-z0-9]+", text) for w in _WORD.findall(part)]


def _names_a_secret(parts: list[str]) -> bool:
    """The last word is a secret noun, or the last two words name a key or secret."""
    return bool(parts) and (parts[-1] in SECRET_NOUNS or tuple(parts[-2:]) in SECRET_PAIRS)


def is_credential(name: str, prop: dict[str, Any]) -> bool:
    """Whether a field holds a credential of a connected service, from its name and the spec.

    The head noun decides (the last camelCase word), so ``shippoToken``, ``clientSecret``,
    ``apiPassword`` and ``consumerKey`` are credentials while ``passwordSet`` (a flag),
    ``passwordResetAt``, ``tokenized``, ``credentialCycles`` or ``orderSplittingKey`` are not;
    a short spec description ("Shippo API token") counts like the name.

    >>> [is_credential(n, {"type": "string"}) for n in
    ...  ("shippoToken", "apiKey", "s3Key", "token", "passwordResetAt", "tokenized", "storeHash")]
    [True, True, True, True, False, False, False]
    >>> is_credential("hasPassword", {"type": "boolean"}), is_credential("serviceLevelToken", {})
    (False, False)
    >>> is_credential("shippo", {"type": "string", "description": "Shippo API token"})
    True
    """
    if name in NOT_SECRET or field_kind(prop) not in SECRET_KINDS:
        return False
    described = words(str(prop.get("description", "")))
    return _names_a_secret(words(name)) or (len(described) <= 5 and _names_a_secret(described))


#: The longest description kept (cut at a sentence or word end): a tooltip, not a manual.
DESCRIPTION_CHARS = 200
#: A full stop that ends a sentence (not the one of "e.g." or "i.e.").
SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.\s", re.IGNORECASE)


def description(name: str, prop: dict[str, Any]) -> str | None:
    """The spec's description when it says more than the field's name, shortened.

    Most descriptions only restate the name ("Billing city" for ``billingCity``, "Purchase
    status" for ``purchaseStatusId``); those are dropped.

    >>> description("billingCity", {"description": "Billing city"}) is None
    True
    >>> description("purchaseStatusId", {"description": "Purchase status"}) is None
    True
    >>> description("taxable", {"description": "Whether a tax is charged when sold."})
    'Whether a tax is charged when sold.'
    >>> description("x", {"description": "An error (e.g. a bad name) stops it. " * 9})
    'An error (e.g. a bad name) stops it.'
    """
    text = " ".join(str(prop.get("description") or "").split())
    own = words(name)
    if not text or words(text) in (own, own[:-1] if own[-1:] == ["id"] else own):
        return None
    if len(text) <= DESCRIPTION_CHARS:
        return text
    end = SENTENCE_END.search(text)
    if end and end.start() < DESCRIPTION_CHARS:
        return text[:end.start() + 1]  # the first sentence
    return text[:DESCRIPTION_CHARS].rsplit(" ", 1)[0] + " ..."


def describe_field(name: str, prop: dict[str, Any]) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "kind": field_kind(prop)}
    if is_credential(name, prop):
        field["credential"] = True
    about = description(name, prop)
    if about:
        field["description"] = about
    if "type" in prop:
        field["type"] = prop["type"]
    if "format" in prop:
        field["format"] = prop["format"]
    field["nullable"] = bool(prop.get("nullable", False))
    if "enum" in prop:
        field["enum"] = list(prop["enum"])
    if "default" in prop:
        field["default"] = prop["default"]
    if prop.get("type") == "array" and "items" in prop:
        field["items"] = prop["items"].get("type", "json")
    return field


def list_endpoints(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """``(url_name, schema_name)`` for every GET that returns an array of a schema."""
    found = []
    for path, item in spec["paths"].items():
        match = LIST_PATH.match(path)
        get = item.get("get")
        if not match or not get:
            continue
        schema = get["responses"]["200"]["content"]["application/json"]["schema"]
        if schema.get("type") == "array" and "$ref" in schema.get("items", {}):
            found.append((match["url"], schema["items"]["$ref"].rsplit("/", 1)[-1]))
    return sorted(found)


def build_catalog(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    endpoints = list_endpoints(spec)
    by_schema = {schema: url for url, schema in endpoints}
    resources: dict[str, dict[str, Any]] = {}
    for url, schema in endpoints:
        props = schemas[schema].get("properties", {})
        resources[url] = {
            "url": url,
            "schema": schema,
            "model": pascal(schema),
            "key_one": schema.replace("-", "_"),
            "key_many": url.replace("-", "_"),
            "fields": [describe_field(n, p) for n, p in sorted(props.items())],
            "belongs_to": [],
            "has_many": [],
        }
    for res in resources.values():
        for field in res["fields"]:
            name = field["name"]
            if not name.endswith("Id") or field["kind"] != "integer" or name == "id":
                continue
            target_schema = kebab_from_camel(name[:-2])
            target = by_schema.get(target_schema)
            if target is None:
                continue
            res["belongs_to"].append({"model": resources[target]["model"], "foreign_key": name})
            resources[target]["has_many"].append({"model": res["model"], "foreign_key": name})
    for res in resources.values():
        res["has_many"].sort(key=lambda rel: (rel["model"], rel["foreign_key"]))
    return {
        "source": {
            "title": spec["info"]["title"],
            "version": spec["info"]["version"],
        },
        "resources": [resources[url] for url in sorted(resources)],
    }


def render(catalog: dict[str, Any]) -> str:
    """One line per field and relation: compact, yet readable in a diff."""
    lines = ["{", f' "source": {json.dumps(catalog["source"], sort_keys=True)},', ' "resources": [']
    for i, res in enumerate(catalog["resources"]):
        head = {k: res[k] for k in ("url", "schema", "model", "key_one", "key_many")}
        lines.append("  {" + json.dumps(head, sort_keys=True)[1:-1] + ",")
        for part in ("belongs_to", "has_many", "fields"):
            items = res[part]
            lines.append(f'   "{part}": [' + ("" if items else "],"))
            for j, item in enumerate(items):
                comma = "," if j < len(items) - 1 else ""
                lines.append("    " + json.dumps(item, sort_keys=True) + comma)
            if items:
                lines.append("   ]" + ("," if part != "fields" else ""))
        if not res["fields"]:
            lines[-1] = lines[-1].rstrip(",")
        lines.append("  }" + ("," if i < len(catalog["resources"]) - 1 else ""))
    lines += [" ]", "}"]
    return "\n".join(lines) + "\n"


def credential_fields(catalog: dict[str, Any]) -> list[tuple[str, str]]:
    """``(resource url, field name)`` of every field marked as a credential."""
    return [(res["url"], f["name"]) for res in catalog["resources"]
            for f in res["fields"] if f.get("credential")]


def generate(spec_path: Path) -> str:
    text = spec_path.read_bytes()
    spec = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    catalog = build_catalog(spec)
    catalog["source"]["sha256"] = hashlib.sha256(text).hexdigest()
    return render(catalog)


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    out_path = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUT
    text = generate(spec_path)
    out_path.write_text(text, encoding="utf-8")
    marked = credential_fields(json.loads(text))
    names = sorted({name for _, name in marked})
    print(f"wrote {out_path}: {len(marked)} credential fields on "
          f"{len({url for url, _ in marked})} resources ({', '.join(names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
