"""sObject Collections through `sf.restful(...)`: batches of up to 200, allOrNone, per-record
results in request order with `statusCode` errors and HTTP 200."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import SalesforceMalformedRequest

from .conftest import SfEnv

ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


def _task(**fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Task"}, **fields}


def _create(client: Any, records: list[dict[str, Any]], all_or_none: bool = False) -> Any:
    return client.restful("composite/sobjects", method="POST",
                          json={"allOrNone": all_or_none, "records": records})


def _task_count(sf: SfEnv) -> int:
    count: int = sf.admin("GET", "tasks")["totalSize"]
    return count


def test_create_200_tasks_in_one_call(sf: SfEnv, org: dict[str, str]) -> None:
    """200 records: one API call, one success result per record in order."""
    client = sf.login()
    sf.admin("POST", "calls/reset")
    used = client.limits()["DailyApiRequests"]
    results = _create(client, [_task(Subject=f"t{i}", WhatId=org["lost"], WhoId=org["c1"])
                               for i in range(200)])
    assert len(results) == 200 and all(r["success"] for r in results)
    assert all(r["errors"] == [] and r["id"].startswith("00T") for r in results)
    subjects = {t["Id"]: t["Subject"] for t in sf.admin("GET", "tasks")["records"]}
    assert [subjects[r["id"]] for r in results] == [f"t{i}" for i in range(200)]
    after = client.limits()["DailyApiRequests"]
    assert used["Remaining"] - after["Remaining"] == 2  # the collections call and this one
    assert sf.admin("GET", "calls")["calls"]["collections_create"] == 1


def test_more_than_200_records_is_refused(sf: SfEnv) -> None:
    """201 records is a 400 for the whole request; nothing is written."""
    client = sf.login()
    with pytest.raises(SalesforceMalformedRequest) as info:
        _create(client, [_task(Subject="x") for _ in range(201)])
    assert info.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    with pytest.raises(SalesforceMalformedRequest):
        client.restful("composite/sobjects", method="DELETE",
                       params={"ids": ",".join(["00TWb0000000001AAA"] * 201)})
    assert _task_count(sf) == 0


def test_per_record_errors_keep_request_order(sf: SfEnv, org: dict[str, str]) -> None:
    """Inactive owner, bad WhoId and deleted WhatId fail alone; the rest are written."""
    client = sf.login()
    client.Opportunity.delete(org["won"])
    results = _create(client, [
        _task(Subject="ok 1", WhatId=org["lost"]),
        _task(Subject="inactive", OwnerId=org["gone"]),
        _task(Subject="bad who", WhoId=org["acme"]),
        _task(Subject="deleted what", WhatId=org["won"]),
        _task(Subject="ok 2"),
    ])
    assert [r["success"] for r in results] == [True, False, False, False, True]
    codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
    assert codes == [None, "INACTIVE_OWNER_OR_USER", "FIELD_INTEGRITY_EXCEPTION",
                     "ENTITY_IS_DELETED", None]
    assert results[2]["errors"][0]["fields"] == ["WhoId"]
    assert "errorCode" not in results[1]["errors"][0]
    assert "id" not in results[1]
    assert _task_count(sf) == 2


def test_all_or_none_rolls_everything_back(sf: SfEnv, org: dict[str, str]) -> None:
    """With allOrNone one bad record fails the batch; the good ones report the rollback."""
    client = sf.login()
    results = _create(client, [_task(Subject="a"), _task(Subject="b", OwnerId=org["gone"]),
                               _task(Subject="c")], all_or_none=True)
    assert [r["success"] for r in results] == [False, False, False]
    assert [r["errors"][0]["statusCode"] for r in results] == [
        ROLLED_BACK, "INACTIVE_OWNER_OR_USER", ROLLED_BACK]
    assert results[0]["errors"][0]["message"].startswith("Record rolled back because")
    assert _task_count(sf) == 0
    ok = _create(client, [_task(Subject="a"), _task(Subject="c")], all_or_none=True)
    assert all(r["success"] for r in ok) and _task_count(sf) == 2


def test_all_or_none_update_restores_previous_values(sf: SfEnv) -> None:
    """A rolled-back update leaves the records exactly as before."""
    client = sf.login()
    ids = [r["id"] for r in _create(client, [_task(Subject="one"), _task(Subject="two")])]
    results = client.restful("composite/sobjects", method="PATCH", json={
        "allOrNone": True, "records": [
            {"attributes": {"type": "Task"}, "id": ids[0], "Subject": "changed"},
            {"attributes": {"type": "Task"}, "id": ids[1], "Subject": "x" * 300}]})
    assert [r["errors"][0]["statusCode"] for r in results] == [ROLLED_BACK, "STRING_TOO_LONG"]
    assert results[0]["id"] == ids[0]
    assert client.Task.get(ids[0])["Subject"] == "one"


def test_collections_update_and_delete(sf: SfEnv) -> None:
    """PATCH updates by id; DELETE ?ids= soft-deletes and reports unknown ids per record."""
    client = sf.login()
    ids = [r["id"] for r in _create(client, [_task(Subject="one"), _task(Subject="two")])]
    updated = client.restful("composite/sobjects", method="PATCH", json={
        "records": [{"attributes": {"type": "Task"}, "id": ids[0], "Status": "Completed"},
                    {"attributes": {"type": "Task"}, "Subject": "no id"}]})
    assert updated[0] == {"id": ids[0], "success": True, "errors": []}
    assert updated[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert client.Task.get(ids[0])["IsClosed"] is True
    missing = "00TWb000000zzzzAAA"
    deleted = client.restful("composite/sobjects", method="DELETE",
                             params={"ids": ",".join([*ids, missing]), "allOrNone": "false"})
    assert [d["success"] for d in deleted] == [True, True, False]
    assert deleted[2]["id"] == missing
    assert deleted[2]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    again = client.restful("composite/sobjects", method="DELETE", params={"ids": ids[0]})
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    tasks = sf.admin("GET", "tasks")["records"]
    assert all(t["IsDeleted"] for t in tasks) and len(tasks) == 2


def test_collections_upsert_reports_created(sf: SfEnv, org: dict[str, str]) -> None:
    """PATCH /composite/sobjects/Task/Winback_Key__c: created true, then false."""
    client = sf.login()
    records = [_task(Winback_Key__c=f"k{i}", Subject=f"s{i}", WhatId=org["lost"])
               for i in range(3)]
    first = client.restful("composite/sobjects/Task/Winback_Key__c", method="PATCH",
                           json={"allOrNone": False, "records": records})
    assert [r["created"] for r in first] == [True, True, True]
    records[0]["Subject"] = "changed"
    records.append(_task(Winback_Key__c="k9", OwnerId=org["gone"]))
    second = client.restful("composite/sobjects/Task/Winback_Key__c", method="PATCH",
                            json={"allOrNone": False, "records": records})
    assert [r.get("created") for r in second] == [False, False, False, None]
    assert [r["id"] for r in second[:3]] == [r["id"] for r in first]
    assert second[3]["errors"][0]["statusCode"] == "INACTIVE_OWNER_OR_USER"
    assert client.Task.get(first[0]["id"])["Subject"] == "changed"
    with pytest.raises(SalesforceMalformedRequest) as info:
        client.restful("composite/sobjects/Task/Subject", method="PATCH",
                       json={"records": records})
    assert info.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_collections_retrieve(sf: SfEnv) -> None:
    """GET /composite/sobjects/Task?ids=&fields= returns records or null, in order."""
    client = sf.login()
    ids = [r["id"] for r in _create(client, [_task(Subject="one")])]
    got = client.restful("composite/sobjects/Task", params={
        "ids": f"{ids[0]},00TWb000000zzzzAAA", "fields": "Subject,Status"})
    assert got[0]["Subject"] == "one" and got[0]["Status"] == "Not Started"
    assert set(got[0]) == {"attributes", "Id", "Subject", "Status"}
    assert got[1] is None


def test_lock_contention_inside_a_batch(sf: SfEnv, org: dict[str, str]) -> None:
    """An injected row lock fails only the records touching the locked parent."""
    client = sf.login()
    sf.admin("POST", "locks", {"ids": [org["lost"]]})
    results = _create(client, [_task(WhatId=org["lost"]), _task(WhatId=org["open"])])
    assert results[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert results[1]["success"] is True


def test_concurrent_batches_from_many_threads_all_land(sf: SfEnv, org: dict[str, str]) -> None:
    """Handlers run on many threads: parallel batches and queries lose or duplicate nothing."""
    from concurrent.futures import ThreadPoolExecutor

    clients = [sf.login() for _ in range(4)]

    def work(n: int) -> list[str]:
        client = clients[n % len(clients)]
        ids = []
        for batch in range(5):
            results = _create(client, [_task(Subject=f"w{n}-{batch}-{i}", WhatId=org["lost"],
                                             Winback_Key__c=f"w{n}-{batch}-{i}")
                                       for i in range(40)])
            ids += [r["id"] for r in results if r["success"]]
            client.query("SELECT Id FROM Task WHERE WhatId = "
                         f"'{org['lost']}' ORDER BY CreatedDate DESC LIMIT 5")
        return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        made = [i for ids in pool.map(work, range(8)) for i in ids]
    assert len(made) == len(set(made)) == 8 * 5 * 40
    assert _task_count(sf) == 1600
    count = clients[0].query(f"SELECT COUNT() FROM Task WHERE WhatId = '{org['lost']}'")
    assert count["totalSize"] == 1600


def test_collections_retrieve_with_a_request_body(sf: SfEnv) -> None:
    """POST /composite/sobjects/Task {"ids", "fields"} answers like the GET form (records or
    null, in order) for up to 2,000 ids; more is EXCEEDED_ID_LIMIT; a bad field INVALID_FIELD."""
    client = sf.login()
    ids = [r["id"] for r in _create(client, [_task(Subject="one"), _task(Subject="two")])]
    missing = "00TWb000000zzzzAAA"
    got = client.restful("composite/sobjects/Task", method="POST", json={
        "ids": [ids[1], missing, ids[0]], "fields": ["Subject", "Status"]})
    assert [r and r["Subject"] for r in got] == ["two", None, "one"]
    assert set(got[0]) == {"attributes", "Id", "Subject", "Status"}
    many = client.restful("composite/sobjects/Task", method="POST", json={
        "ids": [ids[0]] + [missing] * 1999, "fields": ["Subject"]})
    assert len(many) == 2000 and many[0]["Subject"] == "one"
    with pytest.raises(SalesforceMalformedRequest) as info:
        client.restful("composite/sobjects/Task", method="POST", json={
            "ids": [missing] * 2001, "fields": ["Subject"]})
    assert info.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    with pytest.raises(SalesforceMalformedRequest) as info:
        client.restful("composite/sobjects/Task", method="POST", json={
            "ids": ids, "fields": ["Nope"]})
    assert info.value.content[0]["errorCode"] == "INVALID_FIELD"
