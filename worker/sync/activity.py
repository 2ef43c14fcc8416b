"""The activity stage of a tick (issue 13): read the CRM activities the rules need (first in
the tick, before the deal pull), keep them linked to the tracked deals they concern, and
re-plan the deals whose activity changed or whose plan changes by itself (a skip_if task's
create date, a pause's end, a max_wait deadline).

- Which kinds: those of `skip_if` rules, `task` when a step has `after` (winback's tasks'
  completions), `meeting` for `stop.on_meeting` when set explicitly in the file (or when
  another rule already makes the connection read activity). None: no activity call at all.
- Each page is stored with the activity watermark it reached and the re-plan marks of the
  deals it concerns in ONE transaction fenced by the lease: a crash loses nothing (the next
  tick reads again from the watermark and re-plans what was marked).
- Every activity read is kept, linked or not: a deal that starts being tracked later (the
  pull after the read, a later tick) is linked to those of it, its account and its contacts
  before it is planned (`prepare_plans`), so its first plan is final.
- Tasks of a deal marked for re-planning are not sent (`Ledger.due_tasks`) until it is.
- Where the read cannot see deletions (HubSpot search leaves archived engagements out), the
  activities about to cause a new `skip_if` decision are first asked for by id
  (`confirm_skip_causes`): those gone are flagged deleted and the decision is made without
  them. Nothing is asked when no new decision is pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from connectors.models import ActivityKind, Deal
from worker.cadence.fingerprint import PlanInputs
from worker.ledger import activities as store
from worker.ledger.records import Enrollment, EnrollmentStatus
from worker.sync.context import Tick
from worker.sync.inputs import activity_kinds, skip_kinds
from worker.sync.plan import keep_used, plan_cycle, plan_lost, store_inputs

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
            linked = [(a, links.deals_of(a)) for a in page.activities]
            kept += sum(1 for _, found in linked if found)
            # (all are kept: one on an account or a contact may concern a deal tracked later)
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
        deals = {e.deal_id: e.deal() for e in due}
        confirm_skip_causes(tick, [(deals[e.deal_id], e) for e in due])
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            given = store.deal_activity(conn, ctx.name, list(deals))
            used: dict[str, PlanInputs] = {}
            for enrolled in due:
                inputs = plan_lost(tick, conn, deals[enrolled.deal_id], enrolled, force=True,
                                   activity=given.get(enrolled.deal_id))
                keep_used(used, inputs)
            store_inputs(tick, conn, used)
        done.update(deals)




def prepare_plans(tick: Tick, pairs: Sequence[tuple[Deal, Enrollment | None]]) -> None:
    """Before these lost deals are planned on a connection that reads activity: those that
    start being tracked (new, or lost again after a stop) are linked to the activities the
    ledger holds of them, their accounts and their contacts (read earlier, while no tracked
    deal was theirs, or by this tick's read); then the causes of new skip_if decisions are
    confirmed (`confirm_skip_causes`). Each in its own fenced transaction: a crash between
    them leaves links that the next tick makes again."""
    ctx = tick.ctx
    if not pairs or not activity_kinds(ctx.config):
        return
    new = [d for d, e in pairs if e is None or e.status is EnrollmentStatus.STOPPED]
    if new:
        if tick.stored_activity is None:
            with ctx.ledger.engine.connect() as conn:
                tick.stored_activity = store.stored_activity(conn, ctx.name)
        stored = tick.stored_activity
        links = {d.id: found for d in new if (found := stored.of(d))}
        if links:
            with ctx.ledger.write() as conn:
                ctx.leases.fence(conn, tick.lease)
                store.link_new(conn, ctx.name, links)
    confirm_skip_causes(tick, pairs)


def confirm_skip_causes(tick: Tick, pairs: Sequence[tuple[Deal, Enrollment | None]]
                        ) -> None:
    """Before these deals are re-planned for good, on a CRM whose activity read cannot see
    deletions: the activities that would cause a new skip_if decision are asked for by id
    (one batch read per engagement object), and those the CRM no longer has are flagged
    deleted in the ledger (their other deals re-planned). The plan without them may name
    another cause, asked for in turn. No call when no new decision is pending."""
    ctx = tick.ctx
    kinds = skip_kinds(ctx.config)
    if not kinds or not pairs or ctx.connector.sees_deleted_activities:
        return
    confirmed: set[str] = set()
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            given = store.deal_activity(conn, ctx.name, [d.id for d, _ in pairs])
        pending: dict[str, ActivityKind] = {}
        for deal, enrolled in pairs:
            act = given[deal.id]
            cycle = plan_cycle(enrolled)
            if cycle is None or not any(a.kind in kinds and not a.deleted
                                        and a.id not in confirmed for a in act.activities):
                continue  # (no activity that could cause a decision still unconfirmed)
            plan = ctx.planner.plan(deal, tick.now, cycle=cycle, activity=act,
                                    arm=enrolled.stored_arm if enrolled is not None else None)
            for skip in plan.skipped:
                ref = skip.activity
                if ref is not None and skip.key is not None and skip.key not in act.skipped \
                        and ref.id not in confirmed:
                    pending[ref.id] = ref.kind
        if not pending:
            return
        tick.check()
        gone = ctx.connector.missing_activities(pending)
        confirmed |= set(pending) - gone
        if not gone:
            return
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            linked = store.mark_deleted(conn, ctx.name, gone)
            store.mark_replan(conn, ctx.name, linked, tick.now)
        ctx.log.info("activity.deleted", ids=sorted(gone), deals=len(linked))
