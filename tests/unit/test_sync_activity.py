"""The sync with CRM activity (issue 13) over the in-memory CRM, on SQLite and PostgreSQL:
completions move dependent steps, skip_if decided on the create date and kept, opt-out and
meeting stops, a pause, and no activity call without activity rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connectors.models import Activity, ActivityKind, Contact
from tests.unit.harness import World
from worker.ledger.schema import enrollment, skip_decision, task

# Day 0 is Monday 2027-03-01 (the harness's start). post-mortem due Mar 15 (created Mar 8);
# check-ins 4w and 8w after its completion (max_wait 21d: Apr 5 without one); ninety-day
# due May 30 -> Monday May 31 is Memorial Day -> Jun 1, created May 25.
RULES = """\
cadences:
  - id: reactive
    steps:
      - {id: post-mortem, at: 14d, channel: call}
      - {id: check-in, every: 4w, from: 4w, until: 8w, after: post-mortem, max_wait: 21d}
      - {id: ninety-day, at: 90d, skip_if: {activity: [call, meeting], within: 14d}}
"""
PLAIN = """\
cadences:
  - id: plain
    steps:
      - {id: post-mortem, at: 14d, channel: call}
      - {id: check-in, every: 4w, from: 4w, until: 8w}
"""


def at(day: date, hour: int = 15) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def make(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
         extra: str) -> World:
    return World(tmp_path, database_url, monkeypatch, extra=extra)


@pytest.fixture
def world(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[World]:
    w = make(tmp_path, database_url, monkeypatch, RULES)
    yield w
    w.close()


def crm_tasks(w: World) -> dict[str, date]:
    """step -> due date of the tasks written to the CRM (one per step here)."""
    return {_step(w, t.key): t.draft.due_date for t in w.crm.admin_tasks()}


def _step(w: World, key: str) -> str:
    with w.service.ledger.engine.connect() as conn:
        row = conn.execute(select(task.c.step, task.c.occurrence).where(task.c.key == key)).one()
    return f"{row.step}#{row.occurrence}"


def crm_id(w: World, step: str) -> str:
    for stored in w.crm.admin_tasks():
        if _step(w, stored.key) == step:
            return stored.crm_id
    raise AssertionError(f"{step} not written")


def ledger_due(w: World, step: str, occurrence: int = 0) -> date | None:
    with w.service.ledger.engine.connect() as conn:
        row = conn.execute(select(task.c.due_date, task.c.status).where(
            task.c.step == step, task.c.occurrence == occurrence,
            task.c.status != "cancelled")).one_or_none()
    return row.due_date if row is not None else None


def go(w: World, day: date, hour: int = 15) -> None:
    w.now = at(day, hour)
    w.tick()


def test_a_completion_moves_the_dependent_steps(world: World) -> None:
    """The post-mortem completed on Mar 10: the check-ins count from Mar 10 (Apr 7, May 5),
    not from the max_wait day (Apr 5 -> May 3); written on their create dates."""
    world.lost(contacts=())
    world.tick()
    go(world, date(2027, 3, 8))
    assert set(crm_tasks(world)) == {"post-mortem#0"}
    assert ledger_due(world, "check-in") is None  # waiting
    from worker.views.reports import status as read_status

    assert read_status(world.service.ledger, ["crm"], world.now)[0]["activity"]["waiting"] == 1
    world.crm.admin_complete_task(crm_id(world, "post-mortem#0"), at=at(date(2027, 3, 10)))
    go(world, date(2027, 3, 11))
    assert ledger_due(world, "check-in", 0) == date(2027, 4, 7)
    assert ledger_due(world, "check-in", 1) == date(2027, 5, 5)
    go(world, date(2027, 3, 31))
    assert crm_tasks(world)["check-in#0"] == date(2027, 4, 7)


def test_a_logged_call_skips_the_touch_on_its_create_date_and_the_decision_stays(
        world: World) -> None:
    """A call on May 20 (within 14d of the Jun 1 due date): the ninety-day task is skipped on
    its create date (May 25), recorded with the call, and stays skipped once the call is
    deleted; the summary and the event name the activity."""
    world.lost(contacts=())
    world.tick()
    world.crm.admin_put_activity(Activity(id="CALL1", kind=ActivityKind.CALL,
                                          at=at(date(2027, 5, 20)), account_id="A1"))
    go(world, date(2027, 5, 21))
    assert ledger_due(world, "ninety-day") == date(2027, 6, 1)  # not decided before May 25
    world.now = at(date(2027, 5, 25))
    result = world.tick()
    assert result.counts.skipped_by_activity == 1
    assert "ninety-day#0" not in crm_tasks(world)
    with world.service.ledger.engine.connect() as conn:
        decided = conn.execute(select(skip_decision)).one()
        status = conn.execute(select(task.c.status).where(task.c.step == "ninety-day")
                              ).scalar_one()
    assert (decided.activity_kind, decided.activity_id) == ("call", "CALL1")
    assert status == "skipped"
    from worker.views.reports import status as read_status

    counts = read_status(world.service.ledger, ["crm"], world.now)[0]["activity"]
    assert counts["skipped_by_activity"] == 1
    world.crm.admin_delete_activity("CALL1")
    go(world, date(2027, 5, 26))
    go(world, date(2027, 6, 2))
    assert "ninety-day#0" not in crm_tasks(world)


def test_without_the_call_the_touch_is_written(world: World) -> None:
    """The control: no activity, the ninety-day task is written on May 25."""
    world.lost(contacts=())
    world.tick()
    go(world, date(2027, 5, 25))
    assert crm_tasks(world)["ninety-day#0"] == date(2027, 6, 1)


def test_opt_out_stops_the_cadence_and_closes_open_tasks(world: World) -> None:
    """fields.opt_out checked: stopped (reason opted_out), the written open post-mortem is
    closed in the CRM, nothing else is written, no reborn notice."""
    world.lost(contacts=())
    world.tick()
    go(world, date(2027, 3, 8))
    world.crm.admin_update_deal("D1", opted_out=True)
    go(world, date(2027, 3, 9))
    with world.service.ledger.engine.connect() as conn:
        row = conn.execute(select(enrollment.c.status, enrollment.c.stop_reason)).one()
    assert (row.status, row.stop_reason) == ("stopped", "opted_out")
    stored = {_step(world, t.key): t for t in world.crm.admin_tasks()}
    assert set(stored) == {"post-mortem#0"} and stored["post-mortem#0"].completed
    go(world, date(2027, 6, 1))
    assert len(world.crm.admin_tasks()) == 1


def test_pause_holds_then_resumes_with_grace(world: World) -> None:
    """Paused until Fri Mar 19: nothing on Mar 8; the post-mortem (due Mar 15, within grace of
    the pause's end) is written on Mar 19, due Mar 19."""
    world.lost(contacts=())
    world.tick()
    world.advance(hours=1)
    world.crm.admin_update_deal("D1", paused_until=date(2027, 3, 19))
    go(world, date(2027, 3, 8))
    assert crm_tasks(world) == {}
    go(world, date(2027, 3, 18))
    assert crm_tasks(world) == {}
    go(world, date(2027, 3, 19))
    assert crm_tasks(world) == {"post-mortem#0": date(2027, 3, 19)}


def test_write_due_sends_nothing_of_a_paused_deal(world: World) -> None:
    """A task planned before the pause (its row still created Mar 8) is not sent while the
    deal's snapshot says paused: held until the pause's end."""
    deal = world.lost(contacts=())
    world.tick()
    paused = deal.model_copy(update={"paused_until": date(2027, 3, 19)}).model_dump(mode="json")
    with world.service.ledger.engine.begin() as conn:
        conn.execute(update(enrollment).values(deal_json=paused))
    go(world, date(2027, 3, 8))
    assert crm_tasks(world) == {}


def notices(w: World) -> list[str]:
    return [t.draft.subject for t in w.crm.admin_tasks() if "Meeting booked" in t.draft.subject
            or "reborn" in t.draft.subject.lower()]


def test_on_meeting_notify_writes_one_notice(world: World) -> None:
    """A meeting with the account on Mar 3: one "Meeting booked" task, once, over ticks."""
    world.lost(contacts=())
    world.tick()
    world.crm.admin_put_activity(Activity(id="MTG1", kind=ActivityKind.MEETING,
                                          at=at(date(2027, 3, 3)), account_id="A1"))
    go(world, date(2027, 3, 3), 18)
    go(world, date(2027, 3, 4))
    go(world, date(2027, 3, 8))
    assert notices(world) == ["Meeting booked with Account A1: is the opportunity back?"]
    assert "post-mortem#0" in crm_tasks(world)  # the cadence goes on


def test_on_meeting_stop_stops_as_reborn(tmp_path: Path, database_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """stop.on_meeting: stop: stopped (reason meeting), the owner gets the reborn notice, the
    cadence writes nothing more."""
    w = make(tmp_path, database_url, monkeypatch, RULES + "stop: {on_meeting: stop}\n")
    try:
        w.lost(contacts=())
        w.tick()
        w.crm.admin_put_activity(Activity(id="MTG1", kind=ActivityKind.MEETING,
                                          at=at(date(2027, 3, 3)), account_id="A1"))
        go(w, date(2027, 3, 3), 18)
        go(w, date(2027, 3, 8))
        with w.service.ledger.engine.connect() as conn:
            row = conn.execute(select(enrollment.c.status, enrollment.c.stop_reason)).one()
        assert (row.status, row.stop_reason) == ("stopped", "meeting")
        assert len(notices(w)) == 1 and len(w.crm.admin_tasks()) == 1
        go(w, date(2027, 3, 9))
        assert len(w.crm.admin_tasks()) == 1
    finally:
        w.close()


@pytest.mark.parametrize(("extra", "reads"), [
    (PLAIN, False),
    (PLAIN + "stop: {on_meeting: notify}\n", True),
    (PLAIN + "stop: {on_meeting: ignore}\n", False),
    (RULES, True),
])
def test_activity_calls_only_when_a_rule_reads_activity(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, extra: str,
        reads: bool) -> None:
    """Without activity rules (stop.on_meeting left at its default, or ignore) no activity
    call, and an idle tick is 1 call; an explicit on_meeting or a skip_if/after rule reads."""
    w = make(tmp_path, database_url, monkeypatch, extra)
    try:
        w.lost(contacts=())
        w.tick()
        w.advance(minutes=10)
        idle = w.tick()
        assert (w.crm.calls["activities.changed"] > 0) is reads
        assert idle.api_calls == (2 if reads else 1)
    finally:
        w.close()


def test_first_sync_decides_with_the_activity_before_it_writes(world: World) -> None:
    """First sync on May 25 of a deal lost Mar 1 with a call on May 20: the activity is read
    first and linked to the deal as its page is planned, so that one plan is final (no
    re-plan after the read); the ninety-day task is skipped, never sent."""
    world.now = at(date(2027, 5, 25))
    world.lost(closed=date(2027, 3, 1), contacts=())
    world.crm.admin_put_activity(Activity(id="CALL1", kind=ActivityKind.CALL,
                                          at=at(date(2027, 5, 20)), account_id="A1"))
    result = world.tick()
    assert result.counts.skipped_by_activity == 1
    assert (result.counts.enrolled, result.counts.replanned) == (1, 0)  # planned once
    assert "ninety-day#0" not in crm_tasks(world)


def test_plan_diff_plans_with_the_activity_in_the_ledger(world: World) -> None:
    """After a completion moved the check-ins, a rule edit of another step: plan --diff
    re-plans with the completion from the ledger, so the check-ins are not reported dropped
    (waiting) and only the edited step changes."""
    from worker.views.plandiff import diff

    world.lost(contacts=())
    world.tick()
    go(world, date(2027, 3, 8))
    world.crm.admin_complete_task(crm_id(world, "post-mortem#0"), at=at(date(2027, 3, 10)))
    go(world, date(2027, 3, 11))
    world.reload(RULES.replace("at: 90d,", "at: 95d,"))
    changes = diff(world.service.config, world.service.ledger, world.now)
    assert {(c.step, c.change) for c in changes} == {("ninety-day", "moved")}, changes


def test_the_overlap_re_read_re_plans_nothing(world: World) -> None:
    """winback's own task comes back as an activity once (a new row: its deal is re-planned);
    read again in the next overlap window, unchanged, it re-plans nothing."""
    world.now = at(date(2027, 3, 8))
    world.lost(closed=date(2027, 3, 1), contacts=())
    assert world.tick().counts.tasks_written == 1  # the post-mortem
    world.advance(minutes=1)
    second = world.tick()
    assert second.counts.activities_read == 1 and second.counts.replanned == 1
    world.advance(minutes=1)
    third = world.tick()
    assert third.counts.activities_read == 1  # (inside the overlap: read again)
    assert third.counts.replanned == 0


EARLY = """\
cadences:
  - id: early
    steps:
      - {id: touch, at: 7d, skip_if: {activity: [call], within: 14d}}
      - {id: ask, at: 7d, per: stakeholder, skip_if: {activity: [call], within: 14d}}
"""


def test_activity_read_before_its_deal_was_tracked_counts_for_it(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls logged on Feb 26, on account A1 and on contact K2 only, are read while no deal
    of theirs is tracked. D1 (account A1) and D2 (contact K2) are lost on Mar 1: their
    touches are due Mar 8, created Mar 1, decided at once with those calls (linked at
    enrollment from what was read): D1's touch and ask are skipped, D2's ask for K2 is
    skipped and its touch (the deal's, not the contact's) written."""
    w = make(tmp_path, database_url, monkeypatch, EARLY)
    try:
        w.now = at(date(2027, 2, 26))
        w.crm.admin_put_activity(Activity(id="CALL1", kind=ActivityKind.CALL,
                                          at=at(date(2027, 2, 26), 10), account_id="A1"))
        w.crm.admin_put_activity(Activity(id="CALL2", kind=ActivityKind.CALL,
                                          at=at(date(2027, 2, 26), 11), contact_ids=("K2",)))
        w.tick()  # read: no tracked deal yet
        go(w, date(2027, 2, 27))  # (the calls are behind the watermark and its overlap now)
        w.now = at(date(2027, 3, 1))
        w.lost("D1")
        w.lost("D2", account="A2", contacts=(Contact(id="K2", name="Bo"),))
        w.tick()
        with w.service.ledger.engine.connect() as conn:
            decided = {(str(r.deal_id), str(r.step), str(r.activity_id))
                       for r in conn.execute(select(skip_decision))}
        assert decided == {("D1", "touch", "CALL1"), ("D1", "ask", "CALL1"),
                           ("D2", "ask", "CALL2")}
        written = {_step(w, t.key) + "@" + t.draft.deal_id for t in w.crm.admin_tasks()}
        assert written == {"touch#0@D2"}
    finally:
        w.close()
