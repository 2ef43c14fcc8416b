"""Injected faults, latency, the daily API budget, call counts and the violation bookkeeping,
each read the way the production connector will read it."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from simple_salesforce import SalesforceGeneralError, SalesforceRefusedRequest

from .conftest import USERNAME, SfEnv

Q = "SELECT Id FROM User"


def _fault(sf: SfEnv, **rule: Any) -> None:
    sf.admin("POST", "faults", rule)


def test_injected_503_uses_the_salesforce_error_body(sf: SfEnv) -> None:
    """503 SERVER_UNAVAILABLE as a JSON array; simple-salesforce raises SalesforceGeneralError."""
    client = sf.login()
    _fault(sf, endpoint="query", error_rate=1.0, error_status=503)
    with pytest.raises(SalesforceGeneralError) as info:
        client.query(Q)
    assert info.value.status == 503
    assert info.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert client.Task.create({})["success"] is True  # other endpoints are unaffected


def test_injected_500_is_unknown_exception(sf: SfEnv) -> None:
    """500 UNKNOWN_EXCEPTION on every endpoint when the rule is '*'."""
    client = sf.login()
    _fault(sf, endpoint="*", error_rate=1.0, error_status=500)
    with pytest.raises(SalesforceGeneralError) as info:
        client.Task.create({})
    assert info.value.status == 500
    assert info.value.content[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert sf.admin("GET", "tasks")["totalSize"] == 0


def test_rate_429_becomes_the_concurrent_request_403(sf: SfEnv) -> None:
    """Salesforce has no 429: the stand-in is 403 REQUEST_LIMIT_EXCEEDED (ConcurrentRequests)."""
    client = sf.login()
    _fault(sf, endpoint="query", rate_429=1.0)
    with pytest.raises(SalesforceRefusedRequest) as info:
        client.query(Q)
    assert info.value.status == 403
    error = info.value.content[0]
    assert error == {"message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                     "errorCode": "REQUEST_LIMIT_EXCEEDED"}


def test_faulted_login_answers_a_soap_fault(sf: SfEnv) -> None:
    """A 500 injected on the SOAP login comes back as a SOAP fault with an exceptionCode."""
    from simple_salesforce import SalesforceAuthenticationFailed

    _fault(sf, endpoint="soap_login", error_rate=1.0, error_status=500)
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        sf.login()
    assert info.value.code == "UNKNOWN_EXCEPTION"


def test_slow_response_passes_the_client_timeout(sf: SfEnv) -> None:
    """slow_rate makes the server sleep past a client read timeout."""
    client = sf.login()
    _fault(sf, endpoint="query", slow_rate=1.0, slow_seconds=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.query(Q, timeout=(2, 0.3))


def test_dropped_connection(sf: SfEnv) -> None:
    """drop_rate closes the connection without an answer."""
    client = sf.login()
    _fault(sf, endpoint="query", drop_rate=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.query(Q)
    sf.admin("POST", "faults", {"clear": True})
    assert client.query(Q)["totalSize"] >= 1


def test_latency_is_added_to_each_answer(sf: SfEnv) -> None:
    """POST /__sandbox/latency delays one endpoint only."""
    client = sf.login()
    sf.admin("POST", "latency", {"endpoint": "query", "ms": 250})
    start = time.monotonic()
    client.query(Q)
    assert time.monotonic() - start >= 0.25
    start = time.monotonic()
    client.limits()
    assert time.monotonic() - start < 0.25


def test_daily_budget_is_counted_and_enforced(sf: SfEnv) -> None:
    """Each REST call (pages, collections included) counts; a spent budget is 403
    REQUEST_LIMIT_EXCEEDED; logins are free."""
    client = sf.login()
    sf.admin("POST", "limits", {"daily_api_requests": 5, "used": 2})
    client.query(Q)
    assert client.api_usage["api-usage"].used == 3
    assert client.api_usage["api-usage"].total == 5
    limits = client.limits()
    assert limits["DailyApiRequests"] == {"Max": 5, "Remaining": 1}
    client.restful("composite/sobjects", method="POST",
                   json={"records": [{"attributes": {"type": "Task"}}] * 3})
    with pytest.raises(SalesforceRefusedRequest) as info:
        client.query(Q)
    assert info.value.status == 403
    assert info.value.content == [{"message": "TotalRequests Limit exceeded.",
                                   "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    other = sf.login()  # login does not count and still works
    raw = sf.raw("GET", "/services/data/v68.0/limits", other)
    assert raw.status_code == 403
    assert raw.headers["Sforce-Limit-Info"] == "api-usage=5/5"
    assert sf.admin("GET", "limits") == {"daily_api_requests": 5, "used": 5}


def test_every_page_counts_and_every_response_has_limit_info(sf: SfEnv) -> None:
    """query + 2 query_more pages = 3 calls; errors carry Sforce-Limit-Info too."""
    sf.admin("POST", "seed", {"generate": {"deals": 450, "seed": 2}})
    client = sf.login()
    sf.admin("POST", "limits", {"used": 0})
    rows = list(client.query_all_iter("SELECT Id FROM Opportunity",
                                      headers={"Sforce-Query-Options": "batchSize=200"}))
    assert len(rows) == 450
    assert sf.admin("GET", "limits")["used"] == 3
    bad = sf.raw("GET", "/services/data/v68.0/query", client, params={"q": "SELECT"})
    assert bad.status_code == 400 and bad.headers["Sforce-Limit-Info"] == "api-usage=4/100000"


def test_call_counts_per_endpoint_and_reset(sf: SfEnv) -> None:
    """/__sandbox/calls counts per endpoint (admin calls never); reset clears the counts."""
    client = sf.login()
    client.query(Q)
    client.query(Q)
    client.Task.create({})
    sf.admin("GET", "tasks")
    calls = sf.admin("GET", "calls")
    assert calls["calls"] == {"soap_login": 1, "query": 2, "sobject_create": 1}
    assert calls["total"] == 4
    sf.admin("POST", "calls/reset")
    assert sf.admin("GET", "calls") == {"calls": {}, "total": 0}
    client.Task.upsert("Winback_Key__c/k", {})
    assert sf.admin("GET", "calls")["calls"] == {"sobject_upsert": 1}


def test_retry_after_violation_is_recorded_per_login(make_sf: Any) -> None:
    """With retry_after_on_503, a call inside the Retry-After window shows up in violations."""
    env: SfEnv = make_sf(retry_after_on_503=2)
    client = env.login()
    env.admin("POST", "faults", {"endpoint": "query", "error_rate": 1.0, "error_status": 503})
    with pytest.raises(SalesforceGeneralError) as info:
        client.query(Q)
    assert info.value.status == 503
    env.admin("POST", "faults", {"clear": True})
    client.query(Q)  # far too early
    violations = env.admin("GET", "violations")["retry_after"]
    assert len(violations) == 1
    assert violations[0]["principal"] == USERNAME and violations[0]["endpoint"] == "query"


def test_overlapping_runs_of_one_login_are_reported(sf: SfEnv) -> None:
    """Two X-Winback-Run ids whose requests interleave for one login are flagged."""
    client = sf.login()
    client.query(Q, headers={"X-Winback-Run": "run-1"})
    client.query(Q, headers={"X-Winback-Run": "run-2"})
    client.query(Q, headers={"X-Winback-Run": "run-1"})
    overlaps = sf.admin("GET", "violations")["overlapping_runs"]
    assert overlaps == [{"principal": USERNAME, "runs": ["run-1", "run-2"]}]
    sf.admin("POST", "reset")
    assert sf.admin("GET", "violations") == {"retry_after": [], "overlapping_runs": []}


def test_reset_restores_a_clean_org(sf: SfEnv, org: dict[str, str]) -> None:
    """POST /__sandbox/reset drops data, sessions, limits usage, faults and the clock offset."""
    client = sf.login()
    sf.admin("POST", "clock", {"offset_seconds": 86400})
    _fault(sf, endpoint="query", error_rate=1.0)
    sf.admin("POST", "reset")
    assert sf.admin("GET", "faults") == {}
    assert sf.admin("GET", "clock")["offset_seconds"] == 0
    fresh = sf.login()
    assert fresh.query("SELECT Id FROM Opportunity")["totalSize"] == 0
    assert sf.admin("GET", "limits")["used"] == 1
    with pytest.raises(Exception, match=r"INVALID_SESSION_ID|Expired"):
        sf.direct(client.session_id).query(Q)
