"""One tick of one connection: lease -> reconcile -> activity read -> pull & plan -> re-plan
rule edits and due re-plans -> write -> close -> task status read (daily) -> release.
`winback sync` runs it once; `winback run` on a schedule."""

from __future__ import annotations

import contextlib
import time
import traceback
from datetime import timedelta
from functools import partial

import structlog

from connectors.errors import BudgetExhausted, FatalConnectionError, RetryableError
from worker.ledger.leases import LeaseLost
from worker.ledger.outcomes import backlog
from worker.sync.activity import read_activity, replan_due
from worker.sync.context import SyncContext, Tick, TickResult
from worker.sync.pull import pull, replan_changed_rules, verify_tracked
from worker.sync.refusals import INACTIVE_OWNER_CODE, failed_by_reason
from worker.sync.setup import forget_setup, run_setup
from worker.sync.status import read_task_status
from worker.sync.write import close_stopped, reconcile, write_due
from worker.telemetry.logs import scrub
from worker.telemetry.metrics import OUTBOX_STATUSES

RETRY_SOON = timedelta(seconds=60)
MAX_ERROR = 400  # characters of an error kept in the ledger and the log line
BUDGET_PAUSE = timedelta(hours=1)


def run_tick(ctx: SyncContext, *, ignore_schedule: bool = False, dry_run: bool = False
             ) -> TickResult:
    started = time.monotonic()
    lease = ctx.leases.acquire(ctx.name, ignore_schedule=ignore_schedule)
    if lease is None:
        owner, _, _ = ctx.leases.holder(ctx.name)
        return TickResult(ctx.name, "busy" if owner else "not_due")
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(connection=ctx.name, crm=ctx.settings.kind,
                                           run_id=lease.run_id)
    ctx.metrics.lease_held.labels(ctx.name).set(1)
    tick = Tick(ctx, lease, ctx.clock(), dry_run=dry_run)
    calls_before = _calls(ctx)
    result, error = "ok", None
    next_due = tick.now + timedelta(seconds=ctx.settings.poll_every)
    try:
        # Every CRM call of the tick checks the lease first, and renews it when it is getting
        # old (worker/ledger/leases.py `Leases.guard`): setup calls and long reads included.
        # A dry run only checks it: its pull holds a transaction the renewal would wait on.
        ctx.connector.begin_run(lease.run_id,
                                lease.check if dry_run else ctx.leases.guard(lease))
        if not ctx.setup_done:
            run_setup(tick)
        if dry_run:
            _dry_run(tick)
        else:
            reconcile(tick)  # before anything can be sent again
            read_activity(tick)  # only when the rules read activity (sync/activity.py)
            pull(tick, after_page=write_due,  # writes start while later pages are read
                 after_chunk=partial(write_due, full_only=True))
            verify_tracked(tick)  # once a day: deals that vanished (deleted) stop too
            replan_changed_rules(tick)
            replan_due(tick)  # activity changed, a skip_if create date, a pause's end
            write_due(tick)
            close_stopped(tick)
            read_task_status(tick)  # once a day, when no rule reads task activity
        if ctx.stop.is_set():
            result = "stopped"
    except LeaseLost as exc:
        result, error = "lease_lost", str(exc)
    except BudgetExhausted as exc:
        result, error = "budget", str(exc)
        resume = exc.resume_after or tick.now + BUDGET_PAUSE
        next_due = max(resume, tick.now + RETRY_SOON)
    except FatalConnectionError as exc:
        result, error = "error", f"{exc} ({exc.fix})" if exc.fix else str(exc)
        with contextlib.suppress(Exception):  # the CRM's setup or access may have changed
            forget_setup(ctx, why=type(exc).__name__)
    except RetryableError as exc:
        result, error = "error", str(exc)
        next_due = min(next_due, tick.now + RETRY_SOON)
    except Exception as exc:  # a bug or an unexpected CRM answer: keep the service alive
        result, error = "error", f"{type(exc).__name__}: {str(exc)[:MAX_ERROR]}"
        ctx.log.error("sync.crashed", error=scrub(error),
                      traceback=scrub(traceback.format_exc(limit=8)))
    finally:
        seconds = time.monotonic() - started
        outcome: dict[str, object] = {
            "last_tick_at": tick.now, "last_tick_result": result,
            "last_tick_seconds": round(seconds, 3), "last_error": scrub(error) if error else None,
        }
        if result in ("ok", "stopped"):
            outcome["last_success_at"] = tick.now
        usage = _usage(ctx)
        if usage is not None:
            outcome.update(api_used=usage[0], api_limit=usage[1])
        ctx.connector.begin_run(None)
        # Released whatever the result: after `lease_lost` the release (fenced by owner and
        # epoch) records the outcome only if nobody took the lease over (the local deadline
        # passed, the lease is still ours), and the advisory lock is let go in any case.
        ctx.leases.release(lease, next_due=None if dry_run else next_due,
                           **({} if dry_run else outcome))
        ctx.metrics.lease_held.labels(ctx.name).set(0)
    outcome_result = TickResult(ctx.name, result, tick.counts, seconds, error,
                                _calls(ctx) - calls_before)
    _report(ctx, outcome_result)
    return outcome_result


def _dry_run(tick: Tick) -> None:
    """Pull and plan inside a transaction that is rolled back; nothing is written anywhere."""
    ctx = tick.ctx
    with ctx.ledger.engine.connect() as conn:
        transaction = conn.begin()
        try:
            pull(tick, conn_for_dry_run=conn)
        finally:
            transaction.rollback()


def _calls(ctx: SyncContext) -> int:
    return ctx.connector.calls_made


def _usage(ctx: SyncContext) -> tuple[int, int] | None:
    try:
        usage = ctx.connector.api_usage()
    except Exception:
        return None
    if usage is None:
        return None
    if usage.limit:
        ctx.metrics.api_budget_used.labels(ctx.name).set(usage.share)
    return usage.used, usage.limit


def prime_metrics(ctx: SyncContext) -> None:
    """At startup: every family's series for this connection, with what the ledger knows
    (outbox, failed tasks by reason, last success, API budget), before any tick."""
    owner_code = INACTIVE_OWNER_CODE.get(ctx.settings.kind)
    ctx.metrics.prime(ctx.name, [c.id for c in ctx.config.cadences],
                      [owner_code] if owner_code else [])
    publish_ledger_gauges(ctx)
    state = ctx.ledger.connection_row(ctx.name)
    if state is None:
        return
    if state.last_success_at is not None:
        ctx.metrics.last_success.labels(ctx.name).set(state.last_success_at.timestamp())
    if state.api_limit:
        ctx.metrics.api_budget_used.labels(ctx.name).set((state.api_used or 0)
                                                         / state.api_limit)


def publish_ledger_gauges(ctx: SyncContext) -> None:
    """The gauges read from the ledger: outbox depth, failed tasks by reason, open and overdue
    written tasks and the largest owner backlog."""
    depth = ctx.ledger.outbox_depth(ctx.name)
    for status in OUTBOX_STATUSES:
        ctx.metrics.outbox_depth.labels(ctx.name, status).set(depth.get(status, 0))
    with ctx.ledger.engine.connect() as conn:
        failed = failed_by_reason(conn, ctx.name)
        load = backlog(conn, ctx.name, ctx.clock().date())
    ctx.metrics.tasks_open.labels(ctx.name).set(load.open)
    ctx.metrics.tasks_overdue.labels(ctx.name).set(load.overdue)
    ctx.metrics.owner_backlog_max.labels(ctx.name).set(load.largest_owner)
    gauge = ctx.metrics.tasks_failed
    for labels in [s.labels for m in gauge.collect() for s in m.samples
                   if s.labels.get("connection") == ctx.name]:
        if labels["reason"] not in failed:
            gauge.labels(ctx.name, labels["reason"]).set(0)
    for reason, count in failed.items():
        gauge.labels(ctx.name, reason).set(count)


def _report(ctx: SyncContext, result: TickResult) -> None:
    ctx.metrics.ticks.labels(ctx.name, result.result).inc()
    ctx.metrics.tick_seconds.labels(ctx.name).observe(result.seconds)
    if result.result in ("ok", "stopped"):
        ctx.metrics.last_success.labels(ctx.name).set(time.time())
    publish_ledger_gauges(ctx)
    event = "sync.done" if result.ok else "sync.failed"
    log = ctx.log.info if result.ok else ctx.log.warning
    log(event, result=result.result, seconds=round(result.seconds, 3),
        api_calls=result.api_calls, error=result.error, **result.counts.as_dict(),
        **({"failed_by_reason": result.counts.failed_by_reason}
           if result.counts.failed_by_reason else {}))
    structlog.contextvars.clear_contextvars()
