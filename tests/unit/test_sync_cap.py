"""The daily cap in the ledger (worker/sync/cap.py) over the in-memory CRM, on SQLite and
PostgreSQL: unwritten tasks make room for a later deal's higher-priority task; written tasks
never move and keep their day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.unit.harness import World
from worker.cadence.keys import task_key

RULES = """\
    max_tasks_per_owner_per_day: 2
cadences:
  - id: vip
    when: {amount: {gte: 50000}}
    steps:
      - {id: call, at: 10d, priority: high}
  - id: std
    steps:
      - {id: call, at: 10d}
"""
MON = date(2027, 3, 1)
THU, FRI = date(2027, 3, 11), date(2027, 3, 12)


@pytest.fixture
def world(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(tmp_path, database_url, monkeypatch, extra=RULES,
              start=datetime(2027, 3, 1, 15, tzinfo=UTC))
    yield w
    w.close()


def crm_days(world: World) -> dict[str, date]:
    """deal -> due date of its cadence task in the CRM (not the "Opportunity reborn" notice)."""
    tasks = world.crm.admin_tasks()
    assert all(t.writes == 1 for t in tasks)
    return {t.draft.deal_id: t.draft.due_date for t in tasks
            if not t.draft.subject.startswith("Opportunity reborn")}


def _first_of(*deals: str) -> str:
    return min(deals, key=lambda d: task_key("crm", d, "std", "call", 0, None))


def test_an_unwritten_task_makes_room_for_a_later_high_priority_one(world: World) -> None:
    world.lost("D1", closed=MON)
    world.lost("D2", closed=MON)
    world.tick()
    world.advance(days=1)
    world.lost("D3", closed=MON, amount=90000.0)
    world.tick()
    world.advance(days=3)  # Mar 5: all three are due for writing
    world.tick()
    keeps = _first_of("D1", "D2")
    moved = ({"D1", "D2"} - {keeps}).pop()
    assert crm_days(world) == {"D3": THU, keeps: THU, moved: FRI}


def test_written_tasks_keep_their_day_and_count_against_the_cap(world: World) -> None:
    world.lost("D1", closed=MON)
    world.lost("D2", closed=MON)
    world.tick()
    world.advance(days=3)  # Mar 4, 15:00Z: both written (created 7 days before Mar 11)
    world.tick()
    assert crm_days(world) == {"D1": THU, "D2": THU}
    world.lost("D3", closed=MON, amount=90000.0)  # higher priority, but Thursday is written
    world.advance(hours=1)
    world.tick()
    assert crm_days(world) == {"D1": THU, "D2": THU, "D3": FRI}


def test_a_cap_edit_shows_in_plan_diff_and_the_next_sync_applies_exactly_it(
        world: World) -> None:
    from worker.views.plandiff import diff

    world.reload(RULES.replace("    max_tasks_per_owner_per_day: 2\n", ""))
    for deal_id in ("D1", "D2", "D3"):
        world.lost(deal_id, closed=MON)
    world.tick()
    world.reload(RULES.replace("max_tasks_per_owner_per_day: 2", "max_tasks_per_owner_per_day: 1"))
    changes = diff(world.service.config, world.service.ledger, world.now)
    assert sorted((c.change, c.due_before, c.due_after) for c in changes) == [
        ("moved", THU, FRI), ("moved", THU, date(2027, 3, 15))]
    assert all(c.why == ("max_tasks_per_owner_per_day: none -> 1",) for c in changes)
    world.tick()
    assert diff(world.service.config, world.service.ledger, world.now) == []
    world.advance(days=7)
    world.tick()
    assert sorted(crm_days(world).values()) == [THU, FRI, date(2027, 3, 15)]


def test_a_team_member_the_crm_refuses_hands_the_deal_to_the_next_member(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """D1 hashes to T1 (team [T1, T2]); T1 left the CRM: its task is written for T2, once,
    and D4 (T2's own) stays with T2. The plan logs owner.fallback with the chosen member."""
    from connectors.models import Owner
    from worker.cadence.owners import team_member

    assert (team_member("D1", ["T1", "T2"]), team_member("D4", ["T1", "T2"])) == ("T1", "T2")
    team = RULES.replace("    max_tasks_per_owner_per_day: 2\n", "")
    w = World(tmp_path, database_url, monkeypatch, start=datetime(2027, 3, 1, 15, tzinfo=UTC),
              extra=team)
    w.path.write_text(w.path.read_text().replace('fallback_owner: "FALLBACK"',
                                                 "fallback_owner: [T1, T2]"))
    w.service.close()
    w.service = w._build()  # (World's files name one fallback owner)
    try:
        w.crm.admin_put_owner(Owner(id="T1", active=False))
        w.crm.admin_put_owner(Owner(id="T2", timezone="America/New_York", country="US"))
        w.crm.admin_put_owner(Owner(id="GONE", active=False))
        w.lost("D1", closed=MON, owner="GONE")
        w.lost("D4", closed=MON, owner="GONE")
        w.tick()
        w.advance(days=4)
        w.tick()
        w.advance(hours=1)
        w.tick()  # (the refused task is sent again, to T2)
        tasks = w.crm.admin_tasks()
        assert sorted((t.draft.deal_id, t.draft.owner_id) for t in tasks) == [
            ("D1", "T2"), ("D4", "T2")]
    finally:
        w.close()


def test_a_task_the_cap_skipped_stays_dropped_when_its_deal_stops(world: World) -> None:
    """Cap 1, seven deals due Thu Mar 11 (grace 7d: six working days to Mar 18): the last by
    key is skipped. Its deal is then reopened, and so is one placed deal: the room that frees
    up must not bring the stopped deal's task back."""
    world.reload(RULES.replace("max_tasks_per_owner_per_day: 2", "max_tasks_per_owner_per_day: 1"))
    deals = [f"D{n}" for n in range(1, 8)]
    for deal_id in deals:
        world.lost(deal_id, closed=MON, account=f"A{deal_id}")
    world.tick()
    order = sorted(deals, key=lambda d: task_key("crm", d, "std", "call", 0, None))
    skipped, placed = order[-1], order[0]
    for deal_id in (skipped, placed):
        world.crm.admin_update_deal(deal_id, is_closed=False, stage="Negotiation")
    world.advance(hours=1)
    world.tick()
    world.lost("D9", closed=date(2027, 3, 3))  # (the owner's days are placed again)
    world.advance(days=10)
    world.tick()
    days = crm_days(world)
    assert skipped not in days and placed not in days
    assert len([d for d in days if d in deals]) == 5
