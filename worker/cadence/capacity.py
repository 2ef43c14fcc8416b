"""The per-owner daily cap (`max_tasks_per_owner_per_day`): pure, no I/O, no clock.

Given the planned tasks that may still move (each with its planned due date and the last day it
may move to) and the days already taken per owner (tasks written to the CRM, notices: they never
move), `apply_cap` decides each task's day:

- tasks are placed one by one in a fixed order: priority (high first), then planned due date,
  then key; the same input gives the same answer on every replica and rerun, whatever order the
  tasks were planned in;
- a task keeps its planned day while that day of its owner has room, else goes to the owner's
  next working day with room;
- never past its `latest` day (the step's grace after its due date, and the horizon): then it
  is skipped with the reason `CAP_REASON`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

from connectors.models import Priority
from worker.cadence.activity import Moved
from worker.cadence.outcome import DealPlan, Skipped
from worker.cadence.tasks import PlannedTask, reminder_instant

if TYPE_CHECKING:
    from worker.cadence.engine import Planner

CAP_REASON = "owner's daily cap"
PRIORITY_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


@dataclass(frozen=True, slots=True)
class CapItem:
    """A task the cap may move: its key, owner, priority, planned due date and last day."""

    key: str
    owner_id: str
    priority: Priority
    due: date
    latest: date


@dataclass(frozen=True, slots=True)
class CapResult:
    """Each item's day (`placed[key]`, possibly its planned due date) or its skip."""

    placed: Mapping[str, date]
    skipped: frozenset[str]

    def moved(self, items: Iterable[CapItem]) -> dict[str, tuple[date, date]]:
        """key -> (planned due, new due) of the items the cap moved."""
        return {i.key: (i.due, self.placed[i.key]) for i in items
                if i.key in self.placed and self.placed[i.key] != i.due}


def cap_order(item: CapItem) -> tuple[int, date, str]:
    return PRIORITY_RANK.get(item.priority, 1), item.due, item.key


def apply_cap(items: Iterable[CapItem], cap_of: Callable[[str], int | None],
              next_working: Callable[[str, date], date],
              taken: Mapping[tuple[str, date], int] | None = None) -> CapResult:
    """Place `items` under each owner's cap (`cap_of(owner)`, None: no cap).
    `next_working(owner, day)`: that owner's first working day on or after `day`;
    `taken[(owner, day)]`: tasks already on that day that do not move."""
    used: dict[tuple[str, date], int] = dict(taken or {})
    placed: dict[str, date] = {}
    skipped: set[str] = set()
    caps: dict[str, int | None] = {}
    for item in sorted(items, key=cap_order):
        cap = caps[item.owner_id] if item.owner_id in caps \
            else caps.setdefault(item.owner_id, cap_of(item.owner_id))
        if cap is None:
            placed[item.key] = item.due
            continue
        day: date | None = item.due
        while day is not None and used.get((item.owner_id, day), 0) >= cap:
            following = next_working(item.owner_id, day + timedelta(days=1))
            day = following if following <= item.latest else None
        if day is None:
            skipped.add(item.key)
            continue
        placed[item.key] = day
        used[(item.owner_id, day)] = used.get((item.owner_id, day), 0) + 1
    return CapResult(placed, frozenset(skipped))


def cap_plans(planner: Planner, plans: Sequence[DealPlan],
              taken: Mapping[tuple[str, date], int] | None = None) -> list[DealPlan]:
    """The plans of many deals under the owners' daily caps (pure): tasks the cap moves get
    their new due date and reminder (and a `moved` line), tasks it cannot place within
    grace and horizon are dropped as skipped (reason CAP_REASON). Notices never move but
    take their day. `taken`: (owner, day) -> tasks already written (they never move)."""
    if not planner.has_cap:
        return list(plans)
    used: dict[tuple[str, date], int] = dict(taken or {})
    items: list[CapItem] = []
    for plan in plans:
        for task in plan.tasks:
            if task.is_notice:
                used[(task.owner_id, task.due_date)] = \
                    used.get((task.owner_id, task.due_date), 0) + 1
            else:
                items.append(planner.cap_item(task, plan.day0))
    calendars = {i.owner_id: planner.owner_by_id(i.owner_id).calendar.next_working
                 for i in items}
    result = apply_cap(items, planner.daily_cap, lambda owner, day: calendars[owner](day), used)
    return [_capped(planner, plan, result) for plan in plans]


def _capped(planner: Planner, plan: DealPlan, result: CapResult) -> DealPlan:
    if not any(result.placed.get(t.key, t.due_date) != t.due_date or t.key in result.skipped
               for t in plan.tasks):
        return plan
    tasks: list[PlannedTask] = []
    moved = list(plan.moved)
    skipped = list(plan.skipped)
    for task in plan.tasks:
        if task.key in result.skipped:
            skipped.append(Skipped(task.step, task.occurrence, task.due_date, CAP_REASON,
                                   task.contact_id, key=task.key))
            continue
        day = result.placed.get(task.key, task.due_date)
        if day != task.due_date:
            zone_name = planner.owner_by_id(task.owner_id).zone_name
            moved.append(Moved(task.key, task.step, task.occurrence, task.contact_id,
                               task.due_date, day, f"{CAP_REASON}: {task.owner_id} has "
                               f"{planner.daily_cap(task.owner_id)} task(s) due on "
                               f"{task.due_date} already"))
            tasks.append(replace(task, due_date=day, remind_at=reminder_instant(
                day, planner.reminder_time, zone_name)))
            continue
        tasks.append(task)
    return replace(plan, tasks=tuple(tasks), moved=tuple(moved), skipped=tuple(skipped))
