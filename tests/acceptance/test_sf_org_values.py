"""Issue 10's Salesforce scenarios replayed against the sandbox: an org with its own task statuses
and priorities gets tasks with its values (and closed with its closed status) through the whole
worker; a misspelt Salesforce deal field fails `winback doctor` with the fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import Year
from tests.acceptance.test_doctor import doctor, failing
from tests.reliability.harness import Stack

CUSTOM = {
    "TaskStatus": [{"value": "Open", "default": True}, {"value": "Working"},
                   {"value": "Done", "closed": True}, {"value": "Dropped", "closed": True}],
    "TaskPriority": [{"value": "Urgent", "high": True}, {"value": "Routine", "default": True},
                     {"value": "Someday"}],
}


@pytest.fixture
def year(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Year]:
    y = Year(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", monkeypatch)
    yield y
    y.close()


def test_an_org_with_custom_task_statuses_gets_tasks_with_its_own_values(year: Year) -> None:
    year.box.admin("salesforce", "POST", "picklists", CUSTOM)
    year.tick()
    tasks = year.tasks("salesforce")
    assert tasks
    assert {t["Status"] for t in tasks} == {"Open"}
    assert {t["Priority"] for t in tasks} <= {"Urgent", "Routine", "Someday"}
    lost = next(r for r in year.box.admin("salesforce", "GET", "records/Opportunity")["records"]
                if r.get("StageName") == "Closed Lost"
                and any(t["WhatId"] == r["Id"] for t in tasks))
    year.box.admin("salesforce", "PATCH", f"records/Opportunity/{lost['Id']}",
                   {"StageName": "Negotiation/Review"})  # reopened: its open tasks are closed
    year.advance(hours=1)
    year.tick()
    mine = [t for t in year.tasks("salesforce") if t["WhatId"] == lost["Id"]]
    assert any(t["Status"] == "Done" and t["IsClosed"] for t in mine)
    assert {t["Status"] for t in mine} <= {"Open", "Done"}


def test_a_misspelt_salesforce_deal_field_fails_doctor_with_the_fix(tmp_path: Path) -> None:
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(deals=5)
    try:
        s.config_path.write_text(s.config_path.read_text().replace(
            "loss_reason: Loss_Reason__c", "loss_reason: Loss_Reasn__c"))
        code, report, _ = doctor(s)
    finally:
        s.stop()
    assert code == 1
    bad = failing(report)
    assert list(bad) == ["sf0: deal field Loss_Reasn__c"]
    check = bad["sf0: deal field Loss_Reasn__c"]
    assert check["detail"] == ("no field Loss_Reasn__c on Opportunity (fields.loss_reason); "
                               "did you mean Loss_Reason__c?")
    assert check["fix"].startswith("set fields.loss_reason: Loss_Reason__c")
