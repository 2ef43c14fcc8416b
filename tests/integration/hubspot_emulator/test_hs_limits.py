"""Rate limits: burst (10 s rolling), search (per second, own bucket), daily; headers and
429 bodies as the SDK surfaces them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hubspot.crm.deals import ApiException, PublicObjectSearchRequest

from .conftest import HS, TOKEN, body_of


def _search(hs: HS, token: str = TOKEN) -> Any:
    return hs.client(token).crm.deals.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(limit=1))


def test_burst_limit_headers_and_429_body(hs: HS) -> None:
    hs.admin("POST", "limits", {"burst": 3, "burst_window_seconds": 2.0})
    api = hs.client().crm.deals.basic_api
    remaining = []
    for _ in range(3):
        _, status, headers = api.get_page_with_http_info()
        assert status == 200
        assert headers["X-HubSpot-RateLimit-Max"] == "3"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "2000"
        assert int(headers["X-HubSpot-RateLimit-Daily"]) > 0
        remaining.append(int(headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    with pytest.raises(ApiException) as info:
        api.get_page()
    assert info.value.status == 429
    body = body_of(info.value)
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["status"] == "error" and body["correlationId"] and body["groupName"]
    assert "category" not in body
    assert "Retry-After" not in info.value.headers  # HubSpot documents none by default
    _search(hs)  # search is exempt from the burst limit
    hs.client("pat-another-app").crm.deals.basic_api.get_page()  # per principal
    time.sleep(2.05)
    api.get_page()  # the window rolled on


def test_search_limit_has_its_own_bucket(hs: HS) -> None:
    hs.admin("POST", "limits", {"search_per_second": 2, "burst": 1})
    _search(hs)
    _search(hs)
    with pytest.raises(ApiException) as info:
        _search(hs)
    assert info.value.status == 429
    assert body_of(info.value)["policyName"] == "SECONDLY"
    assert "X-HubSpot-RateLimit-Max" not in info.value.headers
    hs.client().crm.deals.basic_api.get_page()  # the burst bucket is separate
    time.sleep(1.05)
    _search(hs)


def test_daily_limit_and_reset_at_midnight(hs: HS) -> None:
    hs.admin("POST", "limits", {"daily": 2})
    api = hs.client().crm.deals.basic_api
    _, _, headers = api.get_page_with_http_info()
    assert headers["X-HubSpot-RateLimit-Daily"] == "2"
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
    api.get_page()
    with pytest.raises(ApiException) as info:
        api.get_page()
    assert body_of(info.value)["policyName"] == "DAILY"
    with pytest.raises(ApiException):
        _search(hs)  # search counts against the day as well
    hs.admin("POST", "clock", {"advance_seconds": 86400})
    api.get_page()


def test_configured_retry_after_and_early_return_violation(hs: HS) -> None:
    hs.admin("POST", "limits", {"burst": 1, "retry_after": 2})
    api = hs.client().crm.owners.owners_api
    api.get_page()
    with pytest.raises(Exception) as info:
        api.get_page()
    assert info.value.status == 429  # type: ignore[attr-defined]
    assert info.value.headers["Retry-After"] == "2"  # type: ignore[attr-defined]
    hs.admin("POST", "limits", {"burst": 1000})
    api.get_page()  # back well before the 2 s were up
    violations = hs.admin("GET", "violations")["retry_after"]
    assert violations and violations[0]["principal"] == TOKEN
    assert violations[0]["endpoint"] == "owners.list"


def test_limits_are_admin_free_and_admin_calls_are_not_counted(hs: HS) -> None:
    hs.admin("POST", "limits", {"burst": 1})
    for _ in range(5):
        hs.admin("GET", "tasks")
    hs.client().crm.deals.basic_api.get_page()
    assert hs.calls() == {"deals.list": 1}
    limits = hs.admin("GET", "limits")
    assert limits["burst"] == 1 and limits["retry_after"] is None
    hs.admin("POST", "limits", {"bogus": 1}, status=400)
