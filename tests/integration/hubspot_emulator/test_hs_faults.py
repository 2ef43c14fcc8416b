"""Injected faults, latency, call counts, search lag and the admin data API."""

from __future__ import annotations

import time

import pytest
import urllib3
from hubspot.crm.deals import ApiException, PublicObjectSearchRequest
from hubspot.crm.deals.exceptions import ServiceException
from hubspot.crm.objects.tasks import PublicObjectSearchRequest as TaskSearch

from .conftest import HS, LOST_STAGES, TOKEN, body_of


def test_injected_5xx_is_a_service_exception(seeded: HS) -> None:
    seeded.admin("POST", "faults", {"endpoint": "deals.search", "error_rate": 1.0,
                                    "error_status": 503})
    with pytest.raises(ServiceException) as info:
        seeded.client().crm.deals.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(limit=1))
    assert info.value.status == 503
    assert body_of(info.value)["status"] == "error"
    seeded.client().crm.deals.basic_api.get_page()  # other endpoints are unaffected


def test_injected_429_with_retry_after_and_violation(seeded: HS) -> None:
    seeded.admin("POST", "faults", {"endpoint": "owners.list", "rate_429": 1.0,
                                    "retry_after": 3})
    api = seeded.client().crm.owners.owners_api
    with pytest.raises(Exception) as info:
        api.get_page()
    err = info.value
    assert err.status == 429 and err.headers["Retry-After"] == "3"  # type: ignore[attr-defined]
    assert body_of(err)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body_of(err)["errorType"] == "RATE_LIMIT"
    seeded.admin("POST", "faults", {"clear": True})
    api.get_page()  # came back at once instead of after 3 s
    violations = seeded.admin("GET", "violations")["retry_after"]
    assert [v["principal"] for v in violations] == [TOKEN]


def test_slow_response_passes_the_client_timeout(seeded: HS) -> None:
    seeded.admin("POST", "faults", {"endpoint": "deals.search", "slow_rate": 1.0,
                                    "slow_seconds": 1.0})
    started = time.monotonic()
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)):
        seeded.client().crm.deals.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(limit=1),
            _request_timeout=(2, 0.3))
    assert time.monotonic() - started < 0.9


def test_dropped_connection(seeded: HS) -> None:
    seeded.admin("POST", "faults", {"endpoint": "deals.list", "drop_rate": 1.0})
    with pytest.raises((urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError)):
        seeded.client().crm.deals.basic_api.get_page()
    assert seeded.calls()["deals.list"] == 1


def test_latency(seeded: HS) -> None:
    seeded.admin("POST", "latency", {"endpoint": "pipelines.list", "ms": 250})
    api = seeded.client().crm.pipelines.pipelines_api
    started = time.monotonic()
    api.get_all(object_type="deals")
    assert time.monotonic() - started >= 0.25
    started = time.monotonic()
    seeded.client().crm.owners.owners_api.get_page()
    assert time.monotonic() - started < 0.25


def test_call_counts_per_endpoint_and_reset(seeded: HS) -> None:
    api = seeded.client()
    api.crm.deals.basic_api.get_page()
    api.crm.deals.basic_api.get_page()
    api.crm.owners.get_all()
    api.crm.deals.search_api.do_search(public_object_search_request={"limit": 1})
    api.crm.objects.tasks.search_api.do_search(public_object_search_request={"limit": 1})
    assert seeded.calls() == {"deals.list": 2, "owners.list": 1, "deals.search": 1,
                              "tasks.search": 1}
    seeded.admin("POST", "calls/reset")
    assert seeded.calls() == {}
    assert "tasks.batch.create" in seeded.admin("GET", "endpoints")


def test_search_lag_hides_new_and_shows_old_versions(hs: HS) -> None:
    hs.key_property()
    hs.admin("POST", "search-lag", {"seconds": 30})
    api = hs.client().crm.objects.tasks
    task = api.basic_api.create(simple_public_object_input_for_create={"properties": {
        "hs_timestamp": "1715850000000", "followup_key": "lag-1", "hs_task_subject": "v1"}})

    def find() -> list[str]:
        page = api.search_api.do_search(public_object_search_request=TaskSearch(
            filter_groups=[{"filters": [{"propertyName": "followup_key", "operator": "EQ",
                                         "value": "lag-1"}]}],
            properties=["hs_task_subject"]))
        return [r.properties["hs_task_subject"] for r in page.results]

    assert find() == []  # created, not yet searchable
    assert api.basic_api.get_by_id(task.id).id == task.id  # but readable by id
    hs.admin("POST", "clock", {"advance_seconds": 31})
    assert find() == ["v1"]
    api.basic_api.update(task.id, simple_public_object_input={"properties": {
        "hs_task_subject": "v2"}})
    assert find() == ["v1"]  # the previous version
    hs.admin("POST", "search-lag", {"seconds": 0})
    assert find() == ["v2"]


def test_admin_changes_data_without_counting(seeded: HS) -> None:
    lost = seeded.client().crm.deals.search_api.do_search(public_object_search_request={
        "filterGroups": [{"filters": [{"propertyName": "dealstage", "operator": "IN",
                                       "values": LOST_STAGES}]}], "limit": 1}).results[0]
    seeded.admin("POST", "clock", {"now": "2030-06-01T12:00:00Z"})
    reopened = seeded.admin("PATCH", f"objects/deals/{lost.id}",
                            {"properties": {"dealstage": "qualifiedtobuy"}})
    assert reopened["properties"]["hs_lastmodifieddate"].startswith("2030-06-01T12:00")
    assert reopened["properties"]["hs_is_closed_lost"] == "false"
    assert reopened["properties"]["hs_v2_date_entered_qualifiedtobuy"].startswith("2030-06-01")
    company = reopened["associations"]["companies"][0]
    added = seeded.admin("POST", "objects/deals", {
        "properties": {"dealname": "Second chance", "dealstage": "appointmentscheduled"},
        "associations": {"companies": [company]}}, status=201)
    assert added["associations"]["companies"] == [company]
    owners = seeded.admin("GET", "objects/owners")["results"]
    active = next(o for o in owners if not o["archived"])
    seeded.admin("DELETE", f"objects/owners/{active['id']}")
    archived = seeded.client().crm.owners.get_all(archived=True)
    assert active["id"] in {o.id for o in archived}
    seeded.admin("DELETE", f"objects/deals/{added['id']}")
    assert seeded.admin("GET", f"objects/deals/{added['id']}")["archived"] is True
    seeded.admin("PATCH", "objects/deals/1", {"properties": {}}, status=404)
    seeded.admin("PATCH", f"objects/deals/{lost.id}", {"properties": {"nope": "1"}}, status=400)
    assert seeded.calls() == {"deals.search": 1, "owners.list": 1}


def test_fixture_refs_and_errors(hs: HS) -> None:
    ids = hs.fixtures({"companies": [{"ref": "a", "name": "A"}],
                       "deals": [{"ref": "d", "properties": {"dealname": "D"},
                                  "associations": {"companies": ["@a"]}}]})
    deal = hs.admin("GET", f"objects/deals/{ids['d']}")
    assert deal["associations"]["companies"] == [ids["a"]]
    assert deal["properties"]["dealstage"] == "appointmentscheduled"
    hs.admin("POST", "seed", {"objects": {"deals": [{"associations": {"companies": ["@zz"]}}]}},
             status=400)
    with pytest.raises(ApiException) as info:
        hs.client().crm.deals.basic_api.update(ids["d"], simple_public_object_input={
            "properties": {"dealstage": "1307720556"}})  # a stage of another pipeline
    assert info.value.status == 400


def test_reseeding_keeps_custom_properties_but_reset_drops_them(hs: HS) -> None:
    hs.key_property()
    hs.seed(10)
    prop = hs.raw("GET", "/crm/v3/properties/tasks/followup_key").json()
    assert prop["hasUniqueValue"] is True
    hs.admin("POST", "reset")
    assert hs.raw("GET", "/crm/v3/properties/tasks/followup_key").status_code == 404
