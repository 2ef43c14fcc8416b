"""The per-owner daily cap in the ledger: before tasks are written, the owners whose plans
changed this tick have their unwritten tasks placed again over all of the connection's deals
(worker/cadence/capacity.py decides; tasks written never move). Only what changes is written,
so a rerun or another replica that sees the same ledger decides the same and writes nothing."""

from __future__ import annotations

from sqlalchemy import Connection

from worker.cadence.capacity import CAP_REASON, CapItem, apply_cap
from worker.cadence.tasks import reminder_instant
from worker.ledger.records import TaskStatus
from worker.sync.context import Tick


def note_owner(tick: Tick, owner_id: str | None) -> None:
    """An owner whose planned tasks changed: its days are placed again before writing."""
    if owner_id is not None and tick.ctx.planner.has_cap:
        tick.cap_owners.add(owner_id)


def enforce_cap(tick: Tick, conn: Connection) -> None:
    """Place the unwritten tasks of the owners noted this tick under their daily caps (in the
    caller's fenced transaction)."""
    ctx = tick.ctx
    owners = sorted(tick.cap_owners)
    tick.cap_owners.clear()
    if not owners:
        return
    planner = ctx.planner
    rows, taken = ctx.ledger.cap_rows(conn, ctx.name, owners)
    result = apply_cap([CapItem(r.key, r.owner_id, r.priority, r.planned, r.latest)
                        for r in rows], planner.daily_cap,
                       lambda owner, day: planner.owner_by_id(owner).calendar.next_working(day),
                       taken)
    reminder = ctx.config.defaults.reminder_time
    moves, skips = [], []
    for row in rows:
        if row.key in result.skipped:
            if row.status is not TaskStatus.SKIPPED:
                skips.append(row.id)
                tick.counts.skipped_by_cap += 1
                ctx.log.info("task.skipped", deal_id=row.deal_id, key=row.key,
                             owner_id=row.owner_id, due_date=str(row.planned),
                             reason=CAP_REASON)
                ctx.ledger.record(conn, ctx.name, "task.skipped", row.deal_id, tick.now,
                                  key=row.key, owner_id=row.owner_id, reason=CAP_REASON)
            continue
        day = result.placed[row.key]
        if day != row.due or row.status is TaskStatus.SKIPPED:
            zone_name = planner.owner_by_id(row.owner_id).zone_name
            moves.append((row.id, day, reminder_instant(day, reminder, zone_name)))
            if day != row.planned:
                tick.counts.moved_by_cap += 1
                ctx.log.info("task.moved", deal_id=row.deal_id, key=row.key,
                             owner_id=row.owner_id,
                             planned=str(row.planned), due_date=str(day), reason=CAP_REASON)
    ctx.ledger.move_for_cap(conn, moves, skips, tick.now)
