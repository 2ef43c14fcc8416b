"""Derived fields of the activity objects, Task and Event (object reference "Task", "Event").

AccountId: the WhatId's account when WhatId is an Account or an Opportunity, else the WhoId
contact's account, else null. An Event's ActivityDateTime is its StartDateTime (either may be
sent), ActivityDate that moment's day; unless it is an all-day event it needs EndDateTime or
DurationInMinutes, and the other is computed (both given must agree).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.salesforce.store import Draft, Store, Table
from sandbox.salesforce.validation import fail


def account_of(store: Store, what: str | None, who: str | None) -> str | None:
    if what and what.startswith("001"):
        return what
    if what and what.startswith("006"):
        opp = store["Opportunity"]
        row = opp.rows.get(what)
        return row[opp.slot("AccountId")] if row is not None else None
    if who and who.startswith("003"):
        contacts = store["Contact"]
        row = contacts.rows.get(who)
        return row[contacts.slot("AccountId")] if row is not None else None
    return None


def check_lead_links(row: Draft, table: Table, kind: str) -> None:
    who, what = row[table.slot("WhoId")], row[table.slot("WhatId")]
    if who and who.startswith("00Q") and what:
        raise fail("FIELD_INTEGRITY_EXCEPTION", "Related To ID: You can't associate a "
                   f"Related To record with a {kind} that's related to a lead.", "WhatId")


def derive_event(store: Store, table: Table, row: Draft) -> None:
    slot = table.slot
    check_lead_links(row, table, "event")
    start = row[slot("StartDateTime")] or row[slot("ActivityDateTime")]
    all_day = bool(row[slot("IsAllDayEvent")])
    if start is None:
        if not all_day or row[slot("ActivityDate")] is None:
            raise fail("REQUIRED_FIELD_MISSING", "Required fields are missing: "
                       "[StartDateTime]", "StartDateTime")
    else:
        row[slot("StartDateTime")] = row[slot("ActivityDateTime")] = start
        row[slot("ActivityDate")] = start.astimezone(UTC).date()
    end, minutes = row[slot("EndDateTime")], row[slot("DurationInMinutes")]
    if start is not None:
        if end is None and minutes is None:
            if not all_day:
                raise fail("REQUIRED_FIELD_MISSING", "Required fields are missing: "
                           "[DurationInMinutes]", "DurationInMinutes")
            minutes = 24 * 60
        if end is None:
            end = start + timedelta(minutes=int(minutes))
        computed = int((end - start).total_seconds() // 60)
        if computed < 0:
            raise fail("FIELD_INTEGRITY_EXCEPTION", "End Date Time: End time can't be before "
                       "start time", "EndDateTime")
        if minutes is not None and int(minutes) != computed:
            raise fail("FIELD_INTEGRITY_EXCEPTION", "Duration: the duration and the end time "
                       "do not agree", "DurationInMinutes")
        row[slot("EndDateTime")], row[slot("DurationInMinutes")] = end, computed
    row[slot("AccountId")] = account_of(store, row[slot("WhatId")], row[slot("WhoId")])


SUBTYPES = {"call": "Call", "email": "Email", "task": "Task"}


def rep_record(kind: str, at: datetime, *, what: str | None, who: str | None,
               owner: str | None, subject: str | None = None) -> tuple[str, dict[str, Any]]:
    """(sObject, JSON fields) of an activity a rep logs at `at`: a call or email is a
    completed Task of that subtype ("Log a Call"), a task an open Task due that day, a meeting
    a 30-minute Event. Salesforce has no note activity."""
    links = {k: v for k, v in (("WhatId", what), ("WhoId", who), ("OwnerId", owner)) if v}
    stamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if kind == "meeting":
        return "Event", {"Subject": subject or "Meeting", "StartDateTime": stamp,
                         "DurationInMinutes": 30, **links}
    if kind not in SUBTYPES:
        raise fail("INVALID_TYPE", f"no {kind!r} activity in Salesforce: use call, email, "
                   "task or meeting (notes are not activities)", "kind")
    done = kind != "task"
    return "Task", {"Subject": subject or kind.title(), "ActivityDate": at.date().isoformat(),
                    "TaskSubtype": SUBTYPES[kind],
                    "Status": "Completed" if done else "Not Started", **links,
                    **({"CompletedDateTime": stamp} if done else {})}
