"""The /__sandbox/ admin API of the Salesforce emulator: seeding, records, users and options."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import requests

from .conftest import SfEnv


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def test_generated_seed_maps_the_neutral_data_to_salesforce_objects(sf: SfEnv) -> None:
    """generate() deals become Users, Accounts, Contacts, Opportunities and contact roles."""
    result = sf.admin("POST", "seed", {"generate": {"deals": 300, "seed": 7, "owners": 6,
                                                    "inactive_owners": 2}})
    counts = result["counts"]
    assert counts["User"] == 6 and counts["Opportunity"] == 300
    assert counts["Account"] == 150 and counts["Contact"] > 0
    assert all(i.startswith("006") for i in result["ids"]["Opportunity"])
    client = sf.login()
    lost = client.query("SELECT Id, StageName, Loss_Reason__c FROM Opportunity "
                        "WHERE IsClosed = true AND IsWon = false")
    assert lost["totalSize"] == result["deals"]["lost"]
    assert {r["StageName"] for r in lost["records"]} == {"Closed Lost", "Closed - No Budget"}
    assert all(r["Loss_Reason__c"] for r in lost["records"])
    assert set(result["closed_lost_ids"]) <= {r["Id"] for r in lost["records"]}
    won = client.query("SELECT COUNT() FROM Opportunity WHERE IsWon = true")
    assert won["totalSize"] == result["deals"]["won"]
    inactive = client.query("SELECT Id FROM User WHERE IsActive = false")
    assert {r["Id"] for r in inactive["records"]} == set(result["inactive_user_ids"])
    assert sf.admin("POST", "seed", {"generate": {"deals": 1, "bogus": 1}},
                    expect=400)["message"]


def test_fixtures_link_records_by_ref_and_load_all_or_nothing(sf: SfEnv) -> None:
    """"@ref" values resolve to ids made earlier in the same call; a bad record loads nothing."""
    refs = sf.seed({"Account": [{"ref": "a", "Name": "Initech"}],
                    "Opportunity": [{"ref": "o", "Name": "Initech - Pilot", "AccountId": "@a",
                                     "StageName": "Closed Lost", "CloseDate": "2024-01-15"}]})
    assert refs["a"].startswith("001") and refs["o"].startswith("006")
    client = sf.login()
    opp = client.Opportunity.get(refs["o"])
    assert opp["AccountId"] == refs["a"] and opp["IsClosed"] is True
    bad = sf.admin("POST", "seed", {"records": {
        "Account": [{"Name": "Kept?"}],
        "Opportunity": [{"Name": "x", "StageName": "Nope", "CloseDate": "2024-01-01"}]}},
        expect=400)
    assert bad["errors"][0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert bad["object"] == "Opportunity" and bad["index"] == 0
    assert client.query("SELECT Id FROM Account WHERE Name = 'Kept?'")["totalSize"] == 0
    unknown = sf.admin("POST", "seed", {"records": {"Contact": [{"LastName": "x",
                                                                 "AccountId": "@zz"}]}},
                       expect=400)
    assert "unknown ref" in unknown["message"]


def test_fixtures_may_set_history_and_inactive_owners(sf: SfEnv) -> None:
    """Admin writes accept system stamps and inactive owners, which the API refuses."""
    refs = sf.seed({
        "User": [{"ref": "u", "LastName": "Gone", "IsActive": False}],
        "Opportunity": [{"ref": "o", "Name": "Old", "StageName": "Closed Lost",
                         "CloseDate": "2023-01-31", "OwnerId": "@u",
                         "CreatedDate": "2022-12-01T10:00:00Z",
                         "LastModifiedDate": "2023-02-01T08:15:02Z"}]})
    opp = sf.login().Opportunity.get(refs["o"])
    assert opp["SystemModstamp"] == "2023-02-01T08:15:02.000+0000"
    assert opp["CreatedDate"] == "2022-12-01T10:00:00.000+0000"
    assert opp["OwnerId"] == refs["u"]


def test_admin_record_changes_are_free_and_stamped(sf: SfEnv, org: dict[str, str]) -> None:
    """PATCH/POST/DELETE records/<SObject> change data without calls; stamps move."""
    client = sf.login()
    before = client.Opportunity.get(org["lost"])
    sf.admin("POST", "calls/reset")
    used = sf.admin("GET", "limits")["used"]
    sf.admin("POST", "clock", {"advance_seconds": 120})
    reopened = sf.admin("PATCH", f"records/Opportunity/{org['lost']}",
                        {"StageName": "Negotiation/Review"})
    assert reopened["IsClosed"] is False
    assert _stamp(reopened["SystemModstamp"]) > _stamp(before["SystemModstamp"])
    added = sf.admin("POST", "records/Opportunity", {"Name": "New", "StageName": "Closed Lost",
                                                     "CloseDate": "2024-06-30"}, expect=201)
    assert added["id"].startswith("006")
    many = sf.admin("POST", "records/Contact", [{"LastName": "A"}, {"LastName": "B"}],
                    expect=201)
    assert len(many["ids"]) == 2
    sf.admin("PATCH", f"records/User/{org['rep']}", {"IsActive": False})
    sf.admin("DELETE", f"records/Opportunity/{org['won']}")
    assert sf.admin("GET", "calls")["total"] == 0
    assert sf.admin("GET", "limits")["used"] == used
    ids = {r["Id"] for r in client.query("SELECT Id FROM Opportunity WHERE IsClosed = true "
                                         "AND IsWon = false")["records"]}
    assert ids == {org["lost_gone"], added["id"]}
    everything = sf.admin("GET", "records/Opportunity")["records"]
    assert [r["IsDeleted"] for r in everything if r["Id"] == org["won"]] == [True]
    live = sf.admin("GET", "records/Opportunity", params={"include_deleted": "false"})
    assert org["won"] not in {r["Id"] for r in live["records"]}
    assert sf.admin("GET", f"records/User/{org['rep']}")["IsActive"] is False
    sf.admin("GET", "records/Nope", expect=404)


def test_tasks_listing_has_every_field_and_deleted_tasks(sf: SfEnv, org: dict[str, str]) -> None:
    """GET /__sandbox/tasks returns all tasks, including deleted ones, with all fields."""
    client = sf.login()
    keep = client.Task.create({"Subject": "keep", "WhatId": org["lost"]})["id"]
    gone = client.Task.create({"Subject": "gone"})["id"]
    client.Task.delete(gone)
    tasks = {t["Id"]: t for t in sf.admin("GET", "tasks")["records"]}
    assert set(tasks) == {keep, gone}
    assert tasks[gone]["IsDeleted"] is True and tasks[keep]["IsDeleted"] is False
    assert {"Winback_Key__c", "AccountId", "SystemModstamp", "TaskSubtype", "Description",
            "ReminderDateTime"} <= set(tasks[keep])


def test_added_login_users_own_what_they_create(sf: SfEnv) -> None:
    """POST /__sandbox/users adds a login; its tasks default to that owner."""
    made = sf.admin("POST", "users", {"username": "ops@sandbox.example", "password": "pw",
                                      "security_token": "TOK", "first_name": "Op",
                                      "last_name": "Erator"}, expect=201)
    client = sf.login(username="ops@sandbox.example", password="pw", token="TOK")
    task = client.Task.get(client.Task.create({})["id"])
    assert task["OwnerId"] == made["id"] and task["CreatedById"] == made["id"]
    user = client.query(f"SELECT Name FROM User WHERE Id = '{made['id']}'")["records"][0]
    assert user["Name"] == "Op Erator"


def test_runtime_options(sf: SfEnv) -> None:
    """POST /__sandbox/options changes session TTL and cursor limits; unknown keys are 400."""
    out = sf.admin("POST", "options", {"session_ttl_seconds": 5, "max_cursors_per_user": 2})
    assert out["session_ttl_seconds"] == 5 and out["max_cursors_per_user"] == 2
    client = sf.direct(sf.login().session_id)
    sf.admin("POST", "clock", {"advance_seconds": 10})
    with pytest.raises(Exception, match="INVALID_SESSION_ID"):
        client.query("SELECT Id FROM User")
    sf.admin("POST", "options", {"task_external_id_field": "x"}, expect=400)
    sf.admin("POST", "reset")
    assert sf.emulator.options.session_ttl_seconds == 7200  # reset restores the options


def test_protocol_level_errors_use_salesforce_shapes(sf: SfEnv) -> None:
    """Unknown paths are 404 NOT_FOUND and wrong methods 405, as JSON arrays."""
    client = sf.login()
    missing = sf.raw("GET", "/services/data/v68.0/nothing/here", client)
    assert missing.status_code == 404
    assert missing.json() == [{"message": "The requested resource does not exist",
                               "errorCode": "NOT_FOUND"}]
    wrong = sf.raw("PUT", "/services/data/v68.0/sobjects/Task", client)
    assert wrong.status_code == 405 and wrong.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    no_type = sf.raw("GET", "/services/data/v68.0/sobjects/Nope/describe", client)
    assert no_type.status_code == 404


def test_get_updated_and_deleted(sf: SfEnv, org: dict[str, str]) -> None:
    """sObject updated/deleted windows list ids by SystemModstamp."""
    from datetime import UTC, timedelta

    client = sf.login()
    client.Opportunity.delete(org["open"])
    start = datetime.now(UTC) - timedelta(hours=1)
    end = datetime.now(UTC) + timedelta(hours=1)
    updated: Any = client.Opportunity.updated(start, end)
    assert set(updated["ids"]) == {org["lost"], org["lost_gone"], org["won"]}
    deleted: Any = client.Opportunity.deleted(start, end)
    assert [d["id"] for d in deleted["deletedRecords"]] == [org["open"]]


def test_admin_routes_reject_bad_bodies(sf: SfEnv) -> None:
    """Seed needs generate or records; users need username and password."""
    sf.admin("POST", "seed", {"nothing": True}, expect=400)
    sf.admin("POST", "users", {"username": "x"}, expect=400)
    response = requests.post(f"{sf.url}/__sandbox/seed", data=b"{not json",
                             verify=str(sf.ca.ca_path), timeout=10)
    assert response.status_code == 400


def test_custom_lost_stage_added_by_admin_counts_as_closed_lost(sf: SfEnv) -> None:
    """A stage added to the OpportunityStage table drives IsClosed/IsWon like the standard ones."""
    sf.admin("POST", "records/OpportunityStage", {
        "MasterLabel": "Closed - Went Dark", "ApiName": "Closed - Went Dark", "IsClosed": True,
        "IsWon": False, "DefaultProbability": 0, "ForecastCategoryName": "Omitted",
        "SortOrder": 12}, expect=201)
    client = sf.login()
    opp = client.Opportunity.create({"Name": "Dark", "StageName": "Closed - Went Dark",
                                     "CloseDate": "2024-02-29"})
    lost = client.query("SELECT Id, ForecastCategoryName FROM Opportunity "
                        "WHERE IsClosed = true AND IsWon = false")["records"]
    assert [(r["Id"], r["ForecastCategoryName"]) for r in lost] == [(opp["id"], "Omitted")]
    stages = {f["name"]: f for f in client.Opportunity.describe()["fields"]}["StageName"]
    assert "Closed - Went Dark" in [p["value"] for p in stages["picklistValues"]]
