"""Ledger reads and writes the sync pipeline needs. Every write of a tick runs inside a
transaction that the caller has fenced with its lease (`Leases.fence`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from worker.ledger.db import write
from worker.ledger.schema import (
    OPEN_STATUSES,
    connection_state,
    enrollment,
    event,
    plan_input,
    task,
)

CHUNK = 500


@dataclass(frozen=True)
class TaskRow:
    """A planned task as the ledger stores it."""

    key: str
    connection: str
    deal_id: str
    cadence: str
    step: str
    occurrence: int
    contact_id: str | None
    owner_id: str
    due_date: date
    remind_at: datetime
    create_after: datetime
    channel: str
    priority: str

    def values(self, now: datetime) -> dict[str, Any]:
        return {**self.__dict__, "status": "planned", "created_at": now, "updated_at": now,
                "attempts": 0, "close_requested": False, "completed": False}


def _insert(conn: Connection, table: Any) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self) -> Any:
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

    def connection_row(self, name: str) -> Row[Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(select(connection_state)
                                .where(connection_state.c.name == name)).one_or_none()

    def connection_row_in(self, conn: Connection, name: str) -> Row[Any] | None:
        return conn.execute(select(connection_state)
                            .where(connection_state.c.name == name)).one_or_none()

    def set_watermark(self, conn: Connection, name: str, watermark: datetime) -> None:
        conn.execute(update(connection_state).where(connection_state.c.name == name)
                     .values(watermark=watermark))

    def mark_backfill_done(self, conn: Connection, name: str) -> None:
        conn.execute(update(connection_state).where(connection_state.c.name == name)
                     .values(backfill_done=True))

    def clear_leases(self) -> int:
        """Forget every lease (SQLite: only one process can be running, so all are stale)."""
        with write(self.engine) as conn:
            result = conn.execute(update(connection_state).values(owner=None, lease_until=None))
            return int(result.rowcount)

    # -- enrollments ------------------------------------------------------------------------
    def enrollments(self, conn: Connection, connection: str, deal_ids: Sequence[str]
                    ) -> dict[str, Row[Any]]:
        found: dict[str, Row[Any]] = {}
        for part in chunks(list(deal_ids)):
            rows = conn.execute(select(enrollment).where(
                enrollment.c.connection == connection, enrollment.c.deal_id.in_(part)))
            found.update({r.deal_id: r for r in rows})
        return found

    def active_on_accounts(self, conn: Connection, connection: str, account_ids: Sequence[str]
                           ) -> list[Row[Any]]:
        rows: list[Row[Any]] = []
        for part in chunks(list(account_ids)):
            rows += conn.execute(select(enrollment).where(
                enrollment.c.connection == connection, enrollment.c.status == "active",
                enrollment.c.account_id.in_(part))).all()
        return rows

    def reborn_links(self, conn: Connection, connection: str, deal_ids: Sequence[str]
                     ) -> list[Row[Any]]:
        rows: list[Row[Any]] = []
        for part in chunks(list(deal_ids)):
            rows += conn.execute(select(enrollment).where(
                enrollment.c.connection == connection, enrollment.c.won_back_at.is_(None),
                enrollment.c.reborn_deal_id.in_(part))).all()
        return rows

    def insert_enrollment(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(insert(enrollment).values(**values))

    def update_enrollment(self, conn: Connection, connection: str, deal_id: str,
                          **values: Any) -> None:
        conn.execute(update(enrollment).where(enrollment.c.connection == connection,
                                              enrollment.c.deal_id == deal_id).values(**values))

    def rule_groups(self, conn: Connection, connection: str) -> list[Row[Any]]:
        """Tracked enrollments grouped by what decides their plan fingerprint: (status,
        cadence, owner_input, rule_version, count). Few rows (cadences x owners), read with
        one index-only scan; the caller compares each group with today's fingerprint."""
        columns = (enrollment.c.status, enrollment.c.cadence, enrollment.c.owner_input,
                   enrollment.c.rule_version)
        return list(conn.execute(select(*columns, func.count().label("n")).where(
            enrollment.c.connection == connection,
            enrollment.c.status.in_(("active", "unmatched"))).group_by(*columns)))

    def enrollments_in_groups(self, conn: Connection, connection: str,
                              groups: Sequence[Row[Any]], limit: int) -> list[Row[Any]]:
        """Up to `limit` enrollments of the given `rule_groups` rows."""
        if not groups:
            return []
        condition = or_(*(and_(enrollment.c.status == g.status,
                               enrollment.c.cadence.is_not_distinct_from(g.cadence),
                               enrollment.c.owner_input.is_not_distinct_from(g.owner_input),
                               enrollment.c.rule_version.is_not_distinct_from(g.rule_version))
                          for g in groups))
        return list(conn.execute(select(enrollment).where(
            enrollment.c.connection == connection, condition).limit(limit)))

    def store_plan_inputs(self, conn: Connection, items: Iterable[tuple[str, dict[str, Any]]],
                          now: datetime) -> None:
        """Keep what each fingerprint stands for (once per fingerprint; `plan --diff`)."""
        rows = [{"fingerprint": f, "inputs": inputs, "created_at": now} for f, inputs in items]
        if rows:
            conn.execute(_insert(conn, plan_input).on_conflict_do_nothing(
                index_elements=["fingerprint"]), rows)

    def plan_inputs(self, conn: Connection, fingerprints: Iterable[str]
                    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for part in chunks(sorted({f for f in fingerprints if f})):
            found.update({r.fingerprint: r.inputs for r in conn.execute(
                select(plan_input).where(plan_input.c.fingerprint.in_(part)))})
        return found

    def tracked_after(self, conn: Connection, connection: str, after_id: int, limit: int
                      ) -> list[Row[Any]]:
        """Active enrollments by id, in keyset pages (the daily re-read of tracked deals)."""
        return list(conn.execute(select(enrollment.c.id, enrollment.c.deal_id).where(
            enrollment.c.connection == connection, enrollment.c.status == "active",
            enrollment.c.id > after_id).order_by(enrollment.c.id).limit(limit)))

    def set_verified(self, conn: Connection, name: str, at: datetime) -> None:
        conn.execute(update(connection_state).where(connection_state.c.name == name)
                     .values(verified_at=at))

    def active_enrollments(self, connection: str) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(enrollment).where(
                enrollment.c.connection == connection,
                enrollment.c.status.in_(("active", "unmatched")))))

    # -- tasks --------------------------------------------------------------------------------
    def upsert_tasks(self, conn: Connection, rows: Sequence[TaskRow], now: datetime) -> None:
        """Insert new keys; move the dates of keys not yet written (a re-plan). Written,
        sending, failed and stopped rows are never touched: that is what makes re-planning
        safe."""
        if not rows:
            return
        statement = _insert(conn, task)
        # (no IN here: expanding parameters cannot go with executemany)
        movable = or_(*(task.c.status == s for s in OPEN_STATUSES),
                      and_(task.c.status == "cancelled", task.c.cancel_reason == "replanned"))
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"due_date": excluded.due_date, "remind_at": excluded.remind_at,
                  "create_after": excluded.create_after, "owner_id": excluded.owner_id,
                  "channel": excluded.channel, "priority": excluded.priority,
                  "status": "planned", "cancel_reason": None, "subject": None, "body": None,
                  "updated_at": excluded.updated_at},
            where=movable,
        )
        for part in chunks(list(rows)):
            conn.execute(statement, [r.values(now) for r in part])

    def insert_tasks(self, conn: Connection, rows: Sequence[TaskRow], now: datetime) -> int:
        """Insert new keys only (ON CONFLICT DO NOTHING); returns how many were new."""
        inserted = 0
        statement = _insert(conn, task).on_conflict_do_nothing(index_elements=["key"])
        for part in chunks(list(rows)):
            inserted += conn.execute(statement, [r.values(now) for r in part]).rowcount or 0
        return inserted

    def cancel_missing(self, conn: Connection, connection: str, deal_id: str,
                       keep: Iterable[str], now: datetime) -> int:
        keep_keys = list(keep)
        condition = [task.c.connection == connection, task.c.deal_id == deal_id,
                     task.c.status.in_(OPEN_STATUSES)]
        if keep_keys:
            condition.append(task.c.key.not_in(keep_keys))
        result = conn.execute(update(task).where(*condition)
                              .values(status="cancelled", cancel_reason="replanned",
                                      updated_at=now))
        return int(result.rowcount)

    def stop_deal_tasks(self, conn: Connection, connection: str, deal_id: str, reason: str,
                        *, close_written: bool, now: datetime) -> int:
        """Cancel what is not written; flag written, open tasks for closing in the CRM."""
        result = conn.execute(update(task).where(
            task.c.connection == connection, task.c.deal_id == deal_id,
            task.c.status.in_(OPEN_STATUSES)).values(status="cancelled", cancel_reason=reason,
                                                     updated_at=now))
        if close_written:
            conn.execute(update(task).where(
                task.c.connection == connection, task.c.deal_id == deal_id,
                task.c.status == "written", task.c.completed.is_(False),
                task.c.due_date >= now.date()).values(close_requested=True, updated_at=now))
        return int(result.rowcount)

    def due_tasks(self, conn: Connection, connection: str, now: datetime, limit: int
                  ) -> list[Row[Any]]:
        return list(conn.execute(
            select(task).where(task.c.connection == connection,
                               task.c.status.in_(OPEN_STATUSES),
                               task.c.create_after <= now)
            .order_by(task.c.due_date, task.c.id).limit(limit)))

    def sending(self, conn: Connection, connection: str) -> list[Row[Any]]:
        return list(conn.execute(select(task).where(task.c.connection == connection,
                                                    task.c.status == "sending")))

    def to_close(self, conn: Connection, connection: str, limit: int) -> list[Row[Any]]:
        return list(conn.execute(select(task).where(
            task.c.connection == connection, task.c.close_requested.is_(True),
            task.c.status == "written").limit(limit)))

    def set_tasks(self, conn: Connection, ids: Sequence[int], **values: Any) -> None:
        for part in chunks(list(ids)):
            conn.execute(update(task).where(task.c.id.in_(part)).values(**values))

    def update_tasks(self, conn: Connection, changes: Sequence[dict[str, Any]]) -> None:
        """Update many rows in one executemany: each change is {"id": ..., column: value},
        all with the same columns (the write path does this once per CRM batch)."""
        if not changes:
            return
        columns = [c for c in changes[0] if c != "id"]
        statement = update(task).where(task.c.id == bindparam("p_id")).values(
            {c: bindparam(f"p_{c}") for c in columns})
        conn.execute(statement, [{f"p_{k}": v for k, v in change.items()}
                                 for change in changes])

    def set_text(self, conn: Connection, key: str, subject: str, body: str) -> None:
        conn.execute(update(task).where(task.c.key == key).values(subject=subject, body=body))

    def set_task(self, conn: Connection, task_id: int, **values: Any) -> None:
        conn.execute(update(task).where(task.c.id == task_id).values(**values))

    def outbox_depth(self, connection: str | None = None) -> dict[str, int]:
        query = select(task.c.status, func.count()).group_by(task.c.status)
        if connection is not None:
            query = query.where(task.c.connection == connection)
        with self.engine.connect() as conn:
            return {status: int(count) for status, count in conn.execute(query)}

    # -- events ---------------------------------------------------------------------------
    def record(self, conn: Connection, connection: str, kind: str, deal_id: str | None,
               at: datetime, **data: Any) -> None:
        conn.execute(insert(event).values(connection=connection, deal_id=deal_id, kind=kind,
                                          at=at, data=data or None))
