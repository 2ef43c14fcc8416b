"""The one task type from plan to CRM: what the planner plans, the ledger stores, and the
write stage projects onto a `TaskDraft`. Pure values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache

from connectors.models import Channel, Priority, TaskDraft
from worker.cadence.calendar import zone

REBORN_CADENCE = "reborn"  # the cadence id of the "Opportunity reborn" notice to the owner
MEETING_CADENCE = "meeting"  # stop.on_meeting: notify: "Meeting booked with ..." to the owner
NOTICES = frozenset({REBORN_CADENCE, MEETING_CADENCE})


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """One follow-up task. `create_on` is the owner's local day the task becomes due for
    writing and `create_after` the same moment as a UTC instant (what the ledger keeps: a
    task read back from the ledger has `create_on` = the UTC date of `create_after`, and no
    `moved_from`: both are the plan's annotations for the plan views).
    `subject`/`body` are set when the text was rendered at planning (the reborn notice);
    cadence tasks are rendered from their step's templates when they are written."""

    key: str
    connection: str
    deal_id: str
    cadence: str
    step: str
    occurrence: int
    contact_id: str | None
    due_date: date
    remind_at: datetime
    create_on: date
    owner_id: str
    channel: Channel
    priority: Priority
    create_after: datetime
    moved_from: date | None = None  # the date before a weekend/holiday/late shift
    subject: str | None = None
    body: str | None = None
    latest_due: date | None = None  # the last day the daily cap may move it to (None: no cap)

    @property
    def cadence_id(self) -> str:
        """The configuration's cadence id (without a cycle suffix `@N`)."""
        return self.cadence.split("@", 1)[0]

    @property
    def is_notice(self) -> bool:
        return self.cadence in NOTICES

    def draft(self, subject: str, body: str, account_id: str | None) -> TaskDraft:
        """What the CRM adapter writes for this task, with its rendered text."""
        return TaskDraft(key=self.key, deal_id=self.deal_id, owner_id=self.owner_id,
                         subject=subject, body=body, due_date=self.due_date,
                         remind_at=self.remind_at, channel=self.channel,
                         priority=self.priority, contact_id=self.contact_id,
                         account_id=account_id)


def start_of_day(day: date, zone_name: str | None) -> datetime:
    """The UTC instant a local day starts in `zone_name` (UTC when None)."""
    tz = zone(zone_name) if zone_name is not None else UTC
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


@lru_cache(maxsize=65536)
def reminder_instant(due: date, at: time, zone_name: str) -> datetime:
    """A task's reminder: its due day at `at` in the owner's zone, as UTC."""
    return datetime.combine(due, at, tzinfo=zone(zone_name)).astimezone(UTC)
