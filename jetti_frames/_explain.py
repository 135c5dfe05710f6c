"""What a read would send and cost, for :meth:`JettiClient.explain
<jetti_frames.client.JettiClient.explain>`: its first requests, and its total when the query
bounds it, or, with ``probe``, as its first two answers estimate it.

:func:`explain_fields` gives the fields of an :class:`~jetti_frames.client.Explanation`; it
sends nothing unless asked to probe (:func:`probe_pages`).

Examples
--------
>>> from jetti_frames.client import JettiClient
>>> client = JettiClient("t", base_url="http://127.0.0.1:9/api/", cache=False)
>>> fields = explain_fields(client, client._plan("purchases", limit=250), refresh=False,
...                         consistent=True, probe=False)
>>> fields["min_requests"], fields["estimated_requests"], len(fields["urls"])
(3, 3, 1)
"""

from __future__ import annotations

from typing import TypedDict

from ._build import explain_query
from ._collect import order_kind
from ._fanout import open_streams
from ._plan import Plan, known_pages, page_params, page_query
from ._reading import Reading
from ._text_order import TEXT_KINDS
from ._wire import encode
from .paging import Pager
from .transport import explain_seconds

__all__ = ["ExplanationFields", "explain_fields", "probe_pages"]


class ExplanationFields(TypedDict):
    """The fields of an :class:`~jetti_frames.client.Explanation`."""

    resource: str
    urls: tuple[str, ...]
    min_requests: int
    estimated_seconds: float | None
    notes: str
    estimated_requests: int | None
    probed: bool


def explain_fields(reader: Reading, plan: Plan, *, refresh: bool, consistent: bool,
                   probe: bool) -> ExplanationFields:
    """The requests ``plan`` starts with (not those held until a first answer says whether they
    are needed), and what the whole read would cost when that can be known (a probe sends the
    first two requests of a one-part read to estimate it)."""
    query = plan.query
    firsts = ([(part, req) for part, pager in reader._top_pagers(plan)
               for req in pager.next_requests() if req.hold is None] if plan.top else
              [(stream.part, req) for stream in reader._streams(plan)
               for req in stream.pager.next_requests()[:1]])
    urls = tuple(f"{query.resource.url}.json?"
                 + encode(page_params(query, part, req), readable=True)
                 for part, req in firsts)
    per_part = 1 if plan.limit is None else max(1, -(-plan.limit // plan.page_size))
    n = max(len(urls), len(plan.parts) * per_part)
    total = None if plan.top else known_pages(plan)
    probed = False
    if total is None and probe and not plan.top and len(plan.parts) == 1:
        total, probed = probe_pages(reader, plan, refresh=refresh), True
    if total is not None and consistent and total > 2 and plan.limit is None \
            and query.resource.has_field("updatedAt"):
        total += 1  # the consistency pass
    latency = reader._transport.latency or 0.5
    seconds = None if total is None else explain_seconds(
        total, rate=reader.settings.get_rate, latency=latency,
        cached=2 if probed and reader.settings.cache else 0)
    lines = explain_query(query, parts=plan.parts).splitlines()
    notes = [lines[0], *(f"  {u}" for u in urls),
             *(line for line in lines[1:] if ".json" not in line)]
    order = query.order
    if (order is not None and order_kind(query.resource, order) in TEXT_KINDS
            and not (plan.top and len(plan.parts) == 1)):
        notes.append(f"then the server's order of the {order.attribute} values read: one "
                     "request per 99 of them (per 19 where $or is not taken)")
        total = None if total is None else total + 1
    if total is None and not plan.top and len(plan.parts) == 1:
        notes.append("explain(..., probe=True) sends the first 2 requests to estimate "
                     "the total from the id range")
    return ExplanationFields(resource=query.resource.url, urls=urls, min_requests=n,
                             estimated_seconds=seconds, notes="\n".join(notes),
                             estimated_requests=total, probed=probed)


def probe_pages(reader: Reading, plan: Plan, *, refresh: bool) -> int | None:
    """The pages a one-part read would take, from its first page and its probe (the two
    requests the read starts with: it then finds them in the cache)."""
    reader._check_token()
    before = reader._snapshot_stats()
    [stream] = open_streams(plan.parts, plan.page_size, budget=2)
    assert isinstance(stream.pager, Pager)  # an unbounded read of one part
    url = f"{plan.query.resource.url}.json"
    sent = [(req, reader._transport.submit(url, page_query(plan.query, stream.part, req),
                                           refresh=refresh))
            for req in stream.pager.next_requests()[:2]]
    for req, answer in sent:
        stream.pager.on_page(req, [int(r["id"]) for r in answer.result()])
    reader._finish_stats(before, rows=0)
    return stream.pager.estimated_pages
