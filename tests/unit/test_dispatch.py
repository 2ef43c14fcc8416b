"""`winback run` polls the ledger once per tick for the due, free connections and hands as
many as it has idle workers to its pool (worker/service/scheduler.py): replicas share the
connections by their room for work, and a replica never tries every lease every tick."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import update

from worker.ledger.db import make_engine
from worker.ledger.leases import Leases
from worker.ledger.migrate import upgrade
from worker.ledger.schema import connection_state
from worker.service.scheduler import Runner

NAMES = [f"c{i:02d}" for i in range(12)]


class FakePool:
    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, _fn: Any, ctx: Any) -> None:
        self.submitted.append(ctx.name)


def _ledger(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        for name in NAMES:
            conn.exec_driver_sql(
                "INSERT INTO connection_state (name, kind, epoch, backfill_done, lease_locked) "
                f"VALUES ('{name}', 'hubspot', 0, 0, 0)")
    return engine


def _runner(leases: Leases, workers: int) -> Runner:
    runner = Runner.__new__(Runner)  # dispatch only: no scheduler, health server or reloader
    runner.service = SimpleNamespace(  # type: ignore[assignment]
        leases=leases, stop=threading.Event(),
        contexts={n: SimpleNamespace(name=n) for n in NAMES})
    runner.workers = workers
    runner.pool = FakePool()  # type: ignore[assignment]
    runner._active = set()
    runner._backlog = False
    runner._running = 0
    runner._idle = threading.Condition()
    return runner


def test_dispatch_hands_only_due_free_connections_to_idle_workers(tmp_path: Path) -> None:
    engine = _ledger(tmp_path)
    later = datetime.now(UTC) + timedelta(hours=1)
    with engine.begin() as conn:  # 4 not due yet, 2 leased by a live replica
        conn.execute(update(connection_state).where(connection_state.c.name.in_(NAMES[:4]))
                     .values(next_due=later))
        conn.execute(update(connection_state).where(connection_state.c.name.in_(NAMES[4:6]))
                     .values(owner="other", lease_until=later))
    leases = Leases(engine, owner="me", ttl=30)
    assert [sorted(names) for names in leases.claimable()] == [NAMES[6:], []]
    runner = _runner(leases, workers=4)
    first = runner.dispatch()
    assert len(first) == 4 and set(first) <= set(NAMES[6:])
    assert runner.dispatch() == []  # no idle worker left
    runner._active.discard(first[0])  # one tick ended
    second = runner.dispatch()
    assert len(second) == 1 and second[0] not in first[1:]
    assert runner.pool.submitted == first + second  # type: ignore[attr-defined]
    engine.dispose()


def test_replicas_polling_together_share_the_due_connections(tmp_path: Path) -> None:
    """Three replicas poll one after another, always in the same order, with all twelve
    connections falling due at every round: the first takes only what it has idle workers
    for, so the others get their share instead of finding everything taken."""
    engine = _ledger(tmp_path)
    counts: Counter[str] = Counter()
    runners = [_runner(Leases(engine, owner=f"r{i}", ttl=30), workers=3) for i in range(3)]
    later = datetime.now(UTC) + timedelta(hours=1)
    for _ in range(20):
        with engine.begin() as conn:  # all due again (the real clock: their poll came)
            conn.execute(update(connection_state).values(next_due=None))
        for runner in runners:
            leases = runner.service.leases
            for name in runner.dispatch():
                lease = leases.acquire(name)
                if lease is not None:
                    counts[leases.owner] += 1
                    leases.release(lease, next_due=later)
                runner._active.discard(name)
    assert set(counts) == {"r0", "r1", "r2"}
    assert max(counts.values()) <= 1.5 * min(counts.values()), counts
    engine.dispose()


def test_only_leases_whose_advisory_lock_is_gone_are_orphaned(pg_url: str) -> None:
    """PostgreSQL: of two connections leased with the advisory lock, the one whose holder's
    session still holds the lock is not claimable; the one whose lock is gone (its holder
    died with its session) is offered first, before its lease expires."""
    engine = make_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        for name in NAMES[:3]:
            conn.exec_driver_sql(
                "INSERT INTO connection_state (name, kind, epoch, backfill_done, lease_locked) "
                f"VALUES ('{name}', 'hubspot', 0, false, false)")
    live = Leases(engine, owner="live", ttl=60)
    dead = Leases(engine, owner="dead", ttl=60)
    held = live.acquire(NAMES[0])
    gone = dead.acquire(NAMES[1])
    assert held is not None and gone is not None
    Leases.let_go(gone)  # (its session's lock let go, the lease left behind: a kill -9)
    me = Leases(engine, owner="me", ttl=60)
    assert me.claimable() == ([NAMES[2]], [NAMES[1]])
    runner = _runner(me, workers=1)
    assert runner.dispatch() == [NAMES[1]]
    taken = me.acquire(NAMES[1])
    assert taken is not None and me.acquire(NAMES[0]) is None
    for leases, lease in ((live, held), (me, taken)):
        leases.release(lease, next_due=None)
    engine.dispose()
