"""Connection leases with fencing: one tick of a connection runs on one process at a time.

Claiming is a compare-and-set UPDATE that bumps `epoch`; every later write of the tick is
fenced by (owner, epoch) and fails with LeaseLost once another process took over. Expiry is
judged by the database clock on PostgreSQL. A local monotonic deadline guards what the
database cannot: no CRM call starts after it (a paused process may wake past its lease).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from worker.ledger.db import db_now, is_postgres, write
from worker.ledger.schema import connection_state


class LeaseLost(Exception):
    """Another process holds this connection now; stop without writing anything more."""


def process_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    connection: str
    owner: str
    epoch: int
    ttl: float
    deadline: float = field(default=0.0)  # time.monotonic() after which no CRM call may start

    @property
    def run_id(self) -> str:
        return f"{self.owner}#{self.epoch}"

    def check(self) -> None:
        """Raise LeaseLost if the local deadline has passed (call before each CRM call)."""
        if time.monotonic() > self.deadline:
            raise LeaseLost(f"{self.connection}: lease deadline passed (epoch {self.epoch})")

    def refresh_deadline(self) -> None:
        self.deadline = time.monotonic() + self.ttl * 0.75


class Leases:
    def __init__(self, engine: Engine, *, owner: str, ttl: float) -> None:
        self.engine = engine
        self.owner = owner
        self.ttl = ttl

    def _until(self, conn: Connection, now: datetime) -> datetime:
        return now + timedelta(seconds=self.ttl)

    def acquire(self, connection: str, *, ignore_schedule: bool = False) -> Lease | None:
        """Take the lease if it is free or expired (and the connection is due, unless
        `ignore_schedule`). None when another process holds it or it is not due."""
        with write(self.engine) as conn:
            now = db_now(conn)
            conditions: list[ColumnElement[bool]] = [
                connection_state.c.name == connection,
                or_(connection_state.c.lease_until.is_(None),
                    connection_state.c.lease_until < now),
            ]
            if not ignore_schedule:
                conditions.append(or_(connection_state.c.next_due.is_(None),
                                      connection_state.c.next_due <= now))
            statement = (
                update(connection_state).where(and_(*conditions))
                .values(owner=self.owner, lease_until=self._until(conn, now),
                        epoch=connection_state.c.epoch + 1)
                .returning(connection_state.c.epoch)
            )
            epoch = conn.execute(statement).scalar_one_or_none()
        if epoch is None:
            return None
        lease = Lease(connection, self.owner, int(epoch), self.ttl)
        lease.refresh_deadline()
        return lease

    def fence(self, conn: Connection, lease: Lease) -> None:
        """Inside a write transaction: renew the lease, or raise LeaseLost (rolls it back)."""
        now = db_now(conn)
        result = conn.execute(
            update(connection_state)
            .where(connection_state.c.name == lease.connection,
                   connection_state.c.owner == lease.owner,
                   connection_state.c.epoch == lease.epoch)
            .values(lease_until=self._until(conn, now)))
        if result.rowcount != 1:
            raise LeaseLost(f"{lease.connection}: lease taken over (epoch {lease.epoch})")
        lease.refresh_deadline()

    def renew(self, lease: Lease) -> None:
        with write(self.engine) as conn:
            self.fence(conn, lease)

    def release(self, lease: Lease, *, next_due: datetime | None,
                **outcome: object) -> bool:
        """Give the lease back and record the tick's outcome; False if it was already lost."""
        with write(self.engine) as conn:
            result = conn.execute(
                update(connection_state)
                .where(connection_state.c.name == lease.connection,
                       connection_state.c.owner == lease.owner,
                       connection_state.c.epoch == lease.epoch)
                .values(owner=None, lease_until=None, next_due=next_due, **outcome))
            return bool(result.rowcount == 1)

    def holder(self, connection: str) -> tuple[str | None, datetime | None, int]:
        with self.engine.connect() as conn:
            row = conn.execute(select(connection_state.c.owner, connection_state.c.lease_until,
                                      connection_state.c.epoch)
                               .where(connection_state.c.name == connection)).one_or_none()
        if row is None:
            return None, None, 0
        return row.owner, row.lease_until, int(row.epoch)

    def uses_database_clock(self) -> bool:
        return is_postgres(self.engine)
