"""Named read queries for the views: `winback status`, `winback report`, `plan --diff`, the
owners listing, the failed-task gauges and the demo. Typed results; the SQL stays here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, and_, func, select

from worker.ledger.records import (
    OPEN_STATUSES,
    TRACKED_STATUSES,
    Enrollment,
    EnrollmentStatus,
    OutboxTask,
    TaskStatus,
)
from worker.ledger.schema import enrollment, task

_JOIN = and_(enrollment.c.connection == task.c.connection,
             enrollment.c.deal_id == task.c.deal_id)


def enrollment_counts(conn: Connection, connection: str) -> dict[str, int]:
    """Enrollments of a connection by status."""
    return {str(k): int(v) for k, v in conn.execute(
        select(enrollment.c.status, func.count()).where(enrollment.c.connection == connection)
        .group_by(enrollment.c.status))}


def experiment_counts(conn: Connection, connection: str) -> dict[str, int]:
    """Enrollments of a connection by experiment arm (`<experiment> <arm>`: holdout, base or a
    variant) and, for the tracked ones, `<experiment> <arm> tracked`; none without one."""
    out: dict[str, int] = {}
    tracked = enrollment.c.status.in_(TRACKED_STATUSES)
    for experiment, arm, is_tracked, count in conn.execute(
            select(enrollment.c.experiment, enrollment.c.arm, tracked, func.count())
            .where(enrollment.c.connection == connection, enrollment.c.experiment.is_not(None))
            .group_by(enrollment.c.experiment, enrollment.c.arm, tracked)):
        name = f"{experiment} {arm}"
        out[name] = out.get(name, 0) + int(count)
        if is_tracked:
            out[f"{name} tracked"] = out.get(f"{name} tracked", 0) + int(count)
    return out


def task_counts(conn: Connection, connection: str) -> dict[str, int]:
    """Tasks of a connection by status."""
    return {str(k): int(v) for k, v in conn.execute(
        select(task.c.status, func.count()).where(task.c.connection == connection)
        .group_by(task.c.status))}


def next_write_at(conn: Connection, connection: str) -> datetime | None:
    """When the earliest unwritten task becomes due for writing."""
    value = conn.execute(select(func.min(task.c.create_after)).where(
        task.c.connection == connection, task.c.status.in_(OPEN_STATUSES))).scalar_one_or_none()
    return value if isinstance(value, datetime) else None


def writes_due_by(conn: Connection, connection: str, until: datetime) -> int:
    """Unwritten tasks due for writing by `until`."""
    return int(conn.execute(select(func.count()).where(
        task.c.connection == connection, task.c.status.in_(OPEN_STATUSES),
        task.c.create_after <= until)).scalar_one())


def failed_errors(conn: Connection, connections: Sequence[str], since: date | None = None
                  ) -> list[tuple[str, str | None, int]]:
    """(connection, last error, count) of the tasks the CRM refused for good; with `since`,
    only those of deals lost on or after it."""
    query = select(task.c.connection, task.c.last_error, func.count()).where(
        task.c.connection.in_(connections), task.c.status == TaskStatus.FAILED)
    if since is not None:
        query = query.join(enrollment, _JOIN).where(enrollment.c.day0 >= since)
    return [(str(c), e, int(n)) for c, e, n in conn.execute(
        query.group_by(task.c.connection, task.c.last_error))]


def tracked_with_tasks(conn: Connection, connection: str
                       ) -> tuple[list[Enrollment], dict[str, dict[str, OutboxTask]]]:
    """Tracked enrollments of a connection and their tasks (deal id -> key -> task)."""
    tracked = enrollment.c.status.in_(TRACKED_STATUSES)
    rows = [Enrollment.of(r) for r in conn.execute(select(enrollment).where(
        enrollment.c.connection == connection, tracked))]
    stored: dict[str, dict[str, OutboxTask]] = {}
    for r in conn.execute(select(task).join(enrollment, _JOIN).where(
            task.c.connection == connection, tracked)):
        t = OutboxTask.of(r)
        stored.setdefault(t.deal_id, {})[t.key] = t
    return rows, stored


@dataclass(frozen=True)
class OwnerCounts:
    synced: bool  # the ledger has any enrollment for this connection
    deals: dict[str, int]  # owner id -> active enrollments
    open_tasks: dict[str, int]  # owner id -> planned or queued tasks


def owner_counts(conn: Connection, connection: str, owner_ids: Sequence[str]) -> OwnerCounts:
    """Active enrollments and unwritten tasks of some owners."""
    synced = conn.execute(select(func.count()).select_from(enrollment).where(
        enrollment.c.connection == connection)).scalar_one() > 0
    deals = {str(k): int(v) for k, v in conn.execute(
        select(enrollment.c.owner_id, func.count())
        .where(enrollment.c.connection == connection,
               enrollment.c.status == EnrollmentStatus.ACTIVE,
               enrollment.c.owner_id.in_(owner_ids))
        .group_by(enrollment.c.owner_id))}
    tasks = {str(k): int(v) for k, v in conn.execute(
        select(task.c.owner_id, func.count())
        .where(task.c.connection == connection, task.c.status.in_(OPEN_STATUSES),
               task.c.owner_id.in_(owner_ids))
        .group_by(task.c.owner_id))}
    return OwnerCounts(bool(synced), deals, tasks)


def written_by_step(conn: Connection) -> list[tuple[str, str, int]]:
    """(connection, step, count) of written tasks."""
    return [(str(c), str(s), int(n)) for c, s, n in conn.execute(
        select(task.c.connection, task.c.step, func.count())
        .where(task.c.status == TaskStatus.WRITTEN).group_by(task.c.connection, task.c.step))]
