"""One exception tree for the whole toolkit.

Every error derives from :class:`JettiError` and, where one fits, from the matching built-in, so
``except ValueError`` or ``except KeyError`` keeps working.  HTTP errors carry ``status``,
``detail`` (from the server's problem document) and ``url`` (never with the token in it).

Examples
--------
>>> from jetti_frames.errors import JettiQueryError, JettiError
>>> issubclass(JettiQueryError, ValueError) and issubclass(JettiQueryError, JettiError)
True
"""

from __future__ import annotations

from typing import Any


class JettiError(Exception):
    """Root of every error raised by jetti-frames."""


class JettiConfigError(JettiError, ValueError):
    """A setting that cannot work (a base URL that is not http(s), a rate <= 0, a non-numeric
    ``JETTI_*`` variable, ...), raised when the settings are made."""


class JettiQueryError(JettiError, ValueError):
    """A query that cannot be right: unknown resource, field, operator, model or a bad value.

    Raised locally before any request when it can be detected, otherwise from a 400 answer.
    """

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None,
                 url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.url = url


class JettiDataError(JettiError, ValueError):
    """Data that cannot be read as its catalogue kind says (a value from the server or given to
    a frame builder), or pages that do not come back in the order asked for."""


class JettiOrderError(JettiDataError):
    """The server orders the values of a read's text ``order`` attribute in a way the read can
    neither learn nor reproduce, so the order of a result put together locally is unknown."""


class JettiHTTPError(JettiError):
    """The server answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None,
                 url: str | None = None, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.url = url
        self.problem = problem or {}


class JettiBadRequestError(JettiQueryError, JettiHTTPError):
    """400: the server refused the query; both a :class:`JettiQueryError` and a
    :class:`JettiHTTPError`."""

    def __init__(self, message: str, *, status: int | None = 400, detail: str | None = None,
                 url: str | None = None, problem: dict[str, Any] | None = None) -> None:
        JettiHTTPError.__init__(self, message, status=status, detail=detail, url=url,
                                problem=problem)


class JettiAuthError(JettiHTTPError, PermissionError):
    """401 or 403: the token is missing, wrong or lacks the permission."""


class JettiNotFoundError(JettiHTTPError, KeyError):
    """404: unknown resource or id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class JettiRateLimitError(JettiHTTPError):
    """429 answers kept coming longer than ``rate_limit_wait`` seconds or after every allowed
    retry."""


class JettiServerError(JettiHTTPError):
    """5xx answers, malformed answers or dropped connections after every allowed retry."""


class JettiConnectionError(JettiServerError):
    """No answer: the connection failed.  ``cause`` names why: ``"name resolution"``,
    ``"refused"``, ``"timeout"``, ``"TLS"``, ``"proxy"`` or ``"dropped"``; ``__cause__`` is the
    underlying exception."""

    def __init__(self, message: str, *, cause: str, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.cause = cause


class JettiTimeoutError(JettiError, TimeoutError):
    """A read ran past its ``deadline`` (seconds)."""


class JettiCacheError(JettiError, OSError):
    """The HTTP cache file is damaged or cannot be used."""


class SnapshotError(JettiError, OSError):
    """A parquet snapshot is missing, incomplete or cannot be written."""
