"""The org's TaskStatus / TaskPriority values: standard ones served through SOQL and describe,
custom ones set through POST /__sandbox/picklists, and Task writes held to them (a value outside
the picklist is INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, "bad value for restricted picklist
field"; a Task without Status or Priority gets the default)."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.integration.salesforce_emulator.conftest import SfEnv

CUSTOM = {"TaskStatus": [{"value": "Open", "label": "Open (rep)", "default": True},
                         {"value": "Done", "closed": True}],
          "TaskPriority": [{"value": "P1", "high": True}, {"value": "P2", "default": True}]}


def picklist(described: dict[str, Any], name: str) -> list[tuple[str, bool]]:
    field = next(f for f in described["fields"] if f["name"] == name)
    return [(v["value"], v["defaultValue"]) for v in field["picklistValues"]]


def test_standard_values_are_queryable_and_described(sf: SfEnv) -> None:
    client = sf.login()
    rows = client.query("SELECT ApiName, MasterLabel, IsDefault, IsClosed, SortOrder "
                        "FROM TaskStatus ORDER BY SortOrder")["records"]
    assert [(r["ApiName"], r["IsDefault"], r["IsClosed"]) for r in rows] == [
        ("Not Started", True, False), ("In Progress", False, False), ("Completed", False, True),
        ("Waiting on someone else", False, False), ("Deferred", False, False)]
    high = client.query("SELECT ApiName FROM TaskPriority WHERE IsHighPriority = true")
    assert [r["ApiName"] for r in high["records"]] == ["High"]
    described = client.Task.describe()
    assert ("Not Started", True) in picklist(described, "Status")
    assert picklist(described, "Priority") == [("High", False), ("Normal", True), ("Low", False)]
    assert {f["name"] for f in client.TaskStatus.describe()["fields"]} >= {
        "ApiName", "MasterLabel", "IsDefault", "IsClosed", "SortOrder"}


def test_custom_values_replace_the_standard_ones(sf: SfEnv) -> None:
    """Describe and SOQL show them; a Task takes only them, and gets the defaults when it
    leaves Status and Priority out; IsClosed / IsHighPriority follow the value's flags."""
    assert sf.admin("POST", "picklists", CUSTOM) == {"TaskStatus": ["Open", "Done"],
                                                     "TaskPriority": ["P1", "P2"]}
    client = sf.login()
    described = client.Task.describe()
    assert picklist(described, "Status") == [("Open", True), ("Done", False)]
    assert picklist(described, "Priority") == [("P1", False), ("P2", True)]
    rows = client.query("SELECT ApiName, MasterLabel FROM TaskStatus")["records"]
    assert {(r["ApiName"], r["MasterLabel"]) for r in rows} == {("Open", "Open (rep)"),
                                                                ("Done", "Done")}
    plain = client.Task.create({"Subject": "defaults"})
    task = client.Task.get(plain["id"])
    assert (task["Status"], task["Priority"], task["IsClosed"]) == ("Open", "P2", False)
    client.Task.update(plain["id"], {"Status": "Done", "Priority": "P1"})
    task = client.Task.get(plain["id"])
    assert (task["IsClosed"], task["IsHighPriority"]) == (True, True)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        client.Task.create({"Subject": "standard", "Status": "Not Started"})
    error = refused.value.content[0]
    assert error["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error["message"] == "Status: bad value for restricted picklist field: Not Started"
    sf.admin("POST", "reset")
    assert client.Task.get(client.Task.create({"Subject": "again"})["id"])["Status"] == \
        "Not Started"  # a reset brings the standard values back


@pytest.mark.parametrize("body", [
    {}, {"Nope": [{"value": "x", "default": True}]}, {"TaskStatus": []},
    {"TaskStatus": [{"value": "A"}, {"value": "B"}]},  # no default
    {"TaskPriority": [{"value": "A", "default": True}, {"value": "B", "default": True}]},
    {"TaskStatus": [{"label": "no value", "default": True}]},
    {"TaskStatus": [{"value": "Open", "default": True}, {"value": "Done", "closed": True}],
     "TaskPriority": "P1"},  # the good list is not applied either
])
def test_bad_picklist_bodies_are_refused_and_change_nothing(sf: SfEnv, body: Any) -> None:
    answer = sf.admin("POST", "picklists", body, expect=400)
    assert answer["message"]
    rows = sf.login().query("SELECT ApiName FROM TaskStatus")["records"]
    assert len(rows) == 5
