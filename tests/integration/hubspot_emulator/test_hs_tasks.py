"""Writing tasks through the real SDK: single and batch calls, upsert by a unique key,
validation, custom properties, associations and timestamps."""

from __future__ import annotations

from typing import Any

import pytest
from hubspot.crm.objects.tasks import (
    ApiException,
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    PublicAssociationsForObject,
    PublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.tasks.exceptions import NotFoundException
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import PropertyCreate

from .conftest import HS, body_of

DUE = "2024-05-16T09:00:00Z"


@pytest.fixture
def crm(hs: HS) -> dict[str, str]:
    return hs.fixtures({
        "owners": [{"ref": "ann", "email": "ann@seller.example", "firstName": "Ann"},
                   {"ref": "gone", "email": "gone@seller.example", "archived": True}],
        "companies": [{"ref": "acme", "name": "Acme"}],
        "contacts": [{"ref": "cy", "firstname": "Cy", "associations": {"companies": ["@acme"]}}],
        "deals": [{"ref": "deal", "dealname": "Acme", "dealstage": "closedlost",
                   "associations": {"contacts": ["@cy"], "companies": ["@acme"]}}],
    })


def _assoc(to_id: str, type_id: int) -> PublicAssociationsForObject:
    return PublicAssociationsForObject(to=PublicObjectId(id=to_id), types=[AssociationSpec(
        association_category="HUBSPOT_DEFINED", association_type_id=type_id)])


def _task(key: str, crm: dict[str, str], **props: Any) -> SimplePublicObjectBatchInputForCreate:
    return SimplePublicObjectBatchInputForCreate(
        object_write_trace_id=key,
        properties={"hs_timestamp": DUE, "hs_task_subject": f"Call {key}", "followup_key": key,
                    **props},
        associations=[_assoc(crm["deal"], 216), _assoc(crm["cy"], 204), _assoc(crm["acme"], 192)])


def _batch_create(api: Any, inputs: list[Any]) -> Any:
    return api.crm.objects.tasks.batch_api.create(
        batch_input_simple_public_object_batch_input_for_create=
        BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))


def test_create_get_update_archive_a_task(hs: HS, crm: dict[str, str]) -> None:
    api = hs.client()
    basic = api.crm.objects.tasks.basic_api
    created = basic.create(simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": "1715850000000", "hs_task_subject": "Post-mortem",
                    "hs_task_status": "NOT_STARTED", "hs_task_priority": "HIGH",
                    "hs_task_type": "CALL", "hubspot_owner_id": crm["ann"],
                    "hs_task_reminders": "1715846400000"},
        associations=[_assoc(crm["deal"], 216), _assoc(crm["cy"], 204)]))
    assert created.properties["hs_timestamp"] == "2024-05-16T09:00:00.000Z"
    assert created.properties["hs_task_reminders"] == "1715846400000"
    assert created.properties["hs_createdate"] == created.properties["hs_lastmodifieddate"]
    assert created.created_at and created.archived is False
    got = basic.get_by_id(created.id, properties=["hs_task_subject"],
                          associations=["deals", "contacts", "companies"])
    assert got.properties["hs_task_subject"] == "Post-mortem"
    assert [a.id for a in got.associations["deals"].results] == [crm["deal"]]
    assert got.associations["deals"].results[0].type == "task_to_deal"
    assert "companies" not in got.associations
    updated = basic.update(created.id, simple_public_object_input=SimplePublicObjectInput(
        properties={"hs_task_status": "COMPLETED"}))
    assert updated.properties["hs_task_status"] == "COMPLETED"
    assert updated.properties["hs_task_completion_date"]
    assert updated.properties["hs_lastmodifieddate"] >= created.properties["hs_lastmodifieddate"]
    assert basic.archive(created.id) is None
    with pytest.raises(NotFoundException):
        basic.get_by_id(created.id)
    every = hs.admin("GET", "tasks")
    assert every["total"] == 1 and every["results"][0]["archived"] is True
    assert every["results"][0]["associations"]["deals"] == [crm["deal"]]


@pytest.mark.parametrize(("props", "name", "code"), [
    ({"hs_task_subject": "no due date"}, "hs_timestamp", "REQUIRED_PROPERTY"),
    ({"hs_timestamp": DUE, "followup_key": "k"}, "followup_key", "PROPERTY_DOESNT_EXIST"),
    ({"hs_timestamp": DUE, "hs_task_status": "DONE"}, "hs_task_status", "INVALID_OPTION"),
    ({"hs_timestamp": DUE, "hs_task_priority": "URGENT"}, "hs_task_priority", "INVALID_OPTION"),
    ({"hs_timestamp": DUE, "hs_task_type": "MEETING"}, "hs_task_type", "INVALID_OPTION"),
    ({"hs_timestamp": DUE, "hubspot_owner_id": "123"}, "hubspot_owner_id", "INVALID_OWNER_ID"),
    ({"hs_timestamp": DUE, "hs_task_reminders": DUE}, "hs_task_reminders", "INVALID_LONG"),
    ({"hs_timestamp": "next tuesday"}, "hs_timestamp", "INVALID_DATE"),
    ({"hs_timestamp": DUE, "hs_object_id": "5"}, "hs_object_id", "READ_ONLY_VALUE"),
])
def test_invalid_task_properties_are_400_naming_the_property(
        hs: HS, crm: dict[str, str], props: dict[str, str], name: str, code: str) -> None:
    with pytest.raises(ApiException) as info:
        hs.client().crm.objects.tasks.basic_api.create(
            simple_public_object_input_for_create={"properties": props})
    assert info.value.status == 400
    body = body_of(info.value)
    assert body["category"] == "VALIDATION_ERROR"
    assert name in body["message"] and code in body["message"]
    assert hs.admin("GET", "tasks")["total"] == 0


def test_archived_owner_is_accepted_and_flagged(hs: HS, crm: dict[str, str]) -> None:
    hs.client().crm.objects.tasks.basic_api.create(simple_public_object_input_for_create={
        "properties": {"hs_timestamp": DUE, "hubspot_owner_id": crm["gone"]}})
    task = hs.admin("GET", "tasks")["results"][0]
    assert task["ownerArchived"] is True


def test_association_to_a_missing_record_is_400(hs: HS, crm: dict[str, str]) -> None:
    with pytest.raises(ApiException) as info:
        hs.client().crm.objects.tasks.basic_api.create(simple_public_object_input_for_create={
            "properties": {"hs_timestamp": DUE}, "associations": [_assoc("987654", 216)]})
    assert info.value.status == 400 and "987654" in body_of(info.value)["message"]


def test_custom_property_create_conflict_and_validation(hs: HS) -> None:
    props = hs.client().crm.properties.core_api
    group = hs.client().crm.properties.groups_api.get_all(object_type="tasks").results[0].name
    spec = PropertyCreate(name="followup_key", label="Follow-up key", type="string",
                          field_type="text", group_name=group, has_unique_value=True)
    created = props.create(object_type="tasks", property_create=spec)
    assert created.name == "followup_key" and created.has_unique_value is True
    assert props.get_by_name(object_type="tasks", property_name="followup_key").label
    with pytest.raises(PropertiesApiException) as info:
        props.create(object_type="tasks", property_create=spec)
    assert info.value.status == 409 and body_of(info.value)["category"] == "CONFLICT"
    with pytest.raises(PropertiesApiException) as info:
        props.create(object_type="tasks", property_create={"name": "x_key", "label": "X"})
    assert info.value.status == 400 and "fieldType" in body_of(info.value)["message"]
    with pytest.raises(PropertiesApiException) as info:
        props.create(object_type="tasks", property_create={**spec.to_dict(), "name": "y",
                                                           "groupName": "nope"})
    assert info.value.status == 400


def test_batch_create_201_results_out_of_order_with_trace_ids(hs: HS, crm: dict[str, str]
                                                              ) -> None:
    hs.key_property()
    keys = [f"d{crm['deal']}:s{i}" for i in range(5)]
    result = _batch_create(hs.client(), [_task(k, crm) for k in keys])
    assert result.status == "COMPLETE" and not getattr(result, "errors", None)
    assert [r.object_write_trace_id for r in result.results] != keys  # order not promised
    assert sorted(r.object_write_trace_id for r in result.results) == sorted(keys)
    for r in result.results:
        assert r.properties["followup_key"] == r.object_write_trace_id
    tasks = hs.admin("GET", "tasks")["results"]
    assert all(t["associations"] == {"deals": [crm["deal"]], "contacts": [crm["cy"]],
                                     "companies": [crm["acme"]]} for t in tasks)
    raw = hs.raw("POST", "/crm/v3/objects/tasks/batch/create", json={"inputs": [
        {"properties": {"hs_timestamp": DUE, "followup_key": "raw-1"}}]})
    assert raw.status_code == 201


def test_batch_over_100_inputs_is_400(hs: HS, crm: dict[str, str]) -> None:
    hs.key_property()
    with pytest.raises(ApiException) as info:
        _batch_create(hs.client(), [_task(f"k{i}", crm) for i in range(101)])
    assert info.value.status == 400 and body_of(info.value)["category"] == "VALIDATION_ERROR"
    read = hs.raw("POST", "/crm/v3/objects/tasks/batch/read",
                  json={"inputs": [{"id": str(i)} for i in range(101)]})
    assert read.status_code == 400
    assert hs.admin("GET", "tasks")["total"] == 0


def test_unique_key_conflicts_are_207_partial_or_409_whole(hs: HS, crm: dict[str, str]) -> None:
    hs.key_property()
    api = hs.client()
    _batch_create(api, [_task("k1", crm)])
    result = _batch_create(api, [_task("k1", crm), _task("k2", crm), _task("k2", crm)])
    assert [r.properties["followup_key"] for r in result.results] == ["k2"]
    assert result.num_errors == 2
    assert {e.category for e in result.errors} == {"CONFLICT"}
    assert sorted(e.context["objectWriteTraceId"][0] for e in result.errors) == ["k1", "k2"]
    with pytest.raises(ApiException) as info:
        api.crm.objects.tasks.basic_api.create(simple_public_object_input_for_create={
            "properties": {"hs_timestamp": DUE, "followup_key": "k1"}})
    assert info.value.status == 409 and body_of(info.value)["category"] == "CONFLICT"
    hs.admin("POST", "settings", {"batch_conflicts": "whole"})
    with pytest.raises(ApiException) as info:
        _batch_create(api, [_task("k3", crm), _task("k1", crm)])
    assert info.value.status == 409
    assert hs.admin("GET", "tasks")["total"] == 2  # k3 was not written either


def test_batch_update_read_archive(hs: HS, crm: dict[str, str]) -> None:
    hs.key_property()
    api = hs.client()
    batch = api.crm.objects.tasks.batch_api
    ids = sorted(r.id for r in _batch_create(api, [_task(f"k{i}", crm) for i in range(3)]).results)
    updated = batch.update(batch_input_simple_public_object_batch_input=
                           BatchInputSimplePublicObjectBatchInput(inputs=[
                               {"id": ids[0], "properties": {"hs_task_status": "COMPLETED"}},
                               {"id": "1", "properties": {"hs_task_status": "COMPLETED"}}]))
    assert [r.id for r in updated.results] == [ids[0]]
    assert updated.errors[0].category == "OBJECT_NOT_FOUND"
    with pytest.raises(ApiException) as info:
        batch.update(batch_input_simple_public_object_batch_input={"inputs": [
            {"id": ids[1], "properties": {"hs_task_status": "NOPE"}}]})
    assert info.value.status == 400
    assert batch.archive(batch_input_simple_public_object_id=BatchInputSimplePublicObjectId(
        inputs=[{"id": ids[2]}])) is None
    read = batch.read(batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
        inputs=[{"id": i} for i in ids], properties=["hs_task_status", "followup_key"],
        properties_with_history=[]))
    assert sorted(r.id for r in read.results) == ids[:2]
    assert read.errors[0].context["ids"] == [ids[2]]
    by_key = batch.read(batch_read_input_simple_public_object_id={
        "inputs": [{"id": "k1"}], "idProperty": "followup_key", "properties": ["followup_key"]})
    assert by_key.results[0].id == ids[1]


def test_upsert_by_unique_key(hs: HS, crm: dict[str, str]) -> None:
    api = hs.client()
    batch = api.crm.objects.tasks.batch_api
    hs.key_property("plain_key", unique=False)

    def upsert(prop: str, key: str, **props: str) -> Any:
        return batch.upsert(batch_input_simple_public_object_batch_input_upsert=
                            BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
                                SimplePublicObjectBatchInputUpsert(
                                    id=key, id_property=prop, object_write_trace_id=key,
                                    properties={"hs_timestamp": DUE, **props})]))

    with pytest.raises(ApiException) as info:
        upsert("plain_key", "a")
    assert info.value.status == 400 and "hasUniqueValue" in body_of(info.value)["message"]
    hs.key_property()
    first = upsert("followup_key", "u1", hs_task_subject="one")
    assert first.results[0].new is True
    second = upsert("followup_key", "u1", hs_task_subject="two")
    assert second.results[0].new is False and second.results[0].id == first.results[0].id
    assert second.results[0].properties["hs_task_subject"] == "two"
    assert hs.admin("GET", "tasks")["total"] == 1
    got = api.crm.objects.tasks.basic_api.get_by_id("u1", id_property="followup_key",
                                                     properties=["hs_task_subject"])
    assert got.properties["hs_task_subject"] == "two"


def test_search_tasks_by_key(hs: HS, crm: dict[str, str]) -> None:
    hs.key_property()
    api = hs.client()
    _batch_create(api, [_task(f"k{i}", crm) for i in range(4)])
    page = api.crm.objects.tasks.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "followup_key", "operator": "IN",
                                         "values": ["k1", "k3", "k9"]}]}],
            properties=["followup_key", "hs_task_status", "hs_timestamp"], limit=200))
    assert page.total == 2
    assert sorted(r.properties["followup_key"] for r in page.results) == ["k1", "k3"]
    assert page.results[0].properties["hs_task_status"] == "NOT_STARTED"


def test_clock_offset_shows_in_task_timestamps(hs: HS, crm: dict[str, str]) -> None:
    hs.admin("POST", "clock", {"now": "2031-01-02T03:04:05Z"})
    task = hs.client().crm.objects.tasks.basic_api.create(
        simple_public_object_input_for_create={"properties": {"hs_timestamp": DUE}})
    assert task.properties["hs_createdate"].startswith("2031-01-02T03:04:0")
    assert task.properties["hs_lastmodifieddate"].endswith("Z")
    hs.admin("POST", "clock", {"advance_seconds": 86400})
    later = hs.client().crm.objects.tasks.basic_api.update(
        task.id, simple_public_object_input={"properties": {"hs_task_subject": "x"}})
    assert later.properties["hs_lastmodifieddate"].startswith("2031-01-03T03:04:")
    assert later.properties["hs_createdate"] == task.properties["hs_createdate"]


def test_concurrent_creates_keep_keys_unique(hs: HS, crm: dict[str, str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    hs.key_property()
    keys = [f"c{i}" for i in range(10)]

    def writer(_: int) -> int:
        api = hs.client()
        result = _batch_create(api, [_task(k, crm) for k in keys])
        return len(result.results)

    with ThreadPoolExecutor(max_workers=6) as pool:
        written = sum(pool.map(writer, range(6)))
    tasks = hs.admin("GET", "tasks")["results"]
    assert written == len(tasks) == len(keys)
    assert sorted(t["properties"]["followup_key"] for t in tasks) == sorted(keys)
