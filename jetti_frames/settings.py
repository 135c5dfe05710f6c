r"""Every default of the toolkit, in one frozen settings object.

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
>>> Settings.from_env(token="t0ken\n").token  # surrounding whitespace is dropped
't0ken'
>>> Settings(get_rate=0)
Traceback (most recent call last):
...
jetti_frames.errors.JettiConfigError: get_rate must be a number > 0, not 0
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from platformdirs import user_cache_path

from .errors import JettiAuthError, JettiConfigError

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
#: The most seconds one request waits out 429 answers before it raises.
DEFAULT_RATE_LIMIT_WAIT = 300.0
#: The cache file's name when the cache is given as a directory.
CACHE_FILE = "http-cache.sqlite"


def default_cache_path() -> Path:
    """``<user cache dir>/jetti-frames/http-cache.sqlite``."""
    return user_cache_path("jetti-frames") / CACHE_FILE


def cache_file(where: str | os.PathLike[str]) -> Path:
    """The cache file for ``cache=where``: a directory (existing, or written with a trailing
    separator) holds ``http-cache.sqlite``; anything else is the file itself.

    Examples
    --------
    >>> cache_file("some/dir/").as_posix(), cache_file("~/c.sqlite").name
    ('some/dir/http-cache.sqlite', 'c.sqlite')
    """
    text = os.fspath(where)
    path = Path(text).expanduser()
    if text.endswith(("/", os.sep)) or path.is_dir():
        return path / CACHE_FILE
    return path


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
    deadline: float | None = None  # seconds one read (one paging run) may take; None: no limit
    rate_limit_wait: float = DEFAULT_RATE_LIMIT_WAIT  # seconds one request may wait out 429s

    ENV: ClassVar[dict[str, str]] = {
        "base_url": "JETTI_BASE_URL",
        "token": "JETTI_API_TOKEN",
        "cache_path": "JETTI_CACHE_PATH",
        "cache_expire": "JETTI_CACHE_EXPIRE",
        "page_size": "JETTI_PAGE_SIZE",
        "deadline": "JETTI_DEADLINE",
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", clean_token(self.token))
        if not _is_http_url(str(self.base_url)):
            raise JettiConfigError(f"base_url must be an http(s) URL, not {self.base_url!r}")
        for name, low, strict in _BOUNDS:
            value = getattr(self, name)
            if value is None and name == "deadline":
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or math.isnan(value) or value < low or (strict and value == low)):
                sign = ">" if strict else ">="
                raise JettiConfigError(f"{name} must be a number {sign} {low}, not {value!r}")
        for name in ("max_in_flight", "page_size", "retries", "get_burst", "max_array"):
            if not isinstance(getattr(self, name), int):
                raise JettiConfigError(f"{name} must be a whole number, "
                                       f"not {getattr(self, name)!r}")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from keyword arguments, then ``JETTI_*`` variables, then defaults."""
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in cls.ENV.items():
            raw = os.environ.get(var)
            if raw:
                values[name] = _convert(types[name], raw, var)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("cache_path") is not None:
            values["cache_path"] = cache_file(values["cache_path"])
        base = values.get("base_url")
        if base and not base.endswith("/"):
            values["base_url"] = base + "/"
        return cls(**values)

    @property
    def resolved_cache_path(self) -> Path:
        return cache_file(self.cache_path) if self.cache_path is not None \
            else default_cache_path()


#: ``(field, lowest value, lowest value excluded)`` checked when settings are made.
_BOUNDS = (("get_rate", 0, True), ("write_rate", 0, True), ("timeout", 0, True),
           ("max_in_flight", 1, False), ("page_size", 1, False), ("get_burst", 1, False),
           ("max_array", 1, False), ("retries", 0, False), ("backoff", 0, False),
           ("cache_expire", -1, False), ("deadline", 0, True), ("rate_limit_wait", 0, False))


def _is_http_url(url: str) -> bool:
    """``http://host[:port]/...`` or ``https://...`` with a valid port.

    >>> _is_http_url("https://api.jetti.io/api/"), _is_http_url("http://h:x/"), _is_http_url("h/")
    (True, False, False)
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def clean_token(token: str | None) -> str | None:
    r"""The token without surrounding whitespace; refused (without its value) when it holds a
    control character or a character outside latin-1, which no HTTP header can carry.

    Examples
    --------
    >>> clean_token("  abc\r\n")
    'abc'
    >>> clean_token("a\nb")
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiAuthError: the API token holds a control character ...
    """
    if token is None:
        return None
    token = str(token).strip()
    if any(ord(c) < 32 or 127 <= ord(c) < 160 or ord(c) > 255 for c in token):
        raise JettiAuthError("the API token holds a control character or a character outside "
                             "latin-1 (check how it was copied)")
    return token or None


def _convert(kind: Any, raw: str, var: str) -> Any:
    text = str(kind)
    try:
        if "int" in text:
            return int(raw)
        if "float" in text:
            return float(raw)
    except ValueError:
        raise JettiConfigError(f"{var}={raw!r} is not a number") from None
    return raw
