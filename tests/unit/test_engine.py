"""The cadence engine's rules, one behaviour per test."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connectors.models import Contact, Owner
from tests.unit.planning import config_from, deal
from worker.cadence.engine import Planner

NOW = datetime(2027, 11, 12, 14, 0, tzinfo=UTC)


def one_step(tmp_path: Path, step: str, extra: str = "") -> Planner:
    return Planner(config_from(tmp_path, f"cadences:\n  - id: c\n    steps:\n      - {step}\n",
                               extra))


def dues(planner: Planner, d: object, now: datetime = NOW) -> list[date]:
    return [t.due_date for t in planner.plan(d, now).tasks]  # type: ignore[arg-type]


def test_post_mortem_lands_on_next_working_day_after_holiday(tmp_path: Path) -> None:
    """Day 14 from Nov 11 2027 is Thanksgiving (Nov 25): the call moves to Friday Nov 26."""
    planner = one_step(tmp_path, "{id: pm, at: 14d}")
    assert dues(planner, deal(date(2027, 11, 11))) == [date(2027, 11, 26)]


def test_weekend_due_date_moves_to_monday(tmp_path: Path) -> None:
    """Day 1 of a Friday loss is a Saturday: due Monday."""
    planner = one_step(tmp_path, "{id: s, at: 1d}")
    assert dues(planner, deal(date(2027, 11, 12))) == [date(2027, 11, 15)]


def test_step_late_within_grace_is_due_today(tmp_path: Path) -> None:
    """A step 5 days late (grace 7d) is due the first working day on or after today."""
    planner = one_step(tmp_path, "{id: s, at: 0d}")
    now = datetime(2027, 11, 17, 15, 0, tzinfo=UTC)  # Wednesday
    assert dues(planner, deal(date(2027, 11, 12)), now) == [date(2027, 11, 17)]


def test_step_late_beyond_grace_is_skipped_with_a_reason(tmp_path: Path) -> None:
    """Eight days late with a 7d grace: skipped, and the plan says why."""
    planner = one_step(tmp_path, "{id: s, at: 0d}")
    plan = planner.plan(deal(date(2027, 11, 12)), datetime(2027, 11, 20, 15, tzinfo=UTC))
    assert plan.tasks == ()
    assert [s.reason for s in plan.skipped] == ["past due by more than grace (1w)"]


def test_create_on_is_lead_time_before_due_but_never_before_today(tmp_path: Path) -> None:
    """create_on = max(due - lead_time, today)."""
    planner = one_step(tmp_path, "{id: s, every: 5d, from: 0d, until: 10d}")
    tasks = planner.plan(deal(date(2027, 11, 10)), datetime(2027, 11, 10, 12, tzinfo=UTC)).tasks
    assert [(t.due_date, t.create_on) for t in tasks] == [
        (date(2027, 11, 10), date(2027, 11, 10)),  # due today
        (date(2027, 11, 15), date(2027, 11, 10)),  # 15 - 7 = 8 < today
        (date(2027, 11, 22), date(2027, 11, 15)),  # Nov 20 is a Saturday -> Monday 22
    ]


def test_a_task_becomes_writable_at_the_owners_midnight_not_utcs(tmp_path: Path) -> None:
    """At 01:30 UTC it is still yesterday in New York: a task created "today" there waits
    until 05:00 UTC (midnight EST). The worker and the tests' expectations share this rule."""
    planner = one_step(tmp_path, "{id: s, at: 0d}")
    now = datetime(2027, 11, 17, 1, 30, tzinfo=UTC)  # Tuesday 20:30 in New York
    ny = deal(date(2027, 11, 17))
    [task] = planner.plan(ny, datetime(2027, 11, 17, 15, tzinfo=UTC)).tasks
    assert task.create_on == date(2027, 11, 17)
    assert planner.create_after(ny, task) == datetime(2027, 11, 17, 5, tzinfo=UTC)
    assert planner.create_after(ny, task) > now


def test_until_and_horizon_are_inclusive_before_the_shift(tmp_path: Path) -> None:
    """An occurrence exactly on `until` counts, even when its working day is after `until`."""
    planner = one_step(tmp_path, "{id: s, every: 1w, from: 0d, until: 15d}")
    # Nov 12 2027 is a Friday; +14d = Nov 26 (Friday), +15d would be Sat; k=2 is on day 14.
    assert dues(planner, deal(date(2027, 11, 12))) == [date(2027, 11, 12), date(2027, 11, 19),
                                                        date(2027, 11, 26)]
    cadence = "cadences:\n  - id: c\n    horizon: 1y\n    steps: [{id: s, at: 1y}]\n"
    short = Planner(config_from(tmp_path, cadence))
    # 2028-11-11 is a Saturday: the raw date equals the horizon, so it is kept, due Monday 13th.
    assert dues(short, deal(date(2027, 11, 11))) == [date(2028, 11, 13)]


def test_spread_divides_the_window_evenly(tmp_path: Path) -> None:
    """spread: N puts touch k at DA + floor((DB - DA) * k / (N + 1)) days."""
    planner = one_step(tmp_path, "{id: s, spread: 3, from: 90d, until: 180d}")
    # day0 2027-11-12: DA 2028-02-10, DB 2028-05-10 (90 days): +22, +45, +67 days.
    assert dues(planner, deal(date(2027, 11, 12))) == [date(2028, 3, 3), date(2028, 3, 27),
                                                        date(2028, 4, 17)]


def test_monthly_steps_keep_month_end(tmp_path: Path) -> None:
    """A loss on Oct 31 gets monthly touches on Nov 30, Dec 31, Jan 31; Dec 31 2027 is New
    Year's Day observed (Jan 1 2028 is a Saturday), so that one moves to Monday Jan 3."""
    planner = one_step(tmp_path, "{id: s, every: 1mo, from: 1mo, until: 3mo}")
    assert dues(planner, deal(date(2027, 10, 31)), datetime(2027, 10, 31, tzinfo=UTC)) == [
        date(2027, 11, 30), date(2028, 1, 3), date(2028, 1, 31)]


def test_per_stakeholder_makes_one_task_per_contact_skipping_opt_outs(tmp_path: Path) -> None:
    """Three contacts, one opted out: two tasks, linked to the other two."""
    planner = one_step(tmp_path, "{id: s, at: 1d, per: stakeholder}")
    contacts = (Contact(id="K1"), Contact(id="K2", opted_out=True), Contact(id="K3"))
    tasks = planner.plan(deal(contacts=contacts), NOW).tasks
    assert [t.contact_id for t in tasks] == ["K1", "K3"]


def test_per_stakeholder_without_contacts_plans_nothing(tmp_path: Path) -> None:
    """No contacts on the deal: no stakeholder tasks (and no error)."""
    planner = one_step(tmp_path, "{id: s, at: 1d, per: stakeholder}")
    assert planner.plan(deal(contacts=()), NOW).tasks == ()


def test_anchor_step_is_skipped_when_the_deal_lacks_the_field(tmp_path: Path) -> None:
    """A renewal anchored on contract_end needs a contract end."""
    planner = one_step(tmp_path, "{id: r, at: -6mo, anchor: contract_end}")
    plan = planner.plan(deal(contract_end=None), NOW)
    assert plan.tasks == ()
    assert plan.skipped[0].reason == "deal has no contract_end"
    with_end = planner.plan(deal(contract_end=date(2029, 6, 30)), NOW)
    assert [t.due_date for t in with_end.tasks] == [date(2029, 1, 2)]  # Dec 30 Sun, Jan 1 off


def test_inactive_owner_gets_the_fallback_owner(tmp_path: Path) -> None:
    """Tasks of a deal whose owner left go to the connection's fallback owner."""
    planner = one_step(tmp_path, "{id: s, at: 1d}")
    plan = planner.plan(deal(owner=Owner(id="GONE", active=False)), NOW)
    assert plan.owner_fallback
    assert {t.owner_id for t in plan.tasks} == {"FALLBACK"}


def test_deal_without_owner_or_fallback_is_not_planned(tmp_path: Path) -> None:
    """No owner and no fallback owner: nothing planned, with a reason."""
    planner = one_step(tmp_path, "{id: s, at: 1d}")
    planner.fallback_owner = None
    plan = planner.plan(deal(owner=None), NOW)
    assert plan.tasks == () and plan.reason is not None and "no owner" in plan.reason


def test_open_or_won_deals_are_not_planned(tmp_path: Path) -> None:
    """Only closed-lost deals get a cadence."""
    planner = one_step(tmp_path, "{id: s, at: 1d}")
    assert planner.plan(deal(is_closed=False), NOW).reason == "not closed-lost"
    assert planner.plan(deal(is_won=True), NOW).reason == "not closed-lost"


def test_day0_is_the_close_date_in_the_owners_zone(tmp_path: Path) -> None:
    """05:30Z on Nov 8 is still Nov 7 in Los Angeles."""
    planner = one_step(tmp_path, "{id: s, at: 0d}")
    owner = Owner(id="U3", timezone="America/Los_Angeles", country="US")
    plan = planner.plan(deal(datetime(2027, 11, 8, 5, 30, tzinfo=UTC), owner=owner),
                        datetime(2027, 11, 7, 20, tzinfo=UTC))
    assert plan.day0 == date(2027, 11, 7)


def test_reminder_is_at_local_time_and_moves_in_utc_across_dst(tmp_path: Path) -> None:
    """09:00 New York is 14:00Z in winter and 13:00Z in summer."""
    planner = one_step(tmp_path, "{id: s, every: 6mo, from: 0d, until: 6mo}")
    tasks = planner.plan(deal(date(2027, 11, 12)), NOW).tasks
    assert [t.remind_at.strftime("%H:%M") for t in tasks] == ["14:00", "13:00"]


def test_unknown_owner_zone_and_country_fall_back_to_defaults(tmp_path: Path) -> None:
    """A CRM owner with a bogus zone and country uses the configured defaults."""
    planner = one_step(tmp_path, "{id: s, at: 0d}")
    owner = Owner(id="U9", timezone="Not/AZone", country="ZZ")
    context = planner.owner_context(deal(owner=owner))
    assert context is not None
    assert (context.zone_name, context.calendar.country) == ("America/New_York", "US")


def test_owner_override_sets_zone_and_calendar(tmp_path: Path) -> None:
    """`owners:` in the connection gives HubSpot owners a zone and a country."""
    planner = one_step(tmp_path, "{id: s, at: 0d}",
                       "    owners: {'U1': {timezone: Europe/London, country: GB}}\n")
    context = planner.owner_context(deal())
    assert context is not None
    assert (context.zone_name, context.calendar.country) == ("Europe/London", "GB")


def test_first_matching_cadence_wins(tmp_path: Path) -> None:
    """Cadences are tried in file order."""
    cadences = """cadences:
  - id: big
    when: {amount: {gte: 10000}, loss_reason: {matches: "(?i)competitor"}}
    steps: [{id: s, at: 1d}]
  - id: any
    steps: [{id: s, at: 2d}]
"""
    planner = Planner(config_from(tmp_path, cadences))
    assert planner.plan(deal(amount=50000.0), NOW).cadence == "big"
    assert planner.plan(deal(amount=500.0), NOW).cadence == "any"
    assert planner.plan(deal(amount=None), NOW).cadence == "any"


@pytest.mark.parametrize(("test", "value", "expected"), [
    ("{in: ['No decision', 'No budget']}", "no DECISION", True),
    ("{in: ['No decision']}", None, False),
    ("{not_in: ['Disqualified']}", None, True),
    ("{eq: Price}", "price", True),
    ("{ne: Price}", "Timing", True),
    ("{exists: false}", "", True),
    ("{exists: true}", "x", True),
    ("{matches: '^Lost'}", "Lost to competitor", True),
    ("{matches: '^Lost'}", "We lost", False),
])
def test_when_tests(tmp_path: Path, test: str, value: str | None, expected: bool) -> None:
    """String tests ignore case and surrounding blanks; missing values fail positive tests."""
    cadences = f"cadences:\n  - id: c\n    when: {{loss_reason: {test}}}\n    steps: []\n"
    planner = Planner(config_from(tmp_path, cadences))
    assert (planner.match(deal(loss_reason=value)) is not None) is expected


def test_rendered_subject_uses_deal_and_contact(tmp_path: Path) -> None:
    """Templates see deal, owner, contact and step; None renders as nothing."""
    planner = one_step(tmp_path, '{id: s, at: 1d, per: stakeholder, subject: "Call {{ contact.name'
                                 ' }} re {{ deal.name }} ({{ deal.competitor }})", body: "#{{ '
                                 'step.occurrence }} {{ owner.id }}"}')
    d = deal(competitor=None, contacts=(Contact(id="K1", name="Ann"),))
    task = planner.plan(d, NOW).tasks[0]
    assert planner.render(task, d) == ("Call Ann re Acme platform ()", "#0 U1")


def test_keys_differ_by_connection_and_contact(tmp_path: Path) -> None:
    """The key covers connection, deal, cadence, step, occurrence and contact."""
    planner = one_step(tmp_path, "{id: s, every: 1w, from: 0d, until: 2w, per: stakeholder}")
    keys = [t.key for t in planner.plan(deal(), NOW).tasks]
    assert len(keys) == len(set(keys)) == 6
    other = one_step(tmp_path, "{id: s, every: 1w, from: 0d, until: 2w, per: stakeholder}")
    other.connection = "other"
    assert not set(keys) & {t.key for t in other.plan(deal(), NOW).tasks}
