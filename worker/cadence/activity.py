"""What happened in the CRM, as an input of the planner (like `now`), and what the planner says
about it. Pure values: the sync reads them from the CRM and the ledger, `winback plan` from the
deals file.

The input (`DealActivity`), per deal:
- `activities`: the CRM activities linked to the deal, its account or one of its contacts
  (deleted ones may be included: they are ignored);
- `completions`: winback's own tasks completed in the CRM, by task key, with the completion
  time (a completed activity that carries a `task_key` counts too);
- `skipped`: the skip decisions already made, by task key, with the activity that caused each
  ("a decision, once made, stays", even when that activity is later deleted);
- `written`: the tasks already written, by task key, with the due date they were written
  with (written tasks never move, and no later activity skips them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from connectors.models import Activity, ActivityKind


@dataclass(frozen=True, slots=True)
class ActivityRef:
    """The activity behind a decision: what it was, its CRM id and when it happened."""

    kind: ActivityKind
    id: str
    at: datetime

    @classmethod
    def of(cls, activity: Activity) -> ActivityRef:
        return cls(activity.kind, activity.id, activity.at)

    def describe(self) -> str:
        return f"{self.kind} {self.id} at {self.at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "id": self.id,
                "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


@dataclass(frozen=True)
class DealActivity:
    """Everything that happened to one deal that its plan may react to (see the module doc)."""

    activities: tuple[Activity, ...] = ()
    completions: Mapping[str, datetime] = field(default_factory=dict)
    skipped: Mapping[str, ActivityRef] = field(default_factory=dict)
    written: Mapping[str, date] = field(default_factory=dict)

    def completed_at(self, key: str) -> datetime | None:
        """When winback's task `key` was completed: the explicit completion, else a completed,
        not deleted activity carrying that task key (its completion time, else its time)."""
        found = self.completions.get(key)
        if found is not None:
            return found
        times = [a.completed_at or a.at for a in self.activities
                 if a.task_key == key and a.completed and not a.deleted]
        return min(times) if times else None


NO_ACTIVITY = DealActivity()


@dataclass(frozen=True, slots=True)
class Waiting:
    """A step whose tasks are not written yet: it counts from `waits_for`'s completion."""

    step: str
    contact_id: str | None
    waits_for: str
    deadline: date | None  # with max_wait: the day it stops waiting and counts from instead

    def describe(self) -> str:
        until = (f"; counts from {self.deadline} if not completed by then" if self.deadline
                 else "; no max_wait: waits until it is completed")
        return f"waiting for {self.waits_for} to be completed{until}"


@dataclass(frozen=True, slots=True)
class Moved:
    """A task whose due date is not its fixed-offset date, because of `after` or a pause."""

    key: str
    step: str
    occurrence: int
    contact_id: str | None
    fixed: date | None  # the date without after/pause (None: not planned at all without them)
    due: date
    why: str
