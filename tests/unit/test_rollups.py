"""The outcome report's rollups (worker/ledger/rollups.py, migration 0007) stay equal to a
recount from the base tables after a varied run (plans, the daily cap's moves and skips,
writes, completions, a re-plan, stops and rebirths, a deleted deal), on SQLite and
PostgreSQL; with one trigger removed they do not (so the comparison can fail). And the daily
cap's skips show in the report under "cap"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select

from tests.unit.harness import World
from worker.ledger import outcomes, rollups
from worker.ledger.records import CancelReason, TaskStatus
from worker.ledger.schema import enrollment, task
from worker.views.reports import outcome_report

RULES = """\
    max_tasks_per_owner_per_day: 1
cadences:
  - id: vip
    when: {amount: {gte: 50000}}
    steps:
      - {id: call, at: 10d, priority: high}
      - {id: email, at: 20d}
  - id: std
    steps:
      - {id: call, at: 10d}
      - {id: email, at: 12d}
"""
MON = date(2027, 3, 1)
DEALS = [f"D{n}" for n in range(1, 8)]


@pytest.fixture
def world(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(tmp_path, database_url, monkeypatch, extra=RULES,
              start=datetime(2027, 3, 1, 15, tzinfo=UTC))
    yield w
    w.close()


def _statuses(world: World) -> set[tuple[str, str | None]]:
    with world.service.ledger.engine.connect() as conn:
        return {(r.status, r.cancel_reason) for r in conn.execute(select(task))}


def _varied_run(world: World) -> set[tuple[str, str | None]]:
    """The run; returns the (status, cancel reason) pairs tasks had after some tick."""
    for n, deal_id in enumerate(DEALS):
        world.lost(deal_id, closed=MON, account=f"A{deal_id}",
                   amount=90000.0 if n % 3 == 0 else 25000.0,
                   loss_reason="Price" if n % 2 else "Lost to competitor")
    world.tick()  # planned, the cap moves and skips
    seen = _statuses(world)
    world.advance(days=10)
    world.tick()  # written
    ledger = world.service.ledger
    with ledger.engine.connect() as conn:
        written = [(r.crm_id, r.due_date) for r in conn.execute(
            select(task.c.crm_id, task.c.due_date).where(task.c.status == TaskStatus.WRITTEN)
            .order_by(task.c.deal_id, task.c.crm_id))]  # (D1's first: reborn below)
    assert len(written) >= 3
    with ledger.write() as conn:  # completed at an unknown time, late, on time
        outcomes.mark_completed_at(conn, "crm", {
            written[0][0]: None,
            written[1][0]: datetime.combine(written[1][1] + timedelta(days=3),
                                            datetime.min.time(), UTC),
            written[2][0]: world.now - timedelta(hours=2)}, by="crm_id")
    world.advance(hours=1)
    for deal_id in ("D1", "D2"):  # reborn: reopened
        world.crm.admin_update_deal(deal_id, is_closed=False, stage="Negotiation")
    world.crm.admin_delete_deal("D3")
    world.tick()
    with ledger.write() as conn:  # a later read learns when D1's task was done: before
        outcomes.mark_completed_at(conn, "crm", {  # the rebirth (its last touch)
            written[0][0]: world.now - timedelta(hours=3)}, by="crm_id")
    world.advance(hours=1)
    world.tick()
    seen |= _statuses(world)
    world.reload(RULES.replace("      - {id: email, at: 12d}\n", ""))  # a re-plan
    world.lost("D9", closed=MON + timedelta(days=2))
    world.tick()
    world.advance(days=5)
    world.tick()
    return seen | _statuses(world)


def _rows(conn: Connection, sql: str) -> set[tuple[Any, ...]]:
    return {tuple(round(v, 6) if isinstance(v, float) else
                  (int(v) if isinstance(v, bool) else str(v)) for v in row)
            for row in conn.exec_driver_sql(sql)}


def mismatches(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    """Per rollup table, the rows where it differs from a recount of the base tables; and
    the reborn deals whose last touch differs from one computed here from their tasks."""
    d = conn.dialect.name
    out: dict[str, set[tuple[Any, ...]]] = {}
    for table in rollups.TABLES:
        mine = [r for r in rollups.ROLLUPS if r.table == table]
        names = [k for k, _ in mine[0].keys] + [v for v, _ in mine[0].values]
        kept = _rows(conn, f"SELECT {', '.join(names)} FROM {table} WHERE n <> 0")
        recount: set[tuple[Any, ...]] = set()
        for r in mine:
            recount |= _rows(conn, rollups.recount_sql(r, d))
        out[table] = kept ^ recount
    touches = set()
    done = [r for r in conn.execute(select(task)) if r.status == TaskStatus.WRITTEN
            and r.completed and r.completed_at is not None
            and r.cancel_reason != CancelReason.CLOSED]
    for e in conn.execute(select(enrollment)):
        before = [(t.completed_at, t.step) for t in done
                  if t.deal_id == e.deal_id and e.reborn_at is not None
                  and t.completed_at <= e.reborn_at]
        expected = max(before) if before else (None, None)
        if (e.last_touch_at, e.last_touch_step) != expected:
            touches.add((e.deal_id, e.last_touch_at, e.last_touch_step, *expected))
    out["last_touch"] = touches
    return out


def test_the_rollups_equal_a_recount_after_a_varied_run(world: World) -> None:
    statuses = _varied_run(world)
    with world.service.ledger.engine.connect() as conn:
        reborn = conn.execute(select(enrollment.c.deal_id).where(
            enrollment.c.last_touch_step.is_not(None))).all()
        found = mismatches(conn)
    # the run went through the paths that change the rollups
    assert {(TaskStatus.WRITTEN, None), (TaskStatus.SKIPPED, CancelReason.CAP),
            (TaskStatus.CANCELLED, CancelReason.REPLANNED)} <= statuses
    assert len(reborn) >= 1
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize("removed", [  # (SQLite's trigger, PostgreSQL's)
    ("trg_task_rollup_update", "trg_task_rollup_update"),
    ("trg_enrollment_rollup_update", "trg_enrollment_rollup_update"),
    ("trg_task_touch_update", "trg_task_touch")])
def test_without_one_trigger_the_recount_differs(world: World, removed: tuple[str, str]
                                                 ) -> None:
    with world.service.ledger.engine.begin() as conn:
        name = removed[0] if conn.dialect.name == "sqlite" else removed[1]
        on = "" if conn.dialect.name == "sqlite" else f" ON {name.split('_')[1]}"
        conn.exec_driver_sql(f"DROP TRIGGER {name}{on}")
    _varied_run(world)
    with world.service.ledger.engine.connect() as conn:
        found = mismatches(conn)
    assert any(found.values())


def test_the_report_counts_the_daily_caps_skips_under_cap(world: World) -> None:
    """Cap 1, seven deals whose calls fall due on one day (grace 7d): the one the cap cannot
    place is skipped in the ledger and never reaches the CRM; the report says so."""
    for deal_id in DEALS:
        world.lost(deal_id, closed=MON, account=f"A{deal_id}")
    world.tick()
    world.advance(days=10)
    world.tick()
    calls = [t for t in world.crm.admin_tasks() if t.draft.subject.lower().find("opportunity")
             < 0 and t.draft.due_date <= date(2027, 3, 18)]
    payload = outcome_report(world.service.ledger, ["crm"], MON - timedelta(days=1),
                             world.now.date(), {})
    call = next(r for r in payload["by_step_outcome"] if (r["cadence"], r["step"]) ==
                ("std", "call"))
    assert len(calls) < len(DEALS)
    assert call["skipped_by"].get("cap") == len(DEALS) - len(calls) >= 1


def test_a_page_of_new_enrollments_is_counted_in_by_add_new(world: World,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A first sync's page is counted set-wise (rollups.add_new) while the insert triggers
    stand aside: without add_new the counts are missing, and nothing stays deferred."""
    monkeypatch.setattr(rollups, "add_new", lambda *args: None)
    for deal_id in DEALS:
        world.lost(deal_id, closed=MON, amount=25000.0)
    world.tick()  # (just the first sync: a later update of a row counts it in again)
    with world.service.ledger.engine.connect() as conn:
        found = mismatches(conn)
        deferral = conn.exec_driver_sql("SELECT count(*) FROM rollup_deferral").scalar()
    assert found["enrollment_rollup"] and found["task_rollup"] and found["segment_rollup"]
    assert deferral == 0


def test_a_page_whose_deals_have_tasks_is_counted_row_by_row(world: World,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    seen: list[bool] = []
    real = rollups.have_tasks

    def have_tasks(conn: Connection, connection: str, deal_ids: Any) -> bool:
        seen.append(real(conn, connection, deal_ids))
        return True  # (the triggers count every row: the same rollups)

    monkeypatch.setattr(rollups, "have_tasks", have_tasks)
    _varied_run(world)
    with world.service.ledger.engine.connect() as conn:
        found = mismatches(conn)
        some_deal = conn.execute(select(task.c.deal_id)).scalars().first()
        assert real(conn, "crm", [str(some_deal), "nobody"])
        assert not real(conn, "crm", ["nobody"])
    assert seen and not any(seen)  # (new deals have no task rows)
    assert {k: v for k, v in found.items() if v} == {}


def test_a_failed_page_leaves_nothing_deferred(world: World) -> None:
    """The deferral is part of the page's transaction: an error rolls it back with the rest,
    and the next insert is counted by its trigger."""
    ledger = world.service.ledger
    with pytest.raises(RuntimeError), ledger.write() as conn, rollups.deferred(conn):
        raise RuntimeError("the page failed")
    world.lost("D1", closed=MON)
    world.tick()
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM rollup_deferral").scalar() == 0
        assert {k: v for k, v in mismatches(conn).items() if v} == {}
        if conn.dialect.name == "postgresql":
            assert conn.exec_driver_sql(
                f"SELECT current_setting('{rollups.DEFER_SETTING}', true)").scalar() in (
                    None, "", "off")
