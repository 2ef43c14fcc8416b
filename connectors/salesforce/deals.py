"""Reading deals: the incremental pull by SystemModstamp, and deals by id.

Both go through queryAll so that deleted (recycle-bin) rows come back flagged `IsDeleted`
(reference §1 "query vs queryAll"). The pull selects every stage: leaving closed-lost is news
too (reopened, won), and the worker decides what is lost from `IsClosed`/`IsWon`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from connectors.base import DealPage
from connectors.models import Deal
from connectors.salesforce import records, soql
from connectors.salesforce.client import Client, cursor_restart
from connectors.salesforce.failures import StaleCursor


def changed_deals(client: Client, fields: soql.DealFields, since: datetime
                  ) -> Iterator[DealPage]:
    """Every Opportunity with SystemModstamp >= `since`, oldest first, one page (up to 2,000
    rows) at a time, never the whole result in memory.

    SystemModstamp, not LastModifiedDate: it also moves on automated changes (reference §1
    "Incremental sync"). If a query locator dies midway (400 INVALID_QUERY_LOCATOR: expired,
    or released because the user opened more than 10 cursors), the query is re-run from the
    last stamp served and rows already served at that stamp are skipped.
    """
    if since.tzinfo is None:
        raise ValueError("since must be time-zone aware")  # format_soql reads naive as local
    start = since
    last_stamp: datetime | None = None
    served_at_last: set[str] = set()
    restarts = 0
    while True:
        try:
            for page in client.pages(soql.deals_since(fields, start), include_deleted=True):
                deals = []
                for record in page:
                    deal = records.deal(record, fields)
                    stamp = deal.modified_at
                    if stamp is not None and stamp == last_stamp and deal.id in served_at_last:
                        continue  # served before the restart
                    if stamp is not None and (last_stamp is None or stamp > last_stamp):
                        last_stamp, served_at_last = stamp, set()
                    served_at_last.add(deal.id)
                    deals.append(deal)
                if deals:
                    stamps = [d.modified_at for d in deals if d.modified_at is not None]
                    yield DealPage(deals, max(stamps) if stamps else None)
            return
        except StaleCursor:
            start = last_stamp or since
            restarts = cursor_restart(client.settings.name, restarts, start, "the pull")


def deals_by_id(client: Client, fields: soql.DealFields, ids: Sequence[str]) -> list[Deal]:
    """The current state of these deals; one not found at all (or not an id) is reported
    deleted: gone past the recycle bin, or never visible to us."""
    wanted = list(dict.fromkeys(ids))
    canonical = {i: soql.to18(i) for i in wanted}
    query_ids = list(dict.fromkeys(c for c in canonical.values() if c))
    found: dict[str, Deal] = {}
    for chunk in soql.chunked(query_ids, soql.in_list_cost):
        for record in client.query_all(soql.deals_by_id(fields, chunk), include_deleted=True):
            deal = records.deal(record, fields)
            found[deal.id] = deal
    out: list[Deal] = []
    for requested in wanted:
        full = canonical[requested]
        hit = found.get(full) if full else None
        out.append(hit if hit is not None else Deal(id=requested, deleted=True))
    return out
