"""Write: reconcile what a crash left `sending`, write due tasks in full batches, close tasks of
stopped cadences. A row is marked `sending` (fenced) before the CRM call and `written` with its
CRM id after; the CRM write itself is keyed, so a repeat is absorbed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection

from connectors.errors import RetryableError
from connectors.models import Deal, TaskDraft, WriteResult
from worker.cadence.tasks import start_of_day
from worker.ledger.records import CancelReason, Enrollment, OutboxTask, TaskStatus
from worker.sync.cap import enforce_cap
from worker.sync.context import Tick
from worker.sync.refusals import OWNER_ERRORS
from worker.sync.setup import SETUP_CHANGED, forget_setup

RETRY_BACKOFF = timedelta(minutes=5)  # a record the CRM said to retry waits at least this


def reconcile(tick: Tick) -> None:
    """Rows left `sending` by a crash or timeout: look them up by key before any re-send."""
    ctx = tick.ctx
    with ctx.ledger.engine.connect() as conn:
        rows = ctx.ledger.sending(conn, ctx.name)
    if not rows:
        return
    tick.check()
    found = ctx.connector.find_tasks([r.key for r in rows])
    grace = lookup_grace(tick)
    with ctx.ledger.write() as conn:
        ctx.leases.fence(conn, tick.lease)
        for row in rows:
            ref = found.get(row.key)
            if ref is not None:
                ctx.ledger.reconcile(conn, row.id, ref.crm_id, tick.now)
                tick.counts.tasks_reconciled += 1
                ctx.log.info("task.reconciled", deal_id=row.deal_id, key=row.key,
                             crm_id=ref.crm_id)
            elif not grace or row.sending_since is None \
                    or row.sending_since < tick.now - grace:
                ctx.ledger.reconcile(conn, row.id, None, tick.now)
                ctx.log.info("task.requeued", deal_id=row.deal_id, key=row.key)


def lookup_grace(tick: Tick) -> timedelta:
    """How long a row left `sending` and not found is held before it is re-sent: nothing in
    upsert mode (a re-send is absorbed), else as long as the connector's lookups may trail
    its writes (`Connector.lookup_lag`: a task created just before a crash may not be
    searchable yet on HubSpot, so winback waits before deciding it was never created)."""
    if tick.ctx.key_mode == "upsert":
        return timedelta(0)
    return tick.ctx.connector.lookup_lag


def write_due(tick: Tick, *, full_only: bool = False) -> None:
    """Send the due tasks in batches of the connector's size; `full_only`: only full batches
    (between the chunks of a page: the rest goes with the page's last chunk)."""
    ctx = tick.ctx
    batch = max(1, ctx.connector.write_batch)
    while not ctx.stop.is_set():
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            enforce_cap(tick, conn)  # (before anything of those owners is written)
            rows = ctx.ledger.due_tasks(conn, ctx.name, tick.now, batch)
            if not rows or (full_only and len(rows) < batch):
                return
            snapshots = ctx.ledger.enrollments(conn, ctx.name, list({r.deal_id for r in rows}))
            deals: dict[str, Deal] = {}
            drafts: list[TaskDraft] = []
            claims: list[tuple[OutboxTask, str, str]] = []
            for row in rows:
                resume = _pause_end(tick, snapshots.get(row.deal_id), deals)
                if resume is not None:  # (the plan already creates nothing before it)
                    ctx.ledger.requeue(conn, row.id, tick.now, not_before=resume)
                    continue
                draft = _draft(tick, row, snapshots.get(row.deal_id), deals)
                if draft is None:
                    ctx.ledger.cancel(conn, row.id, CancelReason.RULE_REMOVED, tick.now)
                    continue
                drafts.append(draft)
                claims.append((row, draft.subject, draft.body))
            ctx.ledger.claim_for_sending(conn, claims, tick.lease.epoch, tick.now)
        if not drafts:
            continue
        tick.check()
        try:
            results = ctx.connector.write_tasks(drafts)
        except RetryableError:
            # Maybe written, maybe not: the rows stay `sending` and are reconciled first thing
            # next tick.
            raise
        _apply(tick, rows, results, _owner_names(snapshots))
        if ctx.progress is not None:
            ctx.progress("write", tick.counts.tasks_written, None)


def _pause_end(tick: Tick, enrolled: Enrollment | None, deals: dict[str, Deal]
               ) -> datetime | None:
    """When the deal is paused (`fields.pause_until`) past now: the start of that day in
    its owner's zone, before which none of its tasks is sent."""
    if enrolled is None:
        return None
    deal = deals.get(enrolled.deal_id)
    if deal is None:
        deal = deals[enrolled.deal_id] = enrolled.deal()
    if deal.paused_until is None:
        return None
    owner = tick.ctx.planner.owner_context(deal)
    resume = start_of_day(deal.paused_until, owner.zone_name if owner is not None else None)
    return resume if resume > tick.now else None


def _draft(tick: Tick, row: OutboxTask, enrolled: Enrollment | None,
           deals: dict[str, Deal]) -> TaskDraft | None:
    """The planned task projected onto what the CRM writes, with its text rendered; None when
    its deal or its step is gone."""
    planned = row.task
    account_id = enrolled.account_id if enrolled is not None else None
    deal: Deal | None = None
    if enrolled is not None and not planned.is_notice:
        deal = deals.get(row.deal_id)
        if deal is None:
            deal = deals[row.deal_id] = enrolled.deal()
    text = tick.ctx.planner.text(planned, deal, enrolled.day0 if enrolled else None)
    return planned.draft(*text, account_id) if text is not None else None


def _owner_names(snapshots: dict[str, Enrollment]) -> dict[str, str]:
    """Owner id -> name from the deals' snapshots (for the fix a refusal prints)."""
    return dict(owner for s in snapshots.values() if (owner := s.owner_name()) is not None)


def _apply(tick: Tick, rows: list[OutboxTask], results: list[WriteResult],
           owner_names: dict[str, str]) -> None:
    ctx = tick.ctx
    by_key = {r.key: r for r in results}
    written: list[tuple[int, str | None]] = []
    with ctx.ledger.write() as conn:
        ctx.leases.fence(conn, tick.lease)
        for row in rows:
            result = by_key.get(row.key)
            if result is None:
                continue  # not sent (cancelled above) or not answered: stays as it is
            if result.ok:
                written.append((row.id, result.crm_id))
                ctx.log.info("task.written", deal_id=row.deal_id, key=row.key, step=row.task.step,
                             crm_id=result.crm_id, due_date=str(row.task.due_date),
                             owner_id=row.owner_id)
                continue
            fallback = ctx.planner.fallback_for(row.deal_id, frozenset({row.owner_id}))
            _refused(tick, conn, row, result, fallback, owner_names)
        ctx.ledger.mark_written(conn, written, tick.now)
    tick.counts.tasks_written += len(written)
    ctx.metrics.tasks.labels(ctx.name, TaskStatus.WRITTEN).inc(len(written))


def _refused(tick: Tick, conn: Connection, row: OutboxTask, result: WriteResult,
             fallback: str | None, owner_names: dict[str, str]) -> None:
    """A record the CRM refused: another owner, a later retry, or a final failure (`failed`,
    with the CRM's code and message, counted by reason)."""
    ctx = tick.ctx
    log = ctx.log.bind(deal_id=row.deal_id, key=row.key, step=row.task.step)
    error = f"{result.error_code}: {result.message}"
    if result.error_code in OWNER_ERRORS and fallback and row.owner_id != fallback:
        ctx.ledger.requeue(conn, row.id, tick.now, error=error, owner_id=fallback)
        tick.counts.owner_fallbacks += 1
        log.warning("owner.fallback", owner_id=row.owner_id, fallback_owner=fallback,
                    error=result.error_code)
        ctx.ledger.record(conn, ctx.name, "owner.fallback", row.deal_id, tick.now,
                          owner_id=row.owner_id, fallback_owner=fallback)
    elif result.retryable:
        # Not before the next tick: a retry in this one would hammer the same error.
        ctx.ledger.requeue(conn, row.id, tick.now, error=error,
                           not_before=tick.now + RETRY_BACKOFF * row.attempts)
        log.warning("task.retry", error=error)
    else:
        reason = result.error_code or "UNKNOWN"
        if reason in SETUP_CHANGED and ctx.setup_done:  # learn the CRM's setup again
            forget_setup(ctx, conn, why=reason)
        ctx.ledger.mark_failed(conn, row.id, error, tick.now)
        counts = tick.counts
        counts.tasks_failed += 1
        counts.failed_by_reason[reason] = counts.failed_by_reason.get(reason, 0) + 1
        if reason in OWNER_ERRORS:
            counts.refused_owners[row.owner_id] = owner_names.get(row.owner_id, "")
        ctx.metrics.tasks.labels(ctx.name, TaskStatus.FAILED).inc()
        log.warning("task.failed", error=error, reason=reason, owner_id=row.owner_id)


def close_stopped(tick: Tick) -> None:
    """Mark written tasks of stopped cadences completed in the CRM (stop.on_reopen)."""
    ctx = tick.ctx
    batch = max(1, ctx.connector.write_batch)
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            rows = ctx.ledger.to_close(conn, ctx.name, batch)
        closing = [(r, r.crm_id) for r in rows if r.crm_id]
        if not closing:
            return
        tick.check()
        results = {r.key: r for r in ctx.connector.close_tasks([c for _, c in closing])}
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            for row, crm_id in closing:
                result = results.get(crm_id)
                if result is not None and not result.ok and result.retryable:
                    continue
                ctx.ledger.mark_closed(conn, row.id, completed=bool(result and result.ok),
                                       now=tick.now)
                tick.counts.tasks_closed += 1
        ctx.metrics.tasks.labels(ctx.name, "closed").inc(len(closing))
        ctx.log.info("tasks.closed", count=len(closing))
