"""The progress bar of a read: pages with a total and an ETA once the pagers can estimate
them, the rows so far, and a one-line summary left behind when the read is done.

A terminal or a notebook (``tqdm.auto``); nothing where neither is (``disable=None``).

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> with ReadBar("purchases", show=True, file=out, force=True) as bar:
...     bar.update(1); bar.expect(3); bar.update(2); bar.rows(250, cache_hits=0)
...     bar.finish(rows=250, requests=3, cache_hits=0, status_429=0, seconds=1.5)
>>> out.getvalue().splitlines()[-1].split("|")[-1].strip()
'3/3 [..., 250 rows, 3 requests, 0 cache hits, 0 x 429, 1.5 s]'
"""

from __future__ import annotations

from typing import IO, Any

from tqdm.auto import tqdm

__all__ = ["ReadBar", "summary"]


def summary(*, rows: int, requests: int, cache_hits: int, status_429: int,
            seconds: float) -> str:
    """The one line a read leaves behind.

    >>> summary(rows=3000, requests=32, cache_hits=0, status_429=1, seconds=16.04)
    '3,000 rows, 32 requests, 0 cache hits, 1 x 429, 16.0 s'
    """
    return (f"{rows:,} rows, {requests:,} requests, {cache_hits:,} cache hits, "
            f"{status_429:,} x 429, {seconds:.1f} s")


class ReadBar:
    """A tqdm bar counting pages (:meth:`update` is tqdm's), with the totals a read learns.

    Parameters
    ----------
    desc : str
        The resource read.
    show : bool
        Show it where a terminal or a notebook is.
    file : file, optional
        Where to write (default ``sys.stderr``).
    force : bool
        Show it even where the file is no terminal.
    """

    def __init__(self, desc: str, *, show: bool, file: IO[str] | None = None,
                 force: bool = False) -> None:
        disable = (False if force else None) if show else True
        self.bar: Any = tqdm(desc=desc, unit=" pages", disable=disable, leave=False, file=file)
        self.disable = bool(self.bar.disable)

    def __enter__(self) -> ReadBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def rows(self, rows: int, *, cache_hits: int) -> None:
        """The distinct rows so far (shown at the next redraw)."""
        if not self.disable:
            self.bar.set_postfix(rows=rows, cache_hits=cache_hits, refresh=False)

    def expect(self, pages: int | None) -> None:
        """The pages the read is now expected to take in all (gives the bar a total and an
        ETA); ``None``: not known yet."""
        if self.disable or pages is None:
            return
        total = max(pages, self.bar.n)
        if total != self.bar.total:
            self.bar.total = total
            self.bar.refresh()

    def finish(self, **stats: Any) -> None:
        """Complete the bar at the pages read and leave it with :func:`summary` of ``stats``."""
        if self.disable:
            return
        self.bar.total = self.bar.n
        self.bar.set_postfix_str(summary(**stats), refresh=False)
        self.bar.leave = True
        self.bar.close()
