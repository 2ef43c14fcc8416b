"""The Event object (meetings) and Task completion through simple-salesforce: derived fields
(ActivityDateTime, ActivityDate, EndDateTime/DurationInMinutes, AccountId), validation, and
queryAll of deleted activities."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import SalesforceMalformedRequest

from .conftest import SfEnv

START = "2026-11-20T15:00:00.000Z"


def _bad(call: Any, *args: Any) -> dict[str, Any]:
    with pytest.raises(SalesforceMalformedRequest) as info:
        call(*args)
    assert info.value.status == 400
    error: dict[str, Any] = info.value.content[0]
    return error


def test_event_derives_times_and_account(sf: SfEnv, org: dict[str, str]) -> None:
    client = sf.login()
    created = client.Event.create({"Subject": "Meeting", "StartDateTime": START,
                                   "DurationInMinutes": 45, "WhatId": org["lost"],
                                   "WhoId": org["c1"], "OwnerId": org["rep"]})
    event = client.Event.get(created["id"])
    assert created["id"].startswith("00U")
    assert event["ActivityDateTime"] == "2026-11-20T15:00:00.000+0000"
    assert event["ActivityDate"] == "2026-11-20"
    assert event["EndDateTime"] == "2026-11-20T15:45:00.000+0000"
    assert event["AccountId"] == org["acme"]  # from the opportunity (WhatId)
    assert event["EventSubtype"] == "Event" and event["IsDeleted"] is False


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"StartDateTime": START}, "REQUIRED_FIELD_MISSING", "DurationInMinutes"),
    ({"DurationInMinutes": 30}, "REQUIRED_FIELD_MISSING", "StartDateTime"),
    ({"StartDateTime": START, "DurationInMinutes": 30, "EventSubtype": "Meeting"},
     "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "EventSubtype"),
    ({"StartDateTime": START, "DurationInMinutes": 30, "Agenda": "x"}, "INVALID_FIELD", "Agenda"),
    ({"StartDateTime": START, "DurationInMinutes": 30, "AccountId": "001000000000000AAA"},
     "INVALID_FIELD_FOR_INSERT_UPDATE", "AccountId"),
    ({"StartDateTime": START, "EndDateTime": "2026-11-20T14:00:00.000Z"},
     "FIELD_INTEGRITY_EXCEPTION", "EndDateTime"),
])
def test_event_validation(sf: SfEnv, org: dict[str, str], fields: dict[str, Any], code: str,
                          field: str) -> None:
    error = _bad(sf.login().Event.create, {"Subject": "Meeting", **fields})
    assert error["errorCode"] == code
    assert field in error.get("fields", []) or field in error["message"]


def test_task_completion_fields_are_read_only(sf: SfEnv, org: dict[str, str]) -> None:
    client = sf.login()
    for name, value in (("CompletedDateTime", START), ("IsClosed", True)):
        error = _bad(client.Task.create, {"Subject": "Call", "WhatId": org["lost"],
                                          name: value})
        assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE" and name in error[
            "message"]


def test_admin_completes_a_task_at_a_given_time_and_deleted_events_show_in_query_all(
        sf: SfEnv, org: dict[str, str]) -> None:
    client = sf.login()
    task_id = client.Task.create({"Subject": "Call", "WhatId": org["lost"]})["id"]
    sf.admin("PATCH", f"records/Task/{task_id}", {"Status": "Completed",
                                                   "CompletedDateTime": START})
    task = client.Task.get(task_id)
    assert task["IsClosed"] is True and task["CompletedDateTime"] == "2026-11-20T15:00:00.000+0000"
    event_id = client.Event.create({"Subject": "Meeting", "StartDateTime": START,
                                    "DurationInMinutes": 30, "WhatId": org["lost"]})["id"]
    client.Event.delete(event_id)
    soql = f"SELECT Id, IsDeleted FROM Event WHERE Id = '{event_id}'"
    assert client.query(soql)["records"] == []
    [row] = client.query_all(soql, include_deleted=True)["records"]
    assert row["IsDeleted"] is True


def test_admin_rep_routes_log_complete_and_refuse_notes(sf: SfEnv, org: dict[str, str]) -> None:
    client = sf.login()
    call = sf.admin("POST", "activities", {"kind": "call", "at": START, "what": org["lost"],
                                           "who": org["c1"]})
    row = client.Task.get(call["id"])
    assert call["sobject"] == "Task" and row["TaskSubtype"] == "Call" and row["IsClosed"]
    assert row["CompletedDateTime"] == "2026-11-20T15:00:00.000+0000"
    meeting = sf.admin("POST", "activities", {"kind": "meeting", "at": START,
                                              "what": org["lost"]})
    assert client.Event.get(meeting["id"])["AccountId"] == org["acme"]
    todo = sf.admin("POST", "activities", {"kind": "task", "at": START, "what": org["lost"]})
    assert client.Task.get(todo["id"])["IsClosed"] is False
    sf.admin("POST", "activities/complete", {"id": todo["id"], "at": "2026-11-21T09:30:00Z"})
    done = client.Task.get(todo["id"])
    assert done["Status"] == "Completed"
    assert done["CompletedDateTime"] == "2026-11-21T09:30:00.000+0000"
    sf.admin("POST", "activities", {"kind": "note", "what": org["lost"]}, expect=400)
