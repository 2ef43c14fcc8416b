"""The ledger's typed records and states: what a read returns, and the statuses a task and an
enrollment move through (the transitions are the `Ledger` methods in store.py).

Task:        planned -> queued (requeue) -> sending (claim) -> written | failed | queued
             planned/queued -> cancelled (stop, re-plan, rule removed)
Enrollment:  active | unmatched -> stopped (reopened, won, deleted, new deal) -> active (lost
             again: a new cycle)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy.engine import Row

from connectors.models import Channel, Deal, Priority
from worker.cadence.tasks import PlannedTask


class TaskStatus(StrEnum):
    PLANNED = "planned"
    QUEUED = "queued"
    SENDING = "sending"
    WRITTEN = "written"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    FAILED = "failed"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"
    UNMATCHED = "unmatched"
    FINISHED = "finished"


class StopReason(StrEnum):
    REOPENED = "reopened"
    WON = "won"
    DELETED = "deleted"
    NEW_DEAL = "new_deal"
    OPTED_OUT = "opted_out"  # fields.opt_out checked in the CRM (open tasks as on reopen)
    MEETING = "meeting"  # stop.on_meeting: stop (a meeting after the loss: reborn)

    @property
    def reborn(self) -> bool:
        """The deal (or its account) is alive again: the owner hears of it."""
        return self not in (StopReason.DELETED, StopReason.OPTED_OUT)


class CancelReason(StrEnum):
    """Why an unwritten task was cancelled (a stop's reason is one too)."""

    REPLANNED = "replanned"
    RULE_REMOVED = "rule_removed"
    CLOSED = "closed"  # a written task of a stopped cadence, closed in the CRM
    ACTIVITY = "activity"  # status skipped: skip_if (the decision is in skip_decision)
    CAP = "cap"  # status skipped: the owner's daily cap left no day within grace/horizon


OPEN_STATUSES = (TaskStatus.PLANNED, TaskStatus.QUEUED)
OUTBOX_STATUSES = (TaskStatus.PLANNED, TaskStatus.QUEUED, TaskStatus.SENDING)
TRACKED_STATUSES = (EnrollmentStatus.ACTIVE, EnrollmentStatus.UNMATCHED)

JSONObject = Mapping[str, object]


@dataclass(frozen=True)
class ConnectionState:
    name: str
    kind: str
    owner: str | None
    lease_until: datetime | None
    epoch: int
    lease_locked: bool
    next_due: datetime | None
    watermark: datetime | None
    backfill_done: bool
    verified_at: datetime | None
    activity_watermark: datetime | None
    last_tick_at: datetime | None
    last_tick_result: str | None
    last_tick_seconds: float | None
    last_error: str | None
    last_success_at: datetime | None
    status_read_at: datetime | None
    api_used: int | None
    api_limit: int | None

    @classmethod
    def of(cls, row: Row[tuple[object, ...]]) -> ConnectionState:
        return cls(**row._asdict())

    def lease_held(self, now: datetime) -> bool:
        return self.owner is not None and self.lease_until is not None \
            and self.lease_until > now


@dataclass(frozen=True)
class Enrollment:
    """One deal the ledger follows (per loss cycle), with the snapshot it was planned from."""

    id: int
    connection: str
    deal_id: str
    cycle: int
    cadence: str | None
    rule_version: str | None  # the plan fingerprint (worker/cadence/fingerprint.py)
    owner_input: str | None
    status: EnrollmentStatus
    stop_reason: str | None
    account_id: str | None
    owner_id: str | None
    loss_reason: str | None
    competitor: str | None
    amount: float | None
    day0: date | None
    deal_json: JSONObject
    deal_modified_at: datetime | None
    enrolled_at: datetime
    stopped_at: datetime | None
    reborn_at: datetime | None
    reborn_deal_id: str | None
    won_back_at: datetime | None
    won_back_amount: float | None
    replan_at: datetime | None = None
    waiting: int = 0
    last_touch_step: str | None = None  # kept by the database (worker/ledger/rollups.py)
    last_touch_at: datetime | None = None
    experiment: str | None = None  # the experiment the deal was drawn in (issue 17)
    arm: str | None = None  # its arm there, kept while that experiment id stays

    @property
    def stored_arm(self) -> tuple[str, str] | None:
        """(experiment id, arm) as stored at enrollment, for the planner (None: none)."""
        return None if self.experiment is None or self.arm is None \
            else (self.experiment, self.arm)

    @classmethod
    def of(cls, row: Row[tuple[object, ...]]) -> Enrollment:
        values = row._asdict()
        values["status"] = EnrollmentStatus(values["status"])
        return cls(**values)

    @property
    def tracked(self) -> bool:
        return self.status in TRACKED_STATUSES

    def deal(self) -> Deal:
        """The deal as it was last planned."""
        return Deal.model_validate(self.deal_json)

    def owner_name(self) -> tuple[str, str] | None:
        """(owner id, name) from the snapshot, when it has an owner id."""
        owner = self.deal_json.get("owner") if self.deal_json else None
        if not isinstance(owner, Mapping) or not owner.get("id"):
            return None
        return str(owner["id"]), str(owner.get("name") or "")


@dataclass(frozen=True)
class NewPlan:
    """What enrolling or re-planning a deal stores on its enrollment."""

    cycle: int
    cadence: str | None
    rule_version: str
    owner_input: str | None
    account_id: str | None
    owner_id: str | None
    loss_reason: str | None
    amount: float | None
    day0: date | None
    deal_json: JSONObject
    deal_modified_at: datetime | None
    replan_at: datetime | None = None  # the next time-driven re-plan (worker/sync/activity.py)
    waiting: int = 0  # steps waiting for a completion (`after`)
    competitor: str | None = None
    experiment: str | None = None  # the experiment arm drawn (kept while its id stays)
    arm: str | None = None

    @property
    def status(self) -> EnrollmentStatus:
        return EnrollmentStatus.ACTIVE if self.cadence is not None \
            else EnrollmentStatus.UNMATCHED

    def values(self) -> dict[str, object]:
        return {**self.__dict__, "status": self.status.value, "stop_reason": None,
                "stopped_at": None}


@dataclass(frozen=True)
class OutboxTask:
    """A task in the ledger: the planned task and where it is on its way to the CRM."""

    id: int
    task: PlannedTask
    status: TaskStatus
    cancel_reason: str | None
    crm_id: str | None
    attempts: int
    claimed_epoch: int | None
    sending_since: datetime | None
    last_error: str | None
    close_requested: bool
    completed: bool
    written_at: datetime | None

    @property
    def key(self) -> str:
        return self.task.key

    @property
    def deal_id(self) -> str:
        return self.task.deal_id

    @property
    def owner_id(self) -> str:
        return self.task.owner_id

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @classmethod
    def of(cls, row: Row[tuple[object, ...]]) -> OutboxTask:
        r = row._mapping
        create_after = r["create_after"]
        assert isinstance(create_after, datetime)
        planned = PlannedTask(
            key=str(r["key"]), connection=str(r["connection"]), deal_id=str(r["deal_id"]),
            cadence=str(r["cadence"]), step=str(r["step"]), occurrence=int(r["occurrence"]),
            contact_id=_text(r["contact_id"]), due_date=_date(r["due_date"]),
            remind_at=_instant(r["remind_at"]), create_on=create_after.astimezone(UTC).date(),
            owner_id=str(r["owner_id"]), channel=Channel(r["channel"]),
            priority=Priority(r["priority"]), create_after=create_after,
            subject=_text(r["subject"]), body=_text(r["body"]))
        attempts, epoch = r["attempts"], r["claimed_epoch"]
        return cls(id=int(r["id"]), task=planned, status=TaskStatus(r["status"]),
                   cancel_reason=_text(r["cancel_reason"]), crm_id=_text(r["crm_id"]),
                   attempts=int(attempts) if isinstance(attempts, int) else 0,
                   claimed_epoch=int(epoch) if isinstance(epoch, int) else None,
                   sending_since=_maybe_instant(r["sending_since"]),
                   last_error=_text(r["last_error"]), close_requested=bool(r["close_requested"]),
                   completed=bool(r["completed"]), written_at=_maybe_instant(r["written_at"]))


def task_values(planned: PlannedTask, now: datetime, day0: date | None = None
                ) -> dict[str, object]:
    """A new task row (status planned); `day0`: its enrollment's loss day (the report)."""
    return {"day0": day0, "key": planned.key, "connection": planned.connection,
            "deal_id": planned.deal_id,
            "cadence": planned.cadence, "step": planned.step, "occurrence": planned.occurrence,
            "contact_id": planned.contact_id, "owner_id": planned.owner_id,
            "due_date": planned.due_date, "remind_at": planned.remind_at,
            "create_after": planned.create_after, "channel": str(planned.channel),
            "priority": str(planned.priority), "subject": planned.subject,
            "body": planned.body, "status": TaskStatus.PLANNED.value, "created_at": now,
            "updated_at": now, "attempts": 0, "close_requested": False, "completed": False,
            "planned_due": planned.due_date, "latest_due": planned.latest_due}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _date(value: object) -> date:
    assert isinstance(value, date)
    return value


def _instant(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value


def _maybe_instant(value: object) -> datetime | None:
    return None if value is None else _instant(value)
