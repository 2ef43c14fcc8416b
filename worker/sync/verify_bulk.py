"""The daily re-read of tracked deals from one scan of the CRM (a Salesforce Bulk API 2.0
query job over every Opportunity) instead of reading them by id, once there are more of
them than the connection's bulk_threshold (`every_deal` on the connector; pull.py's
`verify_tracked` decides).

The scan is matched against the ledger: a scanned deal that is no longer lost (reopened,
won, in the recycle bin) and tracked here is stored like a pulled one; a tracked deal the
scan never showed is gone (deleted past the recycle bin, or no longer visible to us) and is
stored deleted, as `deals_by_id` reports it. Memory: the scanned ids are kept as their
64-bit hashes (a set of ints), never the deals.
"""

from __future__ import annotations

from collections.abc import Iterator

from connectors.models import Deal
from worker.ledger.records import EnrollmentStatus
from worker.sync.context import Tick
from worker.sync.plan import store_page

BATCH = 500  # tracked deals read from the ledger per keyset page


def verify_from_scan(tick: Tick, pages: Iterator[list[Deal]]) -> bool:
    """Stop the tracked deals the scan shows gone; False if the worker was asked to stop."""
    ctx = tick.ctx
    seen: set[int] = set()
    for page in pages:
        if ctx.stop.is_set():
            return False
        tick.check()
        seen.update(hash(d.id) for d in page)
        changed = [d for d in page if not d.is_lost]
        if not changed:
            continue
        with ctx.ledger.engine.connect() as conn:
            known = ctx.ledger.enrollments(conn, ctx.name, [d.id for d in changed])
        gone = [d for d in changed if (e := known.get(d.id)) is not None
                and e.status is EnrollmentStatus.ACTIVE]
        if gone:
            with ctx.ledger.write() as conn:
                ctx.leases.fence(conn, tick.lease)
                store_page(tick, conn, gone)
    after = 0
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            batch = ctx.ledger.tracked_after(conn, ctx.name, after, BATCH)
        if not batch:
            return True
        after = batch[-1][0]
        tick.check()
        missing = [Deal(id=deal_id, deleted=True) for _, deal_id in batch
                   if hash(deal_id) not in seen]
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)  # renews it: a large ledger takes a while
            if missing:
                store_page(tick, conn, missing)
    return False
