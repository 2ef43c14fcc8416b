"""The sync pipeline over the in-memory CRM, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.errors import BudgetExhausted, RetryableError
from connectors.models import Deal, Owner
from tests.unit.harness import World
from worker.cadence.engine import Planner
from worker.ledger.leases import LeaseLost, Leases
from worker.ledger.schema import enrollment, task
from worker.sync import pull
from worker.sync.tick import run_tick


@pytest.fixture
def world(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(tmp_path, database_url, monkeypatch)
    yield w
    w.close()


def ledger_tasks(w: World) -> list[object]:
    with w.service.ledger.engine.connect() as conn:
        return list(conn.execute(select(task)))


def test_a_year_of_ticks_writes_the_plan_exactly_once_on_the_right_dates(world: World) -> None:
    """Weekly ticks through a simulated year: the CRM holds exactly the planned tasks due in
    that year (plus lead time), each once, with the planned due dates."""
    deal = world.lost(contacts=())
    start = world.now
    for _ in range(53):
        world.tick()
        world.advance(days=7)
    planner = Planner(world.service.config, "crm")
    expected = {t.key: t.due_date for t in planner.plan(deal, start).tasks
                if t.create_on <= world.now.date() - timedelta(days=7)}
    written = {t.key: t for t in world.crm.admin_tasks()}
    assert set(written) == set(expected)
    assert all(written[k].draft.due_date == due for k, due in expected.items())
    assert all(t.writes == 1 for t in written.values())
    assert len(written) == 14  # 2 asks/calls, 3 check-ins, 90-day, small project, 7 monthly


def test_reopened_deal_stops_cadence_closes_open_tasks_and_tells_the_owner(world: World) -> None:
    """Reopen: unwritten tasks cancelled, open future tasks closed, one reborn task written."""
    world.lost()
    world.tick()
    world.advance(days=8)
    world.tick()  # writes the post-mortem (due day 14, created 7 days before)
    written_before = {t.key for t in world.crm.admin_tasks()}
    world.crm.admin_update_deal("D1", is_closed=False, stage="Negotiation")
    world.advance(hours=1)
    result = world.tick()
    assert (result.counts.stopped, result.counts.reborn) == (1, 1)
    tasks = world.crm.admin_tasks()
    reborn = [t for t in tasks if t.draft.subject.startswith("Opportunity reborn")]
    assert len(reborn) == 1 and reborn[0].draft.owner_id == "U1"
    post_mortem = [t for t in tasks if "post-mortem call:" in t.draft.subject]
    assert post_mortem and all(t.completed for t in post_mortem)
    for _ in range(10):
        world.advance(days=7)
        world.tick()
    assert {t.key for t in world.crm.admin_tasks()} == written_before | {reborn[0].key}
    with world.service.ledger.engine.connect() as conn:
        row = conn.execute(select(enrollment)).one()
    assert (row.status, row.stop_reason) == ("stopped", "reopened")


def test_new_deal_on_the_account_stops_the_cadence(world: World) -> None:
    """A new open deal on a tracked account: the lost deal's cadence stops as reborn."""
    world.lost("D1", account="A7")
    world.tick()
    world.advance(days=20)
    world.crm.admin_put_deal(Deal(id="D2", name="Second try", account_id="A7", is_closed=False,
                                  owner=Owner(id="U1")))
    result = world.tick()
    assert result.counts.reborn == 1
    with world.service.ledger.engine.connect() as conn:
        row = conn.execute(select(enrollment).where(enrollment.c.deal_id == "D1")).one()
    assert (row.stop_reason, row.reborn_deal_id) == ("new_deal", "D2")
    reborn = [t for t in world.crm.admin_tasks() if t.draft.subject.startswith("Opportunity")]
    assert len(reborn) == 1


def test_inactive_owner_tasks_go_to_the_fallback_owner(world: World) -> None:
    """Planned for an owner who left: the fallback owner gets the tasks."""
    world.crm.admin_put_owner(Owner(id="GONE", active=False))
    world.lost(owner="GONE")
    world.tick()
    assert {t.draft.owner_id for t in world.crm.admin_tasks()} == {"FALLBACK"}


def test_owner_deactivated_after_planning_is_replaced_at_write_time(world: World) -> None:
    """The CRM refuses an inactive owner: the task is re-queued for the fallback owner."""
    world.lost()
    world.tick()
    world.crm.admin_put_owner(Owner(id="U1", active=False))
    world.advance(days=8)
    result = world.tick()
    assert result.counts.owner_fallbacks >= 1
    post = [t for t in world.crm.admin_tasks() if "post-mortem call:" in t.draft.subject]
    assert [t.draft.owner_id for t in post] == ["FALLBACK"]


def test_crash_between_sending_and_written_is_reconciled_without_resend(world: World) -> None:
    """The CRM took the batch but the answer was lost: next tick finds the tasks by key and
    marks them written without writing them again."""
    world.lost()
    original = world.crm.write_tasks

    def write_then_lose_answer(drafts: list[object]) -> list[object]:
        original(drafts)  # type: ignore[arg-type]
        raise RetryableError("read timeout", connection="crm", endpoint="tasks.write")

    world.crm.write_tasks = write_then_lose_answer  # type: ignore[method-assign]
    result = run_tick(world.ctx, ignore_schedule=True)
    assert result.result == "error"
    assert {r.status for r in ledger_tasks(world) if r.crm_id is None and  # type: ignore[attr-defined]
            r.status != "planned"} == {"sending"}
    world.crm.write_tasks = original  # type: ignore[method-assign]
    result = world.tick()
    assert result.counts.tasks_reconciled == 2
    assert all(t.writes == 1 for t in world.crm.admin_tasks())
    assert {r.status for r in ledger_tasks(world)} <= {"written", "planned"}  # type: ignore[attr-defined]


def test_a_stale_lease_holder_cannot_write(world: World) -> None:
    """After another process took the lease, the old holder's fenced write raises LeaseLost."""
    engine = world.service.ledger.engine
    old = Leases(engine, owner="old", ttl=0.2)
    new = Leases(engine, owner="new", ttl=30)
    lease = old.acquire("crm", ignore_schedule=True)
    assert lease is not None
    assert new.acquire("crm", ignore_schedule=True) is None
    import time

    time.sleep(0.3)
    taken = new.acquire("crm", ignore_schedule=True)
    assert taken is not None and taken.epoch == lease.epoch + 1
    with pytest.raises(LeaseLost), engine.begin() as conn:
        old.fence(conn, lease)
    assert not old.release(lease, next_due=None)


def test_rule_edit_moves_only_unwritten_tasks(world: World) -> None:
    """Moving a step re-plans tasks not yet written; written ones stay as they were."""
    world.lost()
    world.tick()
    written = {t.key: t.draft.due_date for t in world.crm.admin_tasks()}
    edited = """cadences:
  - id: lost-to-competitor
    steps:
      - {id: thank-you, at: 0d, channel: email, per: stakeholder}
      - {id: post-mortem, at: 21d, channel: call}
"""
    world.reload(edited)
    world.tick()
    rows = {r.step: r for r in ledger_tasks(world)}  # type: ignore[attr-defined]
    assert rows["post-mortem"].due_date == date(2027, 3, 22)
    assert rows["check-in"].status == "cancelled"
    assert {t.key: t.draft.due_date for t in world.crm.admin_tasks()} == written


def test_deleted_deal_stops_without_a_reborn_task(world: World) -> None:
    """A deleted deal ends its cadence quietly."""
    world.lost()
    world.tick()
    world.crm.admin_delete_deal("D1")
    world.advance(hours=1)
    result = world.tick()
    assert (result.counts.stopped, result.counts.reborn) == (1, 0)


def test_deal_lost_before_the_backfill_window_is_not_enrolled(world: World) -> None:
    """First run: losses older than `backfill` (365d) are left alone."""
    world.lost("OLD", closed=date(2025, 1, 1))
    world.lost("NEW", closed=date(2027, 2, 20))
    result = world.tick()
    assert result.counts.enrolled == 1


def test_a_deal_that_cannot_be_planned_is_skipped_and_the_tick_goes_on(world: World) -> None:
    """No close date: skipped with a reason; the other deal is planned."""
    world.crm.admin_put_deal(Deal(id="BAD", name="No date", loss_reason="Price",
                                  owner=Owner(id="U1")))
    world.lost("GOOD")
    result = world.tick()
    assert result.counts.deals_skipped == 1 and result.counts.enrolled >= 1


def test_budget_exhausted_stops_the_tick_and_defers_the_connection(world: World) -> None:
    """REQUEST_LIMIT_EXCEEDED-style errors end the tick with result budget, not a crash."""
    world.lost()
    resume = world.now + timedelta(hours=3)
    world.crm.admin_fail_next("deals.changed", BudgetExhausted("daily budget spent",
                                                               resume_after=resume))
    result = run_tick(world.ctx, ignore_schedule=True)
    assert result.result == "budget"
    row = world.service.ledger.connection_row("crm")
    assert row is not None and row.next_due == resume


def test_dry_run_writes_nothing(world: World) -> None:
    """--dry-run pulls and plans but leaves the ledger and the CRM untouched."""
    world.lost()
    result = world.tick(dry_run=True)
    assert result.counts.enrolled == 1
    assert world.crm.admin_tasks() == []
    assert ledger_tasks(world) == []


def test_idle_tick_makes_one_read_call_and_no_writes(world: World) -> None:
    """Nothing changed: one call to look for changes, nothing else."""
    world.lost()
    world.tick()
    world.advance(hours=1)
    world.tick()  # the overlap re-reads the deal once
    world.advance(hours=1)
    world.crm.calls.clear()
    world.tick()
    assert dict(world.crm.calls) == {"deals.changed": 1}


def test_won_back_is_recorded_for_the_report(world: World) -> None:
    """A reborn deal that is won counts as won back, with its amount."""
    world.lost("D1", account="A9")
    world.tick()
    world.advance(days=30)
    world.crm.admin_put_deal(Deal(id="D2", name="Again", account_id="A9", is_closed=False,
                                  owner=Owner(id="U1"), amount=60000.0))
    world.tick()
    world.advance(days=30)
    world.crm.admin_update_deal("D2", is_closed=True, is_won=True)
    world.tick()
    with world.service.ledger.engine.connect() as conn:
        row = conn.execute(select(enrollment).where(enrollment.c.deal_id == "D1")).one()
    assert row.won_back_amount == 60000.0 and row.won_back_at is not None


def test_lost_again_after_reborn_starts_a_new_cycle(world: World) -> None:
    """Reopened, then lost again: a new cadence cycle with new keys."""
    world.lost()
    world.tick()
    first = {t.key for t in world.crm.admin_tasks()}
    world.crm.admin_update_deal("D1", is_closed=False)
    world.advance(days=3)
    world.tick()
    world.crm.admin_update_deal("D1", is_closed=True, closed_at=(world.now + timedelta(days=1))
                                .date())
    world.advance(days=1)
    result = world.tick()
    assert result.counts.replanned == 1
    new = {t.key for t in world.crm.admin_tasks()} - first
    assert len(new) >= 2  # the new day-0 tasks (and the reborn notice)


def test_sync_keeps_utc_in_the_ledger(world: World) -> None:
    """Ledger times come back time-zone aware, in UTC."""
    world.lost()
    world.tick()
    row = world.service.ledger.connection_row("crm")
    assert row is not None and row.last_tick_at is not None
    assert row.last_tick_at.tzinfo is not None and row.last_tick_at.utcoffset() == timedelta(0)
    assert row.last_tick_at == world.now.astimezone(UTC)
    assert isinstance(row.watermark, datetime)


def test_plan_diff_shows_what_a_new_config_would_change(world: World, tmp_path: Path) -> None:
    """`plan --diff` lists moved and dropped unwritten tasks and changes nothing."""
    import json

    from typer.testing import CliRunner

    from tests.unit.harness import CONFIG
    from worker.cli.main import app

    world.lost()
    world.tick()
    before = sorted((r.key, r.status, r.due_date) for r in ledger_tasks(world))  # type: ignore[attr-defined]
    edited = tmp_path / "edited.yaml"
    edited.write_text(CONFIG + """cadences:
  - id: lost-to-competitor
    steps:
      - {id: thank-you, at: 0d, channel: email, per: stakeholder}
      - {id: ask-post-mortem, at: 0d}
      - {id: post-mortem, at: 21d}
      - {id: brand-new, at: 40d}
""")
    result = CliRunner().invoke(app, ["plan", str(edited), "--diff", "--format", "json",
                                      "--now", world.now.isoformat()])
    assert result.exit_code == 0, result.output
    changes = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {(c["change"], c["step"]) for c in changes}
    assert ("moved", "post-mortem") in kinds and ("added", "brand-new") in kinds
    assert ("dropped", "check-in") in kinds
    assert not any(c["step"] in ("thank-you", "ask-post-mortem") for c in changes)  # written
    after = sorted((r.key, r.status, r.due_date) for r in ledger_tasks(world))  # type: ignore[attr-defined]
    assert after == before


def test_a_deal_that_vanishes_from_the_crm_is_stopped_by_the_daily_check(world: World) -> None:
    """A deal deleted where no pull can see it (HubSpot search skips archived deals) is found
    by the daily re-read of tracked deals, and its cadence stops."""
    world.lost()
    world.tick()
    world.crm.admin_vanish("D1")
    world.advance(hours=2)
    assert world.tick().counts.stopped == 0  # within the day: not re-read yet
    world.advance(days=1)
    result = world.tick()
    assert result.counts.stopped == 1
    with world.service.ledger.engine.connect() as conn:
        row = conn.execute(select(enrollment)).one()
    assert (row.status, row.stop_reason) == ("stopped", "deleted")


def test_the_daily_check_of_many_tracked_deals_keeps_its_lease(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-reading a large ledger takes longer than the lease: each batch renews it, so the
    check finishes instead of losing the lease every day."""
    w = World(tmp_path, database_url, monkeypatch, ttl=3.0)  # (1 s failed under CI load)
    try:
        for i in range(6):
            w.lost(f"D{i}")
        w.tick()
        monkeypatch.setattr(pull, "VERIFY_BATCH", 1)
        read = w.crm.deals_by_id

        def slow_read(ids: list[str]) -> list[Deal]:
            time.sleep(0.8)  # six reads: 4.8 s, well past the 2.25 s local deadline
            return read(ids)

        monkeypatch.setattr(w.crm, "deals_by_id", slow_read)
        w.advance(days=1, hours=1)
        assert w.tick().result == "ok"
        assert w.ctx.ledger.connection_row("crm").verified_at is not None
    finally:
        w.close()
