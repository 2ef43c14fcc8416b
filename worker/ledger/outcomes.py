"""The outcome report's ledger side (issue 14): the steps plans skipped (kept with their
reason), task completion times, and the aggregate reads of `winback report` and the backlog
gauges. The report's counts come from the rollup tables the database keeps exact
(worker/ledger/rollups.py, migration 0007): it reads no row per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
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
from worker.ledger.rollups import REBORN_WINDOWS, SEGMENT_DIMENSIONS
from worker.ledger.schema import (
    connection_state,
    enrollment,
    segment_rollup,
    skip_outcome,
    task,
    task_rollup,
)
from worker.ledger.schema import enrollment_rollup as enrollment_rollup_table
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
    rows = skip_rows(connection, deal_id, cadence, skips, now)
    if rows:
        conn.execute(_insert(conn, skip_outcome).on_conflict_do_nothing(), rows)


def skip_rows(connection: str, deal_id: str, cadence: str | None, skips: Sequence[Skipped],
              now: datetime) -> list[dict[str, object]]:
    """The skip_outcome rows of a plan's skipped steps (one per step, occurrence, contact)."""
    if cadence is None or not skips:
        return []
    rows: dict[tuple[str, int, str], dict[str, object]] = {}
    for s in skips:
        rows[(s.step, s.occurrence, s.contact_id or "")] = {
            "connection": connection, "deal_id": deal_id, "step": s.step,
            "occurrence": s.occurrence, "contact": s.contact_id or "", "cadence": cadence,
            "reason": skip_reason(s), "detail": s.reason, "due_date": s.due_date,
            "decided_at": now}
    return list(rows.values())


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
class StepCounts:
    """Tasks of one (cadence, step, status, completed), of deals lost since the report's
    start, with what the outcome report splits them by."""

    cadence: str  # the cadence id (the task column is `id@version`)
    step: str
    status: TaskStatus
    completed: bool
    by_winback: bool  # a written task winback closed on a stop (not the owner's doing)
    by_cap: bool  # skipped by the owner's daily cap (worker/sync/cap.py)
    count: int
    on_time: int  # completed on or before the due date (UTC day)
    late: int
    undated: int  # completed, time unknown
    overdue: int  # open and due before today


def _n(condition: ColumnElement[bool], value: ColumnElement[Any] | None = None
       ) -> ColumnElement[Any]:
    return func.sum(case((condition, value if value is not None else 1), else_=0))


def step_rollup(conn: Connection, connections: Sequence[str], since: date, today: date
                ) -> list[StepCounts]:
    """Tasks of deals lost on or after `since` by (cadence, step, status, completed, closed
    by winback), with completion on time / late (UTC day against the due date) and
    open-and-overdue counts: read from task_rollup (kept by triggers, worker/ledger/rollups.py),
    a few rows per cadence, step and loss day."""
    r = task_rollup.c
    keys = (r.cadence, r.step, r.status, r.completed, r.cancel_reason)
    query = (select(*keys, func.sum(r.n), _n(r.done == 1, r.n), _n(r.done == 2, r.n),
                    _n(r.done == 3, r.n), _n(and_(r.done == 0, r.due_date < today), r.n))
             .where(r.connection.in_(connections), r.day0 >= since)
             .group_by(*keys).having(func.sum(r.n) > 0))
    return [StepCounts(str(c).split("@", 1)[0], str(s), TaskStatus(st), bool(d),
                       w == CancelReason.CLOSED, w == CancelReason.CAP, int(n), int(a or 0),
                       int(b or 0), int(u or 0), int(o or 0))
            for c, s, st, d, w, n, a, b, u, o in conn.execute(query)]


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


@dataclass(frozen=True)
class EnrollmentGroup:
    """Enrolled deals (with a cadence) lost on or after the report's start, of one cadence,
    loss reason, status and stop reason."""

    cadence: str
    loss_reason: str | None
    status: str
    stop_reason: str | None
    since: int  # lost on or after the report's start
    past_horizon: int  # of those, lost before the cadence's horizon start
    amount_lost: float
    reborn_within: dict[int, int]  # days -> reborn within that many days of the loss
    won_back: int
    amount_won_back: float


def enrollment_rollup(conn: Connection, connections: Sequence[str], since: date,
                      windows: Sequence[int], horizon_start: Mapping[str, date]
                      ) -> list[EnrollmentGroup]:
    """The deal-level figures of the report (exits, the deal table by cadence and loss
    reason) from enrollment_rollup (kept by triggers, worker/ledger/rollups.py)."""
    assert set(windows) <= set(REBORN_WINDOWS), windows
    r = enrollment_rollup_table.c
    cutoff = case(*[(r.cadence == c, literal(d, Date)) for c, d in sorted(horizon_start.items())],
                  else_=literal(date.min, Date)) if horizon_start else literal(date.min, Date)
    cols: list[ColumnElement[Any]] = [
        func.sum(r.n), _n(r.day0 < cutoff, r.n), func.sum(r.amount), _n(r.won, r.n),
        func.sum(r.won_amount)]
    cols += [_n(and_(r.reborn_within > 0, r.reborn_within <= d), r.n) for d in windows]
    keys = (r.cadence, r.loss_reason, r.status, r.stop_reason)
    query = (select(*keys, *cols)
             .where(r.connection.in_(connections), r.day0 >= since)
             .group_by(*keys).having(func.sum(r.n) > 0))
    out = []
    for row in conn.execute(query):
        cadence, loss, status, stop, *sums = row
        n, past, lost_amount, won_n, won_amount = sums[:5]
        reborn = sums[5:]
        out.append(EnrollmentGroup(
            str(cadence), loss or None, str(status), stop or None, int(n or 0),
            int(past or 0), float(lost_amount or 0.0),
            {d: int(v or 0) for d, v in zip(windows, reborn, strict=True)}, int(won_n or 0),
            float(won_amount or 0.0)))
    return out


DIMENSIONS = SEGMENT_DIMENSIONS


def segment_windows(conn: Connection, connections: Sequence[str], today: date,
                    windows: Sequence[int]
                    ) -> list[tuple[str, str | None, dict[int, tuple[int, int, float]]]]:
    """Win-back by cadence, loss reason, competitor and owner: per (dimension, value), for
    each window of days, (deals lost in the last d days, won back, amount won back), from
    segment_rollup (kept by triggers)."""
    r = segment_rollup.c
    cols: list[ColumnElement[Any]] = []
    for d in windows:
        start = r.day0 >= today - timedelta(days=d)
        cols += [_n(start, r.n), _n(start, r.won), _n(start, r.won_amount)]
    query = (select(r.dimension, r.value, *cols)
             .where(r.connection.in_(connections),
                    r.day0 >= today - timedelta(days=max(windows)))
             .group_by(r.dimension, r.value))
    out = []
    for dimension, value, *sums in conn.execute(query):
        out.append((str(dimension), value or None, {
            d: (int(sums[3 * i] or 0), int(sums[3 * i + 1] or 0), float(sums[3 * i + 2] or 0.0))
            for i, d in enumerate(windows)}))
    return out


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
    """Each reborn deal lost since `since` (found by ix_enrollment_reborn_deal: only reborn
    ones have a reborn deal id), with the last of its own tasks completed (with a known time,
    by its owner) before it was reborn: enrollment.last_touch_*, kept by triggers."""
    e = enrollment.c
    found = conn.execute(
        select(e.connection, e.deal_id, e.cadence, e.stop_reason, e.day0, e.reborn_at,
               e.last_touch_step, e.last_touch_at)
        .where(e.connection.in_(connections), e.reborn_deal_id.is_not(None),
               e.reborn_at.is_not(None), e.day0 >= since, e.cadence.is_not(None))
        .order_by(e.connection, e.deal_id))
    return [Reborn(str(c), str(d), str(cadence), None if reason is None else str(reason),
                   day0, at, None if step is None else str(step), touched)
            for c, d, cadence, reason, day0, at, step, touched in found]


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
