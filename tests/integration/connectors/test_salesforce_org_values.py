"""The org's own Task Status / Priority values and the set-up checks of deal fields, Task fields
and picklists: the real simple-salesforce against the Salesforce emulator, whose TaskStatus and
TaskPriority are given custom values through /__sandbox/picklists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import FieldMap, SetupCheck
from connectors.models import Priority
from tests.integration.connectors.salesforce_backend import SalesforceBackend, start_backend
from tests.integration.connectors.test_salesforce_adapter import drafts, raw_tasks, world

CUSTOM = {
    "TaskStatus": [{"value": "Queued", "sort_order": 1},
                   {"value": "Open", "label": "Open (rep)", "default": True, "sort_order": 2},
                   {"value": "Done", "closed": True, "sort_order": 3},
                   {"value": "Cancelled", "closed": True, "sort_order": 4}],
    "TaskPriority": [{"value": "P1", "high": True}, {"value": "P2", "high": True},
                     {"value": "P3", "default": True}, {"value": "P4"}],
}


@pytest.fixture(scope="module")
def sf() -> Iterator[SalesforceBackend]:
    backend, stop = start_backend()
    yield backend
    stop()


def custom_org(sf: SalesforceBackend) -> Any:
    data, ids = world(sf)  # resets the org: standard values again
    sf.admin("POST", "picklists", CUSTOM)
    return data, ids


def checks(report: Any) -> dict[str, SetupCheck]:
    return {c.name: c for c in report.checks}


def test_an_org_with_custom_statuses_gets_tasks_with_its_own_values(
        sf: SalesforceBackend) -> None:
    """Created with the org's default open status and its priorities (high -> the first high
    one, normal -> the default, low -> the last after it), closed with its closed status; the
    emulator refuses the standard values in such an org, as Salesforce does."""
    data, ids = custom_org(sf)
    connector = sf.connector()
    report = connector.ensure_setup(create=False)
    assert report.ok, [c for c in report.checks if not c.ok]
    batch = drafts(data, ids, 6)
    results = connector.write_tasks(batch)
    assert all(r.ok for r in results), results
    by_key = {t["Winback_Key__c"]: t for t in raw_tasks(sf)}
    expected = {Priority.HIGH: "P1", Priority.NORMAL: "P3", Priority.LOW: "P4"}
    for draft in batch:
        task = by_key[draft.key]
        assert (task["Status"], task["IsClosed"]) == ("Open", False)
        assert task["Priority"] == expected[draft.priority]
        assert task["IsHighPriority"] == (draft.priority is Priority.HIGH)
    closed = connector.close_tasks([str(results[0].crm_id)])
    assert closed[0].ok, closed
    task = next(t for t in raw_tasks(sf) if t["Id"] == results[0].crm_id)
    assert (task["Status"], task["IsClosed"]) == ("Done", True)
    assert "new tasks 'Open', closed with 'Done'" in checks(report)["task picklists"].detail


def test_the_emulator_refuses_a_status_the_org_does_not_have(sf: SalesforceBackend) -> None:
    """What a connector with fixed strings met: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST."""
    _, ids = custom_org(sf)
    sf_client = sf.connector()._client.sf()
    answer = sf_client.restful("composite/sobjects", method="POST", json={
        "allOrNone": False, "records": [{"attributes": {"type": "Task"}, "Subject": "x",
                                         "Status": "Not Started", "WhatId": ids.deals[0]}]})
    error = answer[0]["errors"][0]
    assert error["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error["message"] == "Status: bad value for restricted picklist field: Not Started"


def test_the_org_values_are_read_once_per_connector(sf: SalesforceBackend) -> None:
    """Two queries (TaskStatus, TaskPriority) the first time tasks are written, none after."""
    data, ids = world(sf)
    connector = sf.connector()
    connector.owners()  # logged in
    sf.reset_calls()
    connector.write_tasks(drafts(data, ids, 3))
    connector.write_tasks(drafts(data, ids, 3))
    connector.close_tasks([t.crm_id for t in sf.tasks()][:2])
    assert sf.calls() == {"sobject_describe": 1, "query": 2, "collections_upsert": 2,
                          "collections_update": 1}


def test_a_misspelt_deal_field_fails_setup_with_the_fix(sf: SalesforceBackend) -> None:
    """Loss_Reasn__c: no such field on Opportunity, named with its config path and the right
    spelling; a text field configured as contract_end fails its type."""
    world(sf)
    connector = sf.connector(fields=FieldMap(loss_reason="Loss_Reasn__c",
                                               competitor="Competitor__c",
                                               contract_end="Competitor__c"))
    found = checks(connector.ensure_setup(create=False))
    bad = found["deal field Loss_Reasn__c"]
    assert not bad.ok
    assert bad.detail == ("no field Loss_Reasn__c on Opportunity (fields.loss_reason); "
                          "did you mean Loss_Reason__c?")
    assert bad.fix.startswith("set fields.loss_reason: Loss_Reason__c")
    assert "read access to Loss_Reasn__c" in bad.fix
    typed = found["deal field Competitor__c"]
    assert not typed.ok and "fields.contract_end" in typed.detail and "a date" in typed.fix
    good = sf.connector().ensure_setup(create=False)
    assert good.ok and checks(good)["deal field Loss_Reason__c"].ok


def test_picklist_values_winback_cannot_send_fail_setup(sf: SalesforceBackend) -> None:
    """An org whose statuses are all open (nothing to close with): the task picklists check
    fails with its fix, and closing a task fails alone, saying why."""
    data, ids = world(sf)
    sf.admin("POST", "picklists", {"TaskStatus": [{"value": "Open", "default": True},
                                                  {"value": "Waiting"}]})
    connector = sf.connector()
    report = connector.ensure_setup(create=False)
    picklists = checks(report)["task picklists"]
    assert not report.ok and not picklists.ok
    assert "no closed Task status" in picklists.detail and "closed value" in picklists.fix
    written = connector.write_tasks(drafts(data, ids, 1))
    assert written[0].ok
    closed = connector.close_tasks([str(written[0].crm_id)])
    assert closed[0].error_code == "NO_CLOSED_STATUS" and "add one" in str(closed[0].message)


def test_an_unwritable_task_field_fails_setup(sf: SalesforceBackend) -> None:
    """The Task fields check names a field winback writes that the org does not show."""
    from connectors.salesforce.setup import task_field_check

    world(sf)
    described = sf.connector()._describe("Task")
    assert task_field_check(described, "Winback_Key__c").ok
    del described["reminderdatetime"]
    described["subject"] = {**described["subject"], "updateable": False}
    check = task_field_check(described, "Winback_Key__c")
    assert not check.ok
    assert "not visible: ReminderDateTime" in check.detail
    assert "not updateable: Subject" in check.detail
    assert "edit access to ReminderDateTime, Subject" in check.fix
