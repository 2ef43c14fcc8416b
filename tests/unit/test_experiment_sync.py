"""Experiment arms through the sync (issue 17 part 1): the arm is stored at enrollment and
fed back to the planner, so it never changes while the experiment id stays; holdout deals are
enrolled and watched for rebirth with no task written, and `status` counts them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.unit.harness import World
from worker.ledger.records import EnrollmentStatus, TaskStatus
from worker.ledger.schema import enrollment, task
from worker.views.reports import status


def _cadence(experiment: str) -> str:
    return f"""cadences:
  - id: lost-to-competitor
    steps:
      - {{id: post-mortem, at: 14d, channel: call}}
      - {{id: check-in, at: 60d, channel: call}}
    experiment:
{experiment}
"""


ALL_HOLDOUT = _cadence("      id: exp-1\n      holdout: 100%")


@pytest.fixture
def world(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(tmp_path, database_url, monkeypatch, extra=ALL_HOLDOUT)
    yield w
    w.close()


def _row(w: World, deal_id: str = "D1") -> object:
    with w.service.ledger.engine.connect() as conn:
        return conn.execute(select(enrollment).where(enrollment.c.deal_id == deal_id)).one()


def _tasks(w: World) -> list[object]:
    with w.service.ledger.engine.connect() as conn:
        return list(conn.execute(select(task).where(task.c.cadence != "reborn")))


def test_a_holdout_deal_is_enrolled_and_counted_with_no_task(world: World) -> None:
    world.lost()
    world.tick()
    row = _row(world)
    assert (row.experiment, row.arm, row.status) == (  # type: ignore[attr-defined]
        "exp-1", "holdout", EnrollmentStatus.ACTIVE)
    assert _tasks(world) == []
    world.advance(days=30)
    world.tick()
    assert world.crm.admin_tasks() == []
    counts = status(world.service.ledger, ["crm"], world.now)[0]["experiment_arms"]
    assert counts == {"exp-1 holdout": 1, "exp-1 holdout tracked": 1}


def test_a_holdout_deal_is_still_watched_for_rebirth(world: World) -> None:
    world.lost()
    world.tick()
    world.advance(days=20)
    world.crm.admin_update_deal("D1", is_closed=False, stage="Negotiation")
    world.tick()
    row = _row(world)
    assert row.status == EnrollmentStatus.STOPPED  # type: ignore[attr-defined]
    assert row.reborn_at is not None  # type: ignore[attr-defined]
    counts = status(world.service.ledger, ["crm"], world.now)[0]["experiment_arms"]
    assert counts == {"exp-1 holdout": 1}


def test_the_stored_arm_outlives_edits_until_the_experiment_id_changes(world: World) -> None:
    world.lost()
    world.tick()
    # The weights change (a fresh draw would almost surely give base: 99%) and a step moves:
    world.reload(_cadence("      id: exp-1\n      holdout: 1%").replace("at: 60d", "at: 50d"))
    world.tick()
    assert _row(world).arm == "holdout"  # type: ignore[attr-defined]
    assert _tasks(world) == []
    # A new experiment id draws the deal again (all base now): its follow-up is planned.
    world.reload(_cadence("      id: exp-2\n      holdout: 0%"))
    world.tick()
    row = _row(world)
    assert (row.experiment, row.arm) == ("exp-2", "base")  # type: ignore[attr-defined]
    assert sorted(t.step for t in _tasks(world)) == ["check-in", "post-mortem"]  # type: ignore[attr-defined]
    assert all(t.status != TaskStatus.CANCELLED for t in _tasks(world))  # type: ignore[attr-defined]


def test_plan_diff_shows_what_an_experiment_edit_changes(tmp_path: Path, database_url: str,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import json

    from typer.testing import CliRunner

    from tests.unit.harness import CONFIG
    from worker.cli.main import app

    plain = _cadence("      id: exp-1\n      holdout: 0%").split("    experiment:")[0]
    w = World(tmp_path, database_url, monkeypatch, extra=plain)
    try:
        w.lost()
        w.tick()
        before = sorted((t.key, t.status) for t in _tasks(w))  # type: ignore[attr-defined]
        assert len(before) == 2
        edited = tmp_path / "edited.yaml"
        edited.write_text(CONFIG + ALL_HOLDOUT)
        result = CliRunner().invoke(app, ["plan", str(edited), "--diff", "--format", "json",
                                          "--now", w.now.isoformat()])
        assert result.exit_code == 0, result.output
        changes = [json.loads(line) for line in result.stdout.splitlines()]
        assert sorted((c["change"], c["step"], c["arm_before"], c["arm_after"])
                      for c in changes) == [("dropped", "check-in", None, "holdout"),
                                            ("dropped", "post-mortem", None, "holdout")]
        why = " ".join(changes[0]["why"])
        assert "the deal was drawn into arm holdout" in why
        assert "cadence lost-to-competitor experiment added" in why
        table = CliRunner().invoke(app, ["plan", str(edited), "--diff", "--now",
                                         w.now.isoformat()])
        assert "lost-to-competitor (holdout)" in " ".join(table.stdout.split())
        assert sorted((t.key, t.status) for t in _tasks(w)) == before  # type: ignore[attr-defined]
    finally:
        w.close()
