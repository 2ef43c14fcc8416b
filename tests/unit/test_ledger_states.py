"""The ledger's state machine: typed records, named transitions, and one task type from the
planner to the CRM draft. On SQLite and PostgreSQL."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors.models import Deal
from tests.unit.planning import config_from, deal
from worker.cadence.engine import Planner
from worker.cadence.keys import task_key
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.records import (
    CancelReason,
    EnrollmentStatus,
    NewPlan,
    OutboxTask,
    StopReason,
    TaskStatus,
)
from worker.ledger.store import Ledger

NOW = datetime(2027, 11, 16, 15, 0, tzinfo=UTC)  # Tuesday, 10:00 in New York
ROOT = Path(__file__).resolve().parents[2]
CADENCE = "cadences:\n  - id: c\n    steps:\n      - {id: call, every: 5d, from: 0d, until: 10d}\n"


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    engine = make_engine(database_url, pool_size=1)
    migrate.upgrade(engine)
    try:
        yield Ledger(engine)
    finally:
        engine.dispose()


def _plan(planner: Planner, d: Deal, cycle: int = 1) -> NewPlan:
    plan = planner.plan(d, NOW, cycle=cycle)
    return NewPlan(cycle=cycle, cadence=plan.cadence, rule_version="v1", owner_input=None,
                   account_id=d.account_id, owner_id=plan.owner_id, loss_reason=d.loss_reason,
                   amount=d.amount, day0=plan.day0, deal_json=d.model_dump(mode="json"),
                   deal_modified_at=d.modified_at)


def test_planned_tasks_carry_their_create_instant_and_project_onto_the_draft(
        tmp_path: Path) -> None:
    """The planner gives each task the UTC instant it becomes writable (the owner's
    midnight), and the CRM draft is a projection of the same task."""
    planner = Planner(config_from(tmp_path, CADENCE), "crm")
    d = deal(date(2027, 11, 16))
    tasks = planner.plan(d, NOW).tasks
    assert [t.create_after for t in tasks] == [
        datetime(2027, 11, 16, 5, tzinfo=UTC),  # midnight EST (UTC-5)
        datetime(2027, 11, 16, 5, tzinfo=UTC),  # due Nov 22 - 7d is past: today
        datetime(2027, 11, 19, 5, tzinfo=UTC),  # due Nov 26 - 7d
    ]
    assert all(t.create_after == planner.create_after(d, t) for t in tasks)
    draft = tasks[1].draft("Call Ann", "body", "A1")
    assert (draft.key, draft.deal_id, draft.owner_id, draft.due_date, draft.remind_at,
            draft.channel, draft.priority, draft.contact_id, draft.account_id, draft.subject) \
        == (tasks[1].key, "D1", "U1", tasks[1].due_date, tasks[1].remind_at,
            tasks[1].channel, tasks[1].priority, None, "A1", "Call Ann")


def test_the_reborn_notice_is_planned_by_the_planner(tmp_path: Path) -> None:
    """Due the owner's next working day at the reminder time, writable now, keyed per cycle,
    its text rendered at planning; on the new deal when a new deal reopened the account."""
    planner = Planner(config_from(tmp_path, CADENCE), "crm")
    lost = deal(date(2027, 11, 12))
    saturday = datetime(2027, 11, 20, 15, tzinfo=UTC)
    new = deal(None, id="D2", name="Acme renewal")
    notice = planner.reborn_notice(lost, date(2027, 11, 12), cycle=2, cadence_id="c",
                                   reason=StopReason.NEW_DEAL, new_deal=new, now=saturday)
    assert notice is not None
    assert notice.key == task_key("crm", "D1", "reborn@2", "notify", 0, None)
    assert (notice.deal_id, notice.cadence, notice.step, notice.owner_id) == \
        ("D2", "reborn", "notify", "U1")
    assert notice.due_date == date(2027, 11, 22)  # Monday
    assert notice.remind_at == datetime(2027, 11, 22, 14, tzinfo=UTC)  # 09:00 EST
    assert notice.create_after == saturday
    assert notice.subject == "Opportunity reborn: Acme platform"
    assert notice.body is not None and "a new deal was opened on the account: Acme renewal" \
        in notice.body
    assert planner.text(notice, None, None) == (notice.subject, notice.body)
    reopened = planner.reborn_notice(lost, None, cycle=1, cadence_id="c",
                                     reason=StopReason.REOPENED, new_deal=lost, now=saturday)
    assert reopened is not None and reopened.deal_id == "D1"


def test_a_task_moves_through_its_states_by_named_transitions(tmp_path: Path,
                                                              ledger: Ledger) -> None:
    planner = Planner(config_from(tmp_path, CADENCE), "crm")
    d = deal(date(2027, 11, 16))
    planned = planner.plan(d, NOW).tasks
    with ledger.write() as conn:
        ledger.enroll(conn, "crm", "D1", _plan(planner, d), planned, NOW)
    with ledger.engine.connect() as conn:
        [enrolled] = ledger.enrollments(conn, "crm", ["D1"]).values()
        due = ledger.due_tasks(conn, "crm", NOW, 10)
    assert enrolled.status is EnrollmentStatus.ACTIVE and enrolled.deal() == d
    # What the ledger gives back is the planned task (the UTC date stands for create_on; the
    # date before a weekend shift is the plan's, not kept).
    assert [t.task for t in due] == [replace(t, create_on=t.create_after.date(), moved_from=None)
                                     for t in planned[:2]]
    assert all(t.status is TaskStatus.PLANNED for t in due)

    first, second = due
    with ledger.write() as conn:
        ledger.claim_for_sending(conn, [(first, "s1", "b1"), (second, "s2", "b2")], 7, NOW)
    with ledger.engine.connect() as conn:
        sending = {t.key: t for t in ledger.sending(conn, "crm")}
    assert {k: (t.status, t.attempts, t.claimed_epoch, t.task.subject)
            for k, t in sending.items()} == {
        first.key: (TaskStatus.SENDING, 1, 7, "s1"), second.key: (TaskStatus.SENDING, 1, 7, "s2")}

    later = NOW + timedelta(minutes=1)
    with ledger.write() as conn:
        ledger.mark_written(conn, [(first.id, "T1")], later)
        ledger.reconcile(conn, second.id, None, later)  # not found in the CRM: queued again
    with ledger.engine.connect() as conn:
        due = ledger.due_tasks(conn, "crm", later, 10)
    assert [(t.key, t.status) for t in due] == [(second.key, TaskStatus.QUEUED)]

    with ledger.write() as conn:
        ledger.requeue(conn, second.id, later, error="X: retry", not_before=later +
                       timedelta(hours=1))
    with ledger.engine.connect() as conn:
        assert ledger.due_tasks(conn, "crm", later, 10) == []
        [again] = ledger.due_tasks(conn, "crm", later + timedelta(hours=1), 10)
    assert (again.status, again.last_error) == (TaskStatus.QUEUED, "X: retry")
    with ledger.write() as conn:
        ledger.mark_failed(conn, again.id, "INVALID: no", later)
        cancelled = ledger.stop(conn, "crm", "D1", StopReason.WON, close_written=True,
                                reborn_deal_id="D1", won_amount=5.0, now=later)
    assert cancelled == 1  # the third task (not yet due); written and failed ones stay
    with ledger.engine.connect() as conn:
        [stopped] = ledger.enrollments(conn, "crm", ["D1"]).values()
        [closing] = ledger.to_close(conn, "crm", 10)
    assert (stopped.status, stopped.stop_reason, stopped.won_back_amount) == \
        (EnrollmentStatus.STOPPED, "won", 5.0)
    assert (closing.key, closing.crm_id, closing.status) == (first.key, "T1", TaskStatus.WRITTEN)

    # Lost again: a new cycle re-plans; unwritten keys of the old cycle are cancelled.
    with ledger.write() as conn:
        dropped = ledger.replan(conn, "crm", "D1", _plan(planner, d, cycle=2),
                                planner.plan(d, NOW, cycle=2).tasks, later, new_cycle=True)
        ledger.mark_closed(conn, closing.id, completed=True, now=later)
    with ledger.engine.connect() as conn:
        [again_lost] = ledger.enrollments(conn, "crm", ["D1"]).values()
        assert ledger.to_close(conn, "crm", 10) == []
    assert dropped == 0 and again_lost.status is EnrollmentStatus.ACTIVE
    assert (again_lost.cycle, again_lost.won_back_at, again_lost.reborn_at) == (2, None, None)


def test_a_task_the_step_of_which_is_gone_is_cancelled(tmp_path: Path, ledger: Ledger) -> None:
    planner = Planner(config_from(tmp_path, CADENCE), "crm")
    d = deal(date(2027, 11, 16))
    with ledger.write() as conn:
        ledger.enroll(conn, "crm", "D1", _plan(planner, d), planner.plan(d, NOW).tasks, NOW)
    with ledger.engine.connect() as conn:
        first = ledger.due_tasks(conn, "crm", NOW, 1)[0]
    with ledger.write() as conn:
        ledger.cancel(conn, first.id, CancelReason.RULE_REMOVED, NOW)
    with ledger.engine.connect() as conn:
        rest: list[OutboxTask] = ledger.due_tasks(conn, "crm", NOW, 10)
    assert first.key not in {t.key for t in rest} and len(rest) == 1


STATUS_NAMES = {"status", "stop_reason", "cancel_reason"}
STATUS_VALUES = {s.value for s in (*TaskStatus, *EnrollmentStatus, *StopReason, *CancelReason)}


def status_literals(source: str) -> list[str]:
    """String literals a status is compared with or set to (`x.status == "active"`,
    `status="queued"`), and `Row[...]` annotations: what only worker/ledger may hold."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            left = node.left
            name = left.attr if isinstance(left, ast.Attribute) else \
                left.id if isinstance(left, ast.Name) else ""
            if name in STATUS_NAMES:
                for comparator in node.comparators:
                    many = isinstance(comparator, ast.Tuple | ast.List | ast.Set)
                    values = comparator.elts if many else [comparator]  # type: ignore[attr-defined]
                    found += [f"{name} vs {v.value!r}" for v in values
                              if isinstance(v, ast.Constant) and v.value in STATUS_VALUES]
        elif isinstance(node, ast.Call):
            found += [f"{k.arg}={k.value.value!r}" for k in node.keywords
                      if k.arg in STATUS_NAMES and isinstance(k.value, ast.Constant)]
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                and node.value.id == "Row":
            found.append("Row[...]")
    return found


def test_no_status_literal_and_no_row_outside_the_ledger() -> None:
    """Statuses are the ledger's enums everywhere else; rows do not leave the ledger."""
    offenders = {str(p.relative_to(ROOT)): hits
                 for p in sorted((ROOT / "worker").rglob("*.py"))
                 if "ledger" not in p.relative_to(ROOT / "worker").parts
                 and (hits := status_literals(p.read_text(encoding="utf-8")))}
    assert offenders == {}
    assert status_literals('if row.status in ("active", "unmatched"): set_task(status="x")\n'
                           'def f(r: Row[Any]) -> None: ...\n') \
        == ["status vs 'active'", "status vs 'unmatched'", "status='x'", "Row[...]"]
