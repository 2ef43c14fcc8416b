"""Plan and store: a page of deals -> the planner's plans -> the ledger's transitions (enroll,
re-plan, stop, won back), inside the page's fenced transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from sqlalchemy import Connection

from connectors.models import Deal
from worker.cadence.activity import DealActivity
from worker.cadence.engine import DealPlan
from worker.cadence.fingerprint import PlanInputs, encode_owner, owner_input
from worker.ledger import activities, outcomes
from worker.ledger.batch import NewEnrollments
from worker.ledger.records import Enrollment, EnrollmentStatus, NewPlan, StopReason, TaskStatus
from worker.sync.cap import note_owner
from worker.sync.context import Tick
from worker.sync.inputs import activity_for, next_replan, reads_activity


def unchanged(tick: Tick, deal: Deal, enrolled: Enrollment | None) -> bool:
    """Seen before (the overlap re-reads), not modified since, planned under today's rules."""
    return (enrolled is not None and enrolled.tracked
            and enrolled.deal_modified_at is not None and deal.modified_at is not None
            and deal.modified_at <= enrolled.deal_modified_at
            and enrolled.rule_version == tick.ctx.planner.rule_version(enrolled.cadence, deal))


def store_page(tick: Tick, conn: Connection, deals: list[Deal]) -> None:
    """Every deal of a page: lost ones enrolled or re-planned, closed or reopened ones stop
    their cadence, won ones win back the deal they were reborn from. On a connection that
    reads activity, the tick read it first and the deals that start being tracked were
    linked to what it holds (worker/sync/activity.py `prepare_plans`): these plans are
    final, their tasks written while later pages are read."""
    ctx = tick.ctx
    known = ctx.ledger.enrollments(conn, ctx.name, [d.id for d in deals])
    batch = NewEnrollments(ctx.name)
    opened: list[Deal] = []
    won: list[Deal] = []  # (won back after their own stops above, one look-up a page)
    used: dict[str, PlanInputs] = {}
    given = activity_for(tick, conn, [d for d in deals if d.is_lost])
    for deal in deals:
        enrolled = known.get(deal.id)
        if deal.is_lost:
            keep_used(used, plan_lost(tick, conn, deal, enrolled, activity=given.get(deal.id),
                                      batch=batch))
            continue
        if enrolled is not None and enrolled.tracked:
            reason = StopReason.DELETED if deal.deleted else StopReason.WON if deal.is_won \
                else StopReason.REOPENED
            _stop(tick, conn, enrolled, reason, reborn_deal=deal)
        if deal.is_won and not deal.deleted:
            won.append(deal)
        if not deal.is_closed and not deal.deleted and deal.account_id:
            opened.append(deal)
    _won_back(tick, conn, won)
    batch.flush(conn)  # (before the new deals below look for active enrollments)
    _log_enrolled(tick, batch.by_cadence)
    store_inputs(tick, conn, used)
    if opened and ctx.config.stop.on_new_deal_for_account:
        _new_deals_on_accounts(tick, conn, opened)


def _log_enrolled(tick: Tick, by_cadence: dict[str, tuple[int, int]]) -> None:
    """A page's new enrollments: counted, and told in one line (each deal's own line is at
    debug level, and in the ledger's events)."""
    ctx = tick.ctx
    for cadence, (deals, _tasks) in by_cadence.items():
        ctx.metrics.deals_enrolled.labels(ctx.name, cadence).inc(deals)
    if by_cadence:
        ctx.log.info("deals.enrolled", deals=sum(n for n, _ in by_cadence.values()),
                     tasks=sum(t for _, t in by_cadence.values()),
                     cadences={c: n for c, (n, _) in sorted(by_cadence.items())})


def keep_used(used: dict[str, PlanInputs], inputs: PlanInputs | None) -> None:
    if inputs is not None:
        used[inputs.fingerprint] = inputs


def store_inputs(tick: Tick, conn: Connection, used: dict[str, PlanInputs]) -> None:
    """Store what this transaction's fingerprints stand for (a few rows, for plan --diff)."""
    tick.ctx.ledger.store_plan_inputs(conn, ((f, p.stored()) for f, p in used.items()),
                                      tick.now)


def plan_cycle(enrolled: Enrollment | None) -> int | None:
    """The loss cycle a plan of this lost deal is for (None: not planned, no longer tracked).
    Lost again after it was reborn: a new cycle, new keys."""
    if enrolled is None:
        return 1
    if enrolled.status is EnrollmentStatus.STOPPED:
        return enrolled.cycle + 1
    return enrolled.cycle if enrolled.tracked else None


def plan_lost(tick: Tick, conn: Connection, deal: Deal, enrolled: Enrollment | None, *,
              force: bool = False, activity: DealActivity | None = None,
              batch: NewEnrollments | None = None) -> PlanInputs | None:
    """Enroll or re-plan a lost deal with its activity (None: the connection reads none and
    the deal is not paused); returns the plan inputs it stored (None: untouched). A plan
    that stops the cadence (opted out in the CRM, a meeting with stop.on_meeting: stop)
    stops it as a reopen does. With `batch`, a new enrollment that goes on waits there for
    the end of the page (stored in the same transaction, a few statements per page)."""
    ctx = tick.ctx
    log = ctx.log.bind(deal_id=deal.id)
    if enrolled is not None and not force and unchanged(tick, deal, enrolled):
        return None
    cycle = plan_cycle(enrolled)
    if cycle is None:
        return None
    plan = ctx.planner.plan(deal, tick.now, cycle=cycle, activity=activity,
                            arm=enrolled.stored_arm if enrolled is not None else None)
    oldest = ctx.settings.backfill.subtract_from(tick.now.date())
    if enrolled is None and plan.day0 is not None and plan.day0 < oldest:
        return None  # lost before the backfill window: not ours to follow up
    if plan.stop is not None and enrolled is not None \
            and enrolled.status is EnrollmentStatus.STOPPED and enrolled.stop_reason == plan.stop:
        return None  # stopped for this already (still opted out; the same meeting)
    if plan.reason is not None and plan.cadence is not None and plan.stop is None:
        tick.counts.deals_skipped += 1
        ctx.metrics.deals_skipped.labels(ctx.name, plan.reason).inc()
        log.warning("deal.skipped", reason=plan.reason, cadence=plan.cadence)
        _record(tick, conn, "deal.skipped", deal.id, reason=plan.reason)
    if plan.owner_fallback and plan.tasks:
        tick.counts.owner_fallbacks += 1
        log.info("owner.fallback", owner_id=deal.owner.id if deal.owner else None,
                 fallback_owner=plan.owner_id)
    if ctx.planner.has_cap:  # (the last day the daily cap may move each task to)
        plan = replace(plan, tasks=tuple(replace(t, latest_due=ctx.planner.cap_latest(
            t, plan.day0)) for t in plan.tasks))
        note_owner(tick, plan.owner_id)
        if enrolled is not None and enrolled.owner_id != plan.owner_id:
            note_owner(tick, enrolled.owner_id)  # (its tasks went to another owner)
    inputs = ctx.planner.plan_inputs(plan.cadence, owner_input(deal))
    replan_at = None if plan.stop else next_replan(tick, deal, plan, activity)
    stored = _new_plan(deal, plan, cycle, inputs, replan_at)
    if deal.contacts and reads_activity(tick):
        activities.set_contacts(conn, ctx.name, deal.id, deal.contacts)
    _skips(tick, conn, deal.id, plan)
    batched = enrolled is None and batch is not None and plan.stop is None
    if batched:
        assert batch is not None
        inserted = batch.enroll(deal.id, stored, plan.tasks, plan.skipped, tick.now)
    else:
        outcomes.record_skips(conn, ctx.name, deal.id, plan.cadence, plan.skipped, tick.now,
                              replace=enrolled is not None)
    if enrolled is None:
        if not batched:
            inserted = ctx.ledger.enroll(conn, ctx.name, deal.id, stored, plan.tasks, tick.now)
        if plan.cadence is None:
            tick.counts.unmatched += 1
            log.info("deal.unmatched", reason=plan.reason)
        elif batched:  # (one line per page at info, `deals.enrolled`; each deal at debug)
            assert batch is not None
            tick.counts.enrolled += 1
            batch.enrolled(deal.id, plan.cadence, inserted, tick.now)
            log.debug("deal.enrolled", cadence=plan.cadence, tasks=inserted,
                      day0=str(plan.day0))
        else:
            tick.counts.enrolled += 1
            ctx.metrics.deals_enrolled.labels(ctx.name, plan.cadence).inc()
            log.info("deal.enrolled", cadence=plan.cadence, tasks=inserted, day0=str(plan.day0))
            _record(tick, conn, "deal.enrolled", deal.id, cadence=plan.cadence, tasks=inserted)
    elif plan.stop is None or not enrolled.tracked:  # (a stop: the new cycle's row first)
        dropped = ctx.ledger.replan(conn, ctx.name, deal.id, stored,
                                    () if plan.stop else plan.tasks, tick.now,
                                    new_cycle=cycle != enrolled.cycle)
        tick.counts.replanned += 1
        log.info("deal.replanned", cadence=plan.cadence, tasks=len(plan.tasks),
                 dropped=dropped, cycle=cycle)
    if plan.stop is not None:
        now_enrolled = ctx.ledger.enrollments(conn, ctx.name, [deal.id])[deal.id]
        reason = StopReason.OPTED_OUT if plan.stop == "opted_out" else StopReason.MEETING
        _stop(tick, conn, now_enrolled, reason, reborn_deal=deal)
        return inputs
    tick.counts.waiting += len(plan.waiting)
    tick.counts.tasks_planned += len(plan.tasks)
    ctx.metrics.tasks.labels(ctx.name, TaskStatus.PLANNED).inc(len(plan.tasks))
    return inputs


def _new_plan(deal: Deal, plan: DealPlan, cycle: int, inputs: PlanInputs,
              replan_at: datetime | None) -> NewPlan:
    return NewPlan(
        cycle=cycle, cadence=plan.cadence, rule_version=inputs.fingerprint,
        owner_input=encode_owner(owner_input(deal)), account_id=deal.account_id,
        owner_id=plan.owner_id, loss_reason=(deal.loss_reason or "")[:255] or None,
        competitor=(deal.competitor or "")[:255] or None,
        amount=deal.amount, day0=plan.day0, deal_json=deal.model_dump(mode="json"),
        deal_modified_at=deal.modified_at, replan_at=replan_at, waiting=len(plan.waiting),
        experiment=plan.experiment, arm=plan.arm)


def _skips(tick: Tick, conn: Connection, deal_id: str, plan: DealPlan) -> None:
    """Keep the plan's new skip_if decisions (they stay), each logged with its activity."""
    ctx = tick.ctx
    for skip in activities.record_skips(conn, ctx.name, deal_id, plan.skipped, tick.now):
        ref = skip.activity
        tick.counts.skipped_by_activity += 1
        ctx.log.info("task.skipped", deal_id=deal_id, key=skip.key, step=skip.step,
                     occurrence=skip.occurrence, due_date=str(skip.due_date),
                     activity_kind=str(ref.kind) if ref else None,
                     activity_id=ref.id if ref else None)
        _record(tick, conn, "task.skipped", deal_id, key=skip.key, step=skip.step,
                activity=ref.as_dict() if ref else None)


def _stop(tick: Tick, conn: Connection, enrolled: Enrollment, reason: StopReason,
          *, reborn_deal: Deal) -> None:
    """Stop a cadence: cancel what is unwritten, flag open tasks for closing, tell the owner."""
    ctx = tick.ctx
    policy = ctx.config.stop
    cancelled = ctx.ledger.stop(
        conn, ctx.name, enrolled.deal_id, reason,
        close_written=policy.on_reopen == "close_open_tasks", reborn_deal_id=reborn_deal.id,
        won_amount=reborn_deal.amount, now=tick.now)
    tick.counts.stopped += 1
    ctx.metrics.deals_stopped.labels(ctx.name, reason).inc()
    ctx.log.info("cadence.stopped", deal_id=enrolled.deal_id, reason=reason,
                 cancelled=cancelled, cadence=enrolled.cadence)
    _record(tick, conn, "cadence.stopped", enrolled.deal_id, reason=reason, cancelled=cancelled,
            reborn_deal_id=reborn_deal.id)
    if not reason.reborn:
        return
    tick.counts.reborn += 1
    ctx.metrics.deals_reborn.labels(ctx.name, reason).inc()
    ctx.log.info("deal.reborn", deal_id=enrolled.deal_id, kind=reason,
                 reborn_deal_id=reborn_deal.id)
    if policy.notify_owner and enrolled.cadence is not None:
        notice = ctx.planner.reborn_notice(
            enrolled.deal(), enrolled.day0, cycle=enrolled.cycle, cadence_id=enrolled.cadence,
            reason=reason, new_deal=reborn_deal, now=tick.now)
        if notice is not None:  # (its key names the cycle: inserted once)
            ctx.ledger.insert_tasks(conn, [notice], tick.now, day0=enrolled.day0)


def _won_back(tick: Tick, conn: Connection, won: list[Deal]) -> None:
    """The won deals win back the enrollments they were the rebirth of."""
    ctx = tick.ctx
    if not won:
        return
    by_id = {deal.id: deal for deal in won}
    for link in ctx.ledger.reborn_links(conn, ctx.name, list(by_id)):
        deal = by_id[str(link.reborn_deal_id)]
        ctx.ledger.won_back(conn, ctx.name, link.deal_id, deal.amount, tick.now)
        tick.counts.won_back += 1
        ctx.log.info("deal.won_back", deal_id=link.deal_id, won_deal_id=deal.id,
                     amount=deal.amount)
        _record(tick, conn, "deal.won_back", link.deal_id, won_deal_id=deal.id,
                amount=deal.amount)


def _new_deals_on_accounts(tick: Tick, conn: Connection, opened: list[Deal]) -> None:
    ctx = tick.ctx
    by_account: dict[str, list[Deal]] = {}
    for deal in opened:
        by_account.setdefault(str(deal.account_id), []).append(deal)
    for enrolled in ctx.ledger.active_on_accounts(conn, ctx.name, list(by_account)):
        for deal in by_account.get(enrolled.account_id or "", []):
            if deal.id == enrolled.deal_id or not _opened_after(deal, enrolled.day0):
                continue
            _stop(tick, conn, enrolled, StopReason.NEW_DEAL, reborn_deal=deal)
            break


def _opened_after(deal: Deal, day0: date | None) -> bool:
    if day0 is None:
        return False
    created = deal.created_at or deal.modified_at
    return created is not None and created.astimezone(UTC).date() >= day0


def _record(tick: Tick, conn: Connection, kind: str, deal_id: str | None, **data: object
            ) -> None:
    tick.ctx.ledger.record(conn, tick.ctx.name, kind, deal_id, tick.now, **data)
