"""The activity stage of a tick (issue 13): read the CRM activities the rules need, keep those
of tracked deals, and re-plan the deals whose activity changed or whose plan changes by itself
(a skip_if task's create date, a pause's end, a max_wait deadline).

- Which kinds: those of `skip_if` rules, `task` when a step has `after` (winback's tasks'
  completions), `meeting` for `stop.on_meeting` when set explicitly in the file (or when
  another rule already makes the connection read activity). None: no activity call at all.
- Each page is stored with the activity watermark it reached and the re-plan marks of the
  deals it concerns in ONE transaction fenced by the lease: a crash loses nothing (the next
  tick reads again from the watermark and re-plans what was marked).
- Tasks of a deal marked for re-planning are not sent (`Ledger.due_tasks`) until it is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.cadence.fingerprint import PlanInputs
from worker.ledger import activities as store
from worker.sync.context import Tick
from worker.sync.inputs import activity_kinds
from worker.sync.plan import keep_used, plan_lost, store_inputs

REPLAN_BATCH = 200


def read_activity(tick: Tick) -> None:
    """Read changed activities since the activity watermark (minus the overlap; the first
    time from the backfill window), page by page, each page stored and fenced."""
    ctx = tick.ctx
    kinds = activity_kinds(ctx.config)
    if not kinds:
        return
    state = ctx.ledger.connection_row(ctx.name)
    watermark = state.activity_watermark if state is not None else None
    if watermark is None:
        since = datetime.combine(ctx.settings.backfill.subtract_from(tick.now.date()),
                                 datetime.min.time(), tzinfo=UTC)
    else:
        since = watermark - timedelta(seconds=ctx.settings.overlap)
    read = kept = 0
    deals: set[str] = set()
    tick.check()
    for page in ctx.connector.changed_activities(since, kinds):
        if ctx.stop.is_set():
            break
        read += len(page.activities)
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            links = store.tracked_links(conn, ctx.name, page.activities)
            linked = [(a, found) for a in page.activities if (found := links.deals_of(a))]
            kept += len(linked)
            affected = store.store_activities(conn, ctx.name, linked)
            store.mark_replan(conn, ctx.name, affected, tick.now)
            deals |= affected
            if page.watermark is not None:
                store.set_activity_watermark(conn, ctx.name, page.watermark)
        tick.check()
    tick.counts.activities_read += read
    ctx.log.info("activity.read", read=read, kept=kept, deals=len(deals),
                 kinds=sorted(str(k) for k in kinds), since=since.isoformat())
    if ctx.stop.is_set():
        return
    floor = tick.now - timedelta(seconds=ctx.settings.overlap)  # (as pull does for deals)
    with ctx.ledger.write() as conn:
        ctx.leases.fence(conn, tick.lease)
        current = ctx.ledger.connection_row_in(conn, ctx.name)
        if current is not None and (current.activity_watermark is None
                                    or current.activity_watermark < floor):
            store.set_activity_watermark(conn, ctx.name, floor)


def replan_due(tick: Tick) -> None:
    """Re-plan, with their activity from the ledger, the enrollments whose re-plan moment has
    come (activity changed, a skip_if create date, a pause's end, a max_wait deadline)."""
    ctx = tick.ctx
    done: set[str] = set()
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            due = [e for e in store.due_for_replan(conn, ctx.name, tick.now, REPLAN_BATCH)
                   if e.deal_id not in done]
        if not due:
            return
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            deals = {e.deal_id: e.deal() for e in due}
            given = store.deal_activity(conn, ctx.name, list(deals))
            used: dict[str, PlanInputs] = {}
            for enrolled in due:
                inputs = plan_lost(tick, conn, deals[enrolled.deal_id], enrolled, force=True,
                                   activity=given.get(enrolled.deal_id))
                keep_used(used, inputs)
            store_inputs(tick, conn, used)
        done.update(deals)


