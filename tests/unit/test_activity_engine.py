"""The activity-aware planner (issue 13), on the rules the vectors cannot show: decisions
already made stay, written tasks never move, and with no activity rules the plan is the
engine's own."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from connectors.models import Activity, ActivityKind
from tests.unit.planning import config_from, deal
from worker.cadence.activity import ActivityRef, DealActivity
from worker.cadence.engine import Planner
from worker.cadence.keys import task_key
from worker.cli.dealsfile import read_deals
from worker.settings import load_config
from worker.views.plandiff import reasons

NOW = datetime(2027, 12, 1, 15, 0, tzinfo=UTC)
VECTORS = Path(__file__).resolve().parent.parent / "fixtures" / "plan-vectors"
SKIP = """cadences:
  - id: c
    steps:
      - {id: ninety-day, at: 21d, skip_if: {activity: [call], within: 14d}}
"""
AFTER = """cadences:
  - id: c
    steps:
      - {id: post-mortem, at: 14d}
      - {id: check-in, every: 4w, from: 4w, until: 12w, after: post-mortem}
"""


def _call(at: datetime, *, deleted: bool = False) -> Activity:
    return Activity(id="C1", kind=ActivityKind.CALL, at=at, deal_id="D1", deleted=deleted)


def test_a_skip_decision_stays_when_its_activity_is_deleted(tmp_path: Path) -> None:
    """Day 21 of a Nov 15 loss is Mon Dec 6; a call on Nov 30 skips it. Deleted later, the
    call is ignored, but the decision the sync recorded keeps the task skipped."""
    planner = Planner(config_from(tmp_path, SKIP))
    d = deal(date(2027, 11, 15))
    when = datetime(2027, 11, 30, 15, tzinfo=UTC)
    live = planner.plan(d, NOW, activity=DealActivity((_call(when),)))
    assert live.tasks == ()
    (skip,) = live.skipped
    assert skip.activity == ActivityRef(ActivityKind.CALL, "C1", when)
    gone = DealActivity((_call(when, deleted=True),))
    assert [t.due_date for t in planner.plan(d, NOW, activity=gone).tasks] == [date(2027, 12, 6)]
    kept = DealActivity(gone.activities, skipped={str(skip.key): skip.activity})  # type: ignore[dict-item]
    again = planner.plan(d, NOW, activity=kept)
    assert again.tasks == () and again.skipped[0].activity == skip.activity


def test_a_written_task_is_not_skipped_by_a_later_activity(tmp_path: Path) -> None:
    planner = Planner(config_from(tmp_path, SKIP))
    d = deal(date(2027, 11, 15))
    key = planner.plan(d, NOW).tasks[0].key
    given = DealActivity((_call(datetime(2027, 11, 30, 15, tzinfo=UTC)),),
                         written={key: date(2027, 12, 6)})
    assert [t.key for t in planner.plan(d, NOW, activity=given).tasks] == [key]


def test_a_later_completion_moves_only_unwritten_tasks(tmp_path: Path) -> None:
    """Completed Nov 10, the check-ins fall on Dec 8, Jan 5, Feb 2; the completion corrected
    to Nov 17 moves the unwritten ones by a week, the written Dec 8 one stays."""
    planner = Planner(config_from(tmp_path, AFTER))
    d = deal(date(2027, 10, 25))
    pm_key = task_key("crm", "D1", "c", "post-mortem", 0, None)  # (past grace: not planned)
    done = {pm_key: datetime(2027, 11, 10, 15, tzinfo=UTC)}
    first = planner.plan(d, NOW, activity=DealActivity(completions=done))
    checks = [t for t in first.tasks if t.step == "check-in"]
    assert [t.due_date for t in checks] == [date(2027, 12, 8), date(2028, 1, 5), date(2028, 2, 2)]
    later = DealActivity(completions={pm_key: datetime(2027, 11, 17, 15, tzinfo=UTC)},
                         written={checks[0].key: checks[0].due_date})
    moved = [t.due_date for t in planner.plan(d, NOW, activity=later).tasks
             if t.step == "check-in"]
    assert moved == [date(2027, 12, 8), date(2028, 1, 12), date(2028, 2, 9)]


def test_without_activity_rules_the_reactive_path_plans_as_the_engine() -> None:
    """The shared vectors' deals, planned with an empty activity (the reactive path) and
    without (the engine's own): the same tasks, keys and skips."""
    config = load_config(VECTORS / "winback.yaml", env={})
    planner = Planner(config)
    now = datetime(2027, 11, 12, 14, tzinfo=UTC)
    for d in read_deals(VECTORS / "deals.jsonl"):
        plain = planner.plan(d, now)
        reacting = planner.plan(d, now, activity=DealActivity())
        assert reacting.tasks == plain.tasks, d.id
        assert [(s.step, s.occurrence, s.due_date, s.reason) for s in reacting.skipped] == \
            [(s.step, s.occurrence, s.due_date, s.reason) for s in plain.skipped], d.id


def test_activity_keys_left_unset_keep_the_fingerprint(tmp_path: Path) -> None:
    """A cadence without after/max_wait/skip_if, no away and on_meeting notify: the plan
    inputs are those of before issue 13 (no new keys), so deploying re-plans nothing."""
    planner = Planner(config_from(tmp_path, "cadences:\n  - id: c\n    steps:\n"
                                            "      - {id: s, at: 1d}\n"))
    inputs = planner.plan_inputs("c", ("U1", True, "America/New_York", "US", None)).inputs
    text = json.dumps(inputs)
    for key in ("after", "max_wait", "skip_if", "away", "on_meeting"):
        assert f'"{key}"' not in text


def test_plan_diff_reasons_name_the_activity_settings(tmp_path: Path) -> None:
    """skip_if, max_wait and on_meeting change no task without activity, but a deal they
    re-plan says which setting it read."""
    raw = ("U1", True, "America/New_York", "US", None)
    base = "      - {id: pm, at: 14d}\n      - {id: ci, at: 28d, after: pm}\n"
    old = Planner(config_from(tmp_path, "cadences:\n  - id: c\n    steps:\n" + base))
    new = Planner(config_from(
        tmp_path, "cadences:\n  - id: c\n    steps:\n" + base.replace(
            "after: pm}", "after: pm, max_wait: 21d, skip_if: {activity: [call], within: 7d}}")
        + "stop: {on_meeting: ignore}\n"))
    why = reasons(old.plan_inputs("c", raw).stored(), new.plan_inputs("c", raw), "ci")
    assert why == ("cadence c step ci max_wait", "cadence c step ci skip_if",
                   "stop.on_meeting: notify -> ignore")
