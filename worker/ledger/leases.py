"""Connection leases with fencing: one tick of a connection runs on one process at a time.

Claiming is a compare-and-set UPDATE that bumps `epoch`; every later write of the tick is
fenced by (owner, epoch) and fails with LeaseLost once another process took over. Expiry is
judged by the database clock on PostgreSQL. A local monotonic deadline guards what the
database cannot: no CRM call starts after it (a paused process may wake past its lease).

Take-over (PostgreSQL): the claim also takes a session advisory lock on the connection's name,
on a dedicated connection held for the whole tick. PostgreSQL frees that lock the moment the
holder's session ends (kill -9, a crashed pod), so a lease taken with the lock
(`lease_locked`) may be claimed by whoever gets the lock next, before `lease_until`. A paused
(SIGSTOP) holder keeps its session and its lock: its lease is taken over only once it has
expired, as without the lock, and that lease (taken without the lock) is `lease_locked =
false`, so it too waits out its expiry. The epoch fence stays the correctness guard; the lock
only makes take-over fast. SQLite (one process) takes no lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, create_engine, false, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from connectors.errors import Interrupted
from worker.ledger.db import db_now, is_postgres, write
from worker.ledger.schema import connection_state


class LeaseLost(Interrupted):
    """Another process holds this connection now (or may: the local deadline passed); stop
    without writing anything more. An `Interrupted`, so that a connector lets it through
    when the run guard raises it before a call."""


def process_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lock_key(connection: str) -> int:
    """The advisory lock key of a connection (a signed 64-bit hash of its name)."""
    digest = hashlib.blake2b(f"winback-lease:{connection}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def held_advisory_keys(conn: Connection) -> set[int]:
    """The bigint advisory lock keys some session holds now in this database (pg_locks
    shows a bigint key as its high half in classid, its low half in objid, objsubid 1)."""
    rows = conn.exec_driver_sql(
        "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' "
        "AND objsubid = 1 AND granted AND database = (SELECT oid FROM pg_database "
        "WHERE datname = current_database())")
    keys = set()
    for high, low in rows:
        unsigned = (int(high) << 32) | int(low)
        keys.add(unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned)
    return keys


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a dedicated (autocommit) connection."""

    def __init__(self, conn: Connection, key: int) -> None:
        self.conn = conn
        self.key = key

    def release(self) -> None:
        """Unlock and give the connection back; when unlocking fails, the session is closed
        instead (which frees the lock as well)."""
        try:
            unlocked = self.conn.execute(select(func.pg_advisory_unlock(self.key))).scalar()
            if not unlocked:
                self.conn.invalidate()
        except Exception:
            with contextlib.suppress(Exception):
                self.conn.invalidate()
        finally:
            with contextlib.suppress(Exception):
                self.conn.close()


@dataclass
class Lease:
    connection: str
    owner: str
    epoch: int
    ttl: float
    deadline: float = field(default=0.0)  # time.monotonic() after which no CRM call may start
    lock: AdvisoryLock | None = field(default=None, repr=False)
    renewed: float = field(default=0.0)  # time.monotonic() of the last renewal
    mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The guard renews the lease too (not only checks it): for a run of calls without ledger
    # writes, which would otherwise renew it (the setup calls). Off elsewhere: a renewal from
    # the read-ahead thread would keep a tick held in a fenced write past its deadline going.
    renew_on_call: bool = False

    @property
    def run_id(self) -> str:
        return f"{self.owner}#{self.epoch}"

    def check(self) -> None:
        """Raise LeaseLost if the local deadline has passed (call before each CRM call)."""
        if time.monotonic() > self.deadline:
            raise LeaseLost(f"{self.connection}: lease deadline passed (epoch {self.epoch})")

    def refresh_deadline(self) -> None:
        self.renewed = time.monotonic()
        self.deadline = self.renewed + self.ttl * 0.75


Clock = Callable[[], datetime]


class Leases:
    def __init__(self, engine: Engine, *, owner: str, ttl: float, clock: Clock | None = None,
                 advisory_lock: bool = True) -> None:
        self.engine = engine
        # Session advisory locks need a session of our own: not behind PgBouncer in
        # transaction pooling mode (`service.takeover_lock: false` there; expiry only).
        self.advisory_lock = advisory_lock
        self.owner = owner
        self.ttl = ttl
        self.clock = clock  # the tick clock (WINBACK_CLOCK_OFFSET): next_due is on it
        self._lock_engine: Engine | None = None

    def _shift(self) -> timedelta:
        """How far the tick clock is ahead of real time (0 without a simulated clock)."""
        if self.clock is None:
            return timedelta(0)
        return self.clock() - datetime.now(UTC)

    def _try_lock(self, connection: str) -> AdvisoryLock | None:
        """PostgreSQL: the connection's advisory lock on a dedicated connection, or None when
        another session holds it (or on SQLite)."""
        if not self.advisory_lock or not is_postgres(self.engine):
            return None
        if self._lock_engine is None:
            self._lock_engine = create_engine(
                self.engine.url, pool_size=2, max_overflow=64, pool_pre_ping=True,
                pool_recycle=1800, isolation_level="AUTOCOMMIT")
        conn = self._lock_engine.connect()
        key = lock_key(connection)
        try:
            got = conn.execute(select(func.pg_try_advisory_lock(key))).scalar()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        return AdvisoryLock(conn, key)

    def close(self) -> None:
        if self._lock_engine is not None:
            self._lock_engine.dispose()

    def _until(self, conn: Connection, now: datetime) -> datetime:
        return now + timedelta(seconds=self.ttl)

    def acquire(self, connection: str, *, ignore_schedule: bool = False) -> Lease | None:
        """Take the lease if it is free or expired (and the connection is due, unless
        `ignore_schedule`). None when another process holds it or it is not due.

        With the advisory lock in hand (PostgreSQL), a lease its holder took with the lock is
        free too, expired or not: that holder's session is gone."""
        lock = self._try_lock(connection)
        try:
            with write(self.engine) as conn:
                now = db_now(conn)
                free = [connection_state.c.lease_until.is_(None),
                        connection_state.c.lease_until < now]
                if lock is not None:
                    free.append(connection_state.c.lease_locked.is_(True))
                conditions: list[ColumnElement[bool]] = [
                    connection_state.c.name == connection, or_(*free)]
                if not ignore_schedule:  # next_due is on the tick clock (shifted in tests)
                    conditions.append(or_(connection_state.c.next_due.is_(None),
                                          connection_state.c.next_due <= now + self._shift()))
                statement = (
                    update(connection_state).where(and_(*conditions))
                    .values(owner=self.owner, lease_until=self._until(conn, now),
                            epoch=connection_state.c.epoch + 1, lease_locked=lock is not None)
                    .returning(connection_state.c.epoch)
                )
                epoch = conn.execute(statement).scalar_one_or_none()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if epoch is None:
            if lock is not None:
                lock.release()
            return None
        lease = Lease(connection, self.owner, int(epoch), self.ttl, lock=lock)
        lease.refresh_deadline()
        return lease

    def claimable(self) -> tuple[list[str], list[str]]:
        """The connections a replica may claim now, in one read of the leases (and one of
        pg_locks): (free, orphaned). Free: due (on the tick clock) and not leased. Orphaned
        (PostgreSQL): due, leased with the advisory lock, and nobody holds that lock any
        more, so its holder's session is gone (a dead replica: take it over now). A lease
        whose lock a live session still holds is not claimable until it expires. What
        `winback run` polls instead of trying every lease."""
        state = connection_state.c
        with self.engine.connect() as conn:
            now = db_now(conn)
            free = or_(state.lease_until.is_(None), state.lease_until < now)
            with_lock = self.advisory_lock and is_postgres(self.engine)
            locked = state.lease_locked.is_(True) if with_lock else false()
            rows = conn.execute(select(state.name, free.label("free")).where(
                or_(free, locked), or_(state.next_due.is_(None),
                                       state.next_due <= now + self._shift())))
            found = [(str(name), bool(is_free)) for name, is_free in rows]
            held = held_advisory_keys(conn) if with_lock and not all(
                f for _, f in found) else set()
        return ([n for n, f in found if f],
                [n for n, f in found if not f and lock_key(n) not in held])

    def fence(self, conn: Connection, lease: Lease) -> None:
        """Inside a write transaction: renew the lease, or raise LeaseLost (rolls it back).

        A lease claimed without the advisory lock (another session still had it: a paused
        holder, or one letting go at that very moment) tries for the lock again at each
        renewal, so that its own death is noticed fast too once it has it."""
        with lease.mutex:
            if lease.lock is None and is_postgres(conn):
                lease.lock = self._try_lock(lease.connection)
            locked = lease.lock is not None
        now = db_now(conn)
        result = conn.execute(
            update(connection_state)
            .where(connection_state.c.name == lease.connection,
                   connection_state.c.owner == lease.owner,
                   connection_state.c.epoch == lease.epoch)
            .values(lease_until=self._until(conn, now), lease_locked=locked))
        if result.rowcount != 1:
            raise LeaseLost(f"{lease.connection}: lease taken over (epoch {lease.epoch})")
        lease.refresh_deadline()

    def renew(self, lease: Lease) -> None:
        with write(self.engine) as conn:
            self.fence(conn, lease)

    def guard(self, lease: Lease) -> Callable[[], None]:
        """What runs before every CRM call of a tick: the local deadline check (LeaseLost
        once it has passed); while `lease.renew_on_call` (the setup calls: no ledger write
        between them), also a renewal once a third of the lease has gone by since the last
        one, checked again after it."""

        def check() -> None:
            lease.check()
            if lease.renew_on_call and time.monotonic() - lease.renewed > lease.ttl / 3:
                self.renew(lease)
                lease.check()

        return check

    def release(self, lease: Lease, *, next_due: datetime | None,
                **outcome: object) -> bool:
        """Give the lease back and record the tick's outcome; False if it was already lost
        (another process took it over: nothing is recorded). The advisory lock is let go
        either way."""
        try:
            with write(self.engine) as conn:
                result = conn.execute(
                    update(connection_state)
                    .where(connection_state.c.name == lease.connection,
                           connection_state.c.owner == lease.owner,
                           connection_state.c.epoch == lease.epoch)
                    .values(owner=None, lease_until=None, lease_locked=False,
                            next_due=next_due, **outcome))
                return bool(result.rowcount == 1)
        finally:
            self.let_go(lease)

    @staticmethod
    def let_go(lease: Lease) -> None:
        """Let the advisory lock go (nothing on SQLite or when already let go)."""
        with lease.mutex:
            lock, lease.lock = lease.lock, None
        if lock is not None:
            lock.release()

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
