"""A first-sync page of new deals is stored in a few multi-row statements, not several per
deal (worker/ledger/batch.py): the ledger's throughput rests on it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from bench.ledger_write import CONFIG, deals

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)


def test_a_page_of_new_deals_costs_a_few_statements(tmp_path: Path, database_url: str,
                                                     monkeypatch: Any) -> None:
    from worker.ledger.leases import Lease
    from worker.service.wiring import build_service
    from worker.settings import load_config
    from worker.sync.context import Tick
    from worker.sync.plan import store_page

    path = tmp_path / "winback.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("BENCH_PW", "unused")
    monkeypatch.setenv("WINBACK_DATABASE_URL", database_url)
    if database_url.startswith("postgresql"):
        from sqlalchemy import create_engine

        from worker.ledger import migrate

        migrate.upgrade(create_engine(database_url))
    service = build_service(load_config(path), path, clock=lambda: NOW,
                            connector_factory=lambda s, o: object())  # type: ignore[arg-type,return-value]
    ctx = service.contexts["bench-sf"]
    tick = Tick(ctx, Lease("bench-sf", "test", 1, 120.0), NOW)
    page = list(deals(500, NOW))
    statements: list[str] = []
    event.listen(ctx.ledger.engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    with ctx.ledger.write() as conn:
        store_page(tick, conn, page)
    begin = "BEGIN IMMEDIATE" if database_url.startswith("sqlite") else None
    statements = [s for s in statements if s != begin]
    with ctx.ledger.engine.connect() as conn:
        enrolled = conn.execute(text("select count(*) from enrollment")).scalar()
        events = conn.execute(text("select count(*) from event where kind = 'deal.enrolled'")
                              ).scalar()
        skips = conn.execute(text("select count(*) from skip_outcome")).scalar()
        tasks = conn.execute(text("select count(*) from task")).scalar()
    assert enrolled == events == 500
    assert tasks and skips and tasks + skips == 500  # each deal: its step planned or skipped
    # (the look-ups, one insert per table, and the rollups counted once per page: six
    # grouped upserts between the deferral's two statements; 21 when written)
    assert len(statements) <= 24, statements[:30]
    with ctx.ledger.engine.connect() as conn:
        assert conn.execute(text("select sum(n) from enrollment_rollup")).scalar() == 500
    assert os.environ["BENCH_PW"] == "unused"


def test_postgresql_statistics_follow_a_first_sync(pg_url: str, tmp_path: Path,
                                                   monkeypatch: Any) -> None:
    """Pages of new deals on PostgreSQL: once the enrollments pass ANALYZE_FIRST the tables
    are analyzed (else the page's look-ups scan the connection's every enrollment)."""
    from sqlalchemy import create_engine

    from worker.ledger import batch, migrate
    from worker.ledger.leases import Lease
    from worker.service.wiring import build_service
    from worker.settings import load_config
    from worker.sync.context import Tick
    from worker.sync.plan import store_page

    path = tmp_path / "winback.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("BENCH_PW", "unused")
    monkeypatch.setenv("WINBACK_DATABASE_URL", pg_url)
    monkeypatch.setattr(batch, "ANALYZE_FIRST", 300)
    migrate.upgrade(create_engine(pg_url))
    service = build_service(load_config(path), path, clock=lambda: NOW,
                            connector_factory=lambda s, o: object())  # type: ignore[arg-type,return-value]
    ctx = service.contexts["bench-sf"]
    tick = Tick(ctx, Lease("bench-sf", "test", 1, 120.0), NOW)
    all_deals = list(deals(500, NOW))

    def analyzed() -> int:
        with ctx.ledger.engine.connect() as conn:
            return int(conn.execute(text(
                "select coalesce(analyze_count, 0) from pg_stat_user_tables "
                "where relname = 'enrollment'")).scalar() or 0)

    with ctx.ledger.write() as conn:
        store_page(tick, conn, all_deals[:200])
    assert analyzed() == 0
    with ctx.ledger.write() as conn:
        store_page(tick, conn, all_deals[200:])
    # (statistics are reported to pg_stat_user_tables a moment after the commit)
    import time

    deadline = time.monotonic() + 5
    while analyzed() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert analyzed() == 1


def test_a_pulls_transactions_grow_from_50_to_1000_deals() -> None:
    """A process that lives a few seconds commits its first 50 deals; a long first sync
    commits 1,000 at a time (worker/sync/pull.py `_parts`), across pages."""
    from worker.sync import pull

    page = list(deals(3000, NOW))
    parts, size = pull._parts(page, pull.PLAN_CHUNK)
    assert [len(p) for p in parts] == [50, 100, 200, 400, 800, 1000, 450]
    assert [d.id for p in parts for d in p] == [d.id for d in page]
    assert size == 1000
    assert [len(p) for p in pull._parts(page[:1200], size)[0]] == [1000, 200]
    assert pull._parts([], 50) == ([[]], 50)
