"""Reading deals: the incremental pull by SystemModstamp (REST, or a Bulk API 2.0 query job
when it is big: bulk.py), and deals by id.

Both go through queryAll so that deleted (recycle-bin) rows come back flagged `IsDeleted`
(reference §1 "query vs queryAll"). The pull selects every stage: leaving closed-lost is news
too (reopened, won), and the worker decides what is lost from `IsClosed`/`IsWon`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from datetime import datetime
from typing import Any

from connectors.base import DealPage
from connectors.errors import PermissionDenied
from connectors.models import Deal
from connectors.salesforce import bulk, records, soql
from connectors.salesforce.bulk import BulkPolicy
from connectors.salesforce.client import Client, cursor_restart, log
from connectors.salesforce.failures import StaleCursor

SUB_PAGE = 1000  # deals per DealPage from a Bulk result page (as many as a REST page)


class _GoBulk(Exception):
    """The first REST page said the pull is big: continue it through a Bulk query job."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.rows = rows


def _rest_pages(client: Client, soql_text: str, policy: BulkPolicy | None
                ) -> Iterator[list[dict[str, Any]]]:
    total: list[int] = []
    pages: Generator[list[dict[str, Any]], None, None] = client.pages(
        soql_text, include_deleted=True, on_total=total.append)
    for page in pages:
        yield page
        # Decided on the first page only, and only if more pages would follow.
        if policy is not None and total and total[0] > len(page) and policy.wants(total[0]):
            pages.close()
            raise _GoBulk(total.pop())
        total.clear()


def _bulk_pages(client: Client, soql_text: str, policy: BulkPolicy
                ) -> Iterator[list[dict[str, Any]]]:
    types = policy.types()
    for csv_file in bulk.query_pages(client, "Opportunity", soql_text, include_deleted=True,
                                     poll=policy.poll):
        batch: list[dict[str, Any]] = []
        for record in bulk.records(csv_file, types):
            batch.append(record)
            if len(batch) == SUB_PAGE:
                yield batch
                batch = []
        if batch:
            yield batch


def changed_deals(client: Client, fields: soql.DealFields, since: datetime,
                  policy: BulkPolicy | None = None) -> Iterator[DealPage]:
    """Every Opportunity with SystemModstamp >= `since`, oldest first, one page (up to 2,000
    rows) at a time, never the whole result in memory.

    SystemModstamp, not LastModifiedDate: it also moves on automated changes (reference §1
    "Incremental sync"). If a query locator dies midway (400 INVALID_QUERY_LOCATOR: expired,
    or released because the user opened more than 10 cursors), the query is re-run from the
    last stamp served and rows already served at that stamp are skipped.

    Big pulls: the first REST page's totalSize tells how many rows the pull returns (no
    extra call). Above the policy's threshold, that page is served and the rest is read by
    a Bulk API 2.0 query job from the last stamp served, the same way as after a dead
    locator. If Salesforce refuses the job (403: the user lacks the permission), the policy
    says so once in the log and the pull goes on over REST.
    """
    if since.tzinfo is None:
        raise ValueError("since must be time-zone aware")  # format_soql reads naive as local
    start = since
    last_stamp: datetime | None = None
    served_at_last: set[str] = set()
    restarts = 0
    use_bulk = False
    while True:
        text = soql.deals_since(fields, start)
        try:
            source = _bulk_pages(client, text, policy) if use_bulk and policy is not None \
                else _rest_pages(client, text, policy)
            for page in source:
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
        except _GoBulk as big:
            use_bulk = True
            start = last_stamp or since
            log().info("crm.bulk_pull", connection=client.settings.name, crm="salesforce",
                       rows=big.rows, since=start.isoformat())
        except PermissionDenied as exc:
            if not use_bulk or policy is None:
                raise
            policy.refuse(exc.message)
            use_bulk = False
            start = last_stamp or since
        except StaleCursor:
            start = last_stamp or since
            restarts = cursor_restart(client.settings.name, restarts, start, "the pull")


def every_deal(client: Client, fields: soql.DealFields, policy: BulkPolicy
               ) -> Iterator[list[Deal]]:
    """Every Opportunity of the org, deleted (recycle-bin) ones flagged, in pages of up to
    SUB_PAGE deals: one Bulk API 2.0 queryAll job (the daily re-read of many tracked deals,
    which an `Id IN (...)` list cannot carry: ~200 ids a query). A deal missing from it is
    gone past the recycle bin. If Salesforce refuses the job (403), the policy says so once
    and the same query is read over REST (1,000 rows a call: still fewer calls than by id)."""
    text = soql.every_deal(fields)
    try:
        pages: Iterator[list[dict[str, Any]]] = _bulk_pages(client, text, policy)
        first = next(pages, None)
    except PermissionDenied as exc:
        policy.refuse(exc.message)
        pages = client.pages(text, include_deleted=True)
        first = next(pages, None)
    log().info("crm.bulk_verify", connection=client.settings.name, crm="salesforce",
               bulk=policy.refused is None)
    while first is not None:
        yield [records.deal(record, fields) for record in first]
        first = next(pages, None)


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
