"""Pull and plan: changed deals since the watermark -> enrollments, planned tasks, stops.

Each page is stored in one transaction, fenced by the lease, together with the watermark
advance: a crash loses no page and a stale process writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Row

from connectors.base import DealPage
from connectors.models import Deal
from worker.cadence.calendar import zone
from worker.cadence.engine import DealPlan, PlannedTask, Planner
from worker.cadence.fingerprint import PlanInputs, decode_owner, encode_owner, owner_input
from worker.cadence.keys import task_key
from worker.cadence.templates import deal_view, owner_view, render
from worker.ledger.store import TaskRow
from worker.sync.context import Tick
from worker.sync.prefetch import read_ahead

REBORN_CADENCE = "reborn"


def pull(tick: Tick, conn_for_dry_run: Connection | None = None,
         after_page: Callable[[Tick], None] | None = None) -> None:
    """Read every deal changed since the watermark (minus the overlap), page by page.
    `after_page` runs once each page is stored (the tick writes due tasks there, so that the
    CRM's write budget is used while the next pages are read)."""
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
    for page in read_ahead(ctx.connector.changed_deals(since)):
        if ctx.stop.is_set():
            break
        seen += len(page.deals)
        tick.counts.pulled += len(page.deals)
        ctx.metrics.deals_pulled.labels(ctx.name).inc(len(page.deals))
        with_contacts = _attach_stakeholders(tick, page)
        if conn_for_dry_run is not None:
            _store_page(tick, conn_for_dry_run, with_contacts, page.watermark)
        else:
            with ctx.ledger.write() as conn:
                ctx.leases.fence(conn, tick.lease)
                _store_page(tick, conn, with_contacts, page.watermark)
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
    wanted = [d.id for d in candidates if not _unchanged(tick, d, known.get(d.id))
              and ctx.planner.needs_contacts(d)]
    if not wanted:
        return page.deals
    tick.check()
    contacts = tick.ctx.connector.stakeholders(wanted)
    return [d.model_copy(update={"contacts": tuple(contacts.get(d.id, ()))})
            if d.id in contacts else d for d in page.deals]


def _unchanged(tick: Tick, deal: Deal, enrolled: Row[Any] | None) -> bool:
    """Seen before (the overlap re-reads), not modified since, planned under today's rules."""
    return (enrolled is not None and enrolled.status in ("active", "unmatched")
            and enrolled.deal_modified_at is not None and deal.modified_at is not None
            and deal.modified_at <= enrolled.deal_modified_at
            and enrolled.rule_version == tick.ctx.planner.rule_version(enrolled.cadence, deal))


def _too_old(deal: Deal, oldest: date) -> bool:
    closed = deal.closed_at
    if closed is None:
        return False
    day = closed.date() if isinstance(closed, datetime) else closed
    return day < oldest


def _store_page(tick: Tick, conn: Connection, deals: list[Deal],
                watermark: datetime | None) -> None:
    ctx = tick.ctx
    known = ctx.ledger.enrollments(conn, ctx.name, [d.id for d in deals])
    opened: list[Deal] = []
    used: dict[str, PlanInputs] = {}
    for deal in deals:
        enrolled = known.get(deal.id)
        if deal.is_lost:
            _used(used, _lost(tick, conn, deal, enrolled))
            continue
        if enrolled is not None and enrolled.status in ("active", "unmatched"):
            reason = "deleted" if deal.deleted else "won" if deal.is_won else "reopened"
            _stop(tick, conn, enrolled, deal, reason, reborn_deal=deal)
        if deal.is_won and not deal.deleted:
            _won_back(tick, conn, deal, enrolled)
        if not deal.is_closed and not deal.deleted and deal.account_id:
            opened.append(deal)
    _keep_inputs(tick, conn, used)
    if opened and ctx.config.stop.on_new_deal_for_account:
        _new_deals_on_accounts(tick, conn, opened)
    if watermark is not None:
        ctx.ledger.set_watermark(conn, ctx.name, watermark)


VERIFY_EVERY = timedelta(hours=24)
VERIFY_BATCH = 500


def verify_tracked(tick: Tick) -> None:
    """Once a day, re-read every tracked deal by id. A pull sees what changed; it cannot see
    what vanished (HubSpot search never returns archived deals), so this is how a deleted
    deal's cadence stops everywhere."""
    ctx = tick.ctx
    state = ctx.ledger.connection_row(ctx.name)
    if state is None or (state.verified_at is not None
                         and tick.now - state.verified_at < VERIFY_EVERY):
        return
    after = 0
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            batch = ctx.ledger.tracked_after(conn, ctx.name, after, VERIFY_BATCH)
        if not batch:
            break
        after = batch[-1].id
        tick.check()
        current = ctx.connector.deals_by_id([row.deal_id for row in batch])
        gone = [d for d in current if not d.is_lost]
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)  # renews it: a large ledger takes a while
            if gone:
                _store_page(tick, conn, gone, None)
    if not ctx.stop.is_set():
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            ctx.ledger.set_verified(conn, ctx.name, tick.now)


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
                          g.cadence if g.status == "active" else None,
                          decode_owner(g.owner_input)).fingerprint]
            stale = ctx.ledger.enrollments_in_groups(conn, ctx.name, groups, limit=200)
        stale = [e for e in stale if e.deal_id not in done]  # (guards against non-progress)
        if not stale:
            return
        deals = {e.deal_id: enrolled_deal(e) for e in stale}
        wanted = [i for i, d in deals.items() if not d.contacts and ctx.planner.needs_contacts(d)]
        if wanted:
            tick.check()
            found = ctx.connector.stakeholders(wanted)
            deals.update({i: deals[i].model_copy(update={"contacts": tuple(found.get(i, ()))})
                          for i in wanted})
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            used: dict[str, PlanInputs] = {}
            for enrolled in stale:
                _used(used, _lost(tick, conn, deals[enrolled.deal_id], enrolled, force=True))
            _keep_inputs(tick, conn, used)
        done.update(deals)


def _used(used: dict[str, PlanInputs], inputs: PlanInputs | None) -> None:
    if inputs is not None:
        used[inputs.fingerprint] = inputs


def _keep_inputs(tick: Tick, conn: Connection, used: dict[str, PlanInputs]) -> None:
    """Store what this transaction's fingerprints stand for (a few rows, for plan --diff)."""
    tick.ctx.ledger.store_plan_inputs(conn, ((f, p.stored()) for f, p in used.items()),
                                      tick.now)


def _lost(tick: Tick, conn: Connection, deal: Deal, enrolled: Row[Any] | None, *,
          force: bool = False) -> PlanInputs | None:
    """Enroll or re-plan a lost deal; returns the plan inputs it stored (None: untouched)."""
    ctx = tick.ctx
    log = ctx.log.bind(deal_id=deal.id)
    cycle = 1
    if enrolled is not None:
        if not force and _unchanged(tick, deal, enrolled):
            return None
        cycle = int(enrolled.cycle)
        if enrolled.status == "stopped":
            cycle += 1  # lost again after it was reborn: a new cycle, new keys
        elif enrolled.status not in ("active", "unmatched"):
            return None
    plan = ctx.planner.plan(deal, tick.now, cycle=cycle)
    oldest = ctx.settings.backfill.subtract_from(tick.now.date())
    if enrolled is None and plan.day0 is not None and plan.day0 < oldest:
        return None  # lost before the backfill window: not ours to follow up
    if plan.reason is not None and plan.cadence is not None:
        tick.counts.deals_skipped += 1
        ctx.metrics.deals_skipped.labels(ctx.name, plan.reason).inc()
        log.warning("deal.skipped", reason=plan.reason, cadence=plan.cadence)
        _record(tick, conn, "deal.skipped", deal.id, reason=plan.reason)
    if plan.owner_fallback and plan.tasks:
        tick.counts.owner_fallbacks += 1
        log.info("owner.fallback", owner_id=deal.owner.id if deal.owner else None,
                 fallback_owner=plan.owner_id)
    rows = [_task_row(ctx.name, t, ctx.planner, deal) for t in plan.tasks]
    inputs = ctx.planner.plan_inputs(plan.cadence, owner_input(deal))
    values = _enrollment_values(tick, deal, plan, cycle, inputs)
    if enrolled is None:
        ctx.ledger.insert_enrollment(conn, values)
        inserted = ctx.ledger.insert_tasks(conn, rows, tick.now)
        if plan.cadence is None:
            tick.counts.unmatched += 1
            log.info("deal.unmatched", reason=plan.reason)
        else:
            tick.counts.enrolled += 1
            ctx.metrics.deals_enrolled.labels(ctx.name, plan.cadence).inc()
            log.info("deal.enrolled", cadence=plan.cadence, tasks=inserted, day0=str(plan.day0))
            _record(tick, conn, "deal.enrolled", deal.id, cadence=plan.cadence, tasks=inserted)
    else:
        changes = {k: v for k, v in values.items()
                   if k not in ("connection", "deal_id", "enrolled_at")}
        if cycle != enrolled.cycle:  # a new loss: the last cycle's rebirth is history now
            changes.update(enrolled_at=tick.now, reborn_at=None, reborn_deal_id=None,
                           won_back_at=None, won_back_amount=None)
        ctx.ledger.update_enrollment(conn, ctx.name, deal.id, **changes)
        ctx.ledger.upsert_tasks(conn, rows, tick.now)
        dropped = ctx.ledger.cancel_missing(conn, ctx.name, deal.id, (r.key for r in rows),
                                            tick.now)
        tick.counts.replanned += 1
        log.info("deal.replanned", cadence=plan.cadence, tasks=len(rows), dropped=dropped,
                 cycle=cycle)
    tick.counts.tasks_planned += len(rows)
    ctx.metrics.tasks.labels(ctx.name, "planned").inc(len(rows))
    return inputs


def _enrollment_values(tick: Tick, deal: Deal, plan: DealPlan, cycle: int,
                       inputs: PlanInputs) -> dict[str, Any]:
    return {
        "connection": tick.ctx.name, "deal_id": deal.id, "cycle": cycle,
        "cadence": plan.cadence, "rule_version": inputs.fingerprint,
        "owner_input": encode_owner(owner_input(deal)),
        "status": "active" if plan.cadence is not None else "unmatched",
        "stop_reason": None, "stopped_at": None, "account_id": deal.account_id,
        "owner_id": plan.owner_id, "loss_reason": (deal.loss_reason or "")[:255] or None,
        "amount": deal.amount, "day0": plan.day0, "deal_json": deal.model_dump(mode="json"),
        "deal_modified_at": deal.modified_at, "enrolled_at": tick.now,
    }


def _task_row(connection: str, task: PlannedTask, planner: Planner, deal: Deal) -> TaskRow:
    return TaskRow(
        key=task.key, connection=connection, deal_id=task.deal_id, cadence=task.cadence,
        step=task.step, occurrence=task.occurrence, contact_id=task.contact_id,
        owner_id=task.owner_id, due_date=task.due_date, remind_at=task.remind_at,
        create_after=planner.create_after(deal, task),
        channel=str(task.channel), priority=str(task.priority))


def _stop(tick: Tick, conn: Connection, enrolled: Row[Any], deal: Deal, reason: str,
          *, reborn_deal: Deal) -> None:
    """Stop a cadence: cancel what is unwritten, flag open tasks for closing, tell the owner."""
    ctx = tick.ctx
    policy = ctx.config.stop
    close = policy.on_reopen == "close_open_tasks"
    cancelled = ctx.ledger.stop_deal_tasks(conn, ctx.name, enrolled.deal_id, reason,
                                           close_written=close, now=tick.now)
    reborn = reason in ("reopened", "new_deal", "won")
    values: dict[str, Any] = {"status": "stopped", "stop_reason": reason, "stopped_at": tick.now}
    if reborn:
        values.update(reborn_at=tick.now, reborn_deal_id=reborn_deal.id)
    if reason == "won":
        values.update(won_back_at=tick.now, won_back_amount=reborn_deal.amount)
    ctx.ledger.update_enrollment(conn, ctx.name, enrolled.deal_id, **values)
    tick.counts.stopped += 1
    ctx.metrics.deals_stopped.labels(ctx.name, reason).inc()
    ctx.log.info("cadence.stopped", deal_id=enrolled.deal_id, reason=reason,
                 cancelled=cancelled, cadence=enrolled.cadence)
    _record(tick, conn, "cadence.stopped", enrolled.deal_id, reason=reason, cancelled=cancelled,
            reborn_deal_id=reborn_deal.id)
    if not reborn:
        return
    tick.counts.reborn += 1
    ctx.metrics.deals_reborn.labels(ctx.name, reason).inc()
    ctx.log.info("deal.reborn", deal_id=enrolled.deal_id, kind=reason,
                 reborn_deal_id=reborn_deal.id)
    if policy.notify_owner and enrolled.cadence is not None:
        _notify_owner(tick, conn, enrolled, reborn_deal, reason)


def _notify_owner(tick: Tick, conn: Connection, enrolled: Row[Any], new_deal: Deal,
                  reason: str) -> None:
    """One "Opportunity reborn" task for the owner, keyed so it is written once per cycle."""
    ctx = tick.ctx
    lost = Deal.model_validate(enrolled.deal_json)
    owner = ctx.planner.owner_context(lost)
    if owner is None:
        return
    today = tick.now.astimezone(zone(owner.zone_name)).date()
    due = owner.calendar.next_working(today)
    key = task_key(ctx.name, enrolled.deal_id, f"{REBORN_CADENCE}@{enrolled.cycle}", "notify",
                   0, None)
    how = {"reopened": "the deal was reopened", "won": "the deal was won",
           "new_deal": f"a new deal was opened on the account: {new_deal.name}"}[reason]
    subject = render(ctx.config.stop.notify_subject, {
        "deal": deal_view(lost, enrolled.day0), "owner": owner_view(owner.owner_id, lost.owner),
        "contact": None, "step": None})
    body = (f"winback stopped the follow-up cadence '{enrolled.cadence}' for {lost.name}: "
            f"{how}. Unwritten follow-ups were dropped.")
    row = TaskRow(key=key, connection=ctx.name, deal_id=new_deal.id if reason == "new_deal"
                  else enrolled.deal_id, cadence=REBORN_CADENCE, step="notify", occurrence=0,
                  contact_id=None, owner_id=owner.owner_id, due_date=due,
                  remind_at=datetime.combine(due, ctx.config.defaults.reminder_time,
                                             tzinfo=zone(owner.zone_name)).astimezone(UTC),
                  create_after=tick.now, channel="todo", priority="high")
    if ctx.ledger.insert_tasks(conn, [row], tick.now):
        ctx.ledger.set_text(conn, key, subject, body)


def _won_back(tick: Tick, conn: Connection, deal: Deal, enrolled: Row[Any] | None) -> None:
    ctx = tick.ctx
    links = ctx.ledger.reborn_links(conn, ctx.name, [deal.id])
    for link in links:
        ctx.ledger.update_enrollment(conn, ctx.name, link.deal_id, won_back_at=tick.now,
                                     won_back_amount=deal.amount)
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
        for deal in by_account.get(enrolled.account_id, []):
            if deal.id == enrolled.deal_id or not _opened_after(deal, enrolled.day0):
                continue
            _stop(tick, conn, enrolled, enrolled_deal(enrolled), "new_deal", reborn_deal=deal)
            break


def enrolled_deal(enrolled: Row[Any]) -> Deal:
    return Deal.model_validate(enrolled.deal_json)


def _opened_after(deal: Deal, day0: date | None) -> bool:
    if day0 is None:
        return False
    created = deal.created_at or deal.modified_at
    return created is not None and created.astimezone(UTC).date() >= day0


def _record(tick: Tick, conn: Connection, kind: str, deal_id: str | None, **data: Any) -> None:
    tick.ctx.ledger.record(conn, tick.ctx.name, kind, deal_id, tick.now, **data)
