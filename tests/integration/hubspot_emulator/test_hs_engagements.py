"""Calls, meetings, emails and notes through the real SDK: create with associations, property
validation, search on hs_lastmodifieddate with the search limits, v4 association batch reads,
and the task completion date."""

from __future__ import annotations

import pytest
from hubspot.crm.objects.calls import ApiException as CallsApiException
from hubspot.crm.objects.meetings import ApiException as MeetingsApiException
from hubspot.crm.objects.notes import ApiException as NotesApiException

from .conftest import HS, body_of

WHEN = "2026-11-20T15:00:00.000Z"


@pytest.fixture
def crm(hs: HS) -> dict[str, str]:
    return hs.fixtures({
        "companies": [{"ref": "acme", "name": "Acme"}],
        "contacts": [{"ref": "c1", "firstname": "Cy"}],
        "deals": [{"ref": "d1", "dealname": "Acme", "dealstage": "closedlost"}],
    })


def _assoc(to_id: str, type_id: int) -> dict[str, object]:
    return {"to": {"id": to_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


@pytest.mark.parametrize(("object_type", "props", "types"), [
    ("calls", {"hs_call_title": "Call", "hs_call_direction": "OUTBOUND"}, (206, 182, 194)),
    ("meetings", {"hs_meeting_title": "Demo", "hs_meeting_start_time": WHEN,
                  "hs_meeting_outcome": "COMPLETED"}, (212, 188, 200)),
    ("emails", {"hs_email_subject": "Hi", "hs_email_direction": "INCOMING_EMAIL"},
     (210, 186, 198)),
    ("notes", {"hs_note_body": "Spoke to Cy"}, (214, 190, 202)),
])
def test_engagement_created_with_links_is_searchable_and_linked(
        hs: HS, crm: dict[str, str], object_type: str, props: dict[str, str],
        types: tuple[int, int, int]) -> None:
    client = hs.client()
    api = getattr(client.crm.objects, object_type)
    created = api.basic_api.create(simple_public_object_input_for_create={
        "properties": {"hs_timestamp": WHEN, **props},
        "associations": [_assoc(crm["d1"], types[0]), _assoc(crm["acme"], types[1]),
                         _assoc(crm["c1"], types[2])]})
    found = api.search_api.do_search(public_object_search_request={
        "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate",
                                       "operator": "GTE", "value": "0"}]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["hs_timestamp", *props], "limit": 200})
    assert [r.id for r in found.results] == [created.id]
    assert found.results[0].properties["hs_timestamp"] == WHEN
    for to_type, to_id, type_id in (("deals", "d1", types[0]), ("companies", "acme", types[1]),
                                    ("contacts", "c1", types[2])):
        page = client.crm.associations.v4.batch_api.get_page(
            from_object_type=object_type, to_object_type=to_type,
            batch_input_public_fetch_associations_batch_request={"inputs": [{"id": created.id}]})
        [result] = page.results
        assert [t.to_object_id for t in result.to] == [crm[to_id]]
        assert type_id in [k.type_id for k in result.to[0].association_types]


@pytest.mark.parametrize(("props", "name", "code"), [
    ({"hs_call_title": "x"}, "hs_timestamp", "REQUIRED_PROPERTY"),
    ({"hs_timestamp": WHEN, "hs_call_direction": "SIDEWAYS"}, "hs_call_direction",
     "INVALID_OPTION"),
    ({"hs_timestamp": WHEN, "hs_call_mood": "happy"}, "hs_call_mood", "PROPERTY_DOESNT_EXIST"),
    ({"hs_timestamp": WHEN, "hs_lastmodifieddate": WHEN}, "hs_lastmodifieddate",
     "READ_ONLY_VALUE"),
])
def test_invalid_call_properties_are_400_naming_the_property(
        hs: HS, crm: dict[str, str], props: dict[str, str], name: str, code: str) -> None:
    with pytest.raises(CallsApiException) as info:
        hs.client().crm.objects.calls.basic_api.create(
            simple_public_object_input_for_create={"properties": props})
    assert info.value.status == 400
    body = body_of(info.value)
    assert name in body["message"] and code in body["message"]


def test_engagement_search_keeps_the_limits(hs: HS, crm: dict[str, str]) -> None:
    with pytest.raises(NotesApiException) as info:
        hs.client().crm.objects.notes.search_api.do_search(public_object_search_request={
            "filterGroups": [], "limit": 201})
    assert info.value.status == 400
    with pytest.raises(MeetingsApiException) as info2:
        hs.client().crm.objects.meetings.search_api.do_search(public_object_search_request={
            "filterGroups": [], "limit": 200, "after": "9900"})
    assert info2.value.status == 400 and "10000" in body_of(info2.value)["message"]


def test_admin_completes_a_task_at_a_given_time(hs: HS, crm: dict[str, str]) -> None:
    task = hs.admin("POST", "objects/tasks", {"properties": {"hs_timestamp": WHEN}})
    done = hs.admin("PATCH", f"objects/tasks/{task['id']}", {"properties": {
        "hs_task_status": "COMPLETED", "hs_task_completion_date": "2026-11-21T10:00:00.000Z"}})
    assert done["properties"]["hs_task_completion_date"] == "2026-11-21T10:00:00.000Z"
    read = hs.client().crm.objects.tasks.basic_api.get_by_id(
        task["id"], properties=["hs_task_completion_date", "hs_task_status"])
    assert read.properties["hs_task_status"] == "COMPLETED"


def test_admin_rep_routes_log_and_complete(hs: HS, crm: dict[str, str]) -> None:
    call = hs.admin("POST", "activities", {"kind": "call", "at": WHEN, "deal": crm["d1"],
                                           "company": crm["acme"], "contact": crm["c1"]})
    assert call["properties"]["hs_timestamp"] == WHEN
    assert call["associations"] == {"deals": [crm["d1"]], "companies": [crm["acme"]],
                                    "contacts": [crm["c1"]]}
    task = hs.admin("POST", "activities", {"kind": "task", "deal": crm["d1"]})
    done = hs.admin("POST", "activities/complete", {"id": task["id"],
                                                    "at": "2026-11-21T09:30:00Z"})
    assert done["properties"]["hs_task_status"] == "COMPLETED"
    assert done["properties"]["hs_task_completion_date"] == "2026-11-21T09:30:00.000Z"
    hs.admin("POST", "activities", {"kind": "fax"}, status=400)
