"""The cheap task status read (issue 14): when no rule reads winback's own task activity (the
activity read gives completions then), once a day read whether winback's open written tasks
were completed in the CRM, and when, for the outcome report (on time / late) and the backlog
gauges. Only open written tasks are read, in the CRM's largest batches; a tick with nothing
due for this read makes no call (the idle tick stays at one call)."""

from __future__ import annotations

from datetime import timedelta

from connectors.models import ActivityKind
from worker.ledger import outcomes
from worker.sync.context import Tick
from worker.sync.inputs import activity_kinds

EVERY = timedelta(days=1)
BATCH = 2000  # open tasks per ledger read (the connector batches its calls within)


def read_task_status(tick: Tick) -> None:
    ctx = tick.ctx
    if ActivityKind.TASK in activity_kinds(ctx.config):
        return  # the activity read keeps completions current
    state = ctx.ledger.connection_row(ctx.name)
    last = state.status_read_at if state is not None else None
    if last is not None and tick.now - last < EVERY:
        return
    if last is None:  # the first day starts now: tasks written before are read in a day
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            outcomes.set_status_read(conn, ctx.name, tick.now)
        return
    read = done = 0
    after = 0
    while not ctx.stop.is_set():
        with ctx.ledger.engine.connect() as conn:
            rows = outcomes.open_written(conn, ctx.name, after, BATCH)
        if not rows:
            break
        after = rows[-1][0]
        tick.check()
        found = ctx.connector.task_status([crm_id for _, crm_id in rows])
        completed = {s.crm_id: s.completed_at for s in found.values() if s.completed}
        with ctx.ledger.write() as conn:
            ctx.leases.fence(conn, tick.lease)
            outcomes.mark_completed_at(conn, ctx.name, completed, by="crm_id")
        read += len(rows)
        done += len(completed)
    if ctx.stop.is_set():
        return
    with ctx.ledger.write() as conn:
        ctx.leases.fence(conn, tick.lease)
        outcomes.set_status_read(conn, ctx.name, tick.now)
    ctx.log.info("tasks.status_read", read=read, completed=done)
