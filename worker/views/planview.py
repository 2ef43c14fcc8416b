"""`winback plan`: plan a file of deals and show the result as a table or JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.models import Deal
from worker.cadence.activity import DealActivity
from worker.cadence.capacity import CAP_REASON
from worker.cadence.engine import DealPlan, PlannedTask, Planner
from worker.settings.experiments import HOLDOUT
from worker.sync.refusals import inactive_owner


@dataclass(frozen=True)
class PlanRow:
    deal: Deal
    plan: DealPlan
    task: PlannedTask
    subject: str
    body: str
    zone: str = "UTC"  # the owner's time zone, as the planner resolved it


def utc_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_deals(planner: Planner, deals: Iterable[Deal], now: datetime,
               activity: Sequence[DealActivity | None] = ()
               ) -> Iterator[tuple[Deal, DealPlan, list[PlanRow]]]:
    """Plan each deal (with its activity, by position, when given), then the owners' daily
    caps across all of them (a task the cap moves shows in `moved`, one it skips in
    `skipped`)."""
    items = list(deals)
    plans = planner.apply_cap([
        planner.plan(deal, now, activity=activity[index] if index < len(activity) else None)
        for index, deal in enumerate(items)])
    for deal, plan in zip(items, plans, strict=True):
        owner = planner.owner_context(deal)
        zone = owner.zone_name if owner is not None else "UTC"
        rows = []
        for task in sorted(plan.tasks, key=lambda t: (t.due_date, t.step, t.occurrence,
                                                      t.contact_id or "")):
            subject, body = planner.text(task, deal, plan.day0) or ("", "")
            rows.append(PlanRow(deal, plan, task, subject, body, zone))
        yield deal, plan, rows


def arm_json(plan: DealPlan) -> dict[str, Any]:
    """The deal's experiment and arm (absent when its cadence runs no experiment)."""
    return {} if plan.experiment is None else {"experiment": plan.experiment, "arm": plan.arm}


def row_json(row: PlanRow) -> dict[str, Any]:
    task = row.task
    moved = next((m for m in reversed(row.plan.moved) if m.key == task.key), None)
    return {**arm_json(row.plan),
        "status": "planned",
        "deal_id": task.deal_id, "cadence": task.cadence, "step": task.step,
        "occurrence": task.occurrence, "contact_id": task.contact_id,
        "due_date": task.due_date.isoformat(), "remind_at": utc_z(task.remind_at),
        "create_on": task.create_on.isoformat(), "owner_id": task.owner_id,
        "channel": str(task.channel), "priority": str(task.priority), "subject": row.subject,
        "body": row.body, "key": task.key,
        "moved_from": task.moved_from.isoformat() if task.moved_from else None,
        "owner_inactive": inactive_owner(row.deal, row.plan),
        "moved": None if moved is None else {
            "fixed": moved.fixed.isoformat() if moved.fixed else None, "why": moved.why},
    }


def outcome_json(plan: DealPlan) -> Iterator[dict[str, Any]]:
    """The lines besides planned tasks: a stopped deal, tasks skipped for an activity
    (`skip_if`) or the owner's daily cap, steps waiting for a completion (`after`), a deal
    of an experiment's holdout (enrolled and watched, no task)."""
    if plan.stop is not None:
        yield {"status": "stopped", "deal_id": plan.deal_id, "cadence": plan.cadence,
               "stop": plan.stop, "reason": plan.reason,
               "activity": plan.stop_activity.as_dict() if plan.stop_activity else None,
               **arm_json(plan)}
    elif is_holdout(plan):
        yield {"status": "holdout", "deal_id": plan.deal_id, "cadence": plan.cadence,
               "day0": plan.day0.isoformat() if plan.day0 else None,
               "owner_id": plan.owner_id, **arm_json(plan)}
    for skip in plan.skipped:
        if skip.activity is None and skip.reason == CAP_REASON:
            yield {"status": "skipped", "deal_id": plan.deal_id, "cadence": plan.cadence,
                   "step": skip.step, "occurrence": skip.occurrence,
                   "contact_id": skip.contact_id,
                   "due_date": skip.due_date.isoformat() if skip.due_date else None,
                   "key": skip.key, "owner_id": plan.owner_id, "reason": skip.reason,
                   "activity": None}
        if skip.activity is not None:
            yield {"status": "skipped", "deal_id": plan.deal_id, "cadence": plan.cadence,
                   "step": skip.step, "occurrence": skip.occurrence,
                   "contact_id": skip.contact_id,
                   "due_date": skip.due_date.isoformat() if skip.due_date else None,
                   "key": skip.key, "reason": skip.reason, "activity": skip.activity.as_dict()}
    for wait in plan.waiting:
        yield {"status": "waiting", "deal_id": plan.deal_id, "cadence": plan.cadence,
               "step": wait.step, "contact_id": wait.contact_id, "waits_for": wait.waits_for,
               "deadline": wait.deadline.isoformat() if wait.deadline else None,
               "reason": wait.describe()}


def is_holdout(plan: DealPlan) -> bool:
    return plan.arm == HOLDOUT and plan.reason is None and plan.stop is None


def arm_label(plan: DealPlan) -> str:
    return "" if plan.experiment is None else f", arm {plan.arm} of {plan.experiment}"


def write_json(results: Iterable[tuple[Deal, DealPlan, list[PlanRow]]], out: TextIO) -> int:
    count = 0
    for _, plan, rows in results:
        for row in rows:
            out.write(json.dumps(row_json(row), ensure_ascii=False) + "\n")
            count += 1
        for line in outcome_json(plan):
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return count


def write_table(results: Iterable[tuple[Deal, DealPlan, list[PlanRow]]], console: Console) -> int:
    count = 0
    for deal, plan, rows in results:
        title = f"{deal.id} {deal.name!s}".strip()
        if plan.cadence is None or not rows:
            why = plan.reason or (f"cadence {plan.cadence}: no tasks" if plan.cadence else "")
            if is_holdout(plan):
                why = (f"cadence {plan.cadence}, holdout of experiment {plan.experiment}: "
                       "enrolled and watched for rebirth, no task written")
            console.print(f"[bold]{title}[/bold]: no tasks ({escape(why)})")
            _outcomes(plan, console)
            continue
        fallback = " (fallback owner)" if plan.owner_fallback else (
            " (INACTIVE: the CRM will refuse these tasks)" if inactive_owner(deal, plan) else "")
        table = Table(title=f"{title}: cadence {plan.cadence}{arm_label(plan)}, day 0 "
                            f"{plan.day0}, owner {plan.owner_id}{fallback}",
                      title_justify="left", expand=False)
        for column in ("step", "due", "remind", "create on", "via", "contact", "subject"):
            table.add_column(column, overflow="fold", no_wrap=column != "subject")
        for row in rows:
            task = row.task
            step = task.step + (f"#{task.occurrence}" if task.occurrence else "")
            due = task.due_date.isoformat() + ("*" if task.moved_from else "")
            via = str(task.channel) + ("!" if str(task.priority) == "high" else "")
            table.add_row(step, due, task.remind_at.astimezone(UTC).strftime("%H:%MZ"),
                          task.create_on.isoformat(), via, task.contact_id or "", row.subject)
        console.print(table)
        _outcomes(plan, console)
        count += len(rows)
    if count:
        console.print("* moved to the next working day (weekend, holiday or late); "
                      "! high priority; remind = reminder time in UTC")
    return count


def _outcomes(plan: DealPlan, console: Console) -> None:
    """Under a deal's table: moved, skipped and waiting steps, each with its cause."""
    for moved in plan.moved:
        who = f" ({moved.contact_id})" if moved.contact_id else ""
        fixed = f" instead of {moved.fixed}" if moved.fixed else " (none without it)"
        console.print(f"  moved {moved.step}#{moved.occurrence}{who} to {moved.due}{fixed}: "
                      f"{moved.why}", markup=False)
    for skip in plan.skipped:
        who = f" ({skip.contact_id})" if skip.contact_id else ""
        console.print(f"  skipped {skip.step}#{skip.occurrence}{who}"
                      f"{' due ' + skip.due_date.isoformat() if skip.due_date else ''}: "
                      f"{skip.reason}", markup=False)
    for wait in plan.waiting:
        who = f" ({wait.contact_id})" if wait.contact_id else ""
        console.print(f"  waiting {wait.step}{who}: {wait.describe()}", markup=False)
