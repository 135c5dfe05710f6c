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


class JettiHTTPError(JettiError):
    """The server answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None,
                 url: str | None = None, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.url = url
        self.problem = problem or {}


class JettiAuthError(JettiHTTPError, PermissionError):
    """401 or 403: the token is missing, wrong or lacks the permission."""


class JettiNotFoundError(JettiHTTPError, KeyError):
    """404: unknown resource or id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class JettiRateLimitError(JettiHTTPError):
    """429 answers kept coming after every allowed retry."""


class JettiServerError(JettiHTTPError):
    """5xx answers or dropped connections after every allowed retry."""


class SnapshotError(JettiError, OSError):
    """A parquet snapshot is missing, incomplete or cannot be written."""
