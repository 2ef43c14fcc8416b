"""The write log (`GET /__sandbox/writes`): every Task create, upsert and update request the
org served, per record, under its task key (External ID value, else the `[wb:<key>]` marker),
through the real simple-salesforce client; and fault rules that act on the next N requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import SfEnv

UPSERT = "composite/sobjects/Task/Winback_Key__c"


def _task(**fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Task"}, **fields}


def _send(client: Any, path: str, method: str, records: list[dict[str, Any]]) -> Any:
    return client.restful(path, method=method, json={"allOrNone": False, "records": records})


def _writes(sf: SfEnv) -> dict[str, dict[str, int]]:
    keys: dict[str, dict[str, int]] = sf.admin("GET", "writes")["keys"]
    return keys


def test_upserts_by_key_log_one_create_and_the_resends(sf: SfEnv, org: dict[str, str]) -> None:
    """An upsert of a new key is a create; the same keys again are re-sends (absorbed), a
    refused record with no task yet is refused; an update by id is an update."""
    client = sf.login()
    records = [_task(Winback_Key__c=f"k{i}", Subject=f"s{i}", WhatId=org["lost"])
               for i in range(2)]
    first = _send(client, UPSERT, "PATCH", records)
    _send(client, UPSERT, "PATCH", [*records, _task(Winback_Key__c="bad", OwnerId=org["gone"])])
    _send(client, "composite/sobjects", "PATCH",
          [_task(id=first[0]["id"], Status="Completed")])
    assert _writes(sf) == {
        "k0": {"created": 1, "resent": 1, "updated": 1, "refused": 0},
        "k1": {"created": 1, "resent": 1, "updated": 0, "refused": 0},
        "bad": {"created": 0, "resent": 0, "updated": 0, "refused": 1}}
    assert sf.admin("GET", "writes")["totals"] == {"created": 2, "resent": 2, "updated": 1,
                                                   "refused": 1}
    sf.admin("POST", "reset")
    assert _writes(sf) == {}


def test_marker_creates_of_one_key_are_two_creates(make_sf: Callable[..., SfEnv]) -> None:
    """Without the External ID field nothing stops a second create: the log shows the key
    created twice (the duplicate the harness counts). Untagged tasks are not logged."""
    sf = make_sf(task_external_id_field=None)
    org = sf.seed({"Account": [{"ref": "acme", "Name": "Acme"}],
                   "Opportunity": [{"ref": "lost", "Name": "Acme", "StageName": "Closed Lost",
                                    "CloseDate": "2024-05-01", "AccountId": "@acme"}]})
    client = sf.login()
    record = _task(Subject="Call Acme [wb:d1:s1]", WhatId=org["lost"])
    for _ in range(2):
        assert _send(client, "composite/sobjects", "POST", [record])[0]["success"]
    client.Task.create({"Subject": "no marker", "WhatId": org["lost"]})
    assert _writes(sf) == {"d1:s1": {"created": 2, "resent": 0, "updated": 0, "refused": 0}}


def test_a_fault_rule_with_a_count_acts_on_that_many_requests(sf: SfEnv) -> None:
    client = sf.login()
    sf.admin("POST", "faults", {"endpoint": "limits", "error_rate": 1.0, "error_status": 503,
                                "count": 1})
    answer = sf.raw("GET", "/services/data/v59.0/limits", client)
    assert answer.status_code == 503
    assert sf.raw("GET", "/services/data/v59.0/limits", client).status_code == 200
    assert sf.admin("GET", "faults") == {}
