"""Task insert is idempotent by key: planning a deal twice (a retried page, a deal seen in two
pages, a rebirth notice raised twice) inserts each key once and never fails the transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import func, select

from connectors.models import Channel, Priority
from worker.cadence.tasks import PlannedTask
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.schema import task
from worker.ledger.store import Ledger

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _row(key: str, due: date) -> PlannedTask:
    return PlannedTask(key=key, connection="sf", deal_id="006A", cadence="c", step=key,
                       occurrence=0, contact_id=None, owner_id="005A", due_date=due,
                       remind_at=NOW, create_on=NOW.date(), create_after=NOW,
                       channel=Channel.CALL, priority=Priority.NORMAL)


def test_inserting_known_keys_again_adds_nothing_and_changes_nothing(database_url: str
                                                                     ) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        migrate.upgrade(engine)
        ledger = Ledger(engine)
        with ledger.write() as conn:
            first = ledger.insert_tasks(conn, [_row("k1", date(2026, 3, 3)),
                                               _row("k2", date(2026, 3, 4))], NOW)
        with ledger.write() as conn:  # k1 again with another date, and one new key
            second = ledger.insert_tasks(conn, [_row("k1", date(2026, 3, 9)),
                                                _row("k3", date(2026, 3, 5))], NOW)
        if engine.dialect.name == "sqlite":
            # (on PostgreSQL the executemany rowcount this returns is -1: not checked there)
            assert (first, second) == (2, 1)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(task)).scalar_one() == 3
            due = conn.execute(select(task.c.due_date).where(task.c.key == "k1")).scalar_one()
        assert due == date(2026, 3, 3)  # the first insert stands
    finally:
        engine.dispose()
