"""Reading activities: Task (logged calls and emails, to-dos, winback's own tasks) and Event
(meetings), changed at or after a moment, through queryAll so deleted and archived rows come
back flagged `IsDeleted` / `IsArchived` (reference §1 "query vs queryAll").

One SOQL query per object, ordered by SystemModstamp and paged by Salesforce (1,000 rows a
page: the client's batchSize, as for deals); the two cursors are merged so pages come oldest
change first across both, and each page's watermark is safe to resume from. Only the objects
the kinds need are queried: no Event query without `meeting`, no Task query without a Task
kind, and only closed Call / Email Tasks when the rules ask about calls or emails but not
tasks. Salesforce has no note activity (notes are ContentNote records, not activities): `note`
reads nothing here. A query locator that dies midway restarts both queries from the last
stamp served, as the deal pull does.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, time
from typing import Any

from simple_salesforce.format import format_soql

from connectors.base import ActivityPage
from connectors.models import Activity, ActivityKind
from connectors.salesforce import soql
from connectors.salesforce.client import Client, cursor_restart
from connectors.salesforce.failures import StaleCursor
from connectors.salesforce.records import parse_date, parse_datetime, text

PAGE = 2_000  # activities per page handed out (up to two REST pages of 1,000)
TASK_FIELDS = ("Id, Subject, Status, IsClosed, CompletedDateTime, ActivityDate, TaskSubtype, "
               "WhatId, WhoId, AccountId, OwnerId, IsDeleted, IsArchived, CreatedDate, "
               "SystemModstamp")
EVENT_FIELDS = ("Id, Subject, StartDateTime, EndDateTime, ActivityDateTime, IsAllDayEvent, "
                "ActivityDate, WhatId, WhoId, AccountId, OwnerId, IsDeleted, CreatedDate, "
                "SystemModstamp")
# TaskSubtype (reference §3.1) -> kind; anything else (Task, Cadence, LinkedIn, ...) is a task
SUBTYPE_KINDS = {"Call": ActivityKind.CALL, "Email": ActivityKind.EMAIL,
                 "ListEmail": ActivityKind.EMAIL}
Row = tuple[datetime, str, str, dict[str, Any]]  # (stamp, id, object, record)


def task_filter(kinds: frozenset[ActivityKind]) -> str | None:
    """The Task condition for these kinds: None for every Task, "" for no Task. A logged call
    or email is a closed Task of subtype Call / Email; any other Task (an open one, a
    winback task whatever its channel) is kind `task`, so `task` reads every Task and the
    rows are sorted into kinds after the query."""
    if ActivityKind.TASK in kinds:
        return None
    wanted = [s for s, k in SUBTYPE_KINDS.items() if k in kinds]
    return format_soql("TaskSubtype IN {} AND IsClosed = true", wanted) if wanted else ""


def tasks_since(since: datetime, condition: str | None, key_field: str | None) -> str:
    fields = TASK_FIELDS + (f", {key_field}" if key_field else "")
    where = format_soql("SystemModstamp >= {}", since)
    if condition:
        where += f" AND {condition}"
    return format_soql("SELECT {:literal} FROM Task WHERE {:literal} "
                       "ORDER BY SystemModstamp ASC, Id ASC", fields, where)


def events_since(since: datetime) -> str:
    return format_soql("SELECT {:literal} FROM Event WHERE SystemModstamp >= {} "
                       "ORDER BY SystemModstamp ASC, Id ASC", EVENT_FIELDS, since)


def changed_activities(client: Client, since: datetime, kinds: frozenset[ActivityKind],
                       key_field: str | None) -> Iterator[ActivityPage]:
    """If a query locator dies midway (400 INVALID_QUERY_LOCATOR: expired, or released past
    10 open cursors), both queries are re-run from the last stamp served, and rows already
    served are skipped (everything older than that stamp, and the ids served at it)."""
    if since.tzinfo is None:
        raise ValueError("since must be time-zone aware")
    condition = task_filter(kinds)
    batch: list[Activity] = []
    rows, stamp, start = 0, since, since
    served_at: set[str] = set()
    restarts = 0
    while True:
        streams: list[Iterator[Row]] = []
        if condition != "":
            streams.append(_rows(client, tasks_since(start, condition, key_field), "Task"))
        if ActivityKind.MEETING in kinds:
            streams.append(_rows(client, events_since(start), "Event"))
        try:
            for moment, record_id, sobject, record in heapq.merge(
                    *streams, key=lambda r: (r[0], r[1])):
                if restarts and (moment < stamp or (moment == stamp
                                                    and record_id in served_at)):
                    continue  # served before the restart
                if moment > stamp:
                    stamp, served_at = moment, set()
                served_at.add(record_id)
                found = task(record, key_field) if sobject == "Task" else event(record)
                if found.kind in kinds:
                    batch.append(found)
                rows += 1
                if rows >= PAGE:
                    yield ActivityPage(batch, stamp)
                    batch, rows = [], 0
            break
        except StaleCursor:
            start = stamp
            restarts = cursor_restart(client.settings.name, restarts, start,
                                      "the activity read", read="activities")
    if rows:
        yield ActivityPage(batch, stamp)


def _rows(client: Client, query: str, sobject: str) -> Iterator[Row]:
    for page in client.pages(query, include_deleted=True):
        for record in page:
            stamp = parse_datetime(record.get("SystemModstamp")) or datetime.min.replace(
                tzinfo=UTC)
            yield stamp, str(record["Id"]), sobject, record


def _links(record: dict[str, Any]) -> dict[str, Any]:
    what, who = text(record, "WhatId") or "", text(record, "WhoId") or ""
    return {"deal_id": what if what.startswith("006") else None,
            "account_id": text(record, "AccountId"),
            "contact_ids": (who,) if who.startswith("003") else (),
            "owner_id": text(record, "OwnerId"),
            "deleted": bool(record.get("IsDeleted")),
            "modified_at": parse_datetime(record.get("SystemModstamp"))}


def _day(value: Any) -> datetime | None:
    day = parse_date(value)
    return datetime.combine(day, time(), tzinfo=UTC) if day else None


def task(record: dict[str, Any], key_field: str | None) -> Activity:
    closed = bool(record.get("IsClosed"))
    completed_at = parse_datetime(record.get("CompletedDateTime")) if closed else None
    at = (completed_at or _day(record.get("ActivityDate"))
          or parse_datetime(record.get("CreatedDate")) or datetime.now(UTC))
    key = text(record, key_field) if key_field else None
    if key is None:
        found = soql.MARKER_PATTERN.search(text(record, "Subject") or "")
        key = found.group(1) if found else None
    kind = ActivityKind.TASK
    if closed and key is None:  # "Log a Call" / a logged email: a closed Call / Email Task
        kind = SUBTYPE_KINDS.get(text(record, "TaskSubtype") or "", ActivityKind.TASK)
    return Activity(id=str(record["Id"]), kind=kind, at=at, task_key=key,
                    status=text(record, "Status"), completed=closed,
                    completed_at=completed_at, **_links(record))


def event(record: dict[str, Any]) -> Activity:
    at = (parse_datetime(record.get("StartDateTime"))
          or parse_datetime(record.get("ActivityDateTime")) or _day(record.get("ActivityDate"))
          or parse_datetime(record.get("CreatedDate")) or datetime.now(UTC))
    return Activity(id=str(record["Id"]), kind=ActivityKind.MEETING, at=at, **_links(record))
