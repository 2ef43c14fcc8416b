"""The default rules are the playbook (docs/playbook.md), step by step."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.unit.planning import deal, default_config
from worker.cadence.engine import Planner
from worker.settings.durations import Duration

CONFIG = default_config()
PLANNER = Planner(CONFIG, "acme-sf")


def steps(cadence_id: str) -> dict[str, object]:
    cadence = next(c for c in CONFIG.cadences if c.id == cadence_id)
    return {s.id: s for s in cadence.steps}


@pytest.mark.parametrize(("reason", "cadence"), [
    ("Lost to competitor", "lost-to-competitor"), ("Price", "lost-to-competitor"),
    (None, "lost-to-competitor"), ("No decision", "lost-to-no-decision"),
    ("No budget", "lost-to-no-decision"), ("Status quo", "lost-to-no-decision"),
    ("Disqualified", "disqualified"), ("Bad fit", "disqualified"),
])
def test_loss_reason_picks_the_track(reason: str | None, cadence: str) -> None:
    """Competitor (and unknown) losses, no-decision losses and bad fits get their own tracks."""
    assert PLANNER.plan(deal(loss_reason=reason), datetime(2027, 11, 12, tzinfo=UTC)).cadence \
        == cadence


def test_disqualified_deals_get_no_tasks() -> None:
    """Disqualified / bad fit: no cadence at all."""
    assert steps("disqualified") == {}
    assert PLANNER.plan(deal(loss_reason="Disqualified"),
                        datetime(2027, 11, 12, tzinfo=UTC)).tasks == ()


def test_competitor_track_is_the_playbook_table() -> None:
    """Each row of the playbook's routine is a step with the playbook's timing and channel."""
    s = steps("lost-to-competitor")
    d = Duration.parse
    table = [  # (step, timing, channel, per)
        ("thank-you", {"at": d("0d")}, "email", "stakeholder"),
        ("ask-post-mortem", {"at": d("0d")}, "call", "deal"),
        ("post-mortem", {"at": d("14d")}, "call", "deal"),
        ("check-in", {"every": d("4w"), "from_": d("28d"), "until": d("84d")}, "call", "deal"),
        ("ninety-day", {"at": d("90d")}, "call", "deal"),
        ("nurture", {"spread": 3, "from_": d("90d"), "until": d("180d")}, "email", "stakeholder"),
        ("small-project", {"at": d("120d")}, "call", "deal"),
        ("monthly", {"every": d("1mo"), "from_": d("6mo"), "until": d("1y")}, "call", "deal"),
        ("quarterly", {"every": d("3mo"), "from_": d("13mo"), "until": d("3y")}, "call", "deal"),
        ("renewal", {"at": d("-6mo")}, "call", "deal"),
    ]
    assert list(s) == [row[0] for row in table]
    for step_id, timing, channel, per in table:
        step = s[step_id]
        for name, value in timing.items():
            assert getattr(step, name) == value, (step_id, name)
        assert (str(step.channel), step.per) == (channel, per), step_id  # type: ignore[attr-defined]
    assert s["renewal"].anchor == "contract_end"  # type: ignore[attr-defined]
    assert str(s["post-mortem"].priority) == "high"  # type: ignore[attr-defined]
    assert CONFIG.defaults.horizon == d("3y")


def test_post_mortem_subject_and_body_carry_the_questions() -> None:
    """The post-mortem task names the deal and asks the four questions."""
    d = deal(date(2027, 11, 12))
    plan = PLANNER.plan(d, datetime(2027, 11, 12, 15, tzinfo=UTC))
    task = next(t for t in plan.tasks if t.step == "post-mortem")
    subject, body = PLANNER.render(task, d, plan.day0)
    assert subject == "Loss post-mortem call: Acme platform"
    for words in ("Who did you choose (Globex?)", "main reasons", "Why not us",
                  "How is the project going?", "Record the competitor"):
        assert words in body


def test_no_decision_track_widens_and_checks_back() -> None:
    """No-decision: insights, more stakeholders, a budget check, quarterly calls."""
    s = steps("lost-to-no-decision")
    assert {"thank-you", "debrief", "insight", "widen", "budget-check", "quarterly"} <= set(s)
    assert s["widen"].per == "stakeholder"  # type: ignore[attr-defined]


def test_every_default_template_renders_for_a_sparse_deal() -> None:
    """A deal with no competitor, contract end or contact names still renders every task."""
    for reason in ("Lost to competitor", "No decision"):
        d = deal(loss_reason=reason, competitor=None, account_name=None,
                 contract_end=date(2029, 6, 30))
        plan = PLANNER.plan(d, datetime(2027, 11, 12, tzinfo=UTC))
        assert plan.tasks
        for task in plan.tasks:
            subject, _ = PLANNER.render(task, d, plan.day0)
            assert subject and "None" not in subject
