"""The reading machinery behind :class:`~jetti_frames.client.JettiClient`: a plan's pages
pulled through the transport, the first N of an order, the consistency pass, and what each
read cost (:class:`ReadStats`).

:class:`Reading` holds it as methods of the client (it owns the client's transport, settings
and counters); the public methods that call it are in :mod:`jetti_frames.client`.

Examples
--------
>>> stats = ReadStats(requests=3, cache_hits=1)
>>> stats.requests + stats.cache_hits, stats.status_429
(4, 0)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from ._bounded import BoundedPager
from ._build import Order, request_params
from ._collect import Collector, merge, order_kind, sort_records
from ._fanout import Fanout, Stream, at_most, open_streams
from ._pack import MAX_PACKED, LogicSupport, Packed, PackIgnored, is_packed, pack_where
from ._plan import Plan, catch_up_plan, expected_pages, page_query, server_date
from ._progress import ReadBar
from ._text_order import TEXT_KINDS, learn_ranks, ranking_where, representatives
from ._top import TopPager
from ._windows import ValueWindows
from ._wire import encode_checked
from .errors import JettiAuthError, JettiBadRequestError
from .paging import Pager, PageRequest
from .settings import MAX_ARRAY, Settings
from .transport import Transport

__all__ = ["ReadStats", "Reading"]


class _Resize(Exception):
    """Requests of text values must carry fewer: answers were cut at ``cap`` rows (a silent
    page cap), or (``cap`` None) the account does not take ``$or``."""

    def __init__(self, cap: int | None = None) -> None:
        super().__init__(cap)
        self.cap = cap


@dataclass
class ReadStats:
    """What one read (or the client in total) cost.

    ``requests`` left the process; ``cache_hits`` were answered from the HTTP cache;
    ``status_429`` answers made us wait; ``retries`` were resent after a 5xx or a dropped
    connection; ``limiter_wait`` is the seconds spent waiting for the rate limiter;
    ``seconds`` the wall time of the read(s).
    """

    requests: int = 0
    cache_hits: int = 0
    status_429: int = 0
    retries: int = 0
    pages: int = 0
    rows: int = 0
    limiter_wait: float = 0.0
    seconds: float = 0.0


class Reading:
    """The pulling, ordering and accounting of reads, as methods of the client.

    The class that mixes it in sets these attributes in its ``__init__``.
    """

    settings: Settings
    progress: bool
    stats: ReadStats
    last_stats: ReadStats
    _transport: Transport
    _logic: LogicSupport  # whether this account's server takes $or/$and

    def _check_token(self) -> None:
        if not self.settings.token:
            raise JettiAuthError(
                "no API token: pass token=... or set JETTI_API_TOKEN (to try the toolkit "
                "without an account, run a sandbox: jetti_frames.sandbox.serve())")

    # -- pulling ----------------------------------------------------------------------------
    def _pull(self, plan: Plan, *, refresh: bool, bar: Any = None,
              dates: list[str] | None = None,
              late: Callable[[], list[Stream]] | None = None,
              streams: list[Stream] | None = None,
              ) -> Iterator[tuple[Stream, list[dict[str, Any]]]]:
        """Pages of final records with their stream (post-filtered, not deduplicated across
        parts; none for a :class:`TopPager`, whose rows come with its result).

        ``streams`` default to :meth:`_streams`; ``late`` may add streams (the consistency
        pass) once every pager is draining.  When the server ignores (an answer holds records
        not asked for) or refuses (400) the ``$or``/``$and`` of packed requests, the plan is
        read again without them (records already handed out are not repeated) and the account
        is remembered.
        """
        seen: set[Any] = set()
        try:
            for stream, records in self._pull_parts(plan, refresh=refresh, bar=bar, dates=dates,
                                                    late=late, streams=streams):
                seen.update(r.get("id") for r in records)
                yield stream, records
            return
        except (PackIgnored, JettiBadRequestError) as exc:
            if not is_packed(plan.parts):
                raise
            certain = isinstance(exc, PackIgnored)
        account = self._transport.account
        if certain:
            self._logic.refuse(account)
        plan.query, plan.parts = pack_where(plan.query, page_size=plan.page_size, logic=False)
        for stream, records in self._pull_parts(plan, refresh=refresh, bar=bar, dates=dates,
                                                late=late):
            self._logic.refuse(account)  # a 400 was the packing's: the plain read goes on
            if stream.member is None:
                records = [r for r in records if r.get("id") not in seen]
            yield stream, records

    def _pull_parts(self, plan: Plan, *, refresh: bool, bar: Any = None,
                    dates: list[str] | None = None,
                    late: Callable[[], list[Stream]] | None = None,
                    streams: list[Stream] | None = None,
                    ) -> Iterator[tuple[Stream, list[dict[str, Any]]]]:
        """:meth:`_pull` for the plan's parts as they are."""
        if not plan.parts:
            return
        self._check_token()
        query = plan.query
        url = f"{query.resource.url}.json"
        fanout = Fanout(self._streams(plan) if streams is None else streams,
                        lambda: self._transport.in_flight_target, late)

        def build(req: PageRequest) -> tuple[str, str]:
            stream, inner = fanout.stream_of(req)
            return url, page_query(query, stream.part, inner)

        pages = self._transport.run_pager(fanout, build, refresh=refresh, dates=dates)
        for req, answered in pages:
            if bar is not None:
                bar.update(1)
            stream, records = fanout.answered(req)[0], []
            # this answer's final records, then those of answers of the read's parts that
            # waited for the opening (which this answer, a part's first, completed)
            for owner, final in [(stream, answered), *fanout.released()]:
                if isinstance(owner.part, Packed) and not owner.part.holds(final):
                    raise PackIgnored(f"the server answered records not asked for in {url}")
                plan.cap = max(plan.cap or 0, owner.pager.cap or 0) or None
                records += final
            if query.post_filter:
                records = [r for r in records if query.keep(r)]
            yield stream, records

    def _streams(self, plan: Plan) -> list[Stream]:
        """One pager per part of the plan."""
        # limit=N: each stream stops after N rows when they are the first N in the wanted order
        max_rows = plan.limit if plan.id_ordered and not plan.query.post_filter else None
        return open_streams(plan.parts, plan.page_size, budget=self._transport.in_flight_target,
                            max_rows=max_rows, sequential=plan.few, cap=plan.cap)

    def _top_pagers(self, plan: Plan) -> list[
            tuple[dict[str, Any], TopPager | ValueWindows | BoundedPager]]:
        """One pager per part of a ``plan.top`` plan: by ``-id`` a descending
        :class:`BoundedPager` (by id with a post-filter, which it cannot count, a
        :class:`TopPager`);
        by any other attribute :class:`ValueWindows` (value windows at once over numbers and
        dates)."""
        order, query = plan.query.order or Order("id"), plan.query
        assert plan.limit is not None
        keep = query.keep if query.post_filter else None
        budget = self._transport.in_flight_target
        if order.attribute == "id" and keep is None:
            return [(part, BoundedPager(plan.page_size, at_most(plan.limit, part) or 0,
                                        parallel=budget, descending=True,
                                        ahead=len(plan.parts) == 1, hold=True))
                    for part in plan.parts]
        kind = query.resource.field(order.attribute).kind
        if order.attribute == "id":  # with a post-filter
            return [(part, TopPager("id", at_most(plan.limit, part) or 0, plan.page_size,
                                    descending=order.descending, unique=True, keep=keep,
                                    parallel=budget)) for part in plan.parts]
        return [(part, ValueWindows(order.attribute, at_most(plan.limit, part) or 0,
                                    plan.page_size, kind=kind, descending=order.descending,
                                    nulls_first=order.nulls_first, keep=keep, parallel=budget,
                                    few_values=kind in ("integer", "boolean", "enum")))
                for part in plan.parts]

    def _top(self, plan: Plan, *, refresh: bool, bar: Any = None,
             on_page: Callable[[int, int], Any] | None = None) -> list[dict[str, Any]]:
        """The first ``plan.limit`` records in the plan's order, exactly (value ranges, or
        id windows by ``-id``).

        Every request a pager asks for is awaited, even once the rows are known, so that a
        repeated read asks for nothing the cache does not hold.
        """
        streams = [Stream(part, pager) for part, pager in self._top_pagers(plan)]
        tops = [s.pager for s in streams if isinstance(s.pager, (TopPager, ValueWindows))]
        rows: list[dict[str, Any]] = []
        pulled = self._pull(plan, refresh=refresh, bar=bar, streams=streams)
        for pages, (_, records) in enumerate(pulled, start=1):
            rows += records
            known = len(rows) + sum(len(p.result()) for p in tops)
            if bar is not None:
                self._bar_rows(bar, known)
            if on_page is not None:
                on_page(pages, known)
        if tops and len(streams) == 1:
            return [dict(r) for r in tops[0].result()]
        by_id: dict[Any, dict[str, Any]] = {}
        merge(by_id, rows)
        for pager in tops:
            merge(by_id, [dict(r) for r in pager.result()])
        return self._first(plan, by_id)

    def _first(self, plan: Plan, by_id: dict[Any, dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of a read in its order (by id without one), cut to ``plan.limit``."""
        order, records = plan.query.order, list(by_id.values())
        return sort_records(records, order, order_kind(plan.query.resource, order),
                            self._ranks(plan, records))[:plan.limit]

    def _ranks(self, plan: Plan, records: list[dict[str, Any]]) -> dict[Any, int] | None:
        """The server's order of the text values ``records`` hold of the plan's order
        attribute (:mod:`._text_order`); None for any other order, or a single value."""
        order = plan.query.order
        if order is None or order_kind(plan.query.resource, order) not in TEXT_KINDS:
            return None
        chosen = representatives(records, order.attribute)
        if len(chosen) < 2:
            return None
        capped = False
        while True:  # at most twice more: once the cap is known, once $or is given up
            size = max(2, min(plan.page_size, plan.cap or plan.page_size,
                              MAX_PACKED if self._logic.usable(self._transport.account)
                              else MAX_ARRAY))
            try:
                return learn_ranks(list(chosen), size,
                                   partial(self._ask_order, plan, chosen, capped=capped))
            except _Resize as resize:
                if resize.cap is not None:  # a silent page cap below the values asked for
                    plan.cap, capped = resize.cap, True

    def _ask_order(self, plan: Plan, chosen: Mapping[Any, Any], runs: list[list[Any]], *,
                   capped: bool) -> list[list[Any]]:
        """The values of each run in the server's order: one request per run for the records
        ``chosen`` names, ordered by the plan's order attribute (packed lists while the
        account takes ``$or``).  Raises :class:`_Resize` when the runs must be shorter: the
        account does not take ``$or``, or (unless already ``capped``) answers were cut."""
        attribute = plan.query.order.attribute if plan.query.order else "id"
        account = self._transport.account
        packed = self._logic.usable(account)
        url = f"{plan.query.resource.url}.json"
        queries = [(url, encode_checked(request_params(
            ranking_where([chosen[v] for v in run], packed), ["id", attribute], (),
            Order(attribute), limit=len(run)))) for run in runs]
        try:
            answers = list(self._transport.map(queries))
        except JettiBadRequestError:
            if not packed:
                raise
            answers = [[{}]]  # $or refused
        wanted = set(chosen.values())
        if packed and not all(r.get("id") in wanted for a in answers for r in a):
            self._logic.refuse(account)  # $or ignored (records not asked for) or refused
            if max(map(len, runs)) > MAX_ARRAY:
                raise _Resize()
            return self._ask_order(plan, chosen, runs, capped=capped)
        short = [len(a) for a, run in zip(answers, runs, strict=True) if len(a) < len(run)]
        if short and not capped:
            raise _Resize(min(short))
        return [[r.get(attribute) for r in a] for a in answers]

    def _records(self, plan: Plan, into: Collector, *, refresh: bool, progress: bool | None,
                 consistent: bool = True,
                 on_page: Callable[[int, int], Any] | None = None) -> None:
        """Every record of a plan into ``into``, page by page (it deduplicates and orders).

        With ``consistent``, a read of several pages also asks for the records updated since
        its first answer (the consistency pass); that request goes out as soon as every other
        request of the read has been sent, and the newer version of each record wins.
        """
        stats_before = self._snapshot_stats()
        dates: list[str] = []
        pages = pages_with_rows = 0
        wanted = (consistent and plan.limit is None
                  and plan.query.resource.has_field("updatedAt"))
        passes: list[Stream] = []
        seen: dict[int, Stream] = {}

        def one_round() -> bool:
            """Every request so far went out before the first answer: one moment of the data,
            nothing to catch up with (the same answer whatever the order of answers)."""
            return all(isinstance(s.pager, (Pager, BoundedPager)) and s.pager.one_round
                       for s in seen.values())

        def catch_up() -> list[Stream]:
            began = min(filter(None, map(server_date, dates)), default=None)
            if not wanted or passes or not pages_with_rows or began is None or one_round():
                return []
            again, member = catch_up_plan(plan, began - dt.timedelta(seconds=2))
            passes.extend(replace(s, member=member) for s in self._streams(again))
            return passes

        if plan.top:
            with self._bar(plan, progress) as bar:
                into.add_ordered(self._top(plan, refresh=refresh, bar=bar, on_page=on_page))
                self._finish_stats(stats_before, rows=into.count, bar=bar)
            return
        with self._bar(plan, progress) as bar:
            for stream, records in self._pull(plan, refresh=refresh, bar=bar, dates=dates,
                                              late=catch_up):
                pages += 1
                pages_with_rows += bool(records) and stream.member is None
                into.add(records, stream.member)
                if (plan.limit is not None and plan.id_ordered and len(plan.parts) == 1
                        and not plan.query.post_filter and into.count >= plan.limit):
                    break  # the first N in id order are in (a bounded pager's come in order)
                seen.setdefault(id(stream), stream)
                bar.expect(expected_pages(plan, list(seen.values()), wanted))
                self._bar_rows(bar, into.count)
                if on_page is not None:
                    on_page(pages, into.count)
            # a read whose requests all went out before its first answer is one moment; one
            # that went on, and whose pass found nothing to overlap, catches up now
            if not passes and catch_up():
                again = replace(plan, parts=[s.part for s in passes], few=True)
                for _, records in self._pull(again, refresh=refresh, bar=bar):
                    into.add(records, passes[0].member)
                self._bar_rows(bar, into.count)
            into.ranks = self._ranks(plan, into.kept())
            rows = into.count if plan.limit is None else min(into.count, plan.limit)
            self._finish_stats(stats_before, rows=rows, bar=bar)

    def _bar(self, plan: Plan, progress: bool | None) -> ReadBar:
        show = self.progress if progress is None else progress
        return ReadBar(plan.query.resource.url, show=show)

    def _bar_rows(self, bar: ReadBar, rows: int) -> None:
        bar.rows(rows, cache_hits=self._transport.stats.cache_hits)

    def _snapshot_stats(self) -> dict[str, float]:
        s = self._transport.stats
        return {"requests": s.network, "cache_hits": s.cache_hits, "status_429": s.throttled,
                "retries": s.retries, "limiter_wait": s.limiter_wait, "pages": 0,
                "clock": time.monotonic()}

    def _finish_stats(self, before: dict[str, float], *, rows: int,
                      bar: ReadBar | None = None) -> ReadStats:
        """Set ``last_stats`` (and add it to ``stats``); leave its summary on ``bar``."""
        now = self._snapshot_stats()
        last = ReadStats(
            requests=int(now["requests"] - before["requests"]),
            cache_hits=int(now["cache_hits"] - before["cache_hits"]),
            status_429=int(now["status_429"] - before["status_429"]),
            retries=int(now["retries"] - before["retries"]),
            limiter_wait=round(now["limiter_wait"] - before["limiter_wait"], 3),
            rows=rows,
            seconds=round(now["clock"] - before["clock"], 3),
        )
        last.pages = last.requests + last.cache_hits
        self.last_stats = last
        for name in ("requests", "cache_hits", "status_429", "retries", "pages", "rows"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(last, name))
        self.stats.limiter_wait = round(self.stats.limiter_wait + last.limiter_wait, 3)
        self.stats.seconds = round(self.stats.seconds + last.seconds, 3)
        if bar is not None:
            bar.finish(rows=rows, requests=last.requests, cache_hits=last.cache_hits,
                       status_429=last.status_429, seconds=last.seconds)
        return last

    def _iter_pages(self, plan: Plan, *, refresh: bool,
                    progress: bool | None) -> Iterator[list[dict[str, Any]]]:
        before = self._snapshot_stats()
        seen: set[Any] = set()
        rows = 0
        multi = len(plan.parts) > 1
        try:
            if plan.limit is not None or plan.query.order is not None:
                # the first N, or the order, are only known once every page is in: the same
                # records as read(), handed over in order
                with self._bar(plan, progress) as bar:
                    records = self._whole(plan, refresh=refresh, bar=bar)
                rows = len(records)
                for start in range(0, rows, plan.page_size):
                    yield records[start:start + plan.page_size]
                return
            with self._bar(plan, progress) as bar:
                for _, records in self._pull(plan, refresh=refresh, bar=bar):
                    if multi:
                        records = [r for r in records if r.get("id") not in seen]
                        seen.update(r.get("id") for r in records)
                    rows += len(records)
                    self._bar_rows(bar, rows)
                    yield records
        finally:
            self._finish_stats(before, rows=rows)

    def _whole(self, plan: Plan, *, refresh: bool, bar: ReadBar) -> list[dict[str, Any]]:
        """Every record of a plan (the first ``plan.limit``), deduplicated, in its order."""
        if plan.top:
            return self._top(plan, refresh=refresh, bar=bar)
        by_id: dict[Any, dict[str, Any]] = {}
        for _, records in self._pull(plan, refresh=refresh, bar=bar):
            merge(by_id, records)
            self._bar_rows(bar, len(by_id))
        return self._first(plan, by_id)
