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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from connectors.models import Priority

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
