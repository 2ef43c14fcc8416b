"""The `plan --deals` input: JSON lines in the CRM-neutral `Deal` shape, with errors by line.

A line may also carry what happened in the CRM, to preview how the plan reacts (issue 13):
`activities` (the `Activity` shape; one linked to nothing is taken as linked to the deal) and
`completed` (winback's own tasks completed: `{step, occurrence, contact_id, completed_at}`)
and `written` (winback's tasks already written: `{step, occurrence, contact_id, due_date}`).
`winback schema --deals` prints the JSON Schema of a line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.models import Activity, Deal
from worker.cadence.activity import DealActivity
from worker.cadence.calendar import zone
from worker.cadence.keys import task_key
from worker.settings.durations import Duration

if TYPE_CHECKING:
    from worker.cadence.engine import Planner

MAX_ERRORS = 50
DATE_FIELDS = ("closed_at", "contract_end", "paused_until")
MOMENT_FIELDS = {"activities": ("at", "completed_at"), "completed": ("completed_at",)}
# `today`, `today-7d`, `today+2y`, optionally followed by a time: `today-7dT16:20:00Z`.
RELATIVE = re.compile(r"^today(?:(?P<sign>[+-])(?P<span>(?:\d+(?:mo|y|w|d))+))?(?P<time>T.+)?$")


class CompletedTask(BaseModel):
    """A winback task completed in the CRM (what `after:` waits for), named by its step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: str = Field(description="The step id, e.g. post-mortem")
    occurrence: int = Field(0, ge=0, description="0 for an `at` step")
    contact_id: str | None = Field(None, description="The contact of a per-stakeholder step")
    completed_at: datetime = Field(description="When it was completed (with a zone)")


class WrittenTask(BaseModel):
    """A winback task already written to the CRM, with the due date it was written with
    (written tasks never move; no later activity skips them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: str = Field(description="The step id")
    occurrence: int = Field(0, ge=0, description="0 for an `at` step; k for the k-th touch")
    contact_id: str | None = Field(None, description="The contact of a per-stakeholder step")
    due_date: date = Field(description="Its due date in the CRM (YYYY-MM-DD)")


class DealsFileLine(Deal):
    """One line of a `winback plan --deals` file: a deal, and what happened in the CRM."""

    activities: tuple[Activity, ...] = Field(
        (), description="CRM activities (linked to nothing: taken as linked to this deal)")
    completed: tuple[CompletedTask, ...] = Field(
        (), description="winback tasks of this deal completed in the CRM")
    written: tuple[WrittenTask, ...] = Field(
        (), description="winback tasks of this deal already written to the CRM")


@dataclass(frozen=True)
class PlanInput:
    deal: Deal
    activities: tuple[Activity, ...] = ()
    completed: tuple[CompletedTask, ...] = ()
    written: tuple[WrittenTask, ...] = ()

    def activity(self, planner: Planner) -> DealActivity | None:
        """The planner's input: completions keyed like the tasks of the deal's first cycle
        with the cadence it matches (None when the line gives no activity)."""
        if not self.activities and not self.completed and not self.written:
            return None
        cadence = planner.match(self.deal)
        if cadence is None:
            return DealActivity(self.activities)

        def key(task: CompletedTask | WrittenTask) -> str:
            assert cadence is not None
            return task_key(planner.connection, self.deal.id, cadence.id, task.step,
                            task.occurrence, task.contact_id)

        return DealActivity(self.activities, {key(c): c.completed_at for c in self.completed},
                            written={key(w): w.due_date for w in self.written})


def deals_file_schema() -> dict[str, Any]:
    schema = DealsFileLine.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "winback plan --deals: one line"
    return schema


class InputErrors(Exception):
    """Problems in an input file, one line each: `file:line: field: what is wrong`."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def _field(loc: tuple[object, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(line)"


def resolve_relative(data: dict[str, Any], today: date) -> None:
    """Turn `closed_at` / `contract_end` / `paused_until` (and the times of `activities` and
    `completed`) written relative to today (`today-7d`, `today+2y`, `today-3dT16:20:00Z`) into
    ISO dates, so a sample stays fresh."""
    _relative(data, DATE_FIELDS, today)
    for key, names in MOMENT_FIELDS.items():
        items = data.get(key)
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict):
                _relative(item, names, today)


def _relative(data: dict[str, Any], names: tuple[str, ...], today: date) -> None:
    for name in names:
        value = data.get(name)
        found = RELATIVE.match(value) if isinstance(value, str) else None
        if found is None:
            continue
        day = today
        if found["span"]:
            span = Duration.parse(found["span"])
            day = span.add_to(today) if found["sign"] == "+" else span.subtract_from(today)
        data[name] = day.isoformat() + (found["time"] or "")


def _link(data: dict[str, Any]) -> None:
    """An activity of the file linked to nothing is linked to its line's deal."""
    items = data.get("activities")
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and not any(item.get(k) for k in
                                              ("deal_id", "account_id", "contact_ids")):
            item["deal_id"] = data.get("id")


def read_deals(path: Path, today: date | None = None) -> list[Deal]:
    """The deals of a JSON-lines file (see read_plan_inputs)."""
    return [item.deal for item in read_plan_inputs(path, today)]


def read_plan_inputs(path: Path, today: date | None = None) -> list[PlanInput]:
    """The deals of a JSON-lines file, with their activity; InputErrors lists every bad line
    at once. Dates written relative to today (see resolve_relative) count from `today`
    (default: today in UTC)."""
    today = today or datetime.now(UTC).date()
    shown = str(path)
    problems: list[str] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputErrors([f"{shown}: cannot read the deals file: {exc.strerror}"]) from None
    deals: list[PlanInput] = []
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith("//"):
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{shown}:{number}: not valid JSON ({exc.msg} at column "
                                f"{exc.colno})")
                continue
            if not isinstance(data, dict):
                problems.append(f"{shown}:{number}: expected a JSON object (one deal per line)")
                continue
            resolve_relative(data, today)
            _link(data)
            try:
                line_ = DealsFileLine.model_validate(data)
            except ValidationError as exc:
                dated: set[str] = set()
                for err in exc.errors():
                    message = err["msg"].removeprefix("Value error, ")
                    where = _field(tuple(err["loc"]))
                    if err["type"] == "extra_forbidden":
                        message = "unknown field (see the Deal shape in docs/configuration.md)"
                    elif err["loc"] and err["loc"][0] in DATE_FIELDS:
                        where = str(err["loc"][0])
                        if where in dated:
                            continue
                        dated.add(where)
                        message = (f"{data.get(where)!r} is not a date: write YYYY-MM-DD, a "
                                   "date-time with a zone (2027-11-08T05:30:00Z), or a day "
                                   "relative to today (today, today-7d, today+1y)")
                    problems.append(f"{shown}:{number}: {where}: {message}")
                continue
            deal = Deal.model_construct(**{k: getattr(line_, k) for k in Deal.model_fields})
            timezone = deal.owner.timezone if deal.owner else None
            if timezone:
                try:
                    zone(timezone)
                except (KeyError, ValueError, OSError):
                    problems.append(f"{shown}:{number}: owner.timezone: unknown time zone "
                                    f"{timezone!r} (expected an IANA name such as Europe/London)")
                    continue
            deals.append(PlanInput(deal, line_.activities, line_.completed, line_.written))
            if len(problems) >= MAX_ERRORS:
                break
    if problems:
        raise InputErrors(problems[:MAX_ERRORS])
    return deals
