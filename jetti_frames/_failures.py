"""Why a request failed, and how long a 429 asks to wait (see :mod:`jetti_frames.transport`).

Examples
--------
>>> failure_cause(requests.exceptions.ConnectTimeout())
'timeout'
"""

from __future__ import annotations

import contextlib
import socket
import time
from email.utils import parsedate_to_datetime

import requests
from urllib3.exceptions import NameResolutionError

__all__ = ["CAUSES", "FAST_FAIL", "failure_cause", "retry_after"]

#: Failures that no retry cures soon: tried this many times at most.
FAST_FAIL = {"name resolution": 2, "refused": 2}
CAUSES = {
    "name resolution": "the host name does not resolve (check base_url and the network)",
    "refused": "the connection was refused (is the server running? check base_url)",
    "timeout": "no answer in time (raise timeout=, or check the network)",
    "TLS": "the TLS handshake failed (certificate, or a proxy in between?)",
    "proxy": "the proxy failed (check HTTP_PROXY / HTTPS_PROXY)",
    "dropped": "the connection dropped before the answer was complete",
    "connection": "the connection failed",
}


def retry_after(response: requests.Response) -> float:
    """Seconds to wait after a 429: ``Retry-After`` (seconds or HTTP date), or the exact
    ``X-RateLimit-Reset`` when it is a plausible delay no longer than ``Retry-After``."""
    raw = response.headers.get("Retry-After")
    after: float | None = None
    if raw:
        try:
            after = float(raw)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                after = parsedate_to_datetime(raw).timestamp() - time.time()
    with contextlib.suppress(TypeError, ValueError):
        reset = float(response.headers.get("X-RateLimit-Reset", ""))
        if 0 < reset <= (after if after is not None else 60):
            after = reset
    return min(max(after if after is not None else 1.0, 0.05), 120.0)


def failure_cause(exc: BaseException) -> str:
    """Why a request got no answer: a key of ``CAUSES``, found along the exception chain.

    Examples
    --------
    >>> failure_cause(requests.ConnectionError(ConnectionRefusedError(111, "refused")))
    'refused'
    >>> failure_cause(requests.exceptions.ReadTimeout())
    'timeout'
    """
    if isinstance(exc, requests.exceptions.ProxyError):
        return "proxy"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    seen: list[BaseException] = [exc]
    for err in seen:  # grows while walked: args, reason, __cause__, __context__
        if isinstance(err, (NameResolutionError, socket.gaierror)):
            return "name resolution"
        if isinstance(err, ConnectionRefusedError):
            return "refused"
        nested = [*err.args, getattr(err, "reason", None), err.__cause__, err.__context__]
        seen.extend(e for e in nested if isinstance(e, BaseException) and e not in seen)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        return "dropped"
    return "connection"
