"""The cheap task status read (issue 14) over the in-memory CRM: without a rule that reads
task activity, winback's open written tasks are read at most once a day, in batches, and
their completion (with its time) reaches the ledger; a tick with nothing due for the read
makes no call for it (the idle tick stays at 1 call); with an `after` rule the activity read
gives completions and the status read never runs. The backlog gauges follow the ledger."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.unit.harness import World
from worker.ledger.schema import task

PLAIN = """\
cadences:
  - id: plain
    steps:
      - {id: thank-you, at: 0d, channel: email}
      - {id: post-mortem, at: 3d, channel: call}
      - {id: check-in, every: 4w, from: 4w, until: 8w}
"""
AFTER = """\
cadences:
  - id: reactive
    steps:
      - {id: thank-you, at: 0d, channel: email}
      - {id: check-in, at: 4w, after: thank-you, max_wait: 21d}
"""


def _completed(world: World) -> dict[str, object]:
    with world.service.ledger.engine.connect() as conn:
        return {str(r.crm_id): r.completed_at for r in conn.execute(
            select(task.c.crm_id, task.c.completed_at).where(task.c.completed.is_(True)))}


def _gauge(world: World, name: str) -> float:
    value = world.service.metrics.registry.get_sample_value(name, {"connection": "crm"})
    assert value is not None, name
    return value


def test_status_read_once_a_day_with_completion_times(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(tmp_path, database_url, monkeypatch, extra=PLAIN)
    try:
        for n in range(3):
            world.lost(f"D{n}", account=f"A{n}")
        world.tick()  # writes thank-you and post-mortem tasks
        written = world.crm.admin_tasks()
        assert len(written) == 6
        world.advance(minutes=10)
        idle = world.tick()
        assert idle.api_calls == 1 and world.crm.calls["tasks.status"] == 0
        assert _gauge(world, "winback_tasks_open") == 6
        assert _gauge(world, "winback_owner_backlog_max") == 6  # one owner has them all
        done_at = world.now - timedelta(minutes=5)
        world.crm.admin_complete_task(written[0].crm_id, at=done_at)
        world.crm.admin_complete_task(written[1].crm_id, at=done_at)
        world.advance(hours=20)
        world.tick()  # less than a day since the read's day started: no read yet
        assert world.crm.calls["tasks.status"] == 0 and _completed(world) == {}
        world.advance(hours=5)
        world.tick()
        assert world.crm.calls["tasks.status"] == 1  # 6 open tasks: one batch
        assert _completed(world) == {written[0].crm_id: done_at, written[1].crm_id: done_at}
        assert _gauge(world, "winback_tasks_open") == 4
        today = world.now.date()
        overdue = [t for t in world.crm.admin_tasks() if not t.completed
                   and t.draft.due_date < today]
        assert overdue and _gauge(world, "winback_tasks_overdue") == len(overdue)
        world.crm.admin_complete_task(written[2].crm_id)
        world.advance(hours=2)
        world.tick()
        assert world.crm.calls["tasks.status"] == 1  # at most once a day
        world.advance(days=1)
        world.tick()
        assert world.crm.calls["tasks.status"] == 2
        assert len(_completed(world)) == 3
    finally:
        world.close()


def test_no_status_read_when_the_activity_read_gives_completions(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(tmp_path, database_url, monkeypatch, extra=AFTER)
    try:
        world.lost("D1")
        world.tick()
        thank_you = world.crm.admin_tasks()[0]
        done_at = world.now + timedelta(hours=1)
        world.advance(hours=2)
        world.crm.admin_complete_task(thank_you.crm_id, at=done_at)
        for _ in range(3):
            world.advance(days=1)
            world.tick()
        assert world.crm.calls["tasks.status"] == 0
        assert _completed(world) == {thank_you.crm_id: done_at}
    finally:
        world.close()
