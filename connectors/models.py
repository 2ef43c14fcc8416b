"""CRM-neutral records: what every adapter turns CRM JSON into, and what the worker hands back.

`Deal`, `Contact` and `Owner` are pydantic models because they cross a boundary (CRM JSON,
the `plan --deals` file); `TaskDraft` and `WriteResult` are plain frozen dataclasses made by
our own code on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Owner(_Record):
    """The CRM user a deal and its tasks belong to."""

    id: str
    email: str | None = None
    name: str | None = None
    timezone: str | None = None
    active: bool = True
    country: str | None = None
    subdivision: str | None = None


class Contact(_Record):
    """A stakeholder of a deal (SF OpportunityContactRole / HubSpot deal->contact)."""

    id: str
    name: str | None = None
    email: str | None = None
    role: str | None = None
    opted_out: bool = False


class Deal(_Record):
    """A deal as the worker sees it, whatever CRM it came from.

    `is_closed` / `is_won` come from the CRM's own metadata (SF `IsClosed`/`IsWon`, HubSpot
    pipeline stage `isClosed` + probability). In a `plan --deals` file they may be left out:
    a deal there is taken as closed-lost.
    """

    id: str
    name: str = ""
    account_id: str | None = None
    account_name: str | None = None
    stage: str | None = None
    closed_at: datetime | date | None = None
    amount: float | None = None
    currency: str | None = None
    loss_reason: str | None = None
    competitor: str | None = None
    contract_end: date | None = None
    pipeline: str | None = None
    owner: Owner | None = None
    contacts: tuple[Contact, ...] = ()
    custom: dict[str, Any] = Field(default_factory=dict)
    is_closed: bool = True
    is_won: bool = False
    deleted: bool = False
    created_at: datetime | None = None
    modified_at: datetime | None = None
    opted_out: bool = False  # fields.opt_out: a checkbox on the deal stops its cadence
    paused_until: date | None = None  # fields.pause_until: nothing is written before this date

    @field_validator("closed_at", mode="before")
    @classmethod
    def _closed_at(cls, value: object) -> object:
        # "2027-11-12" is a date; "2027-11-08T05:30:00Z" a moment. pydantic would read a bare
        # date string as midnight UTC if the union tried datetime first, so decide here.
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value)
        return value

    @field_validator("closed_at", "created_at", "modified_at")
    @classmethod
    def _aware(cls, value: datetime | date | None) -> datetime | date | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("a date-time needs a time zone (e.g. a trailing Z for UTC)")
        return value

    @property
    def is_lost(self) -> bool:
        return self.is_closed and not self.is_won and not self.deleted

    @property
    def modified_utc(self) -> datetime | None:
        return self.modified_at.astimezone(UTC) if self.modified_at else None


class ActivityKind(StrEnum):
    """What a rule can ask about (`skip_if.activity`, `after:` completions, `stop.on_meeting`)."""

    CALL = "call"
    MEETING = "meeting"
    EMAIL = "email"
    NOTE = "note"
    TASK = "task"


class Activity(_Record):
    """Something logged in the CRM by anyone (winback's own tasks included), read per
    connection with its own watermark: Salesforce Task / Event, HubSpot tasks, calls, meetings,
    emails and notes. It crosses a boundary (CRM JSON, the `plan --deals` file), so it is a
    pydantic model like `Deal`.

    `at` is when it happened: a completed task's completion time (else its due date), a call,
    email or note's logged time, a meeting's start. The ids it is linked to are whichever the
    CRM gives (a deal, its account, a contact); the worker keeps those of tracked deals.
    """

    id: str
    kind: ActivityKind
    at: datetime
    deal_id: str | None = None
    account_id: str | None = None
    contact_ids: tuple[str, ...] = ()
    owner_id: str | None = None
    task_key: str | None = None  # a winback task: the key it was written with
    status: str | None = None  # a task's status as the CRM names it
    completed: bool = False  # a task that is closed / completed
    completed_at: datetime | None = None
    deleted: bool = False
    modified_at: datetime | None = None

    @field_validator("at", "completed_at", "modified_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("a date-time needs a time zone (e.g. a trailing Z for UTC)")
        return value


class Channel(StrEnum):
    EMAIL = "email"
    CALL = "call"
    TODO = "todo"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class TaskDraft:
    """One follow-up task ready to be written, keyed for idempotency."""

    key: str
    deal_id: str
    owner_id: str
    subject: str
    body: str
    due_date: date
    remind_at: datetime
    channel: Channel = Channel.CALL
    priority: Priority = Priority.NORMAL
    contact_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task found in the CRM by its key."""

    key: str
    crm_id: str
    completed: bool = False
    owner_id: str | None = None


@dataclass(frozen=True, slots=True)
class TaskState:
    """A written task's status as the CRM has it now (the cheap task status read)."""

    crm_id: str
    completed: bool
    completed_at: datetime | None = None  # Salesforce CompletedDateTime, HubSpot
    #                                       hs_task_completion_date


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of writing one draft (or closing one task), matched by key, never position."""

    key: str
    crm_id: str | None = None
    created: bool | None = None
    error_code: str | None = None
    message: str | None = None
    retryable: bool = False
    fields: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.error_code is None and self.crm_id is not None
