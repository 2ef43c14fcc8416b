"""Write: reconcile what a crash left `sending`, write due tasks in full batches, close tasks of
stopped cadences. A row is marked `sending` (fenced) before the CRM call and `written` with its
CRM id after; the CRM write itself is keyed, so a repeat is absorbed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Row

from connectors.errors import RetryableError
from connectors.models import Channel, Deal, Priority, TaskDraft, WriteResult
from worker.cadence.engine import PlannedTask
from worker.refusals import OWNER_ERRORS
from worker.sync.context import Tick
from worker.sync.pull import REBORN_CADENCE

# Without an idempotent upsert, a task created just before a crash may not be searchable yet
# (HubSpot search lags writes): wait this long before deciding it was never created.
SEARCH_LAG_GRACE = timedelta(minutes=2)
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
    with ctx.ledger.write() as conn:
        ctx.leases.fence(conn, tick.lease)
        for row in rows:
            ref = found.get(row.key)
            if ref is not None:
                ctx.ledger.set_task(conn, row.id, status="written", crm_id=ref.crm_id,
                                    written_at=tick.now, updated_at=tick.now, last_error=None)
                tick.counts.tasks_reconciled += 1
                ctx.log.info("task.reconciled", deal_id=row.deal_id, key=row.key,
                             crm_id=ref.crm_id)
            elif ctx.key_mode == "upsert" or row.sending_since is None \
                    or row.sending_since < tick.now - SEARCH_LAG_GRACE:
                ctx.ledger.set_task(conn, row.id, status="queued", updated_at=tick.now)
                ctx.log.info("task.requeued", deal_id=row.deal_id, key=row.key)


def write_due(tick: Tick) -> None:
    ctx = tick.ctx
    batch = max(1, ctx.connector.write_batch)
    while not ctx.stop.is_set():
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            rows = ctx.ledger.due_tasks(conn, ctx.name, tick.now, batch)
            if not rows:
                return
            snapshots = ctx.ledger.enrollments(conn, ctx.name, list({r.deal_id for r in rows}))
            deals: dict[str, Deal] = {}
            drafts: list[TaskDraft] = []
            sending: list[dict[str, Any]] = []
            for row in rows:
                draft = _draft(tick, row, snapshots.get(row.deal_id), deals)
                if draft is None:
                    ctx.ledger.set_task(conn, row.id, status="cancelled",
                                        cancel_reason="rule_removed", updated_at=tick.now)
                    continue
                drafts.append(draft)
                sending.append({"id": row.id, "status": "sending",
                                "claimed_epoch": tick.lease.epoch, "sending_since": tick.now,
                                "attempts": row.attempts + 1, "subject": draft.subject,
                                "body": draft.body, "updated_at": tick.now})
            ctx.ledger.update_tasks(conn, sending)
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


def _draft(tick: Tick, row: Row[Any], enrolled: Row[Any] | None,
           deals: dict[str, Deal]) -> TaskDraft | None:
    ctx = tick.ctx
    account_id = enrolled.account_id if enrolled is not None else None
    if row.cadence == REBORN_CADENCE:
        subject, body = row.subject or "Opportunity reborn", row.body or ""
    else:
        if enrolled is None:
            return None
        cadence_id = row.cadence.split("@", 1)[0]
        cadence = ctx.planner.cadence(cadence_id)
        if cadence is None or all(s.id != row.step for s in cadence.steps):
            return None
        deal = deals.get(row.deal_id)
        if deal is None:
            deal = deals[row.deal_id] = Deal.model_validate(enrolled.deal_json)
        planned = PlannedTask(
            key=row.key, connection=row.connection, deal_id=row.deal_id, cadence=cadence_id,
            step=row.step, occurrence=row.occurrence, contact_id=row.contact_id,
            due_date=row.due_date, remind_at=row.remind_at, create_on=row.due_date,
            owner_id=row.owner_id, channel=Channel(row.channel),
            priority=Priority(row.priority))
        subject, body = ctx.planner.render(planned, deal, enrolled.day0)
    return TaskDraft(key=row.key, deal_id=row.deal_id, owner_id=row.owner_id, subject=subject,
                     body=body, due_date=row.due_date, remind_at=row.remind_at,
                     channel=Channel(row.channel), priority=Priority(row.priority),
                     contact_id=row.contact_id, account_id=account_id)


def _owner_names(snapshots: dict[str, Row[Any]]) -> dict[str, str]:
    """Owner id -> name from the deals' snapshots (for the fix a refusal prints)."""
    names: dict[str, str] = {}
    for snapshot in snapshots.values():
        owner = (snapshot.deal_json or {}).get("owner") or {}
        if owner.get("id"):
            names[str(owner["id"])] = str(owner.get("name") or "")
    return names


def _apply(tick: Tick, rows: list[Row[Any]], results: list[WriteResult],
           owner_names: dict[str, str]) -> None:
    ctx = tick.ctx
    by_key = {r.key: r for r in results}
    fallback = ctx.settings.fallback_owner
    written: list[dict[str, Any]] = []
    with ctx.ledger.write() as conn:
        ctx.leases.fence(conn, tick.lease)
        for row in rows:
            result = by_key.get(row.key)
            if result is None:
                continue  # not sent (cancelled above) or not answered: stays as it is
            if result.ok:
                written.append({"id": row.id, "status": "written", "crm_id": result.crm_id,
                                "written_at": tick.now, "updated_at": tick.now,
                                "last_error": None})
                ctx.log.info("task.written", deal_id=row.deal_id, key=row.key, step=row.step,
                             crm_id=result.crm_id, due_date=str(row.due_date),
                             owner_id=row.owner_id)
                continue
            _refused(tick, conn, row, result, fallback, owner_names)
        ctx.ledger.update_tasks(conn, written)
    tick.counts.tasks_written += len(written)
    ctx.metrics.tasks.labels(ctx.name, "written").inc(len(written))


def _refused(tick: Tick, conn: Connection, row: Row[Any], result: WriteResult,
             fallback: str | None, owner_names: dict[str, str]) -> None:
    """A record the CRM refused: another owner, a later retry, or a final failure (`failed`,
    with the CRM's code and message, counted by reason)."""
    ctx = tick.ctx
    log = ctx.log.bind(deal_id=row.deal_id, key=row.key, step=row.step)
    error = f"{result.error_code}: {result.message}"
    if result.error_code in OWNER_ERRORS and fallback and row.owner_id != fallback:
        ctx.ledger.set_task(conn, row.id, status="queued", owner_id=fallback,
                            last_error=error, updated_at=tick.now)
        tick.counts.owner_fallbacks += 1
        log.warning("owner.fallback", owner_id=row.owner_id, fallback_owner=fallback,
                    error=result.error_code)
        ctx.ledger.record(conn, ctx.name, "owner.fallback", row.deal_id, tick.now,
                          owner_id=row.owner_id, fallback_owner=fallback)
    elif result.retryable:
        # Not before the next tick: a retry in this one would hammer the same error.
        ctx.ledger.set_task(conn, row.id, status="queued", last_error=error,
                            create_after=tick.now + RETRY_BACKOFF * row.attempts,
                            updated_at=tick.now)
        log.warning("task.retry", error=error)
    else:
        reason = result.error_code or "UNKNOWN"
        ctx.ledger.set_task(conn, row.id, status="failed", last_error=error,
                            updated_at=tick.now)
        counts = tick.counts
        counts.tasks_failed += 1
        counts.failed_by_reason[reason] = counts.failed_by_reason.get(reason, 0) + 1
        if reason in OWNER_ERRORS:
            counts.refused_owners[row.owner_id] = owner_names.get(row.owner_id, "")
        ctx.metrics.tasks.labels(ctx.name, "failed").inc()
        log.warning("task.failed", error=error, reason=reason, owner_id=row.owner_id)


def close_stopped(tick: Tick) -> None:
    """Mark written tasks of stopped cadences completed in the CRM (stop.on_reopen)."""
    ctx = tick.ctx
    batch = max(1, ctx.connector.write_batch)
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            rows = ctx.ledger.to_close(conn, ctx.name, batch)
        rows = [r for r in rows if r.crm_id]
        if not rows:
            return
        tick.check()
        results = {r.key: r for r in ctx.connector.close_tasks([r.crm_id for r in rows])}
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            for row in rows:
                result = results.get(row.crm_id)
                if result is not None and not result.ok and result.retryable:
                    continue
                ctx.ledger.set_task(conn, row.id, close_requested=False,
                                    completed=bool(result and result.ok),
                                    cancel_reason="closed", updated_at=tick.now)
                tick.counts.tasks_closed += 1
        ctx.metrics.tasks.labels(ctx.name, "closed").inc(len(rows))
        ctx.log.info("tasks.closed", count=len(rows))
