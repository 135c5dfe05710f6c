"""The mirror file (``jetti.toml``): read with :mod:`tomllib`, checked whole before any request.

Form::

    root = "data/jetti"              # relative to the file (default "data/jetti"), or a URL
    sweep_every = 1                  # default for datasets that sweep: every N syncs
    keep_versions = 2                # object stores: versions kept after each publish

    [storage_options]                # for a URL root, as pandas takes them (no secrets here:
    endpoint_url = "https://..."     # credentials come from the environment, e.g. AWS_*)

    [accounts.eu]                    # optional; without it: one account from JETTI_API_TOKEN
    token_env = "JETTI_EU_TOKEN"     # the variable holding the token (never the token itself)
    base_url = "https://api.jetti.io/api/"

    [datasets.purchases]
    resource = "purchases"
    include = ["PurchaseStatus", "DropshipProvider"]
    where = { purchaseType = "dropship" }
    deletes = "sweep"                # or "none" (default)
    sweep_every = 7

Every mistake raises :class:`~jetti_frames.errors.JettiConfigError` naming the file, the line
and the key (``jetti.toml:9: datasets.purchases.deletes: ...``).

Examples
--------
>>> config = parse_config('''
... [datasets.providers]
... resource = "dropship-providers"
... ''', environ={"JETTI_API_TOKEN": "t"})
>>> config.datasets[0].name, config.accounts[0].name, config.multi_account
('providers', 'default', False)
>>> parse_config('[datasets.p]\\nresource = "purchases"\\ndeletes = "always"\\n',
...              environ={"JETTI_API_TOKEN": "t"})
Traceback (most recent call last):
...
jetti_frames.errors.JettiConfigError: jetti.toml:3: datasets.p.deletes: must be "sweep" or \
"none", not 'always'
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import JettiConfigError, JettiError

__all__ = ["DEFAULT_FILE", "Account", "Dataset", "MirrorConfig", "load_config", "parse_config"]

DEFAULT_FILE = "jetti.toml"
DEFAULT_ROOT = "data/jetti"
DEFAULT_ACCOUNT = "default"
TOKEN_ENV, BASE_URL_ENV = "JETTI_API_TOKEN", "JETTI_BASE_URL"

_TOP_KEYS = {"root", "sweep_every", "keep_versions", "storage_options", "accounts", "datasets"}
_ACCOUNT_KEYS = {"token_env", "base_url", "get_rate", "page_size"}
_DATASET_KEYS = {"resource", "where", "attributes", "include", "partition_by", "deletes",
                 "sweep_every"}
_SECRET_KEYS = {"token", "api_token", "password", "secret"}
#: storage_options keys that hold credentials (they come from the environment instead).
_STORAGE_SECRETS = {"key", "secret", "token", "password", "account_key", "sas_token",
                    "client_secret", "session_token", "aws_secret_access_key",
                    "aws_access_key_id", "aws_session_token", "connection_string",
                    "credentials"}
_DATASET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")
_RESERVED = {"sync_runs"}


@dataclass(frozen=True)
class Account:
    """One Jetti account: its name, the variable holding its token, its base URL."""

    name: str
    token_env: str
    base_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # get_rate, page_size

    def token(self, environ: Mapping[str, str] | None = None) -> str:
        """The token, read from the environment now (never stored)."""
        return (os.environ if environ is None else environ).get(self.token_env, "")


@dataclass(frozen=True)
class Dataset:
    """One named query of the mirror and its policies."""

    name: str
    resource: str
    where: Mapping[str, Any] | None = None
    attributes: tuple[str, ...] | None = None
    include: Any = None
    partition_by: str | tuple[str, str] | None = None
    deletes: str = "none"  # "sweep" | "none"
    sweep_every: int = 1

    @property
    def query(self) -> dict[str, Any]:
        """Keyword arguments of :func:`jetti_frames.snapshot` for this dataset."""
        return {"where": dict(self.where) if self.where else None,
                "attributes": list(self.attributes) if self.attributes else None,
                "include": self.include}


@dataclass(frozen=True)
class MirrorConfig:
    """A checked mirror file. ``root`` is a local folder, or a URL (``s3://...``) as text."""

    path: Path
    root: Path | str
    accounts: tuple[Account, ...]
    datasets: tuple[Dataset, ...]
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    keep_versions: int = 2

    @property
    def remote(self) -> bool:
        """True when the root is a URL (an object store)."""
        return isinstance(self.root, str)

    @property
    def options(self) -> dict[str, Any] | None:
        """The ``storage_options`` the snapshot functions take (``None`` for a local root)."""
        return dict(self.storage_options) if self.remote else None

    @property
    def multi_account(self) -> bool:
        """True when the file names several accounts (the views gain an ``account`` column)."""
        return len(self.accounts) > 1

    def folder(self, account: Account, dataset: Dataset) -> Path | str:
        """Where a dataset's snapshot lives: ``root/<dataset>`` or ``root/<account>/<dataset>``."""
        relative = self.relative(account, dataset)
        return f"{self.root}/{relative}" if isinstance(self.root, str) else self.root / relative

    def relative(self, account: Account, dataset: Dataset) -> str:
        """:meth:`folder` relative to the root, with ``/`` (what the DuckDB views name)."""
        return f"{account.name}/{dataset.name}" if self.multi_account else dataset.name


def load_config(path: str | os.PathLike[str] = DEFAULT_FILE, *,
                environ: Mapping[str, str] | None = None) -> MirrorConfig:
    """Read and check a mirror file; see :mod:`jetti_frames.mirror.config` for its form.

    Raises
    ------
    JettiConfigError
        A missing or unreadable file, bad TOML, an unknown or badly typed key, a query the
        catalogue refuses, a token written into the file or an account whose variable is unset.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise JettiConfigError(f"cannot read the mirror file {file}: "
                               f"{exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise JettiConfigError(f"{file.name}: not UTF-8 text") from None
    return parse_config(text, path=file, environ=environ)


def parse_config(text: str, *, path: str | os.PathLike[str] = DEFAULT_FILE,
                 environ: Mapping[str, str] | None = None) -> MirrorConfig:
    """Check the text of a mirror file (``path`` names it in errors and anchors ``root``)."""
    file = Path(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JettiConfigError(f"{file.name}: not valid TOML: {exc}") from None
    return _Checker(text, file, os.environ if environ is None else environ).check(raw)


class _Checker:
    """Checks a parsed file, pointing each error at its key and line."""

    def __init__(self, text: str, file: Path, environ: Mapping[str, str]) -> None:
        self.lines = text.splitlines()
        self.file = file
        self.environ = environ

    def fail(self, key: str, message: str) -> JettiConfigError:
        line = _line_of(self.lines, key)
        where = f"{self.file.name}:{line}" if line else self.file.name
        return JettiConfigError(f"{where}: {key}: {message}")

    def check(self, raw: dict[str, Any]) -> MirrorConfig:
        self.unknown(raw, _TOP_KEYS, "")
        root = raw.get("root", DEFAULT_ROOT)
        if not isinstance(root, str) or not root.strip():
            raise self.fail("root", f"must be a folder path (a string), not {root!r}")
        every = self.whole(raw, "sweep_every", "sweep_every", 1)
        accounts = self.accounts(raw.get("accounts"))
        tables = raw.get("datasets")
        if not isinstance(tables, dict) or not tables:
            raise self.fail("datasets", "the file needs at least one [datasets.NAME] table")
        datasets = tuple(self.dataset(name, spec, every) for name, spec in tables.items())
        keep = self.whole(raw, "keep_versions", "keep_versions", 2)
        options = raw.get("storage_options", {})
        if not isinstance(options, dict):
            raise self.fail("storage_options", "must be a table ([storage_options])")
        for key in options:
            if key.lower() in _STORAGE_SECRETS:
                raise self.fail(f"storage_options.{key}", "credentials never live in the mirror "
                                "file: the filesystem reads them from the environment (e.g. "
                                "AWS_ACCESS_KEY_ID), or pass sync(storage_options=...)")
        if root.startswith("file://"):
            root = root[len("file://"):]
        if "://" in root:
            return MirrorConfig(self.file, root.rstrip("/"), accounts, datasets, options, keep)
        if options:
            raise self.fail("storage_options", "only for a root that is a URL (s3://...)")
        base = self.file.parent if self.file.parent != Path("") else Path(".")
        root_path = Path(os.path.expanduser(root))
        return MirrorConfig(self.file, (base / root_path).resolve() if not
                            root_path.is_absolute() else root_path, accounts, datasets, {},
                            keep)

    def unknown(self, table: Mapping[str, Any], known: set[str], prefix: str) -> None:
        for key in table:
            if key in _SECRET_KEYS:
                raise self.fail(prefix + key, "tokens never live in the mirror file: put the "
                                "token in an environment variable and name it with token_env")
            if key not in known:
                raise self.fail(prefix + key, f"unknown key; expected one of "
                                              f"{', '.join(sorted(known))}")

    def whole(self, table: Mapping[str, Any], key: str, name: str, default: int) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(name, f"must be a whole number >= 1, not {value!r}")
        return value

    def accounts(self, raw: Any) -> tuple[Account, ...]:
        if raw is None:
            self.need_token("accounts", TOKEN_ENV)
            return (Account(DEFAULT_ACCOUNT, TOKEN_ENV, self.environ.get(BASE_URL_ENV) or None),)
        if not isinstance(raw, dict) or not raw:
            raise self.fail("accounts", "must hold [accounts.NAME] tables")
        out = []
        for name, spec in raw.items():
            key = f"accounts.{name}"
            if not _ACCOUNT_NAME.match(name):
                raise self.fail(key, "an account name is letters, digits, '_' and '-'")
            if not isinstance(spec, dict):
                raise self.fail(key, "must be a table ([accounts.NAME])")
            self.unknown(spec, _ACCOUNT_KEYS, key + ".")
            env = spec.get("token_env", TOKEN_ENV)
            if not isinstance(env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
                raise self.fail(key + ".token_env", "must name an environment variable")
            self.need_token(key + ".token_env", env)
            base_url = spec.get("base_url")
            if base_url is not None and not isinstance(base_url, str):
                raise self.fail(key + ".base_url", "must be a URL string")
            options: dict[str, Any] = {}
            if "get_rate" in spec:
                rate = spec["get_rate"]
                if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
                    raise self.fail(key + ".get_rate", f"must be a number > 0, not {rate!r}")
                options["get_rate"] = float(rate)
            if "page_size" in spec:
                options["page_size"] = self.whole(spec, "page_size", key + ".page_size", 1)
            account = Account(name, env, base_url, options)
            self.settings(key, account)
            out.append(account)
        return tuple(out)

    def need_token(self, key: str, env: str) -> None:
        if not self.environ.get(env):
            raise self.fail(key, f"the environment variable {env} holding the token is not set")

    def settings(self, key: str, account: Account) -> None:
        from ..settings import Settings

        try:
            Settings(base_url=account.base_url or Settings.base_url, **account.options)
        except JettiConfigError as exc:
            raise self.fail(key + ".base_url" if account.base_url else key, str(exc)) from None

    def dataset(self, name: str, spec: Any, every: int) -> Dataset:
        key = f"datasets.{name}"
        if not _DATASET_NAME.match(name) or name in _RESERVED:
            raise self.fail(key, "a dataset name is a SQL name (letters, digits, '_'; not "
                                 "starting with a digit) and not 'sync_runs'")
        if not isinstance(spec, dict):
            raise self.fail(key, "must be a table ([datasets.NAME])")
        self.unknown(spec, _DATASET_KEYS, key + ".")
        resource = spec.get("resource")
        if not isinstance(resource, str):
            raise self.fail(key, "needs resource = \"...\" (e.g. \"purchases\")")
        where, attributes, include = spec.get("where"), spec.get("attributes"), spec.get("include")
        if where is not None and not isinstance(where, dict):
            raise self.fail(key + ".where", "must be a table, e.g. where = { purchaseType = "
                                            "\"dropship\" }")
        if attributes is not None:
            if not _strings(attributes):
                raise self.fail(key + ".attributes", "must be a list of field names")
            missing = [a for a in ("id", "updatedAt") if a not in attributes]
            if missing:
                raise self.fail(key + ".attributes", f"a mirror refreshes by id and updatedAt; "
                                                     f"add {', '.join(missing)}")
        self.query(key, resource, where, attributes, include)
        partition = spec.get("partition_by")
        if partition is not None:
            if isinstance(partition, list) and len(partition) == 2 and _strings(partition):
                partition = (partition[0], partition[1])
            elif not isinstance(partition, str):
                raise self.fail(key + ".partition_by", "a column name, or [column, unit] with "
                                                       "unit year, month or day")
        deletes = spec.get("deletes", "none")
        if deletes not in ("sweep", "none"):
            raise self.fail(key + ".deletes", f"must be \"sweep\" or \"none\", not {deletes!r}")
        return Dataset(name, resource, where, tuple(attributes) if attributes else None,
                       include, partition, deletes,
                       self.whole(spec, "sweep_every", key + ".sweep_every", every))

    def query(self, key: str, resource: str, where: Any, attributes: Any, include: Any) -> None:
        from ..query import build_query

        try:
            build_query(resource, where=where, attributes=attributes, include=include)
        except JettiError as exc:
            raise self.fail(key, str(exc)) from None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _line_of(lines: Sequence[str], key: str) -> int | None:
    """The 1-based line of ``key`` (dotted: ``datasets.p.deletes``), or of its table."""
    parts = key.split(".")
    header = re.compile(r"\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
    for split in range(len(parts), -1, -1):
        table, leaf = parts[:split], parts[split:]
        current: list[str] = []
        for number, line in enumerate(lines, 1):
            match = header.match(line)
            if match and not line.lstrip().startswith("[["):
                current = [p.strip().strip('"\'') for p in match.group(1).split(".")]
                if current == parts and not leaf:
                    return number
                continue
            if current == table and leaf and re.match(
                    rf"\s*[\"']?{re.escape(leaf[0])}[\"']?\s*=", line):
                return number
    return None
