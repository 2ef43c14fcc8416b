"""Leases (issue 15): the simulated clock on next_due, the lease given back after
`lease_lost`, the guard that renews a lease between calls, and on PostgreSQL the advisory lock
that lets a dead holder's connection be taken over at once while a paused one stays fenced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.harness import World
from worker.ledger.db import make_engine
from worker.ledger.leases import LeaseLost, Leases
from worker.ledger.migrate import upgrade
from worker.sync.tick import run_tick


@pytest.fixture
def world(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(tmp_path, database_url, monkeypatch)
    yield w
    w.close()


def test_the_simulated_clock_moves_next_due_and_its_comparison_alike(world: World) -> None:
    """The world's clock runs months ahead of the real one (as WINBACK_CLOCK_OFFSET does):
    the connection is due again poll_every after its last tick on that clock, not months
    later when the real clock catches up."""
    ctx = world.ctx
    assert run_tick(ctx).result == "ok"
    assert run_tick(ctx).result == "not_due"
    world.advance(seconds=ctx.settings.poll_every + 1)
    assert run_tick(ctx).result == "ok"


def test_a_tick_that_ends_in_lease_lost_gives_its_lease_back(world: World) -> None:
    """A tick stopped by its lease check (the local deadline) releases the lease it still
    holds and records the outcome, instead of blocking the connection until it expires."""
    world.crm.admin_fail_next("deals.changed", LeaseLost("crm: lease deadline passed"))
    result = run_tick(world.ctx, ignore_schedule=True)
    assert result.result == "lease_lost"
    owner, until, _ = world.ctx.leases.holder("crm")
    assert (owner, until) == (None, None)
    state = world.ctx.ledger.connection_row("crm")
    assert state is not None and state.last_tick_result == "lease_lost"
    assert state.next_due is not None and state.next_due > world.now


def test_the_guard_renews_a_lease_that_goes_on_calling(world: World) -> None:
    """Calls without ledger writes in between (setup calls) keep the lease through the guard,
    past its TTL; a holder that let its deadline pass is refused, not renewed."""
    engine = world.service.ledger.engine
    mine, other = Leases(engine, owner="me", ttl=0.6), Leases(engine, owner="other", ttl=30)
    lease = mine.acquire("crm", ignore_schedule=True)
    assert lease is not None
    lease.renew_on_call = True  # as during the setup calls
    guard = mine.guard(lease)
    for _ in range(6):  # 1.2 s, twice the TTL
        time.sleep(0.2)
        guard()
    assert other.acquire("crm", ignore_schedule=True) is None
    time.sleep(0.5)  # past the local deadline (0.45 s after the last renewal)
    with pytest.raises(LeaseLost):
        guard()
    assert mine.release(lease, next_due=None)


def test_a_dead_holders_lease_is_taken_at_once_a_paused_one_only_once_expired(pg_url: str
                                                                              ) -> None:
    """PostgreSQL. A holder whose session ends (its process died) frees its advisory lock:
    its lease is taken long before it expires, and its fence then fails. A holder that keeps
    its session (paused) keeps its lock: its lease is taken only once expired, and that lease,
    taken without the lock, waits out its own expiry too even after the lock is free."""
    engine = make_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO connection_state (name, kind, epoch, backfill_done, "
                             "lease_locked) VALUES ('crm', 'hubspot', 0, false, false)")
    dead, taker = Leases(engine, owner="dead", ttl=60), Leases(engine, owner="taker", ttl=0.5)
    late, last = Leases(engine, owner="late", ttl=60), Leases(engine, owner="next", ttl=60)
    try:
        held = dead.acquire("crm", ignore_schedule=True)
        assert held is not None and held.lock is not None
        assert taker.acquire("crm", ignore_schedule=True) is None  # alive: its lock holds
        held.lock.conn.invalidate()  # the session ends, as when its process is killed
        taken = taker.acquire("crm", ignore_schedule=True)
        assert taken is not None and taken.epoch == held.epoch + 1  # 60 s before expiry
        with pytest.raises(LeaseLost), engine.begin() as conn:
            dead.fence(conn, held)
        # `taker` now stands for a paused holder: session and lock kept, lease let expire.
        time.sleep(0.6)
        paused_out = late.acquire("crm", ignore_schedule=True)
        assert paused_out is not None and paused_out.lock is None  # taken by expiry only
        assert not taker.release(taken, next_due=None)  # wakes: lost; lets its lock go
        # The lock is free now, but `late` holds an unexpired lease taken without it.
        assert last.acquire("crm", ignore_schedule=True) is None
        assert late.release(paused_out, next_due=None)
    finally:
        for leases in (dead, taker, late, last):
            leases.close()
        engine.dispose()


def test_no_advisory_lock_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO connection_state (name, kind, epoch, backfill_done, "
                             "lease_locked) VALUES ('crm', 'hubspot', 0, 0, 0)")
    leases = Leases(engine, owner="one", ttl=5)
    lease = leases.acquire("crm", ignore_schedule=True)
    assert lease is not None and lease.lock is None
    assert leases.release(lease, next_due=None)
    engine.dispose()


def test_a_page_is_committed_in_chunks_so_a_crash_mid_page_keeps_the_first(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of 120 deals is stored 50 deals per transaction: a crash while the second chunk
    is planned keeps the first one (and not the watermark); the next tick finishes the page
    and plans every deal once."""
    from sqlalchemy import func, select

    from worker.ledger.schema import enrollment
    from worker.sync import pull

    world.crm.page_size = 200
    for i in range(120):
        world.lost(f"D{i:03}", account=f"A{i:03}")
    real_store = pull._store
    calls: list[int] = []

    def crash_on_second(tick: object, conn: object, deals: object, watermark: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed while planning")
        real_store(tick, conn, deals, watermark)  # type: ignore[arg-type]

    monkeypatch.setattr(pull, "_store", crash_on_second)
    assert run_tick(world.ctx, ignore_schedule=True).result == "error"

    def enrolled() -> int:
        with world.service.ledger.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(enrollment)).scalar_one())

    assert enrolled() == pull.PLAN_CHUNK
    state = world.ctx.ledger.connection_row("crm")
    assert state is not None and state.watermark is None
    monkeypatch.setattr(pull, "_store", real_store)
    world.tick()
    assert enrolled() == 120
