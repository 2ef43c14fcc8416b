"""What planning a deal gives: its tasks, and what was skipped, moved or waits (pure values)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from worker.cadence.activity import ActivityRef, Moved, Waiting
from worker.cadence.tasks import PlannedTask


@dataclass(frozen=True, slots=True)
class Skipped:
    step: str
    occurrence: int
    due_date: date | None
    reason: str
    contact_id: str | None = None
    activity: ActivityRef | None = None  # skip_if: the activity that caused it
    key: str | None = None  # the task key (set when the plan reacted to activity)


@dataclass(frozen=True, slots=True)
class DealPlan:
    deal_id: str
    cadence: str | None
    day0: date | None
    owner_id: str | None
    tasks: tuple[PlannedTask, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    reason: str | None = None  # why nothing was planned
    owner_fallback: bool = False
    waiting: tuple[Waiting, ...] = ()  # `after` steps not written until a completion
    moved: tuple[Moved, ...] = ()  # tasks `after` or a pause moved off their fixed date
    stop: str | None = None  # "opted_out" or "meeting": stop the cadence (open tasks as on
    #                          reopen; "meeting" as reborn)
    stop_activity: ActivityRef | None = None  # the meeting that stopped it
    experiment: str | None = None  # the cadence's experiment id (None: no experiment)
    arm: str | None = None  # the deal's arm in it: holdout (no tasks), base, or a variant


# The report's skip reasons, named from the planner's own words (a new kind of skip shows up
# under its own words until it gets a name here).
SKIP_REASONS = ("grace", "activity", "pause", "cap")


def skip_reason(skip: Skipped) -> str:
    """The report's name for why a step was skipped: `activity` (skip_if), `pause` (due
    before a pause ends and past grace by then), `grace` (past due by more than grace),
    `cap` (the owner's daily cap), else the planner's reason itself (cut to 64)."""
    text = skip.reason.lower()
    if skip.activity is not None or text.startswith("skip_if"):
        return "activity"
    if "pause" in text:
        return "pause"
    if "grace" in text:
        return "grace"
    if "cap" in text.split() or "daily cap" in text:
        return "cap"
    return skip.reason[:64]
