"""Single-record sObject calls: create/get/update/delete, upsert by external id, describe,
derived fields, timestamps and validation errors, read the way production code reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
    format_external_id,
)

from .conftest import SfEnv


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def _bad(client: Any, call: Any, *args: Any) -> dict[str, Any]:
    with pytest.raises(SalesforceMalformedRequest) as info:
        call(*args)
    assert info.value.status == 400
    error: dict[str, Any] = info.value.content[0]
    return error


def test_task_create_get_update_delete(sf: SfEnv, org: dict[str, str]) -> None:
    """201 {id, success, errors}; GET with attributes; PATCH and DELETE are 204."""
    client = sf.login()
    created = client.Task.create({"Subject": "Follow up: Acme", "WhatId": org["lost"],
                                  "WhoId": org["c1"], "OwnerId": org["rep"],
                                  "ActivityDate": "2024-07-01", "TaskSubtype": "Call",
                                  "IsReminderSet": True,
                                  "ReminderDateTime": "2024-07-01T15:00:00.000Z"})
    assert set(created) == {"id", "success", "errors"} and created["success"] is True
    task_id = created["id"]
    assert task_id.startswith("00T") and len(task_id) == 18
    task = client.Task.get(task_id)
    assert task["attributes"] == {"type": "Task",
                                  "url": f"/services/data/v64.0/sobjects/Task/{task_id}"}
    assert task["Status"] == "Not Started" and task["Priority"] == "Normal"
    assert task["IsClosed"] is False and task["AccountId"] == org["acme"]
    assert task["ReminderDateTime"] == "2024-07-01T15:00:00.000+0000"
    assert task["ActivityDate"] == "2024-07-01"
    assert client.Task.update(task_id, {"Status": "Completed"}) == 204
    done = client.Task.get(task_id)
    assert done["IsClosed"] is True and done["CompletedDateTime"] is not None
    assert client.Task.delete(task_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as info:
        client.Task.get(task_id)
    assert info.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_task_defaults_owner_to_the_api_user(sf: SfEnv) -> None:
    """Without OwnerId the task belongs to the logged-in user; Subject is optional."""
    client = sf.login()
    task = client.Task.get(client.Task.create({})["id"])
    assert task["OwnerId"] == sf.emulator.default_user_id
    assert task["Subject"] is None and task["TaskSubtype"] == "Task"


def test_opportunity_flags_follow_the_stage_table(sf: SfEnv, org: dict[str, str]) -> None:
    """IsClosed/IsWon/Probability/ForecastCategoryName are derived from the stage."""
    client = sf.login()
    opp = client.Opportunity.get(org["lost_gone"])
    assert (opp["IsClosed"], opp["IsWon"], opp["Probability"], opp["ForecastCategoryName"]) == (
        True, False, 0.0, "Omitted")
    client.Opportunity.update(org["lost_gone"], {"StageName": "Negotiation/Review"})
    opp = client.Opportunity.get(org["lost_gone"])
    assert (opp["IsClosed"], opp["IsWon"], opp["Probability"], opp["ForecastCategoryName"]) == (
        False, False, 90.0, "Commit")
    new = client.Opportunity.create({"Name": "X", "StageName": "Closed Won",
                                     "CloseDate": "2024-01-31"})
    assert client.Opportunity.get(new["id"])["IsWon"] is True


def test_timestamps_move_on_every_write_and_follow_the_clock(sf: SfEnv,
                                                             org: dict[str, str]) -> None:
    """SystemModstamp/LastModifiedDate change on update; the admin clock offset shows in them."""
    client = sf.login()
    before = client.Opportunity.get(org["open"])
    sf.admin("POST", "clock", {"offset_seconds": 3 * 86400})
    client.Opportunity.update(org["open"], {"NextStep": "call"})
    after = client.Opportunity.get(org["open"])
    assert after["CreatedDate"] == before["CreatedDate"]
    moved = _stamp(after["SystemModstamp"]) - _stamp(before["SystemModstamp"])
    assert timedelta(days=3) - timedelta(minutes=1) < moved < timedelta(days=3, minutes=1)
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["LastModifiedById"] == sf.emulator.default_user_id
    task = client.Task.get(client.Task.create({"Subject": "later"})["id"])
    expected = datetime.now(UTC) + timedelta(days=3)
    assert abs(_stamp(task["CreatedDate"]) - expected) < timedelta(minutes=1)


def test_upsert_by_external_id_creates_then_updates(sf: SfEnv, org: dict[str, str]) -> None:
    """201 with created=true, then 200 with created=false; the key may need URL encoding."""
    client = sf.login()
    key = format_external_id("Winback_Key__c", "acme/lost#1-step")
    first = client.Task.upsert(key, {"Subject": "first", "WhatId": org["lost"]},
                               raw_response=True)
    assert first.status_code == 201
    body = first.json()
    assert body["created"] is True and body["success"] is True
    second = client.Task.upsert(key, {"Subject": "second"}, raw_response=True)
    assert second.status_code == 200
    assert second.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    task = client.Task.get_by_custom_id("Winback_Key__c", "acme/lost#1-step")
    assert task["Subject"] == "second" and task["Winback_Key__c"] == "acme/lost#1-step"
    found = client.query("SELECT Id FROM Task WHERE Winback_Key__c = 'ACME/LOST#1-STEP'")
    assert found["totalSize"] == 1  # external ids match case-insensitively


def test_upsert_errors(sf: SfEnv) -> None:
    """Not an external id -> 404 NOT_FOUND; key in the body -> 400; duplicate create -> 400."""
    client = sf.login()
    with pytest.raises(SalesforceResourceNotFound) as info:
        client.Task.upsert(format_external_id("Subject", "x"), {"Status": "Completed"})
    assert info.value.content[0]["errorCode"] == "NOT_FOUND"
    error = _bad(client, client.Task.upsert, format_external_id("Winback_Key__c", "k1"),
                 {"Winback_Key__c": "k1"})
    assert error["errorCode"] == "INVALID_FIELD"
    client.Task.create({"Winback_Key__c": "dup"})
    error = _bad(client, client.Task.create, {"Winback_Key__c": "DUP"})
    assert error["errorCode"] == "DUPLICATE_VALUE"


def test_upsert_with_several_matches_is_300(make_sf: Any) -> None:
    """On a non-unique external id, two matches make upsert answer 300 with their URLs."""
    env: SfEnv = make_sf(task_external_id_unique=False)
    client = env.login()
    a = client.Task.create({"Winback_Key__c": "same"})["id"]
    b = client.Task.create({"Winback_Key__c": "same"})["id"]
    with pytest.raises(SalesforceMoreThanOneRecord) as info:
        client.Task.upsert(format_external_id("Winback_Key__c", "same"), {"Subject": "x"})
    assert info.value.status == 300
    assert sorted(info.value.content) == sorted(
        f"/services/data/v64.0/sobjects/Task/{i}" for i in (a, b))


def test_org_without_the_custom_key_field(make_sf: Any) -> None:
    """task_external_id_field=None: no such field in describe, writes and queries reject it."""
    env: SfEnv = make_sf(task_external_id_field=None)
    client = env.login()
    names = {f["name"] for f in client.Task.describe()["fields"]}
    assert "Winback_Key__c" not in names
    assert _bad(client, client.Task.create, {"Winback_Key__c": "k"})["errorCode"] == "INVALID_FIELD"
    assert _bad(client, client.query, "SELECT Winback_Key__c FROM Task")["errorCode"] == \
        "INVALID_FIELD"


def test_describe_reports_custom_and_external_id_fields(sf: SfEnv) -> None:
    """describe() lists fields with the flags a connector inspects."""
    client = sf.login()
    task = {f["name"]: f for f in client.Task.describe()["fields"]}
    key = task["Winback_Key__c"]
    assert (key["type"], key["length"], key["custom"], key["externalId"], key["unique"]) == (
        "string", 80, True, True, True)
    assert task["Description"]["filterable"] is False
    assert task["TaskSubtype"]["restrictedPicklist"] is True
    assert task["TaskSubtype"]["updateable"] is False
    assert task["IsClosed"]["createable"] is False
    assert {p["value"] for p in task["Status"]["picklistValues"]} >= {"Not Started", "Completed"}
    assert task["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    opp = {f["name"]: f for f in client.Opportunity.describe()["fields"]}
    assert opp["Loss_Reason__c"]["custom"] is True and opp["Contract_End__c"]["type"] == "date"
    stages = [p["value"] for p in opp["StageName"]["picklistValues"]]
    assert "Closed - No Budget" in stages
    names = {s["name"] for s in client.describe()["sobjects"]}
    assert {"Opportunity", "OpportunityContactRole", "Task", "User", "Contact",
            "Account"} <= names


def test_versions_and_resources(sf: SfEnv) -> None:
    """GET /services/data/ lists versions without auth; /vXX.X/ lists resources."""
    versions = requests.get(f"{sf.url}/services/data/", verify=str(sf.ca.ca_path),
                            timeout=10)
    listed = versions.json()
    assert listed[-1] == {"label": "Winter '27", "url": "/services/data/v68.0",
                          "version": "68.0"}  # the newest a Winter '27 org offers
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in listed
    assert "Sforce-Limit-Info" not in versions.headers
    client = sf.login()
    assert client.restful("")["query"] == "/services/data/v64.0/query"
    bad = sf.raw("GET", "/services/data/v12.0/limits", client)
    assert bad.status_code == 404 and bad.json()[0]["errorCode"] == "NOT_FOUND"


@pytest.mark.parametrize(("data", "code", "fields"), [
    ({"Subject": "x" * 256}, "STRING_TOO_LONG", ["Subject"]),
    ({"TaskSubtype": "Fax"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["TaskSubtype"]),
    ({"Status": "Sleeping"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status"]),
    ({"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsClosed"]),
    ({"SystemModstamp": "2024-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE",
     ["SystemModstamp"]),
    ({"Foo__c": 1}, "INVALID_FIELD", ["Foo__c"]),
    ({"ActivityDate": "next week"}, "JSON_PARSER_ERROR", None),
    ({"WhoId": "@acme"}, "FIELD_INTEGRITY_EXCEPTION", ["WhoId"]),
    ({"WhoId": "not-an-id"}, "FIELD_INTEGRITY_EXCEPTION", ["WhoId"]),
    ({"WhatId": "@c1"}, "FIELD_INTEGRITY_EXCEPTION", ["WhatId"]),
    ({"WhatId": "006Wb0000000zzzAAA"}, "INVALID_CROSS_REFERENCE_KEY", ["WhatId"]),
    ({"OwnerId": "@gone"}, "INACTIVE_OWNER_OR_USER", None),
    ({"OwnerId": "xyz"}, "MALFORMED_ID", ["OwnerId"]),
    ({"WhoId": "@lead", "WhatId": "@lost"}, "FIELD_INTEGRITY_EXCEPTION", ["WhatId"]),
])
def test_task_validation_errors(sf: SfEnv, org: dict[str, str], data: dict[str, Any], code: str,
                                fields: list[str] | None) -> None:
    """Invalid task writes are 400 with the real errorCode (and fields where Salesforce gives
    them)."""
    client = sf.login()
    body = {k: org[v[1:]] if isinstance(v, str) and v.startswith("@") else v
            for k, v in data.items()}
    error = _bad(client, client.Task.create, body)
    assert error["errorCode"] == code, error
    if fields is not None:
        assert error["fields"] == fields


def test_required_fields_and_deleted_parents(sf: SfEnv, org: dict[str, str]) -> None:
    """REQUIRED_FIELD_MISSING lists fields; a deleted WhatId is ENTITY_IS_DELETED."""
    client = sf.login()
    error = _bad(client, client.Opportunity.create, {"Name": "x"})
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert error["fields"] == ["StageName", "CloseDate"]
    assert error["message"] == "Required fields are missing: [StageName, CloseDate]"
    client.Opportunity.delete(org["won"])
    error = _bad(client, client.Task.create, {"WhatId": org["won"]})
    assert error["errorCode"] == "ENTITY_IS_DELETED"


def test_create_only_subtype_cannot_be_updated(sf: SfEnv) -> None:
    """TaskSubtype is create-only: sending it on update is refused."""
    client = sf.login()
    task_id = client.Task.create({"TaskSubtype": "Email"})["id"]
    error = _bad(client, client.Task.update, task_id, {"TaskSubtype": "Call"})
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_injected_row_lock(sf: SfEnv, org: dict[str, str]) -> None:
    """A locked parent makes writes fail with UNABLE_TO_LOCK_ROW until the lock is cleared."""
    client = sf.login()
    sf.admin("POST", "locks", {"ids": [org["lost"]]})
    error = _bad(client, client.Task.create, {"WhatId": org["lost"]})
    assert error["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert org["lost"] in error["message"]
    sf.admin("POST", "locks", {"clear": True, "next": 1})
    assert _bad(client, client.Task.create, {})["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert client.Task.create({})["success"] is True


def test_primary_contact_role_is_unique_per_opportunity(sf: SfEnv, org: dict[str, str]) -> None:
    """Making a contact role primary clears the previous primary."""
    client = sf.login()
    client.OpportunityContactRole.create({"OpportunityId": org["lost"], "ContactId": org["c2"],
                                          "IsPrimary": True})
    rows = client.query(f"SELECT ContactId FROM OpportunityContactRole WHERE OpportunityId = "
                        f"'{org['lost']}' AND IsPrimary = true")["records"]
    assert [r["ContactId"] for r in rows] == [org["c2"]]


def test_deleting_an_opportunity_cascades_to_its_roles_and_tasks(sf: SfEnv,
                                                                 org: dict[str, str]) -> None:
    """Children of a deleted opportunity are soft-deleted too (visible to queryAll)."""
    client = sf.login()
    task_id = client.Task.create({"WhatId": org["lost"]})["id"]
    client.Opportunity.delete(org["lost"])
    assert client.query("SELECT Id FROM OpportunityContactRole")["totalSize"] == 0
    every = client.query_all(f"SELECT Id, IsDeleted FROM Task WHERE Id = '{task_id}'",
                             include_deleted=True)
    assert every["records"][0]["IsDeleted"] is True
