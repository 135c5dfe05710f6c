"""The module-level shortcuts :func:`read_jetti`, :func:`get_jetti`, and :func:`open_client`,
the one way every entry point comes by a :class:`~jetti_frames.client.JettiClient`.

They are re-exported from :mod:`jetti_frames.client` (and :mod:`jetti_frames`), where their
documentation is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, overload

import pandas as pd

from .errors import JettiConfigError
from .schema import DEFAULT_SEP, DtypeBackend

if TYPE_CHECKING:
    from .client import Explanation, IncludeMode, JettiClient

__all__ = ["get_jetti", "open_client", "read_jetti"]


@contextmanager
def open_client(client: JettiClient | None = None, /, **options: Any) -> Iterator[JettiClient]:
    """The client an entry point works with, closed afterwards when it was made here.

    The one way ``read_jetti``, ``get_jetti``, the snapshot functions, the command line and
    the query form come by a client: ``client`` itself when given (its owner closes it), else a
    new :class:`JettiClient` made from ``options``, then the ``JETTI_*`` variables, then the
    defaults (an option that is ``None`` is left to the variables).

    Raises
    ------
    JettiConfigError
        Options next to a given ``client`` (they would be ignored).

    Examples
    --------
    >>> with open_client(token="t", base_url="http://127.0.0.1:9/api/", cache=False) as c:
    ...     c.base_url
    'http://127.0.0.1:9/api/'
    >>> with open_client(c, token="other"):
    ...     pass
    Traceback (most recent call last):
    ...
    jetti_frames.errors.JettiConfigError: pass token only when no client is given
    """
    if client is not None:
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise JettiConfigError(f"pass {', '.join(given)} only when no client is given")
        yield client
        return
    from .client import JettiClient  # here: jetti_frames.client imports this module

    with JettiClient(**{k: v for k, v in options.items() if v is not None}) as made:
        yield made


@overload
def read_jetti(resource: str, *, client: JettiClient | None = ..., token: str | None = ...,
               base_url: str | None = ..., where: Mapping[str, Any] | None = ...,
               attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
               limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
               dtype_backend: DtypeBackend = ..., include_mode: IncludeMode = ...,
               sep: str = ..., progress: bool | None = ..., explain: Literal[True],
               consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
               ) -> Explanation: ...

@overload
def read_jetti(resource: str, *, client: JettiClient | None = ..., token: str | None = ...,
               base_url: str | None = ..., where: Mapping[str, Any] | None = ...,
               attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
               limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
               dtype_backend: DtypeBackend = ..., include_mode: Literal["tables"],
               sep: str = ..., progress: bool | None = ..., explain: Literal[False] = ...,
               consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
               ) -> dict[str, pd.DataFrame]: ...

@overload
def read_jetti(resource: str, *, client: JettiClient | None = ..., token: str | None = ...,
               base_url: str | None = ..., where: Mapping[str, Any] | None = ...,
               attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
               limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
               dtype_backend: DtypeBackend = ..., include_mode: Literal["joined"] = ...,
               sep: str = ..., progress: bool | None = ..., explain: Literal[False] = ...,
               consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
               ) -> pd.DataFrame: ...

@overload
def read_jetti(resource: str, *, client: JettiClient | None = ..., token: str | None = ...,
               base_url: str | None = ..., where: Mapping[str, Any] | None = ...,
               attributes: Sequence[str] | None = ..., include: Any = ..., order: Any = ...,
               limit: int | None = ..., page_size: int | None = ..., refresh: bool = ...,
               dtype_backend: DtypeBackend = ..., include_mode: IncludeMode = ...,
               sep: str = ..., progress: bool | None = ..., explain: bool = ...,
               consistent: bool = ..., on_page: Callable[[int, int], Any] | None = ...
               ) -> pd.DataFrame | dict[str, pd.DataFrame] | Explanation: ...


def read_jetti(resource: str, *, client: JettiClient | None = None, token: str | None = None,
               base_url: str | None = None, where: Mapping[str, Any] | None = None,
               attributes: Sequence[str] | None = None, include: Any = None, order: Any = None,
               limit: int | None = None, page_size: int | None = None, refresh: bool = False,
               dtype_backend: DtypeBackend = "numpy_nullable",
               include_mode: IncludeMode = "joined", sep: str = DEFAULT_SEP,
               progress: bool | None = None, explain: bool = False, consistent: bool = True,
               on_page: Callable[[int, int], Any] | None = None,
               ) -> pd.DataFrame | dict[str, pd.DataFrame] | Explanation:
    """Read a Jetti list endpoint into a typed DataFrame; see :meth:`JettiClient.read`.

    Uses ``client`` if given, else a client made for this read from ``token`` and ``base_url``
    (or ``JETTI_API_TOKEN`` / ``JETTI_BASE_URL``) and closed after it.

    Parameters
    ----------
    resource : str
        Any list endpoint: ``"purchases"``, ``"purchase-items"``, ...
    client : JettiClient, optional
        Read with this client (its token, cache and settings).
    token, base_url : str, optional
        For the client made when no ``client`` is given.
    where, attributes, include, order, limit, page_size, refresh, dtype_backend, include_mode, \
sep, progress, explain, consistent, on_page
        As in :meth:`JettiClient.read`.

    Returns
    -------
    pandas.DataFrame
        A dict of DataFrames with ``include_mode="tables"``, an :class:`Explanation` with
        ``explain=True``.

    Examples
    --------
    >>> from jetti_frames.sandbox import serve
    >>> with serve(rate="off", purchases=300) as base_url:
    ...     df = read_jetti("purchases", token="sandbox-token", base_url=base_url,
    ...                     where={"purchaseType": ["dropship", "automated_dropship"]},
    ...                     include=["PurchaseStatus", "DropshipProvider"], progress=False)
    >>> {"purchase_status_name", "dropship_provider_name"} <= set(df.columns)
    True
    >>> str(df["createdAt"].dtype), str(df["purchaseType"].dtype)
    ('datetime64[us, UTC]', 'category')
    """
    with open_client(client, token=token, base_url=base_url) as reader:
        return reader.read(
            resource, where=where, attributes=attributes, include=include, order=order,
            limit=limit, page_size=page_size, refresh=refresh, dtype_backend=dtype_backend,
            include_mode=include_mode, sep=sep, progress=progress, explain=explain,
            consistent=consistent, on_page=on_page)


@overload
def get_jetti(resource: str, id: int | str, *, include: Any = ...,
              client: JettiClient | None = ..., token: str | None = ...,
              base_url: str | None = ..., refresh: bool = ...,
              as_frame: Literal[False] = ...) -> dict[str, Any]: ...

@overload
def get_jetti(resource: str, id: int | str, *, include: Any = ...,
              client: JettiClient | None = ..., token: str | None = ...,
              base_url: str | None = ..., refresh: bool = ...,
              as_frame: Literal[True]) -> pd.DataFrame: ...

@overload
def get_jetti(resource: str, id: int | str, *, include: Any = ...,
              client: JettiClient | None = ..., token: str | None = ...,
              base_url: str | None = ..., refresh: bool = ...,
              as_frame: bool) -> dict[str, Any] | pd.DataFrame: ...


def get_jetti(resource: str, id: int | str, *, include: Any = None,
              client: JettiClient | None = None, token: str | None = None,
              base_url: str | None = None, refresh: bool = False,
              as_frame: bool = False) -> dict[str, Any] | pd.DataFrame:
    """One record: a dict, or with ``as_frame=True`` a typed frame equal to
    ``read_jetti(resource, where={"id": id}, include=include)``; see :meth:`JettiClient.get`.
    """
    with open_client(client, token=token, base_url=base_url) as reader:
        return reader.get(resource, id, include=include, refresh=refresh, as_frame=as_frame)
