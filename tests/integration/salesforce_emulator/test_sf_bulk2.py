"""The emulator's Bulk API 2.0 query jobs, driven by simple-salesforce's own `sf.bulk2` over
HTTPS: create, poll, CSV result pages linked by Sforce-Locator, failed and refused jobs."""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import SFBulk2Handler, SFBulk2Type
from simple_salesforce.exceptions import SalesforceOperationError, SalesforceRefusedRequest

from .conftest import USERNAME, SfEnv

SOQL = ("SELECT Id, Name, Amount, CloseDate, IsClosed, IsWon, IsDeleted, Owner.Email, "
        "SystemModstamp FROM Opportunity ORDER BY SystemModstamp ASC, Id ASC")


def rows(page: str | int) -> list[dict[str, str]]:
    assert isinstance(page, str)  # the SDK's generator is typed str | int; pages are str
    return list(csv.DictReader(io.StringIO(page)))


def client(sf: SfEnv) -> Salesforce:
    return sf.login(version="64.0")


def opps(sdk: Salesforce) -> SFBulk2Type:
    """`sdk.bulk2.Opportunity`, typed (`Salesforce.__getattr__` is a union)."""
    handler = sdk.bulk2
    assert isinstance(handler, SFBulk2Handler)
    return handler.Opportunity


def test_sdk_query_reads_every_row_in_pages_linked_by_locator(sf: SfEnv,
                                                              org: dict[str, str]) -> None:
    sf.admin("POST", "seed", {"generate": {"deals": 25, "seed": 3}})
    sf.admin("POST", "calls/reset")
    pages = list(opps(client(sf)).query(SOQL, max_records=10, wait=0))
    got = [r for page in pages for r in rows(page)]
    rest = client(sf).query_all(SOQL)["records"]
    assert [r["Id"] for r in got] == [r["Id"] for r in rest]  # same rows, same order
    assert len(pages) == -(-len(rest) // 10)
    calls = sf.admin("GET", "calls")["calls"]
    assert calls["bulk2_create"] == 1 and calls["bulk2_job"] == 1
    assert calls["bulk2_results"] == len(pages)


def test_csv_values_nulls_booleans_dates_and_parent_fields(sf: SfEnv,
                                                           org: dict[str, str]) -> None:
    sdk = client(sf)
    page = next(iter(opps(sdk).query(SOQL, wait=0)))
    assert isinstance(page, str)
    header = page.splitlines()[0]
    assert header == ('"Id","Name","Amount","CloseDate","IsClosed","IsWon","IsDeleted",'
                      '"Owner.Email","SystemModstamp"')
    by_id = {r["Id"]: r for r in rows(page)}
    lost = by_id[org["lost"]]
    assert lost["Amount"] in ("12000", "12000.0") and lost["CloseDate"] == "2024-05-31"
    assert (lost["IsClosed"], lost["IsWon"], lost["IsDeleted"]) == ("true", "false", "false")
    assert lost["Owner.Email"] == "ada@seller.example"
    assert lost["SystemModstamp"].endswith("Z") and len(lost["SystemModstamp"]) == 24
    assert by_id[org["lost_gone"]]["Amount"] == ""  # null: an empty value


def test_query_all_returns_deleted_rows_query_does_not(sf: SfEnv, org: dict[str, str]) -> None:
    sf.admin("DELETE", f"records/Opportunity/{org['open']}")
    sdk = client(sf)
    live = [r["Id"] for p in opps(sdk).query(SOQL, wait=0) for r in rows(p)]
    every = {r["Id"]: r for p in opps(sdk).query_all(SOQL, wait=0)
             for r in rows(p)}
    assert org["open"] not in live and every[org["open"]]["IsDeleted"] == "true"


def test_job_reports_in_progress_until_done(sf: SfEnv, org: dict[str, str]) -> None:
    sf.admin("POST", "options", {"bulk_job_polls": 2})
    sdk = client(sf)
    job = sf.raw("POST", "/services/data/v64.0/jobs/query", sdk,
                 json={"operation": "query", "query": "SELECT Id FROM Opportunity"}).json()
    assert job["state"] == "UploadComplete" and job["id"].startswith("750")
    states = [sf.raw("GET", f"/services/data/v64.0/jobs/query/{job['id']}", sdk).json()["state"]
              for _ in range(3)]
    assert states == ["InProgress", "InProgress", "JobComplete"]
    early = sf.raw("POST", "/services/data/v64.0/jobs/query", sdk,
                   json={"operation": "query", "query": "SELECT Id FROM Opportunity"}).json()
    not_done = sf.raw("GET", f"/services/data/v64.0/jobs/query/{early['id']}/results", sdk)
    assert not_done.status_code == 400
    other_version = sf.raw("GET", f"/services/data/v63.0/jobs/query/{job['id']}/results", sdk)
    assert other_version.status_code == 409
    done = sf.raw("GET", f"/services/data/v64.0/jobs/query/{job['id']}/results", sdk)
    assert done.headers["Sforce-Locator"] == "null"
    assert int(done.headers["Sforce-NumberOfRecords"]) == 4


def test_failed_job_raises_in_the_sdk_not_an_empty_result(sf: SfEnv, org: dict[str, str]
                                                          ) -> None:
    sf.admin("POST", "bulk", {"fail_next": 1, "error": "QUERY_TIMEOUT: too long"})
    with pytest.raises(SalesforceOperationError, match="QUERY_TIMEOUT"):
        list(opps(client(sf)).query(SOQL, wait=0))
    assert sf.admin("GET", "bulk")["states"] == {"Failed": 1}


def test_a_user_without_bulk_permission_is_refused(sf: SfEnv, org: dict[str, str]) -> None:
    sf.admin("POST", "bulk", {"deny": [USERNAME]})
    sdk = client(sf)
    with pytest.raises(SalesforceRefusedRequest) as refused:
        list(opps(sdk).query(SOQL, wait=0))
    assert refused.value.status == 403
    assert refused.value.content[0]["errorCode"] == "API_DISABLED_FOR_ORG"
    assert sdk.query("SELECT Id FROM Opportunity")["totalSize"] == 4  # REST still works
    sf.admin("POST", "bulk", {"allow": [USERNAME]})
    assert list(opps(sdk).query(SOQL, wait=0))


def test_unsupported_queries_and_foreign_jobs_are_refused(sf: SfEnv, org: dict[str, str]
                                                          ) -> None:
    sdk = client(sf)
    for soql in ("SELECT COUNT() FROM Opportunity",
                 "SELECT Id, (SELECT Id FROM OpportunityContactRoles) FROM Opportunity"):
        answer = sf.raw("POST", "/services/data/v64.0/jobs/query", sdk,
                        json={"operation": "query", "query": soql})
        assert answer.status_code == 400, soql
    bad_field = sf.raw("POST", "/services/data/v64.0/jobs/query", sdk,
                       json={"operation": "query", "query": "SELECT Nope__c FROM Opportunity"})
    assert bad_field.status_code == 400 and bad_field.json()[0]["errorCode"] == "INVALID_FIELD"
    job = sf.raw("POST", "/services/data/v64.0/jobs/query", sdk,
                 json={"operation": "query", "query": "SELECT Id FROM Opportunity"}).json()
    sf.admin("POST", "users", {"username": "other@sandbox.example", "password": "pw"})
    other = sf.login(username="other@sandbox.example", password="pw", token="")
    foreign = sf.raw("GET", f"/services/data/v64.0/jobs/query/{job['id']}", other)
    assert foreign.status_code == 404
    aborted = sf.raw("PATCH", f"/services/data/v64.0/jobs/query/{job['id']}", sdk,
                     json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"


def test_a_locator_reads_its_set_again_until_the_job_is_deleted(sf: SfEnv,
                                                                org: dict[str, str]) -> None:
    """Salesforce ("Get Results for a Query Job"): a set's locator does not change while the
    job exists and may be read again; a deleted job's results are not found (404)."""
    sdk = client(sf)
    base = "/services/data/v64.0/jobs/query"
    job = sf.raw("POST", base, sdk, json={"operation": "query", "query": SOQL}).json()
    sf.raw("GET", f"{base}/{job['id']}", sdk)
    first = sf.raw("GET", f"{base}/{job['id']}/results?maxRecords=2", sdk)
    locator = first.headers["Sforce-Locator"]
    again = [sf.raw("GET", f"{base}/{job['id']}/results?maxRecords=2&locator={locator}", sdk)
             for _ in range(2)]
    assert again[0].status_code == 200 and again[0].content == again[1].content
    assert rows(again[0].text) and rows(again[0].text) != rows(first.text)
    bad = sf.raw("GET", f"{base}/{job['id']}/results?locator=bm90LWEtbG9jYXRvcg", sdk)
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert sf.raw("DELETE", f"{base}/{job['id']}", sdk).status_code == 204
    gone = sf.raw("GET", f"{base}/{job['id']}/results?locator={locator}", sdk)
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "NOT_FOUND"
