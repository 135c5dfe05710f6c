"""Every default of the toolkit, in one frozen settings object.

Values come from keyword arguments first, then ``JETTI_*`` environment variables, then the
defaults below.

Examples
--------
>>> from jetti_frames.settings import Settings
>>> s = Settings.from_env(token="t0ken", base_url="http://127.0.0.1:8000/api/")
>>> s.base_url
'http://127.0.0.1:8000/api/'
>>> "t0ken" in repr(s)
False
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from platformdirs import user_cache_path

DEFAULT_BASE_URL = "https://api.jetti.io/api/"
#: The token the embedded sandbox accepts unless told otherwise.
SANDBOX_TOKEN = "sandbox-token"
#: Jetti's leaky bucket: GET requests per second and bucket capacity.
GET_RATE = 2.0
GET_BURST = 2
#: Non-GET requests per second.
WRITE_RATE = 1.0
#: The largest ``limit`` seen honoured by the live service; a server may cap it lower, silently.
DEFAULT_PAGE_SIZE = 100
#: Safe with every qs version: qs turns longer arrays into objects (see the API notes).
MAX_ARRAY = 20
#: Cached responses older than this are fetched again (seconds); ``refresh=True`` always does.
DEFAULT_CACHE_EXPIRE = 3600


def default_cache_path() -> Path:
    """``<user cache dir>/jetti-frames/http-cache.sqlite``."""
    return user_cache_path("jetti-frames") / "http-cache.sqlite"


@dataclass(frozen=True)
class Settings:
    """Connection, cache, paging and retry settings.

    The token is kept out of ``repr`` so that it never lands in a log line or a traceback.
    """

    base_url: str = DEFAULT_BASE_URL
    token: str | None = field(default=None, repr=False)
    page_size: int = DEFAULT_PAGE_SIZE
    cache_path: Path | None = None  # None: default_cache_path(); use cache=False to disable
    cache: bool = True
    cache_expire: float = DEFAULT_CACHE_EXPIRE
    get_rate: float = GET_RATE
    get_burst: int = GET_BURST
    write_rate: float = WRITE_RATE
    max_in_flight: int = 8
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 0.5
    max_array: int = MAX_ARRAY

    ENV: ClassVar[dict[str, str]] = {
        "base_url": "JETTI_BASE_URL",
        "token": "JETTI_API_TOKEN",
        "cache_path": "JETTI_CACHE_PATH",
        "cache_expire": "JETTI_CACHE_EXPIRE",
        "page_size": "JETTI_PAGE_SIZE",
    }

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from keyword arguments, then ``JETTI_*`` variables, then defaults."""
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in cls.ENV.items():
            raw = os.environ.get(var)
            if raw:
                values[name] = _convert(types[name], raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("cache_path") is not None:
            values["cache_path"] = Path(values["cache_path"]).expanduser()
        base = values.get("base_url")
        if base and not base.endswith("/"):
            values["base_url"] = base + "/"
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some values changed."""
        return replace(self, **changes)

    @property
    def resolved_cache_path(self) -> Path:
        return self.cache_path if self.cache_path is not None else default_cache_path()


def _convert(kind: Any, raw: str) -> Any:
    text = str(kind)
    if "int" in text:
        return int(raw)
    if "float" in text:
        return float(raw)
    return raw
