"""The outcome report's ledger side (issue 14): the steps plans skipped (kept with their
reason), task completion times, and the aggregate reads of `winback report` and the backlog
gauges. Every count is one grouped SQL query: the report reads no row per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)

from worker.cadence.outcome import Skipped, skip_reason
from worker.ledger.records import CancelReason, TaskStatus
from worker.ledger.schema import connection_state, enrollment, skip_outcome, task
from worker.ledger.store import _insert, chunks

_JOIN = and_(enrollment.c.connection == task.c.connection,
             enrollment.c.deal_id == task.c.deal_id)


def record_skips(conn: Connection, connection: str, deal_id: str, cadence: str | None,
                 skips: Sequence[Skipped], now: datetime, *, replace: bool) -> None:
    """Keep the steps a plan skipped, each with its reason; `replace`: a re-plan, whose
    skips replace the deal's previous ones (a step no longer skipped is not counted)."""
    if replace:
        conn.execute(delete(skip_outcome).where(skip_outcome.c.connection == connection,
                                                skip_outcome.c.deal_id == deal_id))
    if cadence is None or not skips:
        return
    rows: dict[tuple[str, int, str], dict[str, object]] = {}
    for s in skips:
        rows[(s.step, s.occurrence, s.contact_id or "")] = {
            "connection": connection, "deal_id": deal_id, "step": s.step,
            "occurrence": s.occurrence, "contact": s.contact_id or "", "cadence": cadence,
            "reason": skip_reason(s), "detail": s.reason, "due_date": s.due_date,
            "decided_at": now}
    statement = _insert(conn, skip_outcome)
    conn.execute(statement.on_conflict_do_nothing(), list(rows.values()))


def mark_completed_at(conn: Connection, connection: str, done: Mapping[str, datetime | None],
                      *, by: str = "key") -> None:
    """Written tasks the CRM reports completed, with when (by task key or CRM id)."""
    column = task.c.key if by == "key" else task.c.crm_id
    dated = [(k, at) for k, at in done.items() if at is not None]
    undated = [k for k, at in done.items() if at is None]
    if dated:
        conn.execute(update(task).where(task.c.connection == connection,
                                        column == bindparam("k"))
                     .values(completed=True, completed_at=bindparam("at")),
                     [{"k": k, "at": at} for k, at in dated])
    for part in chunks(undated):
        conn.execute(update(task).where(task.c.connection == connection, column.in_(part))
                     .values(completed=True))


@dataclass(frozen=True)
class StepOutcome:
    cadence: str
    step: str
    written: int
    on_time: int
    late: int
    completed_undated: int
    open: int
    open_overdue: int


def step_outcomes(conn: Connection, connections: Sequence[str], since: date, today: date
                  ) -> list[StepOutcome]:
    """Per (cadence, step) of deals lost on or after `since`: written tasks, completed on
    time (on or before the due date) or late, open and overdue (as of `today`)."""
    written = task.c.status == TaskStatus.WRITTEN
    by_winback = task.c.cancel_reason == CancelReason.CLOSED  # closed by winback on a stop
    done = and_(written, task.c.completed.is_(True),
                or_(task.c.cancel_reason.is_(None), ~by_winback))
    # (the UTC day: SQLite's date() gives 'YYYY-MM-DD' as due_date is stored; PostgreSQL a date)
    done_day = func.date(task.c.completed_at)
    due = task.c.due_date
    # A written task closed by winback on a stop is no longer open (nor done by the owner).
    still_open = and_(written, task.c.completed.is_(False),
                      or_(task.c.cancel_reason.is_(None),
                          task.c.cancel_reason != CancelReason.CLOSED))

    def n(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    query = (select(task.c.cadence, task.c.step, n(written),
                    n(and_(done, task.c.completed_at.is_not(None), done_day <= due)),
                    n(and_(done, task.c.completed_at.is_not(None), done_day > due)),
                    n(and_(done, task.c.completed_at.is_(None))),
                    n(still_open), n(and_(still_open, task.c.due_date < today)))
             .join(enrollment, _JOIN)
             .where(task.c.connection.in_(connections), enrollment.c.day0 >= since)
             .group_by(task.c.cadence, task.c.step))
    out: dict[tuple[str, str], list[int]] = {}
    for cadence, step, *counts in conn.execute(query):
        key = (str(cadence).split("@", 1)[0], str(step))
        found = out.setdefault(key, [0] * 6)
        for index, value in enumerate(counts):
            found[index] += int(value or 0)
    return [StepOutcome(c, s, *v) for (c, s), v in sorted(out.items())]


def skip_counts(conn: Connection, connections: Sequence[str], since: date
                ) -> list[tuple[str, str, str, int]]:
    """(cadence, step, reason, count) of the steps plans skipped, deals lost since `since`."""
    join = and_(enrollment.c.connection == skip_outcome.c.connection,
                enrollment.c.deal_id == skip_outcome.c.deal_id)
    return [(str(c), str(s), str(r), int(n)) for c, s, r, n in conn.execute(
        select(skip_outcome.c.cadence, skip_outcome.c.step, skip_outcome.c.reason, func.count())
        .join(enrollment, join)
        .where(skip_outcome.c.connection.in_(connections), enrollment.c.day0 >= since)
        .group_by(skip_outcome.c.cadence, skip_outcome.c.step, skip_outcome.c.reason))]


def exit_counts(conn: Connection, connections: Sequence[str], since: date,
                horizon_start: Mapping[str, date]) -> list[tuple[str, str, str | None, int, int]]:
    """(cadence, enrollment status, stop reason, count, of which lost before the cadence's
    horizon start) of deals lost since `since`: an active one lost before it has reached its
    horizon."""
    cutoff = case(*[(enrollment.c.cadence == c, literal(d, Date))
                    for c, d in sorted(horizon_start.items())],
                  else_=literal(date.min, Date)) if horizon_start else literal(date.min, Date)
    past = func.sum(case((enrollment.c.day0 < cutoff, 1), else_=0))
    return [(str(c), str(s), None if r is None else str(r), int(n), int(p or 0))
            for c, s, r, n, p in conn.execute(
                select(enrollment.c.cadence, enrollment.c.status, enrollment.c.stop_reason,
                       func.count(), past)
                .where(enrollment.c.connection.in_(connections),
                       enrollment.c.day0 >= since, enrollment.c.cadence.is_not(None))
                .group_by(enrollment.c.cadence, enrollment.c.status,
                          enrollment.c.stop_reason))]


DIMENSIONS = ("cadence", "loss_reason", "competitor", "owner_id")


def winback_by(conn: Connection, connections: Sequence[str], dimension: str,
               windows: Mapping[int, date]) -> list[tuple[str, dict[int, tuple[int, int, float]]]]:
    """Per value of `dimension`, per window (days -> first loss day in it): (deals lost in
    the window, of which won back, amount won back)."""
    column = enrollment.c[dimension]
    cols: list[ColumnElement[Any]] = []
    for start in windows.values():
        inside = enrollment.c.day0 >= start
        won = and_(inside, enrollment.c.won_back_at.is_not(None))
        cols += [func.sum(case((inside, 1), else_=0)), func.sum(case((won, 1), else_=0)),
                 func.sum(case((won, func.coalesce(enrollment.c.won_back_amount, 0.0)),
                               else_=0.0))]
    oldest = min(windows.values())
    rows = conn.execute(select(func.coalesce(column, literal("(none)")), *cols)
                        .where(enrollment.c.connection.in_(connections),
                               enrollment.c.day0 >= oldest, enrollment.c.cadence.is_not(None))
                        .group_by(func.coalesce(column, literal("(none)"))))
    out = []
    for value, *sums in rows:
        per: dict[int, tuple[int, int, float]] = {}
        for index, days in enumerate(windows):
            n, won, amount = sums[3 * index: 3 * index + 3]
            per[days] = (int(n or 0), int(won or 0), float(amount or 0.0))
        out.append((str(value), per))
    return sorted(out)


@dataclass(frozen=True)
class Reborn:
    connection: str
    deal_id: str
    cadence: str
    reason: str | None
    day0: date
    reborn_at: datetime
    last_step: str | None  # the last touch completed before the rebirth
    last_completed_at: datetime | None


def reborn_deals(conn: Connection, connections: Sequence[str], since: date) -> list[Reborn]:
    """Each reborn deal lost since `since`, with the last of its tasks completed (with a
    known time) before it was reborn."""
    done = (select(task.c.connection, task.c.deal_id, task.c.step, task.c.completed_at,
                   func.row_number().over(
                       partition_by=(task.c.connection, task.c.deal_id),
                       order_by=(task.c.completed_at.desc(), task.c.id.desc())).label("rank"))
            .join(enrollment, _JOIN)
            .where(task.c.connection.in_(connections), enrollment.c.day0 >= since,
                   enrollment.c.reborn_at.is_not(None), task.c.completed.is_(True),
                   task.c.completed_at.is_not(None),
                   or_(task.c.cancel_reason.is_(None),
                       task.c.cancel_reason != CancelReason.CLOSED),
                   task.c.completed_at <= enrollment.c.reborn_at)
            .subquery())
    last = select(done).where(done.c.rank == 1).subquery()
    query = (select(enrollment.c.connection, enrollment.c.deal_id, enrollment.c.cadence,
                    enrollment.c.stop_reason, enrollment.c.day0, enrollment.c.reborn_at,
                    last.c.step, last.c.completed_at)
             .outerjoin(last, and_(last.c.connection == enrollment.c.connection,
                                   last.c.deal_id == enrollment.c.deal_id))
             .where(enrollment.c.connection.in_(connections), enrollment.c.day0 >= since,
                    enrollment.c.reborn_at.is_not(None), enrollment.c.cadence.is_not(None))
             .order_by(enrollment.c.connection, enrollment.c.deal_id))
    return [Reborn(str(c), str(d), str(cad), None if r is None else str(r), day0, at,
                   None if step is None else str(step), completed)
            for c, d, cad, r, day0, at, step, completed in conn.execute(query)]


@dataclass(frozen=True)
class Backlog:
    open: int  # written tasks not completed (nor closed by winback)
    overdue: int  # of which due before today
    largest_owner: int  # the most open tasks one owner has
    largest_owner_id: str | None


def backlog(conn: Connection, connection: str, today: date) -> Backlog:
    """Open and overdue written tasks of a connection, and the largest owner backlog."""
    still_open = and_(task.c.connection == connection, task.c.status == TaskStatus.WRITTEN,
                      task.c.completed.is_(False),
                      or_(task.c.cancel_reason.is_(None),
                          task.c.cancel_reason != CancelReason.CLOSED))
    total, overdue = conn.execute(select(
        func.count(), func.sum(case((task.c.due_date < today, 1), else_=0)))
        .where(still_open)).one()
    top = conn.execute(select(task.c.owner_id, func.count().label("n")).where(still_open)
                       .group_by(task.c.owner_id).order_by(func.count().desc(), task.c.owner_id)
                       .limit(1)).first()
    return Backlog(int(total or 0), int(overdue or 0), int(top[1]) if top else 0,
                   str(top[0]) if top else None)



def open_written(conn: Connection, connection: str, after_id: int, limit: int
                 ) -> list[tuple[int, str]]:
    """(id, CRM id) of written tasks not known to be completed (nor closed by winback), in
    id order after `after_id`."""
    return [(int(i), str(c)) for i, c in conn.execute(
        select(task.c.id, task.c.crm_id).where(
            task.c.connection == connection, task.c.status == TaskStatus.WRITTEN,
            task.c.completed.is_(False), task.c.crm_id.is_not(None), task.c.id > after_id,
            or_(task.c.cancel_reason.is_(None), task.c.cancel_reason != CancelReason.CLOSED))
        .order_by(task.c.id).limit(limit))]


def set_status_read(conn: Connection, connection: str, at: datetime) -> None:
    conn.execute(update(connection_state).where(connection_state.c.name == connection)
                 .values(status_read_at=at))
