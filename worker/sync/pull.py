"""Pull: changed deals since the watermark, page by page, to the plan stage (plan.py); the
daily re-read of tracked deals; the re-plan of deals whose rules were edited.

Each page is stored in fenced transactions, the first of a pull PLAN_CHUNK deals (50), each
next one twice as large up to PLAN_CHUNK_MAX (1,000), the last one of a page together with the
watermark advance: a crash loses no page and a stale process writes nothing, and a
process that lives only a few seconds still commits (and writes the tasks of) the deals it
planned. A page cut short is read again from the old watermark; its deals already stored are
unchanged and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection

from connectors.base import DealPage
from connectors.models import Deal
from worker.cadence.fingerprint import PlanInputs, decode_owner
from worker.ledger.queries import enrollment_counts
from worker.ledger.records import EnrollmentStatus
from worker.sync.activity import prepare_plans
from worker.sync.context import Tick
from worker.sync.inputs import activity_for, reads_activity
from worker.sync.plan import keep_used, plan_lost, store_inputs, store_page, unchanged
from worker.sync.prefetch import read_ahead
from worker.sync.verify_bulk import verify_from_scan

PLAN_CHUNK = 50  # deals planned and committed in a pull's first transaction
PLAN_CHUNK_MAX = 1000  # ... doubling with each commit up to this (a first sync's pages)


def _parts(deals: list[Deal], size: int) -> tuple[list[list[Deal]], int]:
    """A page's deals in transactions of `size` deals, doubling each time up to
    PLAN_CHUNK_MAX (a process that lives a few seconds still commits its first 50; a long
    first sync commits 1,000 at a time, not 20 times as often); and the size after them."""
    parts: list[list[Deal]] = []
    start = 0
    while start < len(deals):
        parts.append(deals[start:start + size])
        start += size
        size = min(size * 2, PLAN_CHUNK_MAX)
    return parts or [[]], size


def pull(tick: Tick, conn_for_dry_run: Connection | None = None,
         after_page: Callable[[Tick], None] | None = None,
         after_chunk: Callable[[Tick], None] | None = None) -> None:
    """Read every deal changed since the watermark (minus the overlap), page by page.
    `after_page` runs once each page is stored (the tick writes due tasks there, so that the
    CRM's write budget is used while the next pages are read); `after_chunk` after each
    committed chunk of a page but its last (the tick writes full batches there)."""
    ctx = tick.ctx
    state = ctx.ledger.connection_row(ctx.name)
    watermark = state.watermark if state is not None else None
    backfill = ctx.settings.backfill
    if watermark is None:
        since = datetime.combine(backfill.subtract_from(tick.now.date()), datetime.min.time(),
                                 tzinfo=UTC)
    else:
        since = watermark - timedelta(seconds=ctx.settings.overlap)
    tick.check()
    seen = 0
    size = PLAN_CHUNK
    for page in read_ahead(ctx.connector.changed_deals(since)):
        if ctx.stop.is_set():
            break
        seen += len(page.deals)
        tick.counts.pulled += len(page.deals)
        ctx.metrics.deals_pulled.labels(ctx.name).inc(len(page.deals))
        with_contacts = _attach_stakeholders(tick, page)
        if conn_for_dry_run is not None:
            _store(tick, conn_for_dry_run, with_contacts, page.watermark)
        else:
            parts, size = _parts(with_contacts, size)
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                _prepare(tick, part)
                with ctx.ledger.write() as conn:
                    ctx.leases.fence(conn, tick.lease)
                    _store(tick, conn, part, page.watermark if last else None)
                if last:
                    break
                if ctx.stop.is_set():
                    return
                if after_chunk is not None:  # due tasks go out before the page is done
                    tick.check()
                    after_chunk(tick)
        if ctx.progress is not None:
            ctx.progress("pull", seen, None)
        tick.check()
        if after_page is not None:
            after_page(tick)
    if ctx.stop.is_set() or conn_for_dry_run is not None:
        return
    # A complete pull saw every change up to (about) now. Move the watermark up to now minus
    # the overlap even when nothing changed lately, so that a quiet CRM costs one call per tick
    # instead of re-reading the last changes forever (the next pull still re-reads one more
    # overlap, which covers late commits, search-index lag and moderate clock skew).
    floor = tick.now - timedelta(seconds=ctx.settings.overlap)
    with ctx.ledger.write() as conn:
        ctx.leases.fence(conn, tick.lease)
        current = ctx.ledger.connection_row_in(conn, ctx.name)
        if current is not None and (current.watermark is None or current.watermark < floor):
            ctx.ledger.set_watermark(conn, ctx.name, floor)
        if watermark is None:
            ctx.ledger.mark_backfill_done(conn, ctx.name)
            ctx.ledger.set_verified(conn, ctx.name, tick.now)  # every deal was just read


def _attach_stakeholders(tick: Tick, page: DealPage) -> list[Deal]:
    """Contacts for the page's lost deals that are new or changed (one batched read), read
    before the page's transaction."""
    ctx = tick.ctx
    oldest = ctx.settings.backfill.subtract_from(tick.now.date()) - timedelta(days=1)
    candidates = [d for d in page.deals if d.is_lost and not _too_old(d, oldest)]
    if not candidates:
        return page.deals
    with ctx.ledger.engine.connect() as conn:
        known = ctx.ledger.enrollments(conn, ctx.name, [d.id for d in candidates])
    wanted = [d.id for d in candidates if not unchanged(tick, d, known.get(d.id))
              and ctx.planner.needs_contacts(d)]
    if not wanted:
        return page.deals
    tick.check()
    contacts = tick.ctx.connector.stakeholders(wanted)
    return [d.model_copy(update={"contacts": tuple(contacts.get(d.id, ()))})
            if d.id in contacts else d for d in page.deals]


def _prepare(tick: Tick, deals: list[Deal]) -> None:
    """With activity rules: link the page's newly tracked deals to the activities already
    read and confirm new skip causes, before the page's transaction (activity.py)."""
    ctx = tick.ctx
    lost = [d for d in deals if d.is_lost]
    if not lost or not reads_activity(tick):
        return
    with ctx.ledger.engine.connect() as conn:
        known = ctx.ledger.enrollments(conn, ctx.name, [d.id for d in lost])
    prepare_plans(tick, [(d, known.get(d.id)) for d in lost
                         if not unchanged(tick, d, known.get(d.id))])


def _store(tick: Tick, conn: Connection, deals: list[Deal], watermark: datetime | None
           ) -> None:
    """A page's deals and the watermark it reached, in the same transaction."""
    store_page(tick, conn, deals)
    if watermark is not None:
        tick.ctx.ledger.set_watermark(conn, tick.ctx.name, watermark)


def _too_old(deal: Deal, oldest: date) -> bool:
    closed = deal.closed_at
    if closed is None:
        return False
    day = closed.date() if isinstance(closed, datetime) else closed
    return day < oldest


VERIFY_EVERY = timedelta(hours=24)
VERIFY_BATCH = 500


def verify_tracked(tick: Tick) -> None:
    """Once a day, re-read every tracked deal by id. A pull sees what changed; it cannot see
    what vanished (HubSpot search never returns archived deals), so this is how a deleted
    deal's cadence stops everywhere. A connector that can scan every deal in bulk
    (Salesforce above bulk_threshold: `every_deal`) is read that way instead
    (verify_bulk.py)."""
    ctx = tick.ctx
    state = ctx.ledger.connection_row(ctx.name)
    if state is None or (state.verified_at is not None
                         and tick.now - state.verified_at < VERIFY_EVERY):
        return
    scan = _bulk_scan(tick)
    if scan is not None:
        if verify_from_scan(tick, scan):
            with ctx.ledger.write() as conn:
                ctx.leases.fence(conn, tick.lease)
                ctx.ledger.set_verified(conn, ctx.name, tick.now)
        return
    after = 0
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            batch = ctx.ledger.tracked_after(conn, ctx.name, after, VERIFY_BATCH)
        if not batch:
            break
        after = batch[-1][0]
        tick.check()
        current = ctx.connector.deals_by_id([deal_id for _, deal_id in batch])
        gone = [d for d in current if not d.is_lost]
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)  # renews it: a large ledger takes a while
            if gone:
                store_page(tick, conn, gone)
    if not ctx.stop.is_set():
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            ctx.ledger.set_verified(conn, ctx.name, tick.now)


def _bulk_scan(tick: Tick) -> Iterator[list[Deal]] | None:
    """One scan of every deal instead of reading the tracked ones by id, when the connector
    offers it for this many (Salesforce: a Bulk query job above bulk_threshold)."""
    with tick.ctx.ledger.engine.connect() as conn:
        tracked = enrollment_counts(conn, tick.ctx.name).get(EnrollmentStatus.ACTIVE, 0)
    tick.check()
    scan: Iterator[list[Deal]] | None = tick.ctx.connector.every_deal(tracked)
    return scan


def replan_changed_rules(tick: Tick) -> None:
    """Re-plan, from their snapshot, the enrollments whose plan fingerprint differs from
    today's rules (only unwritten tasks move). Found set-wise: one grouped read of (cadence,
    owner, fingerprint) compared in memory, then the stale groups' rows in batches. Contacts
    are read first when the new rules need them and the snapshot has none."""
    ctx = tick.ctx
    done: set[str] = set()
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            groups = [g for g in ctx.ledger.rule_groups(conn, ctx.name)
                      if g.rule_version != ctx.planner.plan_inputs(
                          g.cadence if g.status is EnrollmentStatus.ACTIVE else None,
                          decode_owner(g.owner_input)).fingerprint]
            stale = ctx.ledger.enrollments_in_groups(conn, ctx.name, groups, limit=200)
        stale = [e for e in stale if e.deal_id not in done]  # (guards against non-progress)
        if not stale:
            return
        deals = {e.deal_id: e.deal() for e in stale}
        wanted = [i for i, d in deals.items() if not d.contacts and ctx.planner.needs_contacts(d)]
        if wanted:
            tick.check()
            found = ctx.connector.stakeholders(wanted)
            deals.update({i: deals[i].model_copy(update={"contacts": tuple(found.get(i, ()))})
                          for i in wanted})
        prepare_plans(tick, [(deals[e.deal_id], e) for e in stale])
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            used: dict[str, PlanInputs] = {}
            given = activity_for(tick, conn, list(deals.values()))
            for enrolled in stale:
                keep_used(used, plan_lost(tick, conn, deals[enrolled.deal_id], enrolled,
                                          force=True, activity=given.get(enrolled.deal_id)))
            store_inputs(tick, conn, used)
        done.update(deals)


