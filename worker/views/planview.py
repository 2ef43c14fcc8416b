"""`winback plan`: plan a file of deals and show the result as a table or JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from connectors.models import Deal
from worker.cadence.engine import DealPlan, PlannedTask, Planner
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


def plan_deals(planner: Planner, deals: Iterable[Deal], now: datetime
               ) -> Iterator[tuple[Deal, DealPlan, list[PlanRow]]]:
    for deal in deals:
        plan = planner.plan(deal, now)
        owner = planner.owner_context(deal)
        zone = owner.zone_name if owner is not None else "UTC"
        rows = []
        for task in sorted(plan.tasks, key=lambda t: (t.due_date, t.step, t.occurrence,
                                                      t.contact_id or "")):
            subject, body = planner.render(task, deal, plan.day0)
            rows.append(PlanRow(deal, plan, task, subject, body, zone))
        yield deal, plan, rows


def row_json(row: PlanRow) -> dict[str, Any]:
    task = row.task
    return {
        "deal_id": task.deal_id, "cadence": task.cadence, "step": task.step,
        "occurrence": task.occurrence, "contact_id": task.contact_id,
        "due_date": task.due_date.isoformat(), "remind_at": utc_z(task.remind_at),
        "create_on": task.create_on.isoformat(), "owner_id": task.owner_id,
        "channel": str(task.channel), "priority": str(task.priority), "subject": row.subject,
        "body": row.body, "key": task.key,
        "moved_from": task.moved_from.isoformat() if task.moved_from else None,
        "owner_inactive": inactive_owner(row.deal, row.plan),
    }


def write_json(results: Iterable[tuple[Deal, DealPlan, list[PlanRow]]], out: TextIO) -> int:
    count = 0
    for _, _, rows in results:
        for row in rows:
            out.write(json.dumps(row_json(row), ensure_ascii=False) + "\n")
            count += 1
    return count


def write_table(results: Iterable[tuple[Deal, DealPlan, list[PlanRow]]], console: Console) -> int:
    count = 0
    for deal, plan, rows in results:
        title = f"{deal.id} {deal.name!s}".strip()
        if plan.cadence is None or not rows:
            why = plan.reason or (f"cadence {plan.cadence}: no tasks" if plan.cadence else "")
            console.print(f"[bold]{title}[/bold]: no tasks ({why})")
            continue
        fallback = " (fallback owner)" if plan.owner_fallback else (
            " (INACTIVE: the CRM will refuse these tasks)" if inactive_owner(deal, plan) else "")
        table = Table(title=f"{title}: cadence {plan.cadence}, day 0 {plan.day0}, owner "
                            f"{plan.owner_id}{fallback}", title_justify="left", expand=False)
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
        for skip in plan.skipped:
            console.print(f"  skipped {skip.step}#{skip.occurrence}"
                          f"{' due ' + skip.due_date.isoformat() if skip.due_date else ''}: "
                          f"{skip.reason}")
        count += len(rows)
    if count:
        console.print("* moved to the next working day (weekend, holiday or late); "
                      "! high priority; remind = reminder time in UTC")
    return count
