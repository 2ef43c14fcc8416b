"""The ledger's state machine: typed reads and the named transitions of enrollments and
tasks (records.py has the states). Every write of a tick runs inside a transaction that the
caller has fenced with its lease (`Leases.fence`); a task claimed for sending also records the
lease epoch that claimed it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from connectors.models import Priority
from worker.cadence.tasks import NOTICES, PlannedTask
from worker.ledger.db import write
from worker.ledger.records import (
    OPEN_STATUSES,
    TRACKED_STATUSES,
    CancelReason,
    ConnectionState,
    Enrollment,
    EnrollmentStatus,
    JSONObject,
    NewPlan,
    OutboxTask,
    StopReason,
    TaskStatus,
    task_values,
)
from worker.ledger.schema import connection_state, enrollment, event, plan_input, task

CHUNK = 500
T = TypeVar("T")


def _insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _unwritten() -> ColumnElement[bool]:
    """Tasks not written and still to be: open (planned, queued), or skipped by the daily cap
    (placed again when room frees up). A stop or a re-plan that drops the key cancels both."""
    return or_(task.c.status.in_(OPEN_STATUSES),
               and_(task.c.status == TaskStatus.SKIPPED, task.c.cancel_reason == CancelReason.CAP))


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class CapRow:
    """A task the daily cap may move: its planned day (before the cap) and last day."""

    id: int
    key: str
    deal_id: str
    owner_id: str
    priority: Priority
    due: date  # where it is now
    planned: date
    latest: date
    status: TaskStatus

    @classmethod
    def of(cls, row: Any) -> CapRow:  # (a row of `cap_rows`)
        planned = row.planned_due or row.due_date
        return cls(int(row.id), str(row.key), str(row.deal_id), str(row.owner_id),
                   Priority(row.priority),
                   row.due_date, planned, row.latest_due or planned, TaskStatus(row.status))


@dataclass(frozen=True)
class RuleGroup:
    """Tracked enrollments that share what decides their plan fingerprint."""

    status: EnrollmentStatus
    cadence: str | None
    owner_input: str | None
    rule_version: str | None
    n: int


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite)."""
        return write(self.engine)

    # -- connections ----------------------------------------------------------------------
    def ensure_connections(self, connections: Iterable[tuple[str, str]]) -> None:
        rows = [{"name": n, "kind": k, "epoch": 0, "backfill_done": False}
                for n, k in connections]
        if not rows:
            return
        with write(self.engine) as conn:
            conn.execute(_insert(conn, connection_state).on_conflict_do_nothing(
                index_elements=["name"]), rows)

    def connection_row(self, name: str) -> ConnectionState | None:
        with self.engine.connect() as conn:
            return self.connection_row_in(conn, name)

    def connection_row_in(self, conn: Connection, name: str) -> ConnectionState | None:
        row = conn.execute(select(connection_state)
                           .where(connection_state.c.name == name)).one_or_none()
        return ConnectionState.of(row) if row is not None else None

    def set_watermark(self, conn: Connection, name: str, watermark: datetime) -> None:
        conn.execute(update(connection_state).where(connection_state.c.name == name)
                     .values(watermark=watermark))

    def mark_backfill_done(self, conn: Connection, name: str) -> None:
        conn.execute(update(connection_state).where(connection_state.c.name == name)
                     .values(backfill_done=True))

    def set_verified(self, conn: Connection, name: str, at: datetime) -> None:
        conn.execute(update(connection_state).where(connection_state.c.name == name)
                     .values(verified_at=at))

    def clear_leases(self) -> int:
        """Forget every lease (SQLite: only one process can be running, so all are stale)."""
        with write(self.engine) as conn:
            result = conn.execute(update(connection_state).values(owner=None, lease_until=None))
            return int(result.rowcount)

    # -- enrollments: reads -------------------------------------------------------------------
    def enrollments(self, conn: Connection, connection: str, deal_ids: Sequence[str]
                    ) -> dict[str, Enrollment]:
        found: dict[str, Enrollment] = {}
        for part in chunks(list(deal_ids)):
            rows = conn.execute(select(enrollment).where(
                enrollment.c.connection == connection, enrollment.c.deal_id.in_(part)))
            found.update({r.deal_id: Enrollment.of(r) for r in rows})
        return found

    def active_on_accounts(self, conn: Connection, connection: str, account_ids: Sequence[str]
                           ) -> list[Enrollment]:
        found: list[Enrollment] = []
        for part in chunks(list(account_ids)):
            found += [Enrollment.of(r) for r in conn.execute(select(enrollment).where(
                enrollment.c.connection == connection,
                enrollment.c.status == EnrollmentStatus.ACTIVE,
                enrollment.c.account_id.in_(part)))]
        return found

    def reborn_links(self, conn: Connection, connection: str, deal_ids: Sequence[str]
                     ) -> list[Enrollment]:
        """Enrollments whose rebirth one of these deals is, not yet won back."""
        found: list[Enrollment] = []
        for part in chunks(list(deal_ids)):
            found += [Enrollment.of(r) for r in conn.execute(select(enrollment).where(
                enrollment.c.connection == connection, enrollment.c.won_back_at.is_(None),
                enrollment.c.reborn_deal_id.in_(part)))]
        return found

    def rule_groups(self, conn: Connection, connection: str) -> list[RuleGroup]:
        """Tracked enrollments grouped by what decides their plan fingerprint: (status,
        cadence, owner_input, rule_version, count). Few rows (cadences x owners), read with
        one index-only scan; the caller compares each group with today's fingerprint."""
        columns = (enrollment.c.status, enrollment.c.cadence, enrollment.c.owner_input,
                   enrollment.c.rule_version)
        return [RuleGroup(EnrollmentStatus(r.status), r.cadence, r.owner_input, r.rule_version,
                          int(r.n))
                for r in conn.execute(select(*columns, func.count().label("n")).where(
                    enrollment.c.connection == connection,
                    enrollment.c.status.in_(TRACKED_STATUSES)).group_by(*columns))]

    def enrollments_in_groups(self, conn: Connection, connection: str,
                              groups: Sequence[RuleGroup], limit: int) -> list[Enrollment]:
        """Up to `limit` enrollments of the given `rule_groups` rows."""
        if not groups:
            return []
        condition = or_(*(and_(enrollment.c.status == g.status,
                               enrollment.c.cadence.is_not_distinct_from(g.cadence),
                               enrollment.c.owner_input.is_not_distinct_from(g.owner_input),
                               enrollment.c.rule_version.is_not_distinct_from(g.rule_version))
                          for g in groups))
        return [Enrollment.of(r) for r in conn.execute(select(enrollment).where(
            enrollment.c.connection == connection, condition).limit(limit))]

    def tracked_after(self, conn: Connection, connection: str, after_id: int, limit: int
                      ) -> list[tuple[int, str]]:
        """(id, deal id) of active enrollments by id, in keyset pages (the daily re-read of
        tracked deals)."""
        return [(int(r.id), str(r.deal_id)) for r in conn.execute(
            select(enrollment.c.id, enrollment.c.deal_id).where(
                enrollment.c.connection == connection,
                enrollment.c.status == EnrollmentStatus.ACTIVE,
                enrollment.c.id > after_id).order_by(enrollment.c.id).limit(limit))]

    def store_plan_inputs(self, conn: Connection, items: Iterable[tuple[str, JSONObject]],
                          now: datetime) -> None:
        """Keep what each fingerprint stands for (once per fingerprint; `plan --diff`)."""
        rows = [{"fingerprint": f, "inputs": inputs, "created_at": now} for f, inputs in items]
        if rows:
            conn.execute(_insert(conn, plan_input).on_conflict_do_nothing(
                index_elements=["fingerprint"]), rows)

    def plan_inputs(self, conn: Connection, fingerprints: Iterable[str | None]
                    ) -> dict[str, JSONObject]:
        found: dict[str, JSONObject] = {}
        for part in chunks(sorted({f for f in fingerprints if f})):
            found.update({r.fingerprint: r.inputs for r in conn.execute(
                select(plan_input).where(plan_input.c.fingerprint.in_(part)))})
        return found

    # -- enrollments: transitions ---------------------------------------------------------
    def enroll(self, conn: Connection, connection: str, deal_id: str, plan: NewPlan,
               tasks: Sequence[PlannedTask], now: datetime) -> int:
        """A newly lost deal: its enrollment and its planned tasks; how many tasks were new."""
        conn.execute(insert(enrollment).values(connection=connection, deal_id=deal_id,
                                               enrolled_at=now, **plan.values()))
        return self.insert_tasks(conn, tasks, now, day0=plan.day0)

    def replan(self, conn: Connection, connection: str, deal_id: str, plan: NewPlan,
               tasks: Sequence[PlannedTask], now: datetime, *, new_cycle: bool) -> int:
        """A tracked deal planned again (changed, rules edited, or lost again: `new_cycle`):
        unwritten tasks move, missing ones are cancelled; how many were cancelled."""
        values = plan.values()
        if new_cycle:  # a new loss: the last cycle's rebirth is history now
            values.update(enrolled_at=now, reborn_at=None, reborn_deal_id=None,
                          won_back_at=None, won_back_amount=None)
        self._update_enrollment(conn, connection, deal_id, values)
        self._upsert_tasks(conn, tasks, now, plan.day0)
        return self._cancel_missing(conn, connection, deal_id, [t.key for t in tasks], now)

    def stop(self, conn: Connection, connection: str, deal_id: str, reason: StopReason, *,
             close_written: bool, reborn_deal_id: str, won_amount: float | None,
             now: datetime) -> int:
        """Stop a cadence: cancel what is not written, flag written, open tasks for closing
        in the CRM (`close_written`), record the rebirth; how many tasks were cancelled."""
        result = conn.execute(update(task).where(
            task.c.connection == connection, task.c.deal_id == deal_id,
            _unwritten()).values(status=TaskStatus.CANCELLED,
                                                     cancel_reason=reason, updated_at=now))
        if close_written:
            # Due today or later for its owner: the row has no zone, so "today" is the
            # earliest local date anywhere (UTC-12). A UTC date would leave today's task
            # open for owners west of UTC from their afternoon on.
            today = (now - timedelta(hours=12)).date()
            conn.execute(update(task).where(
                task.c.connection == connection, task.c.deal_id == deal_id,
                task.c.status == TaskStatus.WRITTEN, task.c.completed.is_(False),
                task.c.due_date >= today).values(close_requested=True, updated_at=now))
        values: dict[str, object] = {"status": EnrollmentStatus.STOPPED, "stop_reason": reason,
                                     "stopped_at": now, "replan_at": None}
        if reason.reborn:
            values.update(reborn_at=now, reborn_deal_id=reborn_deal_id)
        if reason is StopReason.WON:
            values.update(won_back_at=now, won_back_amount=won_amount)
        self._update_enrollment(conn, connection, deal_id, values)
        return int(result.rowcount)

    def won_back(self, conn: Connection, connection: str, deal_id: str, amount: float | None,
                 now: datetime) -> None:
        """A reborn deal was won: the lost one it came from is won back."""
        self._update_enrollment(conn, connection, deal_id,
                                {"won_back_at": now, "won_back_amount": amount})

    def _update_enrollment(self, conn: Connection, connection: str, deal_id: str,
                           values: Mapping[str, object]) -> None:
        conn.execute(update(enrollment).where(enrollment.c.connection == connection,
                                              enrollment.c.deal_id == deal_id).values(values))

    # -- tasks: reads ---------------------------------------------------------------------
    def due_tasks(self, conn: Connection, connection: str, now: datetime, limit: int
                  ) -> list[OutboxTask]:
        """Tasks due for writing, but not of deals due a re-plan (re-planned first)."""
        held = select(enrollment.c.id).where(
            enrollment.c.connection == task.c.connection,
            enrollment.c.deal_id == task.c.deal_id, enrollment.c.replan_at <= now)
        return [OutboxTask.of(r) for r in conn.execute(
            select(task).where(task.c.connection == connection,
                               task.c.status.in_(OPEN_STATUSES),
                               task.c.create_after <= now, ~held.exists())
            .order_by(task.c.due_date, task.c.id).limit(limit))]

    def sending(self, conn: Connection, connection: str) -> list[OutboxTask]:
        return [OutboxTask.of(r) for r in conn.execute(select(task).where(
            task.c.connection == connection, task.c.status == TaskStatus.SENDING))]

    def to_close(self, conn: Connection, connection: str, limit: int) -> list[OutboxTask]:
        return [OutboxTask.of(r) for r in conn.execute(select(task).where(
            task.c.connection == connection, task.c.close_requested.is_(True),
            task.c.status == TaskStatus.WRITTEN).limit(limit))]

    def outbox_depth(self, connection: str | None = None) -> dict[str, int]:
        query = select(task.c.status, func.count()).group_by(task.c.status)
        if connection is not None:
            query = query.where(task.c.connection == connection)
        with self.engine.connect() as conn:
            return {status: int(count) for status, count in conn.execute(query)}

    # -- tasks: transitions ---------------------------------------------------------------
    def insert_tasks(self, conn: Connection, tasks: Sequence[PlannedTask], now: datetime,
                     *, day0: date | None = None) -> int:
        """Insert new keys only (ON CONFLICT DO NOTHING); returns how many were new. `day0`:
        the loss day of the enrollment they belong to (the outcome report groups by it)."""
        inserted = 0
        statement = _insert(conn, task).on_conflict_do_nothing(index_elements=["key"])
        for part in chunks(list(tasks)):
            inserted += conn.execute(statement, [task_values(t, now, day0)
                                                 for t in part]).rowcount or 0
        return inserted

    def _upsert_tasks(self, conn: Connection, tasks: Sequence[PlannedTask], now: datetime,
                      day0: date | None) -> None:
        """Insert new keys; move the dates of keys not yet written (a re-plan). Written,
        sending and stopped rows are never touched: that is what makes re-planning safe. A
        task the CRM refused is planned again when the re-plan gives it another owner (the
        fix for an inactive owner is a `fallback_owner`: its refused tasks then go there)."""
        if not tasks:
            return
        statement = _insert(conn, task)
        # (no IN here: expanding parameters cannot go with executemany)
        excluded = statement.excluded
        movable = or_(*(task.c.status == s for s in OPEN_STATUSES),
                      and_(task.c.status == TaskStatus.CANCELLED,
                           task.c.cancel_reason == CancelReason.REPLANNED),
                      and_(task.c.status == TaskStatus.SKIPPED,
                           task.c.cancel_reason == CancelReason.CAP),
                      and_(task.c.status == TaskStatus.FAILED,
                           task.c.owner_id != excluded.owner_id))
        statement = statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"due_date": excluded.due_date, "remind_at": excluded.remind_at,
                  "create_after": excluded.create_after, "owner_id": excluded.owner_id,
                  "channel": excluded.channel, "priority": excluded.priority,
                  "status": TaskStatus.PLANNED, "cancel_reason": None,
                  "subject": excluded.subject, "body": excluded.body,  # (a notice's text)
                  "last_error": None, "updated_at": excluded.updated_at,
                  "planned_due": excluded.planned_due, "latest_due": excluded.latest_due,
                  "day0": excluded.day0},
            where=movable,
        )
        for part in chunks(list(tasks)):
            conn.execute(statement, [task_values(t, now, day0) for t in part])

    # -- the per-owner daily cap ------------------------------------------------------------
    def cap_rows(self, conn: Connection, connection: str, owner_ids: Sequence[str]
                 ) -> tuple[list[CapRow], dict[tuple[str, date], int]]:
        """What the daily cap of these owners decides on: their tasks that may move (not
        written: planned or queued, or skipped by the cap earlier; notices excepted) and the
        tasks per (owner, day) that take a day and never move (sending, written, notices),
        from the earliest planned day of those that may move."""
        movable: list[CapRow] = []
        for part in chunks(sorted(set(owner_ids))):
            movable += [CapRow.of(r) for r in conn.execute(
                select(task.c.id, task.c.key, task.c.deal_id, task.c.owner_id, task.c.priority,
                       task.c.due_date, task.c.planned_due, task.c.latest_due, task.c.status,
                       task.c.cadence, task.c.remind_at)
                .where(task.c.connection == connection, task.c.owner_id.in_(part),
                       task.c.cadence.not_in(sorted(NOTICES)),
                       _unwritten()))]
        taken: dict[tuple[str, date], int] = {}
        if not movable:
            return movable, taken
        first = min(r.planned for r in movable)
        fixed = or_(task.c.status.in_((TaskStatus.SENDING, TaskStatus.WRITTEN)),
                    and_(task.c.cadence.in_(sorted(NOTICES)), task.c.status.in_(OPEN_STATUSES)))
        for part in chunks(sorted({r.owner_id for r in movable})):
            for row in conn.execute(
                    select(task.c.owner_id, task.c.due_date, func.count().label("n"))
                    .where(task.c.connection == connection, task.c.owner_id.in_(part),
                           task.c.due_date >= first, fixed)
                    .group_by(task.c.owner_id, task.c.due_date)):
                taken[(str(row.owner_id), row.due_date)] = int(row.n)
        return movable, taken

    def move_for_cap(self, conn: Connection, moves: Sequence[tuple[int, date, datetime]],
                     skips: Sequence[int], now: datetime) -> None:
        """Apply the cap's decisions: (task id, due date, reminder) moves (back to planned
        when the cap had skipped it), and skips (status skipped, reason cap)."""
        self._update_many(conn, [
            {"id": task_id, "due_date": day, "remind_at": remind_at,
             "status": TaskStatus.PLANNED, "cancel_reason": None, "updated_at": now}
            for task_id, day, remind_at in moves])
        self._update_many(conn, [
            {"id": task_id, "status": TaskStatus.SKIPPED, "cancel_reason": CancelReason.CAP,
             "updated_at": now} for task_id in skips])

    def _cancel_missing(self, conn: Connection, connection: str, deal_id: str,
                        keep: Sequence[str], now: datetime) -> int:
        condition = [task.c.connection == connection, task.c.deal_id == deal_id, _unwritten()]
        if keep:
            condition.append(task.c.key.not_in(list(keep)))
        result = conn.execute(update(task).where(*condition)
                              .values(status=TaskStatus.CANCELLED,
                                      cancel_reason=CancelReason.REPLANNED, updated_at=now))
        return int(result.rowcount)

    def claim_for_sending(self, conn: Connection, claims: Sequence[tuple[OutboxTask, str, str]],
                          epoch: int, now: datetime) -> None:
        """Mark (task, subject, body) `sending` under the lease `epoch`, before the CRM call
        (one executemany)."""
        self._update_many(conn, [
            {"id": t.id, "status": TaskStatus.SENDING, "claimed_epoch": epoch,
             "sending_since": now, "attempts": t.attempts + 1, "subject": subject,
             "body": body, "updated_at": now} for t, subject, body in claims])

    def mark_written(self, conn: Connection, written: Sequence[tuple[int, str | None]],
                     now: datetime) -> None:  # (task id, CRM id) pairs the CRM confirmed
        self._update_many(conn, [
            {"id": task_id, "status": TaskStatus.WRITTEN, "crm_id": crm_id, "written_at": now,
             "updated_at": now, "last_error": None} for task_id, crm_id in written])

    def mark_failed(self, conn: Connection, task_id: int, error: str, now: datetime) -> None:
        """The CRM refused the task for good (`error` = "CODE: message")."""
        self._set(conn, task_id, status=TaskStatus.FAILED, last_error=error, updated_at=now)

    def requeue(self, conn: Connection, task_id: int, now: datetime, *,
                error: str | None = None, owner_id: str | None = None,
                not_before: datetime | None = None) -> None:
        """Back to `queued` (sent again by a later write), with the error that sent it back,
        another owner, or a time before which it is not sent."""
        values: dict[str, object] = {"status": TaskStatus.QUEUED, "updated_at": now}
        if error is not None:
            values["last_error"] = error
        if owner_id is not None:
            values["owner_id"] = owner_id
        if not_before is not None:
            values["create_after"] = not_before
        self._set(conn, task_id, **values)

    def reconcile(self, conn: Connection, task_id: int, crm_id: str | None, now: datetime
                  ) -> None:
        """A task left `sending`: found in the CRM by its key (written) or not (queued)."""
        if crm_id is not None:
            self.mark_written(conn, [(task_id, crm_id)], now)
        else:
            self.requeue(conn, task_id, now)

    def cancel(self, conn: Connection, task_id: int, reason: CancelReason, now: datetime
               ) -> None:
        self._set(conn, task_id, status=TaskStatus.CANCELLED, cancel_reason=reason,
                  updated_at=now)

    def mark_closed(self, conn: Connection, task_id: int, *, completed: bool, now: datetime
                    ) -> None:
        """A written task of a stopped cadence, closed in the CRM (or no longer to close)."""
        self._set(conn, task_id, close_requested=False, completed=completed,
                  cancel_reason=CancelReason.CLOSED, updated_at=now)

    def mark_completed(self, conn: Connection, ids: Sequence[int]) -> None:
        """Written tasks the CRM reports completed."""
        for part in chunks(list(ids)):
            conn.execute(update(task).where(task.c.id.in_(part)).values(completed=True))

    def _set(self, conn: Connection, task_id: int, **values: object) -> None:
        conn.execute(update(task).where(task.c.id == task_id).values(**values))

    def _update_many(self, conn: Connection, changes: Sequence[Mapping[str, object]]) -> None:
        """Update many rows in one executemany: each change is {"id": ..., column: value},
        all with the same columns."""
        if not changes:
            return
        columns = [c for c in changes[0] if c != "id"]
        statement = update(task).where(task.c.id == bindparam("p_id")).values(
            {c: bindparam(f"p_{c}") for c in columns})
        conn.execute(statement, [{f"p_{k}": v for k, v in change.items()}
                                 for change in changes])

    # -- events ---------------------------------------------------------------------------
    def record(self, conn: Connection, connection: str, kind: str, deal_id: str | None,
               at: datetime, **data: object) -> None:
        conn.execute(insert(event).values(connection=connection, deal_id=deal_id, kind=kind,
                                          at=at, data=data or None))
